"""FrameSource: events to frames through StreamResource/StreamDatum, read from SWMR HDF5 files,
waiting for a frame that is not there yet."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nanoct.callbacks import FrameRef, FrameSource, FrameUnavailableError
from nanoct.devices.hdf5 import HDF5FrameWriter


def _documents(writer: HDF5FrameWriter, descriptor: str, seq_start: int):
    """The writer's asset documents, with what the RunEngine fills in."""
    out = []
    for name, doc in writer.collect_asset_docs():
        if name == "stream_datum":
            n = doc["indices"]["stop"] - doc["indices"]["start"]
            doc["descriptor"] = descriptor
            doc["seq_nums"] = {"start": seq_start, "stop": seq_start + 1}
            assert n >= 1
        out.append((name, doc))
    return out


def test_events_map_to_their_frames(tmp_path):
    w = HDF5FrameWriter(tmp_path, data_key="det_image")
    w.open((4, 5), np.float32)
    src = FrameSource(timeout_s=1.0)
    frames = [np.full((4, 5), k, np.float32) for k in range(4)]
    w.append(frames[0])
    docs = _documents(w, "d1", 1)
    # frame 1 was taken but its event dropped; frame 2 belongs to event 2
    w.append(frames[1])
    w.append(frames[2])
    docs += _documents(w, "d1", 2)
    for name, doc in docs:
        getattr(src, name)(doc)
    r1, r2 = src.ref("d1", 1, "det_image"), src.ref("d1", 2, "det_image")
    assert r1 == FrameRef(str(w.path), "/data", 0) and r2.index == 2
    np.testing.assert_array_equal(src.read(r2), frames[2])
    assert src.ref("d1", 3, "det_image") is None
    assert src.ref("other", 1, "det_image") is None
    # the file seen elsewhere: a path prefix is replaced
    moved = FrameSource(path_map={str(tmp_path): "/elsewhere"})
    for name, doc in docs:
        getattr(moved, name)(doc)
    assert moved.ref("d1", 2, "det_image").path == "/elsewhere" + str(w.path)[len(str(tmp_path)) :]
    w.close()
    src.close()


def test_a_frame_not_yet_written_is_waited_for(tmp_path):
    w = HDF5FrameWriter(tmp_path, data_key="det_image")
    w.open((8, 8), np.float32)
    w.append(np.zeros((8, 8), np.float32))
    src = FrameSource(timeout_s=10.0, poll_s=0.01)
    ref = FrameRef(str(w.path), "/data", 1)
    assert src.read(FrameRef(str(w.path), "/data", 0)).shape == (8, 8)  # file open already

    def late() -> None:
        time.sleep(0.3)
        w.append(np.ones((8, 8), np.float32))

    t = threading.Thread(target=late)
    t.start()
    frame = src.read(ref)  # refreshes the SWMR dataset until frame 1 is there
    t.join()
    np.testing.assert_array_equal(frame, 1.0)
    assert src.n_waits == 1
    src.close()
    w.close()


def test_a_missing_frame_times_out(tmp_path):
    src = FrameSource(timeout_s=0.1, poll_s=0.02)
    with pytest.raises(FrameUnavailableError, match=r"is not there after 0\.1 s"):
        src.read(FrameRef(str(tmp_path / "nope.h5"), "/data", 0))
    with pytest.raises(ValueError, match="timeout_s=0"):
        FrameSource(timeout_s=0)
