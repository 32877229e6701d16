"""Shared pytest fixtures: one real Tiled server on loopback for the whole test session.

Tiled is imported inside the fixtures, so unit tests that do not use them do not pay for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

logger = logging.getLogger(__name__)

#: Key of the container (spec CatalogOfBlueskyRuns 3.0) into which integration tests write runs.
RUNS_CONTAINER_KEY = "raw"


@dataclass(frozen=True)
class TiledTestServer:
    """What the `tiled_server` fixture yields.

    Attributes
    ----------
    uri : str
        ``http://127.0.0.1:<port>/api/v1`` (no key in it: pass `api_key` separately, e.g.
        ``from_uri(uri, api_key=api_key)`` or ``TiledWriter.from_uri(uri, api_key=api_key)``).
    api_key : str
        The server's single-user API key.
    data_dir : pathlib.Path
        Directory in the server's ``readable_storage``: detector HDF5 files must be written
        under it, otherwise Tiled registers them but cannot read them.
    directory : pathlib.Path
        The server's own directory (SQLite catalog, DuckDB tables, zarr arrays, logs).
    client : tiled.client.container.Container
        A client on the server root (``tiled.client.from_uri(uri, api_key=api_key)``).
    server : tiled.server.SimpleTiledServer
        The server object itself.
    startup_s : float
        Seconds the server took to start.
    """

    uri: str
    api_key: str
    data_dir: Path
    directory: Path
    client: Any
    server: Any
    startup_s: float


@pytest.fixture(scope="session")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiledTestServer]:
    """Start ONE `tiled.server.SimpleTiledServer` for the session and shut it down at the end."""
    from tiled.client import from_uri
    from tiled.server import SimpleTiledServer

    root = tmp_path_factory.mktemp("tiled").resolve()
    directory = root / "server"
    data_dir = root / "detector-data"
    data_dir.mkdir(parents=True)

    t0 = time.perf_counter()
    server = SimpleTiledServer(directory=directory, readable_storage=[data_dir])
    startup_s = time.perf_counter() - t0
    # server.uri carries "?api_key=..."; tiled's client refuses a key in both the query and
    # the api_key argument, so hand out the bare URI and the key separately.
    uri = server.uri.split("?", 1)[0]
    logger.info("Tiled server %s started in %.1f s", uri, startup_s)
    try:
        client = from_uri(uri, api_key=server.api_key)
        yield TiledTestServer(
            uri=uri,
            api_key=server.api_key,
            data_dir=data_dir,
            directory=Path(server.directory),
            client=client,
            server=server,
            startup_s=startup_s,
        )
    finally:
        server.close()


@pytest.fixture(scope="session")
def runs_container(tiled_server: TiledTestServer) -> Any:
    """Container (spec ``CatalogOfBlueskyRuns`` 3.0, key ``"raw"``), made once per session."""
    from tiled.structures.core import Spec

    client = tiled_server.client
    if RUNS_CONTAINER_KEY in client:
        return client[RUNS_CONTAINER_KEY]
    return client.create_container(
        key=RUNS_CONTAINER_KEY,
        specs=[Spec("CatalogOfBlueskyRuns", version="3.0")],
    )
