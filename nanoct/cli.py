"""The ``nanoct`` command line."""

from __future__ import annotations

import argparse
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanoct", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe the instrument and where data go")
    info.add_argument("--seed", type=int, default=0)
    info.add_argument("--binning", type=int, default=4, choices=(1, 2, 4))
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
