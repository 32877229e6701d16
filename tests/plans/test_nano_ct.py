"""nano_ct_scan: the CT schedule on the X-ray microscope (plain RunEngine runs: the plan's logic;
the run through Tiled and its reconstruction are in tests/integration/test_nano_ct_into_tiled.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine

from nanoct.devices import MicroscopeInstabilities, sub_um_ct, xray_microscope
from nanoct.plans import ct_scan, nano_ct_scan
from nanoct.plans.ct import as_scan_devices, ct_devices
from nanoct.plans.nano_ct import microscope_devices

# noise off, each frame counts its rounded expectation: 100 s give ~6 counts per pixel
FAST = {"exposure_s": 100.0, "num_flats": 1}


def _mic(tmp_path, **kw):
    kw.setdefault("instabilities", MicroscopeInstabilities.none())
    return xray_microscope(seed=4, data_dir=tmp_path, oversample=1, n_energy_bins=2, **kw)


def _run(plan):
    docs = []
    RunEngine({})(plan, lambda name, doc: docs.append((name, doc)))
    return docs


def _events(docs):
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    return [(names[d["descriptor"]], d["data"]) for n, d in docs if n == "event"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"exposure_s": 0.0}, r"exposure_s=0.0 must lie in \[0.001, 100000.0\] s"),
        ({"exposure_s": 2e5}, r"exposure_s=200000.0"),
        ({"frames_per_projection": 0}, r"frames_per_projection=0.*\[1, 10000\]"),
        ({"flat_every": 0}, r"flat_every=0.*>= 1"),
        ({"num_flats": 0}, r"num_flats=0"),
        ({"num_darks": -1}, r"num_darks=-1"),
        ({"num_angles": 0}, r"num_angles=0"),
        ({"angles_deg": [0.0, 5.0, 5.0]}, r"increase strictly"),
        ({"reference_every": 0}, r"reference_every=0.*>= 1"),
        ({"drift_reference": "yes"}, r"drift_reference='yes' must be True or False"),
        ({"min_flux": 0.9, "resume_flux": 0.5}, r"resume_flux=0.5 must lie in \[min_flux=0.9"),
    ],
)
def test_bad_arguments_fail_before_anything_moves(tmp_path, kwargs, match):
    mic = _mic(tmp_path)
    t0 = mic.twin.clock.now()
    with pytest.raises(ValueError, match=match):
        RunEngine({})(nano_ct_scan(mic, **kwargs))
    assert mic.twin.clock.now() == t0
    assert mic.rotation.position == 0.0 and mic.manipulator.x.position == 0.0
    assert not list(tmp_path.rglob("*.h5"))


def test_only_the_microscope(tmp_path):
    with pytest.raises(ValueError, match="must be the X-ray microscope"):
        RunEngine({})(nano_ct_scan(sub_um_ct(data_dir=tmp_path)))


def test_streams_order_counts_and_metadata(tmp_path):
    mic = _mic(tmp_path)
    mic.twin.detector.equalise(5.0, 60.0)  # trims that put every noise edge far below 5 keV
    docs = _run(nano_ct_scan(mic, num_angles=6, flat_every=3, num_darks=1, **FAST))
    order = []
    for stream, _ in _events(docs):
        tag = {"dark": "D", "reference": "R", "flat": "F", "primary": "P"}[stream]
        if not order or order[-1][0] != tag:
            order.append([tag, 0])
        order[-1][1] += 1
    # darks (beam off), a reference and bright fields before projections 0 and 3 and at the
    # end, darks after
    assert order == [["D", 1], ["R", 1], ["F", 1], ["P", 3], ["R", 1], ["F", 1], ["P", 3],
                     ["R", 1], ["F", 1], ["D", 1]]  # fmt: skip
    events = _events(docs)
    keys = {s: {d["medipix_image_key"] for t, d in events if t == s} for s, _ in events}
    assert keys == {"dark": {2}, "flat": {1}, "primary": {0}, "reference": {0}}
    prim = [d for s, d in events if s == "primary"]
    assert [d["projection_index"] for d in prim] == list(range(6))
    np.testing.assert_allclose([d["medipix_rotation_angle"] for d in prim], np.arange(6) * 60.0)
    assert all(d["rotation_tilt"] == 0.0 for d in prim)
    refs = [d for s, d in events if s == "reference"]
    assert all(d["medipix_rotation_angle"] == 0.0 for d in refs)
    darks = [d for s, d in events if s == "dark"]
    flats = [d for s, d in events if s == "flat"]
    assert [d["flat_block"] for d in flats] == [0, 1, 2]
    assert flats[0]["medipix_total_counts"] > prim[0]["medipix_total_counts"] > 0
    assert all(d["medipix_total_counts"] == 0 for d in darks)  # beam off: nothing to count
    assert all(d["source_beam_current"] == 0.0 for d in darks)
    assert mic.source.beam_on.get() is True  # back on after the darks

    start = next(d for n, d in docs if n == "start")
    assert start["plan_name"] == "nano_ct_scan" and start["instrument"] == "xray_microscope"
    assert start["detectors"] == ["medipix"]
    g = start["geometry"]
    assert g["sod_mm"] == g["fod_mm"] == mic.twin.fod_mm
    assert g["magnification"] == pytest.approx(g["sdd_mm"] / g["sod_mm"])
    assert g["detector_shape"] == [256, 256] and g["detector_pixel_um"] == 55.0
    assert g["tilt_deg"] == 0.0
    assert start["detector"]["counting"] is True
    assert start["drift_reference"]["stream"] == "reference"
    assert start["expected_frames"] == {"dark": 2, "flat": 3, "primary": 6, "reference": 3}
    assert start["references_before"] == [0, 3, 6]
    est = start["expected_duration_s"]
    # the estimate matches the instrument time the scan took (moves, shutters, read-outs)
    assert mic.twin.clock.now() == pytest.approx(est["total_s"], rel=0.15)
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "success"


def test_frames_are_summed(tmp_path):
    """Noise off: one image of 3 frames holds 3 times the counts of a 1-frame image."""
    totals = {}
    for n in (1, 3):
        mic = _mic(tmp_path / str(n))
        docs = _run(nano_ct_scan(mic, num_angles=1, frames_per_projection=n, drift_reference=False,
                                 **FAST))  # fmt: skip
        (prim,) = [d for s, d in _events(docs) if s == "primary"]
        totals[n] = prim["medipix_total_counts"]
        assert mic.medipix.image.get().dtype == np.uint32
    assert totals[3] == 3 * totals[1] > 0


def test_one_code_path_for_both_instruments(tmp_path):
    """Both plans drive the same stubs through a ScanDevices description of their instrument."""
    ct = sub_um_ct(data_dir=tmp_path / "ct")
    mic = _mic(tmp_path / "mic")
    assert as_scan_devices(ct).detector is ct_devices(ct).detector is ct.flatpanel
    dev = as_scan_devices(mic)
    assert dev.detector is mic.medipix and dev.block_beam == (mic.source.beam_on, False)
    assert microscope_devices(mic).lateral is mic.manipulator.x
    ct_docs = _run(ct_scan(ct, num_angles=2, exposure_s=0.1, frames_per_projection=1,
                           num_darks=1, num_flats=1))  # fmt: skip
    mic_docs = _run(nano_ct_scan(mic, num_angles=2, num_darks=1, drift_reference=False, **FAST))
    streams = [[s for s, _ in _events(d)] for d in (ct_docs, mic_docs)]
    assert streams[0] == streams[1] == ["dark", "flat", "primary", "primary", "flat", "dark"]
    md = [next(d for n, d in docs if n == "start") for docs in (ct_docs, mic_docs)]
    shared = ("num_angles", "angles_deg", "flat_blocks_before", "expected_frames", "num_flats")
    assert {k: md[0][k] for k in shared} == {k: md[1][k] for k in shared}


def test_the_beam_current_gates_the_projections(tmp_path):
    """The relative flux of a microscope projection is the beam current over its setpoint."""
    mic = _mic(tmp_path)
    dev = microscope_devices(mic)
    readings = {**mic.source.read()}
    assert dev.relative_flux(readings) == pytest.approx(1.0)
    mic.source.beam_on.set(False).wait(1)
    assert dev.relative_flux({**mic.source.read()}) == 0.0
