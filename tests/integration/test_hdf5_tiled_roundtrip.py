"""Round trip: ophyd detector -> HDF5FrameWriter -> RunEngine -> TiledWriter -> Tiled -> client.

A tiny ophyd v1 detector writes deterministic frames through `HDF5FrameWriter`; the run goes
through a real `bluesky.RunEngine` into `bluesky_tiled_plugins.TiledWriter`, and the frames are
read back with the stock Tiled client at ``runs_container[uid]["primary"][<data_key>]``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from ophyd import Device
from ophyd.status import DeviceStatus

from nanoct.devices.hdf5 import HDF5FrameWriter

pytestmark = pytest.mark.integration

ROWS, COLS = 6, 7
DTYPE = np.dtype(np.uint16)


def _expected_frame(shot: int) -> np.ndarray:
    """The frame `_TinyStreamDetector` produces at its `shot`-th trigger (counting over runs)."""
    return (np.arange(ROWS * COLS).reshape(ROWS, COLS) + 1000 * shot).astype(DTYPE)


class _TinyStreamDetector(Device):
    """Minimal ophyd v1 detector streaming its frames to HDF5 through `HDF5FrameWriter`.

    The image (``<name>_image``) is external (``STREAM:``) and never in ``read()``; the NXtomo
    ``image_key`` of each frame is read as a scalar (``<name>_image_key``) and also written
    beside the frames in the HDF5 file.
    """

    def __init__(self, data_dir: Path, *, name: str, image_key: int = 0, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.image_key = image_key
        self.writer = HDF5FrameWriter(data_dir, data_key=f"{name}_image")
        self.shot = 0  # frames produced over the detector's life (makes runs distinguishable)
        self.files: list[Path] = []
        self._last_timestamp = time.time()

    def stage(self) -> list[Any]:
        self.files.append(self.writer.open((ROWS, COLS), DTYPE))
        return super().stage()

    def unstage(self) -> list[Any]:
        self.writer.close()
        return super().unstage()

    def trigger(self) -> DeviceStatus:
        self.writer.append(_expected_frame(self.shot), image_key=self.image_key)
        self.shot += 1
        self._last_timestamp = time.time()
        status = DeviceStatus(self)
        status.set_finished()
        return status

    def describe(self) -> OrderedDict[str, dict[str, Any]]:
        desc = super().describe()
        desc[f"{self.name}_image"] = self.writer.describe_entry(
            f"SIM:{self.name}", frame_shape=(ROWS, COLS), dtype=DTYPE
        )
        desc[f"{self.name}_image_key"] = {
            "source": f"SIM:{self.name}",
            "dtype": "integer",
            "dtype_numpy": np.dtype(np.int8).str,
            "shape": [],
        }
        return desc

    def read(self) -> OrderedDict[str, dict[str, Any]]:
        reading = super().read()
        reading[f"{self.name}_image_key"] = {
            "value": self.image_key,
            "timestamp": self._last_timestamp,
        }
        return reading

    def collect_asset_docs(self, index: int | None = None) -> Iterator[tuple[str, dict]]:
        yield from self.writer.collect_asset_docs(index)


@pytest.fixture
def detector(tiled_server: Any) -> Iterator[_TinyStreamDetector]:
    det = _TinyStreamDetector(tiled_server.data_dir, name="tiny")
    yield det
    det.writer.close()


def _run_engine(runs_container: Any, **writer_kwargs: Any) -> tuple[RunEngine, list]:
    RE = RunEngine({})
    RE.subscribe(TiledWriter(runs_container, **writer_kwargs))
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return RE, docs


def test_count_round_trip(runs_container: Any, detector: _TinyStreamDetector) -> None:
    RE, docs = _run_engine(runs_container)

    (uid,) = RE(bp.count([detector], num=3))

    # documents as the RunEngine emitted them
    names = [name for name, _ in docs]
    assert names.count("stream_resource") == 1
    assert names.count("stream_datum") == 3
    assert "event" in names
    datums = [doc for name, doc in docs if name == "stream_datum"]
    assert [d["indices"] for d in datums] == [{"start": i, "stop": i + 1} for i in range(3)]
    assert [d["seq_nums"] for d in datums] == [{"start": i, "stop": i + 1} for i in range(1, 4)]

    # read back through the stock client
    run = runs_container[uid]
    image = run["primary"]["tiny_image"]
    assert image.shape == (3, ROWS, COLS)
    assert image.dtype == DTYPE
    data = image.read()
    expected = np.stack([_expected_frame(i) for i in range(3)])
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(image[1], expected[1])  # partial (one-chunk) read
    np.testing.assert_array_equal(run["primary"]["tiny_image_key"].read(), [0, 0, 0])

    (source,) = image.data_sources()
    assert source.mimetype == "application/x-hdf5"
    assert [a.data_uri for a in source.assets] == [f"file://localhost{detector.files[0]}"]
    assert detector.files[0].is_relative_to(detector.writer.directory)


def test_second_run_gets_a_new_file(runs_container: Any, detector: _TinyStreamDetector) -> None:
    RE, _ = _run_engine(runs_container)

    (uid1,) = RE(bp.count([detector], num=3))
    detector.image_key = 2  # dark frames in the second run
    (uid2,) = RE(bp.count([detector], num=2))

    assert len(detector.files) == 2 and detector.files[0] != detector.files[1]
    first = runs_container[uid1]["primary"]
    second = runs_container[uid2]["primary"]
    np.testing.assert_array_equal(
        first["tiny_image"].read(), np.stack([_expected_frame(i) for i in range(3)])
    )
    np.testing.assert_array_equal(
        second["tiny_image"].read(), np.stack([_expected_frame(i) for i in range(3, 5)])
    )
    np.testing.assert_array_equal(second["tiny_image_key"].read(), [2, 2])
    (source,) = second["tiny_image"].data_sources()
    assert [a.data_uri for a in source.assets] == [f"file://localhost{detector.files[1]}"]


def test_frames_readable_from_tiled_while_file_is_open(
    runs_container: Any, detector: _TinyStreamDetector
) -> None:
    """With ``batch_size=1`` Tiled serves each frame while the detector still writes the file."""
    RE, docs = _run_engine(runs_container, batch_size=1)
    seen: list[tuple[int, ...]] = []

    def plan():
        @bpp.stage_decorator([detector])
        @bpp.run_decorator()
        def inner():
            for _ in range(2):
                yield from bps.trigger_and_read([detector])
                uid = docs[0][1]["uid"]  # the start document
                image = runs_container[uid]["primary"]["tiny_image"]
                assert detector.writer.is_open
                seen.append(image.shape)
                np.testing.assert_array_equal(image[-1], _expected_frame(detector.shot - 1))

        return (yield from inner())

    RE(plan())
    assert seen == [(1, ROWS, COLS), (2, ROWS, COLS)]
