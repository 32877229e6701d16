"""Tests of nanoct.recon.preprocess: flat fields interpolated in time, -log, zingers, rings."""

import logging

import numpy as np
import pytest
from scipy import ndimage

from nanoct.recon.preprocess import (
    bin_projections,
    crop,
    dark_subtract,
    flat_field,
    flat_weights,
    minus_log,
    remove_rings,
    remove_zingers,
)

ROWS, COLS = 12, 20


# --------------------------------------------------------------------------------------------
# dark and flat
# --------------------------------------------------------------------------------------------


def test_dark_subtract_averages_the_darks():
    rng = np.random.default_rng(0)
    darks = 100.0 + rng.normal(0, 1, (5, ROWS, COLS))
    imgs = np.full((3, ROWS, COLS), 1000, dtype=np.uint16)
    out = dark_subtract(imgs, darks)
    assert out.dtype == np.float32 and out.shape == imgs.shape
    np.testing.assert_allclose(
        out, np.broadcast_to(1000 - darks.mean(axis=0), out.shape), rtol=1e-6
    )
    np.testing.assert_array_equal(dark_subtract(imgs, None), imgs.astype(np.float32))
    with pytest.raises(ValueError, match="darks"):
        dark_subtract(imgs, np.zeros((2, ROWS, COLS + 1)))


