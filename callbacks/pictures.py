"""Pictures of a running CT: PNG snapshots on demand and at the end, live figures on a display.

- :func:`write_slice_pngs`, :func:`write_difference_png`: images (pillow).
- :func:`plot_wire_drift`, :func:`plot_flux`: plots (matplotlib's object-oriented API with the
  Agg canvas; no pyplot, no display needed). Without matplotlib they are skipped (logged).
- :class:`LivePictures`: a document callback that writes every picture of the live
  reconstruction and the monitors at each run's stop (and on demand, :meth:`snapshot`), and,
  when a display exists, shows a live figure (:meth:`LivePictures.show`) refreshed by a GUI
  timer that polls the callbacks' state: the callbacks never draw from the RunEngine's thread.
  Without a display it does nothing and raises nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from event_model import DocumentRouter

__all__ = [
    "LivePictures",
    "has_display",
    "plot_flux",
    "plot_wire_drift",
    "scaled_u8",
    "write_difference_png",
    "write_slice_pngs",
]

logger = logging.getLogger(__name__)

_NON_INTERACTIVE = ("agg", "cairo", "pdf", "pgf", "ps", "svg", "template")


def scaled_u8(image: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``image`` mapped to 0..255 between ``lo`` and ``hi`` (default its 0.5 and 99.5
    percentiles), uint8; NaNs become 0."""
    a = np.asarray(image, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if lo is None or hi is None:
        p_lo, p_hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
        lo = p_lo if lo is None else lo
        hi = p_hi if hi is None else hi
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.nan_to_num((a - lo) * scale), 0, 255).astype(np.uint8)


def write_slice_pngs(
    slices: np.ndarray, indices: Sequence[int] | np.ndarray, out_dir: str | Path, stem: str
) -> dict[int, Path]:
    """One PNG per slice, ``<out_dir>/<stem>_z<k>.png``, each scaled between its 0.5 and 99.5
    percentiles. Returns ``{k: path}``."""
    from PIL import Image

    vol = np.asarray(slices)
    if vol.ndim == 2:
        vol = vol[None]
    idx = [int(k) for k in np.asarray(indices).ravel()]
    if vol.ndim != 3 or len(idx) != vol.shape[0]:
        raise ValueError(f"slices {vol.shape} and indices {idx} do not match")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, img in zip(idx, vol, strict=True):
        path = out / f"{stem}_z{k}.png"
        Image.fromarray(scaled_u8(img)).save(path)
        paths[k] = path
    return paths


def write_difference_png(difference: np.ndarray, path: str | Path) -> Path:
    """A signed image (e.g. the relative difference of two flats) as grey: 128 is 0, the
    99.5th percentile of ``|difference|`` is black/white."""
    from PIL import Image

    d = np.asarray(difference, dtype=np.float64)
    finite = np.abs(d[np.isfinite(d)])
    m = float(np.percentile(finite, 99.5)) if finite.size else 0.0
    m = m if m > 0 else 1.0
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scaled_u8(d, -m, m)).save(p)
    return p


def _figure(rows: int = 1, cols: int = 1, size=(7.0, 4.0)):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed: plots are skipped")
        return None, None
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _draw_wire(axes, wire) -> None:
    ax = axes[0]
    t = np.asarray(getattr(wire, "time_s", []), dtype=float) / 3600.0
    drift = np.asarray(getattr(wire, "drift_voxels", []), dtype=float).reshape(-1, 2)
    ax.clear()
    if t.size:
        ax.plot(t, drift[:, 0], label="x (columns)")
        ax.plot(t, drift[:, 1], label="y (rows)")
        thr = getattr(wire, "threshold_voxels", None)
        if thr:
            for s in (-thr, thr):
                ax.axhline(s, color="grey", ls="--", lw=0.8)
        for w in getattr(wire, "warnings", []):
            ax.axvline(w.time_s / 3600.0, color="red", lw=0.6, alpha=0.6)
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("instrument time (h)")
    ax.set_ylabel("specimen drift (voxel)")
    ax.set_title("reference wire")
    if len(axes) > 1:
        ax2 = axes[1]
        ax2.clear()
        width = np.asarray(getattr(wire, "width_px", []), dtype=float)
        if t.size:
            ax2.plot(t, width, color="tab:green")
        ax2.set_xlabel("instrument time (h)")
        ax2.set_ylabel("wire shadow width (px)")


