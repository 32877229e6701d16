"""The scripted-plan examples under examples/ run as they are documented."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from nanoct.server import find_running_server, stop_server

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_scripted_ct_example_runs_reads_back_and_reconstructs(tmp_path):
    data = tmp_path / "data"
    try:
        res = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "scripted_ct.py"),
                "--data-dir",
                str(data),
                "--angles",
                "24",
                "--slices",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        with contextlib.suppress(Exception):
            stop_server(data, timeout_s=10)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert any(ln.startswith("run uid: ") and "(24 projections)" in ln for ln in lines)
    volume = next(ln for ln in lines if ln.startswith("volume: "))
    assert "/processed/" in volume and "shape (2, " in volume
    pngs = [Path(ln.split("png: ", 1)[1]) for ln in lines if ln.startswith("png: ")]
    assert len(pngs) == 3
    for p in pngs:
        with Image.open(p) as im:
            assert min(im.size) > 1
    # the script stopped the server it started
    assert find_running_server(data) is None
