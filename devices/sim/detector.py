"""The Hamamatsu C9312SK-05 flat panel: an integrating CsI detector read out in 12 bits.

From the paper and the design card: 50 um pixels, 2048 x 2048 (the "2k" panel), 12-bit
read-out. Binning 1/2/4 is modelled as digital averaging of b x b pixels, so a binned frame
keeps the 12-bit scale and its photon noise falls by b (assumption: the vendor's binning mode
is not described in the paper).

Assumptions (typical of CsI flat panels of this class; none is from a datasheet):
- CsI(Tl) scintillator 150 um thick; it absorbs photons with the photoelectric probability of
  that layer and converts the deposited energy to signal in proportion.
- Conversion gain 0.07 ADU per keV deposited (chosen so that the open beam of the paper's
  high-focus setting, 90 kV and 1 W at 250 mm, gives about 60 % of full scale in 5 s).
- Scintillator light spread: Gaussian, sigma 30 um.
- Offset 100 ADU with 8 ADU pixel-to-pixel spread; dark current 2 ADU/s with 20 % spread;
  read noise 2.5 ADU rms per pixel and frame; gain non-uniformity 3 % (smooth + per pixel).
- Read-out time 0.5 s per frame at 1x1, 0.25 s at 2x2, 0.125 s at 4x4.

Noise model: photons arrive as a compound Poisson process, so the signal variance equals
``gain * E_var * mean`` with ``E_var = <E^2>/<E>`` of the absorbed spectrum. The twin draws a
Poisson number of "effective photons" of energy ``E_var`` per pixel, which reproduces both
moments of the polychromatic signal exactly. Light spread is applied to the expected signal
before the noise (the noise of real panels is slightly correlated between pixels; ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["FlatPanelModel", "FlatPanelSpec"]


@dataclass(frozen=True)
class FlatPanelSpec:
    """Constants of the panel (see the module docstring for their sources)."""

    native_pixels: int = 2048
    pixel_mm: float = 0.050
    bits: int = 12
    scintillator: str = "caesium_iodide"
    scintillator_um: float = 150.0
    gain_adu_per_kev: float = 0.07
    light_spread_sigma_mm: float = 0.030
    offset_adu: float = 100.0
    offset_spread_adu: float = 8.0
    dark_current_adu_s: float = 2.0
    dark_spread: float = 0.2
    read_noise_adu: float = 2.5
    gain_nonuniformity: float = 0.03
    readout_s_1x1: float = 0.5
    allowed_binning: tuple[int, ...] = (1, 2, 4)
    exposure_range_s: tuple[float, float] = (0.01, 60.0)
    max_frames: int = 64

    @property
    def saturation_adu(self) -> int:
        return 2**self.bits - 1


class FlatPanelModel:
    """Per-pixel maps and the noise of the panel, seeded.

    Parameters
    ----------
    seed : int
    spec : FlatPanelSpec
    noise : bool
        False gives the expected (noise-free, unquantised) frames; maps stay on.
    """

    def __init__(self, *, seed: int = 0, spec: FlatPanelSpec | None = None, noise: bool = True):
        self.spec = spec or FlatPanelSpec()
        self.noise = noise
        ss = np.random.SeedSequence([seed, 9312])
        map_seed, self._noise_seed = ss.spawn(2)
        self._maps = self._make_maps(np.random.default_rng(map_seed))
        self._rng = np.random.default_rng(self._noise_seed)
        self._binned_maps: dict[int, dict[str, np.ndarray]] = {}

    def _make_maps(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = self.spec
        n = s.native_pixels
        smooth = ndimage.gaussian_filter(rng.standard_normal((n // 16, n // 16)), 4.0)
        smooth = ndimage.zoom(smooth / (smooth.std() + 1e-12), 16, order=1)
        gain = 1.0 + s.gain_nonuniformity * (0.8 * smooth + 0.6 * rng.standard_normal((n, n)))
        offset = s.offset_adu + s.offset_spread_adu * rng.standard_normal((n, n))
        dark = s.dark_current_adu_s * (1.0 + s.dark_spread * rng.standard_normal((n, n)))
        return {
            "gain": gain.astype(np.float32),
            "offset": offset.astype(np.float32),
            "dark": np.clip(dark, 0.0, None).astype(np.float32),
        }

    def validate(
        self,
        *,
        binning: int | None = None,
        exposure_s: float | None = None,
        frames: int | None = None,
    ) -> None:
        """Raise ValueError naming the parameter, value and allowed range."""
        s = self.spec
        if binning is not None and binning not in s.allowed_binning:
            raise ValueError(f"binning={binning!r} is not supported; allowed: {s.allowed_binning}")
        if exposure_s is not None:
            lo, hi = s.exposure_range_s
            if not (lo <= exposure_s <= hi):
                raise ValueError(f"exposure_s={exposure_s!r} is outside [{lo}, {hi}] s")
        if frames is not None and not (
            isinstance(frames, int | np.integer) and 1 <= frames <= s.max_frames
        ):
            raise ValueError(f"frames={frames!r} must be an integer in [1, {s.max_frames}]")

    def shape(self, binning: int) -> tuple[int, int]:
        n = self.spec.native_pixels // binning
        return n, n

    def pixel_mm(self, binning: int) -> float:
        return self.spec.pixel_mm * binning

    def readout_s(self, binning: int) -> float:
        return self.spec.readout_s_1x1 / binning

    def maps(self, binning: int) -> dict[str, np.ndarray]:
        """Gain, offset and dark-current maps at a binning (averages of the native maps)."""
        if binning not in self._binned_maps:
            n = self.spec.native_pixels // binning
            self._binned_maps[binning] = {
                k: v.reshape(n, binning, n, binning).mean(axis=(1, 3))
                for k, v in self._maps.items()
            }
        return self._binned_maps[binning]

    def light_spread_sigma_px(self, binning: int) -> float:
        return self.spec.light_spread_sigma_mm / self.pixel_mm(binning)

    def read_frames(
        self,
        deposited_kev: np.ndarray,
        e_var_kev: np.ndarray | float,
        *,
        binning: int,
        exposure_s: float,
        frames: int = 1,
        frame_scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Average of ``frames`` read-outs of one exposure pattern.

        Parameters
        ----------
        deposited_kev : (rows, cols)
            Expected energy deposited per *native* pixel area during one exposure, keV
            (already spread by the scintillator).
        e_var_kev : (rows, cols) or float
            ``<E^2>/<E>`` of the absorbed photons, keV.
        frame_scale : (frames,), optional
            Per-frame multiplier of the signal (source flicker).

        Returns
        -------
        (rows, cols) float32 in ADU: the mean of the integer 12-bit frames.
        """
        s = self.spec
        m = self.maps(binning)
        base = m["offset"] + m["dark"] * np.float32(exposure_s)
        signal_adu = (np.float32(s.gain_adu_per_kev) * m["gain"]) * deposited_kev.astype(np.float32)
        scales = np.ones(frames) if frame_scale is None else np.asarray(frame_scale, dtype=float)
        if not self.noise:
            mean = base + signal_adu * np.float32(scales.mean())
            return np.clip(mean, 0, s.saturation_adu).astype(np.float32)
        b2 = binning * binning
        e_var = np.asarray(e_var_kev, dtype=np.float32)
        # effective photon count per *binned* pixel (b^2 native pixels are averaged)
        photons = deposited_kev.astype(np.float32) / e_var * np.float32(b2)
        adu_per_photon = np.float32(s.gain_adu_per_kev) * m["gain"] * e_var / np.float32(b2)
        read_sigma = np.float32(s.read_noise_adu / binning)
        acc = np.zeros(photons.shape, dtype=np.float32)
        for k in range(frames):
            counts = self._rng.poisson(photons * np.float32(scales[k])).astype(np.float32)
            frame = base + counts * adu_per_photon
            frame += read_sigma * self._rng.standard_normal(photons.shape, dtype=np.float32)
            np.rint(frame, out=frame)
            np.clip(frame, 0, s.saturation_adu, out=frame)
            acc += frame
        return acc / np.float32(frames)

    def expected_variance(
        self,
        mean_adu: np.ndarray,
        e_var_kev: float,
        *,
        binning: int,
        exposure_s: float,
        frames: int = 1,
    ) -> np.ndarray:
        """Variance of an averaged frame the model predicts for a uniform gain of 1.

        ``(mean - offset - dark) * gain * E_var / b^2 + read^2 / b^2 + 1/12`` over ``frames``
        (the 1/12 is the rounding to integer ADU).
        """
        s = self.spec
        base = s.offset_adu + s.dark_current_adu_s * exposure_s
        photon = (np.asarray(mean_adu) - base) * s.gain_adu_per_kev * e_var_kev / binning**2
        return (photon + (s.read_noise_adu / binning) ** 2 + 1.0 / 12.0) / frames
