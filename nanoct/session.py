"""One call that wires a ready acquisition session: `start_session`.

The IPython profile and the CLI both use it::

    from nanoct.session import start_session

    s = start_session()                    # default data directory, its server (started if needed)
    s.RE(ct_scan(s.ct, num_angles=360))    # the run goes to Tiled; the frames to HDF5
    s.runs[-1]                             # read it back (tiled's CatalogOfBlueskyRuns)

What the session guarantees about data (nothing acquired is lost):

- every document is appended to a local journal (``<data_dir>/journal/<uid>.<pid>.jsonl``)
  *before* anything else sees it; the journal is removed once the run is safely in Tiled or
  in TiledWriter's backup. A process killed mid-scan leaves its journal behind, and
  ``nanoct replay`` loads it into Tiled (the run is then marked ``exit_status="fail"``);
- Tiled is written by bluesky-tiled-plugins' ``TiledWriter`` on a background thread, so a slow
  or dead server never stalls the scan; with ``backup_directory`` set, a run whose writing
  fails completes anyway and lands in ``<data_dir>/backup/`` for ``nanoct replay``;
- detector frames are flushed to HDF5 (SWMR) as they are taken (``nanoct.devices.hdf5``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoct.config import (
    API_KEY_ENV,
    TILED_URI_ENV,
    DataLayout,
    load_or_create_api_key,
    resolve_data_dir,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AUTO_BATCH_LATENCY_S",
    "AUTO_BATCH_MAX",
    "JournalingWriter",
    "PerRunTiledWriter",
    "Session",
    "TiledUnavailableError",
    "auto_batch_size",
    "connect",
    "journal_dir",
    "start_session",
]

#: ``batch_size="auto"``: one write to Tiled per this many seconds of acquisition at most ...
AUTO_BATCH_LATENCY_S = 2.0
#: ... and at most this many images per write (also the batch when the image time is unknown,
#: e.g. the twin at time scale 0, which renders as fast as it can).
AUTO_BATCH_MAX = 50

DocumentCallback = Callable[[str, dict], Any]


class TiledUnavailableError(ConnectionError):
    """The configured Tiled server cannot be reached (or refuses the key)."""


def journal_dir(layout: DataLayout) -> Path:
    """``<data_dir>/journal``: journals of runs in progress (or of processes that died)."""
    return layout.root / "journal"


# ------------------------------------------------------------------------------ connecting
def connect(
    data_dir: str | Path | DataLayout | None = None,
    *,
    uri: str | None = None,
    api_key: str | None = None,
    start_server: bool = False,
    server_port: int | None = None,
):
    """A tiled client on the runs catalog (the server root, spec ``CatalogOfBlueskyRuns``).

    Which server: `uri`, else ``$NANOCT_TILED_URI``, else the one running for the data
    directory (started in the background when `start_server` is true).
    Which key: `api_key`, else ``$TILED_API_KEY``, else the data directory's key file.

    Returns
    -------
    (client, ServerInfo or None, bool)
        The client, the data directory's server (None for a configured `uri`), and whether
        this call started it.

    Raises
    ------
    TiledUnavailableError
        If no server is configured or running (and none may be started), or it cannot be
        reached, or it refuses the key.
    """
    from nanoct.server import find_running_server, start_server_process

    layout = data_dir if isinstance(data_dir, DataLayout) else DataLayout.of(data_dir)
    uri = uri or os.environ.get(TILED_URI_ENV) or None
    info = None
    started = False
    if uri is None:
        info = find_running_server(layout)
        if info is None:
            if not start_server:
                raise TiledUnavailableError(
                    f"no nanoct server is running for {layout.root}; start one with "
                    f"`nanoct serve --data-dir {layout.root}` or pass a server URI "
                    f"(--uri or ${TILED_URI_ENV})"
                )
            info = start_server_process(layout.root, port=server_port)
            started = True
        uri = info.uri
    key = api_key or os.environ.get(API_KEY_ENV) or None
    if key is None and layout.api_key_path.exists():
        key = load_or_create_api_key(layout.api_key_path)
    return _client(uri, key), info, started


def _client(uri: str, api_key: str | None):
    import httpx
    from tiled.client import from_uri

    base = uri.split("/api/v1", 1)[0].rstrip("/")
    try:  # one quick probe: tiled's client would retry a dead server for up to 45 s
        with httpx.Client(trust_env=False, timeout=10) as probe:
            probe.get(f"{base}/healthz")
    except httpx.HTTPError as err:
        raise TiledUnavailableError(f"cannot reach the Tiled server {uri}: {err}") from err
    try:
        return from_uri(uri, api_key=api_key)
    except httpx.HTTPStatusError as err:
        code = err.response.status_code
        why = "the API key was refused" if code in (401, 403) else f"HTTP {code}"
        raise TiledUnavailableError(f"Tiled server {uri}: {why}") from err
    except (httpx.HTTPError, OSError) as err:
        raise TiledUnavailableError(f"cannot reach the Tiled server {uri}: {err}") from err


# ------------------------------------------------------------------------------ the writer
class JournalingWriter:
    """Journal every document locally, then hand it to a Tiled writer on a background thread.

    Parameters
    ----------
    target : callable
        The Tiled writer, ``target(name, doc)`` (a ``TiledWriter`` with ``backup_directory``,
        which never raises for a failed write).
    journal_directory : path
        Where ``<uid>.<pid>.jsonl`` journals go.
    backup_directory : path, optional
        TiledWriter's backup directory; a journal is removed at the run's stop only if the run
        reached Tiled or its backup holds the whole run.
    stop_timeout_s : float
        How long the RunEngine waits, at a run's stop, for the writer to catch up. After that
        the run's journal stays and the writer goes on in the background.
    verify : callable, optional
        ``verify(stop_doc) -> bool``: whether the run is complete in Tiled (asked at its stop).
        A journal is removed only if the target never raised for the run and either `verify`
        says so or TiledWriter's backup holds the whole run.

    Notes
    -----
    The journal is written and flushed in the RunEngine's thread before the document is
    queued, so a process killed at any moment leaves every document emitted so far on disk.
    A failure of the target is logged and never reaches the RunEngine.
    """

    def __init__(
        self,
        target: DocumentCallback,
        journal_directory: str | Path,
        *,
        backup_directory: str | Path | None = None,
        stop_timeout_s: float = 300.0,
        verify: Callable[[dict], bool] | None = None,
    ) -> None:
        self.target = target
        self.verify = verify
        self._failed: set[Path | None] = set()  # journals of runs the target failed on
        self.journal_directory = Path(journal_directory)
        self.journal_directory.mkdir(parents=True, exist_ok=True)
        self.backup_directory = Path(backup_directory) if backup_directory else None
        self.stop_timeout_s = float(stop_timeout_s)
        self._queue: queue.Queue = queue.Queue()
        self._journal_file = None
        self._journal_path: Path | None = None
        self._done: dict[str, threading.Event] = {}
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="nanoct-tiled-writer", daemon=True)
        self._thread.start()

    # -- RunEngine side
    def __call__(self, name: str, doc: dict) -> None:
        if self._closed:
            raise RuntimeError("JournalingWriter is closed")
        self._journal(name, doc)
        done = None
        if name == "stop":
            done = self._done.setdefault(doc["run_start"], threading.Event())
        self._queue.put((name, doc, self._journal_path))
        if name == "stop":
            self._close_journal()
            if not done.wait(self.stop_timeout_s):
                logger.warning(
                    "Tiled writing of run %s is still going on after %.0f s; the run's journal "
                    "stays until it is done (or for `nanoct replay`)",
                    doc["run_start"],
                    self.stop_timeout_s,
                )

    def _journal(self, name: str, doc: dict) -> None:
        if name == "start":
            self._close_journal()
            path = self.journal_directory / f"{doc['uid']}.{os.getpid()}.jsonl"
            self._journal_file = open(path, "a", encoding="utf-8")
            self._journal_path = path
        if self._journal_file is None:
            return  # a document outside a run
        self._journal_file.write(json.dumps({"name": name, "doc": doc}, default=_jsonable) + "\n")
        self._journal_file.flush()

    def _close_journal(self) -> None:
        if self._journal_file is not None:
            with contextlib.suppress(OSError):
                self._journal_file.flush()
                os.fsync(self._journal_file.fileno())
            self._journal_file.close()
            self._journal_file = None

    # -- writer thread
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            name, doc, path = item
            try:
                self.target(name, doc)
            except Exception:
                logger.exception("Tiled writer failed on a %r document; journal kept", name)
                self._failed.add(path)
            finally:
                if name == "stop":
                    failed = path in self._failed
                    self._failed.discard(path)
                    if path is not None and not failed and self._safely_stored(doc):
                        with contextlib.suppress(OSError):
                            path.unlink()
                    elif path is not None:
                        logger.warning(
                            "run %s: kept its journal %s for `nanoct replay`",
                            doc["run_start"],
                            path,
                        )
                    self._done.setdefault(doc["run_start"], threading.Event()).set()
                self._queue.task_done()

    def _safely_stored(self, stop: dict) -> bool:
        """Whether the run is complete in Tiled (`verify`) or in TiledWriter's backup."""
        backup = None
        if self.backup_directory is not None:
            backup = self.backup_directory / f"{stop['run_start'].split('-')[0]}.jsonl"
        if backup is None or not backup.exists():
            if self.verify is None:
                return True  # TiledWriter raised nothing and backed nothing up
            try:
                return bool(self.verify(stop))
            except Exception:
                logger.exception("could not check run %s in Tiled", stop["run_start"])
                return False
        try:
            last = backup.read_text(encoding="utf-8").rstrip("\n").rsplit("\n", 1)[-1]
            rec = json.loads(last)
        except (OSError, ValueError):
            return False
        return rec.get("name") == "stop" and rec["doc"].get("uid") == stop["uid"]

    # -- lifecycle
    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued document has been handed to the target."""
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True)
        waiter.start()
        return done.wait(timeout_s)

    def close(self, timeout_s: float | None = 60.0) -> None:
        """Finish the queued documents and stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join(timeout_s)
        self._close_journal()


