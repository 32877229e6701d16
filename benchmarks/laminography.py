"""Laminographic reconstruction: time and memory at 256^3, against itk-rtk and nanoct's FDK.

Run on demand from the repository root (never collected by pytest):

    python benchmarks/laminography.py                   # all cases (~6 minutes on 2 cores)
    python benchmarks/laminography.py --case time       # 256^3 from 360 projections
    python benchmarks/laminography.py --case memory     # peak RSS / tracemalloc, fresh processes
    python benchmarks/laminography.py --case iterative  # projector pair and ML, 128^3 / 90
    python benchmarks/laminography.py --quick           # 64^3, a smoke test

The exact projections (minutes at 256^3 x 360) are cached as ``nanoct-lamino-bench-*.npy``
in the temporary directory; delete them to recompute.

Peers
-----
* itk-rtk (CPU): ``ThreeDCircularProjectionGeometry`` takes an out-of-plane angle per
  projection, so its FDK reconstructs a tilted-axis cone-beam scan on the CPU; nanoct's tilt
  ``t`` is RTK's out-of-plane angle ``-t`` (measured here on a probe: the other sign is
  clearly worse), and RTK's orientation and scale are calibrated at 0 deg with
  :func:`nanoct.recon.backends.calibrate_cone`.
* astra-toolbox: its ``cone_vec`` geometry can express a tilted axis, but without CUDA astra
  2.5 has no 3-D algorithm at all (``FDK``, ``BP3D``, ``FP3D``, ``SIRT3D`` are "Unknown
  algorithm type"; only the ``*_CUDA`` ones exist), and its 2-D CPU algorithms cannot couple
  slices. No astra figure on a CPU machine.
* nanoct's own FDK at 0 deg on a CT scan of the same size: what the general tilted-axis kernel
  costs against the CT-only one (which shares each voxel column's detector position over the
  slices; with a tilted axis no such sharing exists).

Geometry: sod 20 mm, sdd 80 mm, pixel 0.2 mm (magnification 4, voxel 0.05 mm), tilt 30 deg, a
full turn. Phantom: a chip (substrate, two wiring layers, vias; :func:`chip_boxes`) with three
ellipsoids above and below it, exact line integrals (boxes and ellipsoids), RMSE against the
voxelised phantom (the laminographic missing cone makes this RMSE larger than a CT's: the
slowly varying part along the axis is not measured). Times are the best of ``--repeat`` (2)
interleaved runs after a warm-up (numba compiled); "G/s" is voxel-angle updates per second.
The shared 2-core machine is noisy: compare the ratios measured within one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from rtk_peer import rtk_fdk  # benchmarks/rtk_peer.py: scripts here import their siblings

from nanoct.recon.fdk import fdk
from nanoct.recon.lamino_phantoms import (
    box_projections,
    box_volume,
    chip_boxes,
    ellipsoid_projections,
)
from nanoct.recon.laminography import LaminoGeometry, LaminoProjector, fbp_lamino
from nanoct.recon.phantoms import ellipsoid_volume
from nanoct.recon.poisson import poisson_ml

GEO = {"sod_mm": 20.0, "sdd_mm": 80.0, "pixel_mm": 0.2}
VOX = GEO["pixel_mm"] * GEO["sod_mm"] / GEO["sdd_mm"]
TILT = 30.0
REPEAT = 2


# --------------------------------------------------------------------------- phantom
def phantom(n: int) -> tuple[list, list]:
    """Chip boxes and ellipsoids (mm, 1/mm) scaled to an n^3 volume of VOX voxels."""
    w = 0.7 * n * VOX  # chip width
    boxes = chip_boxes(w, thickness_mm=w / 8, mu_substrate=0.3, mu_metal=2.0)
    s = n * VOX / 2
    ellipsoids = [
        (0.2 * s, -0.3 * s, -0.45 * s, 0.25 * s, 0.2 * s, 0.15 * s, 1.0),
        (-0.35 * s, 0.25 * s, 0.5 * s, 0.15 * s, 0.25 * s, 0.2 * s, 0.8),
        (0.4 * s, 0.45 * s, 0.4 * s, 0.1 * s, 0.1 * s, 0.1 * s, 1.5),
    ]
    return boxes, ellipsoids


def scan(n: int, na: int, tilt: float) -> tuple[np.ndarray, np.ndarray, LaminoGeometry]:
    """Exact projections, cached in the temporary directory (256^3 x 360 takes minutes)."""
    geom = LaminoGeometry(tilt, **GEO)
    angles = np.arange(na) * 2 * np.pi / na
    cache = os.path.join(tempfile.gettempdir(), f"nanoct-lamino-bench-{n}-{na}-{tilt:g}.npy")
    if os.path.exists(cache):
        return np.load(cache), angles, geom
    boxes, ellipsoids = phantom(n)
    proj = box_projections(boxes, angles, geom, (n, n))
    proj += ellipsoid_projections(ellipsoids, angles, geom, (n, n))
    np.save(cache, proj)
    return proj, angles, geom


def truth(n: int) -> np.ndarray:
    boxes, ellipsoids = phantom(n)
    return box_volume(boxes, (n, n, n), VOX) + ellipsoid_volume(ellipsoids, (n, n, n), VOX, 1)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


# --------------------------------------------------------------------------- itk-rtk
def rtk_runner():
    """(run(proj, angles, shape, tilt) -> nanoct-oriented volume, note), or (None, reason)."""
    try:
        import itk  # noqa: F401
        from itk import RTK  # noqa: F401
    except Exception as exc:  # ImportError or a broken wheel
        return None, f"itk-rtk not importable ({type(exc).__name__}: {exc}); pip install itk-rtk"
    from nanoct.recon.backends import apply_transform, calibrate_cone

    cal = calibrate_cone(lambda p, a, g, s, v: rtk_fdk(p, a, g, s, v), offset_u_mm=0.0)
    ours = calibrate_cone(
        lambda p, a, g, s, v: fdk(p, a, **g, volume_shape=s, voxel_mm=v), offset_u_mm=0.0
    )
    scale = cal.scale / ours.scale

    def orient(raw):
        return apply_transform(raw[::-1] if cal.flip_z else raw, cal.transform) * scale

    # the sign of the out-of-plane angle, on a small tilted probe
    n, na = 48, 60
    proj, angles, geom = scan(n, na, TILT)
    mine = fbp_lamino(proj, angles, geom, volume_shape=(n, n, n))
    diff = {
        sign: rmse(orient(rtk_fdk(proj, angles, GEO, (n, n, n), VOX, sign * TILT)), mine)
        for sign in (1, -1)
    }
    sign = min(diff, key=diff.get)
    note = (
        f"itk-rtk calibration: transform {cal.transform}, flip_z {cal.flip_z}, scale "
        f"{scale:.4f}; out-of-plane = {'+' if sign > 0 else '-'}tilt (RMSE to nanoct on the "
        f"probe {diff[sign]:.4f} against {diff[-sign]:.4f} with the other sign)"
    )

    def run(p, a, shape, tilt):
        return orient(rtk_fdk(p, a, GEO, shape, VOX, sign * tilt))

    return run, note


# --------------------------------------------------------------------------- helpers
def _cpu() -> float:
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _rss(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process in bytes, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS (Linux >= 4.0)
    except OSError:
        pass


def run_rounds(methods: dict) -> dict:
    """name -> (result of the best run, best wall s, CPU s of that run), interleaved rounds."""
    best: dict = {}
    for _ in range(REPEAT):
        for name, fn in methods.items():
            c0, t0 = _cpu(), time.perf_counter()
            out = fn()
            t, c = time.perf_counter() - t0, _cpu() - c0
            if name not in best or t < best[name][1]:
                best[name] = (out, t, c)
    return best


# --------------------------------------------------------------------------- cases
def case_time(n: int, na: int) -> None:
    print(f"\n== laminography {n}^3 from {na} projections of {n}^2, tilt {TILT:g} deg, cone ==")
    t0 = time.perf_counter()
    p_lam, angles, g_lam = scan(n, na, TILT)
    p_ct, _, g_ct = scan(n, na, 0.0)
    ref = truth(n)
    print(f"  exact projections and phantom: {time.perf_counter() - t0:.1f} s")
    shape = (n, n, n)
    small = (4, 16, 16)
    fbp_lamino(p_lam[:4, :16, :16], angles[:4], g_lam, volume_shape=small)  # compile
    fdk(p_ct[:4, :16, :16], angles[:4], **GEO, volume_shape=small)
    methods = {
        "nanoct fbp_lamino 30 deg": lambda: fbp_lamino(p_lam, angles, g_lam, volume_shape=shape),
        "nanoct fbp_lamino 0 deg": lambda: fbp_lamino(p_ct, angles, g_ct, volume_shape=shape),
        "nanoct fdk 0 deg (CT)": lambda: fdk(p_ct, angles, **GEO, volume_shape=shape),
    }
    run, note = rtk_runner()
    print(f"  {note}")
    if run is not None:
        methods["itk-rtk FDK 30 deg (CPU)"] = lambda: run(p_lam, angles, shape, TILT)
    best = run_rounds(methods)
    base = best["nanoct fbp_lamino 30 deg"][1]
    lam = best["nanoct fbp_lamino 30 deg"][0]
    print(f"  {'method':28s} {'wall s':>7s} {'CPU s':>7s} {'G/s':>5s} {'RMSE':>7s} "
          f"{'vs nanoct':>9s} {'time/lamino':>11s}")  # fmt: skip
    for name, (out, t, c) in best.items():
        other = "" if name.endswith("0 deg") or "(CT)" in name else f"{rmse(out, lam):9.4f}"
        print(f"  {name:28s} {t:7.2f} {c:7.2f} {n**3 * na / t / 1e9:5.2f} {rmse(out, ref):7.4f} "
              f"{other:>9s} {t / base:11.2f}")  # fmt: skip
    print("  RMSE against the voxelised phantom (1/mm; features up to 2.3); 'vs nanoct': RMSE")
    print("  between that reconstruction and nanoct's at the same tilt")


def case_memory(n: int, na: int) -> None:
    """Each method in a fresh process, so the high-water mark is that method's."""
    print(f"\n== memory: {n}^3 from {na} projections of {n}^2 (fresh process per method) ==")
    print("  output preallocated and touched, projections in memory (float32)")
    for method in ("fbp_lamino", "fdk", "rtk"):
        env = dict(os.environ, _LAMINO_MEMORY_CHILD=method)
        cmd = [sys.executable, __file__, "--memory-child", method, "--n", str(n),
               "--angles", str(na)]  # fmt: skip
        subprocess.run(cmd, env=env, check=False)


