"""Scripted plan: a CT of the chip on the twin, read back from Tiled and reconstructed.

The same calls an IPython session makes, as a script::

    python examples/scripted_ct.py --data-dir /tmp/nanoct-example --angles 90

It uses the data directory's Tiled server (started in the background when none runs and
stopped again at the end if this script started it), runs ``ct_scan`` through a RunEngine,
reads the run back with the tiled client, reconstructs the central slices with the run's own
metadata (flats interpolated in time, focal-spot drift removed with the reference wire) and
writes the volume back into Tiled beside the run, with PNG previews.
"""

from __future__ import annotations

import argparse

from nanoct.plans import ct_scan
from nanoct.reconstruct import reconstruct_run
from nanoct.session import start_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="nanoct data directory")
    parser.add_argument("--angles", type=int, default=90, help="projections over 360 deg")
    parser.add_argument("--slices", type=int, default=8, help="central slices to reconstruct")
    args = parser.parse_args(argv)

    session = start_session(args.data_dir, specimen="chip", binning=4)
    try:
        (uid,) = session.RE(
            ct_scan(
                session.ct,
                num_angles=args.angles,
                exposure_s=5.0,
                frames_per_projection=1,
                flat_every=max(args.angles // 3, 1),
                num_darks=2,
                num_flats=2,
                md={"purpose": "scripted example"},
            )
        )
        session.writer.flush(timeout_s=120)
        run = session.runs[uid]
        n_proj, rows, _ = run["primary"]["flatpanel_image"].shape
        mid = rows // 2
        result = reconstruct_run(
            run,
            out_dir=session.layout.root / "previews",
            slices=slice(mid - args.slices // 2, mid + args.slices // 2),
        )
        print(f"run uid: {uid} ({n_proj} projections)")
        print(f"volume: {result['uri']} shape {tuple(result['shape'])}")
        for path in result["previews"].values():
            print(f"png: {path}")
    finally:
        session.close(stop_server=session.server_started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
