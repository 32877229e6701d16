"""X-ray tube spectra of the digital twin.

A polychromatic spectrum is a set of energy bins with a photon emission rate per bin, per
second, per steradian and per microampere of tube current (after self-absorption in the target
and attenuation in the exit window). :func:`tungsten_transmission_spectrum` models the
Feinfocus FXE 160 transmission target (a thin tungsten layer on a beryllium window); its
continuum and line generators (:func:`_kramers_continuum`, :func:`_characteristic_lines`) take
the element and layer as parameters so a later EPMA transmission target can reuse them.

Units: energies in keV, lengths in mm unless a name ends in ``_um``, tube current in uA.

Model summary (each item is an approximation; the constants are documented where defined)
------------------------------------------------------------------------------------------
* Continuum: Kramers' law, energy spectrum per electron ``dW/dE = k Z (E0 - E)`` for a thick
  target, with ``k`` fixed by the classic efficiency relation ``eta = K Z V``. A layer thinner
  than the electron range emits only while the electron slows from ``E0`` to its exit energy
  ``E1``: ``dW/dE = k Z (E0 - max(E, E1))`` (Kramers' thin-layer emission integrated along the
  slowing-down path).
* Electron range: Kanaya-Okayama, used both for the exit energy and for the generation depth.
* Lines: K and L shell ionisations from the Bethe / Green-Cosslett cross-section integrated
  along the slowing-down path, times the fluorescence yield and the relative line intensities
  of xraydb. Fluorescence excited by the continuum, Coster-Kronig transfers and electron
  backscatter are not modelled.
* Emission is isotropic into 4 pi (assumption for a transmission target: the forward
  anisotropy of bremsstrahlung at these energies is ignored).
* Self-absorption: photons are generated uniformly over the depth the electrons reach in the
  layer and attenuated in the tungsten left to cross, averaged over that depth (for a layer
  thinner than the range this tends to the brief's "attenuate through thickness/2").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.constants

from nanoct.devices.sim.materials import Material, linear_attenuation_per_mm

__all__ = [
    "DEFAULT_MIN_ENERGY_KEV",
    "DEFAULT_TARGET_THICKNESS_UM",
    "DEFAULT_WINDOW_THICKNESS_UM",
    "TUBE_VOLTAGE_RANGE_KV",
    "Spectrum",
    "photon_fluence_rate",
    "tungsten_transmission_spectrum",
]

#: Voltage range of the Feinfocus FXE 160 tube (kV): FXE-160 series, 10-160 kV.
TUBE_VOLTAGE_RANGE_KV: tuple[float, float] = (10.0, 160.0)

# Efficiency relation for thick-target bremsstrahlung, eta = K Z V with K ~ 1.1e-9 per volt
# (Compton & Allison, "X-Rays in Theory and Experiment", 2nd ed. 1935, ch. II; values of
# 0.9-1.4e-9 /V are quoted in the literature). Here per kilovolt.
_EFFICIENCY_PER_KV = 1.1e-6
# Kramers' energy spectrum per electron, dW/dE = k Z (E0 - E), integrates to k Z E0^2 / 2;
# dividing by E0 gives eta = k Z E0 / 2, so k = 2 K (photons per keV per electron when the
# photon spectrum dN/dE = k Z (E0 - E) / E is used).
_KRAMERS_K_PER_KEV = 2.0 * _EFFICIENCY_PER_KV

# Electrons per second per microampere of tube current.
_ELECTRONS_PER_S_PER_UA = 1e-6 / scipy.constants.e

# Kanaya & Okayama, J. Phys. D 5 (1972) 43: R[um] = 0.0276 A E^1.67 / (Z^0.889 rho), A in
# g/mol, E in keV, rho in g/cm^3.
_KO_PREFACTOR_UM = 0.0276
_KO_ENERGY_EXPONENT = 1.67
_KO_Z_EXPONENT = 0.889

# Bethe ionisation cross-section in the Green-Cosslett form,
# Q = 6.51e-20 z_s b_s ln(U) / (U E_c^2) cm^2 with E_c in keV (6.51e-14 cm^2 eV^2),
# Green & Cosslett, Proc. Phys. Soc. 78 (1961) 1206; b_K = 0.35 from the same work.
# b_L = 0.25 is an assumption (the value commonly used for L shells in microanalysis, e.g.
# Reed, "Electron Microprobe Analysis", 2nd ed. 1993). z_s: electrons in the (sub)shell.
_BETHE_CONSTANT_CM2_KEV2 = 6.51e-20
_SHELLS: tuple[tuple[str, int, float], ...] = (
    ("K", 2, 0.35),
    ("L1", 2, 0.25),
    ("L2", 2, 0.25),
    ("L3", 4, 0.25),
)

# Tungsten (xraydb element data: Z = 74, A = 183.84 g/mol); density 19.3 g/cm^3 (CRC Handbook).
_TUNGSTEN = Material(name="tungsten", formula="W", density_g_cm3=19.3)

# Assumptions for the FXE 160 transmission target (no datasheet value at hand): a sub-um focal
# spot needs a tungsten layer of the order of the spot size (the lateral spread of the electrons
# in the layer adds to the spot), so 1 um of W; on a 200 um beryllium exit window/substrate.
DEFAULT_TARGET_THICKNESS_UM = 1.0
DEFAULT_WINDOW_THICKNESS_UM = 200.0
# Lowest bin edge: below ~3 keV a 200 um Be window transmits < 1e-3 (assumption for the grid).
DEFAULT_MIN_ENERGY_KEV = 3.0


@dataclass(frozen=True, eq=False)
class Spectrum:
    """A binned X-ray spectrum.

    ``eq=False``: instances hold arrays, so they compare by identity.

    Attributes
    ----------
    energies_kev : numpy.ndarray
        Representative energy of each bin in keV (the bin centre, or the photon-weighted mean
        energy after :meth:`rebinned`), 1-D, increasing.
    bin_width_kev : float
        Nominal bin width in keV (the top bin of a tube spectrum is clipped at the voltage; a
        rebinned spectrum gives the mean width of its merged bins).
    photons_per_s_sr_ua : numpy.ndarray
        Photons emitted per bin, per second, per steradian, per microampere of tube current,
        after target self-absorption and the exit window (and any filters applied).
    """

    energies_kev: np.ndarray
    bin_width_kev: float
    photons_per_s_sr_ua: np.ndarray

    def __post_init__(self) -> None:
        energies = np.array(self.energies_kev, dtype=np.float64, ndmin=1)
        photons = np.array(self.photons_per_s_sr_ua, dtype=np.float64, ndmin=1)
        if energies.ndim != 1 or photons.shape != energies.shape:
            raise ValueError(
                "energies_kev and photons_per_s_sr_ua must be 1-D and of equal length; got "
                f"shapes {energies.shape} and {photons.shape}"
            )
        if not (np.all(np.isfinite(energies)) and np.all(energies > 0)):
            raise ValueError("energies_kev must be finite and > 0 keV")
        if not (np.all(np.isfinite(photons)) and np.all(photons >= 0)):
            raise ValueError("photons_per_s_sr_ua must be finite and >= 0")
        if not (math.isfinite(self.bin_width_kev) and self.bin_width_kev > 0):
            raise ValueError(f"bin_width_kev must be > 0 keV; got {self.bin_width_kev!r}")
        energies.setflags(write=False)
        photons.setflags(write=False)
        object.__setattr__(self, "energies_kev", energies)
        object.__setattr__(self, "photons_per_s_sr_ua", photons)
        object.__setattr__(self, "bin_width_kev", float(self.bin_width_kev))

    @property
    def total_photons_per_s_sr_ua(self) -> float:
        """Photons per second per steradian per microampere, summed over all bins."""
        return float(self.photons_per_s_sr_ua.sum())

    @property
    def mean_energy_kev(self) -> float:
        """Photon-number-weighted mean energy in keV (nan for an empty spectrum)."""
        total = self.photons_per_s_sr_ua.sum()
        if total <= 0:
            return float("nan")
        return float(np.dot(self.energies_kev, self.photons_per_s_sr_ua) / total)

    @property
    def energy_per_s_sr_ua_kev(self) -> float:
        """Emitted energy in keV per second per steradian per microampere."""
        return float(np.dot(self.energies_kev, self.photons_per_s_sr_ua))

    def normalized(self) -> np.ndarray:
        """Photon-number weights of the bins, summing to 1.

        Returns
        -------
        numpy.ndarray
            Dimensionless weights, same length as :attr:`energies_kev`.

        Raises
        ------
        ValueError
            If the spectrum holds no photons.
        """
        total = self.photons_per_s_sr_ua.sum()
        if total <= 0:
            raise ValueError("cannot normalise a spectrum with no photons")
        return self.photons_per_s_sr_ua / total

    def filtered(self, material: str | Material, thickness_mm: float) -> Spectrum:
        """The spectrum after a filter of uniform thickness.

        Each bin is attenuated by ``exp(-mu(E) t)`` at its representative energy (total
        attenuation, so scattered photons count as removed: a narrow-beam filter).

        Parameters
        ----------
        material : str or Material
            Registry name (see :data:`nanoct.devices.sim.materials.MATERIALS`) or Material.
        thickness_mm : float
            Filter thickness in mm (>= 0).

        Returns
        -------
        Spectrum
            A new spectrum on the same bins.
        """
        if not (math.isfinite(thickness_mm) and thickness_mm >= 0):
            raise ValueError(f"thickness_mm must be finite and >= 0 mm; got {thickness_mm!r}")
        mu = linear_attenuation_per_mm(material, self.energies_kev)
        return Spectrum(
            energies_kev=self.energies_kev,
            bin_width_kev=self.bin_width_kev,
            photons_per_s_sr_ua=self.photons_per_s_sr_ua * np.exp(-mu * thickness_mm),
        )

    def rebinned(self, n_bins: int) -> Spectrum:
        """A coarse spectrum for fast polychromatic image formation.

        Consecutive bins are merged into ``n_bins`` groups of (nearly) equal width; each group
        carries the summed photons and sits at its photon-weighted mean energy, so the total
        photon number and the total energy are conserved exactly (a group without photons
        sits at the mean of its bins' energies).

        Parameters
        ----------
        n_bins : int
            Number of bins wanted, >= 1. When it is not smaller than the current number of
            bins the spectrum is returned unchanged (e.g. a low-voltage spectrum that already
            has fewer bins).

        Returns
        -------
        Spectrum
            ``bin_width_kev`` is the mean width of the merged groups.
        """
        n_now = self.energies_kev.size
        if isinstance(n_bins, bool) or not (isinstance(n_bins, int | np.integer) and n_bins >= 1):
            raise ValueError(f"n_bins must be an integer >= 1; got {n_bins!r}")
        if n_bins >= n_now:
            return self
        groups = np.array_split(np.arange(n_now), int(n_bins))
        photons = np.empty(len(groups))
        energies = np.empty(len(groups))
        for i, idx in enumerate(groups):
            weights = self.photons_per_s_sr_ua[idx]
            photons[i] = weights.sum()
            if photons[i] > 0:
                energies[i] = np.dot(self.energies_kev[idx], weights) / photons[i]
            else:
                energies[i] = self.energies_kev[idx].mean()
        return Spectrum(
            energies_kev=energies,
            bin_width_kev=self.bin_width_kev * n_now / len(groups),
            photons_per_s_sr_ua=photons,
        )


def photon_fluence_rate(spectrum: Spectrum, current_ua: float, distance_mm: float) -> np.ndarray:
    """Photon fluence rate per bin at a distance from the focal spot.

    Inverse-square law: one steradian subtends ``distance_mm**2`` mm^2 at ``distance_mm``.

    Parameters
    ----------
    spectrum : Spectrum
        Source spectrum (photons / s / sr / uA per bin).
    current_ua : float
        Tube (target) current in microamperes, >= 0.
    distance_mm : float
        Distance from the focal spot in mm, > 0.

    Returns
    -------
    numpy.ndarray
        Photons per second per mm^2 in each bin.
    """
    if not (math.isfinite(current_ua) and current_ua >= 0):
        raise ValueError(f"current_ua must be finite and >= 0 uA; got {current_ua!r}")
    if not (math.isfinite(distance_mm) and distance_mm > 0):
        raise ValueError(f"distance_mm must be finite and > 0 mm; got {distance_mm!r}")
    return spectrum.photons_per_s_sr_ua * (current_ua / distance_mm**2)


# ---------------------------------------------------------------------------------------------
# Reusable physics (also for the EPMA transmission target)
# ---------------------------------------------------------------------------------------------


def _electron_range_um(energy_kev: float, z: int, a_g_mol: float, density_g_cm3: float) -> float:
    """Kanaya-Okayama electron range in micrometres (see ``_KO_PREFACTOR_UM``)."""
    return (
        _KO_PREFACTOR_UM
        * a_g_mol
        * energy_kev**_KO_ENERGY_EXPONENT
        / (z**_KO_Z_EXPONENT * density_g_cm3)
    )


def _exit_energy_kev(
    voltage_kv: float, layer_thickness_um: float, z: int, a_g_mol: float, density_g_cm3: float
) -> float:
    """Energy in keV with which an electron leaves a layer (0 if it is stopped).

    From the Kanaya-Okayama range-energy relation ``R ~ E^1.67``: the electron has
    ``R(E0) - t`` of range left, ``E1 = E0 (1 - t / R(E0))^(1/1.67)``.
    """
    full_range = _electron_range_um(voltage_kv, z, a_g_mol, density_g_cm3)
    if layer_thickness_um >= full_range:
        return 0.0
    return voltage_kv * (1.0 - layer_thickness_um / full_range) ** (1.0 / _KO_ENERGY_EXPONENT)


def _kramers_continuum(
    voltage_kv: float, z: float, bin_edges_kev: npt.ArrayLike, *, exit_energy_kev: float = 0.0
) -> np.ndarray:
    """Bremsstrahlung photons per electron (into 4 pi) in each energy bin.

    Integrates Kramers' photon spectrum ``dN/dE = k Z (E0 - max(E, E1)) / E`` exactly over
    each bin (``E1`` is the exit energy of an electron crossing a thin layer; 0 for a thick
    target), clipped at the voltage.

    Parameters
    ----------
    voltage_kv : float
        Tube voltage in kV (electron energy E0 in keV).
    z : float
        Atomic number of the target.
    bin_edges_kev : array_like
        Increasing bin edges in keV, all > 0.
    exit_energy_kev : float, optional
        Electron exit energy E1 in keV, 0 <= E1 < E0.

    Returns
    -------
    numpy.ndarray
        Photons per electron per bin, length ``len(bin_edges_kev) - 1``.
    """
    edges = np.asarray(bin_edges_kev, dtype=np.float64)
    e0 = float(voltage_kv)
    e1 = float(exit_energy_kev)
    lo = np.clip(edges[:-1], None, e0)
    hi = np.clip(edges[1:], None, e0)
    # Part of each bin below E1: the integrand is (E0 - E1) / E.
    lo_a, hi_a = np.minimum(lo, e1), np.minimum(hi, e1)
    below = np.zeros_like(lo)
    mask = hi_a > lo_a
    below[mask] = (e0 - e1) * np.log(hi_a[mask] / lo_a[mask])
    # Part above E1: the integrand is (E0 - E) / E.
    lo_b, hi_b = np.maximum(lo, e1), np.maximum(hi, e1)
    above = np.zeros_like(lo)
    mask = hi_b > lo_b
    above[mask] = e0 * np.log(hi_b[mask] / lo_b[mask]) - (hi_b[mask] - lo_b[mask])
    return _KRAMERS_K_PER_KEV * z * (below + above)


def _ionisations_per_electron(
    edge_kev: float,
    electrons_in_shell: int,
    bethe_b: float,
    voltage_kv: float,
    exit_energy_kev: float,
    z: int,
    a_g_mol: float,
) -> float:
    """Inner-shell ionisations per electron while it slows from E0 to max(E1, E_edge).

    ``N = n_atoms * integral Q(E) dR/dE dE`` with the Green-Cosslett cross-section and the
    Kanaya-Okayama range (``dR/dE = 1.67 R / E``); the density cancels.
    """
    e_low = max(exit_energy_kev, edge_kev)
    if voltage_kv <= e_low:
        return 0.0
    log_e = np.linspace(math.log(e_low), math.log(voltage_kv), 401)
    energy = np.exp(log_e)
    u = energy / edge_kev
    q_cm2 = _BETHE_CONSTANT_CM2_KEV2 * electrons_in_shell * bethe_b * np.log(u) / (u * edge_kev**2)
    # n_atoms * R(E): per cm^3 times cm; the density cancels (use rho = 1).
    n_atoms_per_cm3 = scipy.constants.N_A / a_g_mol
    range_cm = _electron_range_um(1.0, z, a_g_mol, 1.0) * 1e-4 * energy**_KO_ENERGY_EXPONENT
    integrand = q_cm2 * n_atoms_per_cm3 * _KO_ENERGY_EXPONENT * range_cm  # d N / d ln E
    return float(np.trapezoid(integrand, log_e))


@functools.lru_cache(maxsize=64)
def _characteristic_lines_cached(
    element: str, voltage_kv: float, exit_energy_kev: float
) -> tuple[np.ndarray, np.ndarray]:
    import xraydb  # lazy: no database access at import time

    z = int(xraydb.atomic_number(element))
    a_g_mol = float(xraydb.atomic_mass(element))
    edges = xraydb.xray_edges(element)
    energies: list[float] = []
    photons: list[float] = []
    for level, electrons, bethe_b in _SHELLS:
        edge = edges.get(level)
        if edge is None or voltage_kv <= edge.energy * 1e-3:
            continue
        ionisations = _ionisations_per_electron(
            edge.energy * 1e-3, electrons, bethe_b, voltage_kv, exit_energy_kev, z, a_g_mol
        )
        lines = xraydb.xray_lines(element, initial_level=level)
        total_intensity = sum(line.intensity for line in lines.values())
        if ionisations <= 0 or total_intensity <= 0:
            continue
        for line in lines.values():
            energies.append(line.energy * 1e-3)
            photons.append(ionisations * edge.fyield * line.intensity / total_intensity)
    order = np.argsort(energies)
    e_arr = np.asarray(energies, dtype=np.float64)[order]
    p_arr = np.asarray(photons, dtype=np.float64)[order]
    e_arr.setflags(write=False)
    p_arr.setflags(write=False)
    return e_arr, p_arr


def _characteristic_lines(
    element: str, voltage_kv: float, *, exit_energy_kev: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Characteristic K and L line photons per electron (into 4 pi), before absorption.

    Ionisations of the K, L1, L2 and L3 shells (Green-Cosslett cross-section integrated along
    the Kanaya-Okayama slowing-down path from the voltage down to the exit energy or the edge),
    times the shell's fluorescence yield (xraydb ``xray_edges``), shared among the lines that
    fill that vacancy in proportion to xraydb's relative intensities (``xray_lines``). A shell
    contributes only when the voltage exceeds its edge (W: L3 10.207 keV, K 69.525 keV).
    Not modelled (assumptions): fluorescence excited by the continuum (adds of the order of
    10-30 % to W K lines in thick targets), Coster-Kronig transfers, K->L vacancy cascades,
    electron backscatter.

    Parameters
    ----------
    element : str
        Target element symbol, e.g. ``"W"``.
    voltage_kv : float
        Electron energy E0 in keV.
    exit_energy_kev : float, optional
        Energy with which electrons leave a thin layer (0: thick target).

    Returns
    -------
    energies_kev, photons_per_electron : numpy.ndarray
        Line energies (keV, increasing) and photons per incident electron into 4 pi.
    """
    return _characteristic_lines_cached(str(element), float(voltage_kv), float(exit_energy_kev))


def _self_absorption(mu_per_mm: np.ndarray, thickness_um: float, depth_um: float) -> np.ndarray:
    """Mean transmission through a layer for photons generated uniformly over ``[0, depth]``.

    A photon born at depth x crosses ``t - x`` of the layer towards the exit face; the mean of
    ``exp(-mu (t - x))`` over x uniform in [0, d] is ``exp(-mu (t - d)) (1 - exp(-mu d))/(mu d)``.
    """
    t_mm = thickness_um * 1e-3
    d_mm = depth_um * 1e-3
    base = np.exp(-mu_per_mm * (t_mm - d_mm))
    x = mu_per_mm * d_mm
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(x > 1e-12, -np.expm1(-x) / np.where(x > 1e-12, x, 1.0), 1.0)
    return base * factor


# ---------------------------------------------------------------------------------------------
# The FXE 160 tungsten transmission target
# ---------------------------------------------------------------------------------------------


def _check_voltage(voltage_kv: float) -> float:
    lo, hi = TUBE_VOLTAGE_RANGE_KV
    if not (isinstance(voltage_kv, int | float | np.number) and lo <= voltage_kv <= hi):
        raise ValueError(
            f"voltage_kv must be within [{lo:g}, {hi:g}] kV (Feinfocus FXE 160); got {voltage_kv!r}"
        )
    return float(voltage_kv)


def tungsten_transmission_spectrum(
    voltage_kv: float,
    *,
    target_thickness_um: float = DEFAULT_TARGET_THICKNESS_UM,
    window_material: str = "beryllium",
    window_thickness_um: float = DEFAULT_WINDOW_THICKNESS_UM,
    bin_width_kev: float = 1.0,
    min_energy_kev: float = DEFAULT_MIN_ENERGY_KEV,
) -> Spectrum:
    """Emission spectrum of a tungsten transmission target (Feinfocus FXE 160).

    Kramers continuum for the part of the electrons' slowing down that happens in the tungsten
    layer (thick-target Kramers when the layer is thicker than the Kanaya-Okayama range), plus
    W K and L lines, emitted isotropically (4 pi, assumption), attenuated in the tungsten left
    between the generation depth and the exit face (uniform generation over the depth the
    electrons reach) and in the exit window. Bremsstrahlung from the window/substrate itself
    (Z = 4, i.e. ~5 % of W's per unit energy loss) is neglected.

    Parameters
    ----------
    voltage_kv : float
        Acceleration voltage in kV, within :data:`TUBE_VOLTAGE_RANGE_KV` (10-160 kV).
    target_thickness_um : float, optional
        Tungsten layer thickness in um (default 1 um: assumption, see module constants).
    window_material : str, optional
        Registry name of the exit window / target substrate (default beryllium).
    window_thickness_um : float, optional
        Window thickness in um (default 200 um: assumption).
    bin_width_kev : float, optional
        Bin width in keV (default 1 keV).
    min_energy_kev : float, optional
        Lower edge of the first bin in keV (default 3 keV); lines below it are dropped.

    Returns
    -------
    Spectrum
        Bins from ``min_energy_kev`` up to ``voltage_kv`` (the top bin is clipped at the
        voltage and its energy is the centre of the clipped bin); photons / s / sr / uA.

    Raises
    ------
    ValueError
        If ``voltage_kv`` is outside 10-160 kV, or another argument is out of range.
    """
    voltage = _check_voltage(voltage_kv)
    for name, value, allow_zero in (
        ("target_thickness_um", target_thickness_um, False),
        ("window_thickness_um", window_thickness_um, True),
        ("bin_width_kev", bin_width_kev, False),
    ):
        if not (math.isfinite(value) and (value > 0 or (allow_zero and value == 0))):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be finite and {bound}; got {value!r}")
    if not (math.isfinite(min_energy_kev) and 0.1 <= min_energy_kev < voltage):
        raise ValueError(
            f"min_energy_kev must be within [0.1, voltage_kv={voltage:g}) keV; "
            f"got {min_energy_kev!r}"
        )
    return _tungsten_spectrum_cached(
        voltage,
        float(target_thickness_um),
        str(window_material),
        float(window_thickness_um),
        float(bin_width_kev),
        float(min_energy_kev),
    )


@functools.lru_cache(maxsize=128)
def _tungsten_spectrum_cached(
    voltage_kv: float,
    target_thickness_um: float,
    window_material: str,
    window_thickness_um: float,
    bin_width_kev: float,
    min_energy_kev: float,
) -> Spectrum:
    """The tungsten transmission-target builder shared by the FXE 160 and the EPMA twins (no
    voltage-range check here: each source checks its own range)."""
    import xraydb  # lazy

    z = int(xraydb.atomic_number("W"))
    a_g_mol = float(xraydb.atomic_mass("W"))
    rho = _TUNGSTEN.density_g_cm3

    n_bins = max(1, math.ceil((voltage_kv - min_energy_kev) / bin_width_kev - 1e-9))
    edges = min_energy_kev + bin_width_kev * np.arange(n_bins + 1, dtype=np.float64)
    edges[-1] = min(edges[-1], voltage_kv)
    centres = 0.5 * (edges[:-1] + edges[1:])

    full_range_um = _electron_range_um(voltage_kv, z, a_g_mol, rho)
    exit_energy = _exit_energy_kev(voltage_kv, target_thickness_um, z, a_g_mol, rho)
    per_electron = _kramers_continuum(voltage_kv, z, edges, exit_energy_kev=exit_energy)

    line_e, line_n = _characteristic_lines("W", voltage_kv, exit_energy_kev=exit_energy)
    keep = (line_e >= edges[0]) & (line_e < edges[-1])
    line_e, line_n = line_e[keep], line_n[keep]

    depth_um = min(target_thickness_um, full_range_um)
    window_mm = window_thickness_um * 1e-3

    def transmission(energies: np.ndarray) -> np.ndarray:
        if energies.size == 0:
            return np.ones(0)
        mu_w = linear_attenuation_per_mm(_TUNGSTEN, energies)
        mu_window = linear_attenuation_per_mm(window_material, energies)
        return _self_absorption(mu_w, target_thickness_um, depth_um) * np.exp(
            -mu_window * window_mm
        )

    per_electron = per_electron * transmission(centres)
    line_bins = np.clip(np.searchsorted(edges, line_e, side="right") - 1, 0, n_bins - 1)
    np.add.at(per_electron, line_bins, line_n * transmission(line_e))

    return Spectrum(
        energies_kev=centres,
        bin_width_kev=bin_width_kev,
        photons_per_s_sr_ua=per_electron * _ELECTRONS_PER_S_PER_UA / (4.0 * math.pi),
    )
