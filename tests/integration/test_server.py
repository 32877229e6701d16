"""A real ``nanoct serve`` process on loopback: CT runs in and out (tiled client, databroker 2,
``run.documents()``), security, and bad input at the command line."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
from test_server_support import comparable, run_cli, served, small_ct

from nanoct.cli import main
from nanoct.session import start_session

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("serve") / "data") as s:
        yield s


@pytest.fixture(scope="module")
def ct_run(server):
    """One small CT written through the session into the served catalog."""
    emitted: list[tuple[str, dict]] = []
    session = start_session(
        server.data_dir,
        tiled_uri=server.uri,
        api_key=server.api_key,
        seed=3,
        callbacks=[lambda name, doc: emitted.append((name, doc))],
    )
    try:
        (uid,) = session.RE(small_ct(session.ct, num_angles=6, md={"operator": "test"}))
    finally:
        session.close()
    return uid, emitted, session.ct


def test_ct_run_reads_back_with_the_stock_tiled_client(server, ct_run):
    uid, _, _ = ct_run
    client = server.client()
    assert [s.name for s in client.specs] == ["CatalogOfBlueskyRuns"]
    run = client[uid]
    assert set(run) >= {"dark", "flat", "primary"}
    start = run.metadata["start"]
    assert start["plan_name"] == "ct_scan" and start["operator"] == "test"
    assert run.metadata["stop"]["exit_status"] == "success"
    proj = run["primary"]["flatpanel_image"]
    assert proj.shape == (6, 512, 512) and proj.dtype == np.float32
    np.testing.assert_array_equal(run["primary"]["flatpanel_image_key"].read(), [0] * 6)
    np.testing.assert_array_equal(run["dark"]["flatpanel_image_key"].read(), [2] * 4)
    np.testing.assert_array_equal(np.unique(run["flat"]["flatpanel_image_key"].read()), [1])
    angles = run["primary"]["flatpanel_rotation_angle"].read()
    np.testing.assert_allclose(angles, np.asarray(start["angles_deg"]), atol=1e-6)
    # the frames Tiled serves are the frames in the detector's HDF5 file
    (source,) = proj.data_sources()
    (asset,) = source.assets
    path = Path(asset.data_uri.removeprefix("file://localhost"))
    assert path.is_relative_to(server.data_dir)
    with h5py.File(path, "r", swmr=True) as f:
        np.testing.assert_array_equal(proj.read(), f["data"][:])
    # lookups the CatalogOfBlueskyRuns spec provides
    assert client[-1].metadata["start"]["uid"] == uid
    assert client[start["scan_id"]].metadata["start"]["uid"] == uid
    assert client[uid[:8]].metadata["start"]["uid"] == uid


def test_ct_run_reads_back_with_databroker_2(server, ct_run):
    import databroker
    from databroker.client import BlueskyRun, CatalogOfBlueskyRuns

    uid, _, _ = ct_run
    assert databroker.__version__.startswith("2.")
    catalog = server.client(structure_clients=_private_structure_clients())
    assert isinstance(catalog, CatalogOfBlueskyRuns)
    run = catalog.v2[uid]  # databroker 2's BlueskyRun API
    assert isinstance(run, BlueskyRun)
    assert run.metadata["start"]["uid"] == uid
    ds = run.primary.read()
    assert ds["flatpanel_image"].shape == (6, 512, 512)
    np.testing.assert_allclose(
        ds["flatpanel_rotation_angle"].values, run.metadata["start"]["angles_deg"], atol=1e-6
    )
    assert run.dark.read()["flatpanel_image"].shape[0] == 4


def _private_structure_clients():
    """A private copy of tiled's client-class registry.

    bluesky-tiled-plugins 2.0.12's ``CatalogOfBlueskyRuns.v2`` (and ``.v3``) shallow-copies
    the registry and then sets ``BlueskyRun`` in it, which changes the process-wide default:
    every client made afterwards would hand out v2 runs. A client built on a private copy
    keeps that change to itself.
    """
    from tiled.client.container import DEFAULT_STRUCTURE_CLIENT_DISPATCH
    from tiled.utils import OneShotCachedMap

    default = DEFAULT_STRUCTURE_CLIENT_DISPATCH["numpy"]
    return OneShotCachedMap({k: (lambda k=k: default[k]) for k in default})


def test_ct_run_reads_back_with_databroker_v1_api(server, ct_run):
    pytest.importorskip("humanize", reason="databroker's v1 API needs databroker[back-compat]")
    pytest.importorskip("doct", reason="databroker's v1 API needs databroker[back-compat]")
    from databroker.v1 import Broker

    uid, _, _ = ct_run
    header = Broker(server.client(structure_clients=_private_structure_clients()))[uid]
    assert header.stop["exit_status"] == "success"
    assert len(header.table("primary")) == 6


def test_run_documents_yield_what_was_emitted(server, ct_run):
    uid, emitted, _ = ct_run
    got = list(server.client()[uid].documents())
    assert comparable(got) == comparable(emitted)
    names = {n for n, _ in emitted}
    assert {"start", "descriptor", "event", "stream_resource", "stream_datum", "stop"} <= names


# ----------------------------------------------------------------------------------- security
def test_writes_without_the_key_are_refused(server):
    anon = httpx.Client(base_url=server.uri, trust_env=False, timeout=10)
    r = anon.post(
        "/metadata/",
        json={
            "data": {
                "type": "metadata",
                "attributes": {
                    "structure_family": "container",
                    "metadata": {},
                    "specs": [],
                    "data_sources": [],
                },
            }
        },
    )
    assert r.status_code in (401, 403), r.text
    # a wrong key is refused too
    r = anon.get("/metadata/", headers={"Authorization": "Apikey wrongkey123"})
    assert r.status_code in (401, 403)
    # reads need the key as configured (no --public-read) ...
    assert anon.get("/metadata/").status_code in (401, 403)
    # ... and work with it
    ok = anon.get("/metadata/", headers={"Authorization": f"Apikey {server.api_key}"})
    assert ok.status_code == 200


def test_public_read_server_reads_without_key_but_refuses_writes(tmp_path):
    with served(tmp_path / "data", public_read=True) as pub:
        from tiled.client import from_uri

        anon = from_uri(pub.uri, api_key=None)
        assert "CatalogOfBlueskyRuns" in [s.name for s in anon.specs]
        assert len(anon) == 0
        with pytest.raises(httpx.HTTPStatusError) as err:
            anon.create_container("intruder")
        assert err.value.response.status_code in (401, 403)
        assert "intruder" not in pub.client()


def test_key_file_is_owner_only_and_reused(server):
    layout_key = server.data_dir / "server" / "api_key"
    mode = stat.S_IMODE(layout_key.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(layout_key.parent.stat().st_mode) & 0o077 == 0
    assert layout_key.read_text().strip() == server.api_key
    assert len(server.api_key) >= 32
    config = (server.data_dir / "server" / "config.yml").read_text()
    assert server.api_key not in config


def test_server_listens_on_loopback_only(server):
    port = int(server.uri.split(":")[2].split("/")[0])
    listening = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":  # LISTEN
            listening.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    assert listening == ["127.0.0.1"]
    for addr in _non_loopback_addresses():
        with pytest.raises(OSError), socket.create_connection((addr, port), timeout=2):
            pass


def _non_loopback_addresses() -> list[str]:
    addrs = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addrs.add(info[4][0])
    except OSError:
        pass
    return sorted(a for a in addrs if not a.startswith("127."))


# ----------------------------------------------------------------------------------- bad input
def test_port_in_use_is_a_clear_error(server, tmp_path):
    port = server.uri.split(":")[2].split("/")[0]
    res = run_cli("serve", "--data-dir", str(tmp_path / "other"), "--port", port)
    assert res.returncode == 1
    assert f"port {port}" in res.stderr and "already in use" in res.stderr
    assert "Traceback" not in res.stderr


def test_second_server_for_the_same_data_dir_is_refused(server, capsys):
    assert main(["serve", "--data-dir", str(server.data_dir), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "already running" in err and server.uri in err


def test_unwritable_data_dir_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["serve", "--data-dir", str(blocker / "data"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "data directory" in err and "cannot be created" in err
    if os.geteuid() != 0:  # root writes anywhere; mode bits only stop other users
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert main(["serve", "--data-dir", str(ro), "--port", "0"]) == 1
        assert "not writable" in capsys.readouterr().err


@pytest.mark.parametrize(
    "uri, message",
    [
        ("postgresql://", "no host"),
        ("postgresql://user@localhost:notaport/db", "malformed"),
        ("postgresql://user@localhost:5432/", "no database name"),
        ("mysql://user@localhost/db", "unsupported database URI"),
        ("not a uri", "unsupported database URI"),
    ],
)
def test_malformed_database_uri_is_a_clear_error(tmp_path, capsys, uri, message):
    assert main(["serve", "--data-dir", str(tmp_path / "d"), "--database", uri]) == 1
    assert message in capsys.readouterr().err


def test_unknown_run_is_a_clear_error(server, tmp_path, ct_run, capsys):
    out = tmp_path / "x.nx"
    args = ["--uri", server.uri, "--api-key", server.api_key]
    assert main(["export", "deadbeef-0000", "--nxtomo", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert "no run 'deadbeef-0000'" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["export", "999", "--nxtomo", str(out), *args]) == 1
    assert "no scan_id '999'" in capsys.readouterr().err


def test_unreachable_server_is_a_clear_error(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}/api/v1"
    assert main(["export", "-1", "--nxtomo", str(tmp_path / "x.nx"), "--uri", uri]) == 1
    assert "cannot reach the Tiled server" in capsys.readouterr().err
    assert main(["replay", "--data-dir", str(tmp_path), str(tmp_path / "missing.jsonl")]) == 1
    assert "no such backup file" in capsys.readouterr().err
