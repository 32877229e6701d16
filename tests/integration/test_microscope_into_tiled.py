"""The X-ray microscope's acceptance: its plans through a real RunEngine into the real Tiled
server, every result read back from Tiled with the stock client.

Issue 3's acceptance: the flux at 200 nA and its linearity in current; the noise-edge spread
before and after equalisation and the open-beam flat field that follows it; dark counts above
and below the noise edge; counter saturation; the magnification from the 6 um fibres.
"""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter

from nanoct.devices import MicroscopeInstabilities, xray_microscope
from nanoct.plans import (
    calibrate_magnification,
    equalize_thresholds,
    measure_flux,
    radiograph,
    threshold_scan,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tiled_server, tmp_path):
    return tiled_server.data_dir / tmp_path.name


@pytest.fixture
def run_plan(runs_container):
    """Run a plan into Tiled; return (result, run) after checking the stored analysis."""

    def _run(plan):
        RE = RunEngine({}, call_returns_result=True)
        RE.subscribe(TiledWriter(runs_container))
        out = RE(plan)
        run = runs_container[out.run_start_uids[0]]
        assert run.metadata["stop"]["exit_status"] == "success"
        stored = run["analysis"].read()  # one request for the whole stream
        for key, value in out.plan_result.items():
            v = np.asarray(value) if value is not None else None
            if v is not None and v.dtype.kind in "biuf" and v.ndim == 0:
                got = float(np.asarray(stored[key])[0])
                assert got == pytest.approx(float(v), nan_ok=True), key
        return out.plan_result, run

    return _run


def _mic(data_dir, seed, **kw):
    kw.setdefault("instabilities", MicroscopeInstabilities.only("noise", "spot_drift"))
    return xray_microscope(seed=seed, data_dir=data_dir, **kw)


def test_flux_is_30_photons_per_mm2_s_at_1_m_with_200_nA_and_linear_in_current(data_dir, run_plan):
    mic = _mic(data_dir, seed=21, oversample=1, n_energy_bins=4)
    fluxes = {}
    for na in (50.0, 200.0, 800.0):
        res, run = run_plan(measure_flux(mic, current_na=na, acquire_time_s=200.0))
        fluxes[na] = res["photons_per_mm2_s_at_1m"]
        assert res["current_na"] == na
        images = run["primary"]["medipix_image"].read()
        assert images.shape == (1, 256, 256) and images.dtype == np.uint32
        # not equalised: the pixels whose threshold sits low enough to count noise in the
        # 200 s dark at 5 keV (~15 % for a 1.3 keV dispersion) are left out
        assert 0.75 * 65536 < res["n_pixels_used"] < 65536
    assert fluxes[200.0] == pytest.approx(30.0, rel=0.2)
    per_na = np.array([fluxes[na] / na for na in fluxes])
    np.testing.assert_allclose(per_na, per_na.mean(), rtol=0.03)
    assert mic.source.current_na.get() == 200.0  # put back


def test_equalisation_shrinks_the_noise_edge_spread_and_the_flat_field_inhomogeneity(
    data_dir, run_plan
):
    mic = _mic(data_dir, seed=22, oversample=1, n_energy_bins=4)
    configured = mic.twin.detector.spec.threshold_dispersion_kev  # 1.3 keV (360 e-)
    before, run = run_plan(threshold_scan(mic, step_kev=1.0))
    assert run["primary"]["medipix_image"].read().shape == (21, 256, 256)
    edge_map = run["analysis"]["noise_edge_kev"].read()[0]
    np.testing.assert_allclose(edge_map, before["noise_edge_kev"], equal_nan=True)
    assert before["noise_edge_spread_kev"] == pytest.approx(configured, rel=0.05)
    assert before["noise_width_mean_kev"] == pytest.approx(0.507, rel=0.05)  # 140 e- ENC

    flat_kw = {"acquire_time_s": 2.0e4, "current_na": 1000.0, "thl_kev": 8.0}
    flat0, _ = run_plan(radiograph(mic, **flat_kw))

    eq, run = run_plan(equalize_thresholds(mic, step_kev=1.0, verify=False))
    trims = run["analysis"]["trim_low"].read()[0]
    np.testing.assert_array_equal(trims, mic.medipix.trim_low.get())
    np.testing.assert_array_equal(run["analysis"]["mask"].read()[0], mic.medipix.mask.get())
    assert set(np.unique(trims)) == set(range(8))
    assert eq["step_kev"] == pytest.approx(-1.0, rel=0.02)  # 1 keV per trim LSB
    assert eq["n_masked"] < 0.01 * 65536  # offsets beyond the 3-bit range only

    after, _ = run_plan(threshold_scan(mic, step_kev=1.0))
    assert before["noise_edge_spread_kev"] / after["noise_edge_spread_kev"] >= 4.0
    assert after["noise_edge_spread_kev"] == pytest.approx(eq["predicted_spread_kev"], rel=0.05)

    flat1, _ = run_plan(radiograph(mic, **flat_kw))
    assert flat0["flat_nonuniformity"] > 3.0 * flat1["flat_nonuniformity"]
    # ... and accordingly: the open-beam inhomogeneity is the threshold spread times the
    # relative slope of the integral spectrum at the threshold, measured with the beam on and
    # the specimen out (an S-curve around 8 keV)
    mic.manipulator.x.set(mic.manipulator.out_of_beam_x()).wait(60)
    s_curve, _ = run_plan(
        threshold_scan(mic, beam=True, thl_start_kev=7.5, thl_stop_kev=8.5, acquire_time_s=2e4)
    )
    slope = abs(np.log(s_curve["mean_counts"][-1] / s_curve["mean_counts"][0]))  # per keV
    for flat, scan in ((flat0, before), (flat1, after)):
        predicted = slope * scan["noise_edge_spread_kev"]
        assert flat["flat_nonuniformity"] == pytest.approx(predicted, rel=0.35)


