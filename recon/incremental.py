"""Incremental cone-beam reconstruction of chosen slices, one projection at a time.

Pure array code for live reconstruction while a CT runs: no I/O, no bluesky, no tiled
(``nanoct.callbacks.live_recon`` feeds it from the documents and the HDF5 files). The final
slices equal those of the offline chain :func:`nanoct.recon.pipeline.reconstruct_ct` with
``algorithm="fdk"`` (same normalisation, same wire drift correction, same FDK) to float
rounding.

How each projection is handled as it arrives (:meth:`IncrementalCT.add_projection`):

1. dark subtraction with the darks seen so far and division by the flat interpolated in time
   between the flat blocks that bracket it; a projection after the last block seen so far uses
   that block alone (what the offline interpolation does outside the range of the blocks);
   then ``-log``;
2. the focal-spot drift measured on the reference wire (the positions recorded in the scan's
   events) converted to the specimen's shift, relative to the running median of the wire
   positions, undone by the same Fourier shift as
   :func:`nanoct.recon.alignment.shift_projections`, computed only for the detector rows the
   slices need (:func:`shift_rows`);
3. FDK cosine weights, ramp filter and voxel-driven backprojection of that one projection into
   the slices (:class:`SliceBackprojector`), scaled for the scan's full number of angles.

Refinement, so the final result equals the offline one:

- flats: when a new flat block closes, every projection whose flat interpolation weights
  changed gets the difference added. In line integrals the flat enters additively,
  ``-log((P - D) / F) = log F - log(P - D)``, so the correction
  ``log F_new - log F_old`` needs no projection data and is exact (pixels clipped by
  ``-log``'s floor, or with ``F - D <= 0``, are the exception: such a projection is re-read);
- global quantities known only at the end -- the mean of *all* darks (the closing block
  included), the median wire position the drift is measured against, the padding of the
  Fourier shift (set by the largest shift of the scan), the interpolation of wire positions
  missing in some projections -- are settled in :meth:`IncrementalCT.finish`: a projection
  whose inputs changed is read again (through the ``read_frame`` callable) and its
  contribution replaced. On an instrument without noise or drift nothing is re-read.

Conventions as in :mod:`nanoct.recon.fdk` and :mod:`nanoct.recon.pipeline`: projections are
``(row, column)`` images, slices ``(n_slices, y, x)`` of the volume ``(z, y, x)`` with ``z``
down (slice ``k`` is where detector row ``k`` looks through the axis), attenuation in 1/mm,
angles in radians unless a name ends in ``_deg``, times in seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numba import njit
from scipy import fft as sfft

from nanoct.recon import alignment, pipeline, preprocess
from nanoct.recon.alignment import odd_fast_len, shift_pads  # re-exported: one FFT rule
from nanoct.recon.fbp import as_slices
from nanoct.recon.filters import check_filter, fdk_cosine_weights, filter_projections

__all__ = [
    "IncrementalCT",
    "ProjectionRecord",
    "SliceBackprojector",
    "flat_denominator",
    "normalise_projection",
    "odd_fast_len",
    "shift_pads",
    "shift_rows",
]

logger = logging.getLogger(__name__)

#: Output rows up to which :func:`shift_rows` uses the closed-form row operator (a small
#: matrix product); more rows are shifted by FFT along the columns.
_DENSE_ROWS = 32

#: Flat-minus-dark frames kept ready (the latest blocks'; older ones are recomputed).
_DENOMINATORS_KEPT = 6

#: ``-log`` floor of :func:`nanoct.recon.preprocess.minus_log` (its default).
LOG_FLOOR = 1e-6


# --------------------------------------------------------------------------- shifting
def _dirichlet(t: np.ndarray, length: int) -> np.ndarray:
    """``(1/L) sum_{f=-(L-1)/2}^{(L-1)/2} exp(2 pi i f t / L)`` for odd ``L``: the kernel of a
    Fourier shift on ``L`` samples (1 at multiples of ``L``)."""
    s = np.sin(np.pi * t / length)
    small = np.abs(s) < 1e-12
    return np.where(small, 1.0, np.sin(np.pi * t) / (length * np.where(small, 1.0, s)))


def _y_shift_matrix(n_rows: int, dy: float, rows: np.ndarray, pad: int) -> np.ndarray:
    """Rows ``rows`` of the linear operator that shifts a column of ``n_rows`` samples by
    ``dy`` the way ``shift_projections`` does: edge padding by ``pad`` (and up to an odd fast
    length), a phase ramp in Fourier space, crop. Shape ``(len(rows), n_rows)``, float64."""
    length = odd_fast_len(n_rows + 2 * pad)
    b = np.asarray(rows, dtype=np.float64)[:, None]
    k = np.arange(n_rows, dtype=np.float64)[None, :]
    mat = _dirichlet(b - k - dy, length)
    # padded samples above the image repeat row 0, those below repeat the last row
    top = np.arange(pad, dtype=np.float64)[None, :]
    bottom = np.arange(pad + n_rows, length, dtype=np.float64)[None, :]
    mat[:, 0] += _dirichlet(pad + b - top - dy, length).sum(axis=1)
    mat[:, -1] += _dirichlet(pad + b - bottom - dy, length).sum(axis=1)
    return mat


@njit(cache=True, nogil=True)
def _rows_product(mat, img, out):  # pragma: no cover
    """``out += mat @ img`` (float64), row by row of ``img`` (contiguous, vectorised)."""
    for b in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            m = mat[b, j]
            for k in range(img.shape[1]):
                out[b, k] += m * img[j, k]


def _y_shift_fft(img: np.ndarray, dy: float, pad: int) -> np.ndarray:
    """Every row of ``img`` shifted by ``dy`` along the columns' axis (the operator of
    :func:`_y_shift_matrix`, by FFT: cheaper when many output rows are wanted). float64."""
    n_rows = img.shape[0]
    length = odd_fast_len(n_rows + 2 * pad)
    padded = np.pad(img.astype(np.float64), ((pad, length - n_rows - pad), (0, 0)), mode="edge")
    spec = sfft.rfft(padded, axis=0)
    spec *= np.exp(-2j * np.pi * sfft.rfftfreq(length) * dy)[:, None]
    return sfft.irfft(spec, n=length, axis=0)[pad : pad + n_rows]


def _x_shift(rows: np.ndarray, dx: float, pad: int) -> np.ndarray:
    """Shift each row (float64, ``(n, cols)``) by ``dx`` columns: edge padding, phase ramp."""
    cols = rows.shape[1]
    length = odd_fast_len(cols + 2 * pad)
    padded = np.pad(rows, ((0, 0), (pad, length - cols - pad)), mode="edge")
    spec = sfft.rfft(padded, axis=1)
    spec *= np.exp(-2j * np.pi * sfft.rfftfreq(length) * dx)[None, :]
    return sfft.irfft(spec, n=length, axis=1)[:, pad : pad + cols]


def shift_rows(
    image: np.ndarray,
    dx_px: float,
    dy_px: float,
    rows: slice | Sequence[int] | np.ndarray,
    *,
    pads: tuple[int, int] | None = None,
) -> np.ndarray:
    """Rows ``rows`` of one image shifted by ``(dx_px, dy_px)``, exactly as
    :func:`nanoct.recon.alignment.shift_projections` (method ``'fourier'``) shifts it.

    The Fourier shift with edge padding is separable: a linear operator along the rows
    times one along the columns (an FFT per output row). For a few output rows the row
    operator is a ``len(rows) x n_rows`` matrix built in closed form from the Dirichlet kernel
    of the padded length (a small matrix product instead of a 2-D FFT); for many, an FFT along
    the columns. Only the requested output rows go through the column step.

    Parameters
    ----------
    image : ndarray, shape (row, column)
        The image (e.g. line integrals); converted to float32 first, as ``shift_projections``
        does.
    dx_px, dy_px : float
        Shift of the content, ``out(y, x) = in(y - dy, x - dx)`` (pixels; +x right, +y down).
    rows : slice or sequence of int
        Output rows wanted.
    pads : (int, int), optional
        Edge padding ``(rows, columns)``. ``shift_projections`` pads every image of a stack by
        the stack's largest shift (:func:`shift_pads`); give the stack's value to reproduce it
        exactly. Default: this image's own shift.

    Returns
    -------
    ndarray, float32, shape (len(rows), column)
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be (row, column), got shape {img.shape}")
    n_rows = img.shape[0]
    idx = np.arange(n_rows)[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.intp)
    if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
        raise ValueError(f"rows must lie in [0, {n_rows}), got {rows!r}")
    dx, dy = float(dx_px), float(dy_px)
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise ValueError(f"dx_px={dx_px!r} and dy_px={dy_px!r} must be finite")
    if dx == 0.0 and dy == 0.0:
        return img[idx].copy()
    py, px = shift_pads(dx, dy) if pads is None else (int(pads[0]), int(pads[1]))
    if py < abs(dy) or px < abs(dx):
        raise ValueError(f"pads={pads!r} must be at least the shift ({dx!r}, {dy!r})")
    if idx.size <= _DENSE_ROWS:
        # a small matrix product, kept off the BLAS threads the acquisition may be using (on a
        # busy machine a threaded 5 x 512 x 512 product took 40 times longer than this)
        mat = _y_shift_matrix(n_rows, dy, idx, py)
        part = np.zeros((idx.size, img.shape[1]), np.float64)
        _rows_product(mat, img, part)
    else:
        part = _y_shift_fft(img, dy, py)[idx]
    return _x_shift(part, dx, px).astype(np.float32)


