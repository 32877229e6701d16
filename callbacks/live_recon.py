"""Live reconstruction of chosen slices while a ``ct_scan`` (or a ``nano_ct_scan``) runs.

:class:`LiveReconstruction` is a bluesky document callback. It reads each dark, flat and
projection frame from the HDF5 file its StreamResource/StreamDatum documents name and hands it
to :class:`nanoct.recon.incremental.IncrementalCT`: every projection is normalised with the
flats known so far, drift-corrected with the reference wire position recorded in its event,
filtered and backprojected into the slices, so the slices are always current
(:meth:`LiveReconstruction.current`). When a flat block closes, the projections since the
previous block are refined with the interpolated flat. At the stop document the slices are
settled so that they equal the offline ``reconstruct_ct(..., algorithm="fdk")`` of the same
slices (projections whose inputs changed -- the closing darks, the median wire position --
are read again from their files), written to Tiled beside the runs catalog (container
``processed``, key ``<raw uid>-live``, metadata ``raw_uid``) and as PNGs.

Photon-counting runs (the microscope's ``nano_ct_scan`` on the Medipix2): during the scan the
slices are a preview, normalised with the bracketing bright fields like an integrating
detector's and not drift-corrected (the microscope's drift reference is the run's reference
projections, known only as they come). At the stop every image of the run is read again from
its file and the slices are settled with the offline counting pipeline itself
(:func:`~nanoct.recon.pipeline.reconstruct_ct` with ``algorithm="fdk"``: smoothed blank,
fixed pattern, dead and hot pixels, drift from the reference projections), so they equal
``nanoct recon RUN --algorithm fdk`` of those slices. (The offline default for low counts is
the Poisson-aware ML of the whole volume, which a slice subset cannot be.)

By default the work runs on a background thread: the RunEngine only queues the documents, so
a slow reconstruction never holds up acquisition (:meth:`LiveReconstruction.wait` waits for
the queue to drain). Subscribe it wrapped in :func:`nanoct.callbacks.safe.safe` (or through
:func:`nanoct.callbacks.live_callbacks`) so that nothing it does can raise into the
RunEngine.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from event_model import DocumentRouter

from nanoct.callbacks.frames import FrameSource, image_key_of
from nanoct.callbacks.pictures import write_slice_pngs
from nanoct.recon.incremental import IncrementalCT
from nanoct.recon.pipeline import reconstruct_ct

__all__ = ["DERIVED_KEY", "LIVE_PLANS", "LiveReconstruction", "derived_container"]

logger = logging.getLogger(__name__)

#: Container beside the runs catalog that holds reconstructions (the key
#: ``nanoct.reconstruct.DERIVED_KEY`` uses for offline volumes).
DERIVED_KEY = "processed"

#: Plans whose runs are reconstructed live (untilted CTs; laminography stays offline).
LIVE_PLANS = ("ct_scan", "nano_ct_scan")

_STOP = object()


def derived_container(runs: Any, key: str = DERIVED_KEY) -> Any:
    """The container ``key`` beside the runs catalog ``runs`` (a Tiled client node), made if
    needed; when ``runs`` is the server's root, the container is inside it (as
    ``nanoct.reconstruct`` places offline volumes)."""
    from tiled.client import from_context
    from tiled.client.container import Container

    parts = list(getattr(runs, "path_parts", []) or [])
    parent = from_context(runs.context)
    for part in parts[:-1]:
        parent = parent[part]
    # Container's own lookup: a CatalogOfBlueskyRuns reads a string key as a (partial) run
    # uid, so ``key in parent`` is False there even when the container exists.
    try:
        return Container.__getitem__(parent, key)
    except KeyError:
        return parent.create_container(key=key)


def _check_slices(slices: Any) -> Any:
    if slices is None or isinstance(slices, slice):
        return slices
    if isinstance(slices, int | np.integer) and not isinstance(slices, bool):
        return int(slices)
    try:
        out = [int(s) for s in slices]
    except (TypeError, ValueError):
        raise ValueError(
            f"slices={slices!r} must be None, an int, a slice or a sequence of ints"
        ) from None
    if not out:
        raise ValueError("slices=[] selects no slice")
    return out


class LiveReconstruction(DocumentRouter):
    """Reconstruct chosen slices of a running CT (:data:`LIVE_PLANS`) projection by projection.

    Parameters
    ----------
    slices : int, slice or sequence of int, optional
        Volume slices (z indices; slice ``k`` is where detector row ``k`` looks through the
        axis). Default: the central slice.
    tiled : tiled client node, optional
        The runs catalog the scan is written to; the final slices go to the ``processed``
        container beside it. None: not written to Tiled.
    out_dir : path, optional
        Where the final slices' PNGs go (``<uid>-live_z<k>.png``). None: no PNGs.
    drift_correction : bool
        Undo the focal-spot drift measured on the reference wire (as ``nanoct recon``).
    filter : str
        Ramp filter window (``nanoct.recon.filters.FILTERS``).
    volume_shape, voxel_mm, center_col
        As :func:`nanoct.recon.pipeline.reconstruct_ct`.
    background : bool
        Process documents on a background thread (default) instead of in the caller's.
    nice : int
        How much lower than the acquisition's the background thread's scheduling priority is
        (Unix nice increment, 0-19; Linux only, ignored elsewhere): on a busy computer the
        reconstruction falls behind and catches up, rather than slowing the scan.
    frame_timeout_s : float
        How long to wait for a frame that is not yet in its file.
    path_map : mapping of str to str, optional
        Path prefixes to replace when the detector files are mounted elsewhere here.
    derived_key : str
        Name of the container beside the runs catalog.

    Attributes
    ----------
    result : dict or None
        After a run's stop: ``uid``, ``slices`` (float32, ``(n, ny, nx)``, 1/mm), ``indices``,
        ``info`` (see :meth:`nanoct.recon.incremental.IncrementalCT.finish`; for a counting
        run :func:`~nanoct.recon.pipeline.reconstruct_ct`'s, plus ``n_projections``,
        ``reread`` and ``seconds``), ``key`` and ``uri`` in Tiled (None if not written),
        ``previews`` (PNG paths), ``update_s`` (per-projection update times).
    errors : list of str
        Problems met (a frame that could not be read, a failed write), newest last.
    """

    def __init__(
        self,
        slices: int | slice | Sequence[int] | None = None,
        *,
        tiled: Any = None,
        out_dir: str | Path | None = None,
        drift_correction: bool = True,
        filter: str = "ram-lak",
        volume_shape: tuple[int, int, int] | None = None,
        voxel_mm: float | None = None,
        center_col: float | None = None,
        background: bool = True,
        nice: int = 5,
        frame_timeout_s: float = 30.0,
        path_map: Mapping[str, str] | None = None,
        derived_key: str = DERIVED_KEY,
    ) -> None:
        super().__init__()
        self.slices = _check_slices(slices)
        if not frame_timeout_s > 0:
            raise ValueError(f"frame_timeout_s={frame_timeout_s!r} must be > 0 s")
        self.tiled = tiled
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.options = {
            "drift_correction": bool(drift_correction),
            "filter": filter,
            "volume_shape": volume_shape,
            "voxel_mm": voxel_mm,
            "center_col": center_col,
        }
        self.background = bool(background)
        if not (isinstance(nice, int) and 0 <= nice <= 19):
            raise ValueError(f"nice={nice!r} must be an integer in [0, 19]")
        self.nice = nice
        self.derived_key = derived_key
        self.frames = FrameSource(timeout_s=frame_timeout_s, path_map=path_map)
        self.result: dict[str, Any] | None = None
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._inc: IncrementalCT | None = None
        self._settling: tuple[np.ndarray, np.ndarray] | None = None
        self._start: dict[str, Any] = {}
        self._streams: dict[str, tuple[str, str | None, str]] = {}  # descriptor uid -> ...
        self._update_s: list[float] = []
        # counting runs: (stream, frame ref, event data) of every image, for the settling
        self._images: list[tuple[str, Any, dict[str, Any]]] | None = None
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._result_hooks: list[tuple[Callable[[dict], Any], bool]] = []

    def on_result(self, hook: Callable[[dict[str, Any]], Any], *, once: bool = False) -> None:
        """Call ``hook(result)`` when a run's final slices are ready (on the thread that made
        them); ``once``: only for the next run. Exceptions in a hook are logged."""
        self._result_hooks.append((hook, bool(once)))

    # ---------------------------------------------------------------- threading
    def __call__(self, name: Any, doc: dict, validate: bool = False):
        name = getattr(name, "name", name)  # RemoteDispatcher may pass DocumentNames
        if not self.background:
            return super().__call__(name, doc, validate)
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._work, name="nanoct-live-recon", daemon=True
            )
            self._worker.start()
        self._queue.put((name, doc))
        return name, doc

    def _work(self) -> None:
        if self.nice:
            try:  # Linux: a thread has its own nice value
                tid = threading.get_native_id()
                os.setpriority(
                    os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self.nice
                )
            except (AttributeError, OSError):
                logger.debug("live reconstruction: could not lower its thread's priority")
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                name, doc = item
                try:
                    super().__call__(name, doc)
                except Exception as err:
                    self._error(f"{name} document: {type(err).__name__}: {err}")
                    logger.exception("live reconstruction failed on a %s document", name)
            finally:
                self._queue.task_done()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until every document received so far is processed; False on timeout."""
        if not self.background:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_s: float | None = 60.0) -> None:
        """Finish the queued documents and stop the background thread."""
        if self._worker is not None and self._worker.is_alive():
            self._queue.put(_STOP)
            self._worker.join(timeout_s)
        self._worker = None
        self.frames.close()

    def _error(self, msg: str) -> None:
        self.errors.append(msg)
        logger.error("live reconstruction: %s", msg)

    # ---------------------------------------------------------------- state
    @property
    def active(self) -> bool:
        """Whether a run (:data:`LIVE_PLANS`) is being reconstructed now."""
        return self._inc is not None

    @property
    def progress(self) -> tuple[int, int]:
        """``(projections in the slices, projections of the scan)``."""
        with self._lock:
            if self._inc is None:
                return (0, 0)
            return self._inc.n_projections, self._inc.n_angles

    @property
    def indices(self) -> np.ndarray | None:
        """Volume indices of the slices (of the run in progress or the last one)."""
        with self._lock:
            if self._inc is not None:
                return self._inc.slice_indices.copy()
            if self._settling is not None:
                return self._settling[1]
        return None if self.result is None else self.result["indices"]

    def current(self) -> np.ndarray | None:
        """The slices now (float32 ``(n, ny, nx)``, 1/mm), the final ones after the stop, or
        None before a run."""
        with self._lock:
            if self._inc is not None:
                return self._inc.current()
            if self._settling is not None:
                return self._settling[0]
        return None if self.result is None else self.result["slices"]

    @property
    def update_s(self) -> list[float]:
        """Seconds each projection's update took, reading its frame included (the live
        latency once the event is handled), this run."""
        return list(self._update_s)

    # ---------------------------------------------------------------- documents
    def start(self, doc):
        with self._lock:
            self._inc = None
            self._start = dict(doc)
            self._streams.clear()
            self._update_s = []
            self._images = None
            self.frames.reset()
        if doc.get("plan_name") not in LIVE_PLANS or "geometry" not in doc:
            logger.debug(
                "live reconstruction: run %s is not one of %s; ignored", doc["uid"], LIVE_PLANS
            )
            return
        self.result = None
        try:
            inc = IncrementalCT(
                doc, slices=self.slices, read_frame=self.frames.read, **self.options
            )
        except ValueError as err:
            self._error(f"run {doc['uid']} cannot be reconstructed live: {err}")
            return
        with self._lock:
            self._inc = inc
            self._images = [] if inc.counting else None
        logger.info(
            "live reconstruction of run %s: slices %s", doc["uid"], inc.slice_indices.tolist()
        )

    def descriptor(self, doc):
        key = image_key_of(doc)
        prefix = ""
        if key is not None:
            for obj, keys in (doc.get("object_keys") or {}).items():
                if key in keys:
                    prefix = f"{obj}_"
        self._streams[doc["uid"]] = (doc.get("name", "primary"), key, prefix)

    def stream_resource(self, doc):
        self.frames.stream_resource(doc)

    def stream_datum(self, doc):
        self.frames.stream_datum(doc)

    def event(self, doc):
        inc = self._inc
        stream = self._streams.get(doc["descriptor"])
        if inc is None or stream is None or stream[1] is None:
            return
        name, key, prefix = stream
        images = self._images
        if name not in ("dark", "flat", "primary") and not (
            images is not None and name == "reference"
        ):
            return
        ref = self.frames.ref(doc["descriptor"], doc["seq_num"], key)
        if ref is None:
            self._error(f"no StreamDatum names the frame of {name} event {doc['seq_num']}")
            return
        data = doc["data"]
        if images is not None:  # kept for the settling with the counting pipeline
            images.append((name, ref, {"prefix": prefix, **data}))
            if name == "reference":
                return
        t0 = time.perf_counter()
        frame = self.frames.read(ref)
        with self._lock:
            if name == "dark":
                inc.add_dark(frame)
            elif name == "flat":
                inc.add_flat(frame, data[f"{prefix}twin_time"], data.get("flat_block"))
            else:
                wire = None
                if "wire_x_px" in data and "wire_y_px" in data:
                    wire = (data["wire_x_px"], data["wire_y_px"])
                inc.add_projection(
                    frame,
                    data[f"{prefix}rotation_angle"],
                    data[f"{prefix}twin_time"],
                    wire_xy_px=wire,
                    ref=ref,
                )
                self._update_s.append(time.perf_counter() - t0)

    def stop(self, doc):
        inc = self._inc
        if inc is None:
            return
        uid = self._start["uid"]
        with self._lock:  # while it settles, the display keeps the last live slices
            self._settling = (inc.current(), inc.slice_indices.copy())
            self._inc = None
        try:
            if inc.counting:
                slices, info = self._settle_counting(inc)
            else:
                slices, info = inc.finish()
        finally:
            self._settling = None
        result: dict[str, Any] = {
            "uid": uid,
            "slices": slices,
            "indices": info["slices"],
            "info": info,
            "key": None,
            "uri": None,
            "previews": {},
            "update_s": list(self._update_s),
            "exit_status": doc.get("exit_status"),
        }
        self.result = result
        logger.info(
            "live reconstruction of run %s finished: %d projections, %d re-read, %.2f s",
            uid,
            info["n_projections"],
            info["reread"],
            info["seconds"],
        )
        if self.tiled is not None:
            try:
                result["key"], result["uri"] = self._write_tiled(slices, info)
            except Exception as err:
                self._error(f"writing the live slices of run {uid} to Tiled failed: {err}")
        if self.out_dir is not None:
            try:
                result["previews"] = write_slice_pngs(
                    slices, info["slices"], self.out_dir, f"{uid}-live"
                )
            except OSError as err:
                self._error(f"writing the PNGs of run {uid} failed: {err}")
        self.frames.close()
        hooks, self._result_hooks = (
            self._result_hooks,
            [(h, o) for h, o in self._result_hooks if not o],
        )
        for hook, _ in hooks:
            try:
                hook(result)
            except Exception:
                logger.exception("a live reconstruction result hook failed")

    def _settle_counting(self, inc: IncrementalCT) -> tuple[np.ndarray, dict[str, Any]]:
        """The final slices of a photon-counting run: every image read again from its file
        and reconstructed by the offline pipeline (``algorithm="fdk"``, these slices)."""
        t0 = time.perf_counter()
        images = self._images or []

        def stack(name: str):
            sel = [(ref, data) for stream, ref, data in images if stream == name]
            if not sel:
                return None, np.zeros(0), []
            frames = np.stack([self.frames.read(ref) for ref, _ in sel])
            times = np.array([d[f"{d['prefix']}twin_time"] for _, d in sel], np.float64)
            return frames, times, [d for _, d in sel]

        proj, times, pdata = stack("primary")
        if proj is None:
            raise ValueError("the run has no projections")
        flats, flat_times, fdata = stack("flat")
        darks, _, _ = stack("dark")
        refs, ref_times, _ = stack("reference")
        angles = np.array([d[f"{d['prefix']}rotation_angle"] for d in pdata], np.float64)
        blocks = None
        if fdata and all("flat_block" in d for d in fdata):
            blocks = np.array([d["flat_block"] for d in fdata])
        opts = dict(self.options)
        # the microscope's drift reference: its reference projections (no wire in its field)
        opts["drift_correction"] = bool(opts["drift_correction"]) and (
            refs is not None or isinstance(self._start.get("reference_wire"), Mapping)
        )
        slices, info = reconstruct_ct(
            proj, angles, times, flats, flat_times, blocks, darks, self._start,
            algorithm="fdk", slices=inc.slice_indices, references=refs,
            reference_times_s=ref_times if refs is not None else None, **opts,
        )  # fmt: skip
        info["slices"] = np.asarray(info["slices"])
        info["n_projections"] = int(proj.shape[0])
        info["reread"] = int(proj.shape[0])  # every image: settled by the offline pipeline
        info["seconds"] = time.perf_counter() - t0
        return np.ascontiguousarray(slices, dtype=np.float32), info

    def _write_tiled(self, slices: np.ndarray, info: dict[str, Any]) -> tuple[str, str | None]:
        start = self._start
        uid = start["uid"]
        container = derived_container(self.tiled, self.derived_key)
        geo = info["geometry"]
        md = {
            "raw_uid": uid,
            "algorithm": "fdk",
            "live": True,
            "drift_corrected": bool(info["drift_corrected"]),
            "slices": [int(i) for i in info["slices"]],
            "axes": ["z", "y", "x"],
            "units": "1/mm",
            "voxel_size_um": geo["voxel_mm"] * 1e3,
            "center_col": geo["center_col"],
            "geometry": {k: v for k, v in geo.items() if k != "detector_shape"},
            "n_projections": int(info["n_projections"]),
            "reread_projections": int(info["reread"]),
            "specimen": start.get("specimen"),
            "counting": bool(info.get("counting", False)),
        }
        key = f"{uid}-live"
        n = 1
        while key in container:  # an earlier live reconstruction of the run is kept
            n += 1
            key = f"{uid}-live-{n}"
        node = container.write_array(np.ascontiguousarray(slices), key=key, metadata=md)
        return key, getattr(node, "uri", None)
