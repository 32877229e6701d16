"""Resolution metrics: edge and line spread, spot size at an isodose level.

Pure functions on 1-D profiles. Units follow the caller: a profile sampled at ``pixel_um``
gives widths in um at the detector; divide by ``magnification - 1`` for the focal spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GroupVisibility",
    "isodose_width",
    "line_group_visibility",
    "line_spread_from_edge",
    "oversampled_profile",
    "spot_size_from_edge",
]


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


def oversampled_profile(
    region: np.ndarray,
    *,
    angle_rad: float,
    centre: tuple[float, float],
    bin_px: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Profile across lines tilted by ``angle_rad`` from the detector columns, oversampled.

    Every pixel of ``region`` (rows, cols) is placed at its distance across the lines,
    ``x = (col - c0) cos(a) - (row - r0) sin(a)`` pixels from ``centre = (r0, c0)``, and the
    values are averaged in bins of ``bin_px``: because the lines are tilted, different rows
    sample them at different phases (the slanted-edge method of ISO 12233). Returns the bin
    centres (px) and the mean value per bin (empty bins are left out).
    """
    if not 0 < bin_px <= 1:
        raise ValueError(f"bin_px={bin_px!r} must lie in (0, 1]")
    region = np.asarray(region, dtype=float)
    r, c = np.indices(region.shape, dtype=float)
    x = (c - centre[1]) * np.cos(angle_rad) - (r - centre[0]) * np.sin(angle_rad)
    idx = np.floor(x / bin_px).astype(np.int64)
    idx -= idx.min()
    counts = np.bincount(idx.ravel())
    sums = np.bincount(idx.ravel(), weights=region.ravel())
    ok = counts > 0
    centres = (np.flatnonzero(ok) + 0.5) * bin_px + np.floor(x.min() / bin_px) * bin_px
    return centres, sums[ok] / counts[ok]


@dataclass(frozen=True)
class GroupVisibility:
    """Result of :func:`line_group_visibility`."""

    resolved: bool
    lines_found: int
    modulation: float
    minima_um: tuple[float, ...]


def line_group_visibility(
    x_um: np.ndarray,
    profile: np.ndarray,
    *,
    line_width_um: float,
    n_lines: int = 6,
    centre_um: float = 0.0,
    significance: float = 4.0,
) -> GroupVisibility:
    """Are the ``n_lines`` dark lines of a line/space group resolved? Count them.

    The lines (width = space = ``line_width_um``) are expected at ``centre_um + (2k - n + 1) w``.
    The profile is smoothed lightly (sigma w/6); minima whose prominence exceeds
    ``significance`` times the smoothed profile's noise are counted inside the group. The group
    is resolved when exactly ``n_lines`` minima are found and each lies within w/2 of a
    distinct expected line: a blurred group can show fewer or extra "fake" lines, which does
    not count. ``modulation`` is (mean max - mean min) / (mean max + mean min) between and at
    the expected lines.
    """
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    x = np.asarray(x_um, dtype=float)
    p = np.asarray(profile, dtype=float)
    w = float(line_width_um)
    if not w > 0:
        raise ValueError(f"line_width_um={line_width_um!r} must be > 0")
    if x.size < 8 or x.size != p.size:
        raise ValueError("x_um and profile must be 1-D of the same length (>= 8 samples)")
    step = float(np.median(np.diff(x)))
    sigma = max(w / 6.0 / step, 0.5)
    smooth = gaussian_filter1d(p, sigma)
    resid = p - smooth
    noise_raw = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    noise = noise_raw / np.sqrt(2.0 * np.sqrt(np.pi) * sigma)
    expected = centre_um + (2 * np.arange(n_lines) - (n_lines - 1)) * w
    inside = np.abs(x - centre_um) <= (n_lines + 0.5) * w
    idx, _ = find_peaks(-smooth, prominence=significance * max(noise, 1e-12))
    minima = np.array([x[i] for i in idx if inside[i]])
    matched = set()
    for m in minima:
        k = int(np.argmin(np.abs(expected - m)))
        if abs(expected[k] - m) <= w / 2:
            matched.add(k)
    resolved = len(minima) == n_lines and len(matched) == n_lines
    lows = np.interp(expected, x, smooth)
    highs = np.interp((expected[:-1] + expected[1:]) / 2, x, smooth)
    mod = float((highs.mean() - lows.mean()) / (highs.mean() + lows.mean()))
    return GroupVisibility(bool(resolved), len(minima), mod, tuple(float(m) for m in minima))
