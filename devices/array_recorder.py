"""Record 2-D analysis results (maps) into a run as external HDF5 data.

TiledWriter stores the inline values of events in a table, which holds scalars and 1-D
arrays but not 2-D ones (pyarrow refuses them). A plan that must keep a map in its run -- a
detector's trim map, a per-pixel noise edge, a corrected image -- puts it into an
:class:`ArrayRecorder` and reads the recorder into a stream: the map goes to an HDF5 file
through :class:`~nanoct.devices.hdf5.HDF5FrameWriter` and reaches Tiled as
StreamResource/StreamDatum documents, like a detector's image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from ophyd import Device, DeviceStatus

from nanoct.devices.hdf5 import HDF5FrameWriter

__all__ = ["ArrayRecorder"]


class ArrayRecorder(Device):
    """One 2-D array per event, stored externally; the data key is the recorder's name.

    Parameters
    ----------
    name : str
        Data key of the array in the stream (e.g. ``"trim_low"``).
    shape : (rows, cols)
    dtype : numpy dtype
    data_dir : path
        Where the HDF5 file goes (in the Tiled server's readable storage).
    units : str, optional

    ``put(array)`` sets the value; ``trigger()`` appends it to the recorder's file (one file per
    recorder, frames 0, 1, ...). No staging is needed: the file is opened at the first trigger
    and closed by ``close()`` (or when the recorder is garbage collected).
    """

    def __init__(
        self,
        name: str,
        *,
        shape: tuple[int, int],
        dtype: npt.DTypeLike,
        data_dir: str | Path,
        units: str | None = None,
        **kwargs,
    ):
        self._shape = (int(shape[0]), int(shape[1]))
        self._dtype = np.dtype(dtype)
        self._units = units
        self._value: np.ndarray | None = None
        super().__init__("", name=name, **kwargs)
        self._writer = HDF5FrameWriter(data_dir, data_key=name, per_frame_dtypes={})

    def put(self, value: npt.ArrayLike) -> None:
        """Set the array to record next (shape and dtype checked; the value is converted)."""
        arr = np.asarray(value)
        if arr.shape != self._shape:
            raise ValueError(f"{self.name}: shape {arr.shape} differs from {self._shape}")
        self._value = arr.astype(self._dtype)

    def trigger(self) -> DeviceStatus:
        if self._value is None:
            raise RuntimeError(f"{self.name}: put() an array before trigger()")
        if not self._writer.is_open:
            self._writer.open(self._shape, self._dtype)
        self._writer.append(self._value)
        st = DeviceStatus(self)
        st.set_finished()
        return st

    def read(self) -> dict:
        return {}

    def describe(self) -> dict:
        entry = self._writer.describe_entry(
            f"ANALYSIS:{self.name}", frame_shape=self._shape, dtype=self._dtype
        )
        if self._units:
            entry["units"] = self._units
        return {self.name: entry}

    def read_configuration(self) -> dict:
        return {}

    def describe_configuration(self) -> dict:
        return {}

    def collect_asset_docs(self, index: int | None = None):
        yield from self._writer.collect_asset_docs()

    def close(self) -> None:
        """Close the file (frames written so far can still be collected)."""
        self._writer.close()
