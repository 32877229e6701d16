"""Ramp filters for filtered backprojection and the FDK cosine pre-weighting.

Projections are ``(angle, row, column)`` (or a sinogram ``(angle, column)``) float arrays of
line integrals; every filter here acts along the last axis (detector columns, the direction
perpendicular to the rotation axis), row by row.

The ramp is built in the spatial domain (the band-limited Ram-Lak kernel of Kak & Slaney,
``h[0] = 1/4``, ``h[n odd] = -1/(pi n)^2``, ``h[n even] = 0``, in units of one detector pixel)
and transformed, not taken as ``|f|`` directly: the sampled kernel keeps the zero-frequency
response right, so a reconstruction has no constant offset. Each row is zero padded to
``scipy.fft.next_fast_len(2 * n_cols)`` so the circular convolution equals the linear one.
The windows multiply the ramp as functions of the frequency relative to Nyquist,
``r = f / 0.5`` (``f`` in cycles per pixel):

==============  ============================
``ram-lak``     1
``shepp-logan`` ``sinc(r / 2)``
``cosine``      ``cos(pi r / 2)``
``hamming``     ``0.54 + 0.46 cos(pi r)``
``hann``        ``0.5 + 0.5 cos(pi r)``
==============  ============================

Filtered values are in units of ``1 / pixel`` of the input: FBP's ``(pi / n_angles) * sum``
over angles of them is the attenuation coefficient per pixel.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import scipy.fft

__all__ = [
    "FILTERS",
    "fdk_cosine_weights",
    "filter_projections",
    "padded_length",
    "ramp_response",
]

logger = logging.getLogger(__name__)

#: Names accepted by ``filter=`` (``None`` means no filtering).
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")

#: Padding modes accepted by :func:`filter_projections`.
PAD_MODES = ("zero", "edge")

# Rows filtered per FFT call: bounds the complex workspace to ~ this many x n_fft x 8 bytes.
_BATCH_ROWS = 512


def check_filter(filter: str | None) -> str | None:
    """Validate a filter name (``None`` passes); return it."""
    if filter is None or filter in FILTERS:
        return filter
    raise ValueError(f"filter must be one of {FILTERS} or None, got {filter!r}")


def padded_length(n_cols: int) -> int:
    """FFT length used for rows of ``n_cols`` samples: the next fast length >= ``2 * n_cols``."""
    if int(n_cols) < 1:
        raise ValueError(f"n_cols must be >= 1, got {n_cols!r}")
    return scipy.fft.next_fast_len(2 * int(n_cols), real=True)


@lru_cache(maxsize=32)
def _response(n_fft: int, filter: str) -> np.ndarray:
    n = np.arange(n_fft)
    m = np.minimum(n, n_fft - n)  # circular distance from 0
    h = np.zeros(n_fft)
    h[0] = 0.25
    odd = (m % 2) == 1
    h[odd] = -1.0 / (np.pi * m[odd]) ** 2
    ramp = scipy.fft.rfft(h).real
    r = np.arange(ramp.size) / (n_fft / 2.0)  # frequency relative to Nyquist, 0..1
    if filter == "ram-lak":
        window = np.ones_like(r)
    elif filter == "shepp-logan":
        window = np.sinc(r / 2.0)
    elif filter == "cosine":
        window = np.cos(np.pi * r / 2.0)
    elif filter == "hamming":
        window = 0.54 + 0.46 * np.cos(np.pi * r)
    else:  # hann
        window = 0.5 + 0.5 * np.cos(np.pi * r)
    out = ramp * window
    out.setflags(write=False)
    return out


def ramp_response(n_cols: int, filter: str = "ram-lak") -> np.ndarray:
    """Frequency response (real, length ``n_fft // 2 + 1``) applied to rows of ``n_cols``.

    Parameters
    ----------
    n_cols : int
        Row length before padding; the FFT length is :func:`padded_length` of it.
    filter : str
        One of :data:`FILTERS`.

    Returns
    -------
    numpy.ndarray
        Read-only float64 response for ``scipy.fft.rfft`` bins 0 .. Nyquist; 0.5 at Nyquist
        for ``ram-lak`` (the ramp ``|f|`` with ``f`` in cycles per pixel).
    """
    if check_filter(filter) is None:
        raise ValueError("filter must be a filter name for ramp_response, got None")
    return _response(padded_length(n_cols), filter)


def filter_projections(
    projections: np.ndarray,
    filter: str | None = "ram-lak",
    *,
    scale: float = 1.0,
    pad_mode: str = "zero",
    workers: int | None = -1,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Ramp-filter every row of ``projections`` along its last axis (detector columns).

    Parameters
    ----------
    projections : array_like, shape (..., n_cols)
        Line integrals, e.g. ``(angle, row, column)`` or a sinogram ``(angle, column)``.
    filter : str or None
        One of :data:`FILTERS`; ``None`` copies (times ``scale``) without filtering.
    scale : float
        Factor applied to the result (folded into the frequency response, so free).
    pad_mode : {"zero", "edge"}
        ``"zero"`` pads each row with zeros (the object lies inside the field of view);
        ``"edge"`` repeats the first and last samples, which reduces the cupping of a
        truncated (local) scan.
    workers : int or None
        ``scipy.fft`` worker threads (``-1``: all CPUs).
    out : numpy.ndarray, optional
        float32 array of the input's shape to write into (may be the input itself).

    Returns
    -------
    numpy.ndarray
        float32 filtered rows, same shape as the input.
    """
    filter = check_filter(filter)
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    p = np.asarray(projections)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"projections must have at least one column, got shape {p.shape}")
    if out is None:
        out = np.empty(p.shape, np.float32)
    elif out.shape != p.shape or out.dtype != np.float32:
        raise ValueError(
            f"out must be float32 of shape {p.shape}, got {out.dtype} of shape {out.shape}"
        )
    n_cols = p.shape[-1]
    rows_in = p.reshape(-1, n_cols)
    rows_out = out.reshape(-1, n_cols)
    if not np.shares_memory(rows_out, out):  # reshape copied: out is not contiguous
        raise ValueError("out must be C-contiguous")
    if filter is None:
        np.multiply(rows_in, np.float32(scale), out=rows_out, casting="unsafe")
        return out
    n_fft = padded_length(n_cols)
    resp = (ramp_response(n_cols, filter) * scale).astype(np.float32)
    for r0 in range(0, rows_in.shape[0], _BATCH_ROWS):
        block = np.asarray(rows_in[r0 : r0 + _BATCH_ROWS], dtype=np.float32)
        if pad_mode == "edge":
            padded = np.empty((block.shape[0], n_fft), np.float32)
            padded[:, :n_cols] = block
            n_pad = n_fft - n_cols
            half = n_pad // 2
            padded[:, n_cols : n_cols + half] = block[:, -1:]
            padded[:, n_cols + half :] = block[:, :1]  # wraps round to the left of column 0
            spec = scipy.fft.rfft(padded, axis=-1, workers=workers)
        else:
            spec = scipy.fft.rfft(block, n=n_fft, axis=-1, workers=workers)
        spec *= resp
        rows_out[r0 : r0 + block.shape[0]] = scipy.fft.irfft(
            spec, n=n_fft, axis=-1, workers=workers
        )[:, :n_cols]
    return out


