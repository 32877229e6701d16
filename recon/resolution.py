"""Resolution metrics: edge and line spread, spot size at an isodose level.

Pure functions on 1-D profiles. Units follow the caller: a profile sampled at ``pixel_um``
gives widths in um at the detector; divide by ``magnification - 1`` for the focal spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GroupVisibility",
    "detail_recognisability",
    "edge_width_10_90",
    "isodose_width",
    "line_group_visibility",
    "line_spread_from_edge",
    "mtf_from_lsf",
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


def mtf_from_lsf(
    lsf: np.ndarray, pixel: float = 1.0, *, n_fft: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Modulation transfer function from a line spread function.

    The LSF's background (the median of its outer fifths) is removed, the rest is Fourier
    transformed (zero-padded to ``n_fft``, default the LSF's length rounded up to 64 samples
    or more) and the modulus normalised to 1 at zero frequency.

    Parameters
    ----------
    lsf : ndarray, shape (samples,)
        Line spread function (e.g. :func:`line_spread_from_edge`), any scale.
    pixel : float
        Sample spacing in the caller's unit (um, mm, px).
    n_fft : int, optional
        FFT length (>= the LSF's length).

    Returns
    -------
    frequency : ndarray
        Spatial frequencies in cycles per unit of ``pixel``, from 0 to the Nyquist
        frequency ``1 / (2 pixel)``.
    mtf : ndarray
        MTF at those frequencies, 1 at zero.
    """
    p = np.asarray(lsf, dtype=float)
    if p.ndim != 1 or p.size < 5:
        raise ValueError(f"lsf must be a 1-D profile of >= 5 samples, got shape {p.shape}")
    if not (np.isfinite(pixel) and pixel > 0):
        raise ValueError(f"pixel={pixel!r} must be > 0")
    k = max(p.size // 5, 1)
    p = p - np.median(np.r_[p[:k], p[-k:]])
    n = max(p.size, 64) if n_fft is None else int(n_fft)
    if n < p.size:
        raise ValueError(f"n_fft={n_fft!r} must be >= the LSF's length {p.size}")
    spec = np.abs(np.fft.rfft(p, n))
    if not spec[0] > 0:
        raise ValueError("the LSF has no area above its background")
    return np.fft.rfftfreq(n, d=float(pixel)), spec / spec[0]


def edge_width_10_90(profile: np.ndarray, *, plateau: int | None = None) -> float:
    """10-90 % width (samples) of an edge: the distance between the points where the profile
    crosses 10 % and 90 % of its step.

    The levels are taken from the plateaus at the two ends (medians of ``plateau`` samples,
    default a tenth of the profile, at least 3); the edge may rise or fall. Crossings are
    interpolated linearly; the outermost crossings count (noise or ringing that re-crosses a
    level widens the result, as it blurs the edge).

    Parameters
    ----------
    profile : ndarray, shape (samples,)
        Edge spread profile with flat ends (e.g. a line across an edge, or a radial profile of
        a disc or sphere).
    plateau : int, optional
        Samples at each end that define the two levels.

    Returns
    -------
    float
        Width in samples (multiply by the sample spacing for a length).
    """
    p = np.asarray(profile, dtype=float)
    if p.ndim != 1 or p.size < 8:
        raise ValueError(f"profile must be a 1-D edge of >= 8 samples, got shape {p.shape}")
    k = max(p.size // 10, 3) if plateau is None else int(plateau)
    if not 1 <= k <= p.size // 3:
        raise ValueError(f"plateau={plateau!r} must lie in [1, {p.size // 3}]")
    lo, hi = float(np.median(p[:k])), float(np.median(p[-k:]))
    if hi == lo:
        raise ValueError("profile has no step (its two plateaus are equal)")
    q = (p - lo) / (hi - lo)  # rises from 0 to 1

    def first_above(level: float) -> float:
        i = int(np.flatnonzero(q >= level)[0])
        if i == 0:
            return 0.0
        return i - 1 + (level - q[i - 1]) / (q[i] - q[i - 1])

    def last_below(level: float) -> float:
        i = int(np.flatnonzero(q <= level)[-1])
        if i == q.size - 1:
            return float(i)
        return i + (level - q[i]) / (q[i + 1] - q[i])

    return float(first_above(0.9) - last_below(0.1))


def detail_recognisability(
    esf: np.ndarray,
    background: np.ndarray,
    *,
    pixel: float = 1.0,
    rose_k: float = 5.0,
) -> float:
    """Smallest recognisable detail in a reconstructed slice, from an edge and a flat region.

    A line/space detail of size ``d`` (period ``2 d``) keeps the modulation
    ``C * MTF(1 / (2 d))`` of the contrast ``C`` of its material; it is taken as recognisable
    while that modulation exceeds ``rose_k`` (the Rose criterion, default 5) times the noise
    (standard deviation) of the slice. The contrast and the MTF come from an edge of the
    material (``esf``, a profile across it in the slice), the noise from a flat region of the
    slice (``background``). The result is ``1 / (2 f_c)`` with ``f_c`` the highest frequency
    where the criterion holds (linear interpolation), or the Nyquist limit ``pixel`` when it
    holds up to Nyquist.

    Parameters
    ----------
    esf : ndarray, shape (samples,)
        Edge spread profile across a material boundary in the slice, flat ends.
    background : ndarray
        Values of a region of the slice with no structure (one material), any shape.
    pixel : float
        Sample spacing of ``esf`` (voxel size; um, mm or px).
    rose_k : float
        Modulation-to-noise ratio needed to recognise a detail.

    Returns
    -------
    float
        Detail size in the unit of ``pixel``; ``inf`` when even the edge's contrast is below
        ``rose_k`` times the noise.
    """
    e = np.asarray(esf, dtype=float)
    bg = np.asarray(background, dtype=float).ravel()
    if bg.size < 4:
        raise ValueError("background must hold at least 4 values")
    if not rose_k > 0:
        raise ValueError(f"rose_k={rose_k!r} must be > 0")
    k = max(e.size // 10, 3)
    contrast = abs(float(np.median(e[-k:]) - np.median(e[:k])))
    noise = float(np.std(bg))
    freq, mtf = mtf_from_lsf(line_spread_from_edge(e), pixel)
    ok = contrast * mtf >= rose_k * noise
    if not ok[0]:
        return float("inf")
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return float(pixel)
    j = int(bad[0])
    m0, m1 = contrast * mtf[j - 1], contrast * mtf[j]
    fc = freq[j - 1] + (m0 - rose_k * noise) / (m0 - m1) * (freq[j] - freq[j - 1])
    return float(max(1.0 / (2.0 * fc), pixel))
