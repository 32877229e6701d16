"""The microscope's devices: built by the factory, follow the Bluesky protocols, describe units
and limits, refuse bad input before anything moves or counts, write HDF5 through a RunEngine."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.protocols import Readable
from ophyd import Device

from nanoct.devices import MicroscopeInstabilities, XRayMicroscope, xray_microscope
from nanoct.plans.microscope import set_thresholds

SHAPE = (256, 256)


@pytest.fixture
def mic(tmp_path) -> XRayMicroscope:
    return xray_microscope(
        seed=1,
        data_dir=tmp_path,
        instabilities=MicroscopeInstabilities.only("noise"),
        oversample=1,
        n_energy_bins=4,
    )


def test_factory_builds_every_device_and_each_reads_and_describes(mic):
    devices = mic.devices()
    assert set(devices) == {"source", "manipulator", "rotation", "geometry", "medipix", "waiter"}
    for name, dev in devices.items():
        assert isinstance(dev, Device), name
        assert isinstance(dev, Readable), name
        reading, desc = dev.read(), dev.describe()
        assert set(reading) <= set(desc), name
        conf, conf_desc = dev.read_configuration(), dev.describe_configuration()
        assert set(conf) == set(conf_desc), name
    assert "motors" in mic.manipulator._ophyd_labels_
    assert "detectors" in mic.medipix._ophyd_labels_
    assert mic.data_dir == mic.medipix.data_dir


def test_units_and_limits_are_described(mic):
    d = mic.source.describe()
    assert d["source_voltage_kv"]["units"] == "kV"
    assert d["source_voltage_kv"]["limits"]["control"] == {"low": 0.2, "high": 50.0}
    assert d["source_current_na"]["units"] == "nA"
    m = mic.medipix.describe()
    assert m["medipix_thl_kev"]["units"] == "keV"
    img = m["medipix_image"]
    assert img["external"] == "STREAM:" and img["shape"] == [256, 256]
    assert img["dtype_numpy"] == np.dtype(np.uint32).str
    assert "medipix_image" not in mic.medipix.read()
    assert mic.medipix.counter_depth.get() == 8001
    assert mic.manipulator.z.describe()["manipulator_z"]["units"] == "mm"


def test_the_manipulator_sets_the_magnification_and_moves_take_twin_time(mic):
    assert mic.geometry.pixel_size.get() == pytest.approx(0.2409, abs=1e-4)
    t0 = mic.twin.clock.now()
    mic.manipulator.z.set(2.2).wait(5)
    assert mic.twin.clock.now() - t0 == pytest.approx(2.2 / 0.1 + 0.2)
    assert mic.geometry.magnification.get() == pytest.approx(1004.4 / 2.2)
    assert mic.geometry.pixel_size.get() == pytest.approx(55.0 * 2.2 / 1004.4)
    assert mic.geometry.odd.get() == pytest.approx(1002.2)
    mic.rotation.set(90.0).wait(5)
    assert mic.rotation.position == 90.0
    with pytest.raises(ValueError, match=r"manipulator_z=0.1 is outside the soft limits"):
        mic.manipulator.z.set(0.1)
    assert mic.twin.fod_mm == 2.2


def test_voltage_out_of_range_is_refused_before_anything_changes(mic):
    with pytest.raises(ValueError, match=r"source_voltage_kv=60.0 is outside \[0.2, 50.0\] kV"):
        mic.source.voltage_kv.set(60.0)
    with pytest.raises(ValueError, match=r"voltage_kv=0.1 is outside the Cameca SX100"):
        mic.source.configure_beam(voltage_kv=0.1, current_na=100.0)
    assert mic.source.voltage_kv.get() == 30.0 and mic.source.current_na.get() == 200.0


def test_current_out_of_range_is_refused_before_anything_changes(mic):
    with pytest.raises(ValueError, match=r"source_current_na=2000.0 is outside \[0.001, 1000"):
        mic.source.current_na.set(2000.0)
    with pytest.raises(ValueError, match=r"current_na=0.0 is outside the Cameca SX100"):
        mic.source.configure_beam(current_na=0.0)
    assert mic.source.current_na.get() == 200.0
    mic.source.current_na.set(1000.0).wait(1)
    assert mic.source.beam_current.get() == 1000.0
    mic.source.beam_on.set(False).wait(1)
    assert mic.source.beam_current.get() == 0.0


def test_upper_threshold_below_lower_is_refused(mic):
    with pytest.raises(ValueError, match=r"thh_kev=4.0 must be greater than thl_kev=5.0"):
        mic.medipix.thh_kev.set(4.0)
    with pytest.raises(ValueError, match=r"thh_kev=60.0 must be greater than thl_kev=70.0"):
        mic.medipix.thl_kev.set(70.0)
    assert (mic.medipix.thl_kev.get(), mic.medipix.thh_kev.get()) == (5.0, 60.0)
    # the plan stub moves them in the order that keeps the window valid
    RE = RunEngine({})
    RE(set_thresholds(mic, 70.0, 80.0))
    assert (mic.twin.thl_kev, mic.twin.thh_kev) == (70.0, 80.0)
    RE(set_thresholds(mic, 3.0, 10.0))
    assert (mic.twin.thl_kev, mic.twin.thh_kev) == (3.0, 10.0)
    with pytest.raises(ValueError, match=r"thh_kev=2.0 must be greater than thl_kev=9.0"):
        RE(set_thresholds(mic, 9.0, 2.0))
    assert (mic.twin.thl_kev, mic.twin.thh_kev) == (3.0, 10.0)


def test_trim_outside_0_to_7_is_refused(mic):
    with pytest.raises(ValueError, match=r"trim_low must hold integers in \[0, 7\]"):
        mic.medipix.trim_low.set(np.full(SHAPE, 8))
    with pytest.raises(ValueError, match=r"trim_high must hold integers in \[0, 7\]"):
        mic.medipix.trim_high.set(np.full(SHAPE, -1))
    with pytest.raises(ValueError, match=r"trim_low must hold integers"):
        mic.medipix.trim_low.set(np.full(SHAPE, 2.5))
    with pytest.raises(ValueError, match=r"trim_low has shape \(4, 4\)"):
        mic.medipix.trim_low.set(np.zeros((4, 4), dtype=int))
    assert (mic.medipix.trim_low.get() == 3).all() and (mic.twin.detector.trims["high"] == 3).all()
    trims = np.arange(SHAPE[0] * SHAPE[1]).reshape(SHAPE) % 8
    mic.medipix.trim_low.set(trims).wait(1)
    np.testing.assert_array_equal(mic.twin.detector.trims["low"], trims)
    mask = np.zeros(SHAPE, bool)
    mask[:2] = True
    mic.medipix.mask.set(mask).wait(1)
    assert mic.medipix.n_masked.get() == 512
    with pytest.raises(ValueError, match="mask must be a boolean array"):
        mic.medipix.mask.set(np.zeros(SHAPE, int))


def test_acquisition_time_not_positive_is_refused(mic):
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match=rf"acquire_time_s={bad} is outside \(0, 100000.0\]"):
            mic.medipix.acquire_time_s.set(bad)
    with pytest.raises(ValueError, match=r"num_frames=0 is outside \[1, 10000\]"):
        mic.medipix.num_frames.set(0)
    with pytest.raises(ValueError, match=r"num_frames=1.5 must be an integer"):
        mic.medipix.num_frames.set(1.5)
    assert mic.medipix.acquire_time_s.get() == 1.0
    with pytest.raises(RuntimeError, match="must be staged"):
        mic.medipix.trigger()


def test_count_writes_uint32_frames_with_image_key_and_twin_time(mic):
    mic.twin.detector.equalise(0.0)
    mic.medipix.acquire_time_s.set(200.0).wait(1)
    mic.medipix.num_frames.set(2).wait(1)
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE(bp.count([mic.medipix, mic.source], num=2), lambda name, doc: docs.append((name, doc)))
    names = [n for n, _ in docs]
    assert names.count("stream_resource") == 1 and names.count("stream_datum") == 2
    events = [d for n, d in docs if n == "event"]
    assert all(e["data"]["medipix_image_key"] == 0 for e in events)
    times = [e["data"]["medipix_twin_time"] for e in events]
    assert times[1] - times[0] == pytest.approx(2 * (200.0 + 0.01))
    (path,) = sorted(mic.data_dir.rglob("medipix_image_*.h5"))
    with h5py.File(path, "r", swmr=True) as f:
        data = f["data"][:]
        assert data.dtype == np.uint32 and data.shape == (2, 256, 256)
        np.testing.assert_array_equal(f["image_key"][:], [0, 0])
        np.testing.assert_allclose(f["twin_time_s"][:], times)
    # two 200 s frames of ~0.055 counts/s/pixel at THL 5 keV, fibres in the beam
    good = ~mic.twin.detector.mask
    assert 15.0 < data[0][good].mean() < 25.0
    assert events[0]["data"]["medipix_total_counts"] == int(data[0].sum())


def test_counter_saturates_at_its_depth_in_each_frame(mic):
    mic.twin.detector.equalise(0.0)
    RE = RunEngine({})

    def plan():
        yield from bps.mv(mic.manipulator.x, mic.manipulator.out_of_beam_x())
        yield from bps.mv(mic.source.current_na, 1000.0, mic.medipix.acquire_time_s, 1.0e5)
        yield from bps.mv(mic.medipix.num_frames, 2)
        return (yield from bp.count([mic.medipix]))

    docs: list[tuple[str, dict]] = []
    RE(plan(), lambda name, doc: docs.append((name, doc)))
    (event,) = [d for n, d in docs if n == "event"]
    good = ~mic.twin.detector.mask
    image = mic.medipix.image.get()
    assert (image[good] == 2 * 8001).all() and (image[~good] == 0).all()
    assert event["data"]["medipix_saturated_pixels"] == good.sum()


def test_name_prefix_keeps_names_apart_and_is_validated(tmp_path):
    from nanoct.devices import xray_microscope

    mic = xray_microscope(data_dir=tmp_path, name_prefix="xm_")
    assert set(mic.devices()) == {
        "xm_source", "xm_manipulator", "xm_rotation", "xm_geometry", "xm_medipix", "xm_waiter"
    }  # fmt: skip
    assert "xm_manipulator_z" in mic.manipulator.z.describe()
    with pytest.raises(ValueError, match="name_prefix='x m'"):
        xray_microscope(data_dir=tmp_path, name_prefix="x m")