def fdk_cosine_weights(
    n_rows: int,
    n_cols: int,
    *,
    sdd_mm: float,
    pixel_mm: float,
    offset_u_mm: float = 0.0,
    offset_v_mm: float = 0.0,
    rows: slice | None = None,
) -> np.ndarray:
    """FDK pre-weights ``sdd / sqrt(sdd^2 + u^2 + v^2)`` of a flat detector.

    ``u`` and ``v`` are the detector-plane coordinates (mm) of each pixel centre relative to
    the central ray (the foot of the perpendicular from the source), with the detector
    centre at ``(offset_u_mm, offset_v_mm)``: column ``c`` lies at
    ``u = (c - (n_cols - 1) / 2) * pixel_mm + offset_u_mm`` and row ``r`` (row 0 at the top)
    at ``v = ((n_rows - 1) / 2 - r) * pixel_mm + offset_v_mm``. The weight is the cosine of
    the angle between the ray through the pixel and the central ray.

    Parameters
    ----------
    n_rows, n_cols : int
        Detector size (after binning).
    sdd_mm, pixel_mm : float
        Source-detector distance and pixel pitch.
    offset_u_mm, offset_v_mm : float
        Detector centre relative to the central ray.
    rows : slice, optional
        Only these rows (for chunked use).

    Returns
    -------
    numpy.ndarray
        float32 ``(n_rows, n_cols)`` (or ``(len(rows), n_cols)``) weights in (0, 1].
    """
    if not (np.isfinite(sdd_mm) and sdd_mm > 0):
        raise ValueError(f"sdd_mm must be > 0, got {sdd_mm!r}")
    if not (np.isfinite(pixel_mm) and pixel_mm > 0):
        raise ValueError(f"pixel_mm must be > 0, got {pixel_mm!r}")
    r = np.arange(int(n_rows))
    if rows is not None:
        r = r[rows]
    u = (np.arange(int(n_cols)) - (n_cols - 1) / 2.0) * pixel_mm + offset_u_mm
    v = ((n_rows - 1) / 2.0 - r) * pixel_mm + offset_v_mm
    w = sdd_mm / np.sqrt(sdd_mm**2 + u[None, :] ** 2 + v[:, None] ** 2)
    return w.astype(np.float32)