# --------------------------------------------------------------------------- normalisation
def flat_denominator(block_lo: np.ndarray, block_hi: np.ndarray, weight: float) -> np.ndarray:
    """The flat (minus dark) a projection is divided by: ``(1 - w) F_lo + w F_hi`` in float32,
    exactly as :func:`nanoct.recon.preprocess.flat_field` forms it (one block alone at
    ``w = 0`` or ``1``)."""
    if weight == 0.0:
        return block_lo
    if weight == 1.0:
        return block_hi
    wi = np.float32(weight)
    return (1 - wi) * block_lo + wi * block_hi


def normalise_projection(
    raw: np.ndarray, dark: np.ndarray, denominator: np.ndarray, *, floor: float = LOG_FLOOR
) -> tuple[np.ndarray, int]:
    """Line integrals of one projection, the arithmetic of ``flat_field`` + ``minus_log``.

    Parameters
    ----------
    raw : ndarray, shape (row, column)
        Raw projection, detector units.
    dark : ndarray, shape (row, column)
        Mean dark frame (converted to float32, as ``flat_field`` subtracts it).
    denominator : ndarray, float32, shape (row, column)
        Flat minus dark (:func:`flat_denominator`).
    floor : float
        Transmissions below it (or not finite) are clipped to it before the logarithm.

    Returns
    -------
    lines : ndarray, float32
        ``-log((raw - dark) / denominator)``; 0 where the denominator is not positive.
    n_clipped : int
        Pixels clipped to ``floor`` or with a non-positive denominator (their line integral
        does not change additively with the flat, see :class:`IncrementalCT`).
    """
    raw32 = np.ascontiguousarray(raw, dtype=np.float32)
    dark32 = np.ascontiguousarray(dark, dtype=np.float32)
    den = np.ascontiguousarray(denominator, dtype=np.float32)
    if not raw32.shape == dark32.shape == den.shape:
        raise ValueError(
            f"raw {raw32.shape}, dark {dark32.shape} and denominator {den.shape} must match"
        )
    out = np.empty(raw32.shape, dtype=np.float32)
    n_bad = _transmission_kernel(raw32, dark32, den, np.float32(floor), out)
    np.log(out, out=out)  # numpy's float32 log, as minus_log (and 4x numba's here)
    np.negative(out, out=out)
    return out, int(n_bad)


