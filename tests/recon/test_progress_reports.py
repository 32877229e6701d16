"""progress(done, total) reports of the slice-by-slice reconstructions, and through the
pipeline: they count the slices finished, end at the total, and never change the result."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.recon.fbp import fbp
from nanoct.recon.fdk import fdk
from nanoct.recon.laminography import LaminoGeometry, fbp_lamino
from nanoct.recon.pipeline import reconstruct_ct

GEO = {"sod_mm": 20.0, "sdd_mm": 80.0, "pixel_mm": 0.2}


def _proj(n_angles=16, rows=20, cols=24, seed=0):
    return np.random.default_rng(seed).random((n_angles, rows, cols)).astype(np.float32)


def _angles(n):
    return np.arange(n) * 2 * np.pi / n


def test_fdk_reports_each_chunk_and_the_result_is_unchanged():
    p, a = _proj(), _angles(16)
    calls: list[tuple[int, int]] = []
    got = fdk(p, a, **GEO, chunk_slices=8, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(8, 20), (16, 20), (20, 20)]
    np.testing.assert_array_equal(got, fdk(p, a, **GEO, chunk_slices=8))
    sub: list[tuple[int, int]] = []
    fdk(p, a, **GEO, slices=[3, 11, 17], progress=lambda d, t: sub.append((d, t)))
    assert sub[-1] == (3, 3)


@pytest.mark.parametrize("method", ["direct", "fourier"])
def test_fbp_reports_each_slice(method):
    p, a = _proj(12), np.arange(12) * np.pi / 12
    calls: list[tuple[int, int]] = []
    fbp(p, a, slices=[2, 5, 9], method=method, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_fbp_lamino_reports_each_chunk():
    geom = LaminoGeometry(30.0, GEO["pixel_mm"], GEO["sod_mm"], GEO["sdd_mm"])
    calls: list[tuple[int, int]] = []
    fbp_lamino(_proj(), _angles(16), geom, volume_shape=(10, 16, 16), chunk_slices=4,
               progress=lambda d, t: calls.append((d, t)))  # fmt: skip
    assert calls == [(4, 10), (8, 10), (10, 10)]


@pytest.mark.parametrize("call", [fdk, fbp])
def test_a_progress_that_is_not_callable_is_refused(call):
    kw = GEO if call is fdk else {}
    with pytest.raises(ValueError, match=r"progress must be callable as progress\(done, total\)"):
        call(_proj(), _angles(16), **kw, progress="yes")


def test_pipeline_passes_slice_progress_to_the_reconstruction():
    md = {
        "geometry": {"sod_mm": 10.0, "sdd_mm": 100.0, "detector_pixel_um": 100.0,
                     "detector_shape": [16, 24]},
        "reference_wire": None,
    }  # fmt: skip
    n = 8
    proj = 1000 * np.exp(-_proj(n, 16, 24))
    stages: list[str] = []
    calls: list[tuple[int, int]] = []
    reconstruct_ct(
        proj, np.arange(n) * 360 / n, np.arange(n, dtype=float), np.full((2, 16, 24), 1000.0),
        [-1.0, n + 1.0], [0, 1], None, md, drift_correction=False, slices=[4, 5, 6],
        progress=stages.append, slice_progress=lambda d, t: calls.append((d, t)),
    )  # fmt: skip
    assert stages[-1] == "reconstruct"
    assert calls and calls[-1] == (3, 3)
    with pytest.raises(ValueError, match="progress must be callable"):
        reconstruct_ct(
            proj, np.arange(n) * 360 / n, np.arange(n, dtype=float),
            np.full((2, 16, 24), 1000.0), [-1.0, n + 1.0], [0, 1], None, md,
            drift_correction=False, slice_progress=3,
        )  # fmt: skip
