"""Where nanoct keeps its data, its API key and its server, and the checks made before a scan.

One data directory holds everything of one installation (default :func:`default_data_dir`:
``$NANOCT_DATA_DIR``, else ``~/.local/share/nanoct/data``)::

    <data_dir>/
        YYYY/MM/DD/*.h5          detector frames (HDF5, SWMR); the Tiled server may read them
        tiled/catalog.db         the Tiled catalog (SQLite; or a PostgreSQL database)
        tiled/zarr/              arrays written through Tiled (writable storage)
        tiled/tables.sqlite      event tables written through Tiled (writable SQL storage)
        server/api_key           the API key (mode 0600), made once
        server/config.yml        the Tiled configuration nanoct serves (no secret in it)
        server/server.json       the running server: uri, pid (removed when it stops)
        server/server.log        output of a server started in the background
        backup/<uid8>.jsonl      runs that could not be written to Tiled (``nanoct replay``)
        backup/replayed/         backups already replayed
        session/runengine-md/    the RunEngine's persistent metadata (scan_id)

Nothing here opens a socket or starts a thread; the functions only look at the file system.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from nanoct.devices.instrument import default_data_dir
from nanoct.devices.storage import (
    DEFAULT_RESERVE_BYTES,
    InsufficientDiskSpaceError,
    check_disk_space,
    expected_scan_bytes,
)

logger = logging.getLogger(__name__)

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_RESERVE_BYTES",
    "TILED_URI_ENV",
    "DataDirError",
    "DataLayout",
    "DatabaseURIError",
    "InsufficientDiskSpaceError",
    "check_disk_space",
    "default_data_dir",
    "expected_scan_bytes",
    "load_or_create_api_key",
    "normalize_database_uri",
    "resolve_data_dir",
]

#: Environment variable with the URI of a running Tiled server (``http://host:port/api/v1``).
TILED_URI_ENV = "NANOCT_TILED_URI"
#: Environment variable with the API key (tiled's own clients read ``TILED_API_KEY``).
API_KEY_ENV = "TILED_API_KEY"
#: The server binds loopback unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: Default TCP port of ``nanoct serve`` (tiled's own default, 8000, is often taken).
DEFAULT_PORT = 8010
#: Free space kept back on the data disk beyond a scan's expected size (1 GiB).

_KEY_BYTES = 32  # 64 hex characters


class DataDirError(ValueError):
    """The data directory cannot be created or written."""


class DatabaseURIError(ValueError):
    """A ``--database`` URI that nanoct cannot use."""


@dataclass(frozen=True)
class DataLayout:
    """The paths of one nanoct data directory (see the module docstring)."""

    root: Path

    @classmethod
    def of(cls, data_dir: str | Path | None = None) -> DataLayout:
        """Layout of `data_dir` (default: :func:`default_data_dir`), made absolute."""
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        return cls(root.expanduser().resolve())

    @property
    def frames_dir(self) -> Path:
        """Where detectors write their HDF5 files (the root: ``YYYY/MM/DD`` below it)."""
        return self.root

    @property
    def tiled_dir(self) -> Path:
        return self.root / "tiled"

    @property
    def catalog_path(self) -> Path:
        return self.tiled_dir / "catalog.db"

    @property
    def zarr_dir(self) -> Path:
        return self.tiled_dir / "zarr"

    @property
    def tables_path(self) -> Path:
        return self.tiled_dir / "tables.sqlite"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def api_key_path(self) -> Path:
        return self.server_dir / "api_key"

    @property
    def config_path(self) -> Path:
        return self.server_dir / "config.yml"

    @property
    def server_info_path(self) -> Path:
        return self.server_dir / "server.json"

    @property
    def server_log_path(self) -> Path:
        return self.server_dir / "server.log"

    @property
    def backup_dir(self) -> Path:
        return self.root / "backup"

    @property
    def replayed_dir(self) -> Path:
        return self.backup_dir / "replayed"

    @property
    def md_dir(self) -> Path:
        return self.root / "session" / "runengine-md"


def resolve_data_dir(data_dir: str | Path | None = None) -> DataLayout:
    """Make sure the data directory exists and is writable, and return its layout.

    Parameters
    ----------
    data_dir : path, optional
        Default :func:`default_data_dir` (``$NANOCT_DATA_DIR`` or the user's data directory).

    Raises
    ------
    DataDirError
        If the directory (or a parent) cannot be created, is not a directory, or is not
        writable; the message names the path and the reason.
    """
    layout = DataLayout.of(data_dir)
    root = layout.root
    if root.exists() and not root.is_dir():
        raise DataDirError(f"data directory {root} exists but is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataDirError(
            f"data directory {root} cannot be created: {err.strerror or err}"
        ) from err
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".nanoct-write-test-"):
            pass
    except OSError as err:
        raise DataDirError(f"data directory {root} is not writable: {err.strerror or err}") from err
    return layout


def load_or_create_api_key(path: str | Path, api_key: str | None = None) -> str:
    """Return the API key stored at `path`, creating it once (mode 0600) if it is missing.

    Parameters
    ----------
    path : path
        The key file. Its directory is created with mode 0700.
    api_key : str, optional
        A key given by the user: stored at `path` (replacing the old one) and returned.
        Letters and digits only (tiled's rule), at least 8 characters.

    Raises
    ------
    ValueError
        If `api_key` is malformed, or the stored file is empty or readable by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if api_key is not None:
        if not (api_key.isascii() and api_key.isalnum() and len(api_key) >= 8):
            raise ValueError(
                f"api_key must be at least 8 ASCII letters or digits, got {len(api_key)} "
                "character(s) (tiled accepts only [a-zA-Z0-9])"
            )
        _write_secret(path, api_key, replace=True)
        return api_key
    try:
        _write_secret(path, secrets.token_hex(_KEY_BYTES), replace=False)
        logger.info("generated a new API key in %s", path)
    except FileExistsError:
        pass
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ValueError(
            f"API key file {path} has mode {mode:o}: it must not be readable by group or "
            f"others (run: chmod 600 {path})"
        )
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"API key file {path} is empty; delete it to generate a new key")
    return key


def _write_secret(path: Path, text: str, *, replace: bool) -> None:
    """Write `text` to `path` with mode 0600 from the start (never briefly world-readable)."""
    if replace:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def normalize_database_uri(uri: str) -> str:
    """Check a catalog database URI and return it in the form tiled expects.

    Accepted: ``postgresql://[user[:password]@]host[:port]/dbname`` (also ``postgres://``,
    ``postgresql+asyncpg://``) and ``sqlite:///absolute/path.db``.

    Raises
    ------
    DatabaseURIError
        With the URI (password hidden) and what is wrong with it.
    """
    shown = _hide_password(uri)
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError as err:
        raise DatabaseURIError(f"malformed database URI {shown!r}: {err}") from err
    scheme = parts.scheme.lower()
    if scheme in {"postgresql", "postgres", "postgresql+asyncpg"}:
        dbname = parts.path.lstrip("/")
        if not parts.hostname and "host=" not in parts.query:
            raise DatabaseURIError(
                f"malformed database URI {shown!r}: no host "
                "(expected postgresql://user:password@host:port/dbname)"
            )
        if not dbname or "/" in dbname:
            raise DatabaseURIError(
                f"malformed database URI {shown!r}: no database name "
                "(expected postgresql://user:password@host:port/dbname)"
            )
        if port is not None and not 0 < port < 65536:
            raise DatabaseURIError(f"malformed database URI {shown!r}: port {port} out of range")
        return "postgresql://" + uri.split("://", 1)[1]
    if scheme == "sqlite":
        if not parts.path or parts.path == "/":
            raise DatabaseURIError(
                f"malformed database URI {shown!r}: no file (expected sqlite:////abs/path.db)"
            )
        return uri
    raise DatabaseURIError(
        f"unsupported database URI {shown!r}: scheme {parts.scheme or '(none)'!r}; use "
        "postgresql://user:password@host:port/dbname or sqlite:///path/to/catalog.db"
    )


def _hide_password(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri.split("@", 1)[-1] if "@" in uri else uri
    if parts.password:
        return uri.replace(f":{parts.password}@", ":***@", 1)
    return uri