@njit(cache=True, nogil=True)
def _transmission_kernel(raw, dark, den, floor, out):  # pragma: no cover
    """One pass of ``flat_field``'s float32 arithmetic and ``minus_log``'s clipping (the
    transmission, before the logarithm); returns the number of pixels with a non-positive
    denominator (set to transmission 1) or clipped to ``floor``."""
    n_bad = 0
    one = np.float32(1.0)
    for r in range(raw.shape[0]):
        for c in range(raw.shape[1]):
            t = raw[r, c] - dark[r, c]
            d = den[r, c]
            if d > 0:
                t = t / d
            else:
                t = one
                n_bad += 1
            if not (t >= floor) or t == np.inf:
                t = floor
                n_bad += 1
            out[r, c] = t
    return n_bad


@njit(cache=True, nogil=True)
def _combine(lo, hi, w, wf):  # pragma: no cover
    if w == 0.0:
        return lo
    if w == 1.0:
        return hi
    return (np.float32(1.0) - wf) * lo + wf * hi


@njit(cache=True, nogil=True)
def _flat_log_ratio(new_lo, new_hi, w_new, old_lo, old_hi, w_old, out):  # pragma: no cover
    """``F_new / F_old`` of two interpolated flats (as :func:`flat_denominator` forms them) in
    one pass; 1 where either is not positive. Returns the number of pixels where one is
    positive and the other not (there the change is not additive)."""
    changed = 0
    wn = np.float32(w_new)
    wo = np.float32(w_old)
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            dn = _combine(new_lo[r, c], new_hi[r, c], w_new, wn)
            do = _combine(old_lo[r, c], old_hi[r, c], w_old, wo)
            if (dn > 0) != (do > 0):
                changed += 1
            out[r, c] = dn / do if dn > 0 and do > 0 else np.float32(1.0)
    return changed


# --------------------------------------------------------------------------- backprojection
@njit(cache=True, fastmath=True, nogil=True)
def _bp_one(
    q, t_off, cosv, sinv, xs, ys, zs, out, sod, sdd_pix, cu, cv, mg, uu, wt
):  # pragma: no cover
    """Add one filtered projection into ``out`` (n_slices, ny, nx): voxel-driven, FDK weights,
    bilinear interpolation, as :mod:`nanoct.recon.fdk` does.

    ``q`` holds the detector rows the slices need with two rows and two columns of zeros
    around them; positions are clamped into those zero guards, so a voxel that projects off
    the detector adds exactly 0 and no index leaves ``q`` (no branches in the inner loops).
    Column position ``cu + X * M`` (``cu`` counts the guard), row position ``cv + z * M - t_off``.
    Serial on purpose: one projection into a few slices is milliseconds of work, less than it
    costs to wake threads that the acquisition (the twin, the HDF5 writer) is using; without
    the GIL, so the acquisition's Python thread runs meanwhile.
    """
    nq, nc = q.shape
    u_hi = nc - 2.0
    t_hi = nq - 2.0
    nzc, ny, nx = out.shape
    for j in range(ny):
        y = ys[j]
        cy = cosv * y
        sy = sinv * y
        for i in range(nx):
            x = xs[i]
            inv = 1.0 / (sod + (cy - sinv * x))
            m = sdd_pix * inv
            g = sod * inv
            mg[i] = m
            wt[i] = g * g
            uu[i] = min(max(cu + (cosv * x + sy) * m, 1.0), u_hi)
        for kz in range(nzc):
            z = zs[kz]
            o = out[kz, j]
            for i in range(nx):
                t = min(max(cv + z * mg[i] - t_off, 1.0), t_hi)
                kv = int(t)
                fv = t - kv
                u = uu[i]
                ku = int(u)
                fu = u - ku
                a0 = q[kv, ku]
                a1 = q[kv + 1, ku]
                top = a0 + fu * (q[kv, ku + 1] - a0)
                bottom = a1 + fu * (q[kv + 1, ku + 1] - a1)
                o[i] += wt[i] * (top + fv * (bottom - top))


