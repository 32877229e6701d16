"""Nothing lost: a server killed mid-scan, an acquisition process killed mid-scan, and
``nanoct replay`` (idempotent). Each test counts lost frames and documents: 0."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_server_support import REPO, _kill, comparable, served, small_ct

from nanoct.cli import main
from nanoct.config import DataLayout
from nanoct.replay import RECOVERED_REASON, find_backup_files, read_runs
from nanoct.session import start_session

pytestmark = pytest.mark.integration


def _hdf5_frames(data_dir: Path) -> dict[int, np.ndarray]:
    """All frames in the detector files under `data_dir`, by image_key."""
    out: dict[int, list[np.ndarray]] = {}
    for path in sorted(data_dir.rglob("flatpanel_image_*.h5")):
        with h5py.File(path, "r", swmr=True) as f:
            keys = np.unique(f["image_key"][:])
            assert len(keys) == 1, path
            out.setdefault(int(keys[0]), []).append(f["data"][:])
    return {k: np.concatenate(v) for k, v in out.items()}


def _as_json(docs):
    """JSON form, event pages unpacked (bluesky's RunRouter hands TiledWriter, and so its
    backup, events as one-event pages)."""
    from event_model import unpack_event_page

    flat = []
    for name, doc in docs:
        if name == "event_page":
            flat.extend(("event", dict(ev)) for ev in unpack_event_page(doc))
        else:
            flat.append((name, doc))
    return json.loads(json.dumps(flat, default=lambda o: o.tolist()))


def test_server_killed_mid_scan_then_replay(tmp_path, monkeypatch, capsys):
    import tiled.client.utils as tiled_utils

    # tiled's client retries a dead server for 45 s per request; the outcome is the same
    monkeypatch.setattr(tiled_utils, "TILED_RETRY_ATTEMPTS", 2)
    monkeypatch.setattr(tiled_utils, "TILED_RETRY_TIMEOUT", 2.0)
    data = tmp_path / "data"
    layout = DataLayout.of(data)
    emitted: list[tuple[str, dict]] = []

    with served(data) as srv:
        primary: set[str] = set()
        n_primary = 0

        def kill_server_after_3_projections(name, doc):
            nonlocal n_primary
            if name == "descriptor" and doc["name"] == "primary":
                primary.add(doc["uid"])
            if name == "event" and doc["descriptor"] in primary:
                n_primary += 1
                if n_primary == 3:
                    _kill(srv.pid)

        session = start_session(
            data,
            tiled_uri=srv.uri,
            api_key=srv.api_key,
            batch_size=1,
            callbacks=[lambda n, d: emitted.append((n, d)), kill_server_after_3_projections],
        )
        try:
            (uid,) = session.RE(small_ct(session.ct, num_angles=5))
        finally:
            session.close()

    # the scan completed and every document is in the backup, none lost
    assert emitted[-1][0] == "stop" and emitted[-1][1]["exit_status"] == "success"
    backups = sorted(layout.backup_dir.glob("*.jsonl"))
    assert len(backups) == 1
    backed_up = read_runs(backups[0])[uid]
    assert _as_json(backed_up) == _as_json(emitted)  # 0 documents lost
    assert list((layout.root / "journal").glob("*")) == []
    hdf5 = _hdf5_frames(layout.root)
    assert hdf5[0].shape[0] == 5

    with served(data) as srv2:  # the server comes back on the same data directory
        client = srv2.client()
        partial = client[uid]
        assert partial.metadata.get("stop") is None  # written in part before the kill
        capsys.readouterr()
        assert main(["replay", "--data-dir", str(data)]) == 0
        assert f"{uid}: rewritten" in capsys.readouterr().out
        run = client[uid]
        assert run.metadata["stop"]["exit_status"] == "success"
        assert comparable(list(run.documents())) == comparable(emitted)
        np.testing.assert_array_equal(run["primary"]["flatpanel_image"].read(), hdf5[0])
        np.testing.assert_array_equal(run["dark"]["flatpanel_image"].read(), hdf5[2])
        np.testing.assert_array_equal(run["flat"]["flatpanel_image"].read(), hdf5[1])
        n_runs = len(client)

        # replay is idempotent: nothing left to do, and an explicit second replay of the
        # same file finds the run complete and writes nothing
        assert main(["replay", "--data-dir", str(data)]) == 0
        assert "nothing to replay" in capsys.readouterr().out
        (done,) = layout.replayed_dir.glob("*.jsonl")
        assert main(["replay", "--data-dir", str(data), str(done)]) == 0
        assert f"{uid}: already in Tiled" in capsys.readouterr().out
        assert len(client) == n_runs


ACQUIRE = r"""
import sys, time
sys.path.insert(0, "tests/integration")
from nanoct.session import start_session
from test_server_support import small_ct

