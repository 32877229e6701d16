"""Whole-twin behaviour: flats, parhelion, wobble, wire layout, time."""

import numpy as np
import pytest

from nanoct.devices.sim.twin import CTTwin, Instabilities

H = 3600.0


def _flat(twin):
    twin.set_position("axis_x_mm", twin.out_of_beam_x_mm())
    return twin.deposited_energy(5.0)[0]


def test_parhelion_makes_flats_an_hour_apart_differ_in_high_focus_only():
    tw = CTTwin(seed=4, instabilities=Instabilities.only("parhelion"), wire=False)
    diffs = {}
    for mode in ("high_focus", "micro_focus"):
        tw.tube.configure(mode=mode)
        a = _flat(tw)
        tw.clock.advance(1.5 * H)
        b = _flat(tw)
        diffs[mode] = np.abs(b / a - 1).max()
    assert diffs["high_focus"] > 0.005  # a visible blob in the flat difference (Fig. 4)
    assert diffs["micro_focus"] < 1e-6


def test_flats_without_instabilities_do_not_change():
    tw = CTTwin(seed=4, instabilities=Instabilities.none())
    a = _flat(tw)
    tw.clock.advance(5 * H)
    np.testing.assert_array_equal(a, _flat(tw))


def test_wire_lies_outside_the_specimen_shadow_at_every_angle():
    tw = CTTwin(seed=0, instabilities=Instabilities.none(), wire=False)
    wp = CTTwin(seed=0).wire_projection()
    r, c = int(wp["row"]), int(wp["col"])
    half = int(wp["arm_px"] + wp["diameter_px"])
    for angle in range(0, 360, 30):
        tw.set_position("angle_deg", float(angle))
        img = tw.deposited_energy(1.0)[0]
        tw.set_position("axis_x_mm", tw.out_of_beam_x_mm())
        flat = tw.deposited_energy(1.0)[0]
        tw.set_position("axis_x_mm", 0.0)
        ratio = img / flat
        window = ratio[max(r - half, 0) : r + half, max(c - half, 0) : c + half]
        assert np.allclose(window, 1.0, atol=1e-6), angle


def test_wobble_is_bounded_and_tilts_the_axis():
    with pytest.raises(ValueError, match="wobble_urad"):
        CTTwin(wobble_urad=20.0)
    tw = CTTwin(seed=0, wobble_urad=15.0)
    for angle in (0.0, 77.0, 200.0):
        tw.set_position("angle_deg", angle)
        rot = tw.geometry().specimen_rotation()
        tilt = np.arccos(np.clip(rot[1, 1], -1, 1))  # angle of the specimen y axis from vertical
        assert tilt == pytest.approx(15e-6, rel=1e-3)
    assert CTTwin(instabilities=Instabilities.none()).geometry().wobble_urad == 0.0


def test_acquisition_advances_twin_time_and_reports_the_mid_time():
    tw = CTTwin(seed=0, binning=4)
    acq = tw.acquire(5.0, 4)
    assert acq.duration_s == pytest.approx(4 * (5.0 + 0.125))
    assert acq.time_s == pytest.approx(acq.duration_s / 2)
    assert tw.clock.now() == pytest.approx(acq.duration_s)


def test_dark_with_shutter_closed_is_offset_plus_dark_current():
    tw = CTTwin(seed=0, binning=4, instabilities=Instabilities.none())
    tw.shutter_open = False
    dark = tw.acquire(5.0).image
    assert dark.mean() == pytest.approx(100.0 + 2.0 * 5.0, rel=0.02)


def test_saturation_at_12_bits():
    tw = CTTwin(seed=0, binning=4, instabilities=Instabilities.none())
    tw.set_position("axis_x_mm", tw.out_of_beam_x_mm())
    img = tw.acquire(30.0).image
    assert img.max() == 4095.0
    assert np.mean(img == 4095.0) > 0.5


def test_binning_keeps_the_signal_level():
    levels = {}
    for b in (2, 4):
        tw = CTTwin(seed=0, binning=b, instabilities=Instabilities.none(), wire=False)
        tw.set_position("axis_x_mm", tw.out_of_beam_x_mm())
        img = tw.acquire(5.0).image
        n = img.shape[0]
        levels[b] = img[n // 2 - n // 8 : n // 2 + n // 8, n // 2 - n // 8 : n // 2 + n // 8].mean()
    assert levels[2] == pytest.approx(levels[4], rel=0.01)


def test_unknown_instability_is_named():
    with pytest.raises(ValueError, match="instability 'wind'"):
        Instabilities.only("wind")
