"""The main job: a simulated sub-um CT of the silicon chip, end to end, on the embedded default.

A real RunEngine runs ``ct_scan`` on the twin (darks, interleaved flat blocks, projections with
the reference wire), frames go to HDF5, the run to a Tiled server on loopback started here; the
run is read back through the tiled client, reconstructed (interpolated flats, wire drift
correction, cone-beam FDK), the volume written back into Tiled beside the run, and PNGs of the
central slices and the wire drift are left in the work directory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    uid: str
    tiled_uri: str
    images_shape: tuple[int, ...]
    pngs: tuple[Path, ...]
    data_dir: Path


def _save_png(image: np.ndarray, path: Path) -> Path:
    from PIL import Image

    lo, hi = np.percentile(image, [0.5, 99.5])
    scaled = np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)
    Image.fromarray((scaled * 255).astype(np.uint8)).save(path)
    return path


def _save_drift_png(info: dict, path: Path) -> Path | None:
    """Wire-measured spot drift against projection number, drawn without matplotlib."""
    from PIL import Image, ImageDraw

    shift = info.get("spot_shift_um")
    if shift is None or np.asarray(shift).shape[-1] < 2:
        return None
    sx, sy = (np.asarray(v, dtype=float) for v in shift)
    w, h, pad = 640, 320, 30
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    lo = float(min(sx.min(), sy.min()))
    hi = float(max(sx.max(), sy.max()))
    span = max(hi - lo, 1e-6)
    for series, colour in ((sx, (200, 30, 30)), (sy, (30, 30, 200))):
        pts = [
            (pad + i * (w - 2 * pad) / (series.size - 1), h - pad - (v - lo) / span * (h - 2 * pad))
            for i, v in enumerate(series)
        ]
        draw.line(pts, fill=colour, width=2)
    draw.text(
        (pad, 5), f"spot drift from the wire (um): x red, y blue, {lo:.2f}..{hi:.2f}", fill="black"
    )
    img.save(path)
    return path


def run_demo(
    workdir: Path,
    *,
    angles: int = 120,
    binning: int = 4,
    seed: int = 0,
    specimen: str = "chip",
    slices: int = 16,
    live: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Run the simulated CT into an embedded Tiled server, with live reconstruction of the
    central slice and the monitors while it runs, then reconstruct ``slices`` central slices
    offline into Tiled; PNGs go under ``workdir``."""
    from bluesky import RunEngine
    from bluesky_tiled_plugins import TiledWriter
    from tiled.client import from_uri
    from tiled.server import SimpleTiledServer
    from tiled.structures.core import Spec

    from nanoct.callbacks import live_callbacks
    from nanoct.devices import sub_um_ct
    from nanoct.plans import ct_scan, install_flux_suspenders
    from nanoct.reconstruct import reconstruct_run

    if isinstance(angles, bool) or not isinstance(angles, int) or angles < 2:
        raise ValueError(f"angles={angles!r} must be an integer >= 2")
    if isinstance(slices, bool) or not isinstance(slices, int) or slices < 1:
        raise ValueError(f"slices={slices!r} must be an integer >= 1")
    workdir = Path(workdir).expanduser().resolve()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ct = sub_um_ct(seed=seed, specimen=specimen, binning=binning, data_dir=data_dir)
    server = SimpleTiledServer(directory=workdir / "tiled", readable_storage=[data_dir])
    callbacks = None
    try:
        client = from_uri(server.uri)
        if "raw" not in client:
            client.create_container("raw", specs=[Spec("CatalogOfBlueskyRuns", version="3.0")])
        runs = client["raw"]
        RE = RunEngine({})
        RE.subscribe(TiledWriter(runs))  # the data writer: never wrapped
        if live or progress:
            callbacks = live_callbacks(
                tiled=runs if live else None,
                out_dir=workdir if live else None,
                recon=live,
                monitors=live,
                pictures=live,
                progress=progress,
            )
            callbacks.subscribe(RE)
        install_flux_suspenders(RE, ct, num_flats=4)
        (uid,) = RE(
            ct_scan(
                ct,
                num_angles=angles,
                exposure_s=5.0,
                frames_per_projection=1,
                flat_every=max(angles // 4, 1),
                num_darks=4,
                num_flats=4,
            )
        )
        pngs: list[Path] = []
        if callbacks is not None and callbacks.recon is not None:
            callbacks.recon.wait(timeout_s=600)
            callbacks.close()  # the final live slices, their PNGs and the monitors' pictures
            result = callbacks.recon.result or {}
            pngs += [Path(p) for p in (result.get("previews") or {}).values()]
        if callbacks is not None and callbacks.pictures is not None:
            pngs += [Path(p) for p in callbacks.pictures.written.values()]
        for w in callbacks.warnings if callbacks is not None else []:
            logger.warning("monitor: %s", w)
        run = runs[uid]
        images = run["primary"]["flatpanel_image"]
        rows = images.shape[1]
        res = reconstruct_run(
            run, out_dir=workdir, slices=slice(rows // 2 - slices // 2, rows // 2 + slices // 2)
        )
        previews = res.get("previews", [])
        pngs += [Path(p) for p in (previews.values() if isinstance(previews, dict) else previews)]
        pngs.append(_save_png(images[0], workdir / "projection_000.png"))
        drift = _save_drift_png(res.get("info", {}), workdir / "wire_drift.png")
        if drift is not None:
            pngs.append(drift)
        return DemoResult(
            uid, server.uri.split("?")[0], tuple(images.shape), tuple(dict.fromkeys(pngs)), data_dir
        )
    finally:
        if callbacks is not None:
            callbacks.close()
        server.close()
