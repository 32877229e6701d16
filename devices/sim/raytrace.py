"""Exact chord lengths of rays through analytic solids.

Every shape answers :meth:`chord`, the length (mm) of the part of each ray inside it, computed
in closed form (slab test for boxes, quadratic for cylinders and spheres), and :meth:`corners`,
eight points whose convex hull contains it (used to cull detector pixels a shape cannot touch).
Rays start at ``origin`` and run along unit vectors ``dirs``; only ``t >= 0`` counts, so a solid
behind the source is never seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["BOX", "CYLINDER", "SPHERE", "Box", "Cylinder", "Shape", "Sphere", "rotation_matrix"]

#: Kinds of solid for the compiled kernels (see :func:`Shape.local_frame`).
BOX, CYLINDER, SPHERE = 0, 1, 2


def rotation_matrix(axis: str, angle_rad: float) -> np.ndarray:
    """Right-handed rotation about a coordinate axis ``'x'``, ``'y'`` or ``'z'``."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    if axis == "x":
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    if axis == "y":
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    if axis == "z":
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    raise ValueError(f"axis must be one of 'x', 'y', 'z', got {axis!r}")


class Shape(Protocol):
    """What the image formation needs from a solid."""

    def chord(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray: ...

    def corners(self) -> np.ndarray: ...

    def local_frame(self) -> tuple[np.ndarray, np.ndarray, int, tuple[float, float, float]]:
        """``(center, R, kind, params)``: parent coordinates ``p`` map to the solid's canonical
        frame as ``(p - center) @ R``; ``kind`` and ``params`` describe it there."""
        ...


def _interval_length(t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Length of ``[max(t0, 0), t1]``, zero where empty."""
    return np.maximum(t1 - np.maximum(t0, 0.0), 0.0)


def _as_vec(v, name: str = "vector") -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be 3 finite numbers, got {v!r}")
    return a


def _as_rotation(m) -> np.ndarray:
    r = np.asarray(m, dtype=np.float64)
    if r.shape != (3, 3) or not np.allclose(r.T @ r, np.eye(3), atol=1e-9):
        raise ValueError(f"rotation must be an orthonormal 3 x 3 matrix, got {m!r}")
    return r


@dataclass(frozen=True)
class Box:
    """Rectangular box.

    Parameters
    ----------
    center : (3,) mm
    half_size : (3,) mm, half edge lengths along the box's own axes
    rotation : (3, 3)
        Columns are the box axes in the parent frame (identity: axis aligned).
    """

    center: np.ndarray
    half_size: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _as_vec(self.center, "center"))
        object.__setattr__(self, "half_size", _as_vec(self.half_size, "half_size"))
        object.__setattr__(self, "rotation", _as_rotation(self.rotation))
        if np.any(self.half_size <= 0):
            raise ValueError(f"half_size must be > 0 mm on every axis, got {self.half_size}")

    def chord(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o = (np.asarray(origin, dtype=np.float64) - self.center) @ self.rotation
        d = dirs @ self.rotation
        t0 = np.full(d.shape[:-1], -np.inf)
        t1 = np.full(d.shape[:-1], np.inf)
        for k in range(3):
            dk = d[..., k]
            h = self.half_size[k]
            with np.errstate(divide="ignore", invalid="ignore"):
                inv = 1.0 / dk
                a = (-h - o[k]) * inv
                b = (h - o[k]) * inv
            parallel = np.abs(dk) < 1e-300  # also subnormal components: 1/dk would overflow
            lo = np.where(parallel, np.where(abs(o[k]) <= h, -np.inf, np.inf), np.minimum(a, b))
            hi = np.where(parallel, np.where(abs(o[k]) <= h, np.inf, -np.inf), np.maximum(a, b))
            np.maximum(t0, lo, out=t0)
            np.minimum(t1, hi, out=t1)
        return _interval_length(t0, t1)

    def corners(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return self.center + (signs * self.half_size) @ self.rotation.T

    def local_frame(self):
        return self.center, self.rotation, BOX, tuple(float(h) for h in self.half_size)


@dataclass(frozen=True)
class Cylinder:
    """Finite right circular cylinder.

    Parameters
    ----------
    center : (3,) mm, the centre of the axis segment
    axis : (3,) direction of the axis (normalised here)
    radius : mm
    half_length : mm, half the length along the axis
    """

    center: np.ndarray
    axis: np.ndarray
    radius: float
    half_length: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _as_vec(self.center, "center"))
        a = _as_vec(self.axis, "axis")
        n = np.linalg.norm(a)
        if n == 0:
            raise ValueError("axis must be a non-zero vector")
        object.__setattr__(self, "axis", a / n)
        if not (self.radius > 0 and self.half_length > 0):
            raise ValueError(
                f"radius and half_length must be > 0 mm, got {self.radius}, {self.half_length}"
            )

    def chord(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o = np.asarray(origin, dtype=np.float64) - self.center
        a = self.axis
        oa = float(o @ a)
        da = dirs @ a
        op = o - oa * a
        dp = dirs - da[..., None] * a
        qa = np.einsum("...k,...k->...", dp, dp)
        qb = dp @ op
        qc = float(op @ op) - self.radius**2
        disc = qb * qb - qa * qc
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.sqrt(np.maximum(disc, 0.0))
            r0 = (-qb - root) / qa
            r1 = (-qb + root) / qa
        along_axis = qa <= 1e-300
        r0 = np.where(
            along_axis, np.where(qc <= 0, -np.inf, np.inf), np.where(disc > 0, r0, np.inf)
        )
        r1 = np.where(
            along_axis, np.where(qc <= 0, np.inf, -np.inf), np.where(disc > 0, r1, -np.inf)
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            c0 = (-self.half_length - oa) / da
            c1 = (self.half_length - oa) / da
        flat = da == 0.0
        inside_slab = abs(oa) <= self.half_length
        lo = np.where(flat, -np.inf if inside_slab else np.inf, np.minimum(c0, c1))
        hi = np.where(flat, np.inf if inside_slab else -np.inf, np.maximum(c0, c1))
        return _interval_length(np.maximum(r0, lo), np.minimum(r1, hi))

    def _basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self.axis
        helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = np.cross(a, helper)
        u /= np.linalg.norm(u)
        return u, np.cross(a, u), a

    def local_frame(self):
        u, v, a = self._basis()
        r = np.column_stack([u, v, a])
        return self.center, r, CYLINDER, (float(self.radius), float(self.half_length), 0.0)

    def corners(self) -> np.ndarray:
        u, v, a = self._basis()
        pts = [
            self.center + sa * self.half_length * a + su * self.radius * u + sv * self.radius * v
            for sa in (-1, 1)
            for su in (-1, 1)
            for sv in (-1, 1)
        ]
        return np.array(pts)


@dataclass(frozen=True)
class Sphere:
    """Sphere of ``radius`` mm about ``center`` (3,) mm."""

    center: np.ndarray
    radius: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _as_vec(self.center, "center"))
        if not self.radius > 0:
            raise ValueError(f"radius must be > 0 mm, got {self.radius}")

    def chord(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o = np.asarray(origin, dtype=np.float64) - self.center
        b = dirs @ o
        c = float(o @ o) - self.radius**2
        disc = b * b - c
        root = np.sqrt(np.maximum(disc, 0.0))
        t0 = np.where(disc > 0, -b - root, np.inf)
        t1 = np.where(disc > 0, -b + root, -np.inf)
        return _interval_length(t0, t1)

    def corners(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return self.center + signs * self.radius

    def local_frame(self):
        return self.center, np.eye(3), SPHERE, (float(self.radius), 0.0, 0.0)
