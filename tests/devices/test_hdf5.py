"""Unit tests for nanoct.devices.hdf5.HDF5FrameWriter."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
from event_model import DocumentNames, schema_validators

from nanoct.devices.hdf5 import HDF5_MIMETYPE, HDF5FrameWriter

ROWS, COLS = 6, 8


def _frame(i: int, dtype: np.dtype | type = np.uint16) -> np.ndarray:
    """Deterministic frame number `i`."""
    return (np.arange(ROWS * COLS).reshape(ROWS, COLS) + 100 * i).astype(dtype)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[HDF5FrameWriter]:
    w = HDF5FrameWriter(tmp_path, data_key="det_image")
    yield w
    w.close()


def _read_in_subprocess(path: Path, dataset: str) -> np.ndarray:
    """Read `dataset` with a second, independent h5py reader in SWMR mode."""
    code = textwrap.dedent(
        f"""
        import sys, h5py, numpy as np
        with h5py.File({str(path)!r}, "r", swmr=True) as f:
            np.save(sys.stdout.buffer, f[{dataset!r}][()])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    return np.load(io.BytesIO(out.stdout))


def test_open_creates_dated_swmr_file(writer: HDF5FrameWriter, tmp_path: Path) -> None:
    path = writer.open((ROWS, COLS), np.uint16)
    today = datetime.now()
    assert path.parent == tmp_path.resolve() / f"{today:%Y}" / f"{today:%m}" / f"{today:%d}"
    assert re.fullmatch(r"det_image_[0-9a-f-]{36}\.h5", path.name)
    assert writer.is_open and writer.path == path
    assert writer.uri == f"file://localhost{path}"
    with h5py.File(path, "r", swmr=True) as f:
        dset = f["data"]
        assert dset.shape == (0, ROWS, COLS)
        assert dset.maxshape == (None, ROWS, COLS)
        assert dset.chunks == (1, ROWS, COLS)
        assert dset.dtype == np.uint16
        assert set(f) == {"data", "image_key", "rotation_angle_deg", "twin_time_s"}
    assert writer._file.swmr_mode


def test_frames_readable_by_second_swmr_reader_while_open(writer: HDF5FrameWriter) -> None:
    path = writer.open((ROWS, COLS), np.uint16)
    writer.append(_frame(0))
    writer.append(_frame(1))
    # an independent process sees both frames while the writer still holds the file
    expected = np.stack([_frame(0), _frame(1)])
    np.testing.assert_array_equal(_read_in_subprocess(path, "data"), expected)

    # an in-process SWMR reader follows further appends after refresh()
    with h5py.File(path, "r", swmr=True) as f:
        dset = f["data"]
        assert dset.shape[0] == 2
        writer.append(_frame(2))
        dset.refresh()
        assert dset.shape[0] == 3
        np.testing.assert_array_equal(dset[2], _frame(2))
    assert writer.is_open


