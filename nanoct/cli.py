"""The ``nanoct`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


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
    )
    print(f"run uid: {res.uid}")
    print(f"tiled: {res.tiled_uri} (container 'raw'; stopped after the demo)")
    print(f"frames: {res.images_shape} in {res.data_dir}")
    for p in res.pngs:
        print(f"png: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanoct", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe the instrument and where data go")
    info.add_argument("--seed", type=int, default=0)
    info.add_argument("--binning", type=int, default=4, choices=(1, 2, 4))
    info.set_defaults(func=_cmd_info)
    demo = sub.add_parser("demo", help="rotation scan of the twin into an embedded Tiled server")
    demo.add_argument("--workdir", default="nanoct-demo", help="where data, catalog, PNGs go")
    demo.add_argument("--angles", type=int, default=36)
    demo.add_argument("--binning", type=int, default=4, choices=(1, 2, 4))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--specimen", default="chip", choices=("chip", "jima", "fibres", "edge"))
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
