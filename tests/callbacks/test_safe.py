"""Live callbacks never stop acquisition: a raising callback (wrapped in ``safe``) leaves the
scan running and the run complete in Tiled; the data writer itself is never wrapped."""

from __future__ import annotations

import logging

import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from live_helpers import SCAN, small_ct

from nanoct.callbacks import LiveReconstruction, SafeCallback, safe
from nanoct.plans import ct_scan


class Exploding:
    """Raises on every event (and on the start document)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, name, doc):
        self.calls += 1
        if name in ("start", "event"):
            raise RuntimeError(f"boom on {name}")


@pytest.mark.integration
def test_raising_callbacks_do_not_abort_the_scan(tiled_server, runs_container, caplog):
    ct = small_ct(tiled_server.data_dir / "safe")
    boom = safe(Exploding(), max_tracebacks=2)
    # a live reconstruction that cannot find its frames (wrong mount point): it fails on
    # every frame, in its own thread, and says so
    lost = LiveReconstruction(path_map={str(tiled_server.data_dir): "/nonexistent"},
                              frame_timeout_s=0.05)  # fmt: skip
    RE = RunEngine({})
    RE.subscribe(TiledWriter(runs_container))  # not wrapped: data must be stored or stop
    RE.subscribe(boom)
    RE.subscribe(safe(lost))
    with caplog.at_level(logging.ERROR):
        (uid,) = RE(ct_scan(ct, **SCAN))
    assert lost.wait(60)
    run = runs_container[uid]
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run["primary"]["flatpanel_image"].shape == (SCAN["num_angles"], 128, 128)
    n_events = SCAN["num_angles"] + 3 * SCAN["num_flats"] + 2 * SCAN["num_darks"]
    assert len(boom.errors) == n_events + 1  # every event and the start
    assert boom.errors[0] == ("start", "RuntimeError: boom on start")
    assert boom.calls > n_events  # it kept being called
    tracebacks = [r for r in caplog.records if r.exc_info and "Exploding" in r.getMessage()]
    assert len(tracebacks) == 2  # then one line each
    assert lost.errors and "is not there after 0.05 s" in lost.errors[0]
    lost.close()


@pytest.mark.integration
def test_the_data_writer_is_never_wrapped(runs_container):
    with pytest.raises(ValueError, match="TiledWriter stores the data"):
        safe(TiledWriter(runs_container))


def test_safe_delegates_and_can_be_made_to_raise(monkeypatch):
    inner = Exploding()
    wrapped = SafeCallback(inner)
    assert wrapped.calls == 0  # attributes come from the wrapped callback
    assert safe(wrapped).callback is inner  # no double wrapping
    assert wrapped("event", {}) is None
    monkeypatch.setenv("BLUESKY_DEBUG_CALLBACKS", "1")
    with pytest.raises(RuntimeError, match="boom on event"):
        wrapped("event", {})
    with pytest.raises(ValueError, match="is not callable"):
        safe(42)
