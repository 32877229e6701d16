"""`nanoct.session.start_session`: one call gives a ready RunEngine writing to Tiled."""

from __future__ import annotations

import contextlib

import pytest
from bluesky import plans as bp
from test_server_support import _kill

from nanoct.config import DataLayout
from nanoct.server import find_running_server, stop_server
from nanoct.session import TiledUnavailableError, start_session

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data directory whose server the sessions start themselves; stopped at the end."""
    d = tmp_path_factory.mktemp("session") / "data"
    try:
        yield d
    finally:
        info = find_running_server(d)
        with contextlib.suppress(Exception):
            stop_server(d, timeout_s=10)
        if info is not None:
            _kill(info.pid)


def test_session_starts_the_server_then_reuses_it_and_scan_ids_persist(data_dir):
    seen: list[str] = []
    s1 = start_session(data_dir, server_port=0, callbacks=[lambda n, d: seen.append(n)])
    try:
        assert s1.server_started and s1.server is not None
        assert s1.server.host == "127.0.0.1"
        assert find_running_server(data_dir).pid == s1.server.pid
        assert s1.ct.flatpanel.data_dir == DataLayout.of(data_dir).root
        (uid1,) = s1.RE(bp.count([s1.ct.flatpanel], num=2))
        first_scan_id = s1.runs[uid1].metadata["start"]["scan_id"]
        assert seen[0] == "start" and seen[-1] == "stop"  # the caller's callback is live
        assert s1.suspenders  # nanoct.plans.suspenders.install_flux_suspenders
        assert all(sus in s1.RE.suspenders for sus in s1.suspenders)
    finally:
        s1.close()

    # a new session (a restarted process) reuses the server and continues the scan ids
    s2 = start_session(data_dir, md={"operator": "alice"})
    try:
        assert not s2.server_started
        assert s2.server.pid == s1.server.pid
        (uid2,) = s2.RE(bp.count([s2.ct.flatpanel], num=1))
        start = s2.runs[uid2].metadata["start"]
        assert start["scan_id"] == first_scan_id + 1
        assert start["operator"] == "alice"
        assert s2.runs[-1].metadata["start"]["uid"] == uid2
        assert s2.runs[uid1].metadata["stop"]["exit_status"] == "success"
        # nothing left in the journal: both runs are safely in Tiled
        assert list((DataLayout.of(data_dir).root / "journal").glob("*.jsonl")) == []
    finally:
        s2.close()


def test_session_with_an_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(TiledUnavailableError, match="cannot reach the Tiled server"):
        start_session(tmp_path, tiled_uri="http://127.0.0.1:9/api/v1")
    with pytest.raises(TiledUnavailableError, match="no nanoct server is running"):
        start_session(tmp_path, start_server=False)


def test_session_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        start_session(tmp_path, batch_size=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="data directory"):
        start_session(blocker / "data")


def test_session_refuses_a_wrong_api_key(data_dir):
    info = find_running_server(data_dir)
    if info is None:
        pytest.skip("the module's server did not start")
    with pytest.raises(TiledUnavailableError, match="API key was refused"):
        start_session(data_dir, tiled_uri=info.uri, api_key="wrongkey1234")


@pytest.mark.parametrize(
    "fail_on, verified, kept",
    [(None, True, False), ("event", True, True), (None, False, True), ("start", True, True)],
)
def test_journal_is_removed_only_when_the_run_is_safely_stored(tmp_path, fail_on, verified, kept):
    from nanoct.session import JournalingWriter

    def target(name, doc):
        if name == fail_on:
            raise RuntimeError("server refused")

    w = JournalingWriter(target, tmp_path / "journal", verify=lambda stop: verified)
    try:
        w("start", {"uid": "u1", "time": 0.0})
        w("event", {"descriptor": "d", "seq_num": 1})
        w("stop", {"uid": "s1", "run_start": "u1", "time": 1.0})
    finally:
        w.close()
    journals = list((tmp_path / "journal").glob("u1.*.jsonl"))
    assert bool(journals) is kept
    if kept:
        assert [line.count('"name"') for line in journals[0].read_text().splitlines()] == [1] * 3


def test_reconstructions_sit_beside_the_runs_without_hiding_the_latest(data_dir, tmp_path):
    """The volumes' ``processed`` container is made when the session starts, so ``runs[-1]``
    stays the newest run, and a second reconstruction finds the container again."""
    from nanoct.plans import ct_scan
    from nanoct.reconstruct import reconstruct_run

    s = start_session(data_dir)
    try:
        uids = []
        for _ in range(2):
            (uid,) = s.RE(
                ct_scan(s.ct, num_angles=4, exposure_s=1.0, frames_per_projection=1,
                        flat_every=4, num_darks=1, num_flats=1)
            )  # fmt: skip
            assert s.writer.flush(60)
            res = reconstruct_run(s.runs[uid], out_dir=tmp_path, slices=[256])
            assert res["key"] == f"{uid}-fdk" and "/processed/" in res["uri"]
            uids.append(uid)
        assert s.runs[-1].metadata["start"]["uid"] == uids[-1]
        # the session's shortcut (recon() in IPython): the latest run, a second volume of it
        res = s.reconstruct(-1, slices="256", progress=False, out_dir=tmp_path)
        assert res["key"] == f"{uids[-1]}-fdk-2" and res["shape"] == (1, 512, 512)
        from nanoct.reconstruct import RunError

        with pytest.raises(RunError, match="no run 'nope' in this session's catalog"):
            s.reconstruct("nope")
        with pytest.raises(RunError, match="no run 'abcdef12' in this session's catalog"):
            s.reconstruct("abcdef12")
        with pytest.raises(ValueError, match="algorithm='art'"):
            s.reconstruct(-1, algorithm="art")
    finally:
        s.close()
