"""Cone-beam reconstruction (Feldkamp-Davis-Kress) for the lab CT's circular orbit.

Geometry (the digital twin's, :mod:`nanoct.devices.sim.geometry`)
-----------------------------------------------------------------
* The source (focal spot) lies at ``sod_mm`` from the rotation axis; the flat detector is
  perpendicular to the central ray at ``sdd_mm`` from the source. The central ray is the
  perpendicular from the source through the axis to the detector.
* Detector pixels have pitch ``pixel_mm`` (after binning); ``offset_u_mm, offset_v_mm`` are
  the position of the detector's centre relative to the central ray (u to the right seen from
  the source, v up). Column ``c`` lies at ``u = (c - (n_cols - 1) / 2) pixel_mm + offset_u``,
  row ``r`` (row 0 at the top) at ``v = ((n_rows - 1) / 2 - r) pixel_mm + offset_v``. The axis
  therefore projects onto column ``(n_cols - 1) / 2 - offset_u_mm / pixel_mm``.
* The volume is ``(z, y, x)``, voxel ``voxel_mm`` (default ``pixel_mm * sod / sdd``, the
  detector pixel seen at the axis), centred on the axis and on the central ray:
  ``x_i = (i - (n_x - 1) / 2) voxel``, likewise ``y_j``, and ``z_k = (k - (n_z - 1) / 2) voxel``
  pointing *down*, so slice ``k`` lies where detector row ``k`` looks through the axis (for the
  default voxel and ``n_z = n_rows``). ``x`` is the specimen's horizontal axis that points right
  at angle 0, ``y`` the one that points from the source to the detector at angle 0.
* Angle ``theta`` (radians) turns the specimen counter-clockwise seen from above (right-handed
  about the upward axis), as the twin's rotation stage does. The voxel ``(x, y, z)`` is then at
  ``X = x cos + y sin`` (across the beam) and ``Z = -x sin + y cos`` (along it, towards the
  detector), and projects onto

      u = X M,  v_down = z M,  M = sdd / (sod + Z),
      column = (n_cols - 1) / 2 + (u - offset_u) / pixel,
      row = (n_rows - 1) / 2 + (v_down + offset_v) / pixel.

  :func:`forward_project_cone` computes line integrals in exactly this geometry; in the
  parallel limit (``sod -> inf``) it agrees with :func:`nanoct.recon.fbp.fbp`'s convention.
* A laterally displaced rotation axis (the twin's ``axis_x_mm``) is, to first order, a
  detector offset ``offset_u_mm = -axis_x_mm * sdd / sod``.

FDK: cosine pre-weighting, ramp filtering along detector rows (in units of the detector
pixel seen at the axis, ``tau = pixel * sod / sdd``), and voxel-driven backprojection with
the weight ``(sod / (sod + Z))^2`` and bilinear interpolation on the detector, times
``pi / n_angles / tau``. Angles must cover a full turn uniformly (no short-scan Parker
weights); the result is the attenuation coefficient in 1/mm for line integrals of mu (1/mm)
times length (mm).

Memory: the volume is reconstructed in chunks of ``chunk_slices`` slices. For each chunk only
the detector rows it projects onto are needed. They are read from ``projections`` (which may
be a ``numpy.memmap``, an ``h5py`` dataset or any array-like with numpy slicing), weighted,
filtered and stored as (value, slope) pairs on a padded grid in a band buffer that slides with
the chunks: rows shared with the previous chunk (most of the band far from the mid-plane of a
wide cone) are kept, so with slices in increasing order every detector row is read and
filtered once. The chunk is backprojected into a buffer and copied into the output. Peak
memory is the output plus one chunk plus one band of filtered rows, never twice the volume.

Backprojector: one parallel task per thread; each owns every T-th row of the chunk
(every voxel sums its angles in the same order whatever the thread count) and walks the angles
in blocks whose filtered rows stay in its L2 cache. The chunk is stored ``(y, x, z)``. Per
(angle, row ``j``) a vectorised pass computes the detector column, the magnification and the
FDK weight of every voxel of the row; voxels whose ray misses the detector sideways (a prefix
and a suffix of the row) are skipped. Per voxel column a vectorised pass computes the detector
row index and interpolation weight of each of its slices (slices that project onto the zero
guard rows beyond the detector are skipped), and a scalar pass gathers the bilinear samples
(two 8-byte (value, slope) loads per voxel). Skipped voxels would add exactly 0, so a slice
subset or another chunk size gives bit-identical slices.

Quarter-turn symmetry: for the usual scan (``4 k`` angles uniformly over a full turn, in
order) and a square slice of even size, the voxel ``(x, y)`` at angle ``a`` projects exactly
where ``(-y, x)`` does at ``a + 90`` degrees. The detector positions and weights are then
computed once for a quadrant of the slice and serve all four rotations (four angles), which
makes the backprojection ~25 % cheaper; the four rotations are accumulated in an orbit
layout so every write stays contiguous. Other angle sets and shapes take the general path;
the two agree to float rounding (a few 1e-6 relative).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from nanoct.recon.fbp import as_angles, as_slices, check_out, check_progress
from nanoct.recon.filters import check_filter, fdk_cosine_weights, filter_projections
from nanoct.recon.scratch import thread_rows

__all__ = [
    "ConeGeometry",
    "backproject_cone",
    "fdk",
    "forward_project_cone",
]

logger = logging.getLogger(__name__)

#: Default number of slices reconstructed together.
DEFAULT_CHUNK_SLICES = 32
# Filtered rows of one angle block should stay within this many bytes (L2 cache).
_BLOCK_BYTES = 1 << 20
# Detector values weighted and filtered together (bounds the FFT workspace).
_FILTER_VALUES = 1 << 17


@dataclass(frozen=True)
class ConeGeometry:
    """Circular-orbit cone-beam geometry; see the module docstring for the conventions.

    Parameters
    ----------
    sod_mm : float
        Source to rotation axis.
    sdd_mm : float
        Source to detector (> ``sod_mm``).
    pixel_mm : float
        Detector pixel pitch after binning.
    offset_u_mm, offset_v_mm : float
        Detector centre relative to the central ray (u right, v up).
    """

    sod_mm: float
    sdd_mm: float
    pixel_mm: float
    offset_u_mm: float = 0.0
    offset_v_mm: float = 0.0

    def __post_init__(self) -> None:
        for name in ("sod_mm", "sdd_mm", "pixel_mm"):
            v = getattr(self, name)
            if not (isinstance(v, int | float | np.floating | np.integer) and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        if self.sdd_mm <= self.sod_mm:
            raise ValueError(
                f"sdd_mm must exceed sod_mm (detector behind the axis), got sdd_mm="
                f"{self.sdd_mm!r} <= sod_mm={self.sod_mm!r}"
            )
        for name in ("offset_u_mm", "offset_v_mm"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")

    @property
    def magnification(self) -> float:
        return self.sdd_mm / self.sod_mm

    @property
    def voxel_mm(self) -> float:
        """The detector pixel seen at the axis (the default voxel)."""
        return self.pixel_mm * self.sod_mm / self.sdd_mm

    def project(self, x_mm, y_mm, z_mm, theta_rad, n_rows: int, n_cols: int):
        """(row, column) of volume points (``z`` down) at angle ``theta_rad``."""
        c, s = np.cos(theta_rad), np.sin(theta_rad)
        big_x = np.asarray(x_mm) * c + np.asarray(y_mm) * s
        big_z = -np.asarray(x_mm) * s + np.asarray(y_mm) * c
        m = self.sdd_mm / (self.sod_mm + big_z)
        col = (n_cols - 1) / 2.0 + (big_x * m - self.offset_u_mm) / self.pixel_mm
        row = (n_rows - 1) / 2.0 + (np.asarray(z_mm) * m + self.offset_v_mm) / self.pixel_mm
        return row, col


# --------------------------------------------------------------------------- kernels
@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _bp_cone_kernel(
    q, cosv, sinv, xs, ys, zs, out, block, quarter, sod, sdd_pix, cu, u_hi, cv, t_lo, t_hi,
    row0, length, fdk_weight, v_zero_lo, v_zero_hi, n_groups, fbuf, ubuf, wbuf, ebuf,
):  # pragma: no cover  # fmt: skip
    """Add every angle of the band ``q`` into the chunk ``out`` (ny, nx, nzc).

    ``q`` is ``(n_angles, n_buffer_rows * length)`` complex64: (value, slope along u) pairs.
    Column position of a voxel: ``cu + X * M``, clamped to ``[1, u_hi]`` (guard columns of
    zeros); absolute row position ``cv + z * M`` (a global offset makes it positive), clamped
    to ``[t_lo, t_hi]`` (guard rows of zeros); buffer row = ``int(...) - row0``. The clamps
    only move voxels that project off the detector (their contribution stays exactly 0) and
    keep every index inside ``q``. Voxels that would only read zero guard columns (a prefix
    and a suffix of each row) or zero guard rows (row positions ``<= v_zero_lo`` or
    ``>= v_zero_hi``; only for ascending equally spaced ``zs``, else pass infinities) are
    skipped: their contribution is exactly 0. The chunk is ``(y, x, z)``: the slices of one
    voxel column are adjacent, so the per-column values (detector column, weights) are
    loaded once for all of them.

    The rows are dealt out to ``n_groups`` tasks (one per thread; task ``g`` takes rows
    ``g, g + n_groups, ...``, which balances the work: rows far from the axis skip more
    voxels); each task walks the angles in blocks of ``block`` (one block's filtered rows
    stay in its core's L2 cache while it sweeps its rows). One fork and join per chunk, no
    barrier per angle block (a thread descheduled by the shared machine no longer stalls the
    other at every block). Scratch rows are per thread (``numba.get_thread_id``), each
    thread's on pages of its own (:mod:`nanoct.recon.scratch`: rows a few cache lines apart
    made the threads slow each other down by a third). Every voxel sums its angles in a
    fixed order, whatever the tasks and threads.

    4-D ``out`` (``n_angles = 4 quarter``, angle ``a + quarter`` is angle ``a`` plus 90
    degrees, a square even ``ny = nx`` grid): the voxel ``(x, y)`` at angle ``a`` projects
    exactly where ``(-y, x)`` does at ``a + quarter``, so the detector positions and weights
    computed for one voxel of the quadrant ``j, i >= n / 2`` serve its four rotations. The
    tasks then share out the quadrant rows ``n / 2 ...`` with the four rotations of each, and
    ``out`` is in orbit layout ``(4, n / 2, n / 2, nzc)``: ``out[r, j', i']`` is the quadrant
    voxel ``(n/2 + j', n/2 + i')`` turned by ``r`` x 90 degrees, so all four rotations are
    written as contiguous rows (scattered writes into a ``(y, x, z)`` chunk made this path
    twice as slow for a 1024-wide volume).
    """
    # ``out.ndim`` is a compile-time constant: numba prunes the branch of the other layout
    sym = out.ndim == 4
    ny = 2 * out.shape[1] if sym else out.shape[0]
    f_sod = np.float32(sod)
    f_sdd = np.float32(sdd_pix)
    f_cu = np.float32(cu)
    f_cv = np.float32(cv)
    f_uhi = np.float32(u_hi)
    f_tlo = np.float32(t_lo)
    f_thi = np.float32(t_hi)
    u_row0 = np.uint32(row0)
    u_len = np.uint32(length)
    u_uhi = np.uint32(u_hi)
    na = q.shape[0]
    j_start = ny // 2 if sym else 0
    for group in prange(n_groups):
        tid = numba.get_thread_id()
        ku = ubuf[tid]
        wu = fbuf[tid, 0]
        mg = fbuf[tid, 1]
        wt = fbuf[tid, 2]
        rm = fbuf[tid, 3]
        wv = wbuf[tid]
        ev = ebuf[tid]
        for a0 in range(0, na, block):
            a1 = min(na, a0 + block)
            for j in range(j_start + group, ny, n_groups):  # interleaved: balanced work
                if out.ndim == 4:
                    _bp_cone_row_sym(
                        q, cosv, sinv, xs, ys[j], zs, out, j, a0, a1, quarter, f_sod, f_sdd,
                        f_cu, f_cv, f_uhi, f_tlo, f_thi, u_row0, u_len, u_uhi, fdk_weight,
                        v_zero_lo, v_zero_hi, ku, wu, mg, rm, wt, wv, ev,
                    )  # fmt: skip
                else:
                    _bp_cone_row(
                        q, cosv, sinv, xs, ys[j], zs, out[j], a0, a1, f_sod, f_sdd, f_cu,
                        f_cv, f_uhi, f_tlo, f_thi, u_row0, u_len, u_uhi, fdk_weight,
                        v_zero_lo, v_zero_hi, ku, wu, mg, rm, wt, wv, ev,
                    )  # fmt: skip


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _voxel_row_geometry(
    cosv, sinv, xs, i_lo, y, a, f_sod, f_sdd, f_cu, f_uhi, u_uhi, fdk_weight, ku, wu, mg, rm,
    wt,
):  # pragma: no cover  # fmt: skip
    """Detector column (``ku`` + ``wu``), magnification ``mg``, its inverse ``rm`` and FDK
    weight ``wt`` of the voxels ``xs[i_lo:]`` of a row at ``y``, angle ``a`` (stored from
    index 0); returns the range ``[i0, i1)`` (relative) whose rays hit the detector."""
    nx = xs.shape[0] - i_lo
    one = np.uint32(1)
    zero = np.float32(0.0)
    r_sdd = np.float32(1.0) / f_sdd
    c = np.float32(cosv[a])
    s = np.float32(sinv[a])
    sy = s * y
    cy = c * y
    for i in range(nx):
        x = np.float32(xs[i_lo + i])
        dist = f_sod + (cy - s * x)
        inv = np.float32(1.0) / dist
        m = f_sdd * inv
        u = min(max(f_cu + (c * x + sy) * m, np.float32(1.0)), f_uhi)
        k = np.uint32(u)
        ku[i] = k
        wu[i] = u - np.float32(k)
        mg[i] = m
        rm[i] = dist * r_sdd
        g = f_sod * inv
        wt[i] = g * g if fdk_weight else np.float32(1.0)
    # u is monotonic along the row: voxels whose ray misses the detector sideways
    # (u clamped onto a zero guard column, weight 0) are a prefix and a suffix
    i0 = 0
    while i0 < nx and ((ku[i0] == one and wu[i0] == zero) or ku[i0] >= u_uhi):
        i0 += 1
    i1 = nx
    while i1 > i0 and ((ku[i1 - 1] == one and wu[i1 - 1] == zero) or ku[i1 - 1] >= u_uhi):
        i1 -= 1
    return i0, i1


@njit(fastmath=True, boundscheck=False, cache=True, inline="always")
def _voxel_column_rows(
    zs, m, rmi, kc, f_cv, f_tlo, f_thi, u_row0, u_len, v_zero_lo, v_zero_hi, wv, ev
):  # pragma: no cover  # fmt: skip
    """Band index ``ev`` and row weight ``wv`` of every slice of a voxel column (magnification
    ``m = 1 / rmi``, detector column ``kc``); returns the slices ``[k0, k1)`` that do not
    lie on zero guard rows (0.01 row of margin: skipped ones clearly do)."""
    nzc = zs.shape[0]
    for kz in range(nzc):  # vectorised
        t = min(max(f_cv + zs[kz] * m, f_tlo), f_thi)
        kv = np.uint32(t)
        wv[kz] = t - np.float32(kv)
        ev[kz] = (kv - u_row0) * u_len + kc
    k0 = 0
    k1 = nzc
    if nzc > 1 and (v_zero_lo > -1e30 or v_zero_hi < 1e30):
        z0 = zs[0]
        rdz = np.float32(1.0) / (zs[1] - zs[0])
        if v_zero_lo > -1e30:
            k0 = min(nzc, max(0, math.floor(((v_zero_lo - 0.01 - f_cv) * rmi - z0) * rdz) + 1))
        if v_zero_hi < 1e30:
            k1 = max(k0, min(nzc, math.ceil(((v_zero_hi + 0.01 - f_cv) * rmi - z0) * rdz)))
    return k0, k1


@njit(fastmath=True, boundscheck=False, cache=True)
def _bp_cone_row(
    q, cosv, sinv, xs, y, zs, oj, a0, a1, f_sod, f_sdd, f_cu, f_cv, f_uhi, f_tlo, f_thi,
    u_row0, u_len, u_uhi, fdk_weight, v_zero_lo, v_zero_hi, ku, wu, mg, rm, wt, wv, ev,
):  # pragma: no cover  # fmt: skip
    """Angles ``a0:a1`` into one row ``oj`` (x, z) of the chunk (see the kernel)."""
    y = np.float32(y)
    for a in range(a0, a1):
        i0, i1 = _voxel_row_geometry(
            cosv, sinv, xs, 0, y, a, f_sod, f_sdd, f_cu, f_uhi, u_uhi, fdk_weight, ku, wu, mg,
            rm, wt,
        )  # fmt: skip
        qa = q[a]
        # unsigned loop variables: numba then omits the negative-index wraparound
        for i in range(np.uint64(i0), np.uint64(i1)):
            k0, k1 = _voxel_column_rows(
                zs, mg[i], rm[i], ku[i], f_cv, f_tlo, f_thi, u_row0, u_len, v_zero_lo,
                v_zero_hi, wv, ev,
            )  # fmt: skip
            f = wu[i]
            g = wt[i]
            for kz in range(np.uint64(k0), np.uint64(k1)):  # scalar: 2 pairs per voxel
                e = ev[kz]
                p0 = qa[e]
                p1 = qa[e + u_len]
                lo = p0.real + f * p0.imag
                hi = p1.real + f * p1.imag
                oj[i, kz] += g * (lo + wv[kz] * (hi - lo))


@njit(fastmath=True, boundscheck=False, cache=True)
def _bp_cone_row_sym(
    q, cosv, sinv, xs, y, zs, out, j, a0, a1, quarter, f_sod, f_sdd, f_cu, f_cv, f_uhi, f_tlo,
    f_thi, u_row0, u_len, u_uhi, fdk_weight, v_zero_lo, v_zero_hi, ku, wu, mg, rm, wt, wv, ev,
):  # pragma: no cover  # fmt: skip
    """Base angles ``a0:a1`` for the quadrant row ``j`` and its three 90-degree rotations.

    Voxel ``(i, j)`` (column, row) at angle ``a`` gets the same detector samples as
    ``(n-1-j, i)`` at ``a + quarter``, ``(n-1-i, n-1-j)`` at ``a + 2 quarter`` and
    ``(j, n-1-i)`` at ``a + 3 quarter``; they are accumulated in ``out[r, j - n/2, i - n/2]``
    for ``r = 0 .. 3`` (orbit layout, see the kernel).
    """
    n = xs.shape[0]
    half = n // 2
    na = q.shape[0]
    jq = np.uint64(j - half)
    y = np.float32(y)
    for a in range(a0, a1):
        i0, i1 = _voxel_row_geometry(
            cosv, sinv, xs, half, y, a, f_sod, f_sdd, f_cu, f_uhi, u_uhi, fdk_weight, ku, wu,
            mg, rm, wt,
        )  # fmt: skip
        q0 = q[a]
        q1 = q[(a + quarter) % na]
        q2 = q[(a + 2 * quarter) % na]
        q3 = q[(a + 3 * quarter) % na]
        for ii in range(np.uint64(i0), np.uint64(i1)):
            k0, k1 = _voxel_column_rows(
                zs, mg[ii], rm[ii], ku[ii], f_cv, f_tlo, f_thi, u_row0, u_len, v_zero_lo,
                v_zero_hi, wv, ev,
            )  # fmt: skip
            f = wu[ii]
            g = wt[ii]
            o0 = out[0, jq, ii]
            o1 = out[1, jq, ii]
            o2 = out[2, jq, ii]
            o3 = out[3, jq, ii]
            for kz in range(np.uint64(k0), np.uint64(k1)):  # scalar: 4 x 2 pairs
                e = ev[kz]
                w = wv[kz]
                e1 = e + u_len
                p0 = q0[e]
                p1 = q0[e1]
                lo = p0.real + f * p0.imag
                hi = p1.real + f * p1.imag
                o0[kz] += g * (lo + w * (hi - lo))
                p0 = q1[e]
                p1 = q1[e1]
                lo = p0.real + f * p0.imag
                hi = p1.real + f * p1.imag
                o1[kz] += g * (lo + w * (hi - lo))
                p0 = q2[e]
                p1 = q2[e1]
                lo = p0.real + f * p0.imag
                hi = p1.real + f * p1.imag
                o2[kz] += g * (lo + w * (hi - lo))
                p0 = q3[e]
                p1 = q3[e1]
                lo = p0.real + f * p0.imag
                hi = p1.real + f * p1.imag
                o3[kz] += g * (lo + w * (hi - lo))


@njit(parallel=True, boundscheck=False, cache=True)
def _fp_cone_kernel(
    vol, cosv, sinv, vox, sod, sdd, pix, off_u, off_v, n_rows, n_cols, out
):  # pragma: no cover  # fmt: skip
    """Ray-driven (Joseph) cone-beam line integrals; one angle per task."""
    nz, ny, nx = vol.shape
    na = cosv.shape[0]
    cx = (nx - 1) / 2.0
    cy = (ny - 1) / 2.0
    cz = (nz - 1) / 2.0
    for a in prange(na):
        c = cosv[a]
        s = sinv[a]
        sx0 = sod * s
        sy0 = -sod * c
        for r in range(n_rows):
            vd = (r - (n_rows - 1) / 2.0) * pix - off_v
            for col in range(n_cols):
                u = (col - (n_cols - 1) / 2.0) * pix + off_u
                dx = u * c - sdd * s
                dy = u * s + sdd * c
                dz = vd
                norm = math.sqrt(dx * dx + dy * dy + dz * dz)
                acc = 0.0
                if abs(dy) >= abs(dx):
                    step = vox * norm / abs(dy)
                    for j in range(ny):
                        t = ((j - cy) * vox - sy0) / dy
                        fi = (sx0 + t * dx) / vox + cx
                        fk = (t * dz) / vox + cz
                        i0 = math.floor(fi)
                        k0 = math.floor(fk)
                        if i0 < -1 or i0 > nx - 1 or k0 < -1 or k0 > nz - 1:
                            continue
                        wi = fi - i0
                        wk = fk - k0
                        v = 0.0
                        if k0 >= 0:
                            if i0 >= 0:
                                v += (1 - wk) * (1 - wi) * vol[k0, j, i0]
                            if i0 + 1 < nx:
                                v += (1 - wk) * wi * vol[k0, j, i0 + 1]
                        if k0 + 1 < nz:
                            if i0 >= 0:
                                v += wk * (1 - wi) * vol[k0 + 1, j, i0]
                            if i0 + 1 < nx:
                                v += wk * wi * vol[k0 + 1, j, i0 + 1]
                        acc += v
                else:
                    step = vox * norm / abs(dx)
                    for i in range(nx):
                        t = ((i - cx) * vox - sx0) / dx
                        fj = (sy0 + t * dy) / vox + cy
                        fk = (t * dz) / vox + cz
                        j0 = math.floor(fj)
                        k0 = math.floor(fk)
                        if j0 < -1 or j0 > ny - 1 or k0 < -1 or k0 > nz - 1:
                            continue
                        wj = fj - j0
                        wk = fk - k0
                        v = 0.0
                        if k0 >= 0:
                            if j0 >= 0:
                                v += (1 - wk) * (1 - wj) * vol[k0, j0, i]
                            if j0 + 1 < ny:
                                v += (1 - wk) * wj * vol[k0, j0 + 1, i]
                        if k0 + 1 < nz:
                            if j0 >= 0:
                                v += wk * (1 - wj) * vol[k0 + 1, j0, i]
                            if j0 + 1 < ny:
                                v += wk * wj * vol[k0 + 1, j0 + 1, i]
                        acc += v
                out[a, r, col] = acc * step


# --------------------------------------------------------------------------- helpers
def _shape_of(projections) -> tuple[int, int, int]:
    shape = getattr(projections, "shape", None)
    if shape is None:
        raise ValueError("projections must be an array-like with a shape")
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"projections must be 3-D (angle, row, column) and non-empty, got shape {shape}"
        )
    dtype = np.dtype(getattr(projections, "dtype", np.float32))
    if dtype.kind not in "fiu":
        raise ValueError(f"projections must be real numbers, got dtype {dtype}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _volume(volume_shape, n_rows: int, n_cols: int) -> tuple[int, int, int]:
    if volume_shape is None:
        return n_rows, n_cols, n_cols
    try:
        shp = tuple(int(s) for s in volume_shape)
    except TypeError:
        raise ValueError(f"volume_shape must be (nz, ny, nx), got {volume_shape!r}") from None
    if len(shp) != 3 or min(shp) < 1:
        raise ValueError(f"volume_shape must be 3 positive sizes (nz, ny, nx), got {shp!r}")
    return shp  # type: ignore[return-value]


#: Largest mismatch (radians, as cos/sin differences) for which angle ``a + n/4`` counts as
#: angle ``a`` plus 90 degrees: it moves a voxel 1000 pixels from the axis by 1e-3 pixel.
_QUARTER_TOL = 1e-6


def _quarter_turn(cos: np.ndarray, sin: np.ndarray) -> int:
    """``n / 4`` when angle ``a + n / 4`` is angle ``a`` plus 90 degrees for every ``a``
    (a uniform full turn of ``4 k`` projections in order), else 0."""
    n = cos.size
    if n < 4 or n % 4:
        return 0
    k = n // 4
    c2, s2 = np.roll(cos, -k), np.roll(sin, -k)  # angle a + n/4
    ok = np.abs(c2 + sin).max() < _QUARTER_TOL and np.abs(s2 - cos).max() < _QUARTER_TOL
    return k if ok else 0


def _groups(idx: np.ndarray, chunk: int) -> list[np.ndarray]:
    """Split requested slices into runs of at most ``chunk`` that span at most ``chunk``."""
    groups: list[np.ndarray] = []
    start = 0
    for n in range(1, idx.size + 1):
        if n == idx.size or n - start >= chunk or abs(int(idx[n]) - int(idx[start])) >= chunk:
            groups.append(idx[start:n])
            start = n
    return groups


class _ConePlan:
    """Everything a chunked cone backprojection of one geometry needs."""

    def __init__(self, geom: ConeGeometry, angles, det_shape, vol_shape, voxel_mm):
        na, n_rows, n_cols = det_shape
        nz, ny, nx = vol_shape
        self.geom, self.na, self.n_rows, self.n_cols = geom, na, n_rows, n_cols
        self.vol_shape = vol_shape
        self.vox = voxel_mm
        self.cos, self.sin = np.cos(angles), np.sin(angles)
        self.xs = (np.arange(nx) - (nx - 1) / 2.0) * voxel_mm
        self.ys = (np.arange(ny) - (ny - 1) / 2.0) * voxel_mm
        self.quarter = _quarter_turn(self.cos, self.sin) if nx == ny and nx % 2 == 0 else 0
        self.zs = (np.arange(nz) - (nz - 1) / 2.0) * voxel_mm
        # in-plane radius of the volume (corner); the source must lie outside it
        radius = math.hypot(max(abs(self.xs[0]), abs(self.xs[-1])), abs(self.ys[0]))
        radius += 0.5 * math.sqrt(2.0) * voxel_mm
        if radius >= 0.95 * geom.sod_mm:
            raise ValueError(
                f"volume_shape/voxel_mm describe a volume of in-plane radius {radius:.4g} mm that"
                f" reaches the source (sod_mm={geom.sod_mm!r}); reduce volume_shape or voxel_mm"
            )
        self.radius = radius
        pix = geom.pixel_mm
        self.sdd_pix = geom.sdd_mm / pix
        self.m_min = geom.sdd_mm / (geom.sod_mm + radius) / pix  # pixels per mm
        self.m_max = geom.sdd_mm / (geom.sod_mm - radius) / pix
        cu0 = (n_cols - 1) / 2.0 - geom.offset_u_mm / pix
        # two zero guard columns on each side; column positions are clamped into them
        self.pad = 2
        self.length = n_cols + 4
        self.cu = cu0 + self.pad
        self.u_hi = float(self.pad + n_cols)
        self.cv0 = (n_rows - 1) / 2.0 + geom.offset_v_mm / pix
        # global offset making every row position positive (same for every chunk/subset)
        z_ext = max(abs(self.zs[0]), abs(self.zs[-1])) + voxel_mm
        self.row_offset = max(2, math.ceil(z_ext * self.m_max - self.cv0) + 2)
        self.cv = self.cv0 + self.row_offset

    def band(self, zs: np.ndarray) -> tuple[int, int] | None:
        """Detector rows ``[r_lo, r_hi)`` a chunk needs, cut to the detector plus two zero
        guard rows on each side; None when the chunk projects off the detector entirely."""
        cand = np.array([zs.min(), zs.max()])[:, None] * np.array([self.m_min, self.m_max])
        r_lo = math.floor(self.cv0 + cand.min()) - 2
        r_hi = math.ceil(self.cv0 + cand.max()) + 3
        if r_hi <= 0 or r_lo >= self.n_rows:
            return None
        return max(r_lo, -2), min(r_hi, self.n_rows + 2)

    def scratch(self, nzc: int):
        """Work arrays of the kernel, one set per thread (ids below the thread count), each
        thread's on pages of its own (:mod:`nanoct.recon.scratch`)."""
        nx = self.vol_shape[2]
        return (
            thread_rows((4, nx), np.float32, offset=0),
            thread_rows((nx,), np.uint32, offset=1024),
            thread_rows((nzc,), np.float32, offset=2048),
            thread_rows((nzc,), np.uint32, offset=3072),
        )

    def angle_block(self, n_band: int) -> int:
        return int(min(self.na, max(1, _BLOCK_BYTES // (n_band * self.length * 8))))


@njit(boundscheck=False, cache=True)
def _store_rows(block, buf, a0, pos, pad):  # pragma: no cover
    """Write filtered rows ``block`` (angles, rows, n_cols) into ``buf[a0 + a, pos + r]`` as
    (value, slope to the next column) pairs on the zero-padded column grid.

    Serial on purpose: it is a copy of a small block, and waking the worker threads for it
    cost more than the copy (measured: 4 ms per call with 2 threads, 0.2 ms serial)."""
    na, nr, nc = block.shape
    length = buf.shape[2]
    for a in range(na):
        for r in range(nr):
            src = block[a, r]
            dst = buf[a0 + a, pos + r]
            for c in range(pad - 1):
                dst[c] = 0
            dst[pad - 1] = complex(0.0, src[0])
            for c in range(nc - 1):
                dst[pad + c] = complex(src[c], src[c + 1] - src[c])
            dst[pad + nc - 1] = complex(src[nc - 1], -src[nc - 1])
            for c in range(pad + nc, length):
                dst[c] = 0


class _BandCache:
    """Weighted, filtered detector rows as (value, column slope) pairs, kept across chunks.

    Rows ``[lo, hi)`` of consecutive chunks overlap (by most of a band far from the
    mid-plane of a wide cone); rows already filtered for the previous chunk are kept, and
    only new rows are read and filtered, so every detector row is filtered once when the
    slices come in increasing order. Buffer ``(n_angles, capacity, length)`` complex64;
    buffer row ``k`` holds detector row ``base + k``; rows outside the detector are zeros.
    """

    def __init__(self, plan, projections, filter, pad_mode, scale, workers, max_band: int):
        self.plan, self.projections = plan, projections
        self.filter, self.pad_mode, self.scale, self.workers = filter, pad_mode, scale, workers
        self.capacity = max_band + max(8, max_band // 4)
        self.buf = np.empty((plan.na, self.capacity, plan.length), np.complex64)
        self.base = 0
        self.lo = 0
        self.hi = 0  # rows [lo, hi) are valid at buffer rows [lo - base, hi - base)

    def band(self, lo: int, hi: int) -> int:
        """Make detector rows ``[lo, hi)`` valid; return the detector row at buffer row 0."""
        if self.lo <= lo < self.hi and hi >= self.hi:
            if hi - self.base > self.capacity:  # slide: keep [lo, self.hi) at the start
                src, n = lo - self.base, self.hi - lo
                for a in range(self.plan.na):  # per angle: numpy copes with the overlap
                    self.buf[a, :n] = self.buf[a, src : src + n]
                self.base = lo
            self._fill(self.hi, hi)
            self.lo, self.hi = max(self.lo, self.base), hi
        elif not (self.lo <= lo and hi <= self.hi):
            self.base = lo
            self._fill(lo, hi)
            self.lo, self.hi = lo, hi
        return self.base

    def _fill(self, lo: int, hi: int) -> None:
        plan = self.plan
        if hi <= lo:
            return
        d_lo, d_hi = max(lo, 0), min(hi, plan.n_rows)
        if d_hi <= d_lo:
            self.buf[:, lo - self.base : hi - self.base] = 0
            return
        self.buf[:, lo - self.base : d_lo - self.base] = 0  # guard rows off the detector
        self.buf[:, d_hi - self.base : hi - self.base] = 0
        g = plan.geom
        w = fdk_cosine_weights(
            plan.n_rows, plan.n_cols, sdd_mm=g.sdd_mm, pixel_mm=g.pixel_mm,
            offset_u_mm=g.offset_u_mm, offset_v_mm=g.offset_v_mm, rows=slice(d_lo, d_hi),
        ) if self.filter is not None else None  # fmt: skip
        n_ang = max(1, min(plan.na, _FILTER_VALUES // ((d_hi - d_lo) * plan.n_cols)))
        for a0 in range(0, plan.na, n_ang):
            a1 = min(plan.na, a0 + n_ang)
            block = np.array(self.projections[a0:a1, d_lo:d_hi, :], dtype=np.float32)
            if w is not None:
                block *= w
            filter_projections(
                block, self.filter, scale=self.scale, pad_mode=self.pad_mode,
                workers=self.workers, out=block,
            )  # fmt: skip
            _store_rows(block, self.buf, a0, d_lo - self.base, plan.pad)


def _cone_backproject(
    projections, angles, geom, vol_shape, voxel_mm, idx, chunk_slices, filter, pad_mode,
    scale, fdk_weight, out, workers, progress=None,
):  # fmt: skip
    det_shape = _shape_of(projections)
    plan = _ConePlan(geom, angles, det_shape, vol_shape, voxel_mm)
    ny, nx = vol_shape[1:]
    n_chunk = min(chunk_slices, idx.size)
    scratch = plan.scratch(n_chunk)
    buf = np.empty(n_chunk * ny * nx, np.float32)
    groups = _groups(idx, chunk_slices)
    bands = [plan.band(plan.zs[group]) for group in groups]
    max_band = max((b[1] - b[0] for b in bands if b is not None), default=0)
    cache = None
    if max_band:
        cache = _BandCache(plan, projections, filter, pad_mode, scale, workers, max_band)
        qflat = cache.buf.reshape(plan.na, -1)
    pos = 0
    for group, band in zip(groups, bands, strict=True):
        zs = plan.zs[group].astype(np.float32)
        if plan.quarter:  # orbit layout (rotation, y, x, z) of the quadrant y, x >= n / 2
            chunk = buf[: group.size * ny * nx].reshape(4, ny // 2, nx // 2, group.size)
        else:
            chunk = buf[: group.size * ny * nx].reshape(ny, nx, group.size)  # (y, x, z)
        chunk[...] = 0.0
        if band is None:  # these slices lie outside the cone
            out[pos : pos + group.size] = 0.0
            pos += group.size
            if progress is not None:
                progress(pos, idx.size)
            continue
        r_lo, r_hi = band
        base = cache.band(r_lo, r_hi)
        block = plan.angle_block(r_hi - r_lo)
        row0 = base + plan.row_offset
        t_lo = float(r_lo + plan.row_offset)
        t_hi = float(r_hi - 2 + plan.row_offset)
        # rows beyond the detector's are zero guard rows when the band reaches them
        even = group.size > 1 and bool(np.all(np.diff(group) == 1))
        v_zero_lo = -1.0 + plan.row_offset if even and r_lo < 0 else -math.inf
        v_zero_hi = plan.n_rows + plan.row_offset if even and r_hi > plan.n_rows else math.inf
        n_rows = ny // 2 if plan.quarter else ny
        n_groups = min(n_rows, max(1, numba.get_num_threads()))
        _bp_cone_kernel(
            qflat, plan.cos, plan.sin, plan.xs, plan.ys, zs, chunk,
            max(1, block // 4) if plan.quarter else block, plan.quarter, geom.sod_mm,
            plan.sdd_pix, plan.cu, plan.u_hi, plan.cv, t_lo, t_hi, row0, plan.length,
            fdk_weight, v_zero_lo, v_zero_hi, n_groups, *scratch,
        )  # fmt: skip
        if plan.quarter:  # rotation r holds the quadrant voxels turned r x 90 degrees
            h = ny // 2
            dst = out[pos : pos + group.size]
            dst[:, h:, h:] = chunk[0].transpose(2, 0, 1)
            dst[:, h:, :h] = chunk[1].transpose(2, 1, 0)[:, :, ::-1]
            dst[:, :h, :h] = chunk[2].transpose(2, 0, 1)[:, ::-1, ::-1]
            dst[:, :h, h:] = chunk[3].transpose(2, 1, 0)[:, ::-1, :]
        else:
            out[pos : pos + group.size] = chunk.transpose(2, 0, 1)
        pos += group.size
        logger.debug("cone backprojection: slices %d..%d done", group[0], group[-1])
        if progress is not None:
            progress(pos, idx.size)
    return out


def _resolve_voxel(voxel_mm, geom: ConeGeometry) -> float:
    if voxel_mm is None:
        return geom.voxel_mm
    v = float(voxel_mm)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"voxel_mm must be > 0, got {voxel_mm!r}")
    return v


def _resolve_chunk(chunk_slices) -> int:
    c = int(chunk_slices)
    if c < 1 or c != chunk_slices:
        raise ValueError(f"chunk_slices must be a positive integer, got {chunk_slices!r}")
    return c


# --------------------------------------------------------------------------- public API
def fdk(
    projections,
    angles,
    *,
    sod_mm: float,
    sdd_mm: float,
    pixel_mm: float,
    offset_u_mm: float = 0.0,
    offset_v_mm: float = 0.0,
    volume_shape: tuple[int, int, int] | None = None,
    voxel_mm: float | None = None,
    slices: int | slice | Sequence[int] | None = None,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    filter: str = "ram-lak",
    pad_mode: str = "zero",
    out: np.ndarray | None = None,
    workers: int | None = -1,
    progress: Callable[[int, int], Any] | None = None,
) -> np.ndarray:
    """Feldkamp-Davis-Kress reconstruction of a full circular cone-beam scan.

    Parameters
    ----------
    projections : array_like, shape (n_angles, n_rows, n_cols)
        Line integrals (``-log`` of the normalised transmission). Any array-like with numpy
        slicing (``numpy.memmap``, ``h5py.Dataset``) works: rows are read chunk by chunk.
    angles : array_like
        Radians, one per projection, uniformly covering a full turn; sign convention in the
        module docstring.
    sod_mm, sdd_mm, pixel_mm, offset_u_mm, offset_v_mm : float
        Geometry (:class:`ConeGeometry`).
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)``; default ``(n_rows, n_cols, n_cols)``.
    voxel_mm : float, optional
        Isotropic voxel; default ``pixel_mm * sod_mm / sdd_mm``.
    slices : int, slice or sequence of int, optional
        Slices (z indices of the full volume) to reconstruct, e.g. a few for a live view;
        the result has them in the given order and equals those slices of the full volume.
    chunk_slices : int
        Slices reconstructed together (memory: one chunk buffer of ``chunk x ny x nx``
        float32 plus the filtered detector rows it needs).
    filter : str
        Ramp window (:data:`nanoct.recon.filters.FILTERS`).
    pad_mode : {"zero", "edge"}
        Row padding before filtering.
    out : numpy.ndarray, optional
        float32/float64 ``(n_slices, ny, nx)`` to fill, e.g. a ``numpy.memmap``.
    workers : int, optional
        FFT threads (``-1``: all CPUs).
    progress : callable, optional
        ``progress(done, total)`` after each chunk: slices finished so far, of ``total``.

    Returns
    -------
    numpy.ndarray
        ``(n_slices, ny, nx)`` attenuation coefficients in 1/mm (float32 unless ``out``).
    """
    check_progress(progress)
    det = _shape_of(projections)
    a = as_angles(angles, det[0])
    if check_filter(filter) is None:
        raise ValueError("filter must be a filter name for fdk, got None")
    geom = ConeGeometry(sod_mm, sdd_mm, pixel_mm, offset_u_mm, offset_v_mm)
    vol_shape = _volume(volume_shape, det[1], det[2])
    vox = _resolve_voxel(voxel_mm, geom)
    chunk = _resolve_chunk(chunk_slices)
    idx = as_slices(slices, vol_shape[0])
    span = float(a.max() - a.min()) * a.size / max(a.size - 1, 1)
    if span < 2 * math.pi * 0.98:
        logger.warning(
            "fdk: angles cover %.1f deg; FDK here assumes a full turn (no short-scan weights)",
            math.degrees(span),
        )
    result = check_out(out, (idx.size, vol_shape[1], vol_shape[2]))
    if result is None:
        result = np.empty((idx.size, vol_shape[1], vol_shape[2]), np.float32)
    tau = pixel_mm * sod_mm / sdd_mm
    scale = math.pi / a.size / tau
    return _cone_backproject(
        projections, a, geom, vol_shape, vox, idx, chunk, filter, pad_mode, scale, True,
        result, workers, progress,
    )  # fmt: skip


def backproject_cone(
    projections,
    angles,
    *,
    sod_mm: float,
    sdd_mm: float,
    pixel_mm: float,
    offset_u_mm: float = 0.0,
    offset_v_mm: float = 0.0,
    volume_shape: tuple[int, int, int] | None = None,
    voxel_mm: float | None = None,
    chunk_slices: int = DEFAULT_CHUNK_SLICES,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Unfiltered, unweighted voxel-driven backprojection (sum over angles).

    Each voxel receives the bilinear interpolation of every projection where it projects
    (the approximate transpose of :func:`forward_project_cone`; used by SIRT).
    """
    det = _shape_of(projections)
    a = as_angles(angles, det[0])
    geom = ConeGeometry(sod_mm, sdd_mm, pixel_mm, offset_u_mm, offset_v_mm)
    vol_shape = _volume(volume_shape, det[1], det[2])
    vox = _resolve_voxel(voxel_mm, geom)
    idx = np.arange(vol_shape[0])
    result = check_out(out, vol_shape)
    if result is None:
        result = np.empty(vol_shape, np.float32)
    return _cone_backproject(
        projections, a, geom, vol_shape, vox, idx, _resolve_chunk(chunk_slices), None,
        "zero", 1.0, False, result, -1,
    )  # fmt: skip


def forward_project_cone(
    volume,
    angles,
    *,
    sod_mm: float,
    sdd_mm: float,
    pixel_mm: float,
    detector_shape: tuple[int, int],
    offset_u_mm: float = 0.0,
    offset_v_mm: float = 0.0,
    voxel_mm: float | None = None,
) -> np.ndarray:
    """Cone-beam line integrals of a voxel volume (ray-driven, Joseph interpolation).

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Attenuation coefficients (1/mm), zero outside; geometry in the module docstring.
    angles : array_like
        Radians.
    sod_mm, sdd_mm, pixel_mm, offset_u_mm, offset_v_mm : float
        Geometry (:class:`ConeGeometry`).
    detector_shape : (int, int)
        ``(n_rows, n_cols)``.
    voxel_mm : float, optional
        Default ``pixel_mm * sod_mm / sdd_mm``.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_angles, n_rows, n_cols)`` line integrals (dimensionless). Each ray
        steps through the voxel planes across its dominant horizontal direction with
        bilinear interpolation in the plane (cone angles up to 45 degrees).
    """
    v = np.asarray(volume)
    if v.ndim != 3 or min(v.shape) < 1 or v.dtype.kind not in "fiu":
        raise ValueError(f"volume must be a non-empty 3-D real array, got shape {v.shape}")
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)):
        raise ValueError("angles must be a non-empty 1-D array of finite radians")
    try:
        n_rows, n_cols = (int(s) for s in detector_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"detector_shape must be (n_rows, n_cols), got {detector_shape!r}"
        ) from None
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"detector_shape must be positive, got {detector_shape!r}")
    geom = ConeGeometry(sod_mm, sdd_mm, pixel_mm, offset_u_mm, offset_v_mm)
    vox = _resolve_voxel(voxel_mm, geom)
    ny, nx = v.shape[1:]
    radius = 0.5 * vox * math.hypot(nx, ny)
    if radius >= geom.sod_mm:
        raise ValueError(
            f"the volume (in-plane radius {radius:.4g} mm) reaches the source (sod_mm={sod_mm!r})"
        )
    out = np.empty((a.size, n_rows, n_cols), np.float64)
    _fp_cone_kernel(
        np.ascontiguousarray(v, dtype=np.float64), np.cos(a), np.sin(a), vox, geom.sod_mm,
        geom.sdd_mm, geom.pixel_mm, geom.offset_u_mm, geom.offset_v_mm, n_rows, n_cols, out,
    )  # fmt: skip
    return out.astype(np.float32)
