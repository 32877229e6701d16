"""Per-thread work arrays for the parallel kernels, laid out so threads do not slow each other.

The backprojection kernels give each thread a few small rows of scratch (detector positions
and weights of one voxel row or column) that it rewrites for every angle. Packed next to
each other (or a few cache lines apart), the rows of two threads sit in neighbouring lines
or the same 128-byte pair of lines, which the cores' adjacent-line and stream prefetchers
fetch together: measured on the 2-core development machine, the second thread of the FDK
kernel then ran at 55-70 % of the first's speed (wall 1.25x the single-thread time instead
of ~2x). Each thread's rows here start on a page of their own (prefetchers do not cross
4 KiB pages), at an offset into the page that differs between the arrays of one kernel so
that one thread's arrays do not alias each other modulo 4 KiB either (a load whose address
matches a pending store's in the low 12 bits waits for it).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["PAGE", "thread_count", "thread_rows"]

#: Bytes per page; every thread's block of a :func:`thread_rows` array starts on its own.
PAGE = 4096


def thread_count() -> int:
    """Scratch rows needed: ``numba.get_thread_id()`` stays below this."""
    return max(numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)


def thread_rows(shape: tuple[int, ...], dtype, offset: int = 0, n_threads: int | None = None):
    """C-contiguous ``(n_threads, *shape')`` scratch; thread ``t``'s block at a page + ``offset``.

    ``shape'`` is ``shape`` with its last axis padded so that one thread's block is a whole
    number of pages (the kernels use the leading ``shape[-1]`` entries of each row).
    ``offset`` (bytes, a multiple of 64 below :data:`PAGE`) places the blocks of different
    arrays at different positions within their pages.
    """
    dt = np.dtype(dtype)
    if offset % 64 or not 0 <= offset < PAGE:
        raise ValueError(f"offset must be a multiple of 64 in [0, {PAGE}), got {offset!r}")
    nt = thread_count() if n_threads is None else int(n_threads)
    lead = math.prod(shape[:-1])
    # last axis padded so that lead * last * itemsize is a multiple of PAGE
    unit = PAGE // math.gcd(PAGE, lead * dt.itemsize)
    last = -(-shape[-1] // unit) * unit
    block = lead * last * dt.itemsize
    raw = np.empty(nt * block + 2 * PAGE, np.uint8)
    start = (-raw.ctypes.data) % PAGE + offset
    return raw[start : start + nt * block].view(dt).reshape((nt, *shape[:-1], last))
