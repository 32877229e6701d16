"""Pure analysis of the microscope calibration plans (arrays in, arrays out; no bluesky).

- :func:`noise_edges`: per-pixel noise edge from a dark threshold scan;
- :func:`choose_trims`: 3-bit trims that align the noise edges (two scans at two trims);
- :func:`fibre_pitch_px`: the period of a row of touching fibres in an image profile;
- :func:`flux_at_distance`: photon fluence from open-beam counts;
- :func:`excess_nonuniformity`: flat-field inhomogeneity beyond Poisson statistics.

Images are ``(row, column)`` arrays of counts; thresholds are in keV.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "TrimChoice",
    "choose_trims",
    "excess_nonuniformity",
    "fibre_pitch_px",
    "flux_at_distance",
    "noise_edges",
]


def noise_edges(
    thl_kev: npt.ArrayLike,
    counts: npt.ArrayLike,
    *,
    min_counts: float = 20.0,
    tail_fraction: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise edge of every pixel from a threshold scan of the dark (beam-off) detector.

    Electronic noise alone makes a pixel count only while its effective lower threshold lies
    within a few noise sigmas of the baseline: scanning the global threshold gives a noise
    peak per pixel. Its centre, the count-weighted mean threshold, is the pixel's noise edge
    (the global setting that puts its discriminator at the baseline); the count-weighted
    standard deviation is the peak's width (the electronic noise). The counts are samples of
    the noise rate at each threshold (not integrals over bins), so for a Gaussian peak both
    moments are accurate even at steps of two noise sigmas.

    Parameters
    ----------
    thl_kev : (n,) array
        Scanned lower thresholds, keV.
    counts : (n, rows, cols) array
        Counts of each pixel at each threshold.
    min_counts : float
        Pixels with fewer counts over the whole scan get NaN (dead, masked).
    tail_fraction : float
        Pixels whose counts at the first or last threshold exceed this fraction of their peak
        get NaN (their peak is cut off by the scan range).

    Returns
    -------
    edge_kev, width_kev : (rows, cols) arrays, NaN where not measurable.
    """
    thl = np.asarray(thl_kev, dtype=float)
    c = np.asarray(counts, dtype=float)
    if thl.ndim != 1 or c.ndim != 3 or c.shape[0] != thl.size or thl.size < 3:
        raise ValueError(
            f"need thl_kev (n,) and counts (n, rows, cols) with n >= 3; got {thl.shape} "
            f"and {c.shape}"
        )
    total = c.sum(axis=0)
    peak = c.max(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        edge = np.tensordot(thl, c, axes=1) / total
        second = np.tensordot(thl**2, c, axes=1) / total
    width = np.sqrt(np.clip(second - edge**2, 0.0, None))
    bad = (total < min_counts) | (c[0] > tail_fraction * peak) | (c[-1] > tail_fraction * peak)
    edge[bad] = np.nan
    width[bad] = np.nan
    return edge, width


class TrimChoice:
    """Result of :func:`choose_trims` (attributes are (rows, cols) arrays unless scalar).

    Attributes
    ----------
    trims : uint8 array, 0..7
    unreachable : bool array (pixels whose edge no trim brings to the target, or unmeasured)
    target_kev : float
    predicted_edge_kev : float array (NaN where unreachable)
    step_kev : float, median noise-edge shift per trim LSB (negative: a higher trim lowers
        the edge)
    """

    def __init__(self, trims, unreachable, target_kev, predicted_edge_kev, step_kev):
        self.trims = trims
        self.unreachable = unreachable
        self.target_kev = float(target_kev)
        self.predicted_edge_kev = predicted_edge_kev
        self.step_kev = float(step_kev)

    @property
    def predicted_spread_kev(self) -> float:
        """Standard deviation of the predicted edges over the reachable pixels."""
        return float(np.nanstd(self.predicted_edge_kev))


def choose_trims(
    edge_a_kev: npt.ArrayLike,
    edge_b_kev: npt.ArrayLike,
    *,
    trim_a: int = 0,
    trim_b: int = 7,
    max_trim: int = 7,
    target_kev: float | None = None,
) -> TrimChoice:
    """Trims that bring every pixel's noise edge nearest a common target.

    The noise edge moves linearly with the trim (a 3-bit DAC adding a fixed step per LSB);
    from each pixel's edges measured at two trims ``trim_a`` and ``trim_b`` the trim that puts
    the edge at the target is interpolated and rounded. Default target: the median over the
    pixels of the mid-range edge, so that the most pixels can reach it. Pixels needing a trim
    outside ``[0, max_trim]`` by more than half an LSB, or unmeasured at either trim, are
    unreachable (to be masked); they keep the mid-range trim.
    """
    ea = np.asarray(edge_a_kev, dtype=float)
    eb = np.asarray(edge_b_kev, dtype=float)
    if ea.shape != eb.shape or ea.ndim != 2:
        raise ValueError(f"edge maps must be 2-D of one shape; got {ea.shape} and {eb.shape}")
    if trim_a == trim_b:
        raise ValueError("trim_a and trim_b must differ")
    valid = np.isfinite(ea) & np.isfinite(eb)
    if not valid.any():
        raise ValueError("no pixel has a measured noise edge at both trims")
    slope = (eb - ea) / (trim_b - trim_a)
    step = float(np.median(slope[valid]))
    if not step:
        raise ValueError("the noise edges do not move with the trim (step 0 keV)")
    mid = ea + slope * (0.5 * max_trim - trim_a)
    target = float(np.median(mid[valid])) if target_kev is None else float(target_kev)
    with np.errstate(invalid="ignore", divide="ignore"):
        exact = trim_a + (target - ea) / slope
    reachable = valid & (np.abs(slope) > 0.25 * abs(step))
    reachable &= (exact >= -0.5) & (exact <= max_trim + 0.5)
    trims = np.where(reachable, np.clip(np.rint(np.nan_to_num(exact)), 0, max_trim), max_trim // 2)
    predicted = np.where(reachable, ea + slope * (trims - trim_a), np.nan)
    return TrimChoice(trims.astype(np.uint8), ~reachable, target, predicted, step)


def fibre_pitch_px(profile: npt.ArrayLike, *, min_fibres: int = 3) -> tuple[float, np.ndarray]:
    """Centre-to-centre period (pixels) of a row of touching fibres seen side by side.

    ``profile`` is the flat-field-corrected transmission across the fibres (columns), e.g. the
    mean over the rows along the fibres. The absorption ``1 - profile`` is largest at each
    fibre's centre; propagation fringes at the edges are symmetric about it. The rough period
    comes from the autocorrelation; the absorption, smoothed over a sixth of it, is fitted
    with a parabola around each maximum; the period is the slope of a straight line through
    the centres of the fibres inside the row (the two outermost fibres, which have a
    neighbour on one side only, are left out when at least ``min_fibres + 2`` are found).
    For touching fibres the period is their mean diameter.

    Returns
    -------
    pitch_px : float
    centres_px : (n,) array of every fibre's centre (column, fractional)
    """
    p = np.asarray(profile, dtype=float)
    if p.ndim != 1 or p.size < 16:
        raise ValueError(f"profile must be 1-D with >= 16 samples; got shape {p.shape}")
    idx = np.arange(p.size)
    good = np.isfinite(p)
    if good.sum() < 16:
        raise ValueError("profile has fewer than 16 finite samples")
    p = np.interp(idx, idx[good], p[good])
    a = 1.0 - p
    a0 = a - a.mean()
    ac = np.correlate(a0, a0, mode="full")[p.size - 1 :]
    # first minimum of the autocorrelation, then its highest maximum up to a third of the span
    lag_min = int(np.argmax(np.diff(ac) > 0)) if np.any(np.diff(ac) > 0) else 1
    hi = max(lag_min + 2, p.size // 3)
    period0 = lag_min + int(np.argmax(ac[lag_min:hi]))
    if period0 < 4:
        raise ValueError(f"no periodic fibre pattern found (autocorrelation period {period0})")
    smooth = ndimage.gaussian_filter1d(a, period0 / 6.0, mode="nearest")
    half = max(2, round(period0 / 4.0))
    cand = [
        i for i in range(half, p.size - half) if smooth[i] == smooth[i - half : i + half + 1].max()
    ]
    if not cand:
        raise ValueError("no fibre found in the profile")
    strong = np.array([smooth[i] for i in cand])
    keep = strong > 0.5 * np.median(np.sort(strong)[-max(1, len(strong) // 2) :])
    centres = []
    for i in np.asarray(cand)[keep]:
        x = np.arange(i - half, i + half + 1)
        c2, c1, _ = np.polyfit(x - i, smooth[x], 2)
        centres.append(i - c1 / (2.0 * c2) if c2 < 0 else float(i))
    centres_arr = np.array(centres)
    if centres_arr.size < min_fibres:
        raise ValueError(f"found {centres_arr.size} fibres; need at least {min_fibres}")
    inner = centres_arr[1:-1] if centres_arr.size >= min_fibres + 2 else centres_arr
    pitch = float(np.polyfit(np.arange(inner.size), inner, 1)[0])
    return pitch, centres_arr


def flux_at_distance(
    counts_per_pixel: float,
    *,
    exposure_s: float,
    pixel_mm: float,
    efficiency: float,
    detector_distance_mm: float,
    reference_distance_mm: float = 1000.0,
) -> tuple[float, float]:
    """Photon fluence rate from the mean open-beam counts of a counting detector.

    ``phi_det = counts / (exposure * pixel_area * efficiency)`` photons/mm^2/s at the detector
    and, by the inverse-square law from the source, ``phi_ref = phi_det * (d / d_ref)^2`` at
    the reference distance. Returns ``(phi_ref, phi_det)``.
    """
    for name, v in (
        ("exposure_s", exposure_s),
        ("pixel_mm", pixel_mm),
        ("efficiency", efficiency),
        ("detector_distance_mm", detector_distance_mm),
        ("reference_distance_mm", reference_distance_mm),
    ):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r} must be finite and > 0")
    phi_det = counts_per_pixel / (exposure_s * pixel_mm**2 * efficiency)
    return phi_det * (detector_distance_mm / reference_distance_mm) ** 2, phi_det


def excess_nonuniformity(image: npt.ArrayLike, mask: npt.ArrayLike | None = None) -> float:
    """Relative pixel-to-pixel variation of a flat image beyond counting statistics.

    ``sqrt(max(var - mean, 0)) / mean`` over the unmasked pixels: for Poisson counts the
    variance equals the mean, so what remains is the detector's own inhomogeneity (threshold
    dispersion, for a Medipix2).
    """
    img = np.asarray(image, dtype=float)
    good = np.ones(img.shape, bool) if mask is None else ~np.asarray(mask, dtype=bool)
    v = img[good]
    if v.size < 2 or v.mean() <= 0:
        raise ValueError("need at least two unmasked pixels with a positive mean")
    return float(math.sqrt(max(v.var() - v.mean(), 0.0)) / v.mean())
