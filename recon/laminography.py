"""Laminography: reconstruction for rotation about an axis tilted against the beam.

One geometry serves computed tomography (``tilt_deg = 0``) and laminography (``tilt_deg != 0``),
in parallel beam (``sod_mm=None``) or cone beam; the same projector pair and the same filtered
backprojection handle every case.

Geometry
--------
* Lab frame (mm), as in :mod:`nanoct.recon.fdk`: ``X`` across the beam (to the right seen from
  the source), ``B`` along the beam (from the source towards the detector), ``V`` pointing
  *down*. The central ray runs along ``B`` through the rotation centre; in cone beam the source
  lies at ``B = -sod_mm`` and the flat detector in the plane ``B = sdd_mm - sod_mm``.
* Specimen frame: the volume ``(z, y, x)`` with voxel ``voxel_mm`` centred on the rotation
  centre, ``x_i = (i - (n_x - 1) / 2) voxel`` (likewise ``y``, ``z``). Its ``z`` axis is the
  rotation axis, pointing down at zero tilt, so a flat specimen mounted perpendicular to the
  axis (a chip on the stage) lies in ``z`` slices.
* A point ``(x, y, z)`` at rotation angle ``theta`` (radians, counter-clockwise seen from the
  upper end of the axis, as :mod:`nanoct.recon.fdk`) and tilt ``a = tilt_deg`` sits at

      X = x cos(theta) + y sin(theta)
      R = -x sin(theta) + y cos(theta)
      B = R cos(a) - z sin(a)
      V = R sin(a) + z cos(a)

  i.e. the stage turns the specimen about its axis, and the axis itself is turned by ``a``
  about the lab ``X`` axis: a positive ``tilt_deg`` moves the upper end of the axis towards the
  detector. At ``tilt_deg = 0`` this is exactly :class:`nanoct.recon.fdk.ConeGeometry` (and, in
  parallel beam, :func:`nanoct.recon.fbp.fbp` with ``center_col = (n_cols - 1) / 2 -
  offset_u_mm / pixel_mm`` and ``voxel_mm = pixel_mm``).
* Projection: ``M = sdd / (sod + B)`` (cone) or ``M = 1`` (parallel);
  ``column = (n_cols - 1) / 2 + (X M - offset_u_mm) / pixel_mm``,
  ``row = (n_rows - 1) / 2 + (V M + offset_v_mm) / pixel_mm`` (row 0 at the top). The axis
  projects onto the column ``(n_cols - 1) / 2 - offset_u_mm / pixel_mm`` at every tilt: the
  detector rows run perpendicular to the projected axis.

What a tilted axis can measure
------------------------------
Each projection samples the object's 3-D Fourier transform on the plane perpendicular to its
ray direction (parallel beam). The rays make the angle ``90 deg - |a|`` with the axis, so a
full turn covers every frequency except a double cone of half-angle ``|a|`` about the axis:
in-plane structure of a flat specimen (frequencies perpendicular to the axis) is measured at
every tilt below 90 deg, while the slowly varying part along the axis is not. A limited-angle
CT of the same flat specimen misses a wedge instead (every frequency within the missing angular
range, whatever its component along the CT axis).

Filtered backprojection (:func:`fbp_lamino`)
--------------------------------------------
Parallel beam (exact, for a full turn of uniformly spaced angles): change variables from
``(theta, w_u, w_v)`` (angle, detector frequencies) to the 3-D frequency ``k``:
``d^3k = |w_u| cos(a) dw_u dw_v dtheta`` and every measured ``k`` is reached twice in a full
turn. Hence

    f(r) = (cos(a) / 2) int_0^2pi (h * p_theta)(u(r), v(r)) dtheta,

with ``h`` the 1-D ramp ``|w_u|`` along the detector rows (perpendicular to the projected axis)
and no filter along the columns; frequencies inside the missing cone come out as zero. The
discrete weight is ``pi cos(a) / n_angles``, equal to FBP's ``pi / n_angles`` at zero tilt.

Cone beam (approximate, FDK-type, as FDK itself is): cosine pre-weighting of the detector,
the same ramp along rows in units of the detector pixel seen at the axis
(``tau = pixel sod / sdd``), and backprojection with the voxel's distance weight
``(sod / (sod + B))^2`` times ``pi cos(a) / n_angles / tau``. At zero tilt this is
:func:`nanoct.recon.fdk.fdk`. Approximations: the local parallel-beam weight ``cos(a)`` and
the distance weight are exact only on the central ray; with a tilted axis the source orbit
lies in a plane ``sod sin(a)`` away from the rotation centre, so no slice is exact (errors grow
with the cone angle, as FDK's do off the mid-plane). Angles must cover a full turn uniformly
(laminography always scans a full turn; no short-scan weights).

Projector pair (:func:`forward_project_lamino`, :func:`backproject_lamino`)
----------------------------------------------------------------------------
Ray driven, Joseph's method in 3-D: each ray steps through the voxel planes across its
dominant direction (x, y or z, chosen per ray) with bilinear interpolation in the plane; the
backprojector applies the transpose of exactly the same weights (a scatter, made race-free by
sharing out whole planes between threads), so the pair is adjoint to rounding, as CGLS, SIRT's
convergence theory and the Poisson likelihood methods of :mod:`nanoct.recon.poisson` want.
:func:`sirt_lamino` iterates with this pair; :class:`LaminoProjector` packages it for any
iterative method.

Memory: :func:`fbp_lamino` reconstructs ``chunk_slices`` slices at a time; for each chunk it
reads, weights and filters only the detector rows the chunk projects onto (found from the
chunk's corners at every angle), a block of angles at a time, so the workspace is one chunk plus
one angle block of rows. With a large tilt a thin chunk still projects onto many rows (its
footprint grows with ``sin(a)`` times the volume's width), so rows are filtered once per chunk
they serve; filtering is cheap next to backprojection.
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
from nanoct.recon.fdk import ConeGeometry
from nanoct.recon.filters import check_filter, fdk_cosine_weights, filter_projections
from nanoct.recon.scratch import thread_rows

__all__ = [
    "LaminoGeometry",
    "LaminoProjector",
    "backproject_lamino",
    "fbp_lamino",
    "forward_project_lamino",
    "sirt_lamino",
]

logger = logging.getLogger(__name__)

#: Largest |tilt_deg| accepted (the axis must not lie along the beam).
MAX_TILT_DEG = 89.0
#: Default number of slices reconstructed together by :func:`fbp_lamino`.
DEFAULT_CHUNK_SLICES = 16
# Rays set up together by the backprojector (80 bytes each: bounds its workspace to ~42 MB).
_RAY_BLOCK = 1 << 19
# Filtered rows of one angle block should stay within this many bytes (L2-sized).
_BLOCK_BYTES = 1 << 21


# --------------------------------------------------------------------------- geometry
def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


@dataclass(frozen=True)
class LaminoGeometry:
    """Rotation about an axis tilted by ``tilt_deg`` against the beam; see the module docstring.

    Parameters
    ----------
    tilt_deg : float
        Tilt of the rotation axis out of the plane perpendicular to the beam, in degrees, in
        ``[-89, 89]``; 0 is ordinary CT. Positive moves the upper end of the axis towards the
        detector.
    pixel_mm : float
        Detector pixel pitch (after binning), > 0.
    sod_mm, sdd_mm : float or None
        Source to rotation centre and source to detector (``sdd_mm > sod_mm > 0``); both None
        for a parallel beam.
    offset_u_mm, offset_v_mm : float
        Detector centre relative to the central ray (u right, v up).
    """

    tilt_deg: float
    pixel_mm: float
    sod_mm: float | None = None
    sdd_mm: float | None = None
    offset_u_mm: float = 0.0
    offset_v_mm: float = 0.0

    def __post_init__(self) -> None:
        tilt = _finite("tilt_deg", self.tilt_deg)
        if abs(tilt) > MAX_TILT_DEG:
            raise ValueError(
                f"tilt_deg must lie in [-{MAX_TILT_DEG}, {MAX_TILT_DEG}] degrees, got {tilt!r}"
            )
        if _finite("pixel_mm", self.pixel_mm) <= 0:
            raise ValueError(f"pixel_mm must be > 0, got {self.pixel_mm!r}")
        _finite("offset_u_mm", self.offset_u_mm)
        _finite("offset_v_mm", self.offset_v_mm)
        if (self.sod_mm is None) != (self.sdd_mm is None):
            raise ValueError(
                "sod_mm and sdd_mm must both be given (cone beam) or both be None (parallel "
                f"beam), got sod_mm={self.sod_mm!r}, sdd_mm={self.sdd_mm!r}"
            )
        if self.sod_mm is not None:
            sod = _finite("sod_mm", self.sod_mm)
            sdd = _finite("sdd_mm", self.sdd_mm)
            if sod <= 0:
                raise ValueError(f"sod_mm must be > 0, got {self.sod_mm!r}")
            if sdd <= sod:
                raise ValueError(
                    f"sdd_mm must exceed sod_mm (detector behind the axis), got sdd_mm="
                    f"{self.sdd_mm!r} <= sod_mm={self.sod_mm!r}"
                )

    @classmethod
    def from_cone(cls, cone: ConeGeometry, tilt_deg: float = 0.0) -> LaminoGeometry:
        """The cone-beam geometry ``cone`` with its axis tilted by ``tilt_deg``."""
        return cls(
            tilt_deg, cone.pixel_mm, cone.sod_mm, cone.sdd_mm, cone.offset_u_mm, cone.offset_v_mm
        )

    @property
    def is_cone(self) -> bool:
        """True for a cone beam (``sod_mm`` given), False for a parallel beam."""
        return self.sod_mm is not None

    @property
    def tilt_rad(self) -> float:
        """The tilt in radians."""
        return math.radians(self.tilt_deg)

    @property
    def voxel_mm(self) -> float:
        """Default voxel: the detector pixel seen at the rotation centre."""
        if self.is_cone:
            return self.pixel_mm * self.sod_mm / self.sdd_mm  # type: ignore[operator]
        return float(self.pixel_mm)

    def rotation(self, theta_rad: float) -> np.ndarray:
        """3 x 3 matrix taking specimen ``(x, y, z)`` to lab ``(X, B, V)`` at ``theta_rad``."""
        c, s = math.cos(theta_rad), math.sin(theta_rad)
        ca, sa = math.cos(self.tilt_rad), math.sin(self.tilt_rad)
        return np.array([[c, s, 0.0], [-ca * s, ca * c, -sa], [-sa * s, sa * c, ca]])

    def project(
        self, x_mm, y_mm, z_mm, theta_rad: float, n_rows: int, n_cols: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fractional ``(row, column)`` of specimen points (mm) at angle ``theta_rad``."""
        m = self.rotation(theta_rad)
        p = np.stack(np.broadcast_arrays(x_mm, y_mm, z_mm)).astype(np.float64)
        big_x, big_b, big_v = np.tensordot(m, p, axes=1)
        mag = self.sdd_mm / (self.sod_mm + big_b) if self.is_cone else 1.0
        col = (n_cols - 1) / 2.0 + (big_x * mag - self.offset_u_mm) / self.pixel_mm
        row = (n_rows - 1) / 2.0 + (big_v * mag + self.offset_v_mm) / self.pixel_mm
        return row, col

    def rays(self, theta_rad: float, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Rays to every detector pixel in the specimen frame (mm).

        Returns
        -------
        origins, directions : numpy.ndarray
            ``(n_rows, n_cols, 3)`` float64 ``(x, y, z)``: a point on each ray (the source in
            cone beam; in parallel beam the point where the ray crosses the plane through the
            rotation centre perpendicular to the beam) and the unit direction of travel.
        """
        mt = self.rotation(theta_rad).T
        u = (np.arange(n_cols) - (n_cols - 1) / 2.0) * self.pixel_mm + self.offset_u_mm
        vd = (np.arange(n_rows) - (n_rows - 1) / 2.0) * self.pixel_mm - self.offset_v_mm
        uu, vv = np.meshgrid(u, vd)
        if self.is_cone:
            lab = np.stack([uu, np.full_like(uu, self.sdd_mm), vv], axis=-1)
            d = lab @ mt.T
            d /= np.linalg.norm(d, axis=-1, keepdims=True)
            o = np.broadcast_to(mt @ np.array([0.0, -self.sod_mm, 0.0]), d.shape).copy()
        else:
            lab = np.stack([uu, np.zeros_like(uu), vv], axis=-1)
            o = lab @ mt.T
            d = np.broadcast_to(mt @ np.array([0.0, 1.0, 0.0]), o.shape).copy()
        return o, d


def _as_geometry(geometry) -> LaminoGeometry:
    if isinstance(geometry, LaminoGeometry):
        return geometry
    if isinstance(geometry, ConeGeometry):
        return LaminoGeometry.from_cone(geometry)
    raise ValueError(
        f"geometry must be a LaminoGeometry (or a ConeGeometry for 0 deg), got {geometry!r:.80}"
    )


def _det_shape(projections) -> tuple[int, int, int]:
    shape = getattr(projections, "shape", None)
    if shape is None or len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"projections must be a non-empty 3-D array-like (angle, row, column), got shape "
            f"{shape}"
        )
    dtype = np.dtype(getattr(projections, "dtype", np.float32))
    if dtype.kind not in "fiu":
        raise ValueError(f"projections must be real numbers, got dtype {dtype}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _vol_shape(volume_shape, n_rows: int, n_cols: int) -> tuple[int, int, int]:
    if volume_shape is None:
        return n_rows, n_cols, n_cols
    try:
        shp = tuple(int(s) for s in volume_shape)
    except (TypeError, ValueError):
        raise ValueError(f"volume_shape must be (nz, ny, nx), got {volume_shape!r}") from None
    if len(shp) != 3 or min(shp) < 1:
        raise ValueError(f"volume_shape must be 3 positive sizes (nz, ny, nx), got {shp!r}")
    return shp  # type: ignore[return-value]


def _voxel(voxel_mm, geom: LaminoGeometry) -> float:
    if voxel_mm is None:
        return geom.voxel_mm
    v = _finite("voxel_mm", voxel_mm)
    if v <= 0:
        raise ValueError(f"voxel_mm must be > 0, got {voxel_mm!r}")
    return v


def _check_in_front(geom: LaminoGeometry, vol_shape, vox: float) -> None:
    """The whole volume (its bounding sphere) must lie well in front of the source."""
    if not geom.is_cone:
        return
    radius = 0.5 * vox * math.sqrt(sum(n * n for n in vol_shape))
    if radius >= 0.95 * geom.sod_mm:  # type: ignore[operator]
        raise ValueError(
            f"volume_shape/voxel_mm describe a volume of radius {radius:.4g} mm that reaches "
            f"the source (sod_mm={geom.sod_mm!r}); the radius must stay below 0.95 sod_mm"
        )


# --------------------------------------------------------------------------- Joseph kernels
@njit(cache=True, fastmath=True, inline="always")
def _ray_setup(ox, oy, oz, dx, dy, dz, nx, ny, nz):  # pragma: no cover
    """Dominant axis, plane range and slopes of the ray ``o + t d`` (voxel-index units).

    Returns ``(axis, od, o1, o2, k1, k2, p_lo, p_hi, step)`` where ``axis`` 0/1/2 is x/y/z, the
    other two axes are taken in (x, y, z) order, ``f_e(p) = o_e + (p - od) k_e`` is the
    position on axis ``e`` in plane ``p``, planes ``p_lo..p_hi`` (inclusive) are those where
    both ``f_e`` lie in ``(-1, n_e)`` and ``step`` is the path length per plane (voxels).
    """
    ax, ay, az = abs(dx), abs(dy), abs(dz)
    if ax >= ay and ax >= az:
        axis, od, dd, nd = 0, ox, dx, nx
        o1, d1, n1, o2, d2, n2 = oy, dy, ny, oz, dz, nz
    elif ay >= az:
        axis, od, dd, nd = 1, oy, dy, ny
        o1, d1, n1, o2, d2, n2 = ox, dx, nx, oz, dz, nz
    else:
        axis, od, dd, nd = 2, oz, dz, nz
        o1, d1, n1, o2, d2, n2 = ox, dx, nx, oy, dy, ny
    k1 = d1 / dd
    k2 = d2 / dd
    # open interval of plane positions where both in-plane coordinates are in (-1, n_e)
    lo = -1e300
    hi = 1e300
    # axis 1: -1 < o1 + (p - od) k1 < n1
    if k1 == 0.0:
        if not (-1.0 < o1 < n1):
            hi = -1.0
    else:
        a = od + (-1.0 - o1) / k1
        b = od + (n1 - o1) / k1
        if a > b:
            a, b = b, a
        lo = max(lo, a)
        hi = min(hi, b)
    if k2 == 0.0:
        if not (-1.0 < o2 < n2):
            hi = -1.0
    else:
        a = od + (-1.0 - o2) / k2
        b = od + (n2 - o2) / k2
        if a > b:
            a, b = b, a
        lo = max(lo, a)
        hi = min(hi, b)
    p_lo = 0
    p_hi = -1
    if hi > lo:
        p_lo = max(0, math.floor(max(lo, -2.0)) + 1)
        p_hi = min(nd - 1, math.ceil(min(hi, nd + 1.0)) - 1)
    step = math.sqrt(1.0 + k1 * k1 + k2 * k2)
    return axis, od, o1, o2, k1, k2, p_lo, p_hi, step


@njit(cache=True, inline="always")
def _ray(par, a, r, c):  # pragma: no cover
    """Origin and direction (voxel-index units) of the ray to pixel (r, c) at angle a."""
    ox = par[a, 0, 0] + c * par[a, 1, 0] + r * par[a, 2, 0]
    oy = par[a, 0, 1] + c * par[a, 1, 1] + r * par[a, 2, 1]
    oz = par[a, 0, 2] + c * par[a, 1, 2] + r * par[a, 2, 2]
    dx = par[a, 3, 0] + c * par[a, 4, 0] + r * par[a, 5, 0]
    dy = par[a, 3, 1] + c * par[a, 4, 1] + r * par[a, 5, 1]
    dz = par[a, 3, 2] + c * par[a, 4, 2] + r * par[a, 5, 2]
    return ox, oy, oz, dx, dy, dz


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _fp_joseph(vol, par, nx, ny, nz, n_rows, n_cols, scale, out):  # pragma: no cover
    """Line integrals of the zero-padded flat volume ``vol`` into ``out`` (na, rows, cols)."""
    na = par.shape[0]
    st = (1, nx + 2, (nx + 2) * (ny + 2))
    for t in prange(na * n_rows):
        a = t // n_rows
        r = t - a * n_rows
        for c in range(n_cols):
            ox, oy, oz, dx, dy, dz = _ray(par, a, r, c)
            axis, od, o1, o2, k1, k2, p_lo, p_hi, step = _ray_setup(
                ox, oy, oz, dx, dy, dz, nx, ny, nz
            )
            sd = st[axis]
            s1 = st[1] if axis == 0 else st[0]
            s2 = st[1] if axis == 2 else st[2]
            n1 = ny if axis == 0 else nx
            n2 = ny if axis == 2 else nz
            acc = 0.0
            for p in range(p_lo, p_hi + 1):
                f1 = o1 + (p - od) * k1 + 1.0  # padded index coordinates
                f2 = o2 + (p - od) * k2 + 1.0
                i1 = min(max(int(f1), 0), n1)
                i2 = min(max(int(f2), 0), n2)
                w1 = f1 - i1
                w2 = f2 - i2
                e = (p + 1) * sd + i1 * s1 + i2 * s2
                acc += (1.0 - w2) * ((1.0 - w1) * vol[e] + w1 * vol[e + s1]) + w2 * (
                    (1.0 - w1) * vol[e + s2] + w1 * vol[e + s1 + s2]
                )
            out[a, r, c] = acc * step * scale


@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _bp_joseph(proj, par, nx, ny, nz, scale, vol, a_block, n_slabs):  # pragma: no cover
    """Transpose of :func:`_fp_joseph`: scatter ``proj`` into the zero-padded flat ``vol``.

    Angles are taken ``a_block`` at a time. The rays of a block are set up in parallel, then
    grouped by dominant axis; within a group every task owns a slab of whole planes of that
    axis (a ray touches one plane per step) and reads each ray once, so the scatter has no
    races; every voxel sums its rays in the same order whatever the slabs, so the result does
    not depend on the thread count. ``n_slabs`` (a few per thread) balances the load. Four
    parallel regions per block, not per angle: each region start wakes every thread, which is
    slow on a busy machine.
    """
    na, n_rows, n_cols = proj.shape
    nr = n_rows * n_cols
    st = (1, nx + 2, (nx + 2) * (ny + 2))
    ns = (nx, ny, nz)
    nb_max = min(na, a_block) * nr
    fpar = np.empty((nb_max, 6))
    ipar = np.empty((nb_max, 3), np.int64)
    order = np.empty(nb_max, np.int64)
    for a0 in range(0, na, a_block):
        a1 = min(na, a0 + a_block)
        nb = (a1 - a0) * nr
        for q in prange(nb):
            a = a0 + q // nr
            rc = q - (a - a0) * nr
            r = rc // n_cols
            c = rc - r * n_cols
            ox, oy, oz, dx, dy, dz = _ray(par, a, r, c)
            axis, od, o1, o2, k1, k2, p_lo, p_hi, step = _ray_setup(
                ox, oy, oz, dx, dy, dz, nx, ny, nz
            )
            fpar[q, 0] = od
            fpar[q, 1] = o1
            fpar[q, 2] = o2
            fpar[q, 3] = k1
            fpar[q, 4] = k2
            fpar[q, 5] = proj[a, r, c] * step * scale
            ipar[q, 0] = axis if (p_hi >= p_lo and fpar[q, 5] != 0.0) else 3
            ipar[q, 1] = p_lo
            ipar[q, 2] = p_hi
        counts = np.zeros(5, np.int64)
        for q in range(nb):
            counts[ipar[q, 0] + 1] += 1
        for g in range(4):
            counts[g + 1] += counts[g]
        fill = counts.copy()
        for q in range(nb):
            g = ipar[q, 0]
            order[fill[g]] = q
            fill[g] += 1
        for g in range(3):
            g0 = counts[g]
            g1 = counts[g + 1]
            if g1 == g0:
                continue
            sd = st[g]
            s1 = st[1] if g == 0 else st[0]
            s2 = st[1] if g == 2 else st[2]
            n1 = ny if g == 0 else nx
            n2 = ny if g == 2 else nz
            n_planes = ns[g]
            n_tasks = min(n_planes, n_slabs)
            for k in prange(n_tasks):
                # this task owns planes [p0, p1) and reads every ray of the group once
                p0 = (k * n_planes) // n_tasks
                p1 = ((k + 1) * n_planes) // n_tasks
                for m in range(g0, g1):
                    q = order[m]
                    od = fpar[q, 0]
                    o1 = fpar[q, 1] + 1.0
                    o2 = fpar[q, 2] + 1.0
                    k1 = fpar[q, 3]
                    k2 = fpar[q, 4]
                    val = fpar[q, 5]
                    for p in range(max(p0, ipar[q, 1]), min(p1, ipar[q, 2] + 1)):
                        f1 = o1 + (p - od) * k1
                        f2 = o2 + (p - od) * k2
                        i1 = min(max(int(f1), 0), n1)
                        i2 = min(max(int(f2), 0), n2)
                        w1 = f1 - i1
                        w2 = f2 - i2
                        e = (p + 1) * sd + i1 * s1 + i2 * s2
                        vol[e] += (1.0 - w2) * (1.0 - w1) * val
                        vol[e + s1] += (1.0 - w2) * w1 * val
                        vol[e + s2] += w2 * (1.0 - w1) * val
                        vol[e + s1 + s2] += w2 * w1 * val


def _ray_params(
    geom: LaminoGeometry, angles: np.ndarray, n_rows: int, n_cols: int, vol_shape, vox: float
) -> np.ndarray:
    """Per angle: origin, origin step per column and per row, direction and its steps.

    ``(n_angles, 6, 3)`` float64 in voxel-index coordinates ``(x, y, z)`` (index ``i`` at
    coordinate ``i``), so that the ray to pixel ``(r, c)`` is ``o(r, c) + t d(r, c)`` with
    ``o = P0 + c P1 + r P2`` and ``d = P3 + c P4 + r P5``.
    """
    nz, ny, nx = vol_shape
    cen = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0, (nz - 1) / 2.0])
    pix = geom.pixel_mm
    u0 = -(n_cols - 1) / 2.0 * pix + geom.offset_u_mm
    v0 = -(n_rows - 1) / 2.0 * pix - geom.offset_v_mm
    par = np.zeros((angles.size, 6, 3))
    for k, th in enumerate(angles):
        mt = geom.rotation(float(th)).T  # lab -> specimen
        step_u = mt @ np.array([pix, 0.0, 0.0]) / vox
        step_v = mt @ np.array([0.0, 0.0, pix]) / vox
        if geom.is_cone:
            par[k, 0] = mt @ np.array([0.0, -geom.sod_mm, 0.0]) / vox + cen
            par[k, 3] = mt @ np.array([u0, geom.sdd_mm, v0]) / vox
            par[k, 4] = step_u
            par[k, 5] = step_v
        else:
            par[k, 0] = mt @ np.array([u0, 0.0, v0]) / vox + cen
            par[k, 1] = step_u
            par[k, 2] = step_v
            par[k, 3] = mt @ np.array([0.0, 1.0, 0.0])
    return par


# --------------------------------------------------------------------------- projector pair
class LaminoProjector:
    """Matched forward projector and backprojector (its exact transpose) for one scan.

    Parameters
    ----------
    geometry : LaminoGeometry or nanoct.recon.fdk.ConeGeometry
        Scan geometry (a ``ConeGeometry`` means zero tilt).
    angles : array_like
        Rotation angles in radians.
    detector_shape : (int, int)
        ``(n_rows, n_cols)``.
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)``; default ``(n_rows, n_cols, n_cols)``.
    voxel_mm : float, optional
        Isotropic voxel; default :attr:`LaminoGeometry.voxel_mm`.

    Notes
    -----
    ``forward`` maps a volume of attenuation coefficients (1/mm) to dimensionless line
    integrals ``(n_angles, n_rows, n_cols)``; ``back`` maps projections to a volume and is the
    transpose of ``forward`` (``<A x, y> = <x, A^T y>`` to rounding). Both are float32 out,
    float64 inside.
    """

    def __init__(
        self,
        geometry: LaminoGeometry | ConeGeometry,
        angles,
        detector_shape: tuple[int, int],
        volume_shape: tuple[int, int, int] | None = None,
        voxel_mm: float | None = None,
    ) -> None:
        self.geometry = _as_geometry(geometry)
        a = np.asarray(angles, dtype=np.float64)
        if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)):
            raise ValueError(
                f"angles must be a non-empty 1-D array of finite radians, got {a!r:.60}"
            )
        self.angles = a
        try:
            n_rows, n_cols = (int(s) for s in detector_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"detector_shape must be (n_rows, n_cols), got {detector_shape!r}"
            ) from None
        if n_rows < 1 or n_cols < 1:
            raise ValueError(f"detector_shape must be positive, got {detector_shape!r}")
        self.detector_shape = (n_rows, n_cols)
        self.volume_shape = _vol_shape(volume_shape, n_rows, n_cols)
        self.voxel_mm = _voxel(voxel_mm, self.geometry)
        _check_in_front(self.geometry, self.volume_shape, self.voxel_mm)
        self._par = _ray_params(self.geometry, a, n_rows, n_cols, self.volume_shape, self.voxel_mm)

    @property
    def projection_shape(self) -> tuple[int, int, int]:
        """``(n_angles, n_rows, n_cols)``."""
        return (self.angles.size, *self.detector_shape)

    def subset(self, index) -> LaminoProjector:
        """The projector restricted to the angles ``angles[index]``."""
        sub = object.__new__(LaminoProjector)
        sub.geometry = self.geometry
        sub.angles = self.angles[index]
        if sub.angles.ndim != 1 or sub.angles.size < 1:
            raise ValueError(f"index must select at least one angle, got {index!r}")
        sub.detector_shape = self.detector_shape
        sub.volume_shape = self.volume_shape
        sub.voxel_mm = self.voxel_mm
        sub._par = np.ascontiguousarray(self._par[index])
        return sub

    def forward(self, volume) -> np.ndarray:
        """Line integrals ``(n_angles, n_rows, n_cols)`` float32 of ``volume`` (1/mm)."""
        v = np.asarray(volume)
        if v.shape != self.volume_shape or v.dtype.kind not in "fiu":
            raise ValueError(
                f"volume must be a real array of shape {self.volume_shape}, got {v.dtype} {v.shape}"
            )
        nz, ny, nx = self.volume_shape
        padded = np.zeros((nz + 2, ny + 2, nx + 2), np.float32)
        padded[1:-1, 1:-1, 1:-1] = v
        out = np.empty(self.projection_shape, np.float32)
        _fp_joseph(
            padded.reshape(-1), self._par, nx, ny, nz, *self.detector_shape, self.voxel_mm, out
        )
        return out

    def back(self, projections) -> np.ndarray:
        """Transpose of :meth:`forward`: volume ``(nz, ny, nx)`` float32."""
        p = np.asarray(projections)
        if p.shape != self.projection_shape or p.dtype.kind not in "fiu":
            raise ValueError(
                f"projections must be a real array of shape {self.projection_shape}, got "
                f"{p.dtype} {p.shape}"
            )
        nz, ny, nx = self.volume_shape
        padded = np.zeros((nz + 2, ny + 2, nx + 2), np.float32)
        rays = max(1, self.detector_shape[0] * self.detector_shape[1])
        _bp_joseph(
            np.ascontiguousarray(p, dtype=np.float32), self._par, nx, ny, nz, self.voxel_mm,
            padded.reshape(-1), max(1, _RAY_BLOCK // rays), 4 * numba.get_num_threads(),
        )  # fmt: skip
        return padded[1:-1, 1:-1, 1:-1].astype(np.float32)


def forward_project_lamino(
    volume,
    angles,
    geometry,
    *,
    detector_shape: tuple[int, int],
    voxel_mm: float | None = None,
) -> np.ndarray:
    """Line integrals of a voxel volume for a (tilted-axis) scan; Joseph's method in 3-D.

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Attenuation coefficients (1/mm), zero outside; ``z`` along the rotation axis.
    angles : array_like
        Radians.
    geometry : LaminoGeometry or ConeGeometry
        Scan geometry (module docstring).
    detector_shape : (int, int)
        ``(n_rows, n_cols)``.
    voxel_mm : float, optional
        Default :attr:`LaminoGeometry.voxel_mm`.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_angles, n_rows, n_cols)`` line integrals (dimensionless).
    """
    v = np.asarray(volume)
    if v.ndim != 3 or min(v.shape) < 1 or v.dtype.kind not in "fiu":
        raise ValueError(f"volume must be a non-empty 3-D real array, got shape {v.shape}")
    proj = LaminoProjector(geometry, angles, detector_shape, v.shape, voxel_mm)
    return proj.forward(v)


def backproject_lamino(
    projections,
    angles,
    geometry,
    *,
    volume_shape: tuple[int, int, int] | None = None,
    voxel_mm: float | None = None,
) -> np.ndarray:
    """Unfiltered backprojection, the exact transpose of :func:`forward_project_lamino`.

    Parameters
    ----------
    projections : array_like, shape (n_angles, n_rows, n_cols)
        Values on the detector.
    angles : array_like
        Radians.
    geometry : LaminoGeometry or ConeGeometry
        Scan geometry.
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)``; default ``(n_rows, n_cols, n_cols)``.
    voxel_mm : float, optional
        Default :attr:`LaminoGeometry.voxel_mm`.

    Returns
    -------
    numpy.ndarray
        float32 ``(nz, ny, nx)``.
    """
    na, n_rows, n_cols = _det_shape(projections)
    proj = LaminoProjector(geometry, angles, (n_rows, n_cols), volume_shape, voxel_mm)
    if proj.angles.size != na:
        raise ValueError(
            f"angles must hold {na} values (one per projection), got {proj.angles.size}"
        )
    return proj.back(projections)


# --------------------------------------------------------------------------- FBP kernel
@njit(parallel=True, fastmath=True, boundscheck=False, cache=True)
def _bp_filtered(
    q, cosv, sinv, ca, sa, xs, ys, zs, out, a0, a1, cone, sod, sdd_pix, inv_pix, cu, u_hi,
    cv, t_lo, t_hi, length, fbuf, ibuf,
):  # pragma: no cover  # fmt: skip
    """Add angles ``a0:a1`` of the band ``q`` (value, slope pairs) into ``out`` (nzc, ny, nx).

    ``q`` is ``(a1 - a0, n_band_rows * length)`` complex64; column position of a voxel
    ``cu + X M``, clamped to ``[1, u_hi]`` (zero guard columns); band-row position
    ``cv + V M``, clamped to ``[t_lo, t_hi]`` (zero guard rows, or rows the chunk never reaches).
    Threads own whole output rows ``(kz, j)``. Per (row, angle) a vectorisable pass computes
    every voxel's sample index, interpolation weights and distance weight into per-thread
    scratch (``fbuf`` (threads, 3, nx) float32, ``ibuf`` (threads, nx) int32); a scalar pass
    gathers the bilinear samples.
    """
    nzc, ny, nx = out.shape
    x0 = xs[0]
    dxv = xs[1] - xs[0] if nx > 1 else 0.0
    one = np.float32(1.0)
    f_sod = np.float32(sod)
    f_sdd = np.float32(sdd_pix)
    f_cu = np.float32(cu)
    f_cv = np.float32(cv)
    f_uhi = np.float32(u_hi)
    f_tlo = np.float32(t_lo)
    f_thi = np.float32(t_hi)
    f_ipx = np.float32(inv_pix)
    i_len = np.int32(length)
    for t in prange(nzc * ny):
        tid = numba.get_thread_id()
        fu = fbuf[tid, 0]
        fv = fbuf[tid, 1]
        wt = fbuf[tid, 2]
        idx = ibuf[tid]
        kz = t // ny
        j = t - kz * ny
        z = zs[kz]
        y = ys[j]
        o = out[kz, j]
        for a in range(a0, a1):
            c = cosv[a]
            s = sinv[a]
            qa = q[a - a0]
            # X, B, V are affine in i: value at i = base + slope * i
            br = -s * x0 + c * y
            sr = -s * dxv
            bx = np.float32(c * x0 + s * y)
            sx = np.float32(c * dxv)
            bb = np.float32(ca * br - sa * z)
            sb = np.float32(ca * sr)
            bv = np.float32(sa * br + ca * z)
            sv = np.float32(sa * sr)
            if cone:
                for i in range(nx):
                    fi = np.float32(i)
                    inv = one / (f_sod + bb + sb * fi)
                    m = f_sdd * inv
                    g = f_sod * inv
                    wt[i] = g * g
                    u = min(max(f_cu + (bx + sx * fi) * m, one), f_uhi)
                    v = min(max(f_cv + (bv + sv * fi) * m, f_tlo), f_thi)
                    ku = np.int32(u)
                    kv = np.int32(v)
                    fu[i] = u - np.float32(ku)
                    fv[i] = v - np.float32(kv)
                    idx[i] = kv * i_len + ku
            else:
                for i in range(nx):
                    fi = np.float32(i)
                    wt[i] = one
                    u = min(max(f_cu + (bx + sx * fi) * f_ipx, one), f_uhi)
                    v = min(max(f_cv + (bv + sv * fi) * f_ipx, f_tlo), f_thi)
                    ku = np.int32(u)
                    kv = np.int32(v)
                    fu[i] = u - np.float32(ku)
                    fv[i] = v - np.float32(kv)
                    idx[i] = kv * i_len + ku
            for i in range(nx):
                e = idx[i]
                p0 = qa[e]
                p1 = qa[e + length]
                f = fu[i]
                b = fv[i]
                o[i] += wt[i] * ((one - b) * (p0.real + f * p0.imag) + b * (p1.real + f * p1.imag))


class _FilteredPlan:
    """Per-geometry constants of the filtered backprojection."""

    def __init__(self, geom: LaminoGeometry, angles, det_shape, vol_shape, vox: float):
        na, n_rows, n_cols = det_shape
        nz, ny, nx = vol_shape
        self.geom, self.na, self.n_rows, self.n_cols = geom, na, n_rows, n_cols
        self.cos, self.sin = np.cos(angles), np.sin(angles)
        self.angles = angles
        self.xs = (np.arange(nx) - (nx - 1) / 2.0) * vox
        self.ys = (np.arange(ny) - (ny - 1) / 2.0) * vox
        self.zs = (np.arange(nz) - (nz - 1) / 2.0) * vox
        self.vox = vox
        pix = geom.pixel_mm
        self.pad = 2
        self.length = n_cols + 2 * self.pad
        self.cu = (n_cols - 1) / 2.0 - geom.offset_u_mm / pix + self.pad
        self.u_hi = float(self.pad + n_cols)
        self.cv0 = (n_rows - 1) / 2.0 + geom.offset_v_mm / pix
        self.sdd_pix = geom.sdd_mm / pix if geom.is_cone else 0.0
        self.ca, self.sa = math.cos(geom.tilt_rad), math.sin(geom.tilt_rad)

    def band(self, zs: np.ndarray) -> tuple[int, int] | None:
        """Detector rows ``[r_lo, r_hi)`` that voxels with ``z`` in ``zs`` project onto, with
        two guard rows each side, cut to ``[-2, n_rows + 2)``; None when off the detector."""
        h = 0.5 * self.vox
        xs = np.array([self.xs[0] - h, self.xs[-1] + h])
        ys = np.array([self.ys[0] - h, self.ys[-1] + h])
        zc = np.array([zs.min() - h, zs.max() + h])
        x, y, z = (g.ravel() for g in np.meshgrid(xs, ys, zc, indexing="ij"))
        c, s = self.cos[:, None], self.sin[:, None]
        r = -x * s + y * c
        v = self.sa * r + self.ca * z
        if self.geom.is_cone:
            b = self.ca * r - self.sa * z
            v = v * self.geom.sdd_mm / (self.geom.sod_mm + b)
        rows = self.cv0 + v / self.geom.pixel_mm
        r_lo = math.floor(float(rows.min())) - 2
        r_hi = math.ceil(float(rows.max())) + 3
        if r_hi <= 0 or r_lo >= self.n_rows:
            return None
        return max(r_lo, -2), min(r_hi, self.n_rows + 2)

    def angle_block(self, n_band: int) -> int:
        return int(min(self.na, max(1, _BLOCK_BYTES // (n_band * self.length * 8))))

    def fill(self, projections, a0, a1, r_lo, r_hi, filter, pad_mode, scale, workers, q):
        """Weighted, filtered (value, slope) pairs of angles [a0, a1), rows [r_lo, r_hi)."""
        q[...] = 0
        d_lo, d_hi = max(r_lo, 0), min(r_hi, self.n_rows)
        if d_hi <= d_lo:
            return q
        block = np.array(projections[a0:a1, d_lo:d_hi, :], dtype=np.float32)
        g = self.geom
        if filter is not None and g.is_cone:
            block *= fdk_cosine_weights(
                self.n_rows, self.n_cols, sdd_mm=g.sdd_mm, pixel_mm=g.pixel_mm,
                offset_u_mm=g.offset_u_mm, offset_v_mm=g.offset_v_mm, rows=slice(d_lo, d_hi),
            )  # fmt: skip
        filter_projections(
            block, filter, scale=scale, pad_mode=pad_mode, workers=workers, out=block
        )
        values = q.real
        values[:, d_lo - r_lo : d_hi - r_lo, self.pad : self.pad + self.n_cols] = block
        slopes = q.imag
        np.subtract(values[:, :, 1:], values[:, :, :-1], out=slopes[:, :, :-1])
        return q


def _groups(idx: np.ndarray, chunk: int) -> list[np.ndarray]:
    """Split slice indices into runs of at most ``chunk`` spanning at most ``chunk``."""
    groups: list[np.ndarray] = []
    start = 0
    for n in range(1, idx.size + 1):
        if n == idx.size or n - start >= chunk or abs(int(idx[n]) - int(idx[start])) >= chunk:
            groups.append(idx[start:n])
            start = n
    return groups


def fbp_lamino(
    projections,
    angles,
    geometry,
    *,
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
    """Filtered backprojection for a tilted rotation axis (laminography) or plain CT.

    Parameters
    ----------
    projections : array_like, shape (n_angles, n_rows, n_cols)
        Line integrals (``-log`` of the normalised transmission). Any array-like with numpy
        slicing (``numpy.memmap``, ``h5py.Dataset``): rows are read chunk by chunk.
    angles : array_like
        Radians, one per projection, uniformly covering a full turn.
    geometry : LaminoGeometry or ConeGeometry
        Scan geometry (module docstring).
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)`` with ``z`` along the rotation axis; default ``(n_rows, n_cols,
        n_cols)``.
    voxel_mm : float, optional
        Default :attr:`LaminoGeometry.voxel_mm`.
    slices : int, slice or sequence of int, optional
        Slices (z indices) to reconstruct; the result holds them in the given order.
    chunk_slices : int
        Slices reconstructed together (memory: one ``chunk x ny x nx`` float32 buffer plus one
        angle block of filtered rows).
    filter : str
        Ramp window (:data:`nanoct.recon.filters.FILTERS`), applied along detector rows.
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
        Parallel beam: ramp filter along rows and weight ``pi cos(tilt) / n_angles /
        pixel_mm``. Cone beam: FDK-type (cosine pre-weights, distance weights); see the
        module docstring for what is exact and what is approximate.
    """
    check_progress(progress)
    det = _det_shape(projections)
    geom = _as_geometry(geometry)
    a = as_angles(angles, det[0])
    if check_filter(filter) is None:
        raise ValueError("filter must be a filter name for fbp_lamino, got None")
    vol_shape = _vol_shape(volume_shape, det[1], det[2])
    vox = _voxel(voxel_mm, geom)
    _check_in_front(geom, vol_shape, vox)
    c = int(chunk_slices) if isinstance(chunk_slices, int | np.integer) else -1
    if c < 1:
        raise ValueError(f"chunk_slices must be a positive integer, got {chunk_slices!r}")
    idx = as_slices(slices, vol_shape[0])
    span = float(a.max() - a.min()) * a.size / max(a.size - 1, 1)
    if span < 2 * math.pi * 0.98:
        logger.warning(
            "fbp_lamino: angles cover %.1f deg; the weights assume a full turn",
            math.degrees(span),
        )
    result = check_out(out, (idx.size, vol_shape[1], vol_shape[2]))
    if result is None:
        result = np.empty((idx.size, vol_shape[1], vol_shape[2]), np.float32)
    # the detector pixel seen at the rotation centre (the unit the ramp filter works in)
    tau = geom.pixel_mm * geom.sod_mm / geom.sdd_mm if geom.is_cone else geom.pixel_mm
    scale = math.pi * math.cos(geom.tilt_rad) / a.size / tau
    _filtered_backproject(projections, a, geom, det, vol_shape, vox, idx, c, filter, pad_mode,
                          scale, result, workers, progress)  # fmt: skip
    return result


def _filtered_backproject(
    projections, angles, geom, det, vol_shape, vox, idx, chunk_slices, filter, pad_mode, scale,
    out, workers, progress=None,
) -> None:  # fmt: skip
    plan = _FilteredPlan(geom, angles, det, vol_shape, vox)
    ny, nx = vol_shape[1:]
    # per-thread rows, each thread's on pages of its own (nanoct.recon.scratch)
    fbuf = thread_rows((3, nx), np.float32, offset=0)
    ibuf = thread_rows((nx,), np.int32, offset=2048)
    buf = np.empty((min(chunk_slices, idx.size), ny, nx), np.float32)
    pos = 0
    for group in _groups(idx, chunk_slices):
        zs = plan.zs[group]
        chunk = buf[: group.size]
        chunk[...] = 0.0
        band = plan.band(zs)
        if band is not None:
            r_lo, r_hi = band
            n_band = r_hi - r_lo
            block = plan.angle_block(n_band)
            q = np.empty((block, n_band, plan.length), np.complex64)
            for a0 in range(0, plan.na, block):
                a1 = min(plan.na, a0 + block)
                qb = plan.fill(projections, a0, a1, r_lo, r_hi, filter, pad_mode, scale,
                               workers, q[: a1 - a0])  # fmt: skip
                _bp_filtered(
                    qb.reshape(a1 - a0, -1), plan.cos, plan.sin, plan.ca, plan.sa, plan.xs,
                    plan.ys, zs, chunk, a0, a1, geom.is_cone, geom.sod_mm or 0.0, plan.sdd_pix,
                    1.0 / geom.pixel_mm, plan.cu, plan.u_hi, plan.cv0 - r_lo, 1.0,
                    float(n_band - 2), plan.length, fbuf, ibuf,
                )  # fmt: skip
        out[pos : pos + group.size] = chunk
        pos += group.size
        logger.debug("fbp_lamino: slices %d..%d done", group[0], group[-1])
        if progress is not None:
            progress(pos, idx.size)


# --------------------------------------------------------------------------- SIRT
def sirt_lamino(
    projections,
    angles,
    geometry,
    *,
    volume_shape: tuple[int, int, int] | None = None,
    voxel_mm: float | None = None,
    n_iter: int = 50,
    relaxation: float = 1.0,
    nonnegative: bool = True,
    x0: np.ndarray | None = None,
    callback: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """SIRT with the matched tilted-axis projector pair (:class:`LaminoProjector`).

    Iterates ``x <- x + relaxation C A^T R (b - A x)`` with ``R = 1 / (A 1)`` and
    ``C = 1 / (A^T 1)``, clipping at zero when ``nonnegative``; any angle set works (no
    uniform coverage needed).

    Parameters
    ----------
    projections : array_like, shape (n_angles, n_rows, n_cols)
        Line integrals.
    angles : array_like
        Radians.
    geometry : LaminoGeometry or ConeGeometry
        Scan geometry.
    volume_shape, voxel_mm
        As :func:`fbp_lamino`.
    n_iter : int
        Iterations (>= 1).
    relaxation : float
        Step factor in (0, 2).
    nonnegative : bool
        Clip every iterate at zero.
    x0 : numpy.ndarray, optional
        Starting volume (default zeros).
    callback : callable, optional
        ``callback(iteration, x)`` after every iteration (``x`` is live; copy to keep).

    Returns
    -------
    numpy.ndarray
        float32 ``(nz, ny, nx)`` attenuation coefficients (1/mm).
    """
    det = _det_shape(projections)
    if isinstance(n_iter, bool) or int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    if not (0.0 < relaxation < 2.0):
        raise ValueError(f"relaxation must lie in (0, 2), got {relaxation!r}")
    a = as_angles(angles, det[0])
    op = LaminoProjector(geometry, a, det[1:], volume_shape, voxel_mm)
    b = np.asarray(projections, dtype=np.float32)
    shape = op.volume_shape
    if x0 is None:
        x = np.zeros(shape, np.float32)
    else:
        x = np.array(x0, dtype=np.float32)
        if x.shape != shape:
            raise ValueError(f"x0 must have shape {shape}, got {x.shape}")
    ray_sums = op.forward(np.ones(shape, np.float32))
    r_weight = np.zeros_like(ray_sums)
    np.divide(1.0, ray_sums, out=r_weight, where=ray_sums > 1e-6 * ray_sums.max())
    col_sums = op.back(np.ones(b.shape, np.float32))
    c_weight = np.zeros_like(col_sums)
    np.divide(relaxation, col_sums, out=c_weight, where=col_sums > 1e-6 * col_sums.max())
    for it in range(int(n_iter)):
        residual = b - op.forward(x)
        residual *= r_weight
        x += c_weight * op.back(residual)
        if nonnegative:
            np.maximum(x, 0.0, out=x)
        if callback is not None:
            callback(it, x)
    logger.debug("sirt_lamino: %d iterations, tilt %.1f deg", n_iter, op.geometry.tilt_deg)
    return x
