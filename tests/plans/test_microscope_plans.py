"""Microscope plans: the analysis functions on synthetic data, validation before anything
happens, checkpoints, metadata and the instrument put back afterwards (real RunEngine; the
acceptance runs through Tiled are in tests/integration/test_microscope_into_tiled.py)."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine

from nanoct.devices import MicroscopeInstabilities, xray_microscope
from nanoct.plans import (
    calibrate_magnification,
    equalize_thresholds,
    measure_flux,
    radiograph,
    threshold_scan,
)
from nanoct.recon.microscope_analysis import (
    choose_trims,
    excess_nonuniformity,
    fibre_pitch_px,
    flux_at_distance,
    noise_edges,
)


# ---- analysis ----------------------------------------------------------------------------
def _noise_cube(edges: np.ndarray, thl: np.ndarray, sigma: float = 0.5, peak: float = 1000.0):
    return peak * np.exp(-((thl[:, None, None] - edges[None]) ** 2) / (2 * sigma**2))


def test_noise_edges_find_the_centre_and_width_of_each_noise_peak():
    rng = np.random.default_rng(0)
    edges = rng.normal(0.3, 1.3, size=(16, 16))
    thl = np.arange(-10.0, 10.01, 0.5)
    cube = rng.poisson(_noise_cube(edges, thl)).astype(float)
    cube[:, 0, 0] = 0  # a dead (or masked) pixel
    edge, width = noise_edges(thl, cube)
    good = np.isfinite(edge)
    assert not good[0, 0] and good.sum() == 255
    np.testing.assert_allclose(edge[good], edges[good], atol=0.03)
    np.testing.assert_allclose(width[good], 0.5, atol=0.03)
    # a peak cut off by the scan range is not measured
    cut = _noise_cube(np.full((1, 1), 9.8), thl)
    assert np.isnan(noise_edges(thl, cut)[0][0, 0])
    with pytest.raises(ValueError, match="need thl_kev"):
        noise_edges(thl[:5], cube)


def test_choose_trims_aligns_edges_and_flags_the_unreachable():
    rng = np.random.default_rng(1)
    offsets = rng.normal(0.0, 1.3, size=(64, 64))
    offsets[0, 0] = 6.0  # beyond the 3-bit range
    step = -1.0  # one trim LSB lowers the edge by 1 keV

    def edge_at(trim):
        return offsets + step * (trim - 3.5)

    choice = choose_trims(edge_at(0), edge_at(7))
    assert choice.step_kev == pytest.approx(step)
    assert choice.target_kev == pytest.approx(np.median(offsets), abs=1e-9)
    assert choice.unreachable[0, 0] and choice.unreachable.sum() < 0.01 * offsets.size
    achieved = edge_at(choice.trims.astype(float))[~choice.unreachable]
    assert achieved.std() == pytest.approx(1.0 / np.sqrt(12.0), rel=0.1)
    assert np.abs(achieved - choice.target_kev).max() <= 0.5 + 1e-9
    np.testing.assert_allclose(choice.predicted_edge_kev[~choice.unreachable], achieved)
    assert choice.trims.dtype == np.uint8 and choice.trims.max() <= 7
    with pytest.raises(ValueError, match="must differ"):
        choose_trims(edge_at(0), edge_at(0), trim_a=0, trim_b=0)


def test_fibre_pitch_of_a_synthetic_row_of_touching_cylinders():
    x = np.arange(256.0)
    pitch = 24.3
    centres = 128.0 + pitch * (np.arange(8) - 3.5)
    t = np.zeros_like(x)
    for c in centres:
        t += 2.0 * np.sqrt(np.clip((pitch / 2) ** 2 - (x - c) ** 2, 0.0, None))
    profile = np.exp(-0.004 * t)
    found, where = fibre_pitch_px(profile)
    assert found == pytest.approx(pitch, rel=2e-3)
    # the inner fibres' centres are exact; the outer two (neighbour on one side only, left
    # out of the pitch) are pulled towards it by the smoothing
    np.testing.assert_allclose(where[1:-1], centres[1:-1], atol=0.1)
    np.testing.assert_allclose(where, centres, atol=0.3)
    with pytest.raises(ValueError, match=r"no periodic fibre pattern|no fibre|found"):
        fibre_pitch_px(np.ones(256))


def test_flux_and_nonuniformity_formulas():
    at_ref, at_det = flux_at_distance(
        0.5, exposure_s=10.0, pixel_mm=0.055, efficiency=0.5, detector_distance_mm=2000.0
    )
    assert at_det == pytest.approx(0.5 / (10 * 0.055**2 * 0.5))
    assert at_ref == pytest.approx(4 * at_det)
    with pytest.raises(ValueError, match="efficiency=0"):
        flux_at_distance(1.0, exposure_s=1, pixel_mm=0.055, efficiency=0, detector_distance_mm=1)
    rng = np.random.default_rng(2)
    poisson = rng.poisson(1000.0, size=(256, 256))
    assert excess_nonuniformity(poisson) < 0.005
    gain = 1.0 + 0.05 * rng.standard_normal((256, 256))
    assert excess_nonuniformity(rng.poisson(1000.0 * gain)) == pytest.approx(0.05, rel=0.05)


# ---- plans ---------------------------------------------------------------------------------
@pytest.fixture
def mic(tmp_path):
    return xray_microscope(
        seed=3,
        data_dir=tmp_path,
        instabilities=MicroscopeInstabilities.only("noise"),
        oversample=1,
        n_energy_bins=4,
    )


def _recording_run_engine():
    RE = RunEngine({}, call_returns_result=True)
    docs: list[tuple[str, dict]] = []
    msgs: list[str] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE.msg_hook = lambda msg: msgs.append(msg.command)
    return RE, docs, msgs


@pytest.mark.parametrize(
    ("plan", "kwargs", "match"),
    [
        (radiograph, {"acquire_time_s": 0.0}, r"acquire_time_s=0.0 is outside \(0, "),
        (radiograph, {"acquire_time_s": -5.0}, r"acquire_time_s=-5.0 is outside"),
        (radiograph, {"current_na": 5000.0}, r"current_na=5000.0 is outside the Cameca SX100"),
        (measure_flux, {"voltage_kv": 80.0}, r"voltage_kv=80.0 is outside the Cameca SX100"),
        (radiograph, {"thl_kev": 9.0, "thh_kev": 7.0}, r"thh_kev=7.0 must be greater than"),
        (radiograph, {"frames": 0}, r"frames=0 must be an integer >= 1"),
        (threshold_scan, {"thl_stop_kev": 70.0}, r"thl_stop_kev=70.0 must be below the upper"),
        (threshold_scan, {"thl_start_kev": 3.0, "thl_stop_kev": 1.0}, r"must be below thl_stop"),
        (threshold_scan, {"step_kev": 0.0}, r"step_kev=0.0 is outside"),
        (equalize_thresholds, {"acquire_time_s": 0.0}, r"acquire_time_s=0.0 is outside"),
        (calibrate_magnification, {"fibre_diameter_um": -6.0}, r"fibre_diameter_um=-6.0"),
        (measure_flux, {"current_na": 0.0}, r"current_na=0.0 is outside the Cameca SX100"),
    ],
)
def test_bad_input_raises_before_any_document_or_motion(mic, plan, kwargs, match):
    RE, docs, msgs = _recording_run_engine()
    state = (mic.twin.clock.now(), mic.source.current_na.get(), mic.medipix.thl_kev.get())
    with pytest.raises(ValueError, match=match):
        RE(plan(mic, **kwargs))
    assert docs == [] and msgs == []
    assert (mic.twin.clock.now(), mic.source.current_na.get(), mic.medipix.thl_kev.get()) == state
    assert not list(mic.data_dir.rglob("*.h5"))


def test_radiograph_checkpoints_metadata_and_puts_the_instrument_back(mic):
    RE, docs, msgs = _recording_run_engine()
    x0, thl0 = mic.manipulator.x.position, mic.medipix.thl_kev.get()
    res = RE(
        radiograph(
            mic,
            acquire_time_s=300.0,
            frames=2,
            num_flats=2,
            num_darks=1,
            current_na=500.0,
            thl_kev=7.0,
            md={"sample": "fibres"},
        )
    ).plan_result
    start = next(d for n, d in docs if n == "start")
    assert start["plan_name"] == "radiograph" and start["sample"] == "fibres"
    assert start["plan_args"]["frames"] == 2 and start["instrument"] == "xray_microscope"
    assert start["geometry"]["object_pixel_um"] == pytest.approx(0.2409, abs=1e-4)
    descriptors = {d["name"] for n, d in docs if n == "descriptor"}
    assert descriptors == {"dark", "flat", "primary", "analysis"}
    keys = [
        d["data"]["medipix_image_key"]
        for n, d in docs
        if n == "event" and "medipix_image_key" in d["data"]
    ]
    assert keys == [2, 1, 1, 0]
    assert msgs.count("checkpoint") >= 4
    # the instrument as before, the results sensible: fibres absorb a few per cent
    assert mic.manipulator.x.position == x0 and mic.medipix.thl_kev.get() == thl0
    assert mic.source.current_na.get() == 200.0 and mic.source.beam_on.get() is True
    t = res["transmission"]
    assert t.shape == (256, 256) and np.nanmedian(t) == pytest.approx(0.95, abs=0.05)
    # not equalised: at 7 keV the pixels whose threshold sits > 2.4 sigma low (~0.8 %) still
    # count noise in 600 s
    assert 0 < (res["dark"] > 0).sum() < 0.015 * res["dark"].size


def test_a_failing_equalisation_gives_the_chip_its_old_trims_back(mic):
    RE, docs, _ = _recording_run_engine()
    descriptors: dict[str, str] = {}

    def interrupt(name, doc):
        """A consumer failing in the middle of the trim-7 scan aborts the run."""
        if name == "descriptor":
            descriptors[doc["uid"]] = doc["name"]
        if name == "event" and descriptors[doc["descriptor"]] == "trim_7" and doc["seq_num"] == 3:
            raise RuntimeError("interrupted")

    RE.subscribe(interrupt)
    old = mic.medipix.trim_low.get()
    with pytest.raises(RuntimeError, match="interrupted"):
        RE(equalize_thresholds(mic, step_kev=1.0))
    np.testing.assert_array_equal(mic.medipix.trim_low.get(), old)
    assert mic.source.beam_on.get() is True and mic.medipix.thl_kev.get() == 5.0
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "fail"
