"""Reference-wire monitor: the position and width of the cross wire's shadow in each image.

The paper's 30 um wire sits in a corner of the detector that the specimen never covers; its
shadow moves when the focal spot moves. Like an areaDetector ROI/statistics plugin, this device
measures, on the flat panel's latest image, the centroid of the vertical arm's shadow (its
column: horizontal spot drift) and of the horizontal arm's shadow (its row: vertical drift), and
the full width at half depth of the vertical arm's shadow, all in detector pixels. The regions
come from where the wire projects (the twin knows; on real hardware they are configured).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind

from nanoct.devices.signals import ReadbackSignal

__all__ = ["WireMonitor", "WireRegions", "measure_dip", "wire_regions"]

WireRegions = tuple[tuple[slice, slice], tuple[slice, slice]]


def wire_regions(
    row: float, col: float, diameter_px: float, arm_px: float, shape: tuple[int, int]
) -> WireRegions:
    """Regions (rows, cols) of the vertical arm (above the crossing, or below if there is no
    room) and of the horizontal arm (right of the crossing, or left), each spanning 2.5 shadow
    diameters either side of the wire and starting 0.8 diameters from the crossing (clear of
    the other arm's blurred shadow)."""
    rows, cols = shape
    half = max(int(np.ceil(2.5 * diameter_px)), 4)
    gap = max(int(np.ceil(0.8 * diameter_px)), 2)
    reach = max(int(np.floor(0.95 * arm_px)), gap + 2)
    r, c = round(row), round(col)
    up = slice(max(r - reach, 0), max(r - gap, 0))
    if up.stop - up.start < 2:
        up = slice(min(r + gap, rows), min(r + reach, rows))
    right = slice(min(c + gap, cols), min(c + reach, cols))
    if right.stop - right.start < 2:
        right = slice(max(c - reach, 0), max(c - gap, 0))
    vertical = (up, slice(max(c - half, 0), min(c + half + 1, cols)))
    horizontal = (slice(max(r - half, 0), min(r + half + 1, rows)), right)
    return vertical, horizontal


def measure_dip(profile: np.ndarray, edge_fraction: float = 0.2) -> tuple[float, float]:
    """Centroid and full width at half depth (samples) of a dark dip on a sloping background.

    The background is a straight line fitted to the outer ``edge_fraction`` of the profile on
    each side. Returns NaN for a profile with no dip deeper than 6 times the background's noise
    and 5 % of its level (a dark frame, a wire out of view).
    """
    p = np.asarray(profile, dtype=float)
    n = p.size
    k = max(int(n * edge_fraction), 2)
    x = np.arange(n, dtype=float)
    idx = np.r_[0:k, n - k : n]
    slope, icpt = np.polyfit(x[idx], p[idx], 1)
    background = slope * x + icpt
    dip = np.clip(background - p, 0.0, None)
    noise = float(np.std(p[idx] - background[idx]))
    # a real wire shadow is deep; a dark frame's noise is not a wire
    if not np.isfinite(dip).all() or dip.max() < max(6.0 * noise, 0.05 * abs(background.mean())):
        return float("nan"), float("nan")
    # centroid over the dip itself (down to 10 % of its depth), not the whole background, in a
    # window kept symmetric about the estimate (fractional weight at its edges): no bias
    core = np.flatnonzero(dip >= 0.1 * dip.max())
    centre = float((x[core] * dip[core]).sum() / dip[core].sum())
    radius = max(centre - core[0], core[-1] - centre) + 1.0
    for _ in range(3):
        wts = dip * np.clip(radius + 0.5 - np.abs(x - centre), 0.0, 1.0)
        centre = float((x * wts).sum() / wts.sum())
    half = dip.max() / 2.0
    above = np.flatnonzero(dip >= half)
    lo, hi = above[0], above[-1]
    left = lo - (dip[lo] - half) / (dip[lo] - dip[lo - 1]) if lo > 0 else float(lo)
    right = hi + (dip[hi] - half) / (dip[hi] - dip[hi + 1]) if hi < n - 1 else float(hi)
    return centre, float(right - left)


class WireMonitor(Device):
    """Wire shadow statistics of the flat panel's latest image (read after it was triggered).

    Data keys ``wire_x_px`` (column of the vertical arm), ``wire_y_px`` (row of the horizontal
    arm) and ``wire_width_px`` (shadow width of the vertical arm); NaN when no wire shadow is
    seen (darks).
    """

    x_px = Cpt(ReadbackSignal, getter="_get_x", units="px", kind=Kind.hinted)
    y_px = Cpt(ReadbackSignal, getter="_get_y", units="px", kind=Kind.hinted)
    width_px = Cpt(ReadbackSignal, getter="_get_w", units="px", kind=Kind.normal)

    def __init__(
        self,
        prefix: str = "",
        *,
        image_source: Callable[[], tuple[int, np.ndarray] | None],
        regions: Callable[[], WireRegions | None],
        **kwargs,
    ):
        self._image_source = image_source
        self._regions = regions
        self._cache_key: int | None = None
        self._values = (float("nan"),) * 3
        super().__init__(prefix, **kwargs)

    def _measure(self) -> tuple[float, float, float]:
        latest = self._image_source()
        if latest is None:
            return (float("nan"),) * 3
        counter, img = latest
        if self._cache_key == counter:
            return self._values
        regions = self._regions()
        if regions is None:
            self._values = (float("nan"),) * 3
        else:
            (vr, vc), (hr, hc) = regions
            x, w = measure_dip(img[vr, vc].mean(axis=0))
            y, _ = measure_dip(img[hr, hc].mean(axis=1))
            self._values = (x + vc.start, y + hr.start, w)
        self._cache_key = counter
        return self._values

    def _get_x(self) -> float:
        return self._measure()[0]

    def _get_y(self) -> float:
        return self._measure()[1]

    def _get_w(self) -> float:
        return self._measure()[2]
