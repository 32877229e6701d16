"""Helpers shared by the tests of nanoct's server, session, replay and export (no tests here).

- `served`: a real ``nanoct serve`` process on loopback for a temporary data directory,
  started with :func:`nanoct.server.start_server_process` and always stopped (SIGTERM, then
  SIGKILL) when the block ends, also on failure.
- `small_ct`: a small CT run (streams dark, flat, primary) with ``nanoct.plans.ct_scan``.
- `comparable`: documents reduced to what Tiled stores, to compare emitted documents with
  ``run.documents()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Served:
    uri: str
    api_key: str
    data_dir: Path
    pid: int

    def client(self, **kwargs: Any):
        from tiled.client import from_uri

        return from_uri(self.uri, api_key=kwargs.pop("api_key", self.api_key), **kwargs)


def _kill(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        for _ in range(100):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            try:
                os.kill(pid, 0)
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] == "Z":
                    return
            except (ProcessLookupError, OSError):
                return
            time.sleep(0.05)


@contextlib.contextmanager
def served(data_dir: Path, **kwargs: Any) -> Iterator[Served]:
    """Run ``nanoct serve`` (background, port 0) for `data_dir`; stop it when done."""
    from nanoct.config import DataLayout
    from nanoct.server import start_server_process, stop_server

    info = start_server_process(data_dir, port=0, **kwargs)
    try:
        key = DataLayout.of(data_dir).api_key_path.read_text().strip()
        yield Served(info.uri, key, Path(info.data_dir), info.pid)
    finally:
        with contextlib.suppress(Exception):
            stop_server(data_dir, timeout_s=10)
        _kill(info.pid)


def small_ct(ct, *, num_angles: int = 6, num_darks: int = 2, num_flats: int = 2, md=None):
    """A small ``ct_scan``: darks before and after, flats at the start and the end,
    `num_angles` projections over 360 deg, 5 s exposures (instant at time scale 0)."""
    from nanoct.plans import ct_scan

    return ct_scan(
        ct,
        num_angles=num_angles,
        exposure_s=5.0,
        frames_per_projection=1,
        flat_every=1000,
        num_darks=num_darks,
        num_flats=num_flats,
        md=md,
    )


def comparable(docs: list[tuple[str, dict]]) -> dict[str, Any]:
    """What must survive a trip through Tiled: start, stop, descriptors' data keys, every
    event's seq_num/data/timestamps per stream, and per stream and data key the frames that
    stream datums cover (Tiled merges stream datums and renames their uids, so those are
    compared by content)."""
    docs = json.loads(json.dumps(docs, default=lambda o: o.tolist()))
    out: dict[str, Any] = {"events": defaultdict(list), "frames": defaultdict(set)}
    desc = {}
    sres = {}
    for name, doc in docs:
        if name in ("start", "stop"):
            out[name] = doc
        elif name == "descriptor":
            desc[doc["uid"]] = doc["name"]
            out.setdefault("descriptors", {})[doc["name"]] = {
                k: {f: v.get(f) for f in ("dtype", "shape", "source", "external")}
                for k, v in doc["data_keys"].items()
            }
        elif name == "event":
            out["events"][desc[doc["descriptor"]]].append(
                (doc["seq_num"], doc["data"], doc["timestamps"])
            )
        elif name == "stream_resource":
            sres[doc["uid"]] = (doc["data_key"], doc["uri"], doc["mimetype"])
        elif name == "stream_datum":
            key = (desc[doc["descriptor"]], *sres[doc["stream_resource"]])
            s, e = doc["seq_nums"]["start"], doc["seq_nums"]["stop"]
            out["frames"][key] |= set(range(s, e))
    out["events"] = {k: sorted(v, key=lambda t: t[0]) for k, v in out["events"].items()}
    out["frames"] = {k: sorted(v) for k, v in out["frames"].items()}
    return out


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m nanoct.cli ARGS`` in a subprocess (its exit code is what is tested)."""
    return subprocess.run(
        [sys.executable, "-m", "nanoct.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        check=False,
    )
