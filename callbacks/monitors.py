"""Live monitors of a running CT: the reference wire's drift and the flux of the flat blocks.

- :class:`WireDriftMonitor` follows the reference wire's shadow (``wire_x_px``,
  ``wire_y_px``, ``wire_width_px`` of each ``primary`` event) against the twin (instrument)
  time, converts its motion to the shift of the specimen's projection in voxels (the wire and
  the specimen sit at different magnifications, see :mod:`nanoct.recon.alignment`) and warns
  when that drift exceeds a threshold, or jumps between two projections.
- :class:`FluxMonitor` averages each flat block (read from its HDF5 frames), records its mean
  flux against time, forms the relative difference image between consecutive blocks and its
  parhelion score (the large-scale structure of that difference: the secondary focal spot
  changing the illumination, the paper's Fig. 4), and warns on a flux jump or a parhelion
  change.

Warnings go to the logger (WARNING) and into the ``warnings`` attribute
(:class:`MonitorWarning`). Both monitors are cheap (no reconstruction) and run in the caller's
thread; subscribe them wrapped in :func:`nanoct.callbacks.safe.safe`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from event_model import DocumentRouter

from nanoct.callbacks.frames import FrameSource, image_key_of
from nanoct.recon import alignment
from nanoct.recon.illumination import parhelion_score

__all__ = [
    "FlatBlockStats",
    "FluxMonitor",
    "MonitorWarning",
    "WireDriftMonitor",
    "parhelion_score",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorWarning:
    """One warning of a monitor."""

    kind: str  # "drift", "jump", "flux" or "parhelion"
    index: int  # projection index (wire) or flat block label (flux)
    time_s: float  # twin (instrument) time
    value: float
    threshold: float
    message: str


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f if math.isfinite(f) else float("nan")


class WireDriftMonitor(DocumentRouter):
    """Reference-wire drift per projection against twin time, with warnings.

    Parameters
    ----------
    threshold_voxels : float
        Warn when the specimen's projection has moved by more than this many voxels (in x
        or y) since the first projection of the run. The default, a quarter voxel, is where
        drift starts to blur a reconstruction visibly.
    jump_voxels : float, optional
        Warn when it moves by more than this between two consecutive projections (a sudden
        jump of the focal spot); default ``threshold_voxels``.
    rearm_fraction : float
        After a drift warning on an axis, the next one needs the drift to fall below
        ``rearm_fraction * threshold_voxels`` first (no warning per projection).

    Attributes
    ----------
    time_s, index, x_px, y_px, width_px : list of float
        Per projection: twin time, projection index, the wire shadow's column, row and width
        (detector pixels; NaN where it was not found).
    drift_voxels : list of (float, float)
        Specimen shift (columns, rows) in voxels relative to the first projection.
    spot_um : list of (float, float)
        The focal-spot displacement implied (lab x right, y up), um.
    warnings : list of MonitorWarning
    """

    def __init__(
        self,
        *,
        threshold_voxels: float = 0.25,
        jump_voxels: float | None = None,
        rearm_fraction: float = 0.8,
    ) -> None:
        super().__init__()
        if not threshold_voxels > 0:
            raise ValueError(f"threshold_voxels={threshold_voxels!r} must be > 0")
        if jump_voxels is not None and not jump_voxels > 0:
            raise ValueError(f"jump_voxels={jump_voxels!r} must be > 0")
        if not 0 < rearm_fraction <= 1:
            raise ValueError(f"rearm_fraction={rearm_fraction!r} must lie in (0, 1]")
        self.threshold_voxels = float(threshold_voxels)
        self.jump_voxels = float(threshold_voxels if jump_voxels is None else jump_voxels)
        self.rearm_fraction = float(rearm_fraction)
        self.warnings: list[MonitorWarning] = []
        self._reset()

    def _reset(self) -> None:
        self.time_s: list[float] = []
        self.index: list[int] = []
        self.x_px: list[float] = []
        self.y_px: list[float] = []
        self.width_px: list[float] = []
        self.drift_voxels: list[tuple[float, float]] = []
        self.spot_um: list[tuple[float, float]] = []
        self._geo: dict[str, float] | None = None
        self._primary: set[str] = set()
        self._ref: tuple[float, float] | None = None
        self._prev: tuple[float, float] | None = None
        self._armed = [True, True]
        self._prefix = "flatpanel_"

    @property
    def active(self) -> bool:
        """Whether the run in progress has a reference wire to follow."""
        return self._geo is not None

    def start(self, doc):
        self._reset()
        self.warnings = []
        g, wire = doc.get("geometry"), doc.get("reference_wire")
        if not (isinstance(g, Mapping) and isinstance(wire, Mapping)):
            logger.debug("wire monitor: run %s has no reference wire metadata", doc.get("uid"))
            return
        try:
            sod, sdd = float(g["sod_mm"]), float(g["sdd_mm"])
            pixel = float(g["detector_pixel_um"]) * 1e-3
            m_wire = float(wire["magnification"])
        except (KeyError, TypeError, ValueError):
            logger.warning("wire monitor: run %s: incomplete geometry; not monitoring", doc["uid"])
            return
        voxel = _num(g.get("voxel_size_um")) * 1e-3
        if not voxel > 0:
            voxel = pixel * sod / sdd
        if not (0 < sod < sdd and pixel > 0 and m_wire > 1):
            logger.warning(
                "wire monitor: run %s: inconsistent geometry; not monitoring", doc["uid"]
            )
            return
        self._geo = {"sod": sod, "sdd": sdd, "pixel": pixel, "wire_z": sdd / m_wire, "voxel": voxel}

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary.add(doc["uid"])
            key = image_key_of(doc)
            for obj, keys in (doc.get("object_keys") or {}).items():
                if key is not None and key in keys:
                    self._prefix = f"{obj}_"

    def event(self, doc):
        if self._geo is None or doc["descriptor"] not in self._primary:
            return
        data = doc["data"]
        if "wire_x_px" not in data:
            return
        x, y, w = (_num(data.get(k)) for k in ("wire_x_px", "wire_y_px", "wire_width_px"))
        t = _num(data.get(f"{self._prefix}twin_time"))
        idx = int(data.get("projection_index", len(self.index)))
        self.time_s.append(t)
        self.index.append(idx)
        self.x_px.append(x)
        self.y_px.append(y)
        self.width_px.append(w)
        if not (math.isfinite(x) and math.isfinite(y)):
            self.drift_voxels.append((float("nan"), float("nan")))
            self.spot_um.append((float("nan"), float("nan")))
            return
        if self._ref is None:
            self._ref = (x, y)
        g = self._geo
        sx, sy = alignment.spot_shift_from_wire(
            x, y, pixel_mm=g["pixel"], sdd_mm=g["sdd"], wire_z_mm=g["wire_z"], reference=self._ref
        )
        dx, dy = alignment.specimen_shift_px(
            sx, sy, pixel_mm=g["pixel"], sdd_mm=g["sdd"], sod_mm=g["sod"]
        )
        to_voxels = g["pixel"] * g["sod"] / g["sdd"] / g["voxel"]
        drift = (float(dx) * to_voxels, float(dy) * to_voxels)
        self.drift_voxels.append(drift)
        self.spot_um.append((float(sx) * 1e3, float(sy) * 1e3))
        for axis, d in enumerate(drift):
            name = "xy"[axis]
            if self._armed[axis] and abs(d) > self.threshold_voxels:
                self._armed[axis] = False
                self._warn(
                    "drift", idx, t, d, self.threshold_voxels,
                    f"specimen drift in {name} of {d:+.2f} voxel at projection {idx} "
                    f"(t={t:.0f} s) exceeds {self.threshold_voxels:g} voxel",
                )  # fmt: skip
            elif abs(d) < self.rearm_fraction * self.threshold_voxels:
                self._armed[axis] = True
        if self._prev is not None:
            step = (drift[0] - self._prev[0], drift[1] - self._prev[1])
            size = math.hypot(*step)
            if size > self.jump_voxels:
                self._warn(
                    "jump", idx, t, size, self.jump_voxels,
                    f"focal spot jumped: the specimen moved by {size:.2f} voxel between "
                    f"projections {idx - 1} and {idx} (t={t:.0f} s)",
                )  # fmt: skip
        self._prev = drift

    def _warn(self, kind, idx, t, value, threshold, msg) -> None:
        self.warnings.append(MonitorWarning(kind, int(idx), float(t), float(value), threshold, msg))
        logger.warning("wire monitor: %s", msg)


@dataclass(frozen=True)
class FlatBlockStats:
    """One flat block: label, mean twin time, mean flux and changes from the block before."""

    block: Any
    time_s: float
    n_frames: int
    mean_adu: float  # centre half of the detector, dark subtracted
    relative_flux: float  # to the run's first block
    flux_change: float  # to the previous block (NaN for the first)
    parhelion_score: float  # to the previous block (NaN for the first)


class FluxMonitor(DocumentRouter):
    """Mean flux of each flat block against time and the parhelion score between blocks.

    Parameters
    ----------
    flux_jump : float
        Warn when a block's mean flux differs from the previous block's by more than this
        fraction. Default 2 %: the TXI-stabilised tube holds its mean output far closer, but
        frame-to-frame flicker (0.3 % rms on the twin) makes short blocks scatter by a few
        tenths of a percent.
    parhelion_threshold : float
        Warn when the parhelion score between consecutive blocks exceeds this (relative
        rms of the smoothed difference; default 0.005. On the twin, blocks of a stable source
        score about 0.0003, a change of the secondary spot's weight from 8 % to 25 % 0.03).
    smooth_px : float
        Smoothing of the difference (pixels) for the score.
    frame_timeout_s : float
        How long to wait for a frame not yet in its file.
    path_map : mapping, optional
        As :class:`nanoct.callbacks.frames.FrameSource`.

    Attributes
    ----------
    blocks : list of FlatBlockStats
    latest_difference : ndarray or None
        Relative difference between the last two blocks (mean removed), float32.
    warnings : list of MonitorWarning
    """

    def __init__(
        self,
        *,
        flux_jump: float = 0.02,
        parhelion_threshold: float = 0.005,
        smooth_px: float = 8.0,
        frame_timeout_s: float = 10.0,
        path_map: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        if not flux_jump > 0:
            raise ValueError(f"flux_jump={flux_jump!r} must be > 0")
        if not parhelion_threshold > 0:
            raise ValueError(f"parhelion_threshold={parhelion_threshold!r} must be > 0")
        if not smooth_px > 0:
            raise ValueError(f"smooth_px={smooth_px!r} must be > 0")
        self.flux_jump = float(flux_jump)
        self.parhelion_threshold = float(parhelion_threshold)
        self.smooth_px = float(smooth_px)
        self.frames = FrameSource(timeout_s=frame_timeout_s, path_map=path_map)
        self.warnings: list[MonitorWarning] = []
        self._reset()

    def _reset(self) -> None:
        self.blocks: list[FlatBlockStats] = []
        self.latest_difference: np.ndarray | None = None
        self._streams: dict[str, tuple[str, str | None, str]] = {}
        self._dark_sum: np.ndarray | None = None
        self._n_darks = 0
        self._open: list[Any] | None = None  # [label, sum, n, times]
        self._prev_mean: np.ndarray | None = None

    def start(self, doc):
        self._reset()
        self.warnings = []
        self.frames.reset()

    def descriptor(self, doc):
        key = image_key_of(doc)
        prefix = ""
        for obj, keys in (doc.get("object_keys") or {}).items():
            if key is not None and key in keys:
                prefix = f"{obj}_"
        self._streams[doc["uid"]] = (doc.get("name", ""), key, prefix)

    def stream_resource(self, doc):
        self.frames.stream_resource(doc)

    def stream_datum(self, doc):
        self.frames.stream_datum(doc)

    def event(self, doc):
        name, key, prefix = self._streams.get(doc["descriptor"], ("", None, ""))
        if name not in ("dark", "flat") or key is None:
            self._close_block()
            return
        ref = self.frames.ref(doc["descriptor"], doc["seq_num"], key)
        if ref is None:
            return
        frame = self.frames.read(ref).astype(np.float64)
        if name == "dark":
            self._close_block()
            self._dark_sum = frame if self._dark_sum is None else self._dark_sum + frame
            self._n_darks += 1
            return
        label = doc["data"].get("flat_block")
        if self._open is not None and self._open[0] != label:
            self._close_block()
        if self._open is None:
            self._open = [label, np.zeros_like(frame), 0, []]
        self._open[1] += frame
        self._open[2] += 1
        self._open[3].append(_num(doc["data"].get(f"{prefix}twin_time")))

    def stop(self, doc):
        self._close_block()
        self.frames.close()

    def _close_block(self) -> None:
        if self._open is None:
            return
        label, total, n, times = self._open
        self._open = None
        mean = total / n
        if self._dark_sum is not None:
            mean = mean - self._dark_sum / self._n_darks
        rows, cols = mean.shape
        adu = float(mean[rows // 4 : 3 * rows // 4, cols // 4 : 3 * cols // 4].mean())
        t = float(np.nanmean(times)) if np.isfinite(times).any() else float("nan")
        first = self.blocks[0].mean_adu if self.blocks else adu
        change = score = float("nan")
        if self.blocks and self._prev_mean is not None:
            prev = self.blocks[-1]
            change = adu / prev.mean_adu - 1.0 if prev.mean_adu else float("nan")
            score, self.latest_difference = parhelion_score(
                self._prev_mean, mean, smooth_px=self.smooth_px
            )
            if abs(change) > self.flux_jump:
                self._warn(
                    "flux", label, t, change, self.flux_jump,
                    f"flux changed by {100 * change:+.1f} % between flat blocks {prev.block} "
                    f"and {label} (t={t:.0f} s)",
                )  # fmt: skip
            if score > self.parhelion_threshold:
                self._warn(
                    "parhelion", label, t, score, self.parhelion_threshold,
                    f"the illumination changed between flat blocks {prev.block} and {label} "
                    f"(parhelion score {score:.4f} > {self.parhelion_threshold:g}, t={t:.0f} s)",
                )  # fmt: skip
        stats = FlatBlockStats(label, t, n, adu, adu / first if first else float("nan"),
                               change, score)  # fmt: skip
        self.blocks.append(stats)
        self._prev_mean = mean

    def _warn(self, kind, block, t, value, threshold, msg) -> None:
        idx = int(block) if isinstance(block, int | np.integer) else len(self.blocks)
        self.warnings.append(MonitorWarning(kind, idx, float(t), float(value), threshold, msg))
        logger.warning("flux monitor: %s", msg)
