"""Resolution metrics: edge and line spread, spot size at an isodose level.

Pure functions on 1-D profiles. Units follow the caller: a profile sampled at ``pixel_um``
gives widths in um at the detector; divide by ``magnification - 1`` for the focal spot.
"""

from __future__ import annotations

import numpy as np

__all__ = ["isodose_width", "line_spread_from_edge", "spot_size_from_edge"]


def line_spread_from_edge(esf: np.ndarray) -> np.ndarray:
    """Line spread function: derivative of an edge spread profile, normalised to a peak of 1.

    First differences (one sample shorter than ``esf``; sample ``i`` lies between ``esf[i]``
    and ``esf[i + 1]``), which widen the spread less than central differences. The edge may
    rise or fall; the result is positive either way.
    """
    esf = np.asarray(esf, dtype=float)
    if esf.ndim != 1 or esf.size < 5:
        raise ValueError(f"esf must be a 1-D profile of >= 5 samples, got shape {esf.shape}")
    lsf = np.diff(esf)
    if abs(lsf.min()) > abs(lsf.max()):
        lsf = -lsf
    return lsf / lsf.max()


def isodose_width(profile: np.ndarray, level: float = 0.1) -> float:
    """Full width (in samples) of a peaked profile at ``level`` of its maximum.

    The crossings on each side of the peak are interpolated linearly between samples; the
    outermost crossings count, so a secondary peak above ``level`` widens the result, as
    the isodose contour of a real spot does.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level!r} must lie in (0, 1)")
    p = np.asarray(profile, dtype=float)
    peak = int(np.argmax(p))
    thr = level * p[peak]
    above = np.flatnonzero(p >= thr)
    lo, hi = int(above[0]), int(above[-1])
    if lo == 0 or hi == p.size - 1:
        raise ValueError("profile does not fall below the level on both sides; widen the window")
    left = lo - 1 + (thr - p[lo - 1]) / (p[lo] - p[lo - 1])
    right = hi + (p[hi] - thr) / (p[hi] - p[hi + 1])
    return float(right - left)


def spot_size_from_edge(
    esf: np.ndarray, *, pixel_um: float, magnification: float, level: float = 0.1
) -> float:
    """Focal-spot size (um) at an isodose ``level`` from an edge image's spread profile.

    The line spread width at the detector is divided by ``magnification - 1``, the factor by
    which a source of finite size blurs an object imaged at ``magnification``. Detector blur is
    not removed: image at high magnification so that it is small against the spot's blur.
    """
    if not magnification > 1.0:
        raise ValueError(f"magnification={magnification!r} must be > 1")
    width_px = isodose_width(line_spread_from_edge(esf), level)
    return width_px * pixel_um / (magnification - 1.0)