def auto_batch_size(start: Mapping[str, Any]) -> int:
    """Images per Tiled write for a run, from its start document.

    The wall time of one image is ``exposure_s * frames_per_projection`` (times the twin's
    ``time_scale`` when the start document has one). Runs whose images take longer than
    `AUTO_BATCH_LATENCY_S` are written image by image (every frame shows in Tiled as it is
    taken); faster ones in batches covering about that long, at most `AUTO_BATCH_MAX` images
    (also when the image time is unknown or zero).
    """
    try:
        per_image_s = float(start["exposure_s"]) * float(start.get("frames_per_projection", 1))
    except (KeyError, TypeError, ValueError):
        return AUTO_BATCH_MAX
    if "time_scale" in start:
        per_image_s *= float(start["time_scale"] or 0.0)
    if per_image_s <= 0:
        return AUTO_BATCH_MAX
    return int(min(AUTO_BATCH_MAX, max(1, round(AUTO_BATCH_LATENCY_S / per_image_s))))


class PerRunTiledWriter:
    """A ``TiledWriter`` made for each run, with the batch size chosen for that run.

    Parameters
    ----------
    client : CatalogOfBlueskyRuns
    batch_size : int or "auto"
        Fixed, or `auto_batch_size` of each run's start document.
    **kwargs
        For ``TiledWriter`` (e.g. ``backup_directory``).
    """

    def __init__(self, client: Any, *, batch_size: int | str = "auto", **kwargs: Any) -> None:
        # TiledWriter asks the server for this variation of the client when it is made; ask
        # once now (the server is up), so a run can start while the server is down.
        self.client = client.include_data_sources()
        self.batch_size = batch_size
        self.kwargs = kwargs
        self._writers: dict[str, Any] = {}
        self._run_of: dict[str, str] = {}  # descriptor / stream resource uid -> run uid
        self.last_batch_size: int | None = None

    def __call__(self, name: str, doc: dict) -> None:
        from bluesky_tiled_plugins import TiledWriter

        if name == "start":
            size = auto_batch_size(doc) if self.batch_size == "auto" else int(self.batch_size)
            self.last_batch_size = size
            self._writers[doc["uid"]] = TiledWriter(self.client, batch_size=size, **self.kwargs)
            run = doc["uid"]
        elif name in ("stop", "descriptor", "stream_resource", "resource"):
            run = doc["run_start"]
        else:  # event(s), datum(s): follow their descriptor or resource
            ref = doc.get("descriptor") or doc.get("stream_resource") or doc.get("resource")
            run = self._run_of.get(ref or "")
            if run is None and len(self._writers) == 1:
                run = next(iter(self._writers))
        if name in ("descriptor", "stream_resource", "resource"):
            self._run_of[doc["uid"]] = run
        writer = self._writers.get(run)
        if writer is None:
            raise RuntimeError(f"{name} document of an unknown run: not written to Tiled")
        try:
            writer(name, doc)
        finally:
            if name == "stop":
                del self._writers[run]
                self._run_of = {k: v for k, v in self._run_of.items() if v != run}


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