class SliceBackprojector:
    """FDK of chosen slices, one projection at a time (the geometry of :mod:`nanoct.recon.fdk`).

    Parameters
    ----------
    sod_mm, sdd_mm, pixel_mm, offset_u_mm, offset_v_mm : float
        Cone-beam geometry (:class:`nanoct.recon.fdk.ConeGeometry`).
    detector_shape : (int, int)
        ``(n_rows, n_cols)`` of the (binned) projections.
    slices : int, slice or sequence of int
        Volume slices (z indices) to reconstruct.
    n_angles : int
        Projections of the whole scan (FDK's ``pi / n_angles`` factor).
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)``; default ``(n_rows, n_cols, n_cols)``.
    voxel_mm : float, optional
        Default ``pixel_mm * sod_mm / sdd_mm``.
    filter : str
        Ramp window (:data:`nanoct.recon.filters.FILTERS`).

    Notes
    -----
    Summing :meth:`add` over the projections of a full turn gives
    ``fdk(projections, angles, ..., slices=slices)`` to float rounding. Only detector rows
    :attr:`rows` are read: the rows that some voxel of the slices projects onto.
    """

    def __init__(
        self,
        *,
        sod_mm: float,
        sdd_mm: float,
        pixel_mm: float,
        detector_shape: tuple[int, int],
        slices: int | slice | Sequence[int],
        n_angles: int,
        offset_u_mm: float = 0.0,
        offset_v_mm: float = 0.0,
        volume_shape: tuple[int, int, int] | None = None,
        voxel_mm: float | None = None,
        filter: str = "ram-lak",
    ) -> None:
        for name, v in (("sod_mm", sod_mm), ("sdd_mm", sdd_mm), ("pixel_mm", pixel_mm)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}={v!r} must be a finite number > 0")
        if not sdd_mm > sod_mm:
            raise ValueError(f"sdd_mm={sdd_mm!r} must exceed sod_mm={sod_mm!r}")
        if check_filter(filter) is None:
            raise ValueError("filter must be a filter name, got None")
        n_rows, n_cols = (int(v) for v in detector_shape)
        if n_rows < 1 or n_cols < 1:
            raise ValueError(f"detector_shape={detector_shape!r} must be two sizes >= 1")
        if int(n_angles) < 1:
            raise ValueError(f"n_angles={n_angles!r} must be >= 1")
        nz, ny, nx = (n_rows, n_cols, n_cols) if volume_shape is None else volume_shape
        if min(nz, ny, nx) < 1:
            raise ValueError(f"volume_shape={volume_shape!r} must be 3 sizes >= 1")
        vox = pixel_mm * sod_mm / sdd_mm if voxel_mm is None else float(voxel_mm)
        if not (math.isfinite(vox) and vox > 0):
            raise ValueError(f"voxel_mm={voxel_mm!r} must be > 0")
        self.slices = as_slices(slices, int(nz))
        self.detector_shape = (n_rows, n_cols)
        self.volume_shape = (int(nz), int(ny), int(nx))
        self.voxel_mm = vox
        self.n_angles = int(n_angles)
        self.filter = filter
        self.sod_mm, self.sdd_mm, self.pixel_mm = float(sod_mm), float(sdd_mm), float(pixel_mm)
        self.offset_u_mm, self.offset_v_mm = float(offset_u_mm), float(offset_v_mm)
        self.xs = (np.arange(nx) - (nx - 1) / 2.0) * vox
        self.ys = (np.arange(ny) - (ny - 1) / 2.0) * vox
        self.zs = (self.slices - (nz - 1) / 2.0) * vox
        radius = math.hypot(max(abs(self.xs[0]), abs(self.xs[-1])), abs(self.ys[0]))
        radius += 0.5 * math.sqrt(2.0) * vox
        if radius >= 0.95 * sod_mm:
            raise ValueError(
                f"volume_shape/voxel_mm describe a volume of in-plane radius {radius:.4g} mm that"
                f" reaches the source (sod_mm={sod_mm!r}); reduce volume_shape or voxel_mm"
            )
        self.sdd_pix = sdd_mm / pixel_mm
        self.cu0 = (n_cols - 1) / 2.0 - offset_u_mm / pixel_mm
        self.cv0 = (n_rows - 1) / 2.0 + offset_v_mm / pixel_mm
        m_lo = self.sdd_pix / (sod_mm + radius)
        m_hi = self.sdd_pix / (sod_mm - radius)
        ends = np.concatenate([self.zs * m_lo, self.zs * m_hi]) + self.cv0
        r_lo = max(math.floor(float(ends.min())) - 1, 0)
        r_hi = min(math.floor(float(ends.max())) + 3, n_rows)
        #: Detector rows the slices need (may be empty if they lie outside the cone).
        self.rows = slice(r_lo, max(r_hi, r_lo))
        self._weights = fdk_cosine_weights(
            n_rows, n_cols, sdd_mm=sdd_mm, pixel_mm=pixel_mm, offset_u_mm=offset_u_mm,
            offset_v_mm=offset_v_mm, rows=self.rows,
        )  # fmt: skip
        tau = pixel_mm * sod_mm / sdd_mm
        self.scale = math.pi / self.n_angles / tau
        # the filtered rows with two zero rows and columns around them (see _bp_one)
        self._q = np.zeros((self.n_band_rows + 4, n_cols + 4), np.float32)
        self._scratch = tuple(np.empty(int(nx), np.float64) for _ in range(3))

    @property
    def n_band_rows(self) -> int:
        return self.rows.stop - self.rows.start

    def empty(self) -> np.ndarray:
        """A zero accumulator, float64 ``(n_slices, ny, nx)``."""
        return np.zeros((self.slices.size, *self.volume_shape[1:]), dtype=np.float64)

    def filtered(self, band: np.ndarray) -> np.ndarray:
        """Cosine-weighted, ramp-filtered, scaled rows :attr:`rows` of one projection."""
        b = np.asarray(band, dtype=np.float32)
        if b.shape != (self.n_band_rows, self.detector_shape[1]):
            raise ValueError(
                f"band must be the rows {self.rows.start}:{self.rows.stop} of a projection, "
                f"shape {(self.n_band_rows, self.detector_shape[1])}, got {b.shape}"
            )
        b = b * self._weights
        return filter_projections(b, self.filter, scale=self.scale, workers=1, out=b)

    def add(self, band: np.ndarray, angle_rad: float, out: np.ndarray, sign: float = 1.0) -> None:
        """Filter rows :attr:`rows` of one projection (line integrals) and add (``sign=+1``)
        or subtract (``-1``) its backprojection into ``out`` (float64, :meth:`empty`)."""
        if self.n_band_rows == 0:
            return
        q = self._q
        q[2:-2, 2:-2] = self.filtered(band)
        if sign != 1.0:
            q *= np.float32(sign)
        # rows: band row b sits at q row b + 2, i.e. detector row r at r - (rows.start - 2)
        _bp_one(
            q, float(self.rows.start - 2), math.cos(angle_rad), math.sin(angle_rad), self.xs,
            self.ys, self.zs, out, self.sod_mm, self.sdd_pix, self.cu0 + 2.0, self.cv0,
            *self._scratch,
        )  # fmt: skip