def test_dark_counts_nothing_above_the_noise_edge_and_noise_below_it(data_dir, run_plan):
    mic = _mic(data_dir, seed=23, oversample=1, n_energy_bins=4)
    scan, _ = run_plan(threshold_scan(mic, step_kev=1.0))
    edges = scan["noise_edge_kev"]
    # 8 noise sigmas above the highest measured edge, and 1 sigma above the median edge
    quiet_thl = float(np.nanmax(edges) + 8 * scan["noise_width_mean_kev"])
    noisy_thl = float(np.nanmedian(edges) + scan["noise_width_mean_kev"])
    quiet, run = run_plan(
        radiograph(mic, acquire_time_s=1.0e4, num_darks=1, num_flats=0, thl_kev=quiet_thl)
    )
    dark = run["dark"]["medipix_image"].read()[0]
    assert dark.max() == 0 and quiet["dark"].max() == 0
    assert run["dark"].read()["medipix_image_key"].values.tolist() == [2]
    _noisy, run = run_plan(
        radiograph(mic, acquire_time_s=1.0e-3, num_darks=1, num_flats=0, thl_kev=noisy_thl)
    )
    dark = run["dark"]["medipix_image"].read()[0]
    assert (dark > 0).mean() > 0.5  # most pixels count electronic noise
    assert dark.mean() > 50


def test_the_counter_saturates_at_8001_per_frame(data_dir, run_plan):
    mic = _mic(data_dir, seed=24, oversample=1, n_energy_bins=4)
    res, run = run_plan(
        radiograph(mic, acquire_time_s=1.0e5, frames=2, current_na=1000.0, thl_kev=5.0)
    )
    image = run["primary"]["medipix_image"].read()[0]
    flat = run["flat"]["medipix_image"].read()[0]
    assert flat.max() == 2 * 8001 and image.max() == 2 * 8001
    assert (flat[~mic.medipix.mask.get()] == 2 * 8001).all()
    assert res["saturated_pixels"] > 0.99 * 65536
    assert run["primary"].read()["medipix_saturated_pixels"].values[0] == res["saturated_pixels"]


def test_calibrate_magnification_recovers_the_240_nm_pixel_on_the_fibres(data_dir, run_plan):
    mic = _mic(data_dir, seed=25, specimen="fibres")
    configured = mic.twin.object_pixel_um
    assert configured == pytest.approx(0.2409, abs=1e-4)  # the paper's geometry
    res, run = run_plan(
        calibrate_magnification(mic, acquire_time_s=600.0, current_na=1000.0, frames=2)
    )
    assert res["object_pixel_um"] == pytest.approx(configured, rel=0.03)
    assert res["magnification"] == pytest.approx(mic.twin.magnification, rel=0.03)
    assert res["n_fibres"] == 8
    stored = run["analysis"]
    np.testing.assert_allclose(stored["centres_px"].read()[0], res["centres_px"])
    t = stored["transmission"].read()[0]
    assert t.shape == (256, 256) and 0.5 < np.nanmedian(t) < 1.0
    assert run.metadata["start"]["geometry"]["object_pixel_um"] == pytest.approx(configured)
