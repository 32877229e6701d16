"""reconstruct_ct for laminography runs (tilt from the metadata) and photon counts: the same
chain hands the run's geometry to nanoct.recon.laminography and nanoct.recon.poisson."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.recon.lamino_phantoms import box_projections, box_volume, chip_boxes
from nanoct.recon.laminography import LaminoGeometry, fbp_lamino
from nanoct.recon.pipeline import reconstruct_ct
from nanoct.recon.poisson import reconstruct_counts

SOD, SDD, PIXEL_UM, N = 20.0, 200.0, 100.0, 48


def _run(tilt_deg: float, n_angles: int = 60):
    geom = LaminoGeometry(tilt_deg, PIXEL_UM * 1e-3, SOD, SDD)
    angles = np.arange(n_angles) * 2 * np.pi / n_angles
    boxes = chip_boxes(0.3, mu_substrate=2.0, mu_metal=20.0)
    lines = box_projections(boxes, angles, geom, (N, N))
    md = {
        "geometry": {
            "sod_mm": SOD,
            "sdd_mm": SDD,
            "detector_pixel_um": PIXEL_UM,
            "detector_shape": [N, N],
            "tilt_deg": tilt_deg,
        }
    }
    return geom, angles, boxes, lines, md


def _chain(data, angles, flats, md, **kw):
    n = data.shape[0]
    times = np.arange(n) + 1.0
    return reconstruct_ct(data, np.rad2deg(angles), times, flats, [0.0, n + 1.0], None, None, md,
                          drift_correction=False, **kw)  # fmt: skip


def test_a_tilted_run_is_reconstructed_by_the_laminographic_fbp():
    geom, angles, boxes, lines, md = _run(30.0)
    i0 = 1000.0
    flats = np.full((2, N, N), i0, np.float32)
    vol, info = _chain(i0 * np.exp(-lines), angles, flats, md, algorithm="auto",
                       volume_shape=(24, N, N))  # fmt: skip
    assert info["algorithm"] == "fdk" and info["geometry"]["tilt_deg"] == 30.0
    direct = fbp_lamino(lines, angles, geom, volume_shape=(24, N, N))
    np.testing.assert_allclose(vol, direct, atol=1e-4 * float(np.abs(direct).max()))
    truth = box_volume(boxes, (24, N, N), geom.voxel_mm)
    # (a tilted full turn misses a cone of frequencies about the axis: the slab's mean)
    assert np.corrcoef(vol.ravel(), truth.ravel())[0, 1] > 0.7


def test_counts_below_20_per_pixel_go_to_the_poisson_method():
    geom, angles, _, lines, md = _run(30.0, 24)
    md["detector"] = {"counting": True}
    b = 12.0
    counts = np.random.default_rng(1).poisson(b * np.exp(-lines)).astype(np.float64)
    flats = np.full((2, N, N), b)
    vol, info = _chain(counts, angles, flats, md, algorithm="auto", volume_shape=(12, N, N))
    assert info["counting"] and info["algorithm"] == "poisson-ml"
    assert info["counts_mean"] == pytest.approx(counts.mean())
    assert info["fixed_pattern_kept"] == 0.0  # identical bright fields: no pattern to keep
    ref = reconstruct_counts(counts, b, angles, geom, algorithm="poisson-ml",
                             volume_shape=(12, N, N))  # fmt: skip
    np.testing.assert_allclose(vol, ref.volume, rtol=1e-5, atol=1e-5)
    # binned 2 x 2 the same counts are ~48 per pixel: FDK-type reconstruction of -log
    _, info = _chain(counts, angles, flats, md, algorithm="auto", bin_factor=2,
                     volume_shape=(6, N // 2, N // 2))  # fmt: skip
    assert info["algorithm"] == "fdk" and info["counts_mean"] > 20
    assert info["geometry"]["pixel_mm"] == pytest.approx(2 * PIXEL_UM * 1e-3)


@pytest.mark.parametrize(
    ("tilt", "counting", "kwargs", "match"),
    [
        (30.0, False, {"algorithm": "fbp"}, r"algorithm='fbp' .* tilt_deg=30.0"),
        (0.0, False, {"algorithm": "poisson-ml"}, r"'poisson-ml' needs photon counts"),
        (0.0, False, {"crop_rows": 47}, r"crop_rows=47: keeping the central rows of 48"),
        (0.0, False, {"crop_rows": 0}, r"crop_rows=0 must be an integer in \[1, 48\]"),
        (0.0, False, {"bin_factor": 5}, r"bin_factor=5 must divide the \(cropped\) detector"),
        (0.0, False, {"paganin_delta_beta": 80.0}, r"give both \(phase retrieval\) or neither"),
        (0.0, True, {"blank_smooth_px": 0.0}, r"blank_smooth_px=0.0 must be > 0"),
        (95.0, False, {}, r"tilt_deg=95.0 is outside \[-89.0, 89.0\]"),
    ],
)
def test_bad_input(tilt, counting, kwargs, match):
    md = {"geometry": {"sod_mm": SOD, "sdd_mm": SDD, "detector_pixel_um": PIXEL_UM,
                       "detector_shape": [N, N], "tilt_deg": tilt},
          "detector": {"counting": counting}}  # fmt: skip
    data = np.full((4, N, N), 10.0)
    with pytest.raises(ValueError, match=match):
        _chain(data, np.linspace(0, 2 * np.pi, 4, endpoint=False), np.full((2, N, N), 12.0), md,
               **kwargs)  # fmt: skip
