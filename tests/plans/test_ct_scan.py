"""ct_scan through a real RunEngine into a real Tiled server (and plain RunEngine runs where the
test is about the plan's logic, not storage)."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from bluesky_tiled_plugins import TiledWriter

from nanoct.devices import Instabilities, sub_um_ct
from nanoct.plans import ct_scan, plan_ct
from nanoct.plans.suspenders import install_flux_suspenders

FAST = {"exposure_s": 1.0, "frames_per_projection": 1, "num_darks": 2, "num_flats": 2}


def _collect(RE, plan):
    docs = []
    RE(plan, lambda name, doc: docs.append((name, doc)))
    return docs


def _events(docs):
    """(stream, data) of every event, in emission order."""
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [(names[d["descriptor"]], d["data"]) for n, d in docs if n == "event"]


@pytest.fixture
def ct(tmp_path):
    return sub_um_ct(seed=5, binning=4, data_dir=tmp_path)


# ---- schedule and bad input (nothing moves) -------------------------------------------------
def test_schedule_of_250_angles_every_100():
    sched = plan_ct(num_angles=250, flat_every=100)
    assert sched.flat_blocks_before == (0, 100, 200, 250)
    assert sched.angles_deg[1] == pytest.approx(360 / 250)
    assert sched.frame_count() == {"dark": 20, "flat": 40, "primary": 250}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_angles": 0}, r"num_angles=0.*>= 1"),
        ({"exposure_s": 0.0}, r"exposure_s=0.0.*\[0.01, 60.0\]"),
        ({"exposure_s": -5.0}, r"exposure_s=-5.0"),
        ({"frames_per_projection": 0}, r"frames_per_projection=0.*\[1, 64\]"),
        ({"flat_every": 0}, r"flat_every=0.*>= 1"),
        ({"num_flats": 0}, r"num_flats=0"),
        ({"angles_deg": [0.0, 10.0, 5.0]}, r"increase strictly.*angles_deg\[2\]=5.0"),
        ({"angles_deg": [0.0, 0.0]}, r"increase strictly"),
        ({"angles_deg": [0.0, 800.0]}, r"allowed range \[-360.0, 720.0\]"),
        ({"angles_deg": [0.0, 1.0], "num_angles": 5}, r"num_angles=5 contradicts"),
    ],
)
def test_bad_arguments_fail_before_anything_moves(ct, kwargs, match):
    t0 = ct.twin.clock.now()
    RE = RunEngine({})
    with pytest.raises(ValueError, match=match):
        RE(ct_scan(ct, **kwargs))
    assert ct.twin.clock.now() == t0
    assert ct.rotation.position == 0.0 and ct.manipulator.x.position == 0.0
    assert not list(ct.flatpanel.data_dir.rglob("*.h5"))


def test_a_scan_that_cannot_fit_on_the_disk_never_starts(ct, monkeypatch):
    import shutil
    from collections import namedtuple

    from nanoct.devices.storage import InsufficientDiskSpaceError

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(4 << 30, 3 << 30, 1 << 30))
    t0 = ct.twin.clock.now()
    with pytest.raises(InsufficientDiskSpaceError, match="not enough disk space"):
        RunEngine({})(ct_scan(ct, num_angles=1600))  # 1.7 GB of images at binning 4
    assert ct.twin.clock.now() == t0


# ---- what a run holds ---------------------------------------------------------------------------
@pytest.mark.integration
def test_ct_scan_streams_order_and_metadata_in_tiled(ct, tiled_server, runs_container):
    ct.flatpanel._data_dir = tiled_server.data_dir / "ct_scan"
    RE = RunEngine({})
    RE.subscribe(TiledWriter(runs_container))
    docs = _collect(RE, ct_scan(ct, num_angles=250, flat_every=100, **FAST))
    (uid,) = [d["uid"] for n, d in docs if n == "start"]
    run = runs_container[uid]

    # order as emitted: darks, flat block 0, projections 0-99, block 1, ..., block 3, darks
    order = []
    for stream, data in _events(docs):
        tag = f"F{data['flat_block']}" if stream == "flat" else stream[0].upper()
        if not order or order[-1][0] != tag:
            order.append([tag, 0])
        order[-1][1] += 1
    assert order == [
        ["D", 2],
        ["F0", 2],
        ["P", 100],
        ["F1", 2],
        ["P", 100],
        ["F2", 2],
        ["P", 50],
        ["F3", 2],
        ["D", 2],
    ]

    # what Tiled holds
    prim, flat, dark = run["primary"], run["flat"], run["dark"]
    assert prim["flatpanel_image"].shape == (250, 512, 512)
    assert flat["flatpanel_image"].shape == (8, 512, 512)
    assert dark["flatpanel_image"].shape == (4, 512, 512)
    t = prim.read()
    np.testing.assert_allclose(t["flatpanel_rotation_angle"], np.arange(250) * 360 / 250)
    assert list(np.asarray(t["projection_index"])) == list(range(250))
    assert set(np.asarray(t["flatpanel_image_key"])) == {0}
    assert set(np.asarray(flat.read()["flatpanel_image_key"])) == {1}
    assert set(np.asarray(dark.read()["flatpanel_image_key"])) == {2}
    assert list(np.asarray(flat.read()["flat_block"])) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.all(np.diff(t["flatpanel_twin_time"]) > 0)
    assert np.isfinite(t["wire_x_px"]).all() and np.isfinite(t["wire_y_px"]).all()
    for key in ("tube_voltage", "tube_current_rbv", "tube_flux"):
        assert key in t

    # physics: darks are dark, flats bright, projections in between
    d0 = dark["flatpanel_image"][0]
    f0 = flat["flatpanel_image"][0]
    p0 = prim["flatpanel_image"][0]
    assert d0.mean() < 150 < p0.mean() < f0.mean()

    md = run.metadata["start"]
    assert md["plan_name"] == "ct_scan" and md["num_angles"] == 250
    g = md["geometry"]
    assert g["magnification"] == pytest.approx(g["sdd_mm"] / g["sod_mm"])
    assert g["voxel_size_um"] == pytest.approx(g["detector_pixel_um"] / g["magnification"])
    assert g["detector_shape"] == [512, 512] and g["binning"] == 4
    assert len(md["angles_deg"]) == 250
    assert md["flat_blocks_before"] == [0, 100, 200, 250]
    assert md["tube"]["focus_mode"] == "high_focus"
    assert md["reference_wire"]["diameter_um"] == 30.0
    assert md["expected_frames"] == {"dark": 4, "flat": 8, "primary": 250}
    assert md["expected_duration_s"]["total_s"] > 0
    assert run.metadata["stop"]["exit_status"] == "success"


def test_averaging_lowers_the_noise_as_one_over_sqrt_n(tmp_path):
    noise = {}
    for n in (1, 4):
        ct = sub_um_ct(
            seed=1, binning=4, data_dir=tmp_path / str(n), instabilities=Instabilities.only("noise")
        )
        _collect(
            RunEngine({}),
            ct_scan(
                ct,
                num_angles=1,
                exposure_s=1.0,
                frames_per_projection=n,
                num_darks=0,
                num_flats=2,
                darks_after=False,
            ),
        )
        for path in ct.flatpanel.data_dir.rglob("*.h5"):
            with h5py.File(path, "r") as f:
                if f["image_key"][0] == 1:
                    a, b = f["data"][0], f["data"][1]
        noise[n] = float(np.std((a - b)[128:384, 128:384]))
    assert noise[1] / noise[4] == pytest.approx(2.0, rel=0.1)


# ---- pause / resume, suspension, dropouts ------------------------------------------------
def _angles_exactly_once(docs, n):
    idx = [data["projection_index"] for s, data in _events(docs) if s == "primary"]
    assert sorted(idx) == list(range(n)), idx
    return idx


def test_pause_mid_scan_then_resume_keeps_every_angle_once(ct):
    RE = RunEngine({})
    docs = []
    paused = threading.Event()

    def cb(name, doc):
        docs.append((name, doc))
        if name == "event" and doc["data"].get("projection_index") == 6 and not paused.is_set():
            paused.set()
            # request_pause blocks until the RunEngine's loop takes it: never from its thread
            threading.Thread(target=RE.request_pause, kwargs={"defer": False}).start()

    with pytest.raises(RunEngineInterrupted):
        RE(ct_scan(ct, num_angles=15, flat_every=10, **FAST), cb)
    assert RE.state == "paused"
    RE.resume()
    _angles_exactly_once(docs, 15)
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "success"


def test_flux_dropout_with_the_suspender(ct):
    RE = RunEngine({})
    install_flux_suspenders(RE, ct, num_flats=2)
    ct.twin.tube.inject_dropout(15.0, 45.0, level=0.1)
    docs = _collect(RE, ct_scan(ct, num_angles=12, flat_every=10, **FAST))
    events = _events(docs)
    _angles_exactly_once(docs, 12)
    kept = [d for s, d in events if s == "primary"]
    assert all(d["flatpanel_flux_min"] > 0.8 for d in kept)  # nothing from the dropout kept
    times = [d["flatpanel_twin_time"] for d in kept]
    assert not any(15.0 <= t <= 60.0 for t in times)
    # a fresh flat block after the recovery, before the interrupted angle was repeated
    flats = [d for s, d in events if s == "flat"]
    blocks = sorted({d["flat_block"] for d in flats})
    assert blocks == [0, 1, 2, 3]  # start, after the dropout, before 10, end
    first_after = min(t for t in times if t > 60.0)
    fresh = [d["flatpanel_twin_time"] for d in flats if d["flat_block"] == 1]
    assert all(60.0 < t < first_after for t in fresh)


def test_flux_dropout_without_a_suspender_is_handled_by_the_plan(ct):
    RE = RunEngine({})
    # the dropout starts inside the exposure of a projection
    ct.twin.tube.inject_dropout(16.0, 100.0, level=0.3)
    docs = _collect(RE, ct_scan(ct, num_angles=12, flat_every=10, **FAST))
    events = _events(docs)
    _angles_exactly_once(docs, 12)
    kept = [d for s, d in events if s == "primary"]
    assert all(d["flatpanel_flux_min"] > 0.8 for d in kept)
    flats = [d for s, d in events if s == "flat"]
    assert sorted({d["flat_block"] for d in flats}) == [0, 1, 2, 3]
    fresh = [d["flatpanel_twin_time"] for d in flats if d["flat_block"] == 1]
    assert min(fresh) > 116.0


# ---- the reference wire record ---------------------------------------------------------
@pytest.mark.parametrize("drift", [True, False])
def test_wire_record_follows_the_true_spot_motion(tmp_path, drift):
    inst = Instabilities.only("spot_drift", "noise") if drift else Instabilities.only("noise")
    ct = sub_um_ct(seed=2, binning=4, data_dir=tmp_path, instabilities=inst)
    ct.tube.current.set(1.0).wait(1)  # 60 s frames at 1 uA stay below 12-bit saturation
    RE = RunEngine({})
    # 8 h of twin time in 30 projections: 960 s per projection (exposure x frames)
    docs = _collect(
        RE,
        ct_scan(
            ct,
            num_angles=40,
            exposure_s=50.0,
            frames_per_projection=20,
            flat_every=100,
            num_darks=0,
            num_flats=1,
            darks_after=False,
        ),
    )
    prim = [d for s, d in _events(docs) if s == "primary"]
    t = np.array([d["flatpanel_twin_time"] for d in prim])
    x = np.array([d["wire_x_px"] for d in prim])
    y = np.array([d["wire_y_px"] for d in prim])
    m_wire = ct.twin.wire_projection()["magnification"]
    pixel_um = ct.twin.grid().pixel_mm * 1e3
    true = np.array([ct.twin.tube.spot_offset_um(ti) for ti in t])
    # a spot shift s moves the wire's shadow by -s (M - 1); rows grow downwards
    pred_x = -true[:, 0] * (m_wire - 1) / pixel_um
    pred_y = true[:, 1] * (m_wire - 1) / pixel_um
    if drift:
        assert np.ptp(pred_y) > 0.3  # the drift moves the shadow by a third of a pixel or more
        assert np.corrcoef(x, pred_x)[0, 1] > 0.9
        assert np.corrcoef(y, pred_y)[0, 1] > 0.9
    else:
        assert np.all(pred_x == 0)
        assert np.std(x) < 0.05 and np.std(y) < 0.05  # flat within noise
