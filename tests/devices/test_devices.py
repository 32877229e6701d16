"""The CT devices: built by the factory, follow the Bluesky protocols, refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.protocols import Readable
from ophyd import Device

from nanoct.devices import Instabilities, sub_um_ct


@pytest.fixture
def ct(tmp_path):
    return sub_um_ct(seed=1, data_dir=tmp_path, instabilities=Instabilities.none())


def test_factory_builds_every_device_and_each_reads_and_describes(ct):
    devices = ct.devices()
    assert set(devices) == {
        "tube",
        "shutter",
        "rotation",
        "manipulator",
        "geometry",
        "flatpanel",
        "wire",
        "waiter",
    }
    for name, dev in devices.items():
        assert isinstance(dev, Device), name
        assert isinstance(dev, Readable), name
        reading, desc = dev.read(), dev.describe()
        assert set(reading) <= set(desc), name
        conf, conf_desc = dev.read_configuration(), dev.describe_configuration()
        assert set(conf) == set(conf_desc), name
    assert "motors" in ct.rotation._ophyd_labels_
    assert "detectors" in ct.flatpanel._ophyd_labels_


def test_units_and_limits_are_described(ct):
    d = ct.tube.describe()
    assert d["tube_voltage"]["units"] == "kV"
    assert d["tube_voltage"]["limits"]["control"] == {"low": 10.0, "high": 160.0}
    assert ct.manipulator.z.describe()["manipulator_z"]["units"] == "mm"
    assert ct.rotation.describe()["rotation"]["units"] == "deg"
    img = ct.flatpanel.describe()["flatpanel_image"]
    assert img["external"] == "STREAM:" and img["shape"] == [512, 512]
    assert "flatpanel_image" not in ct.flatpanel.read()


def test_geometry_readout_follows_the_manipulator(ct):
    ct.manipulator.z.set(5.0).wait(5)
    ct.geometry.sdd.set(500.0).wait(5)
    assert ct.geometry.magnification.get() == pytest.approx(100.0)
    assert ct.geometry.voxel_size.get() == pytest.approx(200.0 / 100.0)  # binning 4: 200 um
    ct.flatpanel.binning.set(1).wait(5)
    assert ct.geometry.voxel_size.get() == pytest.approx(0.5)


def test_moves_take_twin_time(ct):
    t0 = ct.twin.clock.now()
    ct.rotation.set(90.0).wait(5)
    assert ct.twin.clock.now() - t0 == pytest.approx(90.0 / 20.0 + 0.2)
    assert ct.rotation.position == 90.0


def test_flat_panel_exposure_and_averaging_set_the_signal_level(ct):
    RE = RunEngine({})
    ct.manipulator.x.set(ct.manipulator.out_of_beam_x()).wait(5)
    means = {}

    def take(exposure):
        def plan():
            yield from bps.mv(ct.flatpanel.exposure_time, exposure)
            yield from bps.open_run()
            yield from bps.stage(ct.flatpanel)
            yield from bps.trigger_and_read([ct.flatpanel])
            yield from bps.unstage(ct.flatpanel)
            yield from bps.close_run()

        RE(plan())
        return ct.twin

    take(1.0)
    # the last image is in the file: read it back
    files = sorted(ct.flatpanel.data_dir.rglob("*.h5"))
    import h5py

    with h5py.File(files[-1], "r", swmr=True) as f:
        means[1.0] = float(np.asarray(f["data"][0]).mean())
    take(2.0)
    files = sorted(ct.flatpanel.data_dir.rglob("*.h5"), key=lambda p: p.stat().st_mtime)
    with h5py.File(files[-1], "r", swmr=True) as f:
        means[2.0] = float(np.asarray(f["data"][0]).mean())
    base = 100.0 + 2.0 * np.array([1.0, 2.0])  # offset + dark current
    assert (means[2.0] - base[1]) / (means[1.0] - base[0]) == pytest.approx(2.0, rel=0.01)


# ---- bad input: a clear ValueError before anything moves or is acquired ---------------------
@pytest.mark.parametrize(
    ("signal", "value", "match"),
    [
        ("voltage", 200.0, r"voltage.*200.*\[10.0, 160.0\]"),
        ("voltage", 5.0, r"voltage.*5.0.*\[10.0, 160.0\]"),
        ("current", 5000.0, r"current.*5000.*\[1.0, 1000.0\]"),
        ("current", 0.0, r"current.*0.0"),
        ("focus_mode", "tiny", r"focus_mode.*tiny.*allowed"),
    ],
)
def test_tube_rejects_out_of_range_settings(ct, signal, value, match):
    sig = getattr(ct.tube, signal)
    before = sig.get()
    with pytest.raises(ValueError, match=match):
        sig.set(value)
    assert sig.get() == before


def test_tube_rejects_power_above_the_mode_limit(ct):
    # high_focus allows 1 W: 90 kV x 20 uA = 1.8 W
    with pytest.raises(ValueError, match=r"power 1.8 W.*high_focus.*1 W"):
        ct.tube.current.set(20.0)
    assert ct.tube.current.get() == 10.0
    with pytest.raises(ValueError, match="power"):
        ct.tube.voltage.set(150.0)
    # the micro-focus mode allows 3 W, so the same current is fine there
    ct.tube.configure_beam(mode="micro_focus", current_ua=20.0)
    assert ct.tube.power.get() == pytest.approx(1.8, rel=0.2)


@pytest.mark.parametrize("exposure", [0.0, -1.0, 1000.0])
def test_flat_panel_rejects_bad_exposure(ct, exposure):
    with pytest.raises(ValueError, match=rf"exposure.*{exposure}.*\["):
        ct.flatpanel.exposure_time.set(exposure)
    assert ct.flatpanel.exposure_time.get() == 5.0


@pytest.mark.parametrize(
    ("signal", "value"), [("binning", 3), ("frames_per_image", 0), ("frames_per_image", 100)]
)
def test_flat_panel_rejects_bad_settings(ct, signal, value):
    with pytest.raises(ValueError, match=signal):
        getattr(ct.flatpanel, signal).set(value)


@pytest.mark.parametrize("sod", [0.5, 0.0, -3.0, 300.0])
def test_manipulator_rejects_sod_outside_range(ct, sod):
    t0 = ct.twin.clock.now()
    with pytest.raises(ValueError, match=r"manipulator_z.*\[0.5073, 200.0\]"):
        ct.manipulator.z.set(sod)
    assert ct.manipulator.z.position == pytest.approx(2.95)
    assert ct.twin.clock.now() == t0  # nothing moved, no time passed


def test_sod_must_stay_below_sdd(ct):
    ct.geometry.sdd.set(100.0).wait(5)
    with pytest.raises(ValueError, match=r"sod_mm.*smaller than sdd_mm"):
        ct.manipulator.z.set(150.0)


def test_unknown_specimen_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"specimen='banana'.*allowed.*chip"):
        sub_um_ct(specimen="banana", data_dir=tmp_path)


def test_readbacks_are_read_only(ct):
    with pytest.raises(PermissionError):
        ct.geometry.magnification.set(3.0)


def test_trigger_outside_a_run_is_refused(ct):
    with pytest.raises(RuntimeError, match="staged"):
        ct.flatpanel.trigger()


def test_real_time_mode_moves_and_exposes_without_blocking(tmp_path):
    import time

    from bluesky import plans as bp

    ct = sub_um_ct(seed=1, data_dir=tmp_path, time_scale=0.02)  # 50x faster than real time
    st = ct.rotation.set(90.0)  # 4.7 s of twin time: 94 ms of wall time
    assert not st.done
    st.wait(5)
    assert st.success and ct.rotation.position == 90.0
    t0 = time.monotonic()
    RE = RunEngine({})
    ct.flatpanel.exposure_time.set(1.0).wait(1)
    RE(bp.count([ct.flatpanel], num=2))
    # two acquisitions of (1 s + 0.125 s read-out) take at least 45 ms of wall time
    assert time.monotonic() - t0 >= 2 * 1.125 * 0.02
    assert ct.twin.clock.now() > 4.7 + 2 * 1.125
