"""Analytic phantoms with exact projections, for testing and comparing reconstructions.

Ellipses (2-D, parallel beam) and axis-aligned ellipsoids (3-D, nanoct's circular cone beam),
with their exact line integrals, so a reconstruction can be compared with the truth. Shared by
the tests, the benchmarks and anyone checking a reconstruction setting in a notebook.

Conventions are those of :mod:`nanoct.recon.fbp` and :mod:`nanoct.recon.fdk`: sinogram column
``center + x cos(theta) + y sin(theta)``; images ``(y, x)`` with the rotation axis at
``(n - 1) / 2``; cone-beam source at ``(sod sin, -sod cos, 0)``, volumes ``(z, y, x)`` with z
pointing down.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "SHEPP_LOGAN_LIKE",
    "ellipse_image",
    "ellipse_sinogram",
    "ellipsoid_cone_projections",
    "ellipsoid_volume",
    "scale_ellipses",
]

Ellipse = tuple[float, float, float, float, float, float]  # x0, y0, a, b, phi_rad, value
Ellipsoid = tuple[float, float, float, float, float, float, float]  # x, y, z, a, b, c, value

#: A modified Shepp-Logan-like set, in units of the phantom's half width, with edges of
#: several contrasts.
SHEPP_LOGAN_LIKE: tuple[Ellipse, ...] = (
    (0.0, 0.0, 0.69, 0.92, 0.0, 1.0),
    (0.0, -0.0184, 0.6624, 0.874, 0.0, -0.8),
    (0.22, 0.0, 0.11, 0.31, -0.31, -0.2),
    (-0.22, 0.0, 0.16, 0.41, 0.31, -0.2),
    (0.0, 0.35, 0.21, 0.25, 0.0, 0.1),
    (0.0, 0.1, 0.046, 0.046, 0.0, 0.1),
    (-0.08, -0.605, 0.046, 0.023, 0.0, 0.1),
    (0.06, -0.605, 0.023, 0.046, 0.0, 0.1),
)


def scale_ellipses(ellipses: Sequence[Ellipse], half_width: float) -> list[Ellipse]:
    """Ellipses given in units of the half width, in pixels (or mm) of ``half_width``."""
    return [(x * half_width, y * half_width, a * half_width, b * half_width, p, v)
            for x, y, a, b, p, v in ellipses]  # fmt: skip


def ellipse_sinogram(
    ellipses: Sequence[Ellipse], angles: np.ndarray, n_cols: int, center: float | None = None
) -> np.ndarray:
    """Exact parallel-beam line integrals ``(angle, column)`` float32; lengths in pixels."""
    angles = np.asarray(angles, dtype=np.float64)
    c0 = (n_cols - 1) / 2.0 if center is None else float(center)
    u = np.arange(n_cols) - c0
    out = np.zeros((angles.size, n_cols))
    for x0, y0, a, b, phi, val in ellipses:
        th = angles[:, None] - phi
        a2 = (a * np.cos(th)) ** 2 + (b * np.sin(th)) ** 2
        s = u[None, :] - (x0 * np.cos(angles) + y0 * np.sin(angles))[:, None]
        inside = s**2 < a2
        out += np.where(inside, 2 * val * a * b * np.sqrt(np.where(inside, a2 - s**2, 0)) / a2, 0)
    return out.astype(np.float32)


def ellipse_image(
    ellipses: Sequence[Ellipse], n: int, oversample: int = 4, band_rows: int = 256
) -> np.ndarray:
    """Pixel averages (``oversample``^2 points per pixel) of the phantom, ``(n, n)`` float64,
    computed in bands of rows so large images need little temporary memory."""
    f = (np.arange(n * oversample) + 0.5) / oversample - 0.5 - (n - 1) / 2
    img = np.zeros((n, n))
    for r0 in range(0, n, band_rows):
        y, x = np.meshgrid(f[r0 * oversample : (r0 + band_rows) * oversample], f, indexing="ij")
        band = np.zeros_like(x)
        for x0, y0, a, b, phi, val in ellipses:
            c, s = np.cos(phi), np.sin(phi)
            xr = (x - x0) * c + (y - y0) * s
            yr = -(x - x0) * s + (y - y0) * c
            band += val * ((xr / a) ** 2 + (yr / b) ** 2 <= 1)
        rows = band.shape[0] // oversample
        img[r0 : r0 + rows] = band.reshape(rows, oversample, n, oversample).mean(axis=(1, 3))
    return img


def ellipsoid_cone_projections(
    ellipsoids: Sequence[Ellipsoid],
    angles: np.ndarray,
    n_rows: int,
    n_cols: int,
    *,
    sod_mm: float,
    sdd_mm: float,
    pixel_mm: float,
    offset_u_mm: float = 0.0,
    offset_v_mm: float = 0.0,
) -> np.ndarray:
    """Exact cone-beam line integrals ``(angle, row, column)`` float32 through axis-aligned
    ellipsoids (mm, value per mm), in nanoct's circular geometry."""
    u = (np.arange(n_cols) - (n_cols - 1) / 2) * pixel_mm + offset_u_mm
    vd = (np.arange(n_rows) - (n_rows - 1) / 2) * pixel_mm - offset_v_mm
    uu, vv = np.meshgrid(u, vd)
    out = np.zeros((len(angles), n_rows, n_cols), np.float32)
    for k, th in enumerate(np.asarray(angles, dtype=np.float64)):
        c, s = np.cos(th), np.sin(th)
        src = np.array([sod_mm * s, -sod_mm * c, 0.0])
        d = np.stack([uu * c - sdd_mm * s, uu * s + sdd_mm * c, vv], axis=-1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        for x, y, z, a, b, cc, mu in ellipsoids:
            axes = np.array([a, b, cc])
            o = (src - np.array([x, y, z])) / axes
            dd = d / axes
            qa = (dd * dd).sum(-1)
            qb = 2 * (dd * o).sum(-1)
            disc = qb * qb - 4 * qa * (o @ o - 1)
            out[k] += mu * np.sqrt(np.maximum(disc, 0)) / qa
    return out


def ellipsoid_volume(
    ellipsoids: Sequence[Ellipsoid],
    shape: tuple[int, int, int],
    voxel_mm: float,
    oversample: int = 2,
) -> np.ndarray:
    """Voxel averages of the ellipsoid phantom, ``(z, y, x)`` float32, slice by slice."""
    nz, ny, nx = shape
    o = oversample

    def axis(n: int) -> np.ndarray:
        f = (np.arange(n * o) + 0.5) / o - 0.5
        return (f - (n - 1) / 2) * voxel_mm

    zs, ys, xs = axis(nz), axis(ny), axis(nx)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    vol = np.zeros(shape, np.float32)
    for k in range(nz):
        sub = np.zeros((o, ny * o, nx * o))
        for q in range(o):
            z = zs[k * o + q]
            for x0, y0, z0, a, b, c, mu in ellipsoids:
                sub[q] += mu * (((x - x0) / a) ** 2 + ((y - y0) / b) ** 2
                                + ((z - z0) / c) ** 2 <= 1)  # fmt: skip
        vol[k] = sub.reshape(o, ny, o, nx, o).mean(axis=(0, 2, 4))
    return vol
