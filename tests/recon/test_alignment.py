"""Tests of nanoct.recon.alignment: reference wire, spot drift, shifts, registration, axis."""

import numpy as np
import pytest
from scipy import ndimage

from nanoct.recon.alignment import (
    axis_tilt,
    center_of_rotation_180,
    center_of_rotation_search,
    phase_correlation_shift,
    register_projections,
    shift_projections,
    specimen_shift_px,
    spot_shift_from_wire,
    wire_position,
    wire_track,
)

# --------------------------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------------------------


def _wire_profile(c, n=41, radius=2.0, blur=1.0, os=32, slope=0.01, level=1000.0):
    """Intensity across a tungsten-like cylinder shadow centred at sample ``c``: exact chord
    lengths, a saturating (beam-hardening-like) attenuation, Gaussian blur, pixel integration
    (x32), on a background sloping by ``slope`` per pixel."""
    xf = (np.arange(n * os) + 0.5) / os - 0.5
    chord = 2.0 * np.sqrt(np.clip(radius**2 - (xf - c) ** 2, 0.0, None))
    att = 1.2 * chord / (1.0 + 0.7 * chord)  # polychromatic-like: harder beam behind more metal
    t = np.exp(-att)
    if blur > 0:
        t = ndimage.gaussian_filter1d(t, blur * os, mode="nearest")
    t = t.reshape(n, os).mean(axis=1)
    return level * (1.0 + slope * (np.arange(n) - n / 2)) * t


def _cross_image(x, y, rows=70, cols=90, rng=None, level=2000.0):
    """Intensity image with the shadows of a vertical arm at column ``x`` (rows 0-34) and a
    horizontal arm at row ``y`` (columns 0-44), sloping beam, Poisson noise if ``rng``."""
    vert = _wire_profile(x, n=cols, slope=0.0, level=1.0)
    horz = _wire_profile(y, n=rows, slope=0.0, level=1.0)
    img = np.ones((rows, cols))
    img[:35, :] *= vert[None, :]
    img[:, :45] *= horz[:, None]
    yy, xx = np.mgrid[:rows, :cols]
    img *= level * (1.0 + 0.003 * xx - 0.002 * yy)
    return rng.poisson(img).astype(float) if rng is not None else img


ROWS, COLS = 64, 96
BLOBS = [  # x0, y0, z0 (px from the axis), semi-axes a (x), b (y), c (z), attenuation per px
    (0.0, 0.0, 0.0, 20.0, 22.0, 18.0, 0.02),
    (8.0, -10.0, 5.0, 5.0, 6.0, 4.0, 0.05),
    (-12.0, 8.0, -6.0, 4.0, 3.0, 5.0, -0.02),
    (5.0, 15.0, -10.0, 3.0, 3.0, 3.0, 0.08),
]


def _projection(theta, axis_col, blobs=BLOBS, rows=ROWS, cols=COLS, os=4, dy=0.0):
    """Parallel projection (-log) of ellipsoids turning about a vertical axis at column
    ``axis_col``, integrated over each pixel (x``os`` in both directions); ``dy`` moves
    everything down by that many rows."""
    u = (np.arange(cols * os) + 0.5) / os - 0.5 - axis_col
    v = (np.arange(rows * os) + 0.5) / os - 0.5 - (rows - 1) / 2 - dy
    out = np.zeros((rows * os, cols * os))
    for x0, y0, z0, a, b, c, mu in blobs:
        at = np.sqrt((a * np.cos(theta)) ** 2 + (c * np.sin(theta)) ** 2)
        u0 = x0 * np.cos(theta) + z0 * np.sin(theta)
        q = 1.0 - ((u[None, :] - u0) / at) ** 2 - ((v[:, None] - y0) / b) ** 2
        out += mu * 2.0 * a * c / at * np.sqrt(np.clip(q, 0.0, None))
    return out.reshape(rows, os, cols, os).mean(axis=(1, 3))


