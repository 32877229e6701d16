"""Frames of a running scan, found through its StreamResource/StreamDatum documents.

Detectors write images to HDF5 (SWMR, flushed per frame) and describe them with
StreamResource (file, dataset) and StreamDatum (frame indices of an event's seq_nums)
documents; images never travel in Event documents. :class:`FrameSource` follows those
documents and reads the frame of an event from its file, in SWMR mode, waiting (refreshing the
dataset) while a frame is not yet visible: the writer may flush a moment after the document
arrives, above all when the documents come over the network (``nanoct live``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

__all__ = ["FrameRef", "FrameSource", "FrameUnavailableError", "image_key_of"]

logger = logging.getLogger(__name__)

# One read (open, refresh, read) at a time in this process. Two threads reading the same SWMR
# file through two handles share HDF5's file and dataset state; measured here, a refresh in one
# thread between the other's shape check and read made that read return another frame's
# chunk (12-63 of 600 reads with a writer in another process). Serialised, none did.
_READ_LOCK = threading.Lock()


class FrameUnavailableError(TimeoutError):
    """A frame named by the documents could not be read within the timeout."""


@dataclass(frozen=True)
class FrameRef:
    """Where one frame is: file, dataset inside it, index along its first axis."""

    path: str
    dataset: str
    index: int


@dataclass(frozen=True)
class _Datum:
    resource: str
    seq_start: int
    seq_stop: int
    index_start: int
    index_stop: int


def image_key_of(descriptor: Mapping[str, Any]) -> str | None:
    """The data key of the (first) externally stored array of an event descriptor."""
    for key, entry in (descriptor.get("data_keys") or {}).items():
        if str(entry.get("external", "")).startswith("STREAM:"):
            return key
    return None


class FrameSource:
    """Map events to their frames and read them from the HDF5 files.

    Parameters
    ----------
    timeout_s : float
        How long :meth:`read` waits for a frame that is not yet in its file (> 0).
    poll_s : float
        Pause between two attempts.
    path_map : mapping of str to str, optional
        Path prefixes to replace (``{"/data/nanoct": "/mnt/nanoct"}``) when the consumer
        sees the detector's files under another mount point than the writer.

    Notes
    -----
    Feed it every ``stream_resource`` and ``stream_datum`` document (:meth:`stream_resource`,
    :meth:`stream_datum`); :meth:`ref` then names the frame of an event. Files stay open
    (read-only, SWMR) until :meth:`close`.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 30.0,
        poll_s: float = 0.05,
        path_map: Mapping[str, str] | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} must be > 0 s")
        if not poll_s > 0:
            raise ValueError(f"poll_s={poll_s!r} must be > 0 s")
        self.timeout_s = float(timeout_s)
        self.poll_s = float(poll_s)
        self.path_map = dict(path_map or {})
        self._resources: dict[str, tuple[str, str, str]] = {}  # uid -> (data_key, path, dset)
        self._datums: dict[tuple[str, str], list[_Datum]] = {}  # (descriptor, data_key) -> ...
        self._files: dict[str, Any] = {}
        #: Reads that had to wait for the frame (not yet flushed or visible).
        self.n_waits = 0

    def reset(self) -> None:
        """Forget every resource and datum and close the files (a new run)."""
        self.close()
        self._resources.clear()
        self._datums.clear()

    def _local_path(self, uri: str) -> str:
        parsed = urlparse(uri)
        path = unquote(parsed.path) if parsed.scheme in ("file", "") else uri
        for old, new in self.path_map.items():
            if path.startswith(old):
                return new + path[len(old) :]
        return path

    def stream_resource(self, doc: Mapping[str, Any]) -> None:
        params = doc.get("parameters") or {}
        if doc.get("mimetype") != "application/x-hdf5" or "dataset" not in params:
            logger.debug("stream resource %s is not an HDF5 dataset: ignored", doc.get("uid"))
            return
        self._resources[doc["uid"]] = (
            doc["data_key"],
            self._local_path(doc["uri"]),
            str(params["dataset"]),
        )

    def stream_datum(self, doc: Mapping[str, Any]) -> None:
        res = self._resources.get(doc["stream_resource"])
        if res is None:
            return
        seq, idx = doc["seq_nums"], doc["indices"]
        datum = _Datum(
            doc["stream_resource"],
            int(seq["start"]),
            int(seq["stop"]),
            int(idx["start"]),
            int(idx["stop"]),
        )
        self._datums.setdefault((doc["descriptor"], res[0]), []).append(datum)

    def ref(self, descriptor: str, seq_num: int, data_key: str) -> FrameRef | None:
        """The frame of event ``seq_num`` of ``descriptor`` for ``data_key``, None if no
        StreamDatum covers it. When a datum holds more frames than events (a frame taken but
        its event dropped), the event's frames are the last ones of the datum."""
        for d in reversed(self._datums.get((descriptor, data_key), ())):
            if d.seq_start <= seq_num < d.seq_stop:
                index = d.index_stop - (d.seq_stop - seq_num)
                _, path, dataset = self._resources[d.resource]
                return FrameRef(path, dataset, index)
        return None

    def _dataset(self, ref: FrameRef):
        import h5py

        f = self._files.get(ref.path)
        if f is None:
            f = h5py.File(ref.path, "r", swmr=True)
            self._files[ref.path] = f
        return f[ref.dataset]

    def read(self, ref: FrameRef) -> np.ndarray:
        """The frame, waiting up to ``timeout_s`` for it to appear in the file.

        Raises
        ------
        FrameUnavailableError
            The file, dataset or frame is still missing after ``timeout_s``.
        """
        deadline = time.monotonic() + self.timeout_s
        waited = False
        while True:
            frame = None
            with _READ_LOCK:
                try:
                    ds = self._dataset(ref)
                    if ref.index >= ds.shape[0]:
                        ds.refresh()
                    if ref.index < ds.shape[0]:
                        frame = np.asarray(ds[ref.index])
                    else:
                        problem = f"holds {ds.shape[0]} frame(s)"
                except (OSError, KeyError) as err:  # not created or not yet readable
                    self._files.pop(ref.path, None)
                    problem = f"cannot be read ({err})"
            if frame is not None:
                if waited:
                    self.n_waits += 1
                return frame
            if time.monotonic() >= deadline:
                raise FrameUnavailableError(
                    f"frame {ref.index} of {ref.path}:{ref.dataset} is not there after "
                    f"{self.timeout_s} s: the file {problem}"
                )
            waited = True
            time.sleep(self.poll_s)

    def close(self) -> None:
        """Close the files opened for reading."""
        with _READ_LOCK:
            self._close()

    def _close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except Exception:  # a file already closed elsewhere
                logger.debug("closing %s failed", f, exc_info=True)
        self._files.clear()
