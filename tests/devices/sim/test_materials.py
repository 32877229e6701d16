"""Tests of nanoct.devices.sim.materials against xraydb directly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xraydb

from nanoct.devices.sim.materials import (
    MATERIALS,
    Material,
    absorbed_fraction,
    attenuation_table,
    get_material,
    linear_attenuation_per_mm,
    refractive_index,
)

REQUIRED = (
    "air",
    "epoxy",
    "silicon",
    "silicon_dioxide",
    "copper",
    "aluminium",
    "tungsten",
    "gold",
    "glass",
    "chitin",
    "beryllium",
    "caesium_iodide",
    "water",
    "polyimide",
    "titanium",
)


def test_registry_has_required_materials_with_usable_formulas() -> None:
    for name in REQUIRED:
        material = get_material(name)
        assert material.name == name
        mu = linear_attenuation_per_mm(name, [10.0, 60.0])
        assert np.all(np.isfinite(mu)) and np.all(mu > 0)
        assert mu[0] > mu[1]


def test_silicon_attenuation_equals_xraydb() -> None:
    energies_kev = np.array([8.0, 17.5, 30.0, 60.0, 100.0])
    # xraydb: energies in eV, result in 1/cm; ours: keV and 1/mm.
    expected_per_cm = xraydb.material_mu("Si", energies_kev * 1e3, density=2.329)
    np.testing.assert_allclose(
        linear_attenuation_per_mm("silicon", energies_kev), expected_per_cm / 10.0, rtol=1e-12
    )
    transmission = np.exp(-attenuation_table(["silicon"], energies_kev)[0] * 0.1)  # 100 um
    np.testing.assert_allclose(transmission, np.exp(-expected_per_cm * 0.01), rtol=1e-12)


def test_attenuation_table_shape_and_rows() -> None:
    energies = np.linspace(5.0, 90.0, 7)
    table = attenuation_table(["silicon", "tungsten", "air"], energies)
    assert table.shape == (3, 7)
    assert table.dtype == np.float64
    np.testing.assert_array_equal(table[1], linear_attenuation_per_mm("tungsten", energies))


def test_scalar_and_material_instance_inputs() -> None:
    custom = Material(name="dense_water", formula="H2O", density_g_cm3=2.0)
    mu = linear_attenuation_per_mm(custom, 20.0)
    assert mu.shape == ()
    assert float(mu) == pytest.approx(2.0 * float(linear_attenuation_per_mm("water", 20.0)) / 0.998)


def test_results_are_not_shared_with_the_cache() -> None:
    first = linear_attenuation_per_mm("copper", [20.0, 30.0])
    first[:] = -1.0
    again = linear_attenuation_per_mm("copper", [20.0, 30.0])
    assert np.all(again > 0)


def test_unknown_material_is_named_in_error() -> None:
    with pytest.raises(ValueError, match=r"unknown material 'unobtainium'; known: .*silicon"):
        get_material("unobtainium")
    with pytest.raises(ValueError, match="unobtainium"):
        linear_attenuation_per_mm("unobtainium", [10.0])


def test_energy_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="energies_kev"):
        linear_attenuation_per_mm("silicon", [0.0, 10.0])


def test_caesium_iodide_absorbed_fraction() -> None:
    energies = np.arange(20.0, 151.0, 1.0)
    for thickness_um in (150.0, 600.0):
        fraction = absorbed_fraction("caesium_iodide", thickness_um, energies)
        assert np.all(fraction > 0) and np.all(fraction <= 1)
        above = fraction[energies >= 40.0]
        assert np.all(np.diff(above) < 0)
    # The I (33.17 keV) and Cs (35.99 keV) K edges make the absorption jump up.
    below_i, above_i, above_cs = absorbed_fraction("caesium_iodide", 150.0, [33.0, 33.3, 36.1])
    below_cs = absorbed_fraction("caesium_iodide", 150.0, 35.9)
    assert above_i > 1.5 * below_i
    assert above_cs > below_cs
    # Photoelectric only: 1 - exp(-mu_photo t).
    mu_photo_per_cm = xraydb.material_mu("CsI", 60e3, density=4.51, kind="photo")
    assert float(absorbed_fraction("caesium_iodide", 150.0, 60.0)) == pytest.approx(
        1 - np.exp(-mu_photo_per_cm * 0.015), rel=1e-12
    )


def test_refractive_index_matches_xraydb_and_attenuation() -> None:
    energies = np.array([10.0, 20.0, 60.0])
    delta, beta = refractive_index("silicon", energies)
    expected_delta, _, _ = xraydb.xray_delta_beta("Si", 2.329, energies * 1e3)
    np.testing.assert_allclose(delta, expected_delta, rtol=1e-12)
    # 4 pi beta / lambda is the total attenuation (Chantler), within a few % of Elam's.
    lambda_mm = 12.398419843320026 / energies * 1e-7
    mu_from_beta = 4 * np.pi * beta / lambda_mm
    np.testing.assert_allclose(mu_from_beta, linear_attenuation_per_mm("silicon", energies), 0.05)


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        MATERIALS["steel"] = Material("steel", "Fe", 7.9)  # type: ignore[index]


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys; import nanoct.devices.sim.materials, nanoct.devices.sim.spectrum; "
        "assert 'xraydb' not in sys.modules, 'xraydb imported at import time'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