# --------------------------------------------------------------------------------------------
# reference wire
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("radius", "blur"), [(0.6, 0.5), (1.0, 0.7), (2.0, 1.0), (3.0, 1.5), (1.5, 0.2)]
)
def test_wire_position_on_cylinder_shadows(radius, blur):
    rng = np.random.default_rng(int(10 * radius + blur * 7))
    for c in np.linspace(18.0, 19.0, 11):
        p = _wire_profile(c, radius=radius, blur=blur)
        centre, width = wire_position(p, axis="x")
        assert abs(centre - c) < 0.01, (c, centre)
        assert 1.0 < width < 2 * radius + 4 * blur + 1
        # Poisson noise (3 % per pixel), 40 rows averaged in the region
        img = rng.poisson(np.tile(p, (40, 1))).astype(float)
        centre_n, _ = wire_position(img, axis="x")
        assert abs(centre_n - c) < 0.05, (c, centre_n)


def test_wire_width_is_the_full_width_at_half_depth():
    x = np.arange(60.0)
    for sigma in (1.5, 3.0):
        dip = 0.4 * np.exp(-((x - 29.6) ** 2) / (2 * sigma**2))
        _, width = wire_position(1000.0 * (1.0 - dip), axis="x")
        assert width == pytest.approx(2 * np.sqrt(2 * np.log(2)) * sigma, rel=0.03)
    sharp = wire_position(_wire_profile(20.3, blur=0.5), axis="x")[1]
    blurred = wire_position(_wire_profile(20.3, blur=2.0), axis="x")[1]
    assert blurred > sharp + 0.5


def test_wire_position_roi_axis_and_polarity():
    img = _cross_image(52.3, 40.7)
    vert_roi = (slice(2, 30), slice(42, 63))
    horz_roi = (slice(30, 52), slice(5, 38))
    assert wire_position(img, axis="x", roi=vert_roi)[0] == pytest.approx(52.3, abs=0.01)
    assert wire_position(img, axis="y", roi=horz_roi)[0] == pytest.approx(40.7, abs=0.01)
    assert wire_position(img, axis=1, roi=vert_roi)[0] == pytest.approx(52.3, abs=0.01)
    assert wire_position(img, axis=0, roi=horz_roi)[0] == pytest.approx(40.7, abs=0.01)
    # attenuation data: the shadow is a bump
    att = -np.log(img / img.max())
    assert wire_position(att, axis="x", roi=vert_roi, polarity="bright")[0] == pytest.approx(
        52.3, abs=0.02
    )
    # a 1-D profile with a slice roi reports full-profile coordinates
    prof = img[2:30].mean(axis=0)
    assert wire_position(prof, axis="x", roi=slice(42, 63))[0] == pytest.approx(52.3, abs=0.01)
    # no wire in view (a flat or dark frame): NaN, not a number made up from noise
    flat = np.random.default_rng(0).poisson(np.full((30, 40), 500.0)).astype(float)
    assert np.isnan(wire_position(flat, axis="x")[0])
    dark = np.random.default_rng(1).normal(0.0, 3.0, (30, 40))  # a dark-subtracted dark
    assert np.isnan(wire_position(dark, axis="x")[0])
    with pytest.raises(ValueError, match="axis"):
        wire_position(img, axis="z")


def test_wire_track_follows_a_drifting_shadow():
    rng = np.random.default_rng(7)
    xs = 52.0 + np.cumsum(rng.normal(0, 0.3, 8))
    ys = 40.0 + np.cumsum(rng.normal(0, 0.3, 8))
    stack = np.stack([_cross_image(x, y, rng=rng) for x, y in zip(xs, ys, strict=True)])
    x, y, w = wire_track(stack, (slice(2, 30), slice(40, 65)), (slice(28, 53), slice(3, 40)))
    assert np.abs(x - xs).max() < 0.05
    assert np.abs(y - ys).max() < 0.05
    assert np.all((w > 2.5) & (w < 6.0))


# --------------------------------------------------------------------------------------------
# focal-spot drift: geometry and signs
# --------------------------------------------------------------------------------------------


