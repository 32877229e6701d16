"""The Cameca SX100 electron probe micro-analyser turned into a transmission-target source.

The paper's X-ray microscope (section 2.1) replaced the lower half of an SX100's vacuum chamber
by a transmission target; the specimen sits in air just in front of the exit window. What the
twin models, and where each number comes from:

- Accelerating voltage 0.2-50 kV: the SX100's range (Cameca SX100 specification).
- Beam current 1 pA - 1000 nA (:data:`CURRENT_RANGE_NA`): the lower end is the SX100's; the
  upper end is an assumption beyond normal EPMA use (the paper chose the EPMA over SEMs for its
  higher currents). 200 nA is the paper's working point (section 2.1).
- Target: a 1 um tungsten layer (assumption, of the order of the sub-um spot) on a 50 um
  beryllium exit window (assumption: "a thin window"). The spectrum follows the voltage through
  the same Kramers thin-layer continuum, Green-Cosslett line generation, self-absorption and
  window model as the CT tube (:mod:`nanoct.devices.sim.spectrum`'s private helpers).
- Flux: the paper measured about 30 photons/mm^2/s at 1 m with 200 nA (section 2.1). The
  spectrum model's absolute output is scaled by one factor so that, at the calibration voltage
  :data:`CALIBRATION_VOLTAGE_KV` = 30 kV (assumption: the paper does not give the voltage of
  that measurement), 200 nA gives exactly 30 photons/mm^2/s at 1 m, counting every photon of the
  spectrum above its lowest bin edge. The flux is linear in current; its dependence on voltage
  (and the spectral shape) comes from the model. Air between source and detector is not part of
  the emitted spectrum (the calibration is of the inverse-square fluence at 1 m).
- Focal spot: Gaussian, 180 nm FWHM (assumption; the paper only says the spot's influence was
  negligible at 240 nm pixels, i.e. well below 300 nm), independent of current (assumption).
- Temporal shift of the focal spot (paper, conclusions): a seeded random walk of 0.1 um per
  sqrt(hour) per axis (assumption), switchable with ``drift``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.processes import RandomWalk
from nanoct.devices.sim.spectrum import Spectrum, _tungsten_spectrum_cached

__all__ = [
    "CALIBRATION_CURRENT_NA",
    "CALIBRATION_DISTANCE_MM",
    "CALIBRATION_FLUX_PER_MM2_S",
    "CALIBRATION_VOLTAGE_KV",
    "CURRENT_RANGE_NA",
    "DEFAULT_SPOT_FWHM_UM",
    "FWHM_PER_SIGMA",
    "SPOT_DRIFT_UM_PER_SQRT_H",
    "TARGET_THICKNESS_UM",
    "VOLTAGE_RANGE_KV",
    "WINDOW_MATERIAL",
    "WINDOW_THICKNESS_UM",
    "EPMASource",
    "EPMAState",
    "epma_target_spectrum",
]

HOUR_S = 3600.0
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Cameca SX100 accelerating voltage range (kV).
VOLTAGE_RANGE_KV: tuple[float, float] = (0.2, 50.0)
#: Beam current range (nA): 1 pA (SX100) up to 1000 nA (assumption, beyond normal EPMA use).
CURRENT_RANGE_NA: tuple[float, float] = (1e-3, 1000.0)

#: Tungsten layer thickness (um), assumption.
TARGET_THICKNESS_UM = 1.0
#: Exit window / target substrate (assumption: thin beryllium).
WINDOW_MATERIAL = "beryllium"
WINDOW_THICKNESS_UM = 50.0

#: Paper, section 2.1: ~30 photons/mm^2/s at 1 m with 200 nA.
CALIBRATION_FLUX_PER_MM2_S = 30.0
CALIBRATION_CURRENT_NA = 200.0
CALIBRATION_DISTANCE_MM = 1000.0
#: Voltage at which the model is calibrated to the paper's flux (assumption).
CALIBRATION_VOLTAGE_KV = 30.0

#: Focal spot FWHM (um), assumption ("well below 300 nm").
DEFAULT_SPOT_FWHM_UM = 0.18
#: Random-walk diffusion of the spot centre, um per sqrt(hour) per axis (assumption).
SPOT_DRIFT_UM_PER_SQRT_H = 0.1

# Energy grid: bins of 0.5 keV from 1 keV (a 50 um Be window transmits ~3e-3 at 1 keV); for
# voltages of 1 kV and below the grid runs from V/2 to V in 4 bins (assumption for the grid).
_BIN_WIDTH_KEV = 0.5
_MIN_ENERGY_KEV = 1.0


def _check_range(name: str, value: float, bounds: tuple[float, float], unit: str) -> float:
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name} must be a number in [{lo:g}, {hi:g}] {unit}; got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(
            f"{name}={value!r} is outside the Cameca SX100 source range [{lo:g}, {hi:g}] {unit}"
        )
    return v


def epma_target_spectrum(
    voltage_kv: float,
    *,
    target_thickness_um: float = TARGET_THICKNESS_UM,
    window_material: str = WINDOW_MATERIAL,
    window_thickness_um: float = WINDOW_THICKNESS_UM,
) -> Spectrum:
    """Uncalibrated model spectrum of the EPMA's tungsten transmission target.

    Same physics as :func:`nanoct.devices.sim.spectrum.tungsten_transmission_spectrum`
    (Kramers thin-layer continuum, K/L lines, self-absorption, window; isotropic emission) on
    the SX100's voltage range. Photons / s / sr / uA per bin, *before* the flux calibration
    (:meth:`EPMASource.spectrum` applies it).

    Raises
    ------
    ValueError
        If ``voltage_kv`` is outside 0.2-50 kV or a thickness is not positive / finite.
    """
    voltage = _check_range("voltage_kv", voltage_kv, VOLTAGE_RANGE_KV, "kV")
    if not (math.isfinite(target_thickness_um) and target_thickness_um > 0):
        raise ValueError(f"target_thickness_um must be > 0 um; got {target_thickness_um!r}")
    if not (math.isfinite(window_thickness_um) and window_thickness_um >= 0):
        raise ValueError(f"window_thickness_um must be >= 0 um; got {window_thickness_um!r}")
    return _spectrum_cached(
        voltage, float(target_thickness_um), str(window_material), float(window_thickness_um)
    )


def _spectrum_cached(
    voltage_kv: float, target_um: float, window_material: str, window_um: float
) -> Spectrum:
    """The shared tungsten-target builder of spectrum.py on the EPMA's energy grid: 0.5 keV
    bins from 1 keV, or 4 bins from V/2 to V at the lowest voltages."""
    if voltage_kv > 2.0 * _MIN_ENERGY_KEV:
        e_min, width = _MIN_ENERGY_KEV, _BIN_WIDTH_KEV
    else:
        e_min = voltage_kv / 2.0
        width = (voltage_kv - e_min) / 4.0
    return _tungsten_spectrum_cached(
        voltage_kv, target_um, window_material, window_um, width, e_min
    )


@functools.lru_cache(maxsize=1)
def _calibration_factor() -> float:
    """Scale of the model output that reproduces the paper's flux at the calibration point."""
    model = epma_target_spectrum(CALIBRATION_VOLTAGE_KV).total_photons_per_s_sr_ua
    per_mm2_s = model * (CALIBRATION_CURRENT_NA * 1e-3) / CALIBRATION_DISTANCE_MM**2
    return CALIBRATION_FLUX_PER_MM2_S / per_mm2_s