def _draw_flux(axes, flux) -> None:
    blocks = list(getattr(flux, "blocks", []))
    t = np.array([b.time_s for b in blocks], dtype=float) / 3600.0
    ax = axes[0]
    ax.clear()
    if blocks:
        ax.plot(t, [b.relative_flux for b in blocks], "o-")
    ax.set_xlabel("instrument time (h)")
    ax.set_ylabel("flat-block flux (relative)")
    ax.set_title("flux")
    if len(axes) > 1:
        ax2 = axes[1]
        ax2.clear()
        if len(blocks) > 1:
            ax2.plot(t[1:], [b.parhelion_score for b in blocks[1:]], "s-", color="tab:orange")
        thr = getattr(flux, "parhelion_threshold", None)
        if thr:
            ax2.axhline(thr, color="grey", ls="--", lw=0.8)
        ax2.set_xlabel("instrument time (h)")
        ax2.set_ylabel("parhelion score")


def plot_wire_drift(wire: Any, path: str | Path) -> Path | None:
    """Drift (voxels) and wire width against instrument time, from a
    :class:`~nanoct.callbacks.monitors.WireDriftMonitor`; None without matplotlib."""
    fig, axes = _figure(2, 1, (7.0, 5.5))
    if fig is None:
        return None
    _draw_wire(axes[:, 0], wire)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=90)
    return p


def plot_flux(flux: Any, path: str | Path) -> Path | None:
    """Relative flux of each flat block and the parhelion score against instrument time, from
    a :class:`~nanoct.callbacks.monitors.FluxMonitor`; None without matplotlib."""
    fig, axes = _figure(2, 1, (7.0, 5.5))
    if fig is None:
        return None
    _draw_flux(axes[:, 0], flux)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=90)
    return p


def has_display() -> bool:
    """Whether matplotlib can show live figures here (an interactive backend with a display)."""
    try:
        import matplotlib
    except ImportError:
        return False
    name = str(matplotlib.get_backend()).lower()
    return not (name in _NON_INTERACTIVE or "inline" in name or "agg" == name.split(".")[-1])


