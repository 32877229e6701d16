"""Materials of the digital twin and their X-ray interaction coefficients.

Every coefficient comes from xraydb (Elam, Ravel & Sieber tables for attenuation; Chantler
tables for the refractive index). The public API takes energies in keV and returns lengths in
mm (attenuation in 1/mm); layer thicknesses whose name ends in ``_um`` are in micrometres.

Nothing touches the xraydb database at import time: the tables are read on the first call and
the results are cached per (material, energies) with :func:`functools.lru_cache`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import scipy.constants

__all__ = [
    "MATERIALS",
    "Material",
    "absorbed_fraction",
    "attenuation_table",
    "get_material",
    "linear_attenuation_per_mm",
    "refractive_index",
]

# Energy range over which the tables are trusted. Elam tables: 100 eV to 800 keV (xraydb warns
# outside it); Chantler tables (refractive index) are tabulated from 10 eV to ~ 1 MeV, so the
# tighter Elam range is used for both.
_MIN_ENERGY_KEV = 0.1
_MAX_ENERGY_KEV = 800.0

_CM_PER_MM = 0.1  # 1/cm -> 1/mm: multiply by 0.1

# h c in eV cm (CODATA 2018 exact h, c, e via scipy.constants): lambda_cm = _HC_EV_CM / E_eV.
_HC_EV_CM = scipy.constants.h * scipy.constants.c / scipy.constants.e * 1e2


@dataclass(frozen=True)
class Material:
    """A homogeneous material.

    Attributes
    ----------
    name : str
        Registry name (lower case, underscores).
    formula : str
        Chemical formula in xraydb's syntax, e.g. ``"SiO2"`` or ``"(N2)0.78(O2)0.21Ar0.01"``;
        the stoichiometry fixes the mass fractions of the elements.
    density_g_cm3 : float
        Mass density in g/cm^3.
    """

    name: str
    formula: str
    density_g_cm3: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.density_g_cm3) and self.density_g_cm3 > 0):
            raise ValueError(
                f"density_g_cm3 must be a finite positive number (g/cm^3); "
                f"got {self.density_g_cm3!r} for material {self.name!r}"
            )
        if not self.formula:
            raise ValueError(f"formula must be a non-empty chemical formula for {self.name!r}")


def _m(name: str, formula: str, density_g_cm3: float) -> tuple[str, Material]:
    return name, Material(name=name, formula=formula, density_g_cm3=density_g_cm3)


# Densities: CRC Handbook of Chemistry and Physics, 97th ed. (2016), "Physical constants of
# inorganic compounds" / "Density of elements", unless the comment says otherwise.
MATERIALS: Mapping[str, Material] = MappingProxyType(
    dict(
        [
            # Dry air near sea level, 20 C, 101.325 kPa: 1.20479e-3 g/cm^3 (NIST XCOM/ESTAR
            # material "Air, Dry (near sea level)"). Mole fractions as in xraydb's "air"
            # (N2 78.08 %, O2 20.95 %, Ar 0.934 %, CO2 0.041 %), trace gases dropped.
            _m("air", "(N2)0.7808(O2)0.2095Ar0.00934(CO2)0.00041", 1.20479e-3),
            # Bisphenol-A diglycidyl ether (DGEBA, C21H24O4) cured stoichiometrically with
            # triethylenetetramine (TETA, C6H18N4: 6 amine H react with 6 epoxide groups, an
            # addition reaction): 3 DGEBA + 1 TETA = C69H90N4O12. Density 1.16 g/cm^3:
            # assumption within the 1.15-1.20 g/cm^3 typical of cured DGEBA/amine resins.
            _m("epoxy", "C69H90N4O12", 1.16),
            _m("silicon", "Si", 2.329),
            # Amorphous SiO2 (fused silica / thermal oxide on chips): 2.20 g/cm^3 (CRC;
            # crystalline quartz would be 2.65).
            _m("silicon_dioxide", "SiO2", 2.20),
            _m("copper", "Cu", 8.96),
            _m("aluminium", "Al", 2.70),
            _m("tungsten", "W", 19.3),
            _m("gold", "Au", 19.3),
            # E-glass fibre: SiO2 54, Al2O3 14, CaO 18, MgO 5, B2O3 8, Na2O 1 (wt %), inside the
            # E-glass ranges of ASTM D578 (SiO2 52-62, Al2O3 12-16, CaO 16-25, MgO 0-5,
            # B2O3 0-10, Na2O+K2O 0-2); converted to moles per 100 g. Density 2.55 g/cm^3
            # (typical E-glass fibre 2.54-2.60 g/cm^3; the composition itself is an assumption).
            _m(
                "glass",
                "(SiO2)0.8987(Al2O3)0.1373(CaO)0.3210(MgO)0.1241(B2O3)0.1149(Na2O)0.0161",
                2.55,
            ),
            # Chitin, poly(N-acetylglucosamine) repeat unit C8H13NO5. Density 1.40 g/cm^3:
            # assumption (values of ~1.35-1.45 g/cm^3 are reported for alpha-chitin).
            _m("chitin", "C8H13NO5", 1.40),
            _m("beryllium", "Be", 1.848),
            # CsI: 4.51 g/cm^3 (CRC; also the Hamamatsu/Saint-Gobain CsI(Tl) datasheet value).
            _m("caesium_iodide", "CsI", 4.51),
            # Liquid water at 20 C: 0.998 g/cm^3 (CRC "Properties of water").
            _m("water", "H2O", 0.998),
            # Kapton HN polyimide, repeat unit C22H10N2O5, 1.42 g/cm^3 (DuPont Kapton HN
            # datasheet; also NIST XCOM "Kapton Polyimide Film").
            _m("polyimide", "C22H10N2O5", 1.42),
            _m("titanium", "Ti", 4.506),
        ]
    )
)


def get_material(name: str) -> Material:
    """Look a material up in :data:`MATERIALS`.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"silicon"``.

    Returns
    -------
    Material

    Raises
    ------
    ValueError
        If ``name`` is not in the registry; the message lists the known names.
    """
    try:
        return MATERIALS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(MATERIALS))
        raise ValueError(f"unknown material {name!r}; known: {known}") from None


def _as_material(material: str | Material) -> Material:
    if isinstance(material, Material):
        return material
    return get_material(material)


def _as_energies(energies_kev: npt.ArrayLike) -> np.ndarray:
    energies = np.asarray(energies_kev, dtype=np.float64)
    if energies.size and not (
        np.all(np.isfinite(energies))
        and energies.min() >= _MIN_ENERGY_KEV
        and energies.max() <= _MAX_ENERGY_KEV
    ):
        raise ValueError(
            f"energies_kev must lie in [{_MIN_ENERGY_KEV}, {_MAX_ENERGY_KEV}] keV (range of the "
            f"Elam tables); got values from {np.nanmin(energies)!r} to {np.nanmax(energies)!r}"
        )
    return energies


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float64)
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=512)
def _mu_per_mm(
    formula: str, density_g_cm3: float, energies_kev: tuple[float, ...], kind: str
) -> np.ndarray:
    import xraydb  # lazy: keep imports of this module free of database access

    energies_ev = np.asarray(energies_kev, dtype=np.float64) * 1e3
    # xraydb.material_mu: energies in eV, returns the linear coefficient in 1/cm. kind="total"
    # is photoelectric + coherent (Rayleigh) + incoherent (Compton) from the Elam tables.
    mu_per_cm = xraydb.material_mu(formula, energies_ev, density=density_g_cm3, kind=kind)
    return _frozen(np.atleast_1d(np.asarray(mu_per_cm, dtype=np.float64)) * _CM_PER_MM)


def _mu(material: str | Material, energies_kev: npt.ArrayLike, kind: str) -> np.ndarray:
    mat = _as_material(material)
    energies = _as_energies(energies_kev)
    flat = tuple(float(e) for e in energies.ravel())
    if not flat:
        return np.zeros(energies.shape, dtype=np.float64)
    return _mu_per_mm(mat.formula, float(mat.density_g_cm3), flat, kind).reshape(energies.shape)


def linear_attenuation_per_mm(material: str | Material, energies_kev: npt.ArrayLike) -> np.ndarray:
    """Total linear attenuation coefficient of a material.

    Photoelectric absorption + Compton (incoherent) + Rayleigh (coherent) scattering, from the
    Elam tables through :func:`xraydb.material_mu` (converted from 1/cm to 1/mm).

    Parameters
    ----------
    material : str or Material
        Registry name (see :data:`MATERIALS`) or a :class:`Material`.
    energies_kev : array_like
        Photon energies in keV, within 0.1-800 keV.

    Returns
    -------
    numpy.ndarray
        mu in 1/mm, float64, same shape as ``energies_kev`` (a new, writable array).

    Raises
    ------
    ValueError
        For an unknown material name or energies outside the tabulated range.
    """
    return np.array(_mu(material, energies_kev, "total"), dtype=np.float64)


def attenuation_table(materials: Sequence[str], energies_kev: npt.ArrayLike) -> np.ndarray:
    """Total linear attenuation coefficients of several materials on one energy grid.

    Parameters
    ----------
    materials : sequence of str
        Registry names (see :data:`MATERIALS`).
    energies_kev : array_like
        1-D photon energies in keV.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(materials), len(energies_kev))``, mu in 1/mm.
    """
    energies = np.atleast_1d(_as_energies(energies_kev))
    if energies.ndim != 1:
        raise ValueError(f"energies_kev must be 1-D; got shape {energies.shape}")
    if isinstance(materials, str):
        raise ValueError(f"materials must be a sequence of names, not the string {materials!r}")
    table = np.empty((len(materials), energies.size), dtype=np.float64)
    for row, name in enumerate(materials):
        table[row] = _mu(name, energies, "total")
    return table


def absorbed_fraction(
    material: str | Material, thickness_um: float, energies_kev: npt.ArrayLike
) -> np.ndarray:
    """Fraction of normally incident photons absorbed in a layer.

    Uses the *photoelectric* coefficient only (``kind="photo"`` in
    :func:`xraydb.material_mu`): ``1 - exp(-mu_photo * t)``. Scattered photons mostly leave a
    thin layer such as a scintillator without depositing their energy, so they are not counted
    as absorbed; the escape of the absorber's own fluorescence (e.g. Cs/I K lines from CsI) is
    not modelled.

    Parameters
    ----------
    material : str or Material
        Registry name or :class:`Material`, e.g. ``"caesium_iodide"``.
    thickness_um : float
        Layer thickness in micrometres (>= 0).
    energies_kev : array_like
        Photon energies in keV.

    Returns
    -------
    numpy.ndarray
        Absorbed fraction in [0, 1], same shape as ``energies_kev``.
    """
    if not (np.isfinite(thickness_um) and thickness_um >= 0):
        raise ValueError(f"thickness_um must be finite and >= 0 (um); got {thickness_um!r}")
    mu_photo = _mu(material, energies_kev, "photo")
    return -np.expm1(-mu_photo * (thickness_um * 1e-3))


@functools.lru_cache(maxsize=256)
def _delta_beta(
    formula: str, density_g_cm3: float, energies_kev: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    import xraydb  # lazy

    energies_ev = np.asarray(energies_kev, dtype=np.float64) * 1e3
    delta, _beta_photo, atlen_cm = xraydb.xray_delta_beta(formula, density_g_cm3, energies_ev)
    # Use the beta that belongs to the *total* attenuation, 4 pi beta / lambda = mu_total:
    # xraydb returns the attenuation length atlen = lambda / (4 pi beta_total).
    lambda_cm = _HC_EV_CM / energies_ev
    beta = lambda_cm / (4.0 * np.pi * np.asarray(atlen_cm, dtype=np.float64))
    return _frozen(np.atleast_1d(delta)), _frozen(np.atleast_1d(beta))


def refractive_index(
    material: str | Material, energies_kev: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Refractive index decrement and absorption index, ``n = 1 - delta - i beta``.

    From the Chantler form factors through :func:`xraydb.xray_delta_beta`. ``beta`` is the one
    consistent with the total (photoelectric + scattering) Chantler attenuation,
    ``mu_total = 4 pi beta / lambda``; it agrees with :func:`linear_attenuation_per_mm` (Elam
    tables) to within a few per cent away from absorption edges.

    Parameters
    ----------
    material : str or Material
        Registry name or :class:`Material`.
    energies_kev : array_like
        Photon energies in keV.

    Returns
    -------
    delta, beta : numpy.ndarray
        Dimensionless, each with the shape of ``energies_kev``.
    """
    mat = _as_material(material)
    energies = _as_energies(energies_kev)
    flat = tuple(float(e) for e in energies.ravel())
    if not flat:
        empty = np.zeros(energies.shape, dtype=np.float64)
        return empty, empty.copy()
    delta, beta = _delta_beta(mat.formula, float(mat.density_g_cm3), flat)
    return np.array(delta.reshape(energies.shape)), np.array(beta.reshape(energies.shape))
