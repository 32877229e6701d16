"""Single-material phase retrieval (Paganin) for propagation-based phase contrast.

The X-ray microscope images its specimens ~1 m behind them with a sub-um spot: edges carry
strong Fresnel fringes (the paper's Figs. 8 and 9). Reconstructed as if they were absorption,
the fringes become a bright rim inside every edge and a negative one outside, which a
non-negative reconstruction cannot follow: sizes and attenuation values come out wrong. For a
specimen of one material (or several with one ratio ``delta / beta``) the transport-of-
intensity equation can be inverted exactly (Paganin, Mayo, Gureyev, Miller & Wilkins,
J. Microsc. 206 (2002) 33, eq. 10):

    T(r) = F^-1 [ F[I / I_0](k) / (1 + z delta |k|^2 / mu) ](r),

with ``k`` the angular spatial frequency in the object plane, ``mu = 4 pi beta / lambda`` and
``z`` the effective propagation distance. For a point source at ``z1`` from the object and a
detector ``z2`` behind it the Fresnel scaling theorem gives ``z = z2 / M`` with
``M = (z1 + z2) / z1`` in object-plane coordinates (pixel = detector pixel / M). ``T`` is the
object's absorption-only transmission ``exp(-mu t)``; ``-log T`` is an ordinary line integral
for FBP, FDK or (as filtered counts) the likelihood methods.

Assumptions: a single ``delta / beta`` (the specimen's material), one effective energy for a
polychromatic beam (``delta / beta`` grows roughly as ``E^2``: choose the detected spectrum's
mean), the near-field (TIE) regime. The filter is a low-pass (its width is
``sqrt(z delta / mu)``): it also suppresses the photon noise, which is why it helps most at low
counts.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

__all__ = ["paganin_filter", "paganin_length_mm"]

#: h c in keV nm, for the wavelength (CODATA 2018: 1.239 841 98 keV nm).
_HC_KEV_NM = 1.23984198


def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number > 0") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    return v


def paganin_length_mm(
    *, sod_mm: float, sdd_mm: float, delta_over_beta: float, energy_kev: float
) -> float:
    """``sqrt(z delta / mu)`` in mm, object plane: the width of the Paganin low-pass.

    ``z = (sdd - sod) / M`` with ``M = sdd / sod``; ``delta / mu = (delta / beta) lambda /
    (4 pi)``.
    """
    sod = _positive("sod_mm", sod_mm)
    sdd = _positive("sdd_mm", sdd_mm)
    if not sdd > sod:
        raise ValueError(f"sdd_mm={sdd_mm!r} must exceed sod_mm={sod_mm!r}")
    ratio = _positive("delta_over_beta", delta_over_beta)
    lam_mm = _HC_KEV_NM / _positive("energy_kev", energy_kev) * 1e-6
    z_mm = (sdd - sod) * sod / sdd
    return math.sqrt(z_mm * ratio * lam_mm / (4.0 * math.pi))


def paganin_filter(
    transmission: np.ndarray,
    *,
    pixel_mm: float,
    sod_mm: float,
    sdd_mm: float,
    delta_over_beta: float,
    energy_kev: float,
) -> np.ndarray:
    """Absorption transmission of a single-material specimen from its phase-contrast image.

    Parameters
    ----------
    transmission : ndarray, shape (row, column) or (angle, row, column)
        Flat-field-normalised images ``I / I_0`` (1 = open beam), detector geometry.
    pixel_mm : float
        Detector pixel pitch (mm); the object-plane pitch is ``pixel_mm * sod / sdd``.
    sod_mm, sdd_mm : float
        Source-object and source-detector distances (mm).
    delta_over_beta : float
        The specimen material's ratio of refractive-index decrement to absorption index at
        ``energy_kev`` (e.g. from :func:`nanoct.devices.sim.materials.refractive_index`).
    energy_kev : float
        (Effective) photon energy.

    Returns
    -------
    ndarray, float32, same shape
        Retrieved transmission ``exp(-mu t)``, each image filtered on its own (edge-padded by
        a quarter of its size to keep the borders from wrapping round).
    """
    t = np.asarray(transmission, dtype=np.float64)
    single = t.ndim == 2
    if single:
        t = t[None]
    if t.ndim != 3 or min(t.shape) < 1:
        raise ValueError(
            f"transmission must be (row, column) or (angle, row, column), got {t.shape}"
        )
    pix = _positive("pixel_mm", pixel_mm) * sod_mm / sdd_mm
    length = paganin_length_mm(
        sod_mm=sod_mm, sdd_mm=sdd_mm, delta_over_beta=delta_over_beta, energy_kev=energy_kev
    )
    _, rows, cols = t.shape
    pr, pc = rows // 4 + 1, cols // 4 + 1
    shape = (
        fft.next_fast_len(rows + 2 * pr, real=True),
        fft.next_fast_len(cols + 2 * pc, real=True),
    )
    ky = 2 * np.pi * fft.fftfreq(shape[0], pix)
    kx = 2 * np.pi * fft.rfftfreq(shape[1], pix)
    h = 1.0 / (1.0 + length**2 * (ky[:, None] ** 2 + kx[None, :] ** 2))
    out = np.empty(t.shape, dtype=np.float32)
    for i, img in enumerate(t):
        padded = np.pad(img, ((pr, shape[0] - rows - pr), (pc, shape[1] - cols - pc)), "edge")
        res = fft.irfft2(fft.rfft2(padded) * h, s=shape)
        out[i] = res[pr : pr + rows, pc : pc + cols]
    return out[0] if single else out
