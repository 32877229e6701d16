"""recon.incremental: live FDK of chosen slices equals the offline chain, piece by piece and as
a whole (flat refinement, drift correction, closing darks, re-reading what changed)."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.recon.alignment import shift_projections
from nanoct.recon.fdk import fdk
from nanoct.recon.incremental import (
    IncrementalCT,
    SliceBackprojector,
    flat_denominator,
    normalise_projection,
    odd_fast_len,
    shift_pads,
    shift_rows,
)
from nanoct.recon.phantoms import ellipsoid_cone_projections
from nanoct.recon.pipeline import reconstruct_ct
from nanoct.recon.preprocess import flat_field, minus_log

GEO = {"sod_mm": 20.0, "sdd_mm": 100.0, "pixel_mm": 0.5, "offset_u_mm": 0.2}
ROWS, COLS, N = 40, 48, 48
#: ellipsoids (x, y, z, a, b, c, mu) in mm, 1/mm
PHANTOM = [
    (0.0, 0.0, 0.0, 1.6, 1.4, 1.5, 0.4),
    (0.4, -0.3, 0.2, 0.5, 0.6, 0.7, 0.6),
    (-0.6, 0.5, -0.4, 0.3, 0.3, 0.4, -0.3),
]


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.ptp(b))


# ---------------------------------------------------------------------------- building blocks
def test_odd_fast_len():
    assert [odd_fast_len(n) for n in (1, 2, 8, 14, 100)] == [1, 3, 9, 15, 105]


def test_shift_rows_equals_shift_projections():
    rng = np.random.default_rng(1)
    stack = rng.normal(size=(4, 40, 37)).cumsum(axis=2).astype(np.float32)
    dx, dy = rng.normal(size=4) * 1.7, rng.normal(size=4) * 2.3
    ref = shift_projections(stack, dx, dy)
    pads = shift_pads(dx, dy)
    for i in range(4):
        # few rows: the closed-form row operator; all 40: the FFT along the columns
        for rows in (slice(0, 40), slice(11, 17), [0, 5, 39]):
            got = shift_rows(stack[i], dx[i], dy[i], rows, pads=pads)
            np.testing.assert_allclose(got, ref[i][rows], rtol=0, atol=2e-5)
    # no shift: the rows themselves, as shift_projections leaves them
    np.testing.assert_array_equal(shift_rows(stack[0], 0.0, 0.0, slice(3, 6)), stack[0, 3:6])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dx_px": np.nan}, "must be finite"),
        ({"rows": [0, 30]}, r"rows must lie in \[0, 30\)"),
        ({"pads": (1, 1), "dy_px": 3.0}, "must be at least the shift"),
    ],
)
def test_shift_rows_rejects_bad_input(kwargs, match):
    args = {"image": np.zeros((30, 20)), "dx_px": 0.5, "dy_px": 0.5, "rows": slice(0, 3)}
    with pytest.raises(ValueError, match=match):
        shift_rows(**(args | kwargs))


def test_slice_backprojector_sums_to_fdk():
    angles = np.arange(N) * 2 * np.pi / N
    lines = ellipsoid_cone_projections(PHANTOM, angles, ROWS, COLS, **GEO)
    for slices in ([20], [2, 33], slice(0, ROWS, 9)):
        ref = fdk(lines, angles, **GEO, slices=slices)
        bp = SliceBackprojector(**GEO, detector_shape=(ROWS, COLS), slices=slices, n_angles=N)
        acc = bp.empty()
        for a in range(N):
            bp.add(lines[a][bp.rows], angles[a], acc)
        assert _rel_err(acc, ref) < 1e-5, slices
    # the central slice needs a few detector rows only
    bp = SliceBackprojector(**GEO, detector_shape=(ROWS, COLS), slices=20, n_angles=N)
    assert bp.n_band_rows <= 6


def test_slice_backprojector_rejects_a_volume_reaching_the_source():
    with pytest.raises(ValueError, match="reaches the source"):
        SliceBackprojector(**GEO, detector_shape=(ROWS, COLS), slices=0, n_angles=N,
                           volume_shape=(ROWS, 400, 400), voxel_mm=0.1)  # fmt: skip
    with pytest.raises(ValueError, match="n_angles=0"):
        SliceBackprojector(**GEO, detector_shape=(ROWS, COLS), slices=0, n_angles=0)


def test_normalisation_matches_flat_field_and_minus_log():
    rng = np.random.default_rng(2)
    flats = rng.uniform(900, 1100, (2, 6, 7)).astype(np.float32)
    dark = rng.uniform(90, 110, (6, 7))
    proj = rng.uniform(95, 1000, (1, 6, 7)).astype(np.float32)
    proj[0, 0, 0] = 50.0  # below the dark: clipped by -log's floor
    ref = minus_log(flat_field(proj, [1.0], flats, [0.0, 4.0], dark[None],
                               flat_blocks=[0, 1]))  # fmt: skip
    blocks = [(f.astype(np.float64) - dark).astype(np.float32) for f in flats]
    lines, n_clip = normalise_projection(proj[0], dark, flat_denominator(*blocks, 0.25))
    np.testing.assert_allclose(lines, ref[0], rtol=1e-6, atol=1e-6)
    assert n_clip == 1


# ---------------------------------------------------------------------------- whole scans
def _scan(*, drift: bool, darks_after: bool, noise: bool, nan_wire: int | None = None,
          spikes: bool = False, seed: int = 0):  # fmt: skip
    """A synthetic ct_scan: darks, 4 flat blocks with a drifting, changing flat, projections
    of the phantom between them (raw detector units), recorded wire positions."""
    rng = np.random.default_rng(seed)
    angles_deg = np.arange(N) * 360.0 / N
    lines = ellipsoid_cone_projections(PHANTOM, np.deg2rad(angles_deg), ROWS, COLS, **GEO)
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    dark = 100.0 + 5.0 * np.sin(xx / 7.0)
    t_end = 2.0 * N

    def flat_at(t):  # flux drifts by 6 % and its shape changes across the scan
        return 2000.0 * (1 + 0.06 * t / t_end) * (1 + 0.03 * np.cos(yy / 9.0 + t / 30.0))

    def frame(mean):
        img = rng.poisson(mean).astype(np.float32) if noise else mean.astype(np.float32)
        return img

    seq = [("dark", frame(dark), None, None) for _ in range(3)]
    t = 1.0
    proj_t, flat_t, flat_b = [], [], []
    for i in range(N):
        if i % 16 == 0:
            for _ in range(2):
                seq.append(("flat", frame(flat_at(t)), t, i // 16))
                flat_t.append(t)
                flat_b.append(i // 16)
                t += 0.5
        raw = dark + (flat_at(t) - dark) * np.exp(-lines[i])
        seq.append(("proj", frame(raw), t, i))
        proj_t.append(t)
        t += 2.0
    for _ in range(2):
        seq.append(("flat", frame(flat_at(t)), t, 3))
        flat_t.append(t)
        flat_b.append(3)
        t += 0.5
    if darks_after:
        seq += [("dark", frame(dark), None, None) for _ in range(3)]
    wx = np.full(N, 20.0)
    wy = np.full(N, 12.0)
    if drift:
        wx += 0.8 * np.arange(N) / N + rng.normal(0, 0.02, N)
        wy -= 0.5 * np.arange(N) / N + rng.normal(0, 0.02, N)
    if spikes:  # outliers that leave the median where it is
        wx[[5, 7]] += [0.3, 0.0]
        wx[7] = 20.0
    if nan_wire is not None:
        wx[nan_wire] = np.nan
    md = {
        "geometry": {
            "sod_mm": GEO["sod_mm"], "sdd_mm": GEO["sdd_mm"],
            "detector_pixel_um": GEO["pixel_mm"] * 1e3, "detector_shape": [ROWS, COLS],
            "detector_offset_u_mm": GEO["offset_u_mm"],
        },
        "num_angles": N,
        # regions (where the offline chain would measure the wire; here it is recorded)
        "reference_wire": {"magnification": 40.0, "regions": {
            "vertical_arm": [[0, 6], [14, 26]], "horizontal_arm": [[6, 18], [30, 40]]}},
    }  # fmt: skip
    return {"seq": seq, "md": md, "angles_deg": angles_deg, "proj_t": np.array(proj_t),
            "flat_t": np.array(flat_t), "flat_b": np.array(flat_b), "wx": wx, "wy": wy}  # fmt: skip


def _offline(scan, slices):
    seq = scan["seq"]
    proj = np.array([f for k, f, _, _ in seq if k == "proj"])
    flats = np.array([f for k, f, _, _ in seq if k == "flat"])
    darks = np.array([f for k, f, _, _ in seq if k == "dark"])
    vol, info = reconstruct_ct(
        proj, scan["angles_deg"], scan["proj_t"], flats, scan["flat_t"], scan["flat_b"],
        darks, scan["md"], wire_xy_px=(scan["wx"], scan["wy"]), slices=slices,
    )  # fmt: skip
    return vol, info


def _live(scan, slices, *, half=None):
    frames = {}
    inc = IncrementalCT(scan["md"], slices=slices, read_frame=frames.__getitem__)
    for kind, img, t, idx in scan["seq"]:
        if kind == "dark":
            inc.add_dark(img)
        elif kind == "flat":
            inc.add_flat(img, t, idx)
        else:
            frames[idx] = img
            inc.add_projection(img, scan["angles_deg"][idx], t,
                               wire_xy_px=(scan["wx"][idx], scan["wy"][idx]), ref=idx)  # fmt: skip
            if half is not None and inc.n_projections == N // 2:
                half.append(inc.current())
    return inc


def test_flat_refinement_alone_gives_the_offline_slices_without_rereading():
    scan = _scan(drift=False, darks_after=False, noise=True)
    slices = [8, 20, 31]
    inc = _live(scan, slices)
    unrefined = inc.current()  # the last 16 projections still use the third block alone
    assert inc.close_flat_block()  # the closing block is complete: they are refined
    refined = inc.current()
    final, info = inc.finish()
    ref, _ = _offline(scan, slices)
    assert info["reread"] == 0  # nothing global changed: the refined live sum is final
    assert info["flat_corrections"] == N  # every projection after a block was refined once
    assert _rel_err(final, ref) < 1e-5
    np.testing.assert_allclose(refined, final, rtol=0, atol=1e-6)
    assert _rel_err(unrefined, ref) > 100 * _rel_err(final, ref)


def test_drift_and_closing_darks_are_settled_by_rereading():
    scan = _scan(drift=True, darks_after=True, noise=True, seed=3)
    slices = [5, 20]
    half: list = []
    inc = _live(scan, slices, half=half)
    live_before = inc.current()
    final, info = inc.finish()
    ref, oinfo = _offline(scan, slices)
    assert info["drift_corrected"] and oinfo["drift_corrected"]
    np.testing.assert_allclose(info["shift_px"], oinfo["shift_px"] * -1, atol=1e-12)
    assert info["reread"] == N  # the median and the dark changed for every projection
    assert _rel_err(final, ref) < 1e-5
    # the live slices were close already, and half a turn showed the object
    assert _rel_err(live_before, ref) < 0.05
    corr = np.corrcoef(half[0].ravel(), final.ravel())[0, 1]
    assert corr > 0.8


def test_a_single_changed_projection_is_replaced():
    # projection 6's wire was not found: live it used projection 5's position (a spike), at
    # the end it is interpolated between 5 and 7 -- only its contribution is redone
    scan = _scan(drift=False, darks_after=False, noise=False, spikes=True, nan_wire=6)
    inc = _live(scan, [20])
    final, info = inc.finish()
    ref, _ = _offline(scan, [20])
    assert info["reread"] == 1
    assert _rel_err(final, ref) < 1e-5


def test_projections_before_any_flat_wait_for_one():
    scan = _scan(drift=False, darks_after=False, noise=False)
    seq = scan["seq"]
    flat_at = [i for i, s in enumerate(seq) if s[0] == "flat"][:2]
    first_flats = [seq[i] for i in flat_at]
    rest = [s for i, s in enumerate(seq) if i not in flat_at]
    k = next(i for i, s in enumerate(rest) if s[0] == "proj" and s[3] == 1)
    frames = {}
    inc = IncrementalCT(scan["md"], slices=[20], read_frame=frames.__getitem__)
    # projections 0 and 1 come first (their flats arrive late, with the same times)
    for kind, img, t, idx in rest[: k + 1] + first_flats + rest[k + 1 :]:
        if kind == "dark":
            inc.add_dark(img)
        elif kind == "flat":
            inc.add_flat(img, t, idx)
        else:
            frames[idx] = img
            inc.add_projection(img, scan["angles_deg"][idx], t,
                               wire_xy_px=(scan["wx"][idx], scan["wy"][idx]), ref=idx)  # fmt: skip
    final, _ = inc.finish()
    ref, _ = _offline(scan, [20])
    assert _rel_err(final, ref) < 1e-5


def test_bad_input_is_refused():
    scan = _scan(drift=False, darks_after=False, noise=False)
    inc = IncrementalCT(scan["md"], slices=[20])
    with pytest.raises(ValueError, match=r"dark frame has shape \(3, 3\)"):
        inc.add_dark(np.zeros((3, 3)))
    inc.add_flat(np.ones((ROWS, COLS)), 10.0, 0)
    inc.add_flat(np.ones((ROWS, COLS)), 5.0, 1)
    with pytest.raises(ValueError, match="is not later than the previous"):
        inc.close_flat_block()
    with pytest.raises(ValueError, match="num_angles=None"):
        IncrementalCT({"geometry": scan["md"]["geometry"]})
    with pytest.raises(ValueError, match=r"center_col=99"):
        IncrementalCT(scan["md"], center_col=99)
    tilted = {**scan["md"], "geometry": {**scan["md"]["geometry"], "tilt_deg": 30.0}}
    with pytest.raises(ValueError, match=r"tilt_deg=30\.0: live reconstruction is for the circ"):
        IncrementalCT(tilted)
    assert IncrementalCT({**scan["md"], "detector": {"counting": True}}).counting  # a preview
    assert not IncrementalCT(scan["md"]).counting
    empty = IncrementalCT(scan["md"])
    empty.add_projection(np.ones((ROWS, COLS)), 0.0, 1.0, wire_xy_px=(1.0, 1.0))
    with pytest.raises(ValueError, match="no flats"):
        empty.finish()
