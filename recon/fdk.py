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
the detector rows it projects onto are read from ``projections`` (which may be a
``numpy.memmap``, an ``h5py`` dataset or any array-like with numpy slicing), weighted, filtered
and stored as (value, slope) pairs on a padded grid; the chunk is backprojected into a buffer
and copied into the output. Peak memory is the output plus one chunk plus one chunk's
filtered rows, never twice the volume.

Backprojector: output rows ``(k, j)`` of a chunk are shared out by ``j`` (each thread owns
whole rows, so results do not depend on the thread count); angles are taken in blocks sized
so one block of filtered rows stays in L2 cache. Per (angle, row ``j``) a vectorised pass
computes the detector column, the magnification and the weight of every voxel of the row;
per slice a second vectorised pass computes the detector row index and interpolation
weights; a scalar pass gathers the bilinear samples (two 8-byte loads of value+slope pairs).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from nanoct.recon.fbp import as_angles, as_slices, check_out
from nanoct.recon.filters import check_filter, fdk_cosine_weights, filter_projections

__all__ = [
    "ConeGeometry",
    "backproject_cone",
    "fdk",
    "forward_project_cone",
]

logger = logging.getLogger(__name__)

#: Default number of slices reconstructed together.
DEFAULT_CHUNK_SLICES = 16
# Filtered rows of one angle block should stay within this many bytes (L2 cache).
_BLOCK_BYTES = 1 << 20
# Projections weighted and filtered together (bounds the FFT workspace).
_FILTER_ANGLES = 8


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
    q, cosv, sinv, xs, ys, zs, out, a0, a1, sod, sdd_pix, cu, u_hi, cv, t_lo, t_hi, row0,
    length, fdk_weight, fbuf, ubuf,
):  # pragma: no cover  # fmt: skip
    """Add angles ``a0:a1`` of the band ``q`` into the chunk ``out`` (nzc, ny, nx).

    ``q`` is ``(n_angles, n_band_rows * length)`` complex64: (value, slope along u) pairs.
    Column position of a voxel: ``cu + X * M``, clamped to ``[1, u_hi]`` (guard columns of
    zeros); absolute row position ``cv + z * M`` (a global offset makes it positive), clamped
    to ``[t_lo, t_hi]`` (guard rows of zeros); band row = ``int(...) - row0``. The clamps
    only move voxels that project off the detector (their contribution stays exactly 0) and
    keep every index inside ``q``.
    """
    nzc, ny, nx = out.shape
    f_sod = np.float32(sod)
    f_sdd = np.float32(sdd_pix)
    f_cu = np.float32(cu)
    f_cv = np.float32(cv)
    f_uhi = np.float32(u_hi)
    f_tlo = np.float32(t_lo)
    f_thi = np.float32(t_hi)
    u_row0 = np.uint32(row0)
    u_len = np.uint32(length)
    for j in prange(ny):
        tid = numba.get_thread_id()
        ku = ubuf[tid, 0]
        idx = ubuf[tid, 1]
        wu = fbuf[tid, 0]
        mg = fbuf[tid, 1]
        wt = fbuf[tid, 2]
        wa = fbuf[tid, 3]
        wb = fbuf[tid, 4]
        y = np.float32(ys[j])
        for a in range(a0, a1):
            c = np.float32(cosv[a])
            s = np.float32(sinv[a])
            sy = s * y
            cy = c * y
            for i in range(nx):
                x = np.float32(xs[i])
                inv = np.float32(1.0) / (f_sod + (cy - s * x))
                m = f_sdd * inv
                u = min(max(f_cu + (c * x + sy) * m, np.float32(1.0)), f_uhi)
                k = np.uint32(u)
                ku[i] = k
                wu[i] = u - np.float32(k)
                mg[i] = m
                g = f_sod * inv
                wt[i] = g * g if fdk_weight else np.float32(1.0)
            qa = q[a]
            for kz in range(nzc):
                z = np.float32(zs[kz])
                for i in range(nx):
                    t = min(max(f_cv + z * mg[i], f_tlo), f_thi)
                    kv = np.uint32(t)
                    w = t - np.float32(kv)
                    b = wt[i] * w
                    wb[i] = b
                    wa[i] = wt[i] - b
                    idx[i] = (kv - u_row0) * u_len + ku[i]
                o = out[kz, j]
                for i in range(nx):
                    e = idx[i]
                    f = wu[i]
                    p0 = qa[e]
                    p1 = qa[e + u_len]
                    o[i] += wa[i] * (p0.real + f * p0.imag) + wb[i] * (p1.real + f * p1.imag)


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

    def fill_band(self, projections, r_lo, r_hi, filter, pad_mode, scale, workers, q=None):
        """Weighted, filtered (value, slope) pairs of detector rows [r_lo, r_hi)."""
        n_band = r_hi - r_lo
        if q is None or q.shape != (self.na, n_band, self.length):
            q = np.empty((self.na, n_band, self.length), np.complex64)
        q[...] = 0
        d_lo, d_hi = max(r_lo, 0), min(r_hi, self.n_rows)
        if d_hi > d_lo:
            g = self.geom
            w = None
            if filter is not None:
                w = fdk_cosine_weights(
                    self.n_rows, self.n_cols, sdd_mm=g.sdd_mm, pixel_mm=g.pixel_mm,
                    offset_u_mm=g.offset_u_mm, offset_v_mm=g.offset_v_mm,
                    rows=slice(d_lo, d_hi),
                )  # fmt: skip
            values = q.real
            for a0 in range(0, self.na, _FILTER_ANGLES):
                a1 = min(self.na, a0 + _FILTER_ANGLES)
                block = np.array(projections[a0:a1, d_lo:d_hi, :], dtype=np.float32)
                if w is not None:
                    block *= w
                filter_projections(
                    block, filter, scale=scale, pad_mode=pad_mode, workers=workers, out=block
                )
                values[a0:a1, d_lo - r_lo : d_hi - r_lo, self.pad : self.pad + self.n_cols] = block
            slopes = q.imag
            np.subtract(values[:, :, 1:], values[:, :, :-1], out=slopes[:, :, :-1])
        return q

    def scratch(self):
        nt = max(numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)  # thread ids < nt
        nx = self.vol_shape[2]
        return np.empty((nt, 5, nx), np.float32), np.empty((nt, 2, nx), np.uint32)

    def angle_block(self, n_band: int) -> int:
        return int(min(self.na, max(1, _BLOCK_BYTES // (n_band * self.length * 8))))


def _cone_backproject(
    projections, angles, geom, vol_shape, voxel_mm, idx, chunk_slices, filter, pad_mode,
    scale, fdk_weight, out, workers,
):  # fmt: skip
    det_shape = _shape_of(projections)
    plan = _ConePlan(geom, angles, det_shape, vol_shape, voxel_mm)
    fbuf, ubuf = plan.scratch()
    ny, nx = vol_shape[1:]
    buf = np.empty((min(chunk_slices, idx.size), ny, nx), np.float32)
    q = None
    pos = 0
    for group in _groups(idx, chunk_slices):
        zs = plan.zs[group]
        chunk = buf[: group.size]
        chunk[...] = 0.0
        band = plan.band(zs)
        if band is None:  # these slices lie outside the cone
            out[pos : pos + group.size] = chunk
            pos += group.size
            continue
        r_lo, r_hi = band
        if q is not None and q.shape[1] != r_hi - r_lo:
            q = None  # free the previous band before allocating the next
        q = plan.fill_band(projections, r_lo, r_hi, filter, pad_mode, scale, workers, q)
        qflat = q.reshape(plan.na, -1)
        block = plan.angle_block(r_hi - r_lo)
        row0 = r_lo + plan.row_offset
        for a0 in range(0, plan.na, block):
            _bp_cone_kernel(
                qflat, plan.cos, plan.sin, plan.xs, plan.ys, zs, chunk, a0,
                min(plan.na, a0 + block), geom.sod_mm, plan.sdd_pix, plan.cu, plan.u_hi,
                plan.cv, float(row0), float(r_hi - 2 + plan.row_offset), row0, plan.length,
                fdk_weight, fbuf, ubuf,
            )  # fmt: skip
        out[pos : pos + group.size] = chunk
        pos += group.size
        logger.debug("cone backprojection: slices %d..%d done", group[0], group[-1])
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

    Returns
    -------
    numpy.ndarray
        ``(n_slices, ny, nx)`` attenuation coefficients in 1/mm (float32 unless ``out``).
    """
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
        result, workers,
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
