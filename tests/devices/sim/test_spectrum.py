"""Tests of nanoct.devices.sim.spectrum (tungsten transmission target)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nanoct.devices.sim.spectrum import (
    Spectrum,
    _characteristic_lines,
    _kramers_continuum,
    photon_fluence_rate,
    tungsten_transmission_spectrum,
)

ELEMENTARY_CHARGE_C = 1.602176634e-19


def _bin_at(spectrum: Spectrum, energy_kev: float) -> int:
    return int(np.argmin(np.abs(spectrum.energies_kev - energy_kev)))


@pytest.mark.parametrize("voltage_kv", [10.0, 45.3, 90.0, 160.0])
def test_no_photons_above_the_voltage(voltage_kv: float) -> None:
    spectrum = tungsten_transmission_spectrum(voltage_kv)
    assert spectrum.energies_kev.max() < voltage_kv
    assert spectrum.energies_kev.max() > voltage_kv - 1.0
    assert np.all(spectrum.photons_per_s_sr_ua >= 0)
    assert spectrum.total_photons_per_s_sr_ua > 0


def test_k_lines_absent_at_60_kv_present_at_100_kv() -> None:
    energies, photons = _characteristic_lines("W", 60.0)
    assert energies.size > 0 and np.all(energies < 15.0)  # L lines only
    energies, photons = _characteristic_lines("W", 100.0)
    k_lines = energies > 55.0
    assert k_lines.any() and np.all(photons[k_lines] >= 0) and photons[k_lines].sum() > 0

    # In the spectrum: at 60 kV the continuum falls smoothly above 40 keV; at 100 kV the
    # Ka1 bin (59.3 keV) stands out above its neighbours.
    low = tungsten_transmission_spectrum(60.0)
    high_band = low.photons_per_s_sr_ua[low.energies_kev > 40.0]
    assert np.all(np.diff(high_band) < 0)
    high = tungsten_transmission_spectrum(100.0)
    i = _bin_at(high, 59.5)
    neighbours = 0.5 * (high.photons_per_s_sr_ua[i - 2] + high.photons_per_s_sr_ua[i + 1])
    assert high.photons_per_s_sr_ua[i] > 1.2 * neighbours


def test_l_lines_present_at_40_kv() -> None:
    energies, _photons = _characteristic_lines("W", 40.0)
    assert np.any((energies > 8.3) & (energies < 8.5))  # La1 8.398 keV
    spectrum = tungsten_transmission_spectrum(40.0)
    la = spectrum.photons_per_s_sr_ua[_bin_at(spectrum, 8.5)]
    below = spectrum.photons_per_s_sr_ua[_bin_at(spectrum, 7.5)]
    assert la > 1.5 * below
    # No L lines below the L3 edge (10.207 keV).
    assert _characteristic_lines("W", 10.0)[0].size == 0


def test_thick_target_continuum_reproduces_the_efficiency_relation() -> None:
    # Kramers' energy spectrum integrated over 0..E0 gives eta = K Z V, K = 1.1e-9 /V.
    voltage_kv = 100.0
    edges = np.linspace(1e-6, voltage_kv, 200_001)
    photons = _kramers_continuum(voltage_kv, 74, edges)
    energy_kev = np.dot(0.5 * (edges[:-1] + edges[1:]), photons)
    assert energy_kev / voltage_kv == pytest.approx(1.1e-9 * 74 * 100e3, rel=1e-3)
    # A thin layer (exit energy E1) radiates the fraction 1 - (E1/E0)^2 of that energy.
    thin = _kramers_continuum(voltage_kv, 74, edges, exit_energy_kev=90.0)
    thin_energy = np.dot(0.5 * (edges[:-1] + edges[1:]), thin)
    assert thin_energy / energy_kev == pytest.approx(1 - 0.9**2, rel=1e-3)


def test_total_output_at_100_kv_matches_hand_estimate() -> None:
    # Hand estimate for the default target (1 um W on 200 um Be), 100 kV, 1 uA:
    # * Kanaya-Okayama range of 100 keV electrons in W:
    #   R = 0.0276 * 183.84 * 100**1.67 / (74**0.889 * 19.3) um = 12.5 um,
    #   so they leave the 1 um layer with E1 = 100 * (1 - 1/12.5)**(1/1.67) = 95.1 keV.
    # * Efficiency relation eta = 1.1e-9 * Z * V = 1.1e-9 * 74 * 1e5 = 8.14e-3 for a thick
    #   target; a layer that takes E0 -> E1 radiates the fraction 1 - (E1/E0)^2 = 0.096.
    # * Beam power 100 kV * 1 uA = 0.1 W -> 0.1 * 8.14e-3 * 0.096 / (4 pi) = 6.2e-6 W/sr.
    # * Flat energy spectrum between ~5 keV (Be window cut) and E0: mean photon energy
    #   (100 - 5) / ln(100 / 5) = 31.7 keV.
    # * Photons: 6.2e-6 / (31.7e3 * 1.602e-19) = 1.2e9 photons / s / sr / uA.
    range_um = 0.0276 * 183.84 * 100**1.67 / (74**0.889 * 19.3)
    e1 = 100 * (1 - 1 / range_um) ** (1 / 1.67)
    power_w_sr = 0.1 * 1.1e-9 * 74 * 1e5 * (1 - (e1 / 100) ** 2) / (4 * math.pi)
    mean_kev = (100 - 5) / math.log(100 / 5)
    estimate = power_w_sr / (mean_kev * 1e3 * ELEMENTARY_CHARGE_C)
    assert estimate == pytest.approx(1.2e9, rel=0.1)

    spectrum = tungsten_transmission_spectrum(100.0)
    ratio = spectrum.total_photons_per_s_sr_ua / estimate
    assert 0.5 < ratio < 2.0


def test_thicker_target_gives_more_photons() -> None:
    thin = tungsten_transmission_spectrum(90.0, target_thickness_um=1.0)
    thicker = tungsten_transmission_spectrum(90.0, target_thickness_um=3.0)
    assert thicker.total_photons_per_s_sr_ua > thin.total_photons_per_s_sr_ua


def test_rebinning_conserves_photons_and_energy() -> None:
    fine = tungsten_transmission_spectrum(90.0, bin_width_kev=0.5)
    for n_bins in (1, 5, 24, 100):
        coarse = fine.rebinned(n_bins)
        assert coarse.energies_kev.size == n_bins
        assert coarse.total_photons_per_s_sr_ua == pytest.approx(
            fine.total_photons_per_s_sr_ua, rel=1e-6
        )
        assert coarse.energy_per_s_sr_ua_kev == pytest.approx(fine.energy_per_s_sr_ua_kev, rel=1e-6)
        assert coarse.mean_energy_kev == pytest.approx(fine.mean_energy_kev, rel=1e-6)
        assert np.all(np.diff(coarse.energies_kev) > 0)
    assert fine.rebinned(10_000) is fine


def test_normalized_and_filtered() -> None:
    spectrum = tungsten_transmission_spectrum(60.0)
    assert spectrum.normalized().sum() == pytest.approx(1.0, rel=1e-12)
    hardened = spectrum.filtered("aluminium", 1.0)
    assert hardened.total_photons_per_s_sr_ua < spectrum.total_photons_per_s_sr_ua
    assert hardened.mean_energy_kev > spectrum.mean_energy_kev
    np.testing.assert_array_equal(hardened.energies_kev, spectrum.energies_kev)
    assert spectrum.filtered("aluminium", 0.0).total_photons_per_s_sr_ua == pytest.approx(
        spectrum.total_photons_per_s_sr_ua
    )


@pytest.mark.parametrize("voltage_kv", [5.0, 9.99, 160.5, 300.0, float("nan")])
def test_out_of_range_voltage_is_rejected(voltage_kv: float) -> None:
    with pytest.raises(ValueError, match=r"voltage_kv .*\[10, 160\] kV"):
        tungsten_transmission_spectrum(voltage_kv)


def test_other_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="target_thickness_um"):
        tungsten_transmission_spectrum(60.0, target_thickness_um=0.0)
    with pytest.raises(ValueError, match="min_energy_kev"):
        tungsten_transmission_spectrum(20.0, min_energy_kev=25.0)
    with pytest.raises(ValueError, match="unknown material"):
        tungsten_transmission_spectrum(60.0, window_material="unobtainium")


def test_fluence_scales_with_current_and_inverse_square() -> None:
    spectrum = tungsten_transmission_spectrum(90.0)
    base = photon_fluence_rate(spectrum, current_ua=10.0, distance_mm=100.0)
    np.testing.assert_allclose(
        photon_fluence_rate(spectrum, current_ua=30.0, distance_mm=100.0), 3 * base
    )
    np.testing.assert_allclose(
        photon_fluence_rate(spectrum, current_ua=10.0, distance_mm=200.0), base / 4
    )
    # 1 sr at 1 mm is 1 mm^2.
    np.testing.assert_allclose(
        photon_fluence_rate(spectrum, current_ua=1.0, distance_mm=1.0),
        spectrum.photons_per_s_sr_ua,
    )
    with pytest.raises(ValueError, match="distance_mm"):
        photon_fluence_rate(spectrum, current_ua=1.0, distance_mm=0.0)
    with pytest.raises(ValueError, match="current_ua"):
        photon_fluence_rate(spectrum, current_ua=-1.0, distance_mm=1.0)


def test_spectrum_is_immutable() -> None:
    spectrum = tungsten_transmission_spectrum(50.0)
    with pytest.raises(ValueError):
        spectrum.photons_per_s_sr_ua[0] = 1.0
    with pytest.raises(AttributeError):
        spectrum.bin_width_kev = 2.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="equal length"):
        Spectrum(np.array([1.0, 2.0]), 1.0, np.array([1.0]))
