import pytest
from bluesky import RunEngine

from nanoct.callbacks.ct_progress import ct_progress
from nanoct.devices import sub_um_ct
from nanoct.plans import ct_scan


def test_progress_counts_and_estimates_the_time_left(tmp_path):
    ct = sub_um_ct(seed=0, binning=4, data_dir=tmp_path)
    docs = []
    RunEngine({})(
        ct_scan(
            ct,
            num_angles=20,
            flat_every=5,
            exposure_s=1.0,
            frames_per_projection=1,
            num_darks=1,
            num_flats=1,
        ),
        lambda n, d: docs.append((n, d)),
    )
    start = docs[0][1]
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    prim = [d for n, d in docs if n == "event" and names[d["descriptor"]] == "primary"]
    first = ct_progress(start, None)
    assert (first.done, first.total) == (0, 20)
    half = ct_progress(start, prim[9])
    assert (half.done, half.fraction) == (10, 0.5)
    # the estimate of the instrument time left matches what the rest of the scan really took
    stop_twin = ct.twin.clock.now()
    actual_left = stop_twin - prim[9]["data"]["flatpanel_twin_time"]
    assert half.eta_twin_s == pytest.approx(actual_left, rel=0.15)
    assert (
        ct_progress(start, prim[-1]).eta_twin_s
        < 2 * start["expected_duration_s"]["per_flat_block_s"]
    )
    assert "10/20 projections (50 %)" in half.line()


def test_line_before_the_first_event_says_the_wall_time_is_not_known_yet():
    from nanoct.callbacks.ct_progress import CTProgress

    line = CTProgress(0, 10, 3600.0, float("nan")).line()
    assert "0/10 projections" in line and "1:00:00 instrument time left" in line
    assert "?:??:?? wall time left" in line