def _drifting_scan(seed: int = 1, counts: float = 1e5):
    """A scan whose beam drifts between three flat blocks (flux drift plus a growing
    secondary-spot halo), with a dark offset, Poisson-like noise and a known transmission."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ROWS, :COLS]
    gain = 1.0 + 0.2 * rng.random((ROWS, COLS))
    halo = np.exp(-((yy - 4.0) ** 2 + (xx - 12.0) ** 2) / 20.0)
    dark = 2000.0 + 500.0 * rng.random((ROWS, COLS))

    def beam(t):
        # flux drifts by 20 % over the scan (with curvature), the halo grows and fades
        flux = 1.0 + 0.004 * t - 1.5e-5 * t**2
        return counts * gain * (flux + 0.1 * np.sin(t / 30.0) * halo)

    def noisy(expect):
        return expect + rng.normal(0.0, 1.0, expect.shape) * np.sqrt(expect)

    trans = 0.3 + 0.7 * rng.random((ROWS, COLS))
    flat_t = np.r_[0:5, 35:40, 70:75].astype(float)
    proj_t = np.r_[5:35, 40:70].astype(float)
    flats = np.stack([noisy(beam(t) + dark) for t in flat_t])
    projs = np.stack([noisy(beam(t) * trans + dark) for t in proj_t])
    darks = np.stack([noisy(dark) for _ in range(4)])
    return projs, proj_t, flats, flat_t, darks, trans


def _rms_rel(est, trans):
    return float(np.sqrt(np.mean((est / trans[None] - 1.0) ** 2)))


def test_interpolated_flats_beat_start_only_and_nearest():
    projs, pt, flats, ft, darks, trans = _drifting_scan()
    interp = flat_field(projs, pt, flats, ft, darks)
    nearest = flat_field(projs, pt, flats, ft, darks, method="nearest")
    start_only = flat_field(projs, pt, flats[:5], ft[:5], darks)
    e_i, e_n, e_s = (_rms_rel(e, trans) for e in (interp, nearest, start_only))
    assert interp.dtype == np.float32
    assert e_i < e_s / 3.0, (e_i, e_s)
    assert e_i < e_n < e_s, (e_i, e_n, e_s)
    # the residual of the interpolated correction is close to the noise floor (~0.4 %)
    assert e_i < 0.008


def test_without_darks_a_dark_offset_biases_the_transmission():
    projs, pt, flats, ft, darks, trans = _drifting_scan()
    with_d = _rms_rel(flat_field(projs, pt, flats, ft, darks), trans)
    without = _rms_rel(flat_field(projs, pt, flats, ft, None), trans)
    assert without > 1.5 * with_d


def test_flat_blocks_given_or_inferred_agree_and_order_does_not_matter():
    projs, pt, flats, ft, darks, _ = _drifting_scan()
    inferred = flat_field(projs, pt, flats, ft, darks)
    labels = np.repeat([7, 3, 9], 5)  # any labels
    given = flat_field(projs, pt, flats, ft, darks, flat_blocks=labels)
    perm = np.random.default_rng(5).permutation(ft.size)
    shuffled = flat_field(projs, pt, flats[perm], ft[perm], darks)
    np.testing.assert_allclose(given, inferred, rtol=1e-6)
    np.testing.assert_allclose(shuffled, inferred, rtol=1e-5)
    # one label for everything: a single averaged block, as start+end flats averaged
    single = flat_field(projs, pt, flats, ft, darks, flat_blocks=np.zeros(15, int))
    assert not np.allclose(single, inferred, rtol=1e-3)


def test_flat_weights_bracket_and_nearest():
    bt = np.array([2.0, 37.0, 72.0])
    lo, hi, w = flat_weights(np.array([0.0, 2.0, 19.5, 30.0, 37.0, 80.0]), bt)
    np.testing.assert_array_equal(lo, [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(hi, [1, 1, 1, 1, 2, 2])
    np.testing.assert_allclose(w, [0.0, 0.0, 0.5, 0.8, 0.0, 1.0])
    lo, hi, w = flat_weights(np.array([19.5, 20.0, 30.0, 80.0]), bt, method="nearest")
    flat_of = np.where(w == 1.0, hi, lo)
    np.testing.assert_array_equal(flat_of, [0, 1, 1, 2])  # a tie goes to the earlier block
    with pytest.raises(ValueError, match="method"):
        flat_weights(np.zeros(2), bt, method="linear")


def test_flat_field_interpolation_is_exact_for_a_linear_drift():
    yy, xx = np.mgrid[:ROWS, :COLS]
    trans = 0.5 + 0.4 * np.cos(xx / 3.0) * np.sin(yy / 2.0)

    def beam(t):
        return 1000.0 * (1.0 + 0.01 * t) + 50.0 * t * np.exp(-((xx - 5.0) ** 2) / 8.0)

    ft = np.array([0.0, 1.0, 50.0, 51.0])
    pt = np.linspace(2.0, 49.0, 10)
    flats = np.stack([beam(t) for t in ft])
    projs = np.stack([beam(t) * trans for t in pt])
    out = flat_field(projs, pt, flats, ft)
    np.testing.assert_allclose(out, np.broadcast_to(trans, out.shape), rtol=1e-5)


def test_dead_pixels_become_one_and_are_reported(caplog):
    flats = np.full((2, ROWS, COLS), 500.0)
    flats[:, 3, 4] = 100.0  # equal to the dark: flat - dark = 0
    darks = np.full((2, ROWS, COLS), 100.0)
    projs = np.full((3, ROWS, COLS), 300.0)
    with caplog.at_level(logging.WARNING, logger="nanoct.recon.preprocess"):
        out = flat_field(projs, [1.0, 2.0, 3.0], flats, [0.0, 0.5], darks)
    assert np.isfinite(out).all()
    assert out[0, 3, 4] == 1.0
    assert out[0, 0, 0] == pytest.approx(0.5)
    assert "3 pixel-projections" in caplog.text


def test_flat_field_names_bad_inputs():
    projs = np.ones((3, ROWS, COLS))
    with pytest.raises(ValueError, match="proj_times_s"):
        flat_field(projs, [0.0, 1.0], np.ones((2, ROWS, COLS)), [0.0, 1.0])
    with pytest.raises(ValueError, match="flats"):
        flat_field(projs, [0.0, 1.0, 2.0], np.ones((2, ROWS, COLS + 1)), [0.0, 1.0])
    with pytest.raises(ValueError, match="flat_blocks"):
        flat_field(projs, [0, 1, 2], np.ones((2, ROWS, COLS)), [0, 1], flat_blocks=[0])


# --------------------------------------------------------------------------------------------
# -log
# --------------------------------------------------------------------------------------------


def test_minus_log_is_safe_and_reports_the_clipped_count(caplog):
    t = np.array([1.0, 0.5, 0.0, -1.0, np.nan, np.inf, 1e-9, 2e-6])
    with caplog.at_level(logging.WARNING, logger="nanoct.recon.preprocess"):
        out = minus_log(t, floor=1e-6)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:2], [0.0, np.log(2.0)], atol=1e-7)
    np.testing.assert_allclose(out[2:7], -np.log(1e-6), rtol=1e-6)
    assert out[7] == pytest.approx(-np.log(2e-6), rel=1e-6)
    assert "5 of 8 values" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nanoct.recon.preprocess"):
        minus_log(np.array([0.2, 0.9]))
    assert caplog.text == ""
    with pytest.raises(ValueError, match="floor"):
        minus_log(t, floor=0.0)


# --------------------------------------------------------------------------------------------
# zingers
# --------------------------------------------------------------------------------------------


def _rotating_stack(n=90, rows=24, cols=32, sigma=0.01, seed=2):
    """-log-like projections of two off-axis blobs turning with angle, plus noise."""
    rng = np.random.default_rng(seed)
    th = np.linspace(0, np.pi, n, endpoint=False)[:, None, None]
    yy, xx = np.mgrid[:rows, :cols][:, None]
    clean = np.zeros((n, rows, cols))
    for r, y0, w, h in ((6.0, 8.0, 3.0, 1.0), (-9.0, 15.0, 2.0, 0.6)):
        u0 = (cols - 1) / 2 + r * np.cos(th)
        clean += h * np.exp(-((xx - u0) ** 2 + (yy - y0) ** 2) / (2 * w * w))
    clean += 0.3 * (xx > 20)  # a sharp vertical edge at every angle
    return clean, clean + rng.normal(0.0, sigma, clean.shape)


@pytest.mark.parametrize("axis", ["angle", "plane"])
def test_zingers_are_removed_and_clean_pixels_kept(axis):
    sigma = 0.01
    clean, noisy = _rotating_stack(sigma=sigma)
    rng = np.random.default_rng(3)
    hit = np.zeros(noisy.shape, bool)
    idx = tuple(rng.integers(0, s, 60) for s in noisy.shape)
    hit[idx] = True
    amp = rng.uniform(20, 200, 60) * sigma * rng.choice([-1, 1], 60)  # both polarities
    data = noisy.copy()
    data[idx] += amp
    out = remove_zingers(data, threshold=6.0, axis=axis)
    assert out.dtype == np.float32
    # every zinger is gone: back within a few sigma of the clean value
    # (a 3 x 3 median in the plane cuts the top off the narrow blobs: up to 0.15)
    assert np.abs(out[hit] - clean[hit]).max() < (6 * sigma if axis == "angle" else 0.15)
    # clean pixels are hardly changed: few replaced, and those only by noise-sized amounts
    changed = (out != data.astype(np.float32)) & ~hit
    assert changed.mean() < (2e-3 if axis == "angle" else 0.02)
    assert np.abs(out - data)[~hit].max() < (12 * sigma if axis == "angle" else 0.31)


def test_zinger_polarity_and_sinogram_input():
    clean, noisy = _rotating_stack()
    data = noisy.copy()
    data[10, 5, 5] += 1.0
    data[20, 6, 6] -= 1.0
    bright = remove_zingers(data, polarity="bright")
    assert abs(bright[10, 5, 5] - clean[10, 5, 5]) < 0.05
    assert bright[20, 6, 6] == pytest.approx(data[20, 6, 6])
    dark = remove_zingers(data, polarity="dark")
    assert dark[10, 5, 5] == pytest.approx(data[10, 5, 5])
    sino = remove_zingers(data[:, 5, :])  # (angle, column)
    assert sino.shape == data[:, 5, :].shape
    assert abs(sino[10, 5] - clean[10, 5, 5]) < 0.05
    with pytest.raises(ValueError, match="size"):
        remove_zingers(data, size=4)


# --------------------------------------------------------------------------------------------
# rings
# --------------------------------------------------------------------------------------------

N_ANG, N_COL = 180, 192


def _rect_sinogram(cx, cy, a, b, mu, theta, u):
    """Parallel projection of an axis-aligned rectangle (half sides a, b), exact chord
    lengths: the intersection of two slabs along each ray."""
    d = np.stack([-np.sin(theta), np.cos(theta)])  # ray direction
    n = np.stack([np.cos(theta), np.sin(theta)])  # detector direction
    lo = np.full((theta.size, u.size), -np.inf)
    hi = np.full((theta.size, u.size), np.inf)
    for k, (c0, half) in enumerate(((cx, a), (cy, b))):
        p = u[None, :] * n[k][:, None] - c0  # offset of the ray's foot from the centre
        dk = d[k][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - p) / dk
            t2 = (half - p) / dk
        par = np.abs(dk) < 1e-12
        inside = np.abs(p) <= half
        t_lo = np.where(par, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
        t_hi = np.where(par, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
        lo, hi = np.maximum(lo, t_lo), np.minimum(hi, t_hi)
    return mu * np.clip(hi - lo, 0, None)


def _edge_phantom_sinogram():
    """A centred disk (constant at every angle) and an off-axis rectangle with sharp sides,
    pixel-integrated (x8) and blurred by 0.5 px; angles over 180 degrees."""
    theta = np.linspace(0, np.pi, N_ANG, endpoint=False)
    os = 8
    u = (np.arange(N_COL * os) + 0.5) / os - 0.5 - (N_COL - 1) / 2
    disk = 0.002 * 2 * np.sqrt(np.clip(55.0**2 - u**2, 0, None))
    sino = np.broadcast_to(disk, (N_ANG, u.size)) + _rect_sinogram(
        25.0, 10.0, 18.0, 9.0, 0.02, theta, u
    )
    sino = sino.reshape(N_ANG, N_COL, os).mean(axis=2)
    return ndimage.gaussian_filter1d(sino, 0.5, axis=1)


def _width_10_90(profile):
    """10-90 % width (samples) of a rising or falling edge; the levels are the medians of the
    three samples at each end (so one stray sample on a plateau does not move them)."""
    p = np.asarray(profile, dtype=float)
    lo, hi = np.median(p[:3]), np.median(p[-3:])
    q = (p - lo) / (hi - lo)
    q = np.maximum.accumulate(np.clip(q, 0.0, 1.0))  # monotone for interpolation
    x = np.arange(q.size)
    return float(np.interp(0.9, q, x) - np.interp(0.1, q, x))


@pytest.fixture(scope="module")
def striped():
    rng = np.random.default_rng(4)
    clean = _edge_phantom_sinogram()
    cols = rng.choice(N_COL, 24, replace=False)
    offsets = np.zeros(N_COL)
    offsets[cols] = rng.uniform(0.01, 0.04, cols.size) * rng.choice([-1, 1], cols.size)
    offsets[140:142] += 0.02  # one 2-column wide stripe
    noisy = clean + rng.normal(0.0, 0.002, clean.shape)
    return clean, noisy, noisy + offsets[None]


def _rms(v):
    return float(np.sqrt(np.mean(np.square(v))))


def test_rings_removed_and_edges_stay_sharp(striped):
    clean, noisy, data = striped
    out = remove_rings(data)
    assert out.dtype == np.float32 and out.shape == data.shape
    before = (data - noisy).mean(axis=0)  # the stripe offsets
    after = (out - noisy).mean(axis=0)
    # columns whose profile is gentle at most angles (median |slope| < 0.003 per column,
    # under a third of the smallest stripe): stripes fall to < 1/4
    gentle = np.median(np.abs(np.gradient(clean, axis=1)), axis=0) < 0.003
    assert gentle.sum() > N_COL // 2
    assert _rms(after[gentle]) < _rms(before[gentle]) / 4.0
    # everywhere (stripes on steep flanks are only partly removed): < 1/2
    assert _rms(after) < _rms(before) / 2.0
    # the rectangle's sharp side at angle 0 (a step from x = 25 - 18 = 7 px right of the axis)
    c0 = round((N_COL - 1) / 2 + 7)
    seg = slice(c0 - 4, c0 + 5)
    w_ref = _width_10_90(noisy[0, seg])  # no stripes, the same noise
    assert w_ref < 2.0
    assert abs(_width_10_90(out[0, seg]) - w_ref) < 0.1 * w_ref


def test_ring_removal_leaves_a_clean_sinogram_alone():
    # the rim of the centred disk and the rectangle's sides included: nothing is "corrected"
    clean = _edge_phantom_sinogram().astype(np.float32)
    out = remove_rings(clean)
    assert np.abs(out - clean).max() < 1e-3 * clean.max()


def test_rings_on_a_projection_stack_match_per_row(striped):
    _, _, data = striped
    stack = np.stack([data, data[:, ::-1]], axis=1)  # (angle, row, column)
    out = remove_rings(stack)
    np.testing.assert_allclose(out[:, 0], remove_rings(data), atol=1e-6)
    np.testing.assert_allclose(out[:, 1], remove_rings(data[:, ::-1]), atol=1e-6)
    with pytest.raises(ValueError, match="size"):
        remove_rings(data, size=10)


# --------------------------------------------------------------------------------------------
# binning and cropping
# --------------------------------------------------------------------------------------------


def test_bin_and_crop():
    a = np.arange(2 * 5 * 7, dtype=np.uint16).reshape(2, 5, 7)
    b = bin_projections(a, 2)
    assert b.shape == (2, 2, 3) and b.dtype == np.float32
    assert b[0, 0, 0] == pytest.approx(np.mean([0, 1, 7, 8]))
    assert b[1, 1, 2] == pytest.approx(a[1, 2:4, 4:6].mean())
    assert bin_projections(a, (1, 3)).shape == (2, 5, 2)
    assert bin_projections(a[0], 2).shape == (2, 3)
    with pytest.raises(ValueError, match="factor"):
        bin_projections(a, 0)
    c = crop(a, rows=slice(1, 4), cols=slice(2, None))
    assert c.shape == (2, 3, 5) and np.shares_memory(c, a)
    assert c[1, 0, 0] == a[1, 1, 2]
    with pytest.raises(ValueError, match="empty"):
        crop(a, rows=slice(3, 3))
    with pytest.raises(ValueError, match="slices"):
        crop(a, rows=(1, 2))