def test_killed_writer_keeps_appended_frames(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        import numpy as np
        from nanoct.devices.hdf5 import HDF5FrameWriter
        w = HDF5FrameWriter({str(tmp_path)!r}, data_key="det_image")
        path = w.open((4, 5), np.float32)
        for i in range(3):
            w.append(np.full((4, 5), i, np.float32), image_key=i, twin_time_s=0.5 * i)
        print(path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == -9, out.stderr
    path = Path(out.stdout.strip())
    with h5py.File(path, "r", swmr=True) as f:
        data = f["data"][()]
        np.testing.assert_array_equal(f["image_key"][()], [0, 1, 2])
        np.testing.assert_array_equal(f["twin_time_s"][()], [0.0, 0.5, 1.0])
    expected = np.stack([np.full((4, 5), i, np.float32) for i in range(3)])
    np.testing.assert_array_equal(data, expected)


def test_per_frame_scalars_and_fill_values(writer: HDF5FrameWriter) -> None:
    path = writer.open((ROWS, COLS), np.uint16)
    writer.append(_frame(0), image_key=2, rotation_angle_deg=0.0, twin_time_s=1.5)
    writer.append(_frame(1), image_key=0, rotation_angle_deg=0.25)
    writer.append(_frame(2))
    assert writer.frame_count == 3
    with h5py.File(path, "r", swmr=True) as f:
        assert f["image_key"].dtype == np.int8
        assert f["rotation_angle_deg"].dtype == np.float64
        np.testing.assert_array_equal(f["image_key"][()], [2, 0, -1])
        np.testing.assert_array_equal(f["rotation_angle_deg"][()], [0.0, 0.25, np.nan])
        np.testing.assert_array_equal(f["twin_time_s"][()], [1.5, np.nan, np.nan])


def test_custom_dataset_and_scalars(tmp_path: Path) -> None:
    w = HDF5FrameWriter(
        tmp_path,
        data_key="mpx",
        dataset="entry/data/data",
        per_frame_dtypes={"threshold_kev": np.float32, "image_key": np.int8},
    )
    path = w.open((2, 3), np.uint32)
    w.append(np.ones((2, 3), np.uint32), threshold_kev=7.5)
    w.close()
    assert w.dataset == "/entry/data/data"
    assert w.scalar_dataset_path("threshold_kev") == "/entry/data/threshold_kev"
    with h5py.File(path, "r") as f:
        assert f["/entry/data/data"].shape == (1, 2, 3)
        assert f["/entry/data/threshold_kev"][0] == np.float32(7.5)
        assert f["/entry/data/image_key"][0] == -1


def test_stream_documents(writer: HDF5FrameWriter) -> None:
    assert list(writer.collect_asset_docs()) == []
    path = writer.open((ROWS, COLS), np.uint16)
    assert list(writer.collect_asset_docs()) == []  # no frames yet: nothing

    writer.append(_frame(0), image_key=0)
    docs = list(writer.collect_asset_docs())
    assert [name for name, _ in docs] == ["stream_resource", "stream_datum"]
    sres, sdat = docs[0][1], docs[1][1]
    schema_validators[DocumentNames.stream_resource].validate(sres)
    schema_validators[DocumentNames.stream_datum].validate(sdat)
    assert sres["data_key"] == "det_image"
    assert sres["mimetype"] == HDF5_MIMETYPE
    assert sres["uri"] == f"file://localhost{path}"
    assert sres["parameters"] == {
        "dataset": "/data",
        "chunk_shape": [1, ROWS, COLS],
        "join_method": "stack",
        "swmr": True,
    }
    assert sdat["stream_resource"] == sres["uid"]
    assert sdat["indices"] == {"start": 0, "stop": 1}
    assert sdat["seq_nums"] == {"start": 0, "stop": 0}  # the RunEngine fills these in
    assert sdat["descriptor"] == ""

    assert list(writer.collect_asset_docs()) == []  # nothing new
    writer.append(_frame(1))
    writer.append(_frame(2))
    docs = list(writer.collect_asset_docs())
    assert [name for name, _ in docs] == ["stream_datum"]
    assert docs[0][1]["indices"] == {"start": 1, "stop": 3}
    assert docs[0][1]["uid"] != sdat["uid"]

    # frames appended before close can still be collected; a new open is a new file
    writer.append(_frame(3))
    writer.close()
    docs = list(writer.collect_asset_docs())
    assert docs[0][1]["indices"] == {"start": 3, "stop": 4}
    path2 = writer.open((ROWS, COLS), np.uint16)
    assert path2 != path
    writer.append(_frame(0))
    docs = list(writer.collect_asset_docs())
    assert [name for name, _ in docs] == ["stream_resource", "stream_datum"]
    assert docs[0][1]["uid"] != sres["uid"]
    assert docs[0][1]["uri"] == f"file://localhost{path2}"
    assert docs[1][1]["indices"] == {"start": 0, "stop": 1}


def test_documents_are_fresh_dicts(writer: HDF5FrameWriter) -> None:
    writer.open((ROWS, COLS), np.uint16)
    writer.append(_frame(0))
    (_, sres), _ = writer.collect_asset_docs()
    sres["run_start"] = "mutated-by-the-run-engine"
    sres["parameters"]["dataset"] = "mutated"
    writer.close()
    writer.open((ROWS, COLS), np.uint16)
    writer.append(_frame(0))
    (_, sres2), _ = writer.collect_asset_docs()
    assert "run_start" not in sres2
    assert sres2["parameters"]["dataset"] == "/data"


def test_describe_entry(writer: HDF5FrameWriter) -> None:
    with pytest.raises(ValueError, match="before open"):
        writer.describe_entry("SIM:det")
    assert writer.describe_entry("SIM:det", frame_shape=(3, 4), dtype=np.float32) == {
        "source": "SIM:det",
        "dtype": "array",
        "dtype_numpy": "<f4",
        "shape": [3, 4],
        "external": "STREAM:",
    }
    writer.open((ROWS, COLS), np.uint16)
    entry = writer.describe_entry("SIM:det")
    assert entry["shape"] == [ROWS, COLS]
    assert entry["dtype_numpy"] == np.dtype(np.uint16).str


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (np.zeros((ROWS + 1, COLS), np.uint16), "frame shape"),
        (np.zeros((1, ROWS, COLS), np.uint16), "frame shape"),
        (np.zeros((ROWS, COLS), np.float32), "frame dtype"),
        (np.zeros((ROWS, COLS), np.int16), "frame dtype"),
    ],
)
def test_shape_and_dtype_mismatch(writer: HDF5FrameWriter, frame: np.ndarray, match: str) -> None:
    writer.open((ROWS, COLS), np.uint16)
    with pytest.raises(ValueError, match=match):
        writer.append(frame)
    assert writer.frame_count == 0
    assert list(writer.collect_asset_docs()) == []


def test_bad_arguments(writer: HDF5FrameWriter, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="before open"):
        writer.append(_frame(0))
    with pytest.raises(ValueError, match="frame_shape"):
        writer.open((ROWS,), np.uint16)
    with pytest.raises(ValueError, match="frame_shape"):
        writer.open((0, COLS), np.uint16)
    with pytest.raises(ValueError, match="dtype"):
        writer.open((ROWS, COLS), np.str_)
    writer.open((ROWS, COLS), np.uint16)
    with pytest.raises(ValueError, match="unknown per-frame scalar"):
        writer.append(_frame(0), exposure_s=1.0)
    with pytest.raises(ValueError, match="must be a scalar"):
        writer.append(_frame(0), image_key=[0, 1])
    assert writer.frame_count == 0
    with pytest.raises(ValueError, match="data_key"):
        HDF5FrameWriter(tmp_path, data_key="a/b")
    with pytest.raises(ValueError, match="per_frame_dtypes"):
        HDF5FrameWriter(tmp_path, data_key="det", per_frame_dtypes={"data": np.int8})


def test_context_manager_and_reopen_while_open(tmp_path: Path) -> None:
    with HDF5FrameWriter(tmp_path, data_key="det") as w:
        first = w.open((2, 2), np.uint8)
        w.append(np.zeros((2, 2), np.uint8))
        second = w.open((2, 2), np.uint8)  # closes the first file, with a warning
        assert second != first
        assert w.frame_count == 0
    assert not w.is_open
    with h5py.File(first, "r") as f:  # closed cleanly: readable without SWMR
        assert f["data"].shape == (1, 2, 2)
