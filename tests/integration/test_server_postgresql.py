"""``nanoct serve --database postgresql://...``: the same write/read round trip on a throwaway
PostgreSQL server (skipped, with the reason, when no PostgreSQL server binary is installed;
Debian: ``apt-get install postgresql``)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_server_support import comparable, served, small_ct

from nanoct.session import start_session

pytestmark = pytest.mark.integration


def _pg_bin() -> Path | None:
    """Directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "pg_ctl").exists() and Path(d, "initdb").exists():
            return Path(d)
    return None


def _as_user() -> list[str]:
    """PostgreSQL refuses to run as root: run it as the 'postgres' user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root and no runuser to run PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def postgres_uri():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binary (initdb/pg_ctl) installed")
    prefix = _as_user()
    root = Path(tempfile.mkdtemp(prefix="nanoct-pg-"))
    if prefix:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    pgdata, log = root / "pgdata", root / "postgres.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, timeout=timeout, check=False
        )

    res = run(
        str(bindir / "initdb"), "-D", str(pgdata), "-U", "nanoct", "--auth=trust", "-E", "UTF8"
    )
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {res.stderr}")
    opts = f"-h 127.0.0.1 -p {port} -k {root}"
    res = run(str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", opts, "-w", "start")
    try:
        assert res.returncode == 0, f"pg_ctl start failed: {res.stderr} {log.read_text()}"
        res = run(
            str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "nanoct", "nanoct"
        )
        assert res.returncode == 0, res.stderr
        yield f"postgresql://nanoct@127.0.0.1:{port}/nanoct"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop")
        with contextlib.suppress(OSError):
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)
        shutil.rmtree(root, ignore_errors=True)


def test_round_trip_on_postgresql(postgres_uri, tmp_path):
    data = tmp_path / "data"
    with served(data, database=postgres_uri) as srv:
        assert not (data / "tiled" / "catalog.db").exists()  # the catalog is in PostgreSQL
        emitted: list[tuple[str, dict]] = []
        session = start_session(
            data,
            tiled_uri=srv.uri,
            api_key=srv.api_key,
            callbacks=[lambda n, d: emitted.append((n, d))],
        )
        try:
            (uid,) = session.RE(small_ct(session.ct, num_angles=3))
        finally:
            session.close()
        client = srv.client()
        run = client[uid]
        assert run.metadata["stop"]["exit_status"] == "success"
        images = run["primary"]["flatpanel_image"].read()
        assert images.shape == (3, 512, 512)
        assert np.isfinite(images).all() and images.std() > 0
        assert comparable(list(run.documents())) == comparable(emitted)
        assert client[-1].metadata["start"]["uid"] == uid
        server_json = (data / "server" / "server.json").read_text()
        assert "postgresql://nanoct@127.0.0.1" in server_json
