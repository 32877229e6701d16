"""nanoct's Tiled server: a catalog over one data directory, served on loopback.

`serve` runs the server in the foreground (``nanoct serve``); `start_server_process` starts
the same command in the background (the session does this when no server runs) and
`find_running_server` finds one started earlier for a data directory. What is served:

- a Tiled catalog in ``<data_dir>/tiled/catalog.db`` (SQLite), or in a PostgreSQL database
  (``database="postgresql://..."``), created if missing;
- writable storage: zarr arrays in ``<data_dir>/tiled/zarr`` and event tables in SQL
  (``<data_dir>/tiled/tables.sqlite``, or the PostgreSQL database);
- readable storage: the whole data directory, so the detectors' HDF5 files registered by
  TiledWriter can be read;
- the root container carries the spec ``CatalogOfBlueskyRuns`` 3.0: runs are written at the
  top level, and the stock client offers ``c[-1]``, ``c[scan_id]``, ``.v1``/``.v2``/``.v3``;
- the ``application/json-seq`` exporter for ``BlueskyRun``, so ``run.documents()`` works;
- a single-user API key (``<data_dir>/server/api_key``, mode 0600, made once, or given):
  writes always need it; reads need it too unless ``public_read=True``.

The configuration is written to ``<data_dir>/server/config.yml`` (without the key), so the
same catalog can be served by tiled itself::

    tiled serve config DATA/server/config.yml --api-key "$(cat DATA/server/api_key)"

While it runs, ``<data_dir>/server/server.json`` records its URI and process id.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nanoct.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DataLayout,
    load_or_create_api_key,
    normalize_database_uri,
    resolve_data_dir,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BLUESKY_RUNS_SPEC",
    "PortInUseError",
    "ServerAlreadyRunningError",
    "ServerInfo",
    "ServerStartError",
    "find_running_server",
    "is_loopback",
    "serve",
    "start_server_process",
    "stop_server",
    "tiled_config",
    "write_config_file",
]

#: Spec of the root container: (name, version).
BLUESKY_RUNS_SPEC = ("CatalogOfBlueskyRuns", "3.0")
_JSON_SEQ_EXPORTER = "bluesky_tiled_plugins.exporters:json_seq_exporter"


class PortInUseError(OSError):
    """The TCP port asked for is taken."""


class ServerAlreadyRunningError(RuntimeError):
    """A nanoct server for this data directory is already running."""


class ServerStartError(RuntimeError):
    """A background server did not come up."""


@dataclass(frozen=True)
class ServerInfo:
    """A running nanoct server, as recorded in ``<data_dir>/server/server.json``."""

    uri: str  #: ``http://host:port/api/v1``
    host: str
    port: int
    pid: int
    data_dir: str
    database: str  #: catalog URI, password hidden
    public_read: bool
    started: float  #: time.time() when it became ready

    @property
    def base_url(self) -> str:
        return self.uri.rsplit("/api/v1", 1)[0]


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------ configuration
def tiled_config(
    layout: DataLayout,
    *,
    database: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    public_read: bool = False,
) -> dict[str, Any]:
    """The Tiled service configuration for a data directory (no API key in it).

    Parameters
    ----------
    layout : DataLayout
    database : str, optional
        ``postgresql://user:password@host:port/dbname``: the catalog and the event tables go
        there instead of SQLite files.
    host, port
        Recorded in the ``uvicorn`` section (``nanoct serve`` binds its own socket).
    public_read : bool
        Let clients without the key read (``allow_anonymous_access``); writes still need it.
    """
    if database:
        uri = normalize_database_uri(database)
        catalog_uri = uri
        tables_uri = uri
    else:
        catalog_uri = f"sqlite:///{layout.catalog_path}"
        tables_uri = f"sqlite:///{layout.tables_path}"
    name, version = BLUESKY_RUNS_SPEC
    return {
        "catalog": {
            "uri": catalog_uri,
            "init_if_not_exists": True,
            "writable_storage": [str(layout.zarr_dir), tables_uri],
            "readable_storage": [str(layout.root)],
            "specs": [{"name": name, "version": version}],
            "metadata": {"nanoct_data_dir": str(layout.root)},
        },
        "media_types": {"BlueskyRun": {"application/json-seq": _JSON_SEQ_EXPORTER}},
        "authentication": {"allow_anonymous_access": bool(public_read)},
        "uvicorn": {"host": host, "port": int(port)},
    }


def write_config_file(layout: DataLayout, config: dict[str, Any]) -> Path:
    """Write `config` to ``<data_dir>/server/config.yml`` (mode 0600: a PostgreSQL URI may
    hold a password) and return the path."""
    import yaml

    layout.server_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = layout.config_path
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by `nanoct serve`; the API key is not stored here (see api_key).\n")
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)
    return path


def _build_app(config: dict[str, Any], api_key: str):
    from tiled.config import Config, construct_build_app_kwargs
    from tiled.server.app import build_app

    full = copy.deepcopy(config)
    full["authentication"]["single_user_api_key"] = api_key
    full.pop("uvicorn", None)
    parsed = Config.model_validate(full)
    return build_app(**construct_build_app_kwargs(parsed))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortInUseError(
                errno.EADDRINUSE,
                f"port {port} on {host} is already in use: stop what listens there or choose "
                "another port with --port (0 picks a free one)",
            ) from err
        raise OSError(err.errno, f"cannot listen on {host}:{port}: {err.strerror}") from err
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


# ------------------------------------------------------------------------------ running servers
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed, not yet reaped) counts as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _healthy(base_url: str, timeout: float = 2.0) -> bool:
    import httpx

    try:
        with httpx.Client(trust_env=False, timeout=timeout) as client:
            return client.get(f"{base_url}/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def read_server_info(layout: DataLayout) -> ServerInfo | None:
    """The server recorded for `layout`, alive or not; None if no record."""
    try:
        raw = json.loads(layout.server_info_path.read_text())
        return ServerInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None


def find_running_server(data_dir: str | Path | DataLayout | None = None) -> ServerInfo | None:
    """The nanoct server running for a data directory, or None.

    A record whose process is gone or does not answer is ignored (and removed when its
    process is gone).
    """
    layout = data_dir if isinstance(data_dir, DataLayout) else DataLayout.of(data_dir)
    info = read_server_info(layout)
    if info is None:
        return None
    if not pid_alive(info.pid):
        with contextlib.suppress(OSError):
            layout.server_info_path.unlink()
        return None
    return info if _healthy(info.base_url) else None


# ------------------------------------------------------------------------------ serving
def serve(
    data_dir: str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    database: str | None = None,
    public_read: bool = False,
    log_level: str = "warning",
) -> int:
    """Serve the data directory's catalog until interrupted (SIGINT/SIGTERM); return 0.

    Parameters
    ----------
    data_dir : path, optional
        Default :func:`nanoct.config.default_data_dir`.
    host : str
        Address to bind: loopback by default. Any other address exposes the server to the
        network (the API key is then the only protection; use TLS in front of it).
    port : int
        TCP port; 0 picks a free one (read it from ``server.json``).
    api_key : str, optional
        Use (and store) this key instead of the stored or generated one.
    database : str, optional
        ``postgresql://...`` catalog database instead of SQLite.
    public_read : bool
        Allow reads without the key.
    log_level : str
        Uvicorn's log level.

    Raises
    ------
    DataDirError, DatabaseURIError, PortInUseError, ServerAlreadyRunningError, ValueError
        Before anything is served.
    """
    import uvicorn

    layout = resolve_data_dir(data_dir)
    if database:
        database = normalize_database_uri(database)
    if not 0 <= int(port) < 65536:
        raise ValueError(f"port must be 0-65535, got {port}")
    running = find_running_server(layout)
    if running is not None:
        raise ServerAlreadyRunningError(
            f"a nanoct server for {layout.root} is already running at {running.uri} "
            f"(pid {running.pid}); stop it with `nanoct serve --stop --data-dir {layout.root}`"
        )
    for d in (layout.tiled_dir, layout.zarr_dir, layout.backup_dir):
        d.mkdir(parents=True, exist_ok=True)
    key = load_or_create_api_key(layout.api_key_path, api_key)
    config = tiled_config(layout, database=database, host=host, port=port, public_read=public_read)
    write_config_file(layout, config)
    if not is_loopback(host):
        logger.warning(
            "serving on %s: reachable from the network; the API key is the only protection",
            host,
        )
    sock = _bind(host, int(port))
    bound_port = sock.getsockname()[1]
    try:
        app = _build_app(config, key)
        log_config = copy.deepcopy(_log_config())
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=log_config, log_level=log_level, loop="asyncio")
        )
        shown_host = f"[{host}]" if ":" in host else host
        info = ServerInfo(
            uri=f"http://{shown_host}:{bound_port}/api/v1",
            host=host,
            port=bound_port,
            pid=os.getpid(),
            data_dir=str(layout.root),
            database=_shown_database(config["catalog"]["uri"]),
            public_read=bool(public_read),
            started=0.0,
        )
        with _record_when_ready(server, layout, info):
            server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _shown_database(uri: str) -> str:
    from nanoct.config import _hide_password

    return _hide_password(uri)


def _log_config() -> dict[str, Any]:
    from tiled.server.logging_config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    tty = sys.stderr.isatty()
    for fmt in cfg.get("formatters", {}).values():
        if "use_colors" in fmt:
            fmt["use_colors"] = tty
    return cfg


@contextlib.contextmanager
def _record_when_ready(server, layout: DataLayout, info: ServerInfo) -> Iterator[None]:
    """Write server.json once uvicorn has started (the app's startup has run); remove it
    when the server stops."""
    stop = threading.Event()

    def _watch() -> None:
        while not stop.is_set():
            if server.started:
                rec = asdict(info) | {"started": time.time()}
                tmp = layout.server_info_path.with_suffix(f".tmp{os.getpid()}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump(rec, f, indent=1)
                os.replace(tmp, layout.server_info_path)
                print(f"nanoct: serving {layout.root} at {info.uri}", file=sys.stderr, flush=True)
                return
            stop.wait(0.05)

    watcher = threading.Thread(target=_watch, name="nanoct-server-ready", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(timeout=5)
        current = read_server_info(layout)
        if current is not None and current.pid == os.getpid():
            with contextlib.suppress(OSError):
                layout.server_info_path.unlink()


# ------------------------------------------------------------------------------ background
def start_server_process(
    data_dir: str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    database: str | None = None,
    public_read: bool = False,
    timeout_s: float = 90.0,
) -> ServerInfo:
    """Start ``nanoct serve`` in the background (detached, logging to ``server.log``) and wait
    until it answers.

    Parameters
    ----------
    port : int, optional
        Default: :data:`~nanoct.config.DEFAULT_PORT` if free, else any free port.

    Returns
    -------
    ServerInfo
        The running server. It outlives the calling process; stop it with `stop_server`.

    Raises
    ------
    ServerStartError
        If the process exits or does not answer within `timeout_s` (with its log's tail).
    """
    layout = resolve_data_dir(data_dir)
    layout.server_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if port is None:
        port = DEFAULT_PORT if _port_free(host, DEFAULT_PORT) else 0
    cmd = [
        sys.executable,
        "-m",
        "nanoct.cli",
        "serve",
        "--data-dir",
        str(layout.root),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if database:
        cmd += ["--database", database]
    if public_read:
        cmd.append("--public-read")
    log = open(layout.server_log_path, "ab")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    _CHILDREN.append(proc)  # the server outlives this call; keep the handle to reap it later
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rc = proc.poll()
        if rc is not None:
            raise ServerStartError(
                f"nanoct serve exited with code {rc} before it was ready; "
                f"log {layout.server_log_path}:\n{_tail(layout.server_log_path)}"
            )
        info = read_server_info(layout)
        if info is not None and info.pid == proc.pid and _healthy(info.base_url):
            logger.info("started nanoct server %s (pid %d)", info.uri, info.pid)
            return info
        time.sleep(0.1)
    _terminate(proc.pid, timeout_s=10)
    raise ServerStartError(
        f"nanoct serve did not answer within {timeout_s:.0f} s; "
        f"log {layout.server_log_path}:\n{_tail(layout.server_log_path)}"
    )


#: Servers started by this process (``subprocess.Popen``), reaped by `stop_server`.
_CHILDREN: list[subprocess.Popen] = []


def _port_free(host: str, port: int) -> bool:
    try:
        _bind(host, port).close()
    except OSError:
        return False
    return True


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _is_nanoct_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # not Linux: trust the record
    return any(b"nanoct" in part for part in cmdline)


def _terminate(pid: int, *, timeout_s: float) -> bool:
    """SIGTERM `pid`, then SIGKILL after `timeout_s`; True once it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def _reap(pid: int) -> None:
    for proc in list(_CHILDREN):
        if proc.pid == pid and proc.poll() is not None:
            _CHILDREN.remove(proc)
            return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_server(data_dir: str | Path | DataLayout | None = None, *, timeout_s: float = 20) -> bool:
    """Stop the server recorded for a data directory; False if none was running."""
    layout = data_dir if isinstance(data_dir, DataLayout) else DataLayout.of(data_dir)
    info = read_server_info(layout)
    if info is None or not pid_alive(info.pid):
        with contextlib.suppress(OSError):
            layout.server_info_path.unlink()
        return False
    if not _is_nanoct_process(info.pid):
        logger.warning("pid %d in %s is not a nanoct server", info.pid, layout.server_info_path)
        with contextlib.suppress(OSError):
            layout.server_info_path.unlink()
        return False
    stopped = _terminate(info.pid, timeout_s=timeout_s)
    with contextlib.suppress(OSError):
        current = read_server_info(layout)
        if current is not None and current.pid == info.pid:
            layout.server_info_path.unlink()
    return stopped
