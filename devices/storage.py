"""Room on the data disk: will a scan's detector files fit?

Plans call :func:`check_disk_space` before any motion or acquisition, so a scan that cannot be
stored never starts (and an 11-hour scan does not die at hour 10 on a full disk).
"""

from __future__ import annotations

import errno
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

__all__ = [
    "DEFAULT_RESERVE_BYTES",
    "InsufficientDiskSpaceError",
    "check_disk_space",
    "expected_scan_bytes",
]

logger = logging.getLogger(__name__)

#: Free space that must remain after a scan (catalog, logs, backups).
DEFAULT_RESERVE_BYTES = 1 << 30


class InsufficientDiskSpaceError(OSError):
    """A scan would not fit on the disk of its data directory."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


def expected_scan_bytes(
    n_images: int,
    image_shape: Sequence[int],
    dtype: DTypeLike = np.float32,
    *,
    overhead_fraction: float = 0.02,
) -> int:
    """Bytes a scan's detector files will take.

    Parameters
    ----------
    n_images : int
        Images the scan stores (projections + flats + darks); frames averaged into one image
        count once.
    image_shape : sequence of int
        ``(rows, cols)`` of one stored image (after binning).
    dtype : numpy dtype-like
        Stored dtype (the flat panel stores float32).
    overhead_fraction : float
        HDF5 metadata, per-frame scalars and chunk index, as a fraction of the pixel data.

    Raises
    ------
    ValueError
        If `n_images` is negative or a dimension is not positive.
    """
    if int(n_images) < 0:
        raise ValueError(f"n_images must be >= 0, got {n_images!r}")
    shape = tuple(int(n) for n in image_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"image_shape must be positive dimensions, got {tuple(image_shape)!r}")
    pixels = int(np.prod(shape, dtype=np.int64))
    raw = int(n_images) * pixels * np.dtype(dtype).itemsize
    return int(raw * (1.0 + overhead_fraction)) + 64 * 1024


def check_disk_space(
    directory: str | Path,
    *,
    n_images: int,
    image_shape: Sequence[int],
    dtype: DTypeLike = np.float32,
    reserve_bytes: int = DEFAULT_RESERVE_BYTES,
) -> int:
    """Raise before a scan starts if its images would not fit on the data disk.

    Call it before any motion or acquisition (e.g. at the top of a CT plan, with the number
    of projections, flats and darks the plan will take).

    Parameters
    ----------
    directory : path
        Where the detector writes (it need not exist yet: its nearest existing parent is
        measured).
    n_images, image_shape, dtype
        As for :func:`expected_scan_bytes`.
    reserve_bytes : int
        Free space that must remain after the scan (default 1 GiB), so the catalog, logs and
        backups still have room.

    Returns
    -------
    int
        The expected size of the scan in bytes.

    Raises
    ------
    InsufficientDiskSpaceError
        (an ``OSError`` with errno ``ENOSPC``) naming the directory, the expected size, the
        reserve and the free space, when expected + reserve > free.
    """
    need = expected_scan_bytes(n_images, image_shape, dtype)
    probe = Path(directory).expanduser().resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need + int(reserve_bytes) > free:
        raise InsufficientDiskSpaceError(
            f"not enough disk space for this scan in {directory}: it needs {_human(need)} "
            f"({int(n_images)} images of {tuple(int(n) for n in image_shape)} "
            f"{np.dtype(dtype).name}) plus a reserve of {_human(reserve_bytes)}, but only "
            f"{_human(free)} are free. Free some space, reduce the number of images or the "
            "binning, or choose another data directory."
        )
    logger.info("scan needs %s; %s free in %s", _human(need), _human(free), probe)
    return need


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover
