"""``nanoct recon RUN``: reconstruct a CT run from Tiled and store the volume beside it.

:func:`reconstruct_run` reads the run's ``dark``, ``flat``, ``primary`` and (if there)
``reference`` streams and its start document, calls
:func:`nanoct.recon.pipeline.reconstruct_ct` (the run's own geometry, tilt, detector kind and
drift reference), writes the volume into a ``processed`` container next to the runs catalog
(key ``<raw uid>-<algorithm>``, metadata ``{"raw_uid": ..., ...}`` linking it to the run) and
PNG previews of three orthogonal slices. The runs of :data:`CT_PLANS` are accepted: the
sub-um CT's ``ct_scan``, the microscope's ``nano_ct_scan`` (photon counts: the Poisson-aware
reconstruction is chosen at low counts) and ``laminography_scan`` on either instrument
(tilted-axis reconstruction); the detector is the run's first (``start["detectors"]``).
:func:`main` is the command line; it is what the ``nanoct`` CLI calls for ``nanoct recon``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nanoct.recon.pipeline import ALGORITHMS, reconstruct_ct

__all__ = [
    "CT_PLANS",
    "DERIVED_KEY",
    "RunError",
    "main",
    "parse_slices",
    "reconstruct_run",
    "write_previews",
]

logger = logging.getLogger(__name__)

#: Container (sibling of the runs catalog) that holds reconstructed volumes.
DERIVED_KEY = "processed"
#: Plans whose runs :func:`reconstruct_run` reconstructs (the generic CT schedule's).
CT_PLANS = ("ct_scan", "nano_ct_scan", "laminography_scan")


class RunError(ValueError):
    """The run cannot be reconstructed (unknown, incomplete, inconsistent)."""


def parse_slices(text: str | None) -> int | slice | list[int] | None:
    """``"k"``, ``"a:b"`` (either end may be empty) or ``"i,j,k"`` into slice indices for
    ``nanoct recon``, ``nanoct live`` and ``Session.reconstruct``; None stays None."""
    if text is None:
        return None
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return slice(int(a) if a.strip() else None, int(b) if b.strip() else None)
        if "," in text:
            return [int(v) for v in text.split(",") if v.strip()]
        return int(text)
    except ValueError:
        raise ValueError(f"slices={text!r} must be 'k', 'a:b' or 'i,j,k'") from None


def _stream(run, name: str, required: bool = True):
    try:
        return run[name]
    except KeyError:
        if required:
            raise RunError(f"run {_uid(run)} has no {name!r} stream") from None
        return None


def _uid(run) -> str:
    try:
        return str(run.metadata["start"]["uid"])
    except (KeyError, TypeError):
        return "?"


def _column(table, key: str, stream: str, uid: str) -> np.ndarray:
    try:
        return np.asarray(table[key], dtype=np.float64)
    except KeyError:
        raise RunError(f"run {uid}: stream {stream!r} has no {key!r}") from None


def _derived_container(run):
    """The ``processed`` container beside the runs catalog that holds ``run`` (made if needed;
    the live reconstruction's :func:`~nanoct.callbacks.live_recon.derived_container` does the
    lookup, given that catalog)."""
    from tiled.client import from_context

    from nanoct.callbacks.live_recon import derived_container

    parts = list(getattr(run, "path_parts", []) or [])
    catalog = from_context(run.context)
    for key in parts[:-1]:  # [..., catalog, uid] -> the catalog
        catalog = catalog[key]
    return derived_container(catalog, DERIVED_KEY)


def _clean_uri(uri: str | None) -> str | None:
    """Tiled's child URIs of a root opened as ``.../api/v1`` read ``metadata//key``."""
    if not uri:
        return uri
    scheme, sep, rest = uri.partition("://")
    while "//" in rest:
        rest = rest.replace("//", "/")
    return scheme + sep + rest


def write_previews(volume: np.ndarray, out_dir: str | Path, stem: str) -> dict[str, Path]:
    """PNGs of the three central orthogonal slices (z: axial, y: coronal, x: sagittal), each
    scaled between the volume's 0.5 and 99.5 percentiles. Returns ``{"z"|"y"|"x": path}``."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    v = np.asarray(volume, dtype=np.float32)
    lo, hi = np.percentile(v, [0.5, 99.5])
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    views = {
        "z": v[v.shape[0] // 2],
        "y": v[:, v.shape[1] // 2, :],
        "x": v[:, :, v.shape[2] // 2],
    }
    paths = {}
    for axis, img in views.items():
        u8 = np.clip((img - lo) * scale, 0, 255).astype(np.uint8)
        path = out / f"{stem}_{axis}.png"
        Image.fromarray(u8).save(path)
        paths[axis] = path
    return paths


def reconstruct_run(
    run,
    *,
    out_dir: str | Path,
    slices: slice | Sequence[int] | int | None = None,
    algorithm: str = "auto",
    drift_correction: bool = True,
    use_recorded_wire: bool = True,
    progress=None,
    **options: Any,
) -> dict[str, Any]:
    """Reconstruct one CT run (:data:`CT_PLANS`) read from Tiled and write the volume back
    beside it.

    Parameters
    ----------
    run : tiled client node
        The run (``runs[uid]``), with streams ``dark`` (optional), ``flat``, ``primary`` and
        ``reference`` (optional: reference projections, the drift reference without a wire).
    out_dir : path
        Where the PNG previews go.
    slices : slice, int or sequence of int, optional
        Volume slices to reconstruct (default all).
    algorithm : {'auto', 'fdk', 'fbp', 'sirt', 'poisson-ml'}
        ``'auto'`` (default): FDK for an integrating detector (laminographic FBP for a tilted
        axis); for photon counts the Poisson-aware maximum likelihood below 20 mean counts
        per pixel, FDK above (:func:`~nanoct.recon.pipeline.reconstruct_ct`).
    drift_correction : bool
        Undo the focal-spot drift measured on the reference wire (or, without one, on the
        reference projections).
    use_recorded_wire : bool
        Use the run's ``wire_x_px`` / ``wire_y_px`` (the wire monitor's, measured during the
        scan) when they are there; otherwise the wire is measured on the projections.
    progress : callable, optional
        ``progress(stage)`` as each stage starts.
    **options
        Passed to :func:`~nanoct.recon.pipeline.reconstruct_ct` (``volume_shape``,
        ``crop_rows``, ``bin_factor``, ...).

    Returns
    -------
    dict
        ``raw_uid``, ``key`` and ``uri`` of the volume in Tiled, ``shape``, ``previews``
        (paths), ``info`` (:func:`reconstruct_ct`'s).

    Raises
    ------
    RunError
        Not a CT run, a stream or column missing, no flats; ``ValueError`` from the
        pipeline for inconsistent geometry.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {ALGORITHMS}")
    start = dict(run.metadata.get("start") or {})
    uid = str(start.get("uid", "?"))
    if start.get("plan_name") not in CT_PLANS:
        raise RunError(
            f"run {uid} is a {start.get('plan_name')!r} run, not a ct_scan (nor another CT "
            f"run: {', '.join(CT_PLANS)})"
        )
    det = str((start.get("detectors") or ["flatpanel"])[0])
    image, t_key, a_key = f"{det}_image", f"{det}_twin_time", f"{det}_rotation_angle"
    if progress is not None:
        progress("read")
    primary = _stream(run, "primary")
    flat = _stream(run, "flat", required=False)
    if flat is None or image not in flat or flat[image].shape[0] == 0:
        raise RunError(f"run {uid} has no flats: it cannot be normalised")
    dark = _stream(run, "dark", required=False)
    reference = _stream(run, "reference", required=False)
    projections = primary[image].read()
    pt = primary.read()
    ft = flat.read()
    flats = flat[image].read()
    darks = dark[image].read() if dark is not None and image in dark else None
    angles = _column(pt, a_key, "primary", uid)
    times = _column(pt, t_key, "primary", uid)
    flat_times = _column(ft, t_key, "flat", uid)
    blocks = np.asarray(ft["flat_block"]) if "flat_block" in ft else None
    refs = ref_times = None
    if reference is not None and image in reference:
        refs = reference[image].read()
        ref_times = _column(reference.read(), t_key, "reference", uid)
    wire_xy = None
    if use_recorded_wire and "wire_x_px" in pt and "wire_y_px" in pt:
        wx = np.asarray(pt["wire_x_px"], dtype=np.float64)
        wy = np.asarray(pt["wire_y_px"], dtype=np.float64)
        if np.isfinite(wx).any() and np.isfinite(wy).any():
            wire_xy = (wx, wy)
    try:
        volume, info = reconstruct_ct(
            projections, angles, times, flats, flat_times, blocks, darks, start,
            wire_xy_px=wire_xy, drift_correction=drift_correction, algorithm=algorithm,
            slices=slices, progress=progress, references=refs, reference_times_s=ref_times,
            **options,
        )  # fmt: skip
    except ValueError as err:
        raise RunError(f"run {uid}: {err}") from err
    if progress is not None:
        progress("write")
    container = _derived_container(run)
    used = str(info["algorithm"])
    key = f"{uid}-{used}"
    geo = info["geometry"]
    md = {
        "raw_uid": uid,
        "plan_name": start.get("plan_name"),
        "algorithm": used,
        "drift_corrected": bool(info["drift_corrected"]),
        "slices": [int(i) for i in info["slices"]],
        "axes": ["z", "y", "x"],
        "units": "1/mm",
        "voxel_size_um": geo["voxel_mm"] * 1e3,
        "center_col": geo["center_col"],
        "geometry": {k: v for k, v in geo.items() if k != "detector_shape"},
        "drift_ptp_px": list(info.get("drift_ptp_px", (0.0, 0.0))),
        "drift_method": info.get("drift_method"),
        "tilt_deg": geo.get("tilt_deg", 0.0),
        "counting": bool(info.get("counting", False)),
        "specimen": start.get("specimen"),
    }
    if "counts_mean" in info:
        md["counts_mean"] = float(info["counts_mean"])
    if "fbp_method" in info:
        md["fbp_method"] = str(info["fbp_method"])
    n = 1
    while key in container:  # an earlier reconstruction of the same run is kept
        n += 1
        key = f"{uid}-{used}-{n}"
    node = container.write_array(np.ascontiguousarray(volume), key=key, metadata=md)
    previews = write_previews(volume, out_dir, key)
    return {
        "raw_uid": uid,
        "key": key,
        "uri": _clean_uri(getattr(node, "uri", None)),
        "shape": tuple(volume.shape),
        "previews": previews,
        "info": info,
    }


class StageBar:
    """``nanoct recon``'s progress line on stderr: the stage, and during the reconstruction
    the slices done with the time left at the pace so far."""

    STAGES = ("read", "normalise", "wire", "reference", "shift", "reconstruct", "write")

    def __init__(self) -> None:
        self._stage = ""
        self._t0 = time.monotonic()

    def _print(self, text: str) -> None:
        k = self.STAGES.index(self._stage) + 1 if self._stage in self.STAGES else 0
        bar = "#" * k + "." * (len(self.STAGES) - k)
        print(f"\r[{bar}] {text:<60}", end="", file=sys.stderr, flush=True)

    def stage(self, stage: str) -> None:
        self._stage, self._t0 = stage, time.monotonic()
        self._print(stage)

    def done(self) -> None:
        """End the line."""
        print(file=sys.stderr, flush=True)

    def slices(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._t0
        left = elapsed / done * (total - done) if done else float("nan")
        eta = "?" if left != left else f"{int(left) // 60}:{int(left) % 60:02d} left"
        pct = 100 * done // max(total, 1)
        self._print(f"{self._stage} {pct:3d} % ({done}/{total} slices, {eta})")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nanoct recon",
        description="Reconstruct a CT run (ct_scan, nano_ct_scan, laminography_scan) from "
        "Tiled; write the volume back and PNGs.",
    )
    p.add_argument("run", help="uid of the CT run")
    p.add_argument("--slices", help="volume slices: k, a:b or i,j,k (default all)")
    p.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default="auto",
        help="auto (default): FDK, laminographic FBP for a tilted axis, Poisson-aware "
        "maximum likelihood for photon counts below 20 per pixel",
    )
    p.add_argument(
        "--fbp-method",
        choices=("direct", "fourier"),
        default="direct",
        help="backprojection of --algorithm fbp: direct (default) or fourier (Fourier "
        "gridding, several times faster for large slices)",
    )
    p.add_argument("--no-drift-correction", action="store_true")
    p.add_argument(
        "--uri",
        default="http://127.0.0.1:8010/api/v1",
        help="Tiled server (default: nanoct serve's)",
    )
    p.add_argument("--api-key", default=None)
    p.add_argument(
        "--catalog",
        default="",
        help="container of the runs: '' = the server root (nanoct serve), "
        "'raw' for the demo's embedded server",
    )
    p.add_argument("--out-dir", default=".", help="where PNG previews go")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``nanoct recon RUN [--slices k|a:b|i,j,k] [--algorithm auto|fdk|fbp|sirt|poisson-ml]
    [--fbp-method direct|fourier] [--no-drift-correction]
    [--uri ...] [--api-key ...]``; returns the exit status (0 done, 2 bad input)."""
    args = _build_parser().parse_args(argv)
    try:
        from tiled.client import from_uri

        slices = parse_slices(args.slices)
        node = from_uri(args.uri, api_key=args.api_key or os.environ.get("TILED_API_KEY"))
        runs = node[args.catalog] if args.catalog else node
        try:
            run = runs[args.run]
        except KeyError:
            raise RunError(f"no run {args.run!r} in {args.uri} [{args.catalog!r}]") from None
        bar = StageBar()
        res = reconstruct_run(
            run,
            out_dir=args.out_dir,
            slices=slices,
            algorithm=args.algorithm,
            drift_correction=not args.no_drift_correction,
            progress=bar.stage,
            slice_progress=bar.slices,
            fbp_method=args.fbp_method,
        )
    except (RunError, ValueError) as err:
        print(f"\nnanoct recon: error: {err}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(f"volume {res['shape']} -> {res['uri'] or res['key']}")
    for path in res["previews"].values():
        print(f"preview {path}")
    return 0
