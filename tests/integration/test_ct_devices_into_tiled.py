"""The CT devices through a real RunEngine into a real Tiled server, read back with the stock
tiled client."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plans as bp
from bluesky_tiled_plugins import TiledWriter

from nanoct.devices import sub_um_ct

pytestmark = pytest.mark.integration


def _frames_in_files(data_dir, n_expected_files):
    files = sorted(data_dir.rglob("flatpanel_image_*.h5"), key=lambda p: p.stat().st_mtime)
    assert len(files) >= n_expected_files
    return files


@pytest.fixture
def ct(tiled_server, tmp_path_factory):
    data = tiled_server.data_dir / tmp_path_factory.mktemp("ct").name
    return sub_um_ct(seed=11, binning=4, data_dir=data)


def _run(ct, runs_container, plan):
    RE = RunEngine({})
    RE.subscribe(TiledWriter(runs_container))
    (uid,) = RE(plan)
    return runs_container[uid]


def test_count_with_the_flat_panel_reads_back_from_tiled(ct, runs_container):
    run = _run(ct, runs_container, bp.count([ct.flatpanel, ct.tube], num=3))
    stream = run["primary"]
    images = stream["flatpanel_image"].read()
    assert images.shape == (3, 512, 512)
    assert images.dtype == np.float32
    (path,) = sorted(ct.flatpanel.data_dir.rglob("*.h5"))
    with h5py.File(path, "r", swmr=True) as f:
        np.testing.assert_array_equal(images, f["data"][:])
        np.testing.assert_array_equal(f["image_key"][:], [0, 0, 0])
    # physical, not constant: 12-bit range, open beam well above the offset, the chip darker
    assert 100 < images.min() and images.max() <= 4095
    assert images[0].std() > 50
    assert not np.array_equal(images[0], images[1])  # fresh noise every frame
    table = stream.read()
    assert list(table["tube_voltage"]) == [90.0, 90.0, 90.0]
    assert np.all(np.diff(np.asarray(table["flatpanel_twin_time"])) > 0)
    assert run.metadata["start"]["plan_name"] == "count"
    assert run.metadata["stop"]["exit_status"] == "success"


def test_rotation_scan_reads_back_angles_and_frames(ct, runs_container):
    run = _run(ct, runs_container, bp.scan([ct.flatpanel], ct.rotation, 0.0, 180.0, 4))
    stream = run["primary"]
    images = stream["flatpanel_image"].read()
    assert images.shape == (4, 512, 512)
    table = stream.read()
    np.testing.assert_allclose(np.asarray(table["rotation"]), [0, 60, 120, 180])
    np.testing.assert_allclose(np.asarray(table["flatpanel_rotation_angle"]), [0, 60, 120, 180])
    # the chip is a slab: seen edge-on (90 deg from face-on) its shadow is narrower
    prof = [(im < np.median(im) * 0.97).sum() for im in images]
    assert prof[0] != prof[1]
