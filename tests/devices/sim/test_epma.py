"""The SX100 transmission-target source: flux calibration, spectrum, limits and spot drift."""

import numpy as np
import pytest

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.epma import (
    DEFAULT_SPOT_FWHM_UM,
    SPOT_DRIFT_UM_PER_SQRT_H,
    EPMASource,
    epma_target_spectrum,
)

H = 3600.0


def source(**kw):
    kw.setdefault("seed", 3)
    return EPMASource(SimClock(), **kw)


def test_200_nA_gives_the_papers_30_photons_per_mm2_s_at_1_m():
    s = source()
    s.configure(voltage_kv=30.0, current_na=200.0)
    assert s.photons_per_mm2_s_at(1000.0) == pytest.approx(30.0, abs=1.0)
    # the number is the calibrated spectrum's, through the inverse-square law
    total = s.spectrum().total_photons_per_s_sr_ua
    assert total * 0.2 / 1000.0**2 == pytest.approx(s.photons_per_mm2_s_at(1000.0), rel=1e-12)
    assert s.photons_per_mm2_s_at(500.0) == pytest.approx(4 * 30.0, rel=1e-9)


def test_flux_is_linear_in_current_and_zero_with_the_beam_off():
    s = source()
    fluxes = []
    for na in (0.001, 20.0, 200.0, 1000.0):
        s.configure(current_na=na)
        fluxes.append(s.photons_per_mm2_s_at(1000.0))
    assert np.allclose(np.array(fluxes) / np.array([0.001, 20.0, 200.0, 1000.0]), 30.0 / 200.0)
    s.switch(False)
    assert s.photons_per_mm2_s_at(1000.0) == 0.0
    assert s.state(0.0).current_na == 0.0


@pytest.mark.parametrize("kv", [5.0, 20.0, 30.0, 50.0])
def test_spectrum_ends_at_the_voltage(kv):
    s = source()
    s.configure(voltage_kv=kv)
    sp = s.spectrum()
    assert sp.energies_kev.max() < kv
    assert sp.energies_kev.max() > kv - 0.5  # the top bin reaches the voltage
    assert sp.photons_per_s_sr_ua[-1] > 0


def test_spectrum_hardens_and_flux_rises_with_voltage():
    mean = [epma_target_spectrum(kv).mean_energy_kev for kv in (10.0, 20.0, 30.0, 50.0)]
    assert mean == sorted(mean)
    s = source()
    s.configure(voltage_kv=10.0)
    low = s.photons_per_mm2_s_at(1000.0)
    s.configure(voltage_kv=30.0)
    assert low < 0.2 * s.photons_per_mm2_s_at(1000.0)
    # W L lines (L alpha 8.4 keV, L beta ~9.7 keV) appear above the L3 edge (10.2 keV)
    sp = epma_target_spectrum(30.0)
    near = (sp.energies_kev > 8.0) & (sp.energies_kev < 8.75)
    below = (sp.energies_kev > 7.0) & (sp.energies_kev < 7.75)
    assert sp.photons_per_s_sr_ua[near].sum() > 1.5 * sp.photons_per_s_sr_ua[below].sum()
    # the very bottom of the range runs but emits essentially nothing through 1 um W + Be
    assert epma_target_spectrum(0.2).total_photons_per_s_sr_ua < 1e-100


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"voltage_kv": 60.0}, r"voltage_kv=60.0.*\[0.2, 50\] kV"),
        ({"voltage_kv": 0.1}, r"voltage_kv=0.1.*\[0.2, 50\] kV"),
        ({"current_na": 0.0}, r"current_na=0.0.*\[0.001, 1000\] nA"),
        ({"current_na": 1500.0}, r"current_na=1500.0.*\[0.001, 1000\] nA"),
        ({"current_na": float("nan")}, r"current_na=nan"),
    ],
)
def test_out_of_range_settings_raise_and_change_nothing(kw, match):
    s = source()
    with pytest.raises(ValueError, match=match):
        s.configure(**{"voltage_kv": 20.0, "current_na": 100.0, **kw})
    assert (s.voltage_kv, s.current_na) == (30.0, 200.0)
    with pytest.raises(ValueError, match=match):
        s.validate(**kw)


def test_spot_is_well_below_300_nm():
    st = source().state(0.0)
    assert st.spot_fwhm_um == DEFAULT_SPOT_FWHM_UM < 0.3
    assert st.spot_sigma_um == pytest.approx(st.spot_fwhm_um / 2.3548, rel=1e-4)


def test_spot_drift_is_seeded_switchable_and_of_the_stated_size():
    a, b, c = source(seed=1), source(seed=1), source(seed=2)
    times = [0.0, 600.0, H, 5 * H]
    pa = [a.spot_offset_um(t) for t in times]
    # same seed, same path, whatever the query order
    assert [b.spot_offset_um(t) for t in reversed(times)] == pa[::-1]
    assert pa[0] == (0.0, 0.0)
    assert pa[3] != c.spot_offset_um(5 * H)
    assert source(seed=1, drift=False).state(5 * H).spot_x_um == 0.0
    st = a.state(5 * H)
    assert (st.spot_x_um, st.spot_y_um) == pa[3]
    # rms displacement after 4 h over many seeds ~ 0.1 um/sqrt(h) * 2
    disp = np.array([source(seed=k).spot_offset_um(4 * H) for k in range(200)])
    assert np.std(disp) == pytest.approx(SPOT_DRIFT_UM_PER_SQRT_H * 2.0, rel=0.15)
    # slow: it moves less than 30 nm in a minute
    assert np.hypot(*np.subtract(a.spot_offset_um(H + 60), a.spot_offset_um(H))) < 0.03
