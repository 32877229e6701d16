"""HDF5 frame writing for nanoct detectors, with Bluesky stream documents.

`HDF5FrameWriter` is a plain-Python helper that ophyd v1 detectors (the flat panel, the
Medipix2) compose: it appends 2-D frames, one per event, to an SWMR HDF5 file and composes the
StreamResource / StreamDatum documents that point Bluesky consumers (TiledWriter) at them.
Images never travel inside Event documents.

File layout (one file per run, i.e. per `open`)::

    <directory>/<YYYY>/<MM>/<DD>/<data_key>_<uuid4>.h5
        <dataset>                 (n_frames, rows, cols), chunks = one frame
        <per-frame scalars>       (n_frames,) each, siblings of <dataset>

Documents, as read by bluesky-tiled-plugins 2.0 (``HDF5Consolidator``, join method "stack"):

- descriptor entry (`HDF5FrameWriter.describe_entry`): ``shape`` is the shape of ONE frame,
  ``[rows, cols]``; TiledWriter stacks one frame per event into ``(n_events, rows, cols)``.
- StreamResource: mimetype ``application/x-hdf5``, uri ``file://localhost/<abs path>``,
  parameters ``dataset``, ``chunk_shape = [1, rows, cols]``, ``join_method = "stack"``,
  ``swmr = True``.
- StreamDatum: ``indices`` count frames in the file, from 0; ``seq_nums`` are left for the
  RunEngine to fill in (``{"start": 0, "stop": 0}``) and ``descriptor`` empty.
"""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

import h5py
import numpy as np
from event_model import ComposeStreamDatum, ComposeStreamResource, StreamRange
from numpy.typing import ArrayLike, DTypeLike

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_PER_FRAME_DTYPES", "HDF5_MIMETYPE", "HDF5FrameWriter", "ImageKeyFiles"]

#: Mimetype of the StreamResource documents; bluesky-tiled-plugins maps it to its HDF5 consolidator.
HDF5_MIMETYPE = "application/x-hdf5"

#: Per-frame scalar datasets created by default (NXtomo image_key: 0 projection, 1 flat, 2 dark).
DEFAULT_PER_FRAME_DTYPES: dict[str, DTypeLike] = {
    "image_key": np.int8,
    "rotation_angle_deg": np.float64,
    "twin_time_s": np.float64,
}

_SCALAR_CHUNK = 1024  # elements per chunk of a per-frame scalar dataset


def _fill_value(dtype: np.dtype) -> Any:
    """Value that marks a per-frame scalar that was not given for a frame."""
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "i":
        return -1
    return 0  # unsigned integers and booleans


