"""A first look at the twin: a rotation scan of the chip into an embedded Tiled server.

This is the foundation's end-to-end job: real RunEngine, real HDF5 files, a real Tiled server
on loopback, read back with the stock tiled client. The full CT (darks, interleaved flats,
reference wire, reconstruction) is built on it by the CT-plan and reconstruction work.
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


def run_demo(
    workdir: Path,
    *,
    angles: int = 36,
    binning: int = 4,
    seed: int = 0,
    specimen: str = "chip",
    keep_server: bool = False,
) -> DemoResult:
    """Scan ``angles`` projections over 180 deg into Tiled and write PNGs under ``workdir``."""
    from bluesky import RunEngine
    from bluesky import plans as bp
    from bluesky_tiled_plugins import TiledWriter
    from tiled.client import from_uri
    from tiled.server import SimpleTiledServer
    from tiled.structures.core import Spec

    from nanoct.devices import sub_um_ct

    if angles < 2:
        raise ValueError(f"angles={angles!r} must be >= 2")
    workdir = Path(workdir).expanduser().resolve()
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ct = sub_um_ct(seed=seed, specimen=specimen, binning=binning, data_dir=data_dir)
    server = SimpleTiledServer(directory=workdir / "tiled", readable_storage=[data_dir])
    try:
        client = from_uri(server.uri)
        if "raw" not in client:
            client.create_container("raw", specs=[Spec("CatalogOfBlueskyRuns", version="3.0")])
        runs = client["raw"]
        RE = RunEngine({})
        RE.subscribe(TiledWriter(runs))
        (uid,) = RE(
            bp.scan(
                [ct.flatpanel, ct.tube],
                ct.rotation,
                0.0,
                180.0,
                angles,
                md={"specimen": specimen, "seed": seed},
            )
        )
        images = runs[uid]["primary"]["flatpanel_image"].read()
        pngs = (
            _save_png(images[0], workdir / "projection_000.png"),
            _save_png(images[:, images.shape[1] // 2, :], workdir / "sinogram_middle_row.png"),
        )
        return DemoResult(uid, server.uri.split("?")[0], tuple(images.shape), pngs, data_dir)
    finally:
        if not keep_server:
            server.close()
