"""The live callbacks together in the acquisition process: progress (bar and line), pictures at
the end (slices, drift, flux, flat difference), no live figure and no error without a display."""

from __future__ import annotations

import io

import matplotlib
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from live_helpers import SCAN, small_ct
from ophyd import Signal

from nanoct.callbacks import LiveReconstruction, ProgressBar, live_callbacks
from nanoct.callbacks.pictures import LivePictures, has_display
from nanoct.plans import ct_scan

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def session_run(tmp_path_factory):
    matplotlib.use("Agg")  # no display, as on a headless acquisition computer
    out = tmp_path_factory.mktemp("suite")
    live = live_callbacks(slices=[64], out_dir=out / "png", progress_mode="line")
    live.progress.file = io.StringIO()
    bar_out = io.StringIO()
    RE = RunEngine({})
    live.subscribe(RE)
    RE.subscribe(ProgressBar(mode="bar", file=bar_out))
    (uid,) = RE(ct_scan(small_ct(out / "frames"), **SCAN))
    assert live.recon.wait(120)
    yield uid, live, bar_out.getvalue(), out / "png"
    live.close()


def test_callbacks_are_wrapped_and_ordered(session_run):
    _, live, _, _ = session_run
    order = [type(s.callback).__name__ for s in live.subscribers]
    assert order == ["LiveReconstruction", "WireDriftMonitor", "FluxMonitor", "ProgressBar",
                     "LivePictures"]  # fmt: skip
    assert all(s.errors == [] for s in live.subscribers)
    assert live.warnings == []


def test_progress_lines_and_bar(session_run):
    _, live, bar, _ = session_run
    lines = live.progress.lines
    n = SCAN["num_angles"]
    assert lines[0].startswith(f"0/{n} (0 %), 0:00:")  # instrument time left from the plan
    assert "instrument time left" in lines[0] and "~? wall time left" in lines[0]
    assert lines[-2].startswith(f"{n}/{n} (100 %)")
    assert lines[-1].startswith(f"ct_scan success: {n}/{n} in ")
    assert live.progress.latest.done == n
    assert f"{n}/{n}" in bar and "instrument" in bar  # tqdm's bar with the time left


def test_pictures_at_the_end(session_run):
    uid, live, _, png = session_run
    written = live.pictures.written
    assert {"wire", "flux", "flat_difference", "slice_z64"} <= set(written)
    for path in written.values():
        assert path.parent == png and path.read_bytes()[:8] == PNG
    assert written["slice_z64"].name == f"{uid}-slice_z64.png"
    # on demand, elsewhere
    snap = live.pictures.snapshot(png / "now", stem="now")
    assert set(snap) == {"wire", "flux", "flat_difference", "slice_z64"}


def test_no_live_figure_without_a_display(session_run):
    _, live, _, _ = session_run
    assert not has_display()
    assert live.pictures.show() is False  # and nothing raised
    live.pictures.refresh()  # nothing to refresh: no error either


def test_progress_of_other_plans_and_bad_arguments():
    out = io.StringIO()
    bar = ProgressBar(mode="line", file=out, min_interval_s=0)
    RE = RunEngine({})
    RE.subscribe(bar)
    RE(count([Signal(name="s", value=1.0)], num=5))
    assert bar.lines[0].startswith("0/5 (0 %)") and bar.lines[-2].startswith("5/5 (100 %)")
    assert out.getvalue().count("\n") == len(bar.lines) == 7
    with pytest.raises(ValueError, match="mode='fancy'"):
        ProgressBar(mode="fancy")
    with pytest.raises(ValueError, match="slices="):
        LiveReconstruction(slices="middle")
    with pytest.raises(ValueError, match="interval_s=0"):
        LivePictures().show(interval_s=0)
