"""Frames per second of the CT twin next to bare h5py writing of the same frames.

Run on demand, never by pytest::

    python benchmarks/twin_frames.py [--frames N] [--profile]

Each case runs in a fresh process (so its peak RSS is its own): the twin renders N projections
(blur and noise on, the default), turning the rotation stage between frames so every frame is
a new projection; then the same N frames are appended to an SWMR HDF5 file the way the real
writer does it (float32, chunk = one frame, resize + write + flush per frame) in a temporary
directory. ``--profile`` instead runs the 2048x2048 twin loop under cProfile and prints the
top entries by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from nanoct.devices.sim.twin import CTTwin

EXPOSURE_S = 5.0
TARGET_CORES = 2
# (label, binning, target frames/s on TARGET_CORES cores)
CASES = (("512x512 bin4", 4, 20.0), ("2048x2048 bin1", 1, 2.0))


def twin_frames(
    binning: int, n: int, profiler: cProfile.Profile | None = None
) -> tuple[list[np.ndarray], float]:
    """``n`` new projections from a warmed-up twin, and the seconds they took."""
    tw = CTTwin(seed=0, specimen="chip", binning=binning)
    tw.acquire(exposure_s=EXPOSURE_S, frames=1)  # warm-up: builds spectra and caches
    frames = []
    if profiler is not None:
        profiler.enable()
    t0 = time.perf_counter()
    for i in range(n):
        tw.set_position("angle_deg", (i + 1) * 360.0 / (n + 1))
        frames.append(tw.acquire(exposure_s=EXPOSURE_S, frames=1).image)
    elapsed = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
    return frames, elapsed


def h5py_seconds(frames: list[np.ndarray]) -> float:
    """Seconds to append ``frames`` to an SWMR file, one chunk and one flush per frame."""
    rows, cols = frames[0].shape
    with tempfile.TemporaryDirectory() as tmp:
        with h5py.File(Path(tmp) / "frames.h5", "w", libver="latest") as h5:
            dset = h5.create_dataset(
                "data",
                shape=(0, rows, cols),
                maxshape=(None, rows, cols),
                chunks=(1, rows, cols),
                dtype=np.float32,
            )
            h5.swmr_mode = True
            t0 = time.perf_counter()
            for i, frame in enumerate(frames):
                dset.resize(i + 1, axis=0)
                dset[i] = frame.astype(np.float32, copy=False)
                h5.flush()
            return time.perf_counter() - t0


def run_case(binning: int, n: int) -> dict[str, float]:
    frames, t_twin = twin_frames(binning, n)
    t_h5 = h5py_seconds(frames)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "twin_fps": n / t_twin,
        "h5py_fps": n / t_h5,
        "peak_rss_mib": peak_kib / 1024.0,
        "held_mib": sum(f.nbytes for f in frames) / 2**20,
    }


def profile_case(binning: int, n: int, top: int = 15) -> None:
    prof = cProfile.Profile()
    twin_frames(binning, n, profiler=prof)  # the warm-up frame is not profiled
    pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10, help="timed frames per case")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the 2048x2048 twin loop instead"
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be >= 1")
    if args.profile:
        profile_case(binning=1, n=args.frames)
        return 0

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"CT twin, specimen 'chip', exposure {EXPOSURE_S} s, blur + noise on, "
        f"{args.frames} frames per case, {cores} core(s) (targets are for {TARGET_CORES})"
    )
    header = (
        f"{'case':<16}{'twin f/s':>10}{'h5py f/s':>10}{'twin/h5py':>11}"
        f"{'target':>9}{'result':>8}{'peak RSS MiB':>14}"
    )
    print(header)
    print("-" * len(header))
    ctx = mp.get_context("spawn")
    for label, binning, target in CASES:
        with ctx.Pool(1) as pool:  # a fresh process per case: its own peak RSS
            r = pool.apply(run_case, (binning, args.frames))
        verdict = "PASS" if r["twin_fps"] >= target else "MISS"
        print(
            f"{label:<16}{r['twin_fps']:>10.2f}{r['h5py_fps']:>10.1f}"
            f"{r['twin_fps'] / r['h5py_fps']:>11.3f}{f'>= {target:g}':>9}{verdict:>8}"
            f"{r['peak_rss_mib']:>14.0f}"
        )
        print(f"{'':<16}(peak RSS includes the {r['held_mib']:.0f} MiB of frames kept for h5py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
