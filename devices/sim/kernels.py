"""Compiled inner loops of the image formation (numba).

Two kernels carry almost all of the twin's work: the chord lengths of every ray through every
solid, and the polychromatic Beer-Lambert sum per pixel. They compute exactly what the
reference numpy implementations compute (``Shape.chord`` in :mod:`raytrace` and
:meth:`Renderer.transmission_reference`), without the large temporaries, in parallel over
detector rows; the tests hold them to those references.

A solid enters the chord kernel in its canonical local frame (box centred and axis aligned,
cylinder along local z, sphere at the origin): ``kind`` selects the solid and ``p0..p2`` are
its half sizes (box), radius and half length (cylinder) or radius (sphere).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from nanoct.devices.sim.raytrace import BOX, CYLINDER

__all__ = ["accumulate_chords", "polychromatic_transmission"]

_INF = np.inf


@njit(cache=True, inline="always")
def _interval(t0: float, t1: float) -> float:
    if t0 < 0.0:
        t0 = 0.0
    d = t1 - t0
    return d if d > 0.0 else 0.0


@njit(cache=True, inline="always")
def _slab(o: float, d: float, h: float, t0: float, t1: float) -> tuple[float, float]:
    if abs(d) < 1e-300:
        if abs(o) > h:
            return _INF, -_INF
        return t0, t1
    a = (-h - o) / d
    b = (h - o) / d
    lo = a if a < b else b
    hi = b if a < b else a
    return (lo if lo > t0 else t0), (hi if hi < t1 else t1)


@njit(cache=True)
def _chord(kind, ox, oy, oz, dx, dy, dz, p0, p1, p2) -> float:
    if kind == BOX:
        t0, t1 = -_INF, _INF
        t0, t1 = _slab(ox, dx, p0, t0, t1)
        t0, t1 = _slab(oy, dy, p1, t0, t1)
        t0, t1 = _slab(oz, dz, p2, t0, t1)
        return _interval(t0, t1)
    if kind == CYLINDER:
        qa = dx * dx + dy * dy
        qb = ox * dx + oy * dy
        qc = ox * ox + oy * oy - p0 * p0
        if qa <= 1e-300:
            if qc > 0.0:
                return 0.0
            r0, r1 = -_INF, _INF
        else:
            disc = qb * qb - qa * qc
            if disc <= 0.0:
                return 0.0
            root = math.sqrt(disc)
            r0 = (-qb - root) / qa
            r1 = (-qb + root) / qa
        r0, r1 = _slab(oz, dz, p1, r0, r1)
        return _interval(r0, r1)
    # sphere
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - p0 * p0
    disc = b * b - c
    if disc <= 0.0:
        return 0.0
    root = math.sqrt(disc)
    return _interval(-b - root, -b + root)


@njit(parallel=True, cache=True)
def accumulate_chords(
    lengths, mat, disp, r0, c0, u, v, src, sdd, to_local, o_local, kind, p0, p1, p2
):
    """Add the chord of every ray through one solid to ``lengths[mat]`` and subtract it from
    ``lengths[disp]`` over the window starting at pixel ``(r0, c0)``.

    Rays run from ``src`` (lab, mm) to the pixels ``(u[j], v[i], sdd)``; ``to_local`` maps a lab
    direction (row vector) to the solid's local frame, in which the source sits at ``o_local``.
    Returns the number of rays that met the solid.
    """
    rows = v.shape[0]
    cols = u.shape[0]
    dz = sdd - src[2]
    hits = np.zeros(rows, dtype=np.int64)
    for ii in prange(rows):
        dy = v[ii] - src[1]
        for jj in range(cols):
            dx = u[jj] - src[0]
            n = math.sqrt(dx * dx + dy * dy + dz * dz)
            lx, ly, lz = dx / n, dy / n, dz / n
            d0 = lx * to_local[0, 0] + ly * to_local[1, 0] + lz * to_local[2, 0]
            d1 = lx * to_local[0, 1] + ly * to_local[1, 1] + lz * to_local[2, 1]
            d2 = lx * to_local[0, 2] + ly * to_local[1, 2] + lz * to_local[2, 2]
            c = _chord(kind, o_local[0], o_local[1], o_local[2], d0, d1, d2, p0, p1, p2)
            if c > 0.0:
                lengths[mat, r0 + ii, c0 + jj] += c
                lengths[disp, r0 + ii, c0 + jj] -= c
                hits[ii] += 1
    return hits.sum()


@njit(parallel=True, cache=True, fastmath=True)
def polychromatic_transmission(lengths, mu, w, we, e_open, t_out, ev_out):
    """Per pixel: ``T = sum_E w_E exp(-sum_m mu[E, m] L_m)`` and ``E_var = sum_E we_E ... / T``.

    ``lengths`` (n_mat, rows, cols) mm; ``mu`` (n_E, n_mat) 1/mm; ``w`` the detected-signal
    weights (sum 1) and ``we = w * E``. Pixels no ray of the object met get T = 1, E_var =
    ``e_open``.
    """
    n_mat, rows, cols = lengths.shape
    n_e = mu.shape[0]
    for i in prange(rows):
        idx = np.empty(n_mat, dtype=np.int64)
        val = np.empty(n_mat, dtype=np.float32)
        for j in range(cols):
            k = 0
            for m in range(n_mat):
                x = lengths[m, i, j]
                if x != 0.0:
                    idx[k] = m
                    val[k] = x
                    k += 1
            if k == 0:
                t_out[i, j] = 1.0
                ev_out[i, j] = e_open
                continue
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            for e in range(n_e):
                a = np.float32(0.0)
                for q in range(k):
                    a += mu[e, idx[q]] * val[q]
                x = math.exp(-a)
                s1 += w[e] * x
                s2 += we[e] * x
            t_out[i, j] = s1
            ev_out[i, j] = s2 / s1 if s1 > 1e-30 else e_open