data, uri, key, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
primary, n = set(), [0]

def block_after_k_projections(name, doc):
    if name == "start":
        print("START", doc["uid"], flush=True)
    if name == "descriptor" and doc["name"] == "primary":
        primary.add(doc["uid"])
    if name == "event" and doc["descriptor"] in primary:
        n[0] += 1
        if n[0] == k:
            print("BLOCKED", flush=True)
            time.sleep(600)  # the test kills this process here

s = start_session(data, tiled_uri=uri, api_key=key, batch_size=1,
                  callbacks=[block_after_k_projections])
s.RE(small_ct(s.ct, num_angles=8))
print("FINISHED", flush=True)
"""


def _lines(proc: subprocess.Popen) -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            q.put(line.strip())
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_for(q: queue.Queue, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError(f"acquisition process ended before {prefix!r}")
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} within {timeout} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("replay") / "data") as s:
        yield s


def test_acquisition_killed_mid_scan_leaves_every_frame_readable(server, capsys):
    k = 4
    proc = subprocess.Popen(
        [sys.executable, "-c", ACQUIRE, str(server.data_dir), server.uri, server.api_key, str(k)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        lines = _lines(proc)
        uid = _wait_for(lines, "START", 120).split()[1]
        _wait_for(lines, "BLOCKED", 120)
        client = server.client()
        # live: with batch_size=1 each frame reaches Tiled as it is taken
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = client[uid]
            if "primary" in run and "flatpanel_image" in run["primary"]:
                if run["primary"]["flatpanel_image"].shape[0] == k:
                    break
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    # every frame taken before the kill is in the HDF5 files ...
    hdf5 = _hdf5_frames(server.data_dir)  # this module's only run
    assert hdf5[0].shape[0] == k and hdf5[2].shape[0] == 2 and hdf5[1].shape[0] == 2
    # ... and readable through Tiled, the run marked as not completed (no stop document)
    run = client[uid]
    assert run.metadata.get("stop") is None
    for key, stream in ((0, "primary"), (1, "flat"), (2, "dark")):
        np.testing.assert_array_equal(run[stream]["flatpanel_image"].read(), hdf5[key])

    # the journal of the killed process holds every document it emitted
    layout = DataLayout.of(server.data_dir)
    (journal,) = (layout.root / "journal").glob(f"{uid}.{proc.pid}.jsonl")
    docs = read_runs(journal)[uid]
    assert sum(1 for n, d in docs if n == "event") == k + 2 + 2
    assert journal in find_backup_files(layout)

    # replay closes the run: still every frame, now with a stop saying it did not complete
    capsys.readouterr()
    assert main(["replay", "--data-dir", str(server.data_dir), "--uri", server.uri]) == 0
    assert f"{uid}: rewritten" in capsys.readouterr().out
    run = client[uid]
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "fail" and stop["reason"] == RECOVERED_REASON
    assert stop["num_events"] == {"dark": 2, "flat": 2, "primary": k}
    np.testing.assert_array_equal(run["primary"]["flatpanel_image"].read(), hdf5[0])
    assert comparable(list(run.documents()))["events"] == comparable(docs)["events"]
    assert not journal.exists()


def test_journal_of_a_running_process_is_left_alone(tmp_path):
    layout = DataLayout.of(tmp_path)
    jdir = layout.root / "journal"
    jdir.mkdir(parents=True)
    live = jdir / f"abc.{os.getpid()}.jsonl"
    live.write_text('{"name": "start", "doc": {"uid": "abc", "time": 0}}\n')
    dead = jdir / "def.999999999.jsonl"
    dead.write_text('{"name": "start", "doc": {"uid": "def", "time": 0}}\n{"name": "ev')
    assert find_backup_files(layout) == [dead]
    # a line cut by the kill is ignored; the rest is read
    assert [n for n, _ in read_runs(dead)["def"]] == ["start"]
