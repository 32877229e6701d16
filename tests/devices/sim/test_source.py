"""The FXE 160 model: limits, conditioning, TXI, drift and the parhelion."""

import numpy as np
import pytest

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.source import FXE160, FXE160_MODES, ISODOSE10_PER_SIGMA

H = 3600.0


def tube(**kw):
    return FXE160(SimClock(), seed=2, **kw)


def test_modes_have_the_papers_spots_and_increasing_power_limits():
    assert FXE160_MODES["high_focus"].spot_size_um == 0.9
    assert FXE160_MODES["micro_focus"].spot_size_um == 1.8
    limits = [FXE160_MODES[m].max_power_w for m in ("high_focus", "micro_focus", "high_power")]
    assert limits == sorted(limits)
    st = tube(conditioning=False).state(0.0)
    assert st.spot_sigma_um * ISODOSE10_PER_SIGMA == pytest.approx(0.9)


def test_configure_is_all_or_nothing():
    t = tube()
    with pytest.raises(ValueError, match="power"):
        t.configure(voltage_kv=160.0, current_ua=100.0)
    assert (t.voltage_kv, t.current_ua) == (90.0, 10.0)
    t.configure(mode="high_power", voltage_kv=160.0, current_ua=100.0)
    assert t.power_w == pytest.approx(16.0)


def test_conditioning_settles_flux_and_spot_over_hours():
    t = tube(drift=False, flux_fluctuation=False, parhelion=False)
    t.txi = False
    assert t.state(0.0).output_factor == pytest.approx(0.92)
    assert t.state(12 * H).output_factor == pytest.approx(1.0, abs=1e-3)
    assert t.state(0.0).spot_size_um == pytest.approx(0.9 * 1.25)
    assert t.state(12 * H).spot_size_um == pytest.approx(0.9, rel=1e-2)


def test_txi_holds_the_output_by_trimming_the_current():
    off = tube(drift=False, parhelion=False)
    off.txi = False
    on = tube(drift=False, parhelion=False)
    times = np.linspace(0, 11 * H, 200)
    dev_off = np.array([off.state(t).output_factor for t in times]) - 1
    dev_on = np.array([on.state(t).output_factor for t in times]) - 1
    assert np.abs(dev_on).max() < 0.1 * np.abs(dev_off).max()
    cur = np.array([on.state(t).current_ua for t in times])
    assert cur[0] > 10.0  # the loop raises the current while the cold tube gives too little
    assert np.all(np.array([off.state(t).current_ua for t in times]) == 10.0)


def test_drift_has_a_thermal_trend_and_is_off_when_switched_off():
    t = tube()
    x0, y0 = t.spot_offset_um(0.0)
    x, y = t.spot_offset_um(11 * H)
    assert (x0, y0) == (0.0, 0.0)
    assert 0.2 < np.hypot(x, y) < 3.0
    assert tube(drift=False).spot_offset_um(11 * H) == (0.0, 0.0)


def test_parhelion_only_in_high_focus_and_it_fluctuates():
    t = tube()
    w = np.array([t.parhelion_weight(s) for s in np.arange(0, 11 * H, 600)])
    assert 0.02 < w.mean() < 0.15 and w.std() > 0.01
    t.configure(mode="micro_focus")
    assert t.parhelion_weight(5 * H) == 0.0
    assert tube(parhelion=False).parhelion_weight(5 * H) == 0.0


def test_switching_on_restarts_conditioning():
    clock = SimClock()
    t = FXE160(clock, seed=0, drift=False, flux_fluctuation=False)
    t.txi = False
    clock.advance(10 * H)
    assert t.state().output_factor == pytest.approx(1.0, abs=1e-3)
    t.switch(False)
    assert t.state().output_factor == 0.0
    t.switch(True)
    assert t.state().output_factor == pytest.approx(0.92)


def test_injected_spot_jump_and_parhelion_change_act_from_their_time_on():
    t = tube(drift=False, parhelion=False)
    t.inject_spot_jump(100.0, 2.0, -1.0)
    t.inject_parhelion(200.0, 0.25)
    assert t.spot_offset_um(99.0) == (0.0, 0.0)
    assert t.spot_offset_um(100.0) == pytest.approx((2.0, -1.0))
    assert t.parhelion_weight(199.0) == 0.0  # parhelion off until the injected change
    assert t.parhelion_weight(250.0) == 0.25
    t.configure(mode="micro_focus")  # no secondary spot in this mode, injected or not
    assert t.parhelion_weight(250.0) == 0.0
    with pytest.raises(ValueError, match="weight"):
        t.inject_parhelion(0.0, 0.9)
    with pytest.raises(ValueError, match="finite"):
        t.inject_spot_jump(0.0, float("nan"), 0.0)