def memory_child(method: str, n: int, na: int) -> None:
    tilt = 0.0 if method == "fdk" else TILT
    proj, angles, geom = scan(n, na, tilt)
    shape = (n, n, n)
    small = (2, 16, 16)
    if method == "rtk":
        run, note = rtk_runner()
        if run is None:
            print(f"  itk-rtk: skipped ({note})")
            return
    elif method == "fdk":
        fdk(proj[:4, :16, :16], angles[:4], **GEO, volume_shape=small)
    else:
        fbp_lamino(proj[:4, :16, :16], angles[:4], geom, volume_shape=small)
    out = np.empty(shape, np.float32)
    out.fill(0.0)
    _reset_peak_rss()
    base = _rss("VmHWM")
    tracemalloc.start()
    t0 = time.perf_counter()
    if method == "fbp_lamino":
        fbp_lamino(proj, angles, geom, volume_shape=shape, out=out)
        label = f"nanoct fbp_lamino {tilt:g} deg"
    elif method == "fdk":
        fdk(proj, angles, **GEO, volume_shape=shape, out=out)
        label = "nanoct fdk 0 deg (CT)"
    else:
        out[...] = run(proj, angles, shape, tilt)
        label = f"itk-rtk FDK {tilt:g} deg"
    t = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _rss("VmHWM")
    mib = 2.0**20
    print(f"  {label:26s} peak RSS growth {(peak - base) / mib:7.0f} MiB "
          f"({(peak - base) / out.nbytes:5.2f} x volume {out.nbytes / mib:.0f} MiB; projections "
          f"{proj.nbytes / mib:.0f} MiB); traced (Python/numpy) peak {traced / mib:6.0f} MiB; "
          f"{t:.1f} s")  # fmt: skip