# --------------------------------------------------------------------------- the live state
@dataclass(slots=True)
class ProjectionRecord:
    """One projection and what its contribution to the slices was computed with."""

    index: int
    angle_rad: float
    time_s: float
    wire_xy_px: tuple[float, float]
    ref: Any
    #: dark version (number of darks averaged), flat (lo, hi, w), content shift (dx, dy) and
    #: Fourier-shift padding used for the contribution now in the slices; None: not yet in
    dark: int | None = None
    flat: tuple[int, int, float] | None = None
    shift: tuple[float, float] = (0.0, 0.0)
    pads: tuple[int, int] = (8, 8)
    #: False when a flat change cannot be applied additively (clipped pixels)
    additive: bool = True


@dataclass
class _FlatBlock:
    label: Any
    time_s: float
    mean: np.ndarray  # float32 mean of the block's raw frames


@dataclass
class _OpenBlock:
    label: Any
    total: np.ndarray
    times: list[float] = field(default_factory=list)


def _finite(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f if math.isfinite(f) else float("nan")


class IncrementalCT:
    """Live FDK of chosen slices of one ``ct_scan``: darks, flats and projections fed one
    image at a time; :meth:`current` at any moment, :meth:`finish` equal to the offline
    :func:`~nanoct.recon.pipeline.reconstruct_ct` (``algorithm='fdk'``).

    Parameters
    ----------
    metadata : mapping
        The run's start document (``geometry``, ``num_angles``, ``reference_wire``).
    slices : int, slice or sequence of int, optional
        Volume slices; default the central one.
    read_frame : callable, optional
        ``read_frame(ref) -> ndarray``: the raw projection passed as ``ref`` to
        :meth:`add_projection` (e.g. from its HDF5 file). Needed to re-read projections whose
        inputs changed (:meth:`finish`) and projections that came before any flat.
    num_angles : int, optional
        Projections of the whole scan; default ``metadata["num_angles"]``.
    detector_shape : (int, int), optional
        Checked against the metadata's.
    volume_shape, voxel_mm, center_col, filter, flat_method, drift_correction
        As :func:`~nanoct.recon.pipeline.reconstruct_ct`.

    Notes
    -----
    Memory: the slices (float64), one float32 frame per flat block and a few more, a float64
    dark per dark version in use (normally one), and a small record per projection. Not
    thread-safe: one thread feeds it.
    """

    def __init__(
        self,
        metadata: Mapping[str, Any],
        *,
        slices: int | slice | Sequence[int] | None = None,
        read_frame: Callable[[Any], np.ndarray] | None = None,
        num_angles: int | None = None,
        detector_shape: tuple[int, int] | None = None,
        volume_shape: tuple[int, int, int] | None = None,
        voxel_mm: float | None = None,
        center_col: float | None = None,
        filter: str = "ram-lak",
        flat_method: Literal["interpolate", "nearest"] = "interpolate",
        drift_correction: bool = True,
    ) -> None:
        if flat_method not in ("interpolate", "nearest"):
            raise ValueError(f"flat_method={flat_method!r} is not one of 'interpolate', 'nearest'")
        g = metadata.get("geometry") if isinstance(metadata, Mapping) else None
        tilt = _finite((g or {}).get("tilt_deg") or 0.0) if isinstance(g, Mapping) else 0.0
        if tilt != 0.0:
            raise ValueError(
                f"geometry tilt_deg={tilt!r}: live reconstruction is for the circular CT (tilt 0);"
                " reconstruct laminography offline (nanoct recon)"
            )
        det = metadata.get("detector") if isinstance(metadata, Mapping) else None
        #: A photon-counting run (the microscope's Medipix2): the slices are normalised like an
        #: integrating detector's, a preview; :meth:`finish` is not the offline counting
        #: pipeline (``LiveReconstruction`` settles such runs with it instead).
        self.counting = bool(isinstance(det, Mapping) and det.get("counting"))
        geo = pipeline.ct_geometry(metadata, detector_shape)
        rows, cols = geo["detector_shape"]
        if center_col is not None:
            c = float(center_col)
            if not (math.isfinite(c) and 0 <= c <= cols - 1):
                raise ValueError(f"center_col={center_col!r} must lie in [0, {cols - 1}]")
            geo["center_col"] = c
            geo["offset_u_mm"] = ((cols - 1) / 2.0 - c) * geo["pixel_mm"]
        n = metadata.get("num_angles") if num_angles is None else num_angles
        try:
            n_total = int(n)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"num_angles={n!r} must be the scan's number of projections") from None
        if n_total < 1:
            raise ValueError(f"num_angles={n_total!r} must be >= 1")
        nz = rows if volume_shape is None else int(volume_shape[0])
        if slices is None:
            slices = nz // 2
        self.bp = SliceBackprojector(
            sod_mm=geo["sod_mm"], sdd_mm=geo["sdd_mm"], pixel_mm=geo["pixel_mm"],
            offset_u_mm=geo["offset_u_mm"], offset_v_mm=geo["offset_v_mm"],
            detector_shape=(rows, cols), slices=slices, n_angles=n_total,
            volume_shape=volume_shape, voxel_mm=voxel_mm, filter=filter,
        )  # fmt: skip
        geo["voxel_mm"] = self.bp.voxel_mm
        self.geometry = geo
        self.n_angles = n_total
        self.flat_method = flat_method
        self.read_frame = read_frame
        self._frame_shape = (rows, cols)

        wire = metadata.get("reference_wire")
        self._wire_z_mm: float | None = None
        self._wire_regions = None
        if isinstance(wire, Mapping):
            m = _finite(wire.get("magnification"))
            if not m > 1:
                raise ValueError(f"reference_wire magnification={m!r} must be > 1")
            self._wire_z_mm = geo["sdd_mm"] / m
            if isinstance(wire.get("regions"), Mapping):
                self._wire_regions = pipeline.wire_regions(wire, (rows, cols))
        self.drift_correction = bool(drift_correction) and self._wire_z_mm is not None
        if drift_correction and self._wire_z_mm is None and not self.counting:
            logger.warning(
                "live reconstruction: the run has no reference_wire metadata; no drift correction"
            )

        self._acc = self.bp.empty()
        self._dark_sum: np.ndarray | None = None
        self._n_darks = 0
        self._darks_by_version: dict[int, np.ndarray] = {}
        self._darks32: dict[int, np.ndarray] = {}
        self._blocks: list[_FlatBlock] = []
        self._open: _OpenBlock | None = None
        self._denoms: dict[tuple[int, int], np.ndarray] = {}
        self.records: list[ProjectionRecord] = []
        self._pads = (8, 8)
        self._last_wire = (float("nan"), float("nan"))
        self._wire_found: list[tuple[float, float]] = []
        #: Seconds spent in the latest :meth:`add_projection` (the live update latency).
        self.last_update_s = float("nan")
        self.n_flat_corrections = 0

    # ---------------------------------------------------------------- inputs
    def _check_frame(self, frame: np.ndarray, what: str) -> np.ndarray:
        a = np.asarray(frame)
        if a.shape != self._frame_shape:
            raise ValueError(f"{what} frame has shape {a.shape}, the detector {self._frame_shape}")
        return a

    @property
    def n_projections(self) -> int:
        """Projections received so far."""
        return len(self.records)

    @property
    def n_darks(self) -> int:
        return self._n_darks

    @property
    def n_flat_blocks(self) -> int:
        """Closed flat blocks."""
        return len(self._blocks)

    @property
    def slice_indices(self) -> np.ndarray:
        return self.bp.slices

    def add_dark(self, frame: np.ndarray) -> None:
        """One dark frame (averaged into the dark with every other)."""
        a = self._check_frame(frame, "dark").astype(np.float64)
        self.close_flat_block()  # with the dark its projections were normalised with
        self._dark_sum = a if self._dark_sum is None else self._dark_sum + a
        self._n_darks += 1
        self._denoms.clear()

    def add_flat(self, frame: np.ndarray, time_s: float, block: Any = None) -> None:
        """One flat frame of flat block ``block`` (frames of one block come together; a new
        label, or the next projection, closes the block)."""
        a = self._check_frame(frame, "flat")
        t = _finite(time_s)
        if not math.isfinite(t):
            raise ValueError(f"time_s={time_s!r} of a flat must be finite")
        if self._open is not None and self._open.label != block:
            self.close_flat_block()
        if self._open is None:
            self._open = _OpenBlock(block, np.zeros(a.shape, np.float64))
        self._open.total += a
        self._open.times.append(t)

    def _dark(self, version: int) -> np.ndarray:
        """The mean of the first ``version`` darks, float64 (zeros without darks)."""
        if version == 0 or self._dark_sum is None:
            return np.zeros(self._frame_shape, np.float64)
        if version not in self._darks_by_version:
            if version != self._n_darks:
                raise RuntimeError(f"dark version {version} is no longer available")
            self._darks_by_version[version] = self._dark_sum / self._n_darks
        return self._darks_by_version[version]

    def _dark32(self, version: int) -> np.ndarray:
        if version not in self._darks32:
            self._darks32[version] = self._dark(version).astype(np.float32)
        return self._darks32[version]

    def _block_denominator(self, j: int, dark_version: int) -> np.ndarray:
        key = (j, dark_version)
        if key not in self._denoms:
            d = self._blocks[j].mean.astype(np.float64) - self._dark(dark_version)
            if len(self._denoms) >= _DENOMINATORS_KEPT:  # bounded: a frame each
                del self._denoms[next(iter(self._denoms))]
            self._denoms[key] = d.astype(np.float32)
        return self._denoms[key]

    def _denominator(self, flat: tuple[int, int, float], dark_version: int) -> np.ndarray:
        lo, hi, w = flat
        a = self._block_denominator(lo, dark_version)
        b = a if hi == lo else self._block_denominator(hi, dark_version)
        return flat_denominator(a, b, w)

    def _weights(self, times: np.ndarray) -> list[tuple[int, int, float]]:
        bt = np.array([b.time_s for b in self._blocks])
        lo, hi, w = preprocess.flat_weights(times, bt, method=self.flat_method)
        return [(int(a), int(b), float(c)) for a, b, c in zip(lo, hi, w, strict=True)]

    def close_flat_block(self) -> bool:
        """Close the flat block being filled (if any) and refine every projection whose flat
        interpolation it changes; True if a block was closed."""
        if self._open is None:
            return False
        ob, self._open = self._open, None
        mean = (ob.total / len(ob.times)).astype(np.float32)
        block = _FlatBlock(ob.label, float(np.mean(ob.times)), mean)
        if self._blocks and block.time_s <= self._blocks[-1].time_s:
            raise ValueError(
                f"flat block {ob.label!r} (t={block.time_s} s) is not later than the previous "
                f"one (t={self._blocks[-1].time_s} s)"
            )
        self._blocks.append(block)
        self._refine_flats()
        return True

    def _refine_flats(self) -> None:
        done = [r for r in self.records if r.flat is not None]
        if done:
            new = self._weights(np.array([r.time_s for r in done]))
            for rec, flat in zip(done, new, strict=True):
                if flat != rec.flat:
                    self._correct_flat(rec, flat)
        pending = [r for r in self.records if r.flat is None]
        if pending and self.read_frame is not None:
            for rec in pending:
                self._process(rec, self.read_frame(rec.ref))

    def _correct_flat(self, rec: ProjectionRecord, flat: tuple[int, int, float]) -> None:
        """Add ``log F_new - log F_old`` (shifted, filtered, backprojected) for one projection."""
        assert rec.flat is not None and rec.dark is not None
        (olo, ohi, ow), (nlo, nhi, nw) = rec.flat, flat
        delta = np.empty(self._frame_shape, np.float32)
        changed = _flat_log_ratio(
            self._block_denominator(nlo, rec.dark), self._block_denominator(nhi, rec.dark), nw,
            self._block_denominator(olo, rec.dark), self._block_denominator(ohi, rec.dark), ow,
            delta,
        )  # fmt: skip
        np.log(delta, out=delta)
        if changed:
            rec.additive = False
        band = shift_rows(delta, *rec.shift, self.bp.rows, pads=rec.pads)
        self.bp.add(band, rec.angle_rad, self._acc)
        rec.flat = flat
        self.n_flat_corrections += 1

    # ---------------------------------------------------------------- projections
    def _wire_reference(self) -> tuple[float, float]:
        """The running median of the wire positions found so far."""
        if not self._wire_found:
            return float("nan"), float("nan")
        found = np.array(self._wire_found)
        return float(np.median(found[:, 0])), float(np.median(found[:, 1]))

    def _content_shift(
        self, wx: np.ndarray, wy: np.ndarray, reference: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The shift that undoes the specimen's drift (``-dx, -dy`` of the pipeline)."""
        g = self.geometry
        sx, sy = alignment.spot_shift_from_wire(
            wx, wy, pixel_mm=g["pixel_mm"], sdd_mm=g["sdd_mm"], wire_z_mm=self._wire_z_mm,
            reference=reference,
        )  # fmt: skip
        dx, dy = alignment.specimen_shift_px(
            sx, sy, pixel_mm=g["pixel_mm"], sdd_mm=g["sdd_mm"], sod_mm=g["sod_mm"]
        )
        return -np.asarray(dx, dtype=np.float64), -np.asarray(dy, dtype=np.float64)

    def _lines_band(
        self,
        raw: np.ndarray,
        dark_version: int,
        flat: tuple[int, int, float],
        shift: tuple[float, float],
        pads: tuple[int, int],
    ) -> tuple[np.ndarray, int]:
        lines, n_clip = normalise_projection(
            raw, self._dark32(dark_version), self._denominator(flat, dark_version)
        )
        return shift_rows(lines, *shift, self.bp.rows, pads=pads), n_clip

    def _process(self, rec: ProjectionRecord, raw: np.ndarray) -> None:
        """First contribution of a projection, with what is known now."""
        raw = self._check_frame(raw, "projection")
        version = self._n_darks
        self._dark(version)  # keep this dark version
        (flat,) = self._weights(np.array([rec.time_s]))
        shift = (0.0, 0.0)
        if self.drift_correction:
            wx, wy = rec.wire_xy_px
            if not (math.isfinite(wx) and math.isfinite(wy)):
                wx, wy = self._last_wire
            ref = self._wire_reference()
            if math.isfinite(wx) and math.isfinite(wy) and math.isfinite(ref[0]):
                dx, dy = self._content_shift(np.array([wx]), np.array([wy]), ref)
                shift = (float(dx[0]), float(dy[0]))
        pads = shift_pads(*shift)
        self._pads = (max(self._pads[0], pads[0]), max(self._pads[1], pads[1]))
        band, n_clip = self._lines_band(raw, version, flat, shift, self._pads)
        self.bp.add(band, rec.angle_rad, self._acc)
        rec.dark, rec.flat, rec.shift, rec.pads = version, flat, shift, self._pads
        rec.additive = n_clip == 0

    def add_projection(
        self,
        frame: np.ndarray,
        angle_deg: float,
        time_s: float,
        *,
        wire_xy_px: tuple[float, float] | None = None,
        ref: Any = None,
    ) -> None:
        """Normalise, drift-correct, filter and backproject one projection into the slices.

        Parameters
        ----------
        frame : ndarray, shape (row, column)
            The raw projection (detector units).
        angle_deg : float
            Rotation angle, degrees.
        time_s : float
            Its time (the clock of the flats' times).
        wire_xy_px : (float, float), optional
            The wire shadow's column and row as recorded (``wire_x_px``, ``wire_y_px``; NaN
            where the wire was not found: interpolated in time at the end, as the offline
            chain does). None (the scan records no wire positions): measured here on the
            frame less the darks seen so far, in the regions the metadata gives (the offline
            chain measures with all darks, closing block included; the difference is far below
            the measurement's noise).
        ref : any
            Handle that ``read_frame`` turns back into this frame.
        """
        t0 = time.perf_counter()
        raw = self._check_frame(frame, "projection")
        angle, t = _finite(angle_deg), _finite(time_s)
        if not (math.isfinite(angle) and math.isfinite(t)):
            raise ValueError(f"angle_deg={angle_deg!r} and time_s={time_s!r} must be finite")
        self.close_flat_block()
        wx, wy = (float("nan"),) * 2 if wire_xy_px is None else map(_finite, wire_xy_px)
        if wire_xy_px is None and self._wire_regions is not None:
            dark = self._dark(self._n_darks)
            x, y, _ = pipeline.measure_wire(
                (raw - dark)[None].astype(np.float32), self._wire_regions
            )
            wx, wy = float(x[0]), float(y[0])
        rec = ProjectionRecord(len(self.records), math.radians(angle), t, (wx, wy), ref)
        self.records.append(rec)
        if math.isfinite(wx) and math.isfinite(wy):
            self._last_wire = (wx, wy)
            self._wire_found.append((wx, wy))
        if self._blocks:
            self._process(rec, raw)
        else:
            logger.info("projection %d came before any flat: it waits for one", rec.index)
        self.last_update_s = time.perf_counter() - t0

    # ---------------------------------------------------------------- outputs
    def current(self) -> np.ndarray:
        """The slices now, float32 ``(n_slices, ny, nx)``, 1/mm: the partial FDK sum scaled by
        ``num_angles / projections so far`` (so a half turn already shows the right scale)."""
        n = sum(1 for r in self.records if r.flat is not None)
        if n == 0:
            return np.zeros(self._acc.shape, np.float32)
        return (self._acc * (self.n_angles / n)).astype(np.float32)

    def _final_inputs(self) -> tuple[list[tuple[float, float]], tuple[int, int], bool]:
        """Final content shifts and pads (as ``reconstruct_ct`` computes them)."""
        n = len(self.records)
        zero = [(0.0, 0.0)] * n
        if not self.drift_correction or n == 0:
            return zero, (8, 8), False
        wx = np.array([r.wire_xy_px[0] for r in self.records])
        wy = np.array([r.wire_xy_px[1] for r in self.records])
        pt = np.array([r.time_s for r in self.records])
        ok = np.isfinite(wx) & np.isfinite(wy)
        if ok.sum() < max(2, n // 2):
            logger.warning(
                "live reconstruction: the wire was found in only %d of %d projections; the "
                "final slices are not drift-corrected (reconstruct_ct would refuse)",
                int(ok.sum()),
                n,
            )
            return zero, (8, 8), False
        if not ok.all():
            wx = np.interp(pt, pt[ok], wx[ok])
            wy = np.interp(pt, pt[ok], wy[ok])
        ref = (float(np.nanmedian(wx)), float(np.nanmedian(wy)))
        dx, dy = self._content_shift(wx, wy, ref)
        return list(zip(dx.tolist(), dy.tolist(), strict=True)), shift_pads(dx, dy), True

    def finish(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Settle the global quantities and return the final slices.

        Returns
        -------
        slices : ndarray, float32, shape (n_slices, ny, nx)
            Attenuation coefficient, 1/mm: ``reconstruct_ct(..., algorithm='fdk',
            slices=...)`` of the same data to float rounding.
        info : dict
            ``geometry``, ``slices`` (indices), ``n_projections``, ``drift_corrected``,
            ``reread`` (projections read again because an input changed), ``shift_px``
            ((2, n) content shifts undone), ``flat_corrections`` (additive flat refinements
            made during the scan), ``seconds``.

        Raises
        ------
        RuntimeError
            Projections must be re-read but no ``read_frame`` was given.
        """
        t0 = time.perf_counter()
        self.close_flat_block()
        n = len(self.records)
        if n and not self._blocks:
            raise ValueError("no flats: the run has no flat (open-beam) images to normalise with")
        shifts, pads, corrected = self._final_inputs()
        version = self._n_darks
        dark_final = self._dark(version)
        times = np.array([r.time_s for r in self.records])
        flats = self._weights(times) if n else []
        same_dark = {
            v: np.array_equal(self._dark(v), dark_final) for v in {r.dark for r in self.records}
            if v is not None
        }  # fmt: skip
        dirty = [
            i
            for i, r in enumerate(self.records)
            if r.flat is None
            or not r.additive
            or not same_dark[r.dark]
            or r.flat != flats[i]
            or r.shift != shifts[i]
            or (r.shift != (0.0, 0.0) and r.pads != pads)
        ]
        if dirty and self.read_frame is None:
            raise RuntimeError(
                f"{len(dirty)} projection(s) must be read again to finish exactly, but no "
                "read_frame was given"
            )
        if len(dirty) > n // 2 or not all(r.additive for r in self.records):
            # most contributions change (or one is not the sum of its flat refinements):
            # recompute every one from its frame, in one pass
            self._acc[...] = 0.0
            todo, replace = range(n), False
        else:
            todo, replace = dirty, True
        for i in todo:
            rec = self.records[i]
            raw = self._check_frame(self.read_frame(rec.ref), "projection")  # type: ignore[misc]
            band, n_clip = self._lines_band(raw, version, flats[i], shifts[i], pads)
            if replace and rec.flat is not None:
                old, _ = self._lines_band(raw, rec.dark, rec.flat, rec.shift, rec.pads)
                band = band - old
            self.bp.add(band, rec.angle_rad, self._acc)
            rec.dark, rec.flat, rec.shift, rec.pads = version, flats[i], shifts[i], pads
            rec.additive = n_clip == 0
        for i, rec in enumerate(self.records):
            rec.flat, rec.shift = flats[i], shifts[i]
        acc = self._acc if n in (0, self.n_angles) else self._acc * (self.n_angles / n)
        if n and n != self.n_angles:
            logger.warning(
                "live reconstruction: %d of %d projections; slices scaled as for %d", n,
                self.n_angles, n,
            )  # fmt: skip
        info = {
            "geometry": dict(self.geometry),
            "slices": self.bp.slices.copy(),
            "n_projections": n,
            "drift_corrected": corrected,
            "reread": len(todo) if dirty else 0,
            "shift_px": np.array(shifts, dtype=np.float64).T.reshape(2, n),
            "flat_corrections": self.n_flat_corrections,
            "seconds": time.perf_counter() - t0,
        }
        return acc.astype(np.float32), info
