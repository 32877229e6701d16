"""Propagation-based (in-line) phase contrast for the X-ray microscope.

With a sub-um spot, a specimen a few mm from the spot and the detector ~1 m away, weakly
absorbing objects show bright/dark Fresnel fringes at their edges (the paper's fly eye and
spider leg, section 2.2). The twin models this in three steps:

1. :func:`exit_wave`: projection approximation. The specimen is thin compared to the depth of
   field (``pixel^2 / lambda``), so its transmission is ``T = exp(-k t (beta + i delta))`` per
   material, with ``n = 1 - delta + i beta`` (time dependence ``exp(-i omega t)``, a plane wave
   is ``exp(+i k z)``; the brief's ``exp(-k (beta - i delta) t)`` is the complex conjugate,
   i.e. the ``exp(+i omega t)`` convention, which gives the same intensities with the conjugate
   propagator). ``k = 2 pi / lambda``; ``delta`` and ``beta`` from
   :func:`nanoct.devices.sim.materials.refractive_index`. Multiple scattering inside the
   object is ignored.
2. :func:`fresnel_propagate`: angular-spectrum transfer function
   ``H = exp(i k z (sqrt(1 - (lambda f)^2) - 1))`` (exact for free space, the common phase
   ``exp(i k z)`` dropped), on a field padded with its edge values so that the periodic FFT
   does not wrap fringes around. It is unitary, so without padding the summed intensity is
   preserved to rounding.
3. :func:`phase_contrast_image`: a point source at ``z1`` before the object and the detector
   ``z2`` behind it is equivalent, by the Fresnel scaling theorem, to a plane wave propagated
   over ``z_eff = z1 z2 / (z1 + z2)`` with everything magnified by ``M = (z1 + z2) / z1``
   (so the detector pixel maps to ``pixel / M`` in the object plane). Each energy is propagated
   separately (full temporal incoherence between energies) and the intensities are summed with
   the spectrum's weights (photon number; multiply by a detector efficiency if wanted). A
   finite source is treated as an incoherent sum of point sources: the image is convolved with
   the source profile projected into the object plane, scaled by ``(M - 1) / M`` (the
   penumbra ``s (M - 1)`` on the detector, divided by ``M``). Partial spatial coherence beyond
   this convolution, the detector's pixel integration and point-spread function, the
   ``1/M^2`` fluence dilution (images are normalised to the open beam) and air absorption are
   not modelled here.

Units: lengths in metres unless a name ends in ``_um``; energies in keV.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.constants
import scipy.fft
import scipy.ndimage

from nanoct.devices.sim.materials import Material, refractive_index

__all__ = [
    "PointSourceGeometry",
    "exit_wave",
    "fresnel_propagate",
    "phase_contrast_image",
    "wavelength_m",
]

_HC_KEV_M = scipy.constants.h * scipy.constants.c / (scipy.constants.e * 1e3)
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def wavelength_m(energies_kev: npt.ArrayLike) -> np.ndarray:
    """Photon wavelength in metres for energies in keV (``lambda = h c / E``)."""
    e = np.asarray(energies_kev, dtype=np.float64)
    if not (np.all(np.isfinite(e)) and np.all(e > 0)):
        raise ValueError("energies_kev must be finite and > 0 keV")
    return _HC_KEV_M / e


@dataclass(frozen=True)
class PointSourceGeometry:
    """Cone-beam geometry of the microscope, for the Fresnel scaling theorem.

    ``source_object_m`` may be ``math.inf`` (plane-wave illumination: ``M = 1``,
    ``z_eff = object_detector_m``).
    """

    source_object_m: float
    object_detector_m: float

    def __post_init__(self) -> None:
        if not (self.source_object_m > 0 and not math.isnan(self.source_object_m)):
            raise ValueError(f"source_object_m must be > 0 m; got {self.source_object_m!r}")
        if not (math.isfinite(self.object_detector_m) and self.object_detector_m >= 0):
            raise ValueError(f"object_detector_m must be >= 0 m; got {self.object_detector_m!r}")

    @property
    def magnification(self) -> float:
        if math.isinf(self.source_object_m):
            return 1.0
        return (self.source_object_m + self.object_detector_m) / self.source_object_m

    @property
    def effective_distance_m(self) -> float:
        """``z_eff = z1 z2 / (z1 + z2)``."""
        if math.isinf(self.source_object_m):
            return float(self.object_detector_m)
        z1, z2 = self.source_object_m, self.object_detector_m
        return z1 * z2 / (z1 + z2)

    @property
    def source_blur_factor(self) -> float:
        """Source size projected into the object plane per unit source size, ``(M-1)/M``."""
        m = self.magnification
        return (m - 1.0) / m

    def object_pixel_m(self, detector_pixel_m: float) -> float:
        """Effective (object-plane) pixel for a detector pixel: ``pixel / M``."""
        return detector_pixel_m / self.magnification


def exit_wave(
    thickness_maps_um: Mapping[str | Material, npt.ArrayLike], energies_kev: npt.ArrayLike
) -> np.ndarray:
    """Complex transmission of a thin specimen, per energy (projection approximation).

    Parameters
    ----------
    thickness_maps_um : mapping
        Projected thickness in um of each material (registry name or :class:`Material`),
        all maps of the same shape, >= 0. A material displacing air: give its thickness and
        ignore air's (air's delta is ~1e-9 of chitin's scale).
    energies_kev : array_like
        1-D photon energies in keV.

    Returns
    -------
    numpy.ndarray
        Complex, shape ``(n_energies, *map_shape)``:
        ``exp(-k sum_m t_m (beta_m + i delta_m))``.
    """
    energies = np.atleast_1d(np.asarray(energies_kev, dtype=np.float64))
    if energies.ndim != 1:
        raise ValueError(f"energies_kev must be 1-D; got shape {energies.shape}")
    if not thickness_maps_um:
        raise ValueError("thickness_maps_um must name at least one material")
    k = 2.0 * np.pi / wavelength_m(energies)
    exponent: np.ndarray | None = None
    for material, t in thickness_maps_um.items():
        t_m = np.asarray(t, dtype=np.float64) * 1e-6
        if not (np.all(np.isfinite(t_m)) and np.all(t_m >= 0)):
            raise ValueError(f"thickness map of {material!r} must be finite and >= 0 um")
        delta, beta = refractive_index(material, energies)
        coeff = (k * (beta + 1j * delta)).reshape((-1,) + (1,) * t_m.ndim)
        term = coeff * t_m[np.newaxis]
        if exponent is None:
            exponent = term
        elif term.shape != exponent.shape:
            raise ValueError("all thickness maps must have the same shape")
        else:
            exponent = exponent + term
    assert exponent is not None
    return np.exp(-exponent)


def fresnel_propagate(
    wave: npt.ArrayLike,
    wavelength_m: float,
    pixel_m: float,
    distance_m: float,
    *,
    pad_px: int | None = None,
) -> np.ndarray:
    """Free-space propagation of a complex field over its last two axes (angular spectrum).

    Parameters
    ----------
    wave : array_like
        Complex field, ndim >= 2 (leading axes are propagated independently).
    wavelength_m, pixel_m : float
        Wavelength and sampling pitch in metres (> 0).
    distance_m : float
        Propagation distance in metres (>= 0; 0 returns a copy of the input).
    pad_px : int, optional
        Pixels of edge-value padding on each side of both axes before the FFT (0: periodic
        boundaries, exactly unitary). Default: the lateral reach of the sampled transfer
        function, ``lambda z / (2 pixel^2)`` pixels, plus 8, at least 16 and at most the larger
        side of the field (the cap keeps memory bounded; edge padding then still separates the
        field from its periodic copies by one field width).

    Returns
    -------
    numpy.ndarray
        Complex field of the input's shape.
    """
    u = np.asarray(wave, dtype=np.complex128)
    if u.ndim < 2:
        raise ValueError(f"wave must have >= 2 dimensions (..., ny, nx); got shape {u.shape}")
    for name, value in (("wavelength_m", wavelength_m), ("pixel_m", pixel_m)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0 m; got {value!r}")
    if not (math.isfinite(distance_m) and distance_m >= 0):
        raise ValueError(f"distance_m must be finite and >= 0 m; got {distance_m!r}")
    if distance_m == 0:
        return u.copy()
    if pad_px is None:
        reach = math.ceil(wavelength_m * distance_m / (2.0 * pixel_m**2)) + 8
        pad_px = min(max(16, reach), max(u.shape[-2:]))
    if pad_px < 0:
        raise ValueError(f"pad_px must be >= 0; got {pad_px!r}")
    ny, nx = u.shape[-2:]
    if pad_px:
        shape_y = scipy.fft.next_fast_len(ny + 2 * pad_px)
        shape_x = scipy.fft.next_fast_len(nx + 2 * pad_px)
        py, px = shape_y - ny, shape_x - nx
        widths = [(0, 0)] * (u.ndim - 2) + [(py // 2, py - py // 2), (px // 2, px - px // 2)]
        padded = np.pad(u, widths, mode="edge")
    else:
        padded = u
    fy = scipy.fft.fftfreq(padded.shape[-2], d=pixel_m)
    fx = scipy.fft.fftfreq(padded.shape[-1], d=pixel_m)
    s = (wavelength_m * fy[:, None]) ** 2 + (wavelength_m * fx[None, :]) ** 2
    if np.any(s >= 1):
        raise ValueError("pixel_m is below lambda/2: evanescent components are not modelled")
    # k z (sqrt(1 - s) - 1), written without cancellation: -k z s / (1 + sqrt(1 - s)).
    k = 2.0 * np.pi / wavelength_m
    transfer = np.exp(-1j * k * distance_m * s / (1.0 + np.sqrt(1.0 - s)))
    out = scipy.fft.ifft2(scipy.fft.fft2(padded, axes=(-2, -1)) * transfer, axes=(-2, -1))
    if pad_px:
        y0, x0 = widths[-2][0], widths[-1][0]
        out = out[..., y0 : y0 + ny, x0 : x0 + nx]
    return np.ascontiguousarray(out)


def phase_contrast_image(
    thickness_maps_um: Mapping[str | Material, npt.ArrayLike],
    energies_kev: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    pixel_m: float,
    geometry: PointSourceGeometry,
    spot_fwhm_m: float = 0.0,
    propagate: bool = True,
) -> np.ndarray:
    """Open-beam-normalised in-line phase-contrast image, in the object plane.

    Parameters
    ----------
    thickness_maps_um : mapping
        Projected thickness (um) per material on a grid of pitch ``pixel_m`` in the object
        plane (2-D maps; use ``geometry.object_pixel_m(detector_pixel)`` for one sample per
        detector pixel).
    energies_kev : array_like
        Energies of the spectrum bins (keV).
    weights : array_like, optional
        Relative photon numbers of the bins (default: equal), >= 0, not all 0.
    pixel_m : float
        Object-plane sampling pitch in metres.
    geometry : PointSourceGeometry
        Source-object and object-detector distances.
    spot_fwhm_m : float
        FWHM of the Gaussian source in metres (0: point source).
    propagate : bool
        False gives the pure absorption (contact) image: no phase contrast.

    Returns
    -------
    numpy.ndarray
        ``sum_E w_E |P_zeff[T_E]|^2 / sum_E w_E``, convolved with the projected source; 1 in
        the open beam. Shape of the maps.
    """
    energies = np.atleast_1d(np.asarray(energies_kev, dtype=np.float64))
    w = np.ones_like(energies) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != energies.shape or not (np.all(np.isfinite(w)) and np.all(w >= 0)):
        raise ValueError("weights must be finite, >= 0 and match energies_kev")
    if w.sum() <= 0:
        raise ValueError("weights must not all be 0 (no photons)")
    if not (math.isfinite(spot_fwhm_m) and spot_fwhm_m >= 0):
        raise ValueError(f"spot_fwhm_m must be finite and >= 0 m; got {spot_fwhm_m!r}")
    keep = w > 0
    energies, w = energies[keep], w[keep] / w[keep].sum()
    waves = exit_wave(thickness_maps_um, energies)
    if waves.ndim != 3:
        raise ValueError(f"thickness maps must be 2-D; got shape {waves.shape[1:]}")
    z_eff = geometry.effective_distance_m
    image = np.zeros(waves.shape[1:])
    for wave, energy, weight in zip(waves, energies, w, strict=True):
        if propagate and z_eff > 0:
            lam = float(wavelength_m(energy))
            wave = fresnel_propagate(wave, lam, pixel_m, z_eff)
        image += weight * np.abs(wave) ** 2
    sigma_px = spot_fwhm_m / _FWHM_PER_SIGMA * geometry.source_blur_factor / pixel_m
    if sigma_px > 0:
        image = scipy.ndimage.gaussian_filter(image, sigma_px, mode="nearest")
    return image