def case_iterative(n: int, na: int) -> None:
    print(f"\n== iterative: {n}^3, {na} projections of {n}^2, tilt {TILT:g} deg, cone ==")
    proj, angles, geom = scan(n, na, TILT)
    op = LaminoProjector(geom, angles, (n, n), (n, n, n))
    LaminoProjector(geom, angles[:2], (8, 8), (4, 8, 8)).back(np.ones((2, 8, 8)))  # compile
    x = truth(n)
    dense = np.ones_like(proj)  # back() skips rays whose value is 0: time it on dense data
    methods = {
        "forward (Joseph)": lambda: op.forward(x),
        "back (transpose)": lambda: op.back(dense),
    }
    counts = np.random.default_rng(0).poisson(10.0 * np.exp(-proj))
    for k in (1, 3):
        methods[f"poisson_ml, {k} iteration(s)"] = lambda k=k: poisson_ml(
            counts, 10.0, op, n_iter=k, n_subsets=8, beta=0.3, delta_per_mm=0.2
        )
    best = run_rounds(methods)
    for name, (_, t, c) in best.items():
        rate = f"{n**3 * na / t / 1e9:5.2f} G/s" if "ward" in name or "back" in name else ""
        print(f"  {name:26s} {t:7.2f} s wall {c:7.2f} s CPU  {rate}")
    one, three = (best[f"poisson_ml, {k} iteration(s)"][1] for k in (1, 3))
    per = (three - one) / 2
    print(f"  poisson_ml: {per:.2f} s per iteration, {one - per:.2f} s set-up (ray")
    print("  lengths and the penalty's scale); a SIRT iteration is one forward plus one back")
    print("  projection, an ML iteration one forward and two back projections plus the penalty")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["time", "memory", "iterative", "all"], default="all")
    ap.add_argument("--quick", action="store_true", help="64^3 from 60 projections")
    ap.add_argument("--repeat", type=int, default=2, help="runs per timing; the best counts")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--angles", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.n, args.angles)
        return
    global REPEAT
    REPEAT = max(1, args.repeat)
    import numba

    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, numba threads "
          f"{numba.get_num_threads()}, numpy {np.__version__}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    n, na = (64, 60) if args.quick else (256, 360)
    if args.case in ("time", "all"):
        case_time(n, na)
    if args.case in ("memory", "all"):
        case_memory(n, na)
    if args.case in ("iterative", "all"):
        case_iterative(*((64, 30) if args.quick else (128, 90)))


if __name__ == "__main__":
    main()
