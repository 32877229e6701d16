"""The Medipix2 single-photon-counting detector of the X-ray microscope.

Chip facts (Llopart, Campbell, Dinapoli, San Segundo & Pernigotti, "Medipix2: a 64-k pixel
readout chip with 55-um square elements working in single photon counting mode", IEEE Trans.
Nucl. Sci. 49 (2002) 2279, and the Medipix2 manual):
- 256 x 256 pixels of 55 um x 55 um (the paper, section 2, also states 55 um);
- two discriminators per pixel, a lower (THL) and an upper (THH) threshold that form an
  energy window; each has a 3-bit threshold-adjustment DAC ("trim", 0..7) per pixel;
- a 13-bit pseudo-random (shift-register) counter per pixel; an 8-bit configuration register
  per pixel holds the mask bit, the test bit and the two 3-bit trims;
- electronic noise 140 e- rms and an unadjusted threshold variation of about 360 e- rms
  (first measurements quoted in the abstract of Llopart et al. 2002);
- the shutter signal defines the acquisition time.

Counter depth: ``max_count = 8001``. A 13-bit register has 8192 states and a 13-bit
pseudo-random (LFSR) counter of Medipix2 runs through 8001 of them before it overflows (the
Medipix2 manual's figure as recalled: not verified against the manual here; 11810, often quoted,
is the *14-bit* Timepix counter, Llopart et al., NIM A 581 (2007) 485). ``max_count`` is a
spec field, so a measured value can replace it.

Assumptions (of the order reported for Medipix2 assemblies; none is a measured value of the
paper's detector):
- Sensor: 300 um silicon. An absorbed photon deposits its full energy in the pixel hit; the
  detection probability is the photoelectric absorbed fraction
  ``absorbed_fraction("silicon", 300, E)``. Charge sharing between neighbouring pixels, Si K
  fluorescence escape and pile-up are *not* modelled (documented simplification; the flux of
  the microscope is ~30 photons/mm2/s, so pile-up is irrelevant).
- Electronic noise: Gaussian, ENC 140 e- rms (Llopart et al. 2002), i.e. 0.51 keV with
  3.62 eV per electron-hole pair in Si. It blurs each photon's amplitude and produces noise
  hits by itself: the rate of noise crossings of a threshold at ``THL_eff`` keV above the
  baseline follows Rice's formula ``r0 * exp(-THL_eff**2 / (2 sigma**2))`` with
  ``r0 = 1e6 /s`` (assumption, ~ the inverse shaping time). At THL_eff = 5 keV the rate is
  ~1e-15 /s per pixel (no dark counts); at 0.5 keV it is ~6e5 /s.
- Threshold dispersion before equalisation: each pixel's effective threshold is offset from
  the global setting by a Gaussian with sigma 1.3 keV (360 e-, Llopart et al. 2002),
  independent for THL and THH (the paper does not give the THH figure: assumption).
- Trim step 1.0 keV per trim LSB (set on the chip by the THS DAC; assumption). The effective
  threshold is ``THx + offset + (trim - 3.5) * step``, so 3-bit trims correct offsets within
  +-3.5 steps (+-2.7 sigma) to a residual of about ``step / sqrt(12)`` = 0.29 keV (4.5x
  smaller); pixels outside that range cannot be equalised and are masked (~0.7 %).
- Untrimmed chip: all trims at 3 (mid-range); no pixels masked.

Counting model: photons arriving per energy are Poisson; each is detected with the sensor's
absorbed fraction and counted when ``E + noise`` lies in ``[THL_eff, THH_eff]``, so by Poisson
thinning a pixel's count is Poisson with mean ``sum_E N_E * a(E) * p_window(E)`` plus the noise
hits, then capped at ``max_count``; masked pixels read 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from nanoct.devices.sim.materials import absorbed_fraction

__all__ = ["EqualisationReport", "Medipix2Model", "Medipix2Spec"]

_EV_PER_EH_PAIR_SI = 3.62  # mean energy per electron-hole pair in silicon, eV


@dataclass(frozen=True)
class Medipix2Spec:
    """Constants of the Medipix2 assembly (see the module docstring for sources)."""

    pixels: int = 256
    pixel_um: float = 55.0
    sensor: str = "silicon"
    sensor_um: float = 300.0
    counter_bits: int = 13
    max_count: int = 8001
    trim_bits: int = 3
    trim_step_kev: float = 1.0
    default_trim: int = 3
    threshold_dispersion_kev: float = 1.3
    enc_electrons: float = 140.0
    noise_rate_r0_per_s: float = 1.0e6
    threshold_range_kev: tuple[float, float] = (0.0, 100.0)
    max_shutter_s: float = 1.0e5

    @property
    def electronic_noise_kev(self) -> float:
        """Electronic noise sigma in keV (ENC times the pair-creation energy of Si)."""
        return self.enc_electrons * _EV_PER_EH_PAIR_SI * 1e-3

    @property
    def max_trim(self) -> int:
        return 2**self.trim_bits - 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels, self.pixels


@dataclass(frozen=True)
class EqualisationReport:
    """Result of :meth:`Medipix2Model.equalise` (dispersions are over unmasked pixels, keV)."""

    target_kev: float
    sigma_before_low_kev: float
    sigma_after_low_kev: float
    sigma_before_high_kev: float
    sigma_after_high_kev: float
    n_masked: int


class Medipix2Model:
    """Per-pixel threshold offsets, trims, mask and the counting noise of a Medipix2, seeded.

    Attributes
    ----------
    offsets : dict ``{"low": (256, 256), "high": (256, 256)}``
        Per-pixel threshold offsets in keV (before trimming); read-only.
    trims : dict ``{"low": ..., "high": ...}`` of uint8 arrays in 0..7.
    mask : (256, 256) bool, True = masked (reads 0).
    """

    def __init__(self, *, seed: int = 0, spec: Medipix2Spec | None = None):
        self.spec = spec or Medipix2Spec()
        s = self.spec
        ss = np.random.SeedSequence([seed, 2002])
        map_seed, noise_seed = ss.spawn(2)
        rng = np.random.default_rng(map_seed)
        self.offsets: dict[str, np.ndarray] = {}
        for key in ("low", "high"):
            off = s.threshold_dispersion_kev * rng.standard_normal(s.shape)
            off.flags.writeable = False
            self.offsets[key] = off
        self.trims: dict[str, np.ndarray] = {
            key: np.full(s.shape, s.default_trim, dtype=np.uint8) for key in ("low", "high")
        }
        self.mask = np.zeros(s.shape, dtype=bool)
        self._rng = np.random.default_rng(noise_seed)

    # ------------------------------------------------------------------ validation
    def validate(
        self,
        *,
        thl_kev: float | None = None,
        thh_kev: float | None = None,
        shutter_s: float | None = None,
    ) -> None:
        """Raise ValueError naming the parameter, value and allowed range."""
        lo, hi = self.spec.threshold_range_kev
        for name, value in (("thl_kev", thl_kev), ("thh_kev", thh_kev)):
            if value is not None and not (np.isfinite(value) and lo <= value <= hi):
                raise ValueError(f"{name}={value!r} is outside [{lo}, {hi}] keV")
        if thl_kev is not None and thh_kev is not None and not thl_kev < thh_kev:
            raise ValueError(
                f"thh_kev={thh_kev!r} must be greater than thl_kev={thl_kev!r} "
                "(the window is [THL, THH])"
            )
        if shutter_s is not None and not (
            np.isfinite(shutter_s) and 0 < shutter_s <= self.spec.max_shutter_s
        ):
            raise ValueError(f"shutter_s={shutter_s!r} is outside (0, {self.spec.max_shutter_s}] s")

    def set_trims(self, low: npt.ArrayLike | None = None, high: npt.ArrayLike | None = None):
        """Load trim maps (integers 0..7, shape 256 x 256); ValueError otherwise."""
        s = self.spec
        for key, value in (("low", low), ("high", high)):
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.shape != s.shape:
                raise ValueError(f"trims[{key!r}] has shape {arr.shape}; expected {s.shape}")
            if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > s.max_trim:
                raise ValueError(
                    f"trims[{key!r}] must be integers in [0, {s.max_trim}]; "
                    f"got values in [{arr.min()}, {arr.max()}] ({arr.dtype})"
                )
        for key, value in (("low", low), ("high", high)):
            if value is not None:
                self.trims[key] = np.asarray(value).astype(np.uint8)

    # ------------------------------------------------------------------ thresholds
    def _trim_shift_kev(self, trims: np.ndarray) -> np.ndarray:
        return (trims.astype(float) - 0.5 * self.spec.max_trim) * self.spec.trim_step_kev

    def effective_threshold_kev(self, which: str, setting_kev: float) -> np.ndarray:
        """Per-pixel effective threshold of discriminator ``which`` ("low"/"high"), keV."""
        return setting_kev + self.offsets[which] + self._trim_shift_kev(self.trims[which])

    def noise_edge_kev(self) -> np.ndarray:
        """Per-pixel global THL at which the effective lower threshold meets the baseline.

        This is the centre of the noise peak a THL scan of a dark detector finds.
        """
        return -(self.offsets["low"] + self._trim_shift_kev(self.trims["low"]))

    def noise_rate_per_s(self, thl_kev: float) -> np.ndarray:
        """Per-pixel rate of noise hits (Rice's formula) at a global lower threshold."""
        sigma = self.spec.electronic_noise_kev
        eff = self.effective_threshold_kev("low", thl_kev)
        return self.spec.noise_rate_r0_per_s * np.exp(-(eff**2) / (2.0 * sigma**2))

    def equalise(self, thl_kev: float, thh_kev: float | None = None) -> EqualisationReport:
        """Choose the trims that bring each pixel's effective thresholds nearest the targets.

        The noise-edge idea: for every trim value the noise edge of a pixel moves by one trim
        step; the trim whose edge lies nearest the common target wins. Pixels whose best
        deviation still exceeds half a step (offset beyond the trim range) are masked. The
        trims and mask are stored in the model and a report of the dispersions is returned.
        """
        self.validate(thl_kev=thl_kev, thh_kev=thh_kev)
        s = self.spec
        candidates = np.arange(s.max_trim + 1)
        shifts = (candidates - 0.5 * s.max_trim) * s.trim_step_kev  # (8,)
        half = 0.5 * s.trim_step_kev * (1.0 + 1e-9)
        before: dict[str, float] = {}
        unreachable = np.zeros(s.shape, dtype=bool)
        for key in ("low", "high"):
            before[key] = float(self._deviation(key)[~self.mask].std())
            dev = self.offsets[key][None, :, :] + shifts[:, None, None]  # (8, n, n)
            best = np.argmin(np.abs(dev), axis=0)
            self.trims[key] = best.astype(np.uint8)
            unreachable |= np.abs(self._deviation(key)) > half
        self.mask = self.mask | unreachable
        good = ~self.mask
        return EqualisationReport(
            target_kev=float(thl_kev),
            sigma_before_low_kev=before["low"],
            sigma_after_low_kev=float(self._deviation("low")[good].std()),
            sigma_before_high_kev=before["high"],
            sigma_after_high_kev=float(self._deviation("high")[good].std()),
            n_masked=int(self.mask.sum()),
        )

    def _deviation(self, which: str) -> np.ndarray:
        """Effective threshold minus the global setting, keV."""
        return self.offsets[which] + self._trim_shift_kev(self.trims[which])

    # ------------------------------------------------------------------ counting
    def expected_counts(
        self,
        photons_per_pixel_per_energy: npt.ArrayLike,
        energies_kev: npt.ArrayLike,
        *,
        thl_kev: float,
        thh_kev: float | None,
        shutter_s: float,
    ) -> np.ndarray:
        """Mean count per pixel (photon + noise hits) before saturation and masking."""
        self.validate(thl_kev=thl_kev, thh_kev=thh_kev, shutter_s=shutter_s)
        s = self.spec
        photons = np.asarray(photons_per_pixel_per_energy, dtype=float)
        energies = np.atleast_1d(np.asarray(energies_kev, dtype=float))
        if energies.ndim != 1 or photons.shape != (energies.size, *s.shape):
            raise ValueError(
                f"photons_per_pixel_per_energy has shape {photons.shape}; expected "
                f"({energies.size}, {s.pixels}, {s.pixels}) for energies_kev of shape "
                f"{energies.shape}"
            )
        if not (np.all(np.isfinite(energies)) and np.all(energies > 0)):
            raise ValueError("energies_kev must be finite and > 0 keV")
        if not (np.all(np.isfinite(photons)) and np.all(photons >= 0)):
            raise ValueError("photons_per_pixel_per_energy must be finite and >= 0")
        sigma = s.electronic_noise_kev
        absorbed = absorbed_fraction(s.sensor, s.sensor_um, energies)
        z_low = self.effective_threshold_kev("low", thl_kev) / (math.sqrt(2.0) * sigma)
        z_high = (
            None
            if thh_kev is None
            else self.effective_threshold_kev("high", thh_kev) / (math.sqrt(2.0) * sigma)
        )
        mean = self.noise_rate_per_s(thl_kev) * shutter_s
        scale = 1.0 / (math.sqrt(2.0) * sigma)
        for k, e in enumerate(energies):
            if absorbed[k] <= 0 or not photons[k].any():
                continue
            # P(E + noise >= THL_eff) - P(E + noise > THH_eff)
            p = 0.5 * special.erfc(z_low - e * scale)
            if z_high is not None:
                p -= 0.5 * special.erfc(z_high - e * scale)
            mean += photons[k] * absorbed[k] * np.clip(p, 0.0, 1.0)
        return mean

    def count(
        self,
        photons_per_pixel_per_energy: npt.ArrayLike,
        energies_kev: npt.ArrayLike,
        *,
        thl_kev: float,
        thh_kev: float | None,
        shutter_s: float,
    ) -> np.ndarray:
        """One shutter's counter read-out, uint16 (256, 256).

        Parameters
        ----------
        photons_per_pixel_per_energy : (n_E, 256, 256)
            Expected photons arriving at each pixel during the shutter, per energy bin.
        energies_kev : (n_E,)
        thl_kev, thh_kev : float
            Global lower and upper thresholds, keV (``thh_kev=None``: upper one disabled).
        shutter_s : float
            Shutter (acquisition) time, s; sets the number of electronic-noise hits.
        """
        mean = self.expected_counts(
            photons_per_pixel_per_energy,
            energies_kev,
            thl_kev=thl_kev,
            thh_kev=thh_kev,
            shutter_s=shutter_s,
        )
        # cap the Poisson mean far above the counter depth (the counter stops anyway)
        counts = self._rng.poisson(np.minimum(mean, 1e3 * self.spec.max_count))
        counts = np.minimum(counts, self.spec.max_count)
        counts[self.mask] = 0
        return counts.astype(np.uint16)