class LivePictures(DocumentRouter):
    """Pictures of the live reconstruction and the monitors.

    Parameters
    ----------
    recon : LiveReconstruction, optional
    wire : WireDriftMonitor, optional
    flux : FluxMonitor, optional
        The callbacks whose state is drawn (subscribe them before this one, so their stop
        is handled first).
    out_dir : path
        Where :meth:`snapshot` writes.
    at_stop : bool
        Write a snapshot at each run's stop.

    Attributes
    ----------
    written : dict
        Paths of the latest snapshot by name (``slice_z<k>``, ``wire``, ``flux``,
        ``flat_difference``).
    """

    def __init__(
        self,
        *,
        recon: Any = None,
        wire: Any = None,
        flux: Any = None,
        out_dir: str | Path = ".",
        at_stop: bool = True,
    ) -> None:
        super().__init__()
        self.recon, self.wire, self.flux = recon, wire, flux
        self.out_dir = Path(out_dir)
        self.at_stop = bool(at_stop)
        self.written: dict[str, Path] = {}
        self._uid = "live"
        self._figure: Any = None
        self._timer: Any = None
        self._lock = threading.Lock()

    def start(self, doc):
        self._uid = str(doc.get("uid", "live"))

    def stop(self, doc):
        if not self.at_stop:
            return
        recon = self.recon
        deferred = (
            recon is not None
            and getattr(recon, "background", False)
            and (recon.result is None or recon.result.get("uid") != doc.get("run_start"))
        )
        if deferred:
            # the final slices are made on the reconstruction's own thread: draw them when
            # they are ready instead of holding up the RunEngine here
            uid = str(doc.get("run_start", self._uid))
            recon.on_result(lambda result: self._slices_done(result, uid), once=True)
            done = recon.result  # it may have finished meanwhile
            if done is not None and done.get("uid") == uid:
                self._slices_done(done, uid)
        self.snapshot(slices=not deferred)

    def _slices_done(self, result: dict, uid: str) -> None:
        if result.get("uid") != uid:
            return
        with self._lock:
            paths = write_slice_pngs(result["slices"], result["indices"], self.out_dir,
                                     f"{uid}-slice")  # fmt: skip
            self.written.update({f"slice_z{k}": p for k, p in paths.items()})

    def snapshot(
        self, out_dir: str | Path | None = None, stem: str | None = None, *, slices: bool = True
    ) -> dict[str, Path]:
        """Write every picture available now (the slices only if ``slices``); returns
        ``{name: path}``."""
        out = Path(out_dir) if out_dir is not None else self.out_dir
        stem = stem or self._uid
        paths: dict[str, Path] = {}
        with self._lock:
            if self.recon is not None and slices:
                img, idx = self.recon.current(), self.recon.indices
                if img is not None and idx is not None:
                    for k, p in write_slice_pngs(img, idx, out, f"{stem}-slice").items():
                        paths[f"slice_z{k}"] = p
            if self.wire is not None and getattr(self.wire, "time_s", None):
                p = plot_wire_drift(self.wire, out / f"{stem}-wire.png")
                if p is not None:
                    paths["wire"] = p
            if self.flux is not None and getattr(self.flux, "blocks", None):
                p = plot_flux(self.flux, out / f"{stem}-flux.png")
                if p is not None:
                    paths["flux"] = p
                diff = getattr(self.flux, "latest_difference", None)
                if diff is not None:
                    paths["flat_difference"] = write_difference_png(
                        diff, out / f"{stem}-flat-difference.png"
                    )
        self.written = paths
        logger.info("pictures of %s written to %s: %s", stem, out, sorted(paths))
        return paths

    # ---------------------------------------------------------------- live figure
    def show(self, interval_s: float = 2.0) -> bool:
        """Open a live figure (slice, drift, flux, latest flat difference) refreshed every
        ``interval_s`` by a GUI timer. Call it from the GUI's (main) thread, e.g. in IPython
        with ``%matplotlib qt``. Returns False, and does nothing, where no display exists."""
        if not interval_s > 0:
            raise ValueError(f"interval_s={interval_s!r} must be > 0 s")
        try:
            if not has_display():
                logger.info("no interactive matplotlib display: no live figure (PNGs only)")
                return False
            import matplotlib.pyplot as plt

            fig = plt.figure("nanoct live", figsize=(10.0, 7.0))
            fig.clear()
            self._figure = (fig, fig.subplots(2, 2, squeeze=False))
            self._timer = fig.canvas.new_timer(interval=int(interval_s * 1000))
            self._timer.add_callback(self.refresh)
            self._timer.start()
            plt.show(block=False)
            self.refresh()
            return True
        except Exception:
            logger.warning("live figure could not be shown", exc_info=True)
            return False

    def refresh(self) -> None:
        """Redraw the live figure from the callbacks' current state (GUI thread)."""
        if self._figure is None:
            return
        fig, axes = self._figure
        try:
            ax = axes[0, 0]
            ax.clear()
            slices = None if self.recon is None else self.recon.current()
            if slices is not None and slices.size:
                img = slices[0]
                lo, hi = np.percentile(img, [0.5, 99.5])
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
                done, total = getattr(self.recon, "progress", (0, 0))
                ax.set_title(f"slice {int(self.recon.indices[0])}: {done}/{total} projections")
            ax.set_axis_off()
            if self.wire is not None:
                _draw_wire([axes[0, 1]], self.wire)
            if self.flux is not None:
                _draw_flux([axes[1, 0]], self.flux)
                diff = getattr(self.flux, "latest_difference", None)
                axes[1, 1].clear()
                if diff is not None:
                    m = float(np.percentile(np.abs(diff), 99.5)) or 1.0
                    axes[1, 1].imshow(diff, cmap="RdBu_r", vmin=-m, vmax=m)
                    axes[1, 1].set_title("latest flat difference")
                axes[1, 1].set_axis_off()
            fig.canvas.draw_idle()
        except Exception:  # a drawing problem must not kill the GUI loop
            logger.debug("live figure refresh failed", exc_info=True)

    def close(self) -> None:
        """Stop the timer of the live figure (if any)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._figure = None
