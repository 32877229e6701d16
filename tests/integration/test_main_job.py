"""The README's main job (`nanoct demo`), scaled down: PNGs, the run and its volume in Tiled."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

pytestmark = pytest.mark.integration


def test_main_job_leaves_pngs_and_the_run_and_volume_in_tiled(tmp_path):
    work = tmp_path / "demo"
    res = subprocess.run(
        [sys.executable, "-m", "nanoct.cli", "demo", "--workdir", str(work), "--angles", "16"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout.splitlines()
    uid = next(ln for ln in out if ln.startswith("run uid: ")).split(": ", 1)[1]
    pngs = {ln.split("png: ", 1)[1] for ln in out if ln.startswith("png: ")}
    names = {p.rsplit("/", 1)[-1] for p in pngs}
    # live slice, the monitors' pictures, the offline slices, the projection and the drift
    for name in (
        f"{uid}-live_z256.png",
        f"{uid}-wire.png",
        f"{uid}-flux.png",
        f"{uid}-flat-difference.png",
        f"{uid}-fdk_z.png",
        "projection_000.png",
        "wire_drift.png",
    ):
        assert name in names, (name, sorted(names))
    for p in pngs:
        with Image.open(p) as im:
            assert min(im.size) >= 16  # the x and y previews are 16 slices tall
    assert "ct_scan success: 16/16" in res.stdout + res.stderr  # the progress bar's last line

    # The embedded server stopped with the demo; its catalog stays: serve it again and read
    # the run back. In a subprocess: an in-process SimpleTiledServer would replace tiled's
    # process-wide API key and lock this session's other tests out of their server.
    check = subprocess.run(
        [sys.executable, "-c", READBACK, str(work), uid],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.split() == ["(16,", "512,", "512)", "True", "16", "True", "True"]


READBACK = """
import sys
from pathlib import Path
from tiled.client import from_uri
from tiled.server import SimpleTiledServer

work, uid = Path(sys.argv[1]), sys.argv[2]
server = SimpleTiledServer(directory=work / "tiled", readable_storage=[work / "data"])
try:
    client = from_uri(server.uri)
    run = client["raw"][uid]
    images = run["primary"]["flatpanel_image"]
    print(images.shape, bool(images[3].max() > 0))  # frames readable from HDF5
    volume = client["processed"][f"{uid}-fdk"]
    print(volume.shape[0], volume.metadata["raw_uid"] == uid)
    print(client["processed"][f"{uid}-live"].metadata["raw_uid"] == uid)
finally:
    server.close()
"""