class HDF5FrameWriter:
    """Append 2-D detector frames to an SWMR HDF5 file and compose Bluesky stream documents.

    Parameters
    ----------
    directory : str or pathlib.Path
        Root directory of the data files; each `open` creates
        ``<directory>/<YYYY>/<MM>/<DD>/<data_key>_<uuid4>.h5`` (directories are made as needed).
        A Tiled server can read the files only if this directory lies under its
        ``readable_storage``.
    data_key : str
        Name of the image data key in the descriptor (e.g. ``"flatpanel_image"``); also used as
        the file name prefix and the StreamResource ``data_key``.
    dataset : str, optional
        Path of the image dataset inside the file (default ``"data"``). Intermediate groups are
        created.
    per_frame_dtypes : mapping of str to dtype, optional
        Names and dtypes of the 1-D per-frame datasets written beside the image dataset (in the
        same group). Default: `DEFAULT_PER_FRAME_DTYPES` (``image_key`` int8,
        ``rotation_angle_deg`` float64, ``twin_time_s`` float64). They must be declared here
        because no dataset can be created once the file is in SWMR mode.

    Notes
    -----
    Every `append` resizes the datasets, writes the frame and flushes the file, so a reader
    opening the file with ``h5py.File(path, "r", swmr=True)`` sees every frame appended so far,
    also while the file is still open or after the writing process was killed. Per-frame scalars
    that are not given to `append` are stored as a fill value (NaN for floats, -1 for signed
    integers, 0 otherwise).

    The writer is not tied to ophyd; a detector calls `open` in ``stage()``, `append` for each
    frame, `collect_asset_docs` from its own ``collect_asset_docs()``, and `close` in
    ``unstage()``. Calls are serialised by an internal lock, so `append` may run on an
    acquisition thread.

    Examples
    --------
    >>> writer = HDF5FrameWriter(tmp_path, data_key="det_image")  # doctest: +SKIP
    >>> writer.open((64, 80), np.uint16)  # doctest: +SKIP
    >>> writer.append(frame, image_key=0, rotation_angle_deg=0.0)  # doctest: +SKIP
    >>> docs = list(writer.collect_asset_docs())  # doctest: +SKIP
    >>> writer.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        data_key: str,
        dataset: str = "data",
        per_frame_dtypes: Mapping[str, DTypeLike] | None = None,
    ) -> None:
        if not data_key or "/" in data_key:
            raise ValueError(f"data_key must be a non-empty name without '/', got {data_key!r}")
        dataset_path = PurePosixPath("/", dataset)
        if dataset_path == PurePosixPath("/"):
            raise ValueError(f"dataset must name a dataset inside the file, got {dataset!r}")
        dtypes = DEFAULT_PER_FRAME_DTYPES if per_frame_dtypes is None else per_frame_dtypes
        self._per_frame_dtypes: dict[str, np.dtype] = {}
        for name, dt in dtypes.items():
            if not name or "/" in name or name == dataset_path.name:
                raise ValueError(
                    f"per_frame_dtypes: invalid dataset name {name!r} (must be non-empty, "
                    f"without '/', and differ from the image dataset {dataset_path.name!r})"
                )
            self._per_frame_dtypes[name] = np.dtype(dt)

        self._directory = Path(directory).expanduser().resolve()
        self._data_key = data_key
        self._dataset = str(dataset_path)
        self._lock = threading.RLock()

        self._file: h5py.File | None = None
        self._image: h5py.Dataset | None = None
        self._scalars: dict[str, h5py.Dataset] = {}
        self._path: Path | None = None
        self._frame_shape: tuple[int, int] | None = None
        self._dtype: np.dtype | None = None
        self._n_frames = 0
        self._n_collected = 0
        self._stream_resource: dict[str, Any] | None = None
        self._compose_datum: ComposeStreamDatum | None = None
        self._resource_emitted = False

    # ------------------------------------------------------------------ properties
    @property
    def directory(self) -> Path:
        """Root directory of the data files (absolute)."""
        return self._directory

    @property
    def data_key(self) -> str:
        """Name of the image data key."""
        return self._data_key

    @property
    def dataset(self) -> str:
        """Absolute path of the image dataset inside the file (e.g. ``"/data"``)."""
        return self._dataset

    @property
    def per_frame_dtypes(self) -> dict[str, np.dtype]:
        """Names and dtypes of the per-frame scalar datasets."""
        return dict(self._per_frame_dtypes)

    @property
    def is_open(self) -> bool:
        """Whether a file is open for appending."""
        return self._file is not None

    @property
    def path(self) -> Path | None:
        """Path of the current (or last) file, None before the first `open`."""
        return self._path

    @property
    def uri(self) -> str | None:
        """``file://localhost/<abs path>`` of the current (or last) file."""
        return None if self._path is None else f"file://localhost{self._path.as_posix()}"

    @property
    def frame_shape(self) -> tuple[int, int] | None:
        """``(rows, cols)`` of the current (or last) file, None before the first `open`."""
        return self._frame_shape

    @property
    def dtype(self) -> np.dtype | None:
        """Frame dtype of the current (or last) file, None before the first `open`."""
        return self._dtype

    @property
    def frame_count(self) -> int:
        """Number of frames appended to the current (or last) file."""
        return self._n_frames

    def scalar_dataset_path(self, name: str) -> str:
        """Path inside the file of the per-frame scalar dataset `name`.

        Parameters
        ----------
        name : str
            One of `per_frame_dtypes`.

        Returns
        -------
        str
            Absolute path inside the file, a sibling of the image dataset.
        """
        if name not in self._per_frame_dtypes:
            raise ValueError(
                f"unknown per-frame scalar {name!r}; allowed: {sorted(self._per_frame_dtypes)}"
            )
        return str(PurePosixPath(self._dataset).parent / name)

    # ------------------------------------------------------------------ lifecycle
    def open(self, frame_shape: tuple[int, int], dtype: DTypeLike) -> Path:
        """Create a new file, its datasets, and switch it to SWMR mode.

        Parameters
        ----------
        frame_shape : tuple of int
            ``(rows, cols)`` of every frame, both >= 1.
        dtype : numpy dtype-like
            Dtype of every frame (e.g. ``np.uint16``); frames must match it exactly.

        Returns
        -------
        pathlib.Path
            Path of the new file.

        Raises
        ------
        ValueError
            If `frame_shape` is not two positive integers or `dtype` is not a numeric dtype.
        """
        shape = tuple(int(n) for n in frame_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(
                f"frame_shape must be (rows, cols) with both >= 1, got {tuple(frame_shape)!r}"
            )
        dt = np.dtype(dtype)
        if dt.kind not in "biuf":
            raise ValueError(f"dtype must be a boolean, integer or float dtype, got {dt!r}")

        with self._lock:
            if self._file is not None:
                logger.warning(
                    "open() while %s is still open: closing it and starting a new file",
                    self._path,
                )
                self._close_file()
            if self._n_frames > self._n_collected:
                logger.warning(
                    "%d frame(s) of %s were never collected as StreamDatum documents",
                    self._n_frames - self._n_collected,
                    self._path,
                )

            now = datetime.now()
            folder = self._directory / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self._data_key}_{uuid.uuid4()}.h5"

            rows, cols = shape
            h5 = h5py.File(path, "x", libver="latest")
            try:
                image = h5.create_dataset(
                    self._dataset,
                    shape=(0, rows, cols),
                    maxshape=(None, rows, cols),
                    chunks=(1, rows, cols),
                    dtype=dt,
                )
                scalars = {
                    name: h5.create_dataset(
                        self.scalar_dataset_path(name),
                        shape=(0,),
                        maxshape=(None,),
                        chunks=(_SCALAR_CHUNK,),
                        dtype=sdt,
                        fillvalue=_fill_value(sdt),
                    )
                    for name, sdt in self._per_frame_dtypes.items()
                }
                h5.swmr_mode = True
            except BaseException:
                h5.close()
                path.unlink(missing_ok=True)
                raise

            self._file, self._image, self._scalars = h5, image, scalars
            self._path, self._frame_shape, self._dtype = path, (rows, cols), dt
            self._n_frames = 0
            self._n_collected = 0
            bundle = ComposeStreamResource()(
                mimetype=HDF5_MIMETYPE,
                uri=f"file://localhost{path.as_posix()}",
                data_key=self._data_key,
                parameters={
                    "dataset": self._dataset,
                    "chunk_shape": [1, rows, cols],
                    "join_method": "stack",
                    "swmr": True,
                },
            )
            self._stream_resource = dict(bundle.stream_resource_doc)
            self._compose_datum = bundle.compose_stream_datum
            self._resource_emitted = False
        logger.info("opened %s for %s frames of %s %s", path, self._data_key, shape, dt)
        return path

    def append(self, frame: ArrayLike, **per_frame_scalars: Any) -> int:
        """Append one frame (and its per-frame scalars) and flush the file.

        Parameters
        ----------
        frame : array_like
            2-D array with exactly the shape and dtype given to `open`.
        **per_frame_scalars
            Values for the per-frame datasets declared in `per_frame_dtypes`, e.g.
            ``image_key=0, rotation_angle_deg=12.5``; omitted ones get the fill value.

        Returns
        -------
        int
            Index of the frame in the file (0 for the first).

        Raises
        ------
        RuntimeError
            If no file is open.
        ValueError
            If the frame's shape or dtype differ from the file's, or a scalar name is unknown.
        """
        arr = np.asarray(frame)
        with self._lock:
            if self._file is None or self._image is None:
                raise RuntimeError(f"HDF5FrameWriter({self._data_key!r}): append() before open()")
            if arr.shape != self._frame_shape:
                raise ValueError(
                    f"frame shape {arr.shape} does not match the file's frame_shape "
                    f"{self._frame_shape} (data_key {self._data_key!r})"
                )
            if arr.dtype != self._dtype:
                raise ValueError(
                    f"frame dtype {arr.dtype} does not match the file's dtype {self._dtype} "
                    f"(data_key {self._data_key!r})"
                )
            unknown = set(per_frame_scalars) - set(self._scalars)
            if unknown:
                raise ValueError(
                    f"unknown per-frame scalar(s) {sorted(unknown)}; "
                    f"allowed: {sorted(self._scalars)}"
                )
            values = {}
            for name, value in per_frame_scalars.items():
                v = np.asarray(value)
                if v.ndim != 0:
                    raise ValueError(f"per-frame scalar {name!r} must be a scalar, got {value!r}")
                values[name] = v

            index = self._n_frames
            n = index + 1
            self._image.resize(n, axis=0)
            self._image[index] = arr
            for name, dset in self._scalars.items():
                dset.resize((n,))
                if name in values:
                    dset[index] = values[name]
            self._file.flush()
            self._n_frames = n
        return index

    def close(self) -> None:
        """Close the file; safe to call when nothing is open.

        Frames appended before `close` can still be collected with `collect_asset_docs` until
        the next `open`.
        """
        with self._lock:
            if self._file is not None:
                self._close_file()
                logger.info("closed %s after %d frame(s)", self._path, self._n_frames)

    def _close_file(self) -> None:
        assert self._file is not None
        try:
            self._file.close()
        finally:
            self._file = None
            self._image = None
            self._scalars = {}

    def __enter__(self) -> HDF5FrameWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ documents
    def describe_entry(
        self,
        source: str,
        *,
        frame_shape: tuple[int, int] | None = None,
        dtype: DTypeLike | None = None,
    ) -> dict[str, Any]:
        """Descriptor data-key entry for the image, stored externally as a stream.

        Parameters
        ----------
        source : str
            The entry's ``source`` (e.g. ``"SIM:flatpanel"`` or a PV name).
        frame_shape : tuple of int, optional
            ``(rows, cols)``; default: the shape of the current (or last) file.
        dtype : numpy dtype-like, optional
            Frame dtype; default: the dtype of the current (or last) file.

        Returns
        -------
        dict
            ``{"source", "dtype": "array", "dtype_numpy", "shape": [rows, cols],
            "external": "STREAM:"}``. The shape is that of ONE frame; TiledWriter stacks one
            frame per event into ``(n_events, rows, cols)``.

        Raises
        ------
        ValueError
            If the shape or dtype is neither given nor known from an `open`.
        """
        shape = frame_shape if frame_shape is not None else self._frame_shape
        dt = np.dtype(dtype) if dtype is not None else self._dtype
        if shape is None or dt is None:
            raise ValueError(
                f"describe_entry({source!r}): frame_shape and dtype are unknown before open(); "
                "pass them explicitly"
            )
        rows, cols = (int(n) for n in shape)
        return {
            "source": source,
            "dtype": "array",
            "dtype_numpy": dt.str,
            "shape": [rows, cols],
            "external": "STREAM:",
        }

    def collect_asset_docs(self, index: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield the stream documents for the frames appended since the last call.

        The signature follows ``bluesky.protocols.WritesStreamAssets``: the RunEngine calls
        ``collect_asset_docs(None)`` on every object it reads that has this method.

        Parameters
        ----------
        index : int, optional
            Collect only up to this many frames of the file (frames ``[0, index)``); default all.

        Yields
        ------
        tuple of (str, dict)
            ``("stream_resource", doc)`` once per file, before its first StreamDatum, then one
            ``("stream_datum", doc)`` whose ``indices`` cover the new frames. Nothing if no frame
            was appended since the last call. ``seq_nums`` (``{"start": 0, "stop": 0}``) and
            ``descriptor`` (empty) are left for the RunEngine to fill in; every document is a
            fresh dict, so the RunEngine may modify it in place.
        """
        with self._lock:
            start = self._n_collected
            stop = self._n_frames if index is None else min(int(index), self._n_frames)
            if stop <= start or self._compose_datum is None or self._stream_resource is None:
                return
            docs: list[tuple[str, dict[str, Any]]] = []
            if not self._resource_emitted:
                docs.append(("stream_resource", copy.deepcopy(self._stream_resource)))
                self._resource_emitted = True
            datum = self._compose_datum(indices=StreamRange(start=start, stop=stop))
            docs.append(("stream_datum", dict(datum)))
            self._n_collected = stop
        yield from docs


class ImageKeyFiles:
    """One :class:`HDF5FrameWriter` per NXtomo ``image_key`` of a detector, opened on the first
    frame of that key: a run's dark, flat and projection streams each reference their own file.

    The flat panel and the Medipix2 both keep their frames this way.

    Parameters
    ----------
    data_dir : path
        Where the files go (in the Tiled server's readable storage).
    data_key : str
        The detector's image data key (``"<name>_image"``).
    owner : str
        The detector's name, for the log.
    """

    def __init__(self, data_dir: str | Path, data_key: str, owner: str) -> None:
        self.data_dir = Path(data_dir)
        self.data_key = data_key
        self.owner = owner
        self._writers: dict[int, HDF5FrameWriter] = {}

    def writer(self, key: int, frame_shape: tuple[int, int], dtype: DTypeLike) -> HDF5FrameWriter:
        """The open writer of image key `key` (opened now for the first frame of that key)."""
        if key not in self._writers:
            w = HDF5FrameWriter(self.data_dir, data_key=self.data_key)
            w.open(frame_shape, dtype)
            logger.info("%s: image_key %d frames go to %s", self.owner, key, w.path)
            self._writers[key] = w
        return self._writers[key]

    def close(self) -> None:
        """Close every file (at unstage); the next frames go to new files."""
        for w in self._writers.values():
            w.close()
        self._writers.clear()

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stream documents of the frames written since the last call, key by key."""
        for key in sorted(self._writers):
            yield from self._writers[key].collect_asset_docs()

    def describe_entry(
        self, source: str, frame_shape: tuple[int, int], dtype: DTypeLike, units: str
    ) -> dict[str, Any]:
        """The image's data-key entry for ``describe()``."""
        entry = HDF5FrameWriter(self.data_dir, data_key=self.data_key).describe_entry(
            source, frame_shape=frame_shape, dtype=dtype
        )
        entry["units"] = units
        return entry
