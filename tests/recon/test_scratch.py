"""Per-thread scratch layout (nanoct.recon.scratch)."""

import numpy as np
import pytest

from nanoct.recon.scratch import PAGE, thread_count, thread_rows


@pytest.mark.parametrize(
    ("shape", "dtype", "offset"),
    [((32,), np.float32, 2048), ((4, 256), np.float32, 0), ((3, 100), np.int32, 1024),
     ((1000,), np.uint32, 3072), ((5, 7), np.float64, 64)],
)  # fmt: skip
def test_each_thread_block_starts_at_its_own_page_offset(shape, dtype, offset):
    a = thread_rows(shape, dtype, offset=offset, n_threads=3)
    assert a.flags.c_contiguous
    assert a.dtype == np.dtype(dtype)
    assert a.shape[:-1] == (3, *shape[:-1])
    assert shape[-1] <= a.shape[-1] < shape[-1] + PAGE  # padded, never shortened
    block = a[0].nbytes
    assert block % PAGE == 0
    for t in range(3):
        assert a[t].ctypes.data % PAGE == offset
    a[...] = 1  # the whole array is writable memory of its own
    assert a.sum() == a.size


def test_default_thread_count_covers_numba_thread_ids():
    import numba

    assert thread_rows((8,), np.float32).shape[0] == thread_count()
    assert thread_count() >= numba.get_num_threads()


@pytest.mark.parametrize("offset", [-64, 32, PAGE])
def test_bad_offset_is_rejected(offset):
    with pytest.raises(ValueError, match="offset must be a multiple of 64"):
        thread_rows((8,), np.float32, offset=offset)
