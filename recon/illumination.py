"""Illumination diagnostics of flat (open-beam) images.

:func:`parhelion_score` measures the large-scale change between two flats: the secondary
focal spot ("parhelion") of the lab tube changing the illumination, the paper's Fig. 4. One
implementation serves the ``flux_stability`` calibration plan and the live
:class:`~nanoct.callbacks.monitors.FluxMonitor`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["parhelion_score"]


def parhelion_score(
    previous: np.ndarray, current: np.ndarray, *, smooth_px: float = 8.0
) -> tuple[float, np.ndarray]:
    """Large-scale change between two flat (open-beam) images.

    Parameters
    ----------
    previous, current : ndarray, shape (row, column)
        Dark-subtracted flats (e.g. block means), detector units.
    smooth_px : float
        Gaussian sigma (pixels) that keeps only the large-scale structure.

    Returns
    -------
    score : float
        Root mean square of the smoothed relative difference less its mean (a uniform flux
        change is not the parhelion); 0 for identical images.
    difference : ndarray, float32
        ``current / previous - 1`` less its mean (unsmoothed), for display.
    """
    a = np.asarray(previous, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"previous {a.shape} and current {b.shape} must be images of one shape")
    if not smooth_px > 0:
        raise ValueError(f"smooth_px={smooth_px!r} must be > 0")
    rel = b / np.where(a > 0, a, 1.0) - 1.0
    rel -= rel.mean()
    structure = ndimage.gaussian_filter(rel, smooth_px)
    return float(np.sqrt(np.mean(structure**2))), rel.astype(np.float32)
