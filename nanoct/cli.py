"""The ``nanoct`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]

# Errors the commands raise for bad input or a broken environment: printed as one line, exit 1.
_EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, KeyError)


def _cmd_info(args: argparse.Namespace) -> int:
    from nanoct.devices import default_data_dir, sub_um_ct

    ct = sub_um_ct(seed=args.seed, binning=args.binning, data_dir=default_data_dir())
    tw = ct.twin
    print("instrument: sub-um CT (digital twin)")
    print(
        f"  tube: FXE 160, {tw.tube.voltage_kv:g} kV, {tw.tube.current_ua:g} uA, "
        f"mode {tw.tube.mode} (spot {tw.tube.focus_mode.spot_size_um} um)"
    )
    print(
        f"  geometry: SOD {tw.sod_mm} mm, SDD {tw.sdd_mm} mm, M {tw.sdd_mm / tw.sod_mm:.1f}, "
        f"voxel {ct.geometry.voxel_size.get():.3f} um at binning {tw.binning}"
    )
    print(f"  specimen: {tw.specimen.name}")
    print(f"data directory: {ct.flatpanel.data_dir}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from nanoct.demo import run_demo

    res = run_demo(
        Path(args.workdir),
        angles=args.angles,
        binning=args.binning,
        seed=args.seed,
        specimen=args.specimen,
        live=not args.no_live,
        progress=not args.no_progress,
    )
    print(f"run uid: {res.uid}")
    print(f"tiled: {res.tiled_uri} (container 'raw'; the embedded server stopped after the demo)")
    print(f"frames: {res.images_shape} in {res.data_dir}")
    for p in res.pngs:
        print(f"png: {p}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from nanoct.config import DataLayout
    from nanoct.server import find_running_server, serve, stop_server

    if args.stop or args.status:
        layout = DataLayout.of(args.data_dir)
        if args.stop:
            if stop_server(layout):
                print(f"stopped the nanoct server of {layout.root}")
                return 0
            print(f"no nanoct server is running for {layout.root}", file=sys.stderr)
            return 1
        info = find_running_server(layout)
        if info is None:
            print(f"no nanoct server is running for {layout.root}")
            return 1
        print(f"{info.uri} (pid {info.pid}, catalog {info.database})")
        return 0
    return serve(
        args.data_dir,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        database=args.database,
        public_read=args.public_read,
        log_level=args.log_level,
    )


def _cmd_replay(args: argparse.Namespace) -> int:
    from nanoct.replay import replay_backups

    report = replay_backups(
        args.files or None,
        data_dir=args.data_dir,
        uri=args.uri,
        api_key=args.api_key,
    )
    for item in report:
        print(f"{item.uid}: {item.action} ({item.n_documents} documents) {item.path}")
    if not report:
        print("nothing to replay")
    failed = [r for r in report if r.action == "failed"]
    return 1 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from nanoct.export import export_nxtomo

    res = export_nxtomo(
        args.run,
        args.nxtomo,
        data_dir=args.data_dir,
        uri=args.uri,
        api_key=args.api_key,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {res.path}: {res.n_frames} frames of {res.frame_shape} "
        f"({res.n_projections} projections, {res.n_flats} flats, {res.n_darks} darks) "
        f"from run {res.uid}"
    )
    return 0


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="nanoct data directory (default: $NANOCT_DATA_DIR or ~/.local/share/nanoct/data)",
    )


def _add_client_args(p: argparse.ArgumentParser) -> None:
    _add_data_dir(p)
    p.add_argument(
        "--uri",
        default=None,
        help="Tiled server, http://host:port/api/v1 (default: $NANOCT_TILED_URI, else the "
        "server running for the data directory)",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="API key (default: $TILED_API_KEY, else the data directory's key file)",
    )


def _cmd_run(argv: list[str]) -> int:
    """``nanoct run PLAN [options]`` (its own parser per plan, built from the signature)."""
    from nanoct.runplan import build_plan_parser, find_plan, format_result, list_plans, run_plan

    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: nanoct run PLAN [--option value ...]\n"
            "       nanoct run PLAN --help   (the plan's options)\n"
            "       nanoct run --list\n\nplans:\n" + list_plans()
        )
        return 0 if argv else 2
    if argv[0] == "--list":
        print(list_plans())
        return 0
    try:
        entry = find_plan(argv[0])
    except KeyError as err:
        print(f"nanoct run: error: {err.args[0]}", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in argv[1:]):
        build_plan_parser(entry).print_help()
        return 0
    res = run_plan(entry.name, argv[1:])
    for uid in res.uids:
        print(f"run uid: {uid}")
        print(f"tiled: {res.tiled_uri}/metadata/{uid}")
    print(f"data directory: {res.data_dir}")
    for line in format_result(res.result):
        print(line)
    for p in res.pngs:
        print(f"png: {p}")
    return 0


def _cmd_ipython(args: argparse.Namespace) -> int:
    import os

    from IPython import start_ipython

    from nanoct.config import resolve_data_dir
    from nanoct.profile import prepare_profile

    layout = resolve_data_dir(args.data_dir)
    os.environ["NANOCT_DATA_DIR"] = str(layout.root)
    profile = prepare_profile(layout.root / "session" / "ipython")
    rest = [a for a in args.ipython_args if a != "--"]
    start_ipython(argv=[f"--profile-dir={profile}", *rest])
    return 0


def _cmd_recon(args: argparse.Namespace) -> int:
    from nanoct.reconstruct import main as recon_main

    return recon_main(args.args)


def build_parser() -> argparse.ArgumentParser:
    from nanoct.config import DEFAULT_HOST, DEFAULT_PORT

    parser = argparse.ArgumentParser(prog="nanoct", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe the instrument and where data go")
    info.add_argument("--seed", type=int, default=0)
    info.add_argument("--binning", type=int, default=4, choices=(1, 2, 4))
    info.set_defaults(func=_cmd_info)
    demo = sub.add_parser(
        "demo",
        help="the main job: a simulated CT of the chip, into an embedded Tiled server, "
        "reconstructed, with PNGs",
    )
    demo.add_argument("--workdir", default="nanoct-demo", help="where data, catalog, PNGs go")
    demo.add_argument("--angles", type=int, default=120)
    demo.add_argument("--binning", type=int, default=4, choices=(1, 2, 4))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--specimen", default="chip", choices=("chip", "jima", "fibres", "edge"))
    demo.add_argument(
        "--no-live", action="store_true", help="no live reconstruction and monitors during the scan"
    )
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_cmd_demo)

    rec = sub.add_parser(
        "recon",
        add_help=False,
        help="reconstruct a ct_scan run from Tiled (nanoct recon --help for its options)",
    )
    rec.add_argument("args", nargs=argparse.REMAINDER)
    rec.set_defaults(func=_cmd_recon)

    live = sub.add_parser(
        "live",
        add_help=False,
        help="run the live callbacks (reconstruction, monitors, pictures) in this process, fed "
        "by a bluesky 0MQ proxy (nanoct live --help for its options)",
    )
    live.add_argument("args", nargs=argparse.REMAINDER)

    run = sub.add_parser(
        "run",
        add_help=False,
        help="run a plan as a script: nanoct run ct --angles 360 (nanoct run --list; "
        "nanoct run PLAN --help)",
    )
    run.add_argument("args", nargs=argparse.REMAINDER)

    ipy = sub.add_parser(
        "ipython",
        help="an IPython session with nanoct's profile (RE, instruments, plans, %%wa, %%ct)",
        description="Open IPython with nanoct's profile_collection: a session on the data "
        "directory's Tiled server (started if needed), both instruments, every plan, "
        "BestEffortCallback, progress bar, bluesky magics. Arguments after -- go to IPython.",
    )
    _add_data_dir(ipy)
    ipy.add_argument("ipython_args", nargs=argparse.REMAINDER, help="passed to IPython")
    ipy.set_defaults(func=_cmd_ipython)

    srv = sub.add_parser(
        "serve",
        help="serve the data directory's Tiled catalog (foreground; Ctrl-C stops)",
        description="Serve the data directory's runs with Tiled: SQLite (or PostgreSQL) "
        "catalog, the detectors' HDF5 files readable, API key required for writes.",
    )
    _add_data_dir(srv)
    srv.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}: this machine only)",
    )
    srv.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any)"
    )
    srv.add_argument(
        "--api-key",
        default=None,
        help="use and store this key (default: the stored key, generated once, mode 0600)",
    )
    srv.add_argument(
        "--database",
        default=None,
        metavar="URI",
        help="catalog database, postgresql://user:password@host:port/dbname (default: SQLite "
        "in the data directory)",
    )
    srv.add_argument(
        "--public-read", action="store_true", help="allow reads without the key (writes need it)"
    )
    srv.add_argument("--log-level", default="warning", help="uvicorn log level")
    srv.add_argument("--status", action="store_true", help="print the running server and exit")
    srv.add_argument("--stop", action="store_true", help="stop the running server and exit")
    srv.set_defaults(func=_cmd_serve)

    rep = sub.add_parser(
        "replay",
        help="load runs backed up while Tiled was unreachable into the server (idempotent)",
    )
    _add_client_args(rep)
    rep.add_argument(
        "files", nargs="*", help="backup files (*.jsonl); default: all in <data-dir>/backup"
    )
    rep.set_defaults(func=_cmd_replay)

    exp = sub.add_parser("export", help="write a run to a file for other tools")
    _add_client_args(exp)
    exp.add_argument("run", help="run uid (or a unique prefix), scan_id, or -1 for the latest")
    exp.add_argument("--nxtomo", required=True, metavar="FILE", help="NXtomo HDF5 file to write")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    exp.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["recon"]:  # its own parser: options (and --help) pass through untouched
        from nanoct.reconstruct import main as recon_main

        return recon_main(argv[1:])
    if argv[:1] == ["live"]:  # its own parser too
        from nanoct.live import main as live_main

        return live_main(argv[1:])
    args = build_parser().parse_args(argv[:1] if argv[:1] == ["run"] else argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "run":
            return _cmd_run(argv[1:])
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except _EXPECTED_ERRORS as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"nanoct {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
