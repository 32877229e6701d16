"""LiveReconstruction of the microscope's photon-counting nano-CT (nano_ct_scan on the
Medipix2), written by TiledWriter into a real Tiled server: a preview during the scan, and at
the stop the slices of the offline counting pipeline (``nanoct recon --algorithm fdk``)."""

from __future__ import annotations

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter

from nanoct.callbacks import LiveReconstruction, safe
from nanoct.callbacks.live_recon import DERIVED_KEY
from nanoct.devices import MicroscopeInstabilities, xray_microscope
from nanoct.plans import nano_ct_scan
from nanoct.reconstruct import reconstruct_run

pytestmark = pytest.mark.integration

SCAN = {"num_angles": 24, "exposure_s": 60.0, "flat_every": 8, "num_flats": 2, "num_darks": 2}
SLICES = [128]


@pytest.fixture(scope="module")
def scanned(tiled_server, runs_container, tmp_path_factory):
    mic = xray_microscope(
        seed=11,
        specimen="fibres",
        data_dir=tiled_server.data_dir / "live-nano-ct",
        instabilities=MicroscopeInstabilities.only("noise", "spot_drift"),
        oversample=1,  # small and quick: pixel centres and 4 energy groups
        n_energy_bins=4,
    )
    live = LiveReconstruction(SLICES, tiled=runs_container, background=False)
    seen: dict = {}

    def watch(name, doc):  # subscribed after the live callback: sees what it has done
        if name == "event" and doc["data"].get("projection_index") == SCAN["num_angles"] - 1:
            seen["preview"], seen["progress"] = live.current(), live.progress

    RE = RunEngine({})
    RE.subscribe(TiledWriter(runs_container))
    RE.subscribe(safe(live))
    RE.subscribe(watch)
    (uid,) = RE(nano_ct_scan(mic, **SCAN))
    yield uid, live, seen
    live.close()


def test_counting_run_is_previewed_then_settled_by_the_offline_pipeline(
    scanned, runs_container, tmp_path
):
    uid, live, seen = scanned
    assert live.errors == []
    # during the scan: a preview of every projection so far
    assert seen["progress"] == (SCAN["num_angles"], SCAN["num_angles"])
    preview = seen["preview"]
    assert preview.shape == (1, 256, 256) and np.isfinite(preview).all()
    # at the stop: the offline counting pipeline's FDK of the same slice, drift-corrected on
    # the run's reference projections
    res = live.result
    assert res["uid"] == uid and list(res["indices"]) == SLICES
    info = res["info"]
    assert info["counting"] and info["drift_corrected"] and info["drift_method"] == "reference"
    assert info["reread"] == info["n_projections"] == SCAN["num_angles"]
    offline = reconstruct_run(runs_container[uid], out_dir=tmp_path, slices=SLICES, algorithm="fdk")
    root = _derived(runs_container)
    vol = root[offline["key"]].read()
    err = np.abs(res["slices"] - vol).max() / np.ptp(vol)
    print("max |live - offline| / range:", err)
    assert err < 1e-5
    # the preview already shows the fibres: it correlates with the settled slice
    r = np.corrcoef(preview.ravel(), res["slices"].ravel())[0, 1]
    print("preview vs settled correlation:", r)
    assert r > 0.5
    node = root[res["key"]]
    assert node.metadata["counting"] is True and node.metadata["live"] is True
    assert node.metadata["raw_uid"] == uid


def _derived(runs_container):
    from tiled.client import from_context

    return from_context(runs_container.context)[DERIVED_KEY]
