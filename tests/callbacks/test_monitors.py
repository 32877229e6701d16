"""Wire-drift and flux monitors on real ct_scans of the twin: quiet on a stable instrument,
flagging a focal-spot jump, a parhelion change and a flux drop injected mid-scan."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from bluesky import RunEngine
from live_helpers import SCAN, AtProjection, parhelion_change, small_ct, spot_jump

from nanoct.callbacks import FluxMonitor, WireDriftMonitor, parhelion_score, safe
from nanoct.plans import ct_scan


def _scan(ct, *faults):
    wire, flux = WireDriftMonitor(), FluxMonitor()
    RE = RunEngine({})
    RE.subscribe(safe(wire))
    RE.subscribe(safe(flux))
    for f in faults:
        RE.subscribe(f)
    RE(ct_scan(ct, **SCAN))
    return wire, flux


def test_monitors_stay_quiet_on_a_stable_twin(tmp_path, caplog):
    # every instability of the twin is on (drift, conditioning, flux, parhelion, noise), but
    # nothing sudden happens during the scan
    with caplog.at_level(logging.WARNING, logger="nanoct.callbacks.monitors"):
        wire, flux = _scan(small_ct(tmp_path))
    assert wire.warnings == [] and flux.warnings == []
    assert not [r for r in caplog.records if r.name == "nanoct.callbacks.monitors"]
    assert len(wire.time_s) == SCAN["num_angles"]
    assert np.all(np.diff(wire.time_s) > 0)
    drift = np.abs(np.array(wire.drift_voxels))
    assert drift.max() < 0.1  # well inside the threshold (0.25 voxel)
    assert [b.block for b in flux.blocks] == [0, 1, 2]
    assert all(abs(b.relative_flux - 1) < 0.02 for b in flux.blocks)
    scores = [b.parhelion_score for b in flux.blocks[1:]]
    assert max(scores) < flux.parhelion_threshold / 2
    assert flux.latest_difference is not None and flux.latest_difference.shape == (128, 128)


def test_wire_monitor_flags_an_injected_spot_jump(tmp_path):
    ct = small_ct(tmp_path)
    # 5 um: the specimen's projection moves by 5 um x (M - 1) = 0.42 mm, about half a voxel
    wire, _ = _scan(ct, AtProjection(24, spot_jump(ct.twin.tube, 5.0, 0.0)))
    kinds = {(w.kind, w.index) for w in wire.warnings}
    assert ("jump", 25) in kinds and ("drift", 25) in kinds
    assert all(w.index >= 25 for w in wire.warnings)
    jump = next(w for w in wire.warnings if w.kind == "jump")
    assert 0.35 < jump.value < 0.7 and jump.threshold == 0.25
    # the drift warning is given once, not at every later projection
    assert sum(w.kind == "drift" for w in wire.warnings) == 1
    # a spot moving right (+x) moves the specimen's shadow left: negative columns
    assert wire.drift_voxels[-1][0] < -0.35
    assert wire.spot_um[-1][0] == pytest.approx(5.0, abs=0.5)


def test_flux_monitor_flags_a_parhelion_change_and_a_flux_drop(tmp_path):
    ct = small_ct(tmp_path)
    tube = ct.twin.tube

    def faults():
        parhelion_change(tube, 0.25)()  # the secondary spot: 8 % -> 25 % of the emission
        # a 10 % loss of emission the TXI cannot correct (above the scan's min_flux of 0.8,
        # so no projection is dropped), for the rest of the scan
        tube.inject_dropout(ct.twin.clock.now(), 1e6, level=0.9)

    wire, flux = _scan(ct, AtProjection(24, faults))
    by_kind = {w.kind: w for w in flux.warnings}
    assert set(by_kind) == {"parhelion", "flux"}
    assert by_kind["parhelion"].index == 2 and by_kind["flux"].index == 2  # the closing block
    # 10 % less emission, partly offset by the brighter secondary spot in the centre
    assert -0.10 < by_kind["flux"].value < -flux.flux_jump
    assert by_kind["parhelion"].value > 5 * flux.parhelion_threshold
    assert flux.blocks[1].parhelion_score < flux.parhelion_threshold  # before the change
    assert wire.warnings == []  # the spot itself did not move


def test_parhelion_score_and_bad_parameters():
    rng = np.random.default_rng(0)
    a = 1000 + rng.normal(0, 1, (64, 64))
    score, diff = parhelion_score(a, a)
    assert score == 0.0 and np.all(diff == 0)
    uniform, _ = parhelion_score(a, 1.05 * a)  # a uniform flux change is not the parhelion
    assert uniform < 1e-12
    xx = np.mgrid[0:64, 0:64][1]
    shaped, _ = parhelion_score(a, a * (1 + 0.02 * np.cos(xx / 10.0)))
    assert shaped > 0.005
    with pytest.raises(ValueError, match="one shape"):
        parhelion_score(a, a[:10])
    with pytest.raises(ValueError, match="threshold_voxels=0"):
        WireDriftMonitor(threshold_voxels=0)
    with pytest.raises(ValueError, match="rearm_fraction=2"):
        WireDriftMonitor(rearm_fraction=2)
    with pytest.raises(ValueError, match="flux_jump=-1"):
        FluxMonitor(flux_jump=-1)


def test_wire_monitor_ignores_runs_without_a_wire():
    wire = WireDriftMonitor()
    wire("start", {"uid": "u", "plan_name": "count", "time": 0.0})
    assert not wire.active
    wire("descriptor", {"uid": "d", "name": "primary", "data_keys": {}, "run_start": "u"})
    wire("event", {"descriptor": "d", "seq_num": 1, "data": {"wire_x_px": 3.0}, "time": 1.0})
    assert wire.time_s == [] and wire.warnings == []