def _shadow_px(point_mm, spot_mm, *, sdd_mm, pixel_mm, centre_px=(500.0, 500.0)):
    """(column, row) of the shadow of ``point_mm`` = (x, y, z) cast from a spot at (sx, sy, 0)
    onto the detector at z = sdd: lab x to the right, y up; rows grow downwards."""
    x, y, z = point_mm
    sx, sy = spot_mm
    u = sx + (x - sx) * sdd_mm / z
    v = sy + (y - sy) * sdd_mm / z
    return centre_px[0] + u / pixel_mm, centre_px[1] - v / pixel_mm


def test_wire_motion_scales_to_the_specimen_shift_by_ray_geometry():
    pixel, sdd, z_wire, sod = 0.05, 500.0, 100.0, 2.0
    spots = np.array([[0.0, 0.0], [0.002, 0.0], [0.0, 0.003], [-0.0015, -0.001]])  # mm
    wire = np.array([_shadow_px((1.2, 0.9, z_wire), s, sdd_mm=sdd, pixel_mm=pixel) for s in spots])
    spec = np.array([_shadow_px((0.01, -0.02, sod), s, sdd_mm=sdd, pixel_mm=pixel) for s in spots])
    sx, sy = spot_shift_from_wire(
        wire[:, 0], wire[:, 1], pixel_mm=pixel, sdd_mm=sdd, wire_z_mm=z_wire, reference="first"
    )
    np.testing.assert_allclose(sx, spots[:, 0], atol=1e-12)
    np.testing.assert_allclose(sy, spots[:, 1], atol=1e-12)
    dx, dy = specimen_shift_px(sx, sy, pixel_mm=pixel, sdd_mm=sdd, sod_mm=sod)
    np.testing.assert_allclose(dx, spec[:, 0] - spec[0, 0], atol=1e-9)
    np.testing.assert_allclose(dy, spec[:, 1] - spec[0, 1], atol=1e-9)
    # signs: a spot moved right moves shadows left; a spot moved up moves them down (rows +)
    assert dx[1] < 0 and wire[1, 0] < wire[0, 0]
    assert dy[2] > 0 and wire[2, 1] > wire[0, 1]


def test_spot_shift_hand_calculation():
    # pixel 50 um, SDD 500 mm; wire at 250 mm (M_w = 2), specimen axis at 5 mm (M_s = 100)
    x = np.array([100.0, 100.2, 99.9])
    y = np.array([50.0, 50.0, 50.3])
    sx, sy = spot_shift_from_wire(
        x, y, pixel_mm=0.05, sdd_mm=500.0, wire_z_mm=250.0, reference="first"
    )
    # s = -dx * pixel / (M_w - 1) horizontally, +dy * pixel / (M_w - 1) vertically
    np.testing.assert_allclose(sx, [0.0, -0.010, 0.005], atol=1e-12)
    np.testing.assert_allclose(sy, [0.0, 0.0, 0.015], atol=1e-12)
    dx, dy = specimen_shift_px(sx, sy, pixel_mm=0.05, sdd_mm=500.0, sod_mm=5.0)
    # the specimen moves (M_s - 1) / (M_w - 1) = 99 times as far as the wire shadow
    np.testing.assert_allclose(dx, [0.0, 19.8, -9.9], atol=1e-9)
    np.testing.assert_allclose(dy, [0.0, 0.0, 29.7], atol=1e-9)
    # the median as reference
    mx, _ = spot_shift_from_wire(x, y, pixel_mm=0.05, sdd_mm=500.0, wire_z_mm=250.0)
    np.testing.assert_allclose(mx, [0.0, -0.010, 0.005], atol=1e-12)  # median of x is 100.0
    # given reference positions (x, y)
    gx, gy = spot_shift_from_wire(
        x, y, pixel_mm=0.05, sdd_mm=500.0, wire_z_mm=250.0, reference=(100.0, 50.0)
    )
    np.testing.assert_allclose(gx, sx, atol=1e-12)
    np.testing.assert_allclose(gy, sy, atol=1e-12)
    with pytest.raises(ValueError, match="reference"):
        spot_shift_from_wire(x, y, pixel_mm=0.05, sdd_mm=500.0, wire_z_mm=250.0, reference="mean")
    with pytest.raises(ValueError, match="wire_z_mm"):
        spot_shift_from_wire(x, y, pixel_mm=0.05, sdd_mm=500.0, wire_z_mm=600.0)
    with pytest.raises(ValueError, match="sod_mm"):
        specimen_shift_px(sx, sy, pixel_mm=0.05, sdd_mm=500.0, sod_mm=0.0)


