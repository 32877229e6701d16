"""laminography_scan on both instruments: validation before motion, the tilt in the streams and
the metadata, and the tilt put back (plain RunEngine runs; the reconstruction through Tiled is
in tests/integration/test_nano_ct_into_tiled.py)."""

from __future__ import annotations

import threading

import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from nanoct.devices import Instabilities, MicroscopeInstabilities, sub_um_ct, xray_microscope
from nanoct.plans import laminography_scan

CT_FAST = {"exposure_s": 0.1, "frames_per_projection": 1, "num_darks": 1, "num_flats": 1}


@pytest.fixture
def ct(tmp_path):
    return sub_um_ct(seed=2, binning=4, specimen="flat_chip", data_dir=tmp_path / "ct",
                     instabilities=Instabilities.only("noise"))  # fmt: skip


@pytest.fixture
def mic(tmp_path):
    inst = MicroscopeInstabilities.none()
    return xray_microscope(seed=2, specimen="flat_chip", data_dir=tmp_path / "mic", oversample=1,
                           n_energy_bins=2, instabilities=inst)  # fmt: skip


def _run(RE, plan):
    docs = []
    RE(plan, lambda name, doc: docs.append((name, doc)))
    return docs


def _events(docs):
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [(names[d["descriptor"]], d["data"]) for n, d in docs if n == "event"]


@pytest.mark.parametrize(
    ("tilt", "kwargs", "match"),
    [
        (75.0, {}, r"rotation_tilt=75.0 is outside the soft limits \[-60.0, 60.0\] deg"),
        (-61, {}, r"rotation_tilt=-61.0 is outside the soft limits"),
        ("30", {}, r"tilt_deg='30' must be a number in \[-60.0, 60.0\] deg"),
        (True, {}, r"tilt_deg=True must be a number"),
        (float("nan"), {}, r"rotation_tilt=nan is outside the soft limits"),
        (30.0, {"exposure_s": 0.0}, r"exposure_s=0.0 must lie in"),
        (30.0, {"num_angles": 0}, r"num_angles=0"),
        (30.0, {"drift_reference": False}, r"drift_reference=False applies to the X-ray micro"),
    ],
)
def test_bad_input_fails_before_the_tilt_or_anything_moves(ct, tilt, kwargs, match):
    t0 = ct.twin.clock.now()
    with pytest.raises(ValueError, match=match):
        RunEngine({})(laminography_scan(ct, tilt, **kwargs))
    assert ct.twin.clock.now() == t0
    assert ct.rotation.tilt.position == 0.0 and ct.rotation.position == 0.0
    assert not list(ct.flatpanel.data_dir.rglob("*.h5"))


def test_a_tilt_that_would_swing_the_specimen_into_the_source(tmp_path):
    ct = sub_um_ct(specimen="chip", data_dir=tmp_path)
    ct.manipulator.z.set(0.5073).wait(5)
    t0 = ct.twin.clock.now()
    with pytest.raises(ValueError, match=r"tilt_deg=60.0 would swing the specimen"):
        RunEngine({})(laminography_scan(ct, 60.0))
    assert ct.twin.clock.now() == t0 and ct.twin.tilt_deg == 0.0


def test_not_an_instrument():
    with pytest.raises(ValueError, match="must be the sub-um CT"):
        RunEngine({})(laminography_scan(object(), 30.0))


def test_ct_laminography_streams_metadata_and_the_tilt_put_back(ct):
    docs = _run(RunEngine({}), laminography_scan(ct, 30.0, num_angles=4, flat_every=2, **CT_FAST))
    events = _events(docs)
    assert [s for s, _ in events] == ["dark", "flat", "primary", "primary", "flat", "primary",
                                      "primary", "flat", "dark"]  # fmt: skip
    prim = [d for s, d in events if s == "primary"]
    assert [d["rotation_tilt"] for d in prim] == [30.0] * 4
    assert [d["flatpanel_rotation_angle"] for d in prim] == [0.0, 90.0, 180.0, 270.0]
    start = next(d for n, d in docs if n == "start")
    assert start["plan_name"] == "laminography_scan" and start["instrument"] == "sub_um_ct"
    assert start["geometry"]["tilt_deg"] == 30.0
    assert start["plan_args"]["tilt_deg"] == 30.0 and start["plan_args"]["num_angles"] == 4
    assert start["reference_wire"] is not None  # the CT's drift reference, unchanged by the tilt
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "success"
    assert ct.rotation.tilt.position == 0.0  # put back


def test_microscope_laminography_takes_references(mic):
    docs = _run(RunEngine({}), laminography_scan(mic, -25.0, num_angles=4, flat_every=4,
                                                 exposure_s=10.0, num_flats=1))  # fmt: skip
    streams = [s for s, _ in _events(docs)]
    assert streams == ["reference", "flat"] + ["primary"] * 4 + ["reference", "flat"]
    start = next(d for n, d in docs if n == "start")
    assert start["instrument"] == "xray_microscope" and start["geometry"]["tilt_deg"] == -25.0
    assert start["detector"]["counting"] is True
    assert start["plan_args"]["drift_reference"] is True
    assert mic.rotation.tilt.position == 0.0


def test_the_tilt_is_put_back_when_the_scan_is_aborted(ct):
    RE = RunEngine({})
    ct.rotation.tilt.set(-10.0).wait(5)

    def cb(name, doc):
        if name == "event" and doc["data"].get("projection_index") == 1:
            threading.Thread(target=RE.request_pause, kwargs={"defer": False}).start()

    with pytest.raises(RunEngineInterrupted):
        RE(laminography_scan(ct, 30.0, num_angles=6, **CT_FAST), cb)
    assert ct.twin.tilt_deg == 30.0  # paused mid-scan at the laminography tilt
    RE.abort("test")
    assert ct.rotation.tilt.position == -10.0  # where it was before the scan
