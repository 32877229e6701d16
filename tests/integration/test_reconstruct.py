"""`nanoct recon` end to end: a ct_scan run written by TiledWriter, reconstructed from Tiled, the
volume written back beside it and PNG previews."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from scipy.ndimage import gaussian_filter

from nanoct.cli import main as nanoct_main
from nanoct.devices import Instabilities, sub_um_ct
from nanoct.plans import ct_scan
from nanoct.reconstruct import DERIVED_KEY, RunError, main, reconstruct_run

pytestmark = pytest.mark.integration

SCAN = {
    "num_angles": 60,
    "exposure_s": 1.0,
    "frames_per_projection": 1,
    "flat_every": 30,
    "num_darks": 2,
    "num_flats": 2,
}
SLICES = slice(240, 272)


def _run(tiled_server, runs_container, instabilities, sub):
    ct = sub_um_ct(
        seed=7, binning=4, data_dir=tiled_server.data_dir / sub, instabilities=instabilities
    )
    RE = RunEngine({})
    RE.subscribe(TiledWriter(runs_container))
    uids = RE(ct_scan(ct, **SCAN))
    return runs_container[uids[0]]


@pytest.fixture(scope="module")
def runs(tiled_server, runs_container):
    drift = _run(tiled_server, runs_container, Instabilities.only("spot_drift", "noise"), "r1")
    still = _run(tiled_server, runs_container, Instabilities.none(), "r0")
    return drift, still


def test_recon_writes_the_volume_beside_the_run(runs, tiled_server, tmp_path):
    run, still = runs
    res = reconstruct_run(run, out_dir=tmp_path, slices=SLICES)
    uid = run.metadata["start"]["uid"]
    derived = tiled_server.client[DERIVED_KEY]
    node = derived[res["key"]]
    assert node.shape == (32, 512, 512) == res["shape"]
    assert node.metadata["raw_uid"] == uid
    assert node.metadata["drift_corrected"] is True
    vol = node.read()
    # the chip is there: correlates with a drift-free, noise-free reconstruction
    ref = reconstruct_run(still, out_dir=tmp_path, slices=SLICES, drift_correction=False)
    ref_vol = derived[ref["key"]].read()
    # (smoothed over 2 voxels: 60 one-second projections are noisy; centre of the field)
    a, b = (gaussian_filter(v, 2.0)[:, 100:412, 100:412].ravel() for v in (vol, ref_vol))
    r = np.corrcoef(a, b)[0, 1]
    print("correlation with the drift-free reconstruction", r)
    assert r > 0.8
    assert vol[:, 200:312, 200:312].mean() > 0.5 * ref_vol[:, 200:312, 200:312].mean()
    for path in res["previews"].values():
        assert path.exists() and path.stat().st_size > 1000


def test_cli_main(runs, tiled_server, tmp_path, capsys):
    run, _ = runs
    uid = run.metadata["start"]["uid"]
    argv = ["recon", uid, "--slices", "250:254", "--algorithm", "fbp", "--no-drift-correction",
            "--uri", tiled_server.uri, "--api-key", tiled_server.api_key, "--catalog", "raw",
            "--out-dir", str(tmp_path)]  # fmt: skip
    assert nanoct_main(argv) == 0  # through the nanoct command line
    captured = capsys.readouterr()
    out = captured.out
    assert "(4, 512, 512)" in out and out.count(".png") == 3
    # the progress line: the stages, and the slices done with the time left
    assert "reconstruct 100 % (4/4 slices" in captured.err and "[#######]" in captured.err
    # the same slices with the Fourier-gridding backprojection: same image, method recorded
    assert nanoct_main([*argv, "--fbp-method", "fourier"]) == 0
    keys = [line.split("/")[-1] for line in capsys.readouterr().out.splitlines()
            if line.startswith("volume")] + [line.split("/")[-1] for line in out.splitlines()
                                             if line.startswith("volume")]  # fmt: skip
    derived = tiled_server.client[DERIVED_KEY]
    fourier, direct = (derived[k] for k in keys)
    assert fourier.metadata["fbp_method"] == "fourier"
    assert direct.metadata["fbp_method"] == "direct"
    a, b = fourier.read(), direct.read()
    inner = (slice(None), slice(64, 448), slice(64, 448))
    assert np.sqrt(np.mean((a[inner] - b[inner]) ** 2)) < 0.05 * np.ptp(b[inner])


def test_unknown_run(tiled_server, runs_container, capsys):
    argv = ["no-such-uid", "--uri", tiled_server.uri, "--api-key", tiled_server.api_key,
            "--catalog", "raw"]  # fmt: skip
    assert main(argv) == 2
    assert "no run 'no-such-uid'" in capsys.readouterr().err


def test_run_without_flats_and_bad_geometry(tiled_server, runs_container, tmp_path):
    class Fake:
        def __init__(self, md, streams):
            self.metadata = {"start": md}
            self._s = streams

        def __getitem__(self, k):
            return self._s[k]

    md = {"uid": "abc", "plan_name": "ct_scan"}
    with pytest.raises(RunError, match="no flats"):
        reconstruct_run(Fake(md, {"primary": {}}), out_dir=tmp_path)
    with pytest.raises(RunError, match="not a ct_scan"):
        reconstruct_run(Fake({"uid": "x", "plan_name": "count"}, {}), out_dir=tmp_path)


def test_inconsistent_geometry(runs, tmp_path):
    run, _ = runs

    start = dict(run.metadata["start"])
    start["geometry"] = {**start["geometry"], "magnification": 10.0}

    class Patched:
        metadata = {"start": start}  # noqa: RUF012

        def __getitem__(self, k):
            return run[k]

    with pytest.raises(RunError, match=r"inconsistent geometry: magnification=10\.0"):
        reconstruct_run(Patched(), out_dir=tmp_path, slices=SLICES)
