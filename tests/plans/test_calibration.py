"""Calibration plans on the twin, through a real RunEngine into a real Tiled server: each test
checks the result returned to the caller and the copy stored in the run's analysis stream."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter

from nanoct.devices import Instabilities, sub_um_ct
from nanoct.plans.calibration import (
    alignment_180,
    flux_stability,
    focal_spot_size,
    jima_resolution,
    wire_stability,
)

SETTLED = Instabilities.only("noise")  # a conditioned, stable tube; photon noise on


pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir(tiled_server, tmp_path):
    return tiled_server.data_dir / tmp_path.name


@pytest.fixture
def run_plan(runs_container):
    """Run a plan into Tiled; return its result after checking the stored analysis."""

    def _run(plan):
        RE = RunEngine({}, call_returns_result=True)
        RE.subscribe(TiledWriter(runs_container))
        out = RE(plan)
        run = runs_container[out.run_start_uids[0]]
        stored = run["analysis"].read()
        for key, value in out.plan_result.items():
            v = np.asarray(value)
            if v.dtype.kind in "biuf" and v.ndim == 0:
                assert float(np.asarray(stored[key])[0]) == pytest.approx(float(v), nan_ok=True)
        assert run.metadata["stop"]["exit_status"] == "success"
        return out.plan_result

    return _run


@pytest.mark.parametrize(("mode", "spot_um"), [("high_focus", 0.9), ("micro_focus", 1.8)])
def test_focal_spot_size_recovers_the_configured_spot(data_dir, run_plan, mode, spot_um):
    ct = sub_um_ct(
        seed=3, specimen="edge", binning=2, data_dir=data_dir, instabilities=SETTLED, wire=False
    )
    ct.tube.configure_beam(mode=mode, current_ua=10.0)
    res = run_plan(focal_spot_size(ct, frames=2, num_images=2))
    assert res["spot_size_um"] == pytest.approx(spot_um, rel=0.15)
    assert res["magnification"] == pytest.approx(500.0 / 0.5073)
    assert ct.manipulator.z.position == pytest.approx(2.95)  # put back


@pytest.mark.parametrize(("mode", "resolved"), [("high_focus", True), ("micro_focus", False)])
def test_jima_05_um_group_resolved_with_the_small_spot_only(data_dir, run_plan, mode, resolved):
    # the paper's comparison at its CT voxel of 0.59 um: magnification 339 with 4x4 binning
    ct = sub_um_ct(
        seed=4,
        specimen="jima",
        binning=4,
        data_dir=data_dir,
        instabilities=SETTLED,
        wire=False,
        sod_mm=250.0 * 0.59 / 200.0,
    )
    ct.tube.configure_beam(mode=mode, current_ua=10.0)
    res = run_plan(jima_resolution(ct, frames=4, num_images=2))
    assert res["voxel_size_um"] == pytest.approx(0.59)
    widths = list(res["widths_um"])
    k = widths.index(0.5)
    assert bool(res["resolved"][k]) is resolved
    # coarse groups are always resolved; with 6 lines counted
    assert res["resolved"][widths.index(3.0)] == 1
    assert res["lines_found"][widths.index(3.0)] == 6
    # the modulation falls with the line width
    assert res["modulation"][widths.index(3.0)] > res["modulation"][k]
    if resolved:
        assert res["detail_recognisability_um"] <= 0.5
    else:
        assert res["detail_recognisability_um"] > 0.5


def test_flux_stability_sees_conditioning_and_the_parhelion(data_dir, run_plan):
    scores = {}
    for mode in ("high_focus", "micro_focus"):
        ct = sub_um_ct(
            seed=6,
            binning=4,
            data_dir=data_dir / mode,
            instabilities=Instabilities.only("noise", "parhelion", "conditioning"),
        )
        ct.tube.configure_beam(mode=mode, current_ua=10.0)
        ct.tube.txi.set(False).wait(1)
        res = run_plan(flux_stability(ct, duration_s=4 * 3600.0, interval_s=1800.0))
        assert len(res["flux_relative"]) == 9
        assert np.all(np.diff(res["time_s"]) >= 1800.0 - 1e-6)
        # a cold tube's output rises by several % while it conditions (TXI off)
        assert res["flux_relative"][-1] - res["flux_relative"][0] > 0.04
        scores[mode] = float(np.median(res["parhelion_score"]))
    assert scores["high_focus"] > 5 * scores["micro_focus"]


def test_alignment_180_finds_an_offset_axis(data_dir, run_plan):
    ct = sub_um_ct(seed=7, binning=4, data_dir=data_dir, instabilities=SETTLED, wire=False)
    ct.manipulator.x.set(0.010).wait(1)  # 10 um off the central ray
    res = run_plan(alignment_180(ct, frames=2))
    expected_px = 0.010 * ct.geometry.magnification.get() / 0.2
    assert res["offset_px"] == pytest.approx(expected_px, abs=0.5)
    assert res["axis_offset_mm"] == pytest.approx(0.010, rel=0.15)
    assert abs(res["tilt_deg"]) < 0.2


@pytest.mark.parametrize("drift", [True, False])
def test_wire_stability_measures_the_spot_alone(data_dir, run_plan, drift):
    inst = Instabilities.only("spot_drift", "noise") if drift else SETTLED
    ct = sub_um_ct(seed=8, binning=4, data_dir=data_dir, instabilities=inst)
    res = run_plan(wire_stability(ct, duration_s=6 * 3600.0, interval_s=1200.0))
    true = np.array([ct.twin.tube.spot_offset_um(t) for t in res["time_s"]])
    true -= true[0]
    if drift:
        assert np.ptp(true[:, 1]) > 0.3
        np.testing.assert_allclose(res["spot_y_um"], true[:, 1], atol=0.08)
        np.testing.assert_allclose(res["spot_x_um"], true[:, 0], atol=0.08)
    else:
        assert res["drift_x_px"] < 0.05 and res["drift_y_px"] < 0.05


@pytest.mark.parametrize(
    ("plan", "kwargs", "match"),
    [
        (focal_spot_size, {"sod_mm": 0.1}, r"sod_mm=0.1"),
        (focal_spot_size, {"exposure_s": 0.0}, r"exposure_s=0.0"),
        (focal_spot_size, {"level": 1.5}, r"level=1.5"),
        (flux_stability, {"duration_s": 100.0, "interval_s": 200.0}, r"interval_s"),
        (wire_stability, {"duration_s": -1.0}, r"duration_s=-1.0"),
        (alignment_180, {"frames": 0}, r"frames=0"),
    ],
)
def test_calibration_plans_reject_bad_input_before_moving(tmp_path, plan, kwargs, match):
    ct = sub_um_ct(seed=1, data_dir=tmp_path)
    t0 = ct.twin.clock.now()
    with pytest.raises(ValueError, match=match):
        RunEngine({})(plan(ct, **kwargs))
    assert ct.twin.clock.now() == t0


def test_jima_needs_the_chart(tmp_path):
    ct = sub_um_ct(seed=1, data_dir=tmp_path)
    with pytest.raises(ValueError, match="JIMA chart"):
        RunEngine({})(jima_resolution(ct))