# --------------------------------------------------------------------------------------------
# shifting and registration
# --------------------------------------------------------------------------------------------


def _blob_image(rows=48, cols=64):
    yy, xx = np.mgrid[:rows, :cols]
    img = np.exp(-((xx - 30.0) ** 2 + (yy - 22.0) ** 2) / (2 * 4.0**2))
    img += 0.5 * np.exp(-((xx - 38.0) ** 2 + (yy - 28.0) ** 2) / (2 * 2.5**2))
    return img


def test_shift_sign_and_round_trip():
    img = _blob_image()
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]

    def centroid(a):
        return (a * xx).sum() / a.sum(), (a * yy).sum() / a.sum()

    cx, cy = centroid(img)
    for method in ("fourier", "spline"):
        out = shift_projections(img, 2.5, -1.25, method=method)
        assert out.dtype == np.float32 and out.shape == img.shape
        ox, oy = centroid(out)
        assert ox - cx == pytest.approx(2.5, abs=0.01)  # to larger columns
        assert oy - cy == pytest.approx(-1.25, abs=0.01)  # up
    stack = np.stack([img, img[::-1], img[:, ::-1]])
    dx, dy = np.array([0.3, -2.7, 1.55]), np.array([-0.45, 1.2, 2.9])
    back = shift_projections(shift_projections(stack, dx, dy), -dx, -dy)
    assert np.abs(back - stack).max() < 1e-4
    back_s = shift_projections(
        shift_projections(stack, dx, dy, method="spline"), -dx, -dy, method="spline"
    )
    assert np.abs(back_s - stack).max() < 0.02
    with pytest.raises(ValueError, match="method"):
        shift_projections(stack, dx, dy, method="linear")


def test_register_projections_recovers_sub_pixel_shifts():
    rng = np.random.default_rng(11)
    shifts = rng.uniform(-3.0, 3.0, (8, 2))
    shifts[0] = 0.0
    blobs = [(x0, y0 * 0.6, z0, a, b * 0.6, c, mu) for x0, y0, z0, a, b, c, mu in BLOBS]
    stack = np.stack(
        [_projection(0.3, (COLS - 1) / 2 + sx, blobs=blobs, dy=sy) for sx, sy in shifts]
    )
    stack += rng.normal(0.0, 0.005, stack.shape)
    for reference in ("first", "previous"):
        dx, dy = register_projections(stack, reference=reference)
        assert np.abs(dx - shifts[:, 0]).max() < 0.05, (reference, dx - shifts[:, 0])
        assert np.abs(dy - shifts[:, 1]).max() < 0.05, (reference, dy - shifts[:, 1])
    dx, dy = register_projections(stack, reference=stack[0], roi=(slice(4, 60), slice(8, 88)))
    assert np.abs(dx - shifts[:, 0]).max() < 0.05
    aligned = shift_projections(stack, -dx, -dy)
    assert np.abs(aligned - aligned[0])[:, 8:-8, 8:-8].max() < 0.1
    # the pairwise estimator with phase normalisation also finds a pure shift
    ddx, ddy = phase_correlation_shift(stack[0], stack[3], normalization="phase")
    assert ddx == pytest.approx(shifts[3, 0], abs=0.1)
    assert ddy == pytest.approx(shifts[3, 1], abs=0.1)


# --------------------------------------------------------------------------------------------
# rotation axis
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis_col", [(COLS - 1) / 2, 50.3, 44.77, 40.1])
def test_center_of_rotation_from_a_0_180_pair(axis_col):
    rng = np.random.default_rng(int(axis_col * 10))
    p0 = _projection(0.0, axis_col)
    p180 = _projection(np.pi, axis_col)
    assert center_of_rotation_180(p0, p180) == pytest.approx(axis_col, abs=0.02)
    n0 = p0 + rng.normal(0.0, 0.01, p0.shape)
    n180 = p180 + rng.normal(0.0, 0.01, p0.shape)
    assert center_of_rotation_180(n0, n180) == pytest.approx(axis_col, abs=0.1)
    # transmission instead of -log, and a band of rows, both still within the brief's 0.25 px
    assert center_of_rotation_180(np.exp(-n0), np.exp(-n180)) == pytest.approx(axis_col, abs=0.1)
    assert center_of_rotation_180(n0, n180, rows=slice(24, 40)) == pytest.approx(axis_col, abs=0.25)


