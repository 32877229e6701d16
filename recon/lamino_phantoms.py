"""Analytic phantoms with exact projections under a tilted rotation axis (laminography).

Axis-aligned boxes (exact voxel averages: the overlap of a box with a voxel is a product of
three 1-D overlaps) and axis-aligned ellipsoids, both in the specimen frame of
:mod:`nanoct.recon.laminography` (mm; ``z`` along the rotation axis, volumes ``(z, y, x)``),
with their exact line integrals for any :class:`~nanoct.recon.laminography.LaminoGeometry`
(parallel or cone beam, any tilt). A chip-like phantom (a thin slab with wiring layers and
vias) is provided for laminography tests; it can be mounted flat on the stage (normal along
the rotation axis, as in laminography) or upright (normal across the axis, as a flat specimen
is mounted for a limited-angle CT).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nanoct.recon.laminography import LaminoGeometry

__all__ = [
    "Box",
    "box_projections",
    "box_volume",
    "chip_boxes",
    "ellipsoid_projections",
]

#: ``(x0, y0, z0, half_x, half_y, half_z, mu)``: centre and half extents in mm, mu in 1/mm.
Box = tuple[float, float, float, float, float, float, float]
#: ``(x0, y0, z0, a, b, c, mu)``: centre and semi-axes in mm, mu in 1/mm.
Ellipsoid = tuple[float, float, float, float, float, float, float]


def _check_detector(detector_shape) -> tuple[int, int]:
    try:
        n_rows, n_cols = (int(s) for s in detector_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"detector_shape must be (n_rows, n_cols), got {detector_shape!r}"
        ) from None
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"detector_shape must be positive, got {detector_shape!r}")
    return n_rows, n_cols


def box_projections(
    boxes: Sequence[Box], angles, geometry: LaminoGeometry, detector_shape: tuple[int, int]
) -> np.ndarray:
    """Exact line integrals ``(angle, row, column)`` float32 through axis-aligned boxes.

    Each ray's chord through a box is the overlap of its three slab intervals; the line
    integral is the sum over boxes of ``mu`` times the chord (mm), at pixel centres.
    """
    n_rows, n_cols = _check_detector(detector_shape)
    angles = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    out = np.zeros((angles.size, n_rows, n_cols))
    for k, th in enumerate(angles):
        o, d = geometry.rays(float(th), n_rows, n_cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
        for x0, y0, z0, hx, hy, hz, mu in boxes:
            lo = np.array([x0 - hx, y0 - hy, z0 - hz])
            hi = np.array([x0 + hx, y0 + hy, z0 + hz])
            with np.errstate(invalid="ignore"):
                t1 = (lo - o) * inv
                t2 = (hi - o) * inv
            # a ray parallel to a slab: inside it for all t, or never
            par = d == 0.0
            inside = (o >= lo) & (o <= hi)
            t_near = np.where(par, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
            t_far = np.where(par, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
            chord = np.minimum.reduce(t_far, axis=-1) - np.maximum.reduce(t_near, axis=-1)
            out[k] += mu * np.maximum(chord, 0.0)
    return out.astype(np.float32)


def box_volume(boxes: Sequence[Box], shape: tuple[int, int, int], voxel_mm: float) -> np.ndarray:
    """Exact voxel averages ``(z, y, x)`` float32 of the boxes (volume centred on the axis)."""
    nz, ny, nx = (int(s) for s in shape)

    def overlap(n: int, c: float, h: float) -> np.ndarray:
        edges = (np.arange(n + 1) - n / 2.0) * voxel_mm
        lo = np.maximum(edges[:-1], c - h)
        hi = np.minimum(edges[1:], c + h)
        return np.maximum(hi - lo, 0.0) / voxel_mm

    vol = np.zeros((nz, ny, nx))
    for x0, y0, z0, hx, hy, hz, mu in boxes:
        fz, fy, fx = overlap(nz, z0, hz), overlap(ny, y0, hy), overlap(nx, x0, hx)
        vol += mu * fz[:, None, None] * fy[None, :, None] * fx[None, None, :]
    return vol.astype(np.float32)


def ellipsoid_projections(
    ellipsoids: Sequence[Ellipsoid],
    angles,
    geometry: LaminoGeometry,
    detector_shape: tuple[int, int],
) -> np.ndarray:
    """Exact line integrals ``(angle, row, column)`` float32 through axis-aligned ellipsoids."""
    n_rows, n_cols = _check_detector(detector_shape)
    angles = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    out = np.zeros((angles.size, n_rows, n_cols))
    for k, th in enumerate(angles):
        o, d = geometry.rays(float(th), n_rows, n_cols)
        for x0, y0, z0, a, b, c, mu in ellipsoids:
            axes = np.array([a, b, c])
            oo = (o - np.array([x0, y0, z0])) / axes
            dd = d / axes
            qa = (dd * dd).sum(-1)
            qb = 2.0 * (dd * oo).sum(-1)
            qc = (oo * oo).sum(-1) - 1.0
            disc = qb * qb - 4.0 * qa * qc
            out[k] += mu * np.sqrt(np.maximum(disc, 0.0)) / qa
    return out.astype(np.float32)


def chip_boxes(
    width_mm: float,
    *,
    thickness_mm: float | None = None,
    mu_substrate: float = 0.5,
    mu_metal: float = 4.0,
    normal: str = "z",
) -> list[Box]:
    """A flat chip: a thin substrate slab carrying two wiring layers and vias.

    Parameters
    ----------
    width_mm : float
        Side of the square chip (mm).
    thickness_mm : float, optional
        Substrate thickness; default ``width_mm / 6``.
    mu_substrate, mu_metal : float
        Attenuation coefficients (1/mm) of the substrate and of the metal features (in
        addition to the substrate where they overlap it).
    normal : {"z", "y"}
        ``"z"``: lying flat on the stage, normal along the rotation axis (laminography).
        ``"y"``: standing upright, normal along ``y`` (the beam direction at angle 0), the
        rotation axis in its plane, as a flat specimen is mounted for a limited-angle CT.

    Returns
    -------
    list of Box
        Layer 1 (upper, ``-z`` side): five lines along ``x``; layer 2 (lower): four lines
        along ``y`` plus an L-shaped pad; three vias run through the substrate between the
        layers. Feature sizes scale with ``width_mm`` (lines ``width / 16`` wide, layers
        ``thickness / 4`` thick). The layers carry different in-plane patterns, so a
        reconstruction that blurs them along the normal mixes the patterns.
    """
    if not (np.isfinite(width_mm) and width_mm > 0):
        raise ValueError(f"width_mm must be > 0, got {width_mm!r}")
    t = width_mm / 6.0 if thickness_mm is None else float(thickness_mm)
    if not (np.isfinite(t) and 0 < t <= width_mm):
        raise ValueError(f"thickness_mm must lie in (0, width_mm={width_mm}], got {thickness_mm!r}")
    if normal not in ("z", "y"):
        raise ValueError(f"normal must be 'z' or 'y', got {normal!r}")
    w = width_mm / 2.0
    lw = width_mm / 32.0  # half width of a line
    lt = t / 8.0  # half thickness of a wiring layer
    z1 = -t / 2.0 + lt  # upper layer, inside the substrate's upper face
    z2 = t / 2.0 - lt  # lower layer
    # (x, y, z, hx, hy, hz, mu) with the chip's normal along z
    boxes: list[Box] = [(0.0, 0.0, 0.0, w, w, t / 2.0, mu_substrate)]
    for k in range(5):  # layer 1: lines along x at five y positions
        y = (-0.6 + 0.3 * k) * w
        boxes.append((0.0, y, z1, 0.8 * w, lw, lt, mu_metal))
    for k in range(4):  # layer 2: lines along y at four x positions
        x = (-0.6 + 0.4 * k) * w
        boxes.append((x, -0.1 * w, z2, lw, 0.7 * w, lt, mu_metal))
    boxes.append((0.55 * w, 0.7 * w, z2, 0.25 * w, 2 * lw, lt, mu_metal))  # pad, long side
    boxes.append((0.75 * w, 0.5 * w, z2, 2 * lw, 0.2 * w, lt, mu_metal))  # pad, short side
    for x, y in ((-0.6, -0.6), (0.2, 0.0), (0.6, 0.3)):  # vias between the layers
        boxes.append((x * w, y * w, 0.0, lw, lw, t / 2.0 - 2 * lt, mu_metal))
    if normal == "y":  # stand the chip up: chip (x, y, z) -> specimen (x, z, -y)
        boxes = [(x, z, -y, hx, hz, hy, mu) for x, y, z, hx, hy, hz, mu in boxes]
    return boxes
