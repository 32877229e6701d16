"""``nanoct replay``: load runs that did not reach Tiled into the server, idempotently.

Two kinds of files hold such runs (both JSON Lines, one ``{"name": ..., "doc": ...}`` a line):

- ``<data_dir>/backup/<uid8>.jsonl``: written by TiledWriter when the server was down or
  refused a write; the run completed and the file holds all its documents;
- ``<data_dir>/journal/<uid>.<pid>.jsonl``: the session's journal of a run whose process
  died before the run was safely stored (killed mid-scan). Journals of a process that is
  still alive are left alone (that scan is still running).

For each run in them:

- if Tiled already has the run, complete (a stop document) and with as many events and
  frames per stream as the file, nothing is written ("already in Tiled");
- otherwise a partial copy in Tiled is deleted (never the detector files) and the run is
  written again from the file with bluesky-tiled-plugins' ``TiledWriter``;
- a run without a stop document (its process was killed) gets one with
  ``exit_status="fail"`` and a ``reason`` saying so: the run is marked as not completed.

Done files move to ``<data_dir>/backup/replayed/``; replaying again therefore finds nothing,
and even a file replayed twice never duplicates a run (run uids are unique keys in Tiled).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanoct.config import DataLayout
from nanoct.server import pid_alive

logger = logging.getLogger(__name__)

__all__ = [
    "ReplayItem",
    "expected_counts",
    "find_backup_files",
    "read_runs",
    "replay_backups",
    "replay_run",
    "tiled_counts",
]

RECOVERED_REASON = (
    "nanoct replay: the acquiring process ended without closing this run (killed or crashed); "
    "every document it had emitted was recovered from its journal"
)


@dataclass(frozen=True)
class ReplayItem:
    """What happened to one run."""

    uid: str
    path: Path
    #: "written", "rewritten" (a partial copy was replaced), "already in Tiled", "failed"
    action: str
    n_documents: int
    message: str = ""


def find_backup_files(layout: DataLayout) -> list[Path]:
    """Backup files and the journals of dead processes, oldest first."""
    files = sorted(layout.backup_dir.glob("*.jsonl")) if layout.backup_dir.is_dir() else []
    jdir = layout.root / "journal"
    if jdir.is_dir():
        for path in sorted(jdir.glob("*.jsonl")):
            pid = _journal_pid(path)
            if pid is not None and pid_alive(pid):
                logger.info("skipping %s: process %d is still acquiring", path, pid)
                continue
            files.append(path)
    return sorted(files, key=lambda p: p.stat().st_mtime)


def _journal_pid(path: Path) -> int | None:
    parts = path.name.split(".")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return None


def read_runs(path: str | Path) -> dict[str, list[tuple[str, dict]]]:
    """The documents of each run in a JSON Lines file, by run uid, in file order.

    A truncated last line (the writer was killed while writing it) is ignored.

    Raises
    ------
    ValueError
        If a line other than the last is not a document, or a document precedes any start.
    """
    path = Path(path)
    runs: dict[str, list[tuple[str, dict]]] = {}
    current: str | None = None
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            name, doc = rec["name"], rec["doc"]
        except (ValueError, KeyError, TypeError) as err:
            if i == len(lines) - 1:
                logger.warning("%s: ignoring a truncated last line", path)
                break
            raise ValueError(f"{path}:{i + 1}: not a bluesky document line ({err})") from err
        if name == "start":
            current = doc["uid"]
            runs.setdefault(current, [])
        if current is None:
            raise ValueError(f"{path}:{i + 1}: a {name!r} document before any start document")
        runs[current].append((name, doc))
    return runs


def expected_counts(docs: Sequence[tuple[str, dict]]) -> dict[str, Counter]:
    """Per stream: ``{"events": n, <data_key>: frames}`` that the documents describe."""
    desc_names: dict[str, str] = {}
    counts: dict[str, Counter] = defaultdict(Counter)
    sres_key: dict[str, str] = {}
    for name, doc in docs:
        if name == "descriptor":
            desc_names[doc["uid"]] = doc["name"]
            counts[doc["name"]]  # a stream with no event yet
        elif name == "event":
            counts[desc_names[doc["descriptor"]]]["events"] += 1
        elif name == "event_page":
            counts[desc_names[doc["descriptor"]]]["events"] += len(doc["seq_num"])
        elif name == "stream_resource":
            sres_key[doc["uid"]] = doc["data_key"]
        elif name == "stream_datum":
            stream = desc_names.get(doc["descriptor"])
            key = sres_key.get(doc["stream_resource"])
            if stream is not None and key is not None:
                n = doc["seq_nums"]["stop"] - doc["seq_nums"]["start"]
                counts[stream][key] += n
    return {k: v for k, v in counts.items()}


def tiled_counts(run: Any, expected: dict[str, Counter]) -> dict[str, Counter]:
    """The same counts as `expected_counts`, read from a run in Tiled."""
    got: dict[str, Counter] = {}
    for stream, keys in expected.items():
        if stream not in run:
            continue
        node = run[stream]
        c: Counter = Counter()
        if "seq_num" in node:
            c["events"] = int(node["seq_num"].shape[0])
        for key in keys:
            if key != "events" and key in node:
                c[key] = int(node[key].shape[0])
        got[stream] = c
    return got


def _stop_for(docs: Sequence[tuple[str, dict]]) -> dict:
    start = docs[0][1]
    desc_names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    num_events: Counter = Counter()
    last_time = start["time"]
    for n, d in docs:
        if n == "event":
            num_events[desc_names[d["descriptor"]]] += 1
        elif n == "event_page":
            num_events[desc_names[d["descriptor"]]] += len(d["seq_num"])
        last_time = max(last_time, float(d.get("time", last_time) or last_time))
    return {
        "uid": str(uuid.uuid4()),
        "run_start": start["uid"],
        "time": last_time,
        "exit_status": "fail",
        "reason": RECOVERED_REASON,
        "num_events": dict(num_events),
    }


def replay_run(client: Any, docs: Sequence[tuple[str, dict]]) -> str:
    """Write one run's documents into `client` (a CatalogOfBlueskyRuns); return the action.

    See the module docstring for the rules.
    """
    from bluesky_tiled_plugins import TiledWriter

    if not docs or docs[0][0] != "start":
        raise ValueError("a run's documents must begin with its start document")
    uid = docs[0][1]["uid"]
    docs = list(docs)
    if docs[-1][0] != "stop":
        docs.append(("stop", _stop_for(docs)))
    expected = expected_counts(docs)
    action = "written"
    if uid in client:
        run = client[uid]
        complete = run.metadata.get("stop") is not None
        if complete and tiled_counts(run, expected) == expected:
            return "already in Tiled"
        logger.info("run %s is in Tiled only in part: replacing it", uid)
        run.delete(recursive=True, external_only=False)
        action = "rewritten"
    writer = TiledWriter(client)  # no backup: a failure must surface here
    for name, doc in docs:
        writer(name, doc)
    run = client[uid]
    if run.metadata.get("stop") is None:
        raise RuntimeError(f"run {uid}: the stop document did not reach Tiled")
    got = tiled_counts(run, expected)
    if got != expected:
        raise RuntimeError(f"run {uid}: Tiled holds {dict(got)}, the documents {dict(expected)}")
    return action


def replay_backups(
    files: Iterable[str | Path] | None = None,
    *,
    data_dir: str | Path | None = None,
    uri: str | None = None,
    api_key: str | None = None,
    client: Any = None,
) -> list[ReplayItem]:
    """Replay backup files (default: all of the data directory) into Tiled.

    Parameters
    ----------
    files : paths, optional
        Default: `find_backup_files` of the data directory.
    data_dir, uri, api_key
        Which server (as :func:`nanoct.session.connect`); the server must be running.
    client : CatalogOfBlueskyRuns, optional
        Use this client instead.

    Returns
    -------
    list of ReplayItem
        One per run. Files whose runs are all in Tiled afterwards move to
        ``backup/replayed/``.

    Raises
    ------
    FileNotFoundError
        If a given file does not exist.
    TiledUnavailableError
        If the server cannot be reached.
    """
    from nanoct.session import connect

    layout = DataLayout.of(data_dir)
    if files is None:
        paths = find_backup_files(layout)
    else:
        paths = [Path(f).expanduser() for f in files]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"no such backup file: {p}")
    if not paths:
        return []
    if client is None:
        client, _, _ = connect(layout, uri=uri, api_key=api_key)
    report: list[ReplayItem] = []
    for path in paths:
        try:
            runs = read_runs(path)
        except (OSError, ValueError) as err:
            report.append(ReplayItem("?", path, "failed", 0, str(err)))
            continue
        ok = True
        for uid, docs in runs.items():
            try:
                action = replay_run(client, docs)
                report.append(ReplayItem(uid, path, action, len(docs)))
            except Exception as err:  # report and go on with the next run
                logger.exception("replay of run %s from %s failed", uid, path)
                report.append(ReplayItem(uid, path, "failed", len(docs), str(err)))
                ok = False
        if ok:
            _move_done(path, layout)
    return report


def _move_done(path: Path, layout: DataLayout) -> None:
    dest_dir = layout.replayed_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / path.name
    if dest.exists():
        dest = dest_dir / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}{path.suffix}"
    with contextlib.suppress(OSError):
        path.replace(dest)