def test_center_convention_is_column_index_with_centre_at_n_minus_1_over_2():
    n = 11
    p = np.zeros(n)
    p[2] = 1.0
    # a point at column 2 turns to column 8: mirror about 5 = (n - 1) / 2
    q = np.zeros(n)
    q[8] = 1.0
    prof0 = ndimage.gaussian_filter1d(np.pad(p, 10), 1.0)
    prof180 = ndimage.gaussian_filter1d(np.pad(q, 10), 1.0)
    assert center_of_rotation_180(prof0, prof180) == pytest.approx(5.0 + 10, abs=1e-3)


def _fbp(sino, angles, center):
    """A small parallel-beam FBP for the test (Ram-Lak filter, linear interpolation); the
    image is centred on the axis at column ``center``."""
    n_ang, n = sino.shape
    pad = 4 * n
    ramp = np.abs(np.fft.fftfreq(pad))
    filt = np.fft.ifft(np.fft.fft(sino, pad, axis=1) * ramp, axis=1).real[:, :n]
    g = np.arange(n) - (n - 1) / 2.0
    xx, yy = np.meshgrid(g, g)
    img = np.zeros((n, n))
    cols = np.arange(n)
    for k, th in enumerate(angles):
        u = xx * np.cos(th) + yy * np.sin(th) + center
        img += np.interp(u, cols, filt[k], left=0.0, right=0.0)
    return img * np.pi / n_ang


@pytest.mark.parametrize("metric", ["entropy", "negativity"])
def test_center_of_rotation_search_with_a_caller_supplied_reconstruction(metric):
    angles = np.linspace(0.0, np.pi, 120, endpoint=False)
    true_c = 33.3
    blobs = [(x0, 0.0, z0, a, 40.0, c, mu) for x0, _y, z0, a, _b, c, mu in BLOBS]
    sino = np.stack([_projection(t, true_c, blobs=blobs, rows=1, cols=64)[0] for t in angles])
    sino += np.random.default_rng(1).normal(0.0, 0.005, sino.shape)
    cand = np.arange(29.0, 38.01, 0.5)
    best, scores = center_of_rotation_search(sino, angles, cand, _fbp, metric=metric)
    assert scores.shape == cand.shape
    assert abs(best - true_c) < 0.3, (best, scores)
    assert cand[np.argmin(scores)] in (33.0, 33.5)


@pytest.mark.parametrize("tilt_deg", [0.8, -1.5])
def test_axis_tilt_from_a_0_180_pair(tilt_deg):
    phi = np.deg2rad(tilt_deg)
    c0, rmid = 49.2, (ROWS - 1) / 2
    p0 = ndimage.gaussian_filter(_projection(0.3, c0), 0.7)
    # parallel beam: the 180 degree projection is the 0 degree one reflected across the
    # (tilted) axis line in the detector plane
    d = np.array([np.cos(phi), np.sin(phi)])  # (row, column) direction of the axis
    refl = 2.0 * np.outer(d, d) - np.eye(2)
    o = np.array([rmid, c0])
    p180 = ndimage.affine_transform(p0, refl, offset=o - refl @ o, order=3, mode="constant")
    tilt, centre = axis_tilt(p0, p180)
    assert np.rad2deg(tilt) == pytest.approx(tilt_deg, abs=0.05)
    assert centre == pytest.approx(c0, abs=0.05)
    # without tilt: zero
    q180 = ndimage.affine_transform(
        p0, np.diag([1.0, -1.0]), offset=[0.0, 2 * c0], order=3, mode="constant"
    )
    tilt0, centre0 = axis_tilt(p0, q180)
    assert abs(np.rad2deg(tilt0)) < 0.02
    assert centre0 == pytest.approx(c0, abs=0.05)
