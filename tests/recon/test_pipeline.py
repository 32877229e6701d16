"""recon.pipeline input checks and the resolution additions (edge width, MTF, recognisability)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from nanoct.recon.pipeline import ct_geometry, reconstruct_ct, wire_regions
from nanoct.recon.resolution import (
    detail_recognisability,
    edge_width_10_90,
    line_spread_from_edge,
    mtf_from_lsf,
)

MD = {
    "geometry": {
        "sod_mm": 10.0,
        "sdd_mm": 100.0,
        "magnification": 10.0,
        "detector_pixel_um": 100.0,
        "detector_shape": [16, 24],
    },
    "reference_wire": None,
}


def _inputs(n=8):
    rng = np.random.default_rng(0)
    p = 1000 + rng.normal(0, 1, (n, 16, 24))
    return dict(
        projections=p,
        angles_deg=np.arange(n) * 360 / n,
        proj_times_s=np.arange(n, dtype=float),
        flats=np.full((2, 16, 24), 1000.0),
        flat_times_s=[-1.0, n + 1.0],
        flat_blocks=[0, 1],
        darks=np.zeros((1, 16, 24)),
        metadata=MD,
    )


def test_reconstruct_ct_runs_without_a_wire_when_no_correction_is_asked():
    vol, info = reconstruct_ct(**_inputs(), drift_correction=False, slices=[7, 8])
    assert vol.shape == (2, 24, 24)
    assert np.abs(vol).max() < 1.0
    assert info["geometry"]["center_col"] == pytest.approx(11.5)
    assert info["geometry"]["voxel_mm"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"flats": None}, "no flats"),
        ({"flats": np.zeros((0, 16, 24))}, "no flats"),
        ({"angles_deg": np.arange(5.0)}, "angles_deg has 5 entries, expected 8"),
        ({"proj_times_s": np.arange(7.0)}, "proj_times_s has 7 entries"),
        ({"flat_times_s": [0.0]}, "flat_times_s has 1 entries"),
        ({"flat_blocks": [0, 1, 2]}, "flat_blocks has 3 entries"),
        ({"metadata": {}}, "no 'geometry'"),
        ({"metadata": {"geometry": {"sod_mm": 10.0}}}, "no 'sdd_mm'"),
        (
            {"metadata": {"geometry": {**MD["geometry"], "sod_mm": 200.0, "magnification": None}}},
            "0 < sod < sdd",
        ),
        (
            {"metadata": {"geometry": {**MD["geometry"], "magnification": 5.0}}},
            "magnification=5.0",
        ),
        (
            {"metadata": {"geometry": {**MD["geometry"], "detector_shape": [32, 24]}}},
            r"detector_shape=\[32, 24\]",
        ),
    ],
)
def test_bad_input_is_named(change, match):
    kw = _inputs()
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        reconstruct_ct(**kw, drift_correction=False)


def test_drift_correction_without_a_wire_is_refused():
    with pytest.raises(ValueError, match="reference_wire"):
        reconstruct_ct(**_inputs(), drift_correction=True)


def test_fbp_method_is_passed_to_fbp_and_checked():
    kw = _inputs(32)
    u = np.arange(24) - 11.5  # a centred disc of radius 6 voxels, mu 20/mm: the same at all angles
    line = 2 * np.sqrt(np.clip(36 - u**2, 0, None)) * 0.01 * 20.0
    kw["projections"] = np.broadcast_to(1000 * np.exp(-line), (32, 16, 24)).copy()
    direct, info = reconstruct_ct(**kw, drift_correction=False, algorithm="fbp", slices=[8])
    fourier, info_f = reconstruct_ct(
        **kw, drift_correction=False, algorithm="fbp", slices=[8], fbp_method="fourier"
    )
    assert info["fbp_method"] == "direct" and info_f["fbp_method"] == "fourier"
    assert not np.array_equal(direct, fourier)  # another backprojector ran
    rms = np.sqrt(np.mean((direct - fourier) ** 2))
    assert rms < 0.1 * np.sqrt(np.mean(direct**2))
    with pytest.raises(ValueError, match="fbp_method='gridrec' is not one of"):
        reconstruct_ct(**kw, drift_correction=False, algorithm="fbp", fbp_method="gridrec")


def test_unknown_algorithm():
    with pytest.raises(ValueError, match="algorithm='art'"):
        reconstruct_ct(**_inputs(), drift_correction=False, algorithm="art")


def test_axis_offset_moves_the_centre():
    g = ct_geometry({"geometry": {**MD["geometry"], "axis_x_mm": 0.01}})
    # offset_u = -axis_x * sdd / sod = -0.1 mm = -1 pixel: the axis projects 1 column right
    assert g["offset_u_mm"] == pytest.approx(-0.1)
    assert g["center_col"] == pytest.approx(12.5)


def test_wire_regions_are_the_recorded_ones():
    wire = {"regions": {"vertical_arm": [[8, 28], [9, 104]], "horizontal_arm": [[0, 91], [71, 91]]}}
    assert wire_regions(wire, (512, 512)) == (
        (slice(8, 28), slice(9, 104)),
        (slice(0, 91), slice(71, 91)),
    )
    with pytest.raises(ValueError, match="not on the"):
        wire_regions(
            {
                "regions": {
                    "vertical_arm": [[8, 28], [9, 104]],
                    "horizontal_arm": [[0, 91], [500, 600]],
                }
            },
            (512, 512),
        )
    with pytest.raises(ValueError, match="no 'regions'"):
        wire_regions({"row": 1.0}, (512, 512))


# ---- resolution additions ----------------------------------------------------------------
def _gauss_edge(sigma, n=101, centre=50.3):
    x = np.arange(n)
    return 0.5 * (1 + erf((x - centre) / (np.sqrt(2) * sigma)))


@pytest.mark.parametrize(("sigma", "rel"), [(1.0, 0.07), (2.5, 0.02), (4.0, 0.02)])
def test_edge_width_10_90_of_a_gaussian_edge(sigma, rel):
    # 10-90 % of an erf edge is 2 * 1.2816 sigma; linear interpolation between samples
    # overestimates an edge ~2.5 samples wide by ~6 %
    assert edge_width_10_90(_gauss_edge(sigma)) == pytest.approx(2.5631 * sigma, rel=rel)
    assert edge_width_10_90(5 - 3 * _gauss_edge(sigma)) == pytest.approx(2.5631 * sigma, rel=rel)


def test_edge_width_needs_a_step():
    with pytest.raises(ValueError, match="no step"):
        edge_width_10_90(np.ones(20))


def test_mtf_of_a_gaussian_lsf():
    sigma, pixel = 2.0, 0.5  # samples, um
    x = np.arange(-64, 65)
    f, mtf = mtf_from_lsf(np.exp(-(x**2) / (2 * sigma**2)), pixel)
    assert f[0] == 0 and f[-1] == pytest.approx(1 / (2 * pixel), rel=0.01)
    expect = np.exp(-2 * (np.pi * f * sigma * pixel) ** 2)
    np.testing.assert_allclose(mtf, expect, atol=1e-3)


def test_mtf_from_an_edge_through_line_spread():
    f, mtf = mtf_from_lsf(line_spread_from_edge(_gauss_edge(2.0)), 1.0)
    k = np.searchsorted(f, 0.1)
    assert mtf[k] == pytest.approx(np.exp(-2 * (np.pi * f[k] * 2.0) ** 2), abs=0.03)


def test_detail_recognisability_grows_with_blur_and_noise():
    rng = np.random.default_rng(1)
    quiet = rng.normal(0, 0.01, 1000)
    noisy = rng.normal(0, 0.1, 1000)
    sharp = detail_recognisability(_gauss_edge(1.0), quiet, pixel=0.5)
    blurred = detail_recognisability(_gauss_edge(3.0), quiet, pixel=0.5)
    blurred_noisy = detail_recognisability(_gauss_edge(3.0), noisy, pixel=0.5)
    assert 0.5 <= sharp < blurred < blurred_noisy
    # contrast 1, noise 0.01, Rose 5: MTF(f) = 0.05 -> f = sqrt(ln 20 / 2) / (pi sigma)
    fc = np.sqrt(np.log(20) / 2) / (np.pi * 3.0 * 0.5)
    assert blurred == pytest.approx(1 / (2 * fc), rel=0.1)
    assert detail_recognisability(_gauss_edge(1.0), rng.normal(0, 1, 100), pixel=1) == np.inf


def test_filled_counting_pixels_never_go_below_zero():
    """uniform_filter's running sums leave ~-1e-13 beside large counts; a filled background
    must stay >= 0 or the counting model refuses it (found by a live nano-CT with darks)."""
    from scipy import ndimage

    from nanoct.recon.pipeline import _fill_pixels

    rng = np.random.default_rng(0)
    img = np.zeros((1, 64, 64))
    img[0, :, :20] = rng.random((64, 20)) * 1e3 + 0.1
    bad = np.zeros((64, 64), bool)
    bad[10:60:3, 30:60:3] = True
    raw = ndimage.uniform_filter(img[0] * ~bad, 5, mode="nearest")
    assert raw[bad].min() < 0  # the rounding this guards against
    filled = _fill_pixels(img, bad)
    assert filled.min() >= 0.0
    np.testing.assert_array_equal(filled[0][~bad], img[0][~bad])
