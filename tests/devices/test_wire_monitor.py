"""The reference-wire monitor on twin images."""

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from nanoct.devices import Instabilities, sub_um_ct
from nanoct.devices.wire import measure_dip


def test_measure_dip_on_a_sloped_background():
    x = np.arange(80, dtype=float)
    profile = 1000 + 2.0 * x - 300 * np.exp(-((x - 41.3) ** 2) / (2 * 3.0**2))
    centre, width = measure_dip(profile)
    assert centre == pytest.approx(41.3, abs=0.02)
    assert width == pytest.approx(2.355 * 3.0, rel=0.02)
    assert np.isnan(measure_dip(np.full(50, 100.0))[0])


def _snap(ct):
    RE = RunEngine({})

    def plan():
        yield from bps.open_run()
        yield from bps.stage(ct.flatpanel)
        yield from bps.trigger_and_read([ct.flatpanel, ct.wire])
        yield from bps.unstage(ct.flatpanel)
        yield from bps.close_run()

    docs = []
    RE(plan(), lambda n, d: docs.append((n, d)))
    (event,) = [d for n, d in docs if n == "event"]
    return event["data"]


def test_wire_monitor_finds_the_wire_where_the_twin_puts_it(tmp_path):
    ct = sub_um_ct(seed=0, data_dir=tmp_path, instabilities=Instabilities.none())
    data = _snap(ct)
    wp = ct.twin.wire_projection()
    assert data["wire_x_px"] == pytest.approx(wp["col"], abs=0.3)
    assert data["wire_y_px"] == pytest.approx(wp["row"], abs=0.3)
    # the shadow of a 30 um wire at magnification 125, blurred: ~19 px at binning 4
    assert data["wire_width_px"] == pytest.approx(wp["diameter_px"], rel=0.2)


def test_wire_monitor_reports_nan_in_a_dark(tmp_path):
    ct = sub_um_ct(seed=0, data_dir=tmp_path)
    ct.twin.shutter_open = False
    data = _snap(ct)
    assert np.isnan(data["wire_x_px"]) and np.isnan(data["wire_y_px"])