@dataclass(frozen=True)
class EPMAState:
    """The EPMA source at one twin time."""

    time_s: float
    voltage_kv: float
    current_na: float  # 0 while the beam is off
    beam_on: bool
    spot_x_um: float  # spot-centre offset from its initial position, in the target plane
    spot_y_um: float
    spot_fwhm_um: float

    @property
    def spot_sigma_um(self) -> float:
        """Standard deviation of the Gaussian spot."""
        return self.spot_fwhm_um / FWHM_PER_SIGMA


class EPMASource:
    """Twin of the SX100 transmission-target source (see the module docstring for sources).

    Parameters
    ----------
    clock : SimClock
    seed : int
        Seeds the focal-spot random walk.
    drift : bool
        Temporal shift of the focal spot on (default) or off.
    spot_fwhm_um : float
        Focal spot FWHM in um (default 0.18, assumption).
    """

    VOLTAGE_RANGE_KV = VOLTAGE_RANGE_KV
    CURRENT_RANGE_NA = CURRENT_RANGE_NA

    def __init__(
        self,
        clock: SimClock,
        *,
        seed: int,
        drift: bool = True,
        spot_fwhm_um: float = DEFAULT_SPOT_FWHM_UM,
    ) -> None:
        if not (math.isfinite(spot_fwhm_um) and spot_fwhm_um > 0):
            raise ValueError(f"spot_fwhm_um must be > 0 um; got {spot_fwhm_um!r}")
        self.clock = clock
        self.drift = bool(drift)
        self.spot_fwhm_um = float(spot_fwhm_um)
        seq = np.random.SeedSequence([int(seed), 100])  # 100: SX100 stream
        self._walk = RandomWalk(seq, SPOT_DRIFT_UM_PER_SQRT_H / math.sqrt(HOUR_S), dims=2)
        self.voltage_kv = CALIBRATION_VOLTAGE_KV
        self.current_na = CALIBRATION_CURRENT_NA
        self.beam_on = True

    # ---- settings -------------------------------------------------------------------------
    def validate(self, *, voltage_kv: float | None = None, current_na: float | None = None) -> None:
        """Raise ValueError naming the parameter, its value and the allowed range."""
        if voltage_kv is not None:
            _check_range("voltage_kv", voltage_kv, VOLTAGE_RANGE_KV, "kV")
        if current_na is not None:
            _check_range("current_na", current_na, CURRENT_RANGE_NA, "nA")

    def configure(
        self, *, voltage_kv: float | None = None, current_na: float | None = None
    ) -> None:
        """Validate, then apply all settings (or none)."""
        self.validate(voltage_kv=voltage_kv, current_na=current_na)
        if voltage_kv is not None:
            self.voltage_kv = float(voltage_kv)
        if current_na is not None:
            self.current_na = float(current_na)

    def switch(self, on: bool) -> None:
        """Electron beam on or off."""
        self.beam_on = bool(on)

    # ---- emission -------------------------------------------------------------------------
    def spectrum(self) -> Spectrum:
        """Calibrated emitted spectrum at the present voltage (photons / s / sr / uA per bin)."""
        model = epma_target_spectrum(self.voltage_kv)
        return Spectrum(
            energies_kev=model.energies_kev,
            bin_width_kev=model.bin_width_kev,
            photons_per_s_sr_ua=model.photons_per_s_sr_ua * _calibration_factor(),
        )

    def photons_per_mm2_s_at(self, distance_mm: float) -> float:
        """Photon fluence rate (all energies) at ``distance_mm`` from the spot, inverse square.

        0 while the beam is off.
        """
        if not (math.isfinite(distance_mm) and distance_mm > 0):
            raise ValueError(f"distance_mm must be finite and > 0 mm; got {distance_mm!r}")
        if not self.beam_on:
            return 0.0
        total = self.spectrum().total_photons_per_s_sr_ua
        return total * (self.current_na * 1e-3) / distance_mm**2

    # ---- time-dependent behaviour ---------------------------------------------------------
    def spot_offset_um(self, t: float) -> tuple[float, float]:
        """Spot-centre offset (x, y) in um at twin time ``t`` (0 with drift off)."""
        if not self.drift:
            return 0.0, 0.0
        x, y = self._walk(t)
        return float(x), float(y)

    def state(self, t: float | None = None) -> EPMAState:
        """Snapshot at twin time ``t`` (now if None)."""
        t = self.clock.now() if t is None else float(t)
        sx, sy = self.spot_offset_um(t)
        return EPMAState(
            time_s=t,
            voltage_kv=self.voltage_kv,
            current_na=self.current_na if self.beam_on else 0.0,
            beam_on=self.beam_on,
            spot_x_um=sx,
            spot_y_um=sy,
            spot_fwhm_um=self.spot_fwhm_um,
        )