# ------------------------------------------------------------------------------ the session
@dataclass
class Session:
    """What `start_session` returns.

    Attributes
    ----------
    RE : bluesky.RunEngine
        With persistent metadata (``RE.md``, scan_id survives restarts), TiledWriter (through
        a `JournalingWriter`), the suspenders and the caller's callbacks subscribed.
    ct : SubMicronCT
        The sub-um CT (digital twin unless a real instrument was passed).
    runs : CatalogOfBlueskyRuns
        Tiled client on the runs (``runs[-1]``, ``runs[scan_id]``, ``runs[uid]``).
    writer : JournalingWriter
    tiled_writer : PerRunTiledWriter
        Makes bluesky-tiled-plugins' ``TiledWriter`` for each run.
    layout : DataLayout
    server : ServerInfo or None
        The data directory's server (None when a URI was configured).
    server_started : bool
        Whether this session started the server (it keeps running after `close`).
    suspenders : list
    tokens : dict
        Subscription tokens by purpose (``"writer"``, ``"callback0"``, ...).
    """

    RE: Any
    ct: Any
    runs: Any
    writer: JournalingWriter
    tiled_writer: Any
    layout: DataLayout
    server: Any = None
    server_started: bool = False
    suspenders: list = field(default_factory=list)
    tokens: dict = field(default_factory=dict)
    #: The X-ray microscope (built on first use by :meth:`instrument`, or passed in).
    microscope: Any = None
    #: How the twins were built (seed, time_scale, ...): the microscope is built alike.
    twin_options: dict = field(default_factory=dict)
    #: The live callbacks of :meth:`enable_live` (or its 0MQ publisher), None when off.
    live: Any = None

    def instrument(self, kind: str = "ct") -> Any:
        """The instrument a plan drives: ``"ct"`` (the sub-um CT) or ``"microscope"``.

        The microscope's twin is built on first use, with the session's seed and time scale,
        writing its frames under the session's data directory; its devices are named
        ``xm_source``, ``xm_medipix``, ``xm_manipulator``, ... beside the CT's.
        """
        if kind == "ct":
            return self.ct
        if kind == "microscope":
            if self.microscope is None:
                from nanoct.devices import xray_microscope

                opts = {k: v for k, v in self.twin_options.items() if k in ("seed", "time_scale")}
                self.microscope = xray_microscope(
                    data_dir=self.layout.frames_dir, name_prefix="xm_", **opts
                )
            return self.microscope
        raise ValueError(f"instrument kind={kind!r} is unknown; allowed: 'ct', 'microscope'")

    def subscribe(self, purpose: str, callback: DocumentCallback) -> int:
        """Subscribe `callback` to the RunEngine under `purpose` (replacing one of that name).

        Returns the RunEngine's token; :meth:`unsubscribe` takes the purpose.
        """
        self.unsubscribe(purpose)
        token = self.RE.subscribe(callback)
        self.tokens[purpose] = token
        return token

    def unsubscribe(self, purpose: str) -> bool:
        """Unsubscribe the callback subscribed under `purpose`; False if there was none."""
        token = self.tokens.pop(purpose, None)
        if token is None:
            return False
        self.RE.unsubscribe(token)
        return True

    def enable_progress(self, mode: str = "auto") -> Any:
        """Show a progress bar for CT-like runs (done/total, time left in instrument and wall
        time): a tqdm bar in a terminal, a plain line in IPython. Returns the callback."""
        from nanoct.callbacks.progress import ProgressBar
        from nanoct.callbacks.safe import safe

        bar = ProgressBar(mode=mode)
        self.subscribe("progress", safe(bar))
        return bar

    def enable_live(
        self,
        slices: Any = None,
        *,
        out_dir: str | Path | None = None,
        monitors: bool = True,
        pictures: bool = True,
        progress: bool = False,
        publish: str | None = None,
        drift_threshold_voxels: float = 0.25,
    ) -> Any:
        """Switch live reconstruction and the wire/flux monitors on (or publish over 0MQ).

        Parameters
        ----------
        slices : int, slice or sequence of int, optional
            Slices reconstructed while the scan runs (default the central one).
        out_dir : path, optional
            Where the PNGs go (default ``<data_dir>/live``).
        monitors, pictures, progress : bool
            Also the wire-drift and flux monitors, the PNG pictures, a progress bar (off by
            default here: :meth:`enable_progress` shows one for every run).
        publish : str, optional
            ``HOST:PORT`` of a bluesky 0MQ proxy's input: publish the documents there instead
            of running the callbacks in this process (``nanoct live --proxy HOST:PORT`` runs
            them elsewhere).
        drift_threshold_voxels : float
            Wire-drift warning threshold.

        Returns
        -------
        LiveCallbacks or bluesky Publisher
            The callbacks (``.recon.current()``, ``.warnings``, ...) or the publisher.
        """
        self.disable_live()
        if publish is not None:
            from nanoct.live import publish as _publish

            token, publisher = _publish(self.RE, publish)
            self.tokens["live-publisher"] = token
            self.live = publisher
            return publisher
        from nanoct.callbacks import live_callbacks

        live = live_callbacks(
            slices=slices,
            tiled=self.runs,
            out_dir=Path(out_dir) if out_dir is not None else self.layout.root / "live",
            monitors=monitors,
            pictures=pictures,
            progress=progress,
            drift_threshold_voxels=drift_threshold_voxels,
        )
        for i, token in enumerate(live.subscribe(self.RE)):
            self.tokens[f"live{i}"] = token
        self.live = live
        return live

    def disable_live(self) -> None:
        """Unsubscribe the live callbacks (or the publisher) of :meth:`enable_live`."""
        for purpose in [k for k in self.tokens if k.startswith("live")]:
            self.unsubscribe(purpose)
        live, self.live = self.live, None
        close = getattr(live, "close", None)
        if callable(close):
            close()

    def reconstruct(
        self,
        run: Any = -1,
        *,
        slices: Any = None,
        algorithm: str = "auto",
        out_dir: str | Path | None = None,
        progress: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """``nanoct recon`` from the session: reconstruct a run of its catalog and write the
        volume into Tiled beside it (``processed/<uid>-<algorithm>``), with PNG previews.

        Parameters
        ----------
        run : int or str
            ``-1`` (default) the latest run, another negative index, a scan_id or a uid.
        slices : str, int, slice or sequence of int, optional
            Volume slices, e.g. ``"240:272"`` or ``[256]``; default all.
        algorithm : str
            As ``nanoct recon --algorithm`` (``auto``, ``fdk``, ``fbp``, ``sirt``,
            ``poisson-ml``).
        out_dir : path, optional
            Where the PNG previews go; default ``<data dir>/recon``.
        progress : bool
            Show the stage and the slices done with the time left (stderr).
        **options
            Passed on (``drift_correction``, ``fbp_method``, ``volume_shape``, ...; see
            :func:`nanoct.reconstruct.reconstruct_run`).

        Returns
        -------
        dict
            :func:`nanoct.reconstruct.reconstruct_run`'s result (``key``, ``uri``, ``shape``,
            ``previews``, ``info``); the volume is in the ``processed`` container beside the
            runs (``result["uri"]``).
        """
        from nanoct.reconstruct import RunError, StageBar, parse_slices, reconstruct_run

        if isinstance(slices, str):
            slices = parse_slices(slices)
        self.writer.flush(60)  # the run's last documents are in Tiled
        try:
            node = self.runs[run]
        except (KeyError, IndexError, ValueError) as err:
            raise RunError(f"no run {run!r} in this session's catalog ({err})") from None
        out = Path(out_dir) if out_dir is not None else self.layout.root / "recon"
        bar = StageBar() if progress else None
        try:
            return reconstruct_run(
                node, out_dir=out, slices=slices, algorithm=algorithm,
                progress=None if bar is None else bar.stage,
                slice_progress=None if bar is None else bar.slices, **options,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.done()

    def summary(self) -> str:
        """A few lines for the start of an interactive session: where data go, what is there."""
        base = str(self.runs.uri).split("/api/v1", 1)[0]
        lines = [
            f"nanoct session: data {self.layout.root}",
            f"  Tiled {base}/api/v1 ({'started here' if self.server_started else 'running'}); "
            f"next scan_id {int(self.RE.md.get('scan_id', 0)) + 1}",
            f"  CT: {', '.join(self.ct.devices())}",
        ]
        if self.microscope is not None:
            lines.append(f"  microscope: {', '.join(self.microscope.devices())}")
        lines.append(
            "  plans: RE(ct_scan(ct, num_angles=360)), runs[-1] reads back; %wa, %ct, %mov; "
            "live() starts live reconstruction, recon(-1, slices='240:272') reconstructs"
        )
        return "\n".join(lines)

    def namespace(self) -> dict[str, Any]:
        """Names for an interactive namespace: ``RE``, ``ct``, ``runs``, ``session``, every
        device of the CT by its name, and (when built) ``microscope`` and its devices (a name
        that the CT already uses gets the prefix ``xm_``)."""
        ns = {"RE": self.RE, "ct": self.ct, "runs": self.runs, "session": self}
        devices = getattr(self.ct, "devices", None)
        if callable(devices):
            ns.update(devices())
        if self.microscope is not None:
            ns["microscope"] = self.microscope
            for name, dev in self.microscope.devices().items():
                ns[name if name not in ns else f"xm_{name}"] = dev
        return ns

    def close(self, *, stop_server: bool = False) -> None:
        """Finish writing, unsubscribe, and (only if asked) stop the server."""
        self.disable_live()
        for token in self.tokens.values():
            with contextlib.suppress(Exception):
                self.RE.unsubscribe(token)
        self.tokens.clear()
        self.writer.close()
        md = getattr(self.RE, "md", None)
        if hasattr(md, "flush"):
            md.flush()
            # PersistentDict also writes its (by then stale) cache when it is garbage
            # collected, which would overwrite what a later session of this process stored.
            finalizer = getattr(md, "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()
        if stop_server and self.server is not None:
            from nanoct.server import stop_server as _stop

            _stop(self.layout)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_session(
    data_dir: str | Path | None = None,
    *,
    tiled_uri: str | None = None,
    api_key: str | None = None,
    start_server: bool = True,
    server_port: int | None = None,
    instrument: Any = None,
    seed: int = 0,
    specimen: str = "chip",
    binning: int = 4,
    time_scale: float = 0.0,
    instabilities: Any = None,
    callbacks: Iterable[DocumentCallback] = (),
    suspenders: bool = True,
    batch_size: int | str = "auto",
    md: Mapping[str, Any] | None = None,
    stop_timeout_s: float = 300.0,
) -> Session:
    """A ready acquisition session: RunEngine, instrument, Tiled writing, suspenders, callbacks.

    Parameters
    ----------
    data_dir : path, optional
        The nanoct data directory (frames, catalog, backups, metadata); default
        :func:`nanoct.config.default_data_dir`.
    tiled_uri : str, optional
        A running Tiled server (``http://host:port/api/v1``); default ``$NANOCT_TILED_URI``,
        else the data directory's own server, reused if it runs, started in the background
        if not (and `start_server`).
    api_key : str, optional
        Default ``$TILED_API_KEY``, else the data directory's key file.
    start_server : bool
        Start the data directory's server when none runs (default True).
    server_port : int, optional
        Port for a server started here (default 8010 if free, else any free port).
    instrument : SubMicronCT, optional
        Use this instrument instead of building the twin (its detector must write under
        `data_dir`, which the server can read).
    seed, specimen, binning, time_scale, instabilities
        Passed to :func:`nanoct.devices.sub_um_ct` when `instrument` is None.
    callbacks : iterable of callables
        Live document callbacks ``cb(name, doc)`` to subscribe (plots, live reconstruction,
        progress, ...); they run in the RunEngine's thread.
    suspenders : bool
        Install the flux suspenders (:func:`nanoct.plans.suspenders.install_flux_suspenders`)
        when that module is available.
    batch_size : int or "auto"
        Images per Tiled write during a scan (>= 1; 1 shows every frame in Tiled as it is
        taken). "auto" (default): per run, from its exposure (:func:`auto_batch_size`): every
        frame at once when images take seconds, batches of up to 50 when they come fast.
        Either way every document is journaled first, so nothing depends on it for safety.
    md : mapping, optional
        Written into the persistent ``RE.md`` (e.g. ``{"operator": ..., "proposal": ...}``).
    stop_timeout_s : float
        How long the end of a run waits for Tiled writing to catch up.

    Returns
    -------
    Session

    Raises
    ------
    DataDirError
        If the data directory cannot be written.
    TiledUnavailableError
        If the configured server cannot be reached or refuses the key.
    ValueError
        If `batch_size` is neither "auto" nor >= 1.
    """
    from bluesky import RunEngine
    from bluesky.utils import PersistentDict

    if batch_size != "auto" and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")
    layout = resolve_data_dir(data_dir)
    layout.backup_dir.mkdir(parents=True, exist_ok=True)
    layout.md_dir.mkdir(parents=True, exist_ok=True)

    runs, info, started = connect(
        layout,
        uri=tiled_uri,
        api_key=api_key,
        start_server=start_server,
        server_port=server_port,
    )

    _ensure_processed_container(runs)

    if instrument is None:
        from nanoct.devices import sub_um_ct

        instrument = sub_um_ct(
            seed=seed,
            specimen=specimen,
            binning=binning,
            time_scale=time_scale,
            instabilities=instabilities,
            data_dir=layout.frames_dir,
        )

    RE = RunEngine({})
    RE.md = PersistentDict(str(layout.md_dir))
    RE.md.update(dict(md or {}))

    tiled_writer = PerRunTiledWriter(
        runs, batch_size=batch_size, backup_directory=str(layout.backup_dir)
    )

    def in_tiled(stop: dict) -> bool:
        return runs[stop["run_start"]].metadata.get("stop") is not None

    writer = JournalingWriter(
        tiled_writer,
        journal_dir(layout),
        backup_directory=layout.backup_dir,
        stop_timeout_s=stop_timeout_s,
        verify=in_tiled,
    )
    session = Session(
        RE=RE,
        ct=instrument,
        runs=runs,
        writer=writer,
        tiled_writer=tiled_writer,
        layout=layout,
        server=info,
        server_started=started,
        twin_options={"seed": seed, "time_scale": time_scale},
    )
    session.tokens["writer"] = RE.subscribe(writer)
    for i, cb in enumerate(callbacks):
        session.tokens[f"callback{i}"] = RE.subscribe(cb)
    if suspenders:
        session.suspenders = _install_suspenders(RE, instrument)
    logger.info(
        "session: data %s, Tiled %s (%s), scan_id %s",
        layout.root,
        runs.uri,
        "started" if started else "running",
        RE.md.get("scan_id"),
    )
    return session


def _ensure_processed_container(runs: Any, key: str = "processed") -> None:
    """Make the ``processed`` container (reconstructed volumes) now, before this session's
    runs: ``runs[-1]`` is the newest entry of the catalog, and a container made later, beside
    the runs, would take that place."""
    try:
        if key not in runs:
            runs.create_container(key=key)
    except Exception:  # e.g. a read-only key: recon makes it when it first writes
        logger.warning("could not create the %r container in %s", key, runs.uri, exc_info=True)


def _install_suspenders(RE, instrument) -> list:
    try:
        from nanoct.plans.suspenders import install_flux_suspenders
    except ImportError:
        logger.info("nanoct.plans.suspenders is not available: no suspenders installed")
        return []
    return list(install_flux_suspenders(RE, instrument))
