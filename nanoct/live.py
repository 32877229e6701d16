"""``nanoct live``: the live callbacks in another process (or machine), fed over 0MQ.

The acquisition process publishes its documents with bluesky's 0MQ ``Publisher``
(:func:`publish`) to a ``Proxy`` (``bluesky-0MQ-proxy IN_PORT OUT_PORT``); any number of
consumers subscribe to the proxy's out port. ``nanoct live --proxy HOST:OUT_PORT`` is such a
consumer: a ``RemoteDispatcher`` feeding :func:`nanoct.callbacks.live_callbacks` (live
reconstruction, wire and flux monitors, progress, pictures), so the work of the live
callbacks leaves the RunEngine's process entirely. The detector's HDF5 files must be readable
here (the same path, or ``--path-map OLD=NEW``).

::

    bluesky-0MQ-proxy 5577 5578                        # once, anywhere
    nanoct live --proxy localhost:5578 --out-dir live/ --uri http://127.0.0.1:8010/api/v1
    # in the session: publish(RE, "localhost:5577") instead of subscribing the callbacks
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from nanoct.reconstruct import parse_slices

__all__ = ["main", "parse_address", "parse_slices", "publish"]

logger = logging.getLogger(__name__)


def parse_address(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"PORT"``: localhost) into ``(host, port)``."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host if sep else "localhost"
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"address {text!r} must be HOST:PORT with an integer port") from None
    if not 0 < p < 65536 or not host:
        raise ValueError(f"address {text!r} must be HOST:PORT with a port in [1, 65535]")
    return host, p


def publish(RE: Any, address: str | tuple[str, int], *, prefix: bytes = b"") -> tuple[int, Any]:
    """Publish the RunEngine's documents to a 0MQ proxy's in port, for ``nanoct live``.

    The publisher is wrapped in :func:`nanoct.callbacks.safe`: a failure to publish must not
    stop acquisition (the data go to Tiled through the session's writer, not through here).
    A subscriber that connects while a run is under way misses its start and ignores it.

    Parameters
    ----------
    RE : bluesky.RunEngine
    address : str or (str, int)
        ``"HOST:PORT"`` of the proxy's in port.
    prefix : bytes
        0MQ topic prefix (consumers can filter on it).

    Returns
    -------
    token : int
        The RunEngine subscription token (``RE.unsubscribe(token)``).
    publisher : bluesky.callbacks.zmq.Publisher
        Close it (``publisher.close()``) when done.
    """
    from bluesky.callbacks.zmq import Publisher

    from nanoct.callbacks.safe import safe

    host, port = parse_address(address) if isinstance(address, str) else address
    publisher = Publisher(f"{host}:{int(port)}", prefix=prefix)
    return RE.subscribe(safe(publisher, name="0MQ publisher")), publisher


def _path_map(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise ValueError(f"--path-map {item!r} must be OLD=NEW")
        out[old] = new
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nanoct live",
        description="Live reconstruction, monitors, progress and pictures of the scans a "
        "session publishes over 0MQ.",
    )
    p.add_argument("--proxy", required=True, help="HOST:PORT of the 0MQ proxy's out port")
    p.add_argument("--prefix", default="", help="0MQ topic prefix to listen to (default all)")
    p.add_argument("--slices", help="slices to reconstruct live: k, a:b or i,j,k (default: centre)")
    p.add_argument("--out-dir", default=".", help="where PNGs go (default .)")
    p.add_argument("--uri", help="Tiled server for the final slices (container 'processed')")
    p.add_argument("--api-key", default=None, help="Tiled API key (default $TILED_API_KEY)")
    p.add_argument(
        "--catalog", default="", help="container of the runs ('' = the server root, nanoct serve)"
    )
    p.add_argument("--no-recon", action="store_true", help="no live reconstruction")
    p.add_argument("--no-monitors", action="store_true", help="no wire / flux monitors")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-pictures", action="store_true", help="no PNGs")
    p.add_argument("--show", action="store_true", help="live figures (if a display exists)")
    p.add_argument("--drift-threshold-voxels", type=float, default=0.25)
    p.add_argument(
        "--path-map", action="append", default=[], metavar="OLD=NEW",
        help="read detector files under NEW where the documents say OLD (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--exit-after-runs", type=int, default=0, metavar="N",
        help="exit after N runs have been handled (default: run until interrupted)",
    )  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true")
    return p


class _Announcer:
    """Prints one line per run start and stop; stops the dispatcher after N runs."""

    def __init__(self, live: Any, exit_after: int, stop_loop) -> None:
        self.live, self.exit_after, self.stop_loop = live, exit_after, stop_loop
        self.finished = 0
        self.done = False

    def __call__(self, name: Any, doc: dict) -> None:
        name = getattr(name, "name", name)
        if name == "start":
            print(f"run {doc['uid']} ({doc.get('plan_name')}) started", flush=True)
        elif name == "stop":
            self.finished += 1
            recon = self.live.recon
            if recon is not None:
                recon.wait()
                res = recon.result
                if res is not None and res["uid"] == doc["run_start"]:
                    where = res["key"] or "(not in Tiled)"
                    print(f"live slices of {res['uid']}: {where}", flush=True)
            for w in self.live.warnings:
                print(f"warning: {w.message}", flush=True)
            print(f"run {doc['run_start']} {doc.get('exit_status')}", flush=True)
            if self.exit_after and self.finished >= self.exit_after:
                self.done = True
                self.stop_loop()


def main(argv: Sequence[str] | None = None) -> int:
    """``nanoct live --proxy HOST:PORT [...]``; returns the exit status (0 done, 2 bad
    input, 1 the Tiled server cannot be reached)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        host, port = parse_address(args.proxy)
        slices = parse_slices(args.slices)
        path_map = _path_map(args.path_map)
    except ValueError as err:
        print(f"nanoct live: error: {err}", file=sys.stderr)
        return 2
    from bluesky.callbacks.zmq import RemoteDispatcher

    from nanoct.callbacks import live_callbacks

    tiled = None
    if args.uri:
        try:
            from tiled.client import from_uri

            node = from_uri(args.uri, api_key=args.api_key or os.environ.get("TILED_API_KEY"))
            tiled = node[args.catalog] if args.catalog else node
        except Exception as err:
            print(f"nanoct live: error: Tiled at {args.uri}: {err}", file=sys.stderr)
            return 1
    live = live_callbacks(
        slices=slices,
        tiled=tiled,
        out_dir=None if args.no_pictures else args.out_dir,
        recon=not args.no_recon,
        monitors=not args.no_monitors,
        progress=not args.no_progress,
        pictures=not args.no_pictures,
        drift_threshold_voxels=args.drift_threshold_voxels,
        path_map=path_map,
    )
    dispatcher = RemoteDispatcher(f"{host}:{port}", prefix=args.prefix.encode())
    announcer = _Announcer(live, args.exit_after_runs, dispatcher.loop.stop)
    live.subscribe(dispatcher)
    dispatcher.subscribe(announcer)
    print(f"nanoct live: listening to {host}:{port}", flush=True)
    try:
        if args.show and live.pictures is not None and _show(live, dispatcher):
            return 0
        dispatcher.start()
    except KeyboardInterrupt:
        pass
    except RuntimeError:  # the loop was stopped by --exit-after-runs
        if not announcer.done:
            raise
    finally:
        live.close()
    return 0


def _show(live: Any, dispatcher: Any) -> bool:
    """Run the dispatcher on a thread and a live figure on this one (until the window is
    closed or the dispatcher ends); False, having started nothing, if there is no display."""
    from nanoct.callbacks.pictures import has_display

    if not has_display():
        return False
    import matplotlib.pyplot as plt

    thread = threading.Thread(target=dispatcher.start, name="nanoct-live-0mq", daemon=True)
    thread.start()
    if live.pictures.show():
        plt.show(block=True)  # until the window is closed
        dispatcher.loop.call_soon_threadsafe(dispatcher.loop.stop)
    thread.join()
    return True
