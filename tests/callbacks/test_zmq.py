"""Out of process: the session publishes over 0MQ, a real proxy forwards, ``nanoct live`` in
another process reconstructs the same final slices and writes them to Tiled."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from bluesky_tiled_plugins import TiledWriter
from live_helpers import SCAN, small_ct
from ophyd import Signal

from nanoct.callbacks import LiveReconstruction, safe
from nanoct.live import publish
from nanoct.plans import ct_scan

pytestmark = pytest.mark.integration

SLICES = [40, 64]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(proc: subprocess.Popen) -> queue.Queue:
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            q.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_for(q: queue.Queue, text: str, timeout_s: float, seen: list[str]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return True
    return False


def test_out_of_process_live_reconstruction(tiled_server, runs_container, tmp_path):
    in_port, out_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proxy = subprocess.Popen(
        [sys.executable, "-c", "import sys; from bluesky.callbacks.zmq import Proxy; "
         "Proxy(int(sys.argv[1]), int(sys.argv[2])).start()", str(in_port), str(out_port)],
        env=env,
    )  # fmt: skip
    consumer = subprocess.Popen(
        [sys.executable, "-c", "import sys; from nanoct.live import main; "
         "sys.exit(main(sys.argv[1:]))", "--proxy", f"127.0.0.1:{out_port}",
         "--uri", tiled_server.uri, "--api-key", tiled_server.api_key, "--catalog", "raw",
         "--out-dir", str(tmp_path), "--slices", ",".join(map(str, SLICES)), "--no-progress"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: list[str] = []
    try:
        out = _lines(consumer)
        assert _wait_for(out, "nanoct live: listening", 120, seen), seen
        RE = RunEngine({})
        RE.subscribe(TiledWriter(runs_container))
        local = LiveReconstruction(SLICES)  # the same callback in process, for comparison
        RE.subscribe(safe(local))
        _, publisher = publish(RE, f"127.0.0.1:{in_port}")
        # PUB/SUB connections settle asynchronously: ping with empty runs until one arrives
        ping = Signal(name="ping", value=0)
        for _ in range(60):
            RE(count([ping]))
            if _wait_for(out, "(count) started", 1.0, seen):
                break
        else:
            pytest.fail(f"the consumer never saw a run: {seen}")
        (uid,) = RE(ct_scan(small_ct(tiled_server.data_dir / "zmq"), **SCAN))
        assert _wait_for(out, f"run {uid} success", 180, seen), seen  # its last line
        publisher.close()
        consumer.send_signal(signal.SIGINT)
        assert consumer.wait(60) == 0
    finally:
        for proc in (consumer, proxy):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert f"live slices of {uid}: {uid}-live" in seen
    assert local.wait(60) and local.result["uid"] == uid
    from tiled.client import from_context

    node = from_context(runs_container.context)["processed"][f"{uid}-live"]
    assert node.metadata["raw_uid"] == uid
    remote = node.read()
    err = np.abs(remote - local.result["slices"]).max() / np.ptp(local.result["slices"])
    assert err < 1e-6
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert f"{uid}-live_z40.png" in pngs and f"{uid}-wire.png" in pngs
    local.close()
