"""Poisson-aware reconstruction of photon-counting data (Medipix2), and when to use it.

At a few photons per pixel (the EPMA source gives ~0.1 photons per Medipix2 pixel per second,
issue 9) the ``-log`` of the normalised counts is biased and its noise is far from Gaussian:
pixels with zero counts have no logarithm at all. FBP/FDK then reconstruct mostly noise. A
maximum-likelihood reconstruction works on the counts themselves.

Model
-----
Counts ``y_i ~ Poisson(yhat_i)`` with ``yhat_i = b_i exp(-[A x]_i) + r_i``: ``b`` the blank
scan (flat-field counts per pixel for the projection's exposure, expected value), ``r`` the
background counts (zero for a counting detector above its threshold), ``A`` a projector
(dimensionless line integrals of ``x`` in 1/mm). The log-likelihood
``L(x) = sum_i y_i log(yhat_i) - yhat_i`` has the gradient ``A^T [p (1 - y / yhat)]`` with
``p = b exp(-A x)``.

Algorithm (:func:`poisson_ml`)
------------------------------
Ordered-subsets separable-surrogate ascent for transmission data, i.e. OS-MLTR (Nuyts et al.,
IEEE TMI 17 (1998) 1108, "Iterative reconstruction for helical CT: a simulation study"; the
separable paraboloidal surrogate form of Erdogan & Fessler, Phys. Med. Biol. 44 (1999) 2835):

    x_j <- max(0, x_j + ([A_S^T g]_j - beta dR/dx_j / M) / ([A_S^T (c A_S 1)]_j + beta D_j / M))

per subset ``S`` of the ``M`` subsets of angles (interleaved), with ``g = p (1 - y / yhat)``,
the curvature ``c = p`` (the likelihood's curvature at ``r = 0``) and ``A_S 1`` the ray
lengths through the volume. Without a penalty this is the transmission
analogue of OSEM: each sub-iteration costs one forward projection and two backprojections.

Penalised likelihood (``beta > 0``): ``R(x) = sum over the 6-neighbour pairs of
psi(x_j - x_k)`` with the hyperbola ``psi(t) = delta^2 (sqrt(1 + (t / delta)^2) - 1)``, a
smoothed total variation (quadratic below ``delta``, linear above, so edges survive); its
separable surrogate adds ``beta sum_k 2 omega(x_j - x_k)``, ``omega(t) = psi'(t) / t``, to
the denominator. The likelihood is in counts and ``R`` in (1/mm)^2, so the absolute weight
would have to grow with the counts, the angles and the voxel size; :func:`poisson_ml` takes a
relative ``beta`` instead and scales it by the data term's curvature for the blank scan.

Any projector pair with ``forward``/``back``/``subset`` serves (:class:`Projector`):
:class:`nanoct.recon.laminography.LaminoProjector` covers parallel beam, cone beam and
laminography with one matched (exactly adjoint) pair.

Choosing (:func:`choose_algorithm`, :func:`reconstruct_counts`)
--------------------------------------------------------------
Below a mean of ``DEFAULT_COUNTS_THRESHOLD`` (20) counts per projection pixel the likelihood
method is chosen, above it FBP/FDK (or laminographic FBP) on ``-log``. The threshold is an
assumption, set where the ``-log`` transform stops being well behaved: at a mean ``n`` the
bias of ``log`` is about ``1 / (2 n)`` (2.5 % at 20) and the probability of a zero count,
``exp(-n)``, is negligible above ~10; the tests show the likelihood method ahead below it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numba import njit, prange

from nanoct.recon.fbp import fbp
from nanoct.recon.fdk import fdk
from nanoct.recon.laminography import LaminoGeometry, LaminoProjector, _as_geometry, fbp_lamino

__all__ = [
    "ALGORITHMS",
    "DEFAULT_BETA",
    "DEFAULT_COUNTS_THRESHOLD",
    "DEFAULT_SUBSETS",
    "CountsReconstruction",
    "Projector",
    "choose_algorithm",
    "log_transform",
    "poisson_ml",
    "reconstruct_counts",
]

logger = logging.getLogger(__name__)

#: Mean counts per projection pixel below which :func:`choose_algorithm` picks the likelihood
#: method (assumption; see the module docstring).
DEFAULT_COUNTS_THRESHOLD = 20.0
#: Relative penalty weight used by :func:`reconstruct_counts` (assumption: the best of
#: 0.01-1 on the test phantoms at 5-15 counts per pixel, with the automatic edge threshold).
DEFAULT_BETA = 0.3
#: Ordered subsets used by default (fewer when there are fewer angles).
DEFAULT_SUBSETS = 8
#: Algorithms :func:`reconstruct_counts` knows ("auto" chooses between them).
ALGORITHMS = ("poisson-ml", "fbp")


class Projector(Protocol):
    """A projector pair for :func:`poisson_ml` (e.g. :class:`LaminoProjector`)."""

    volume_shape: tuple[int, int, int]

    @property
    def projection_shape(self) -> tuple[int, int, int]: ...

    def forward(self, volume: np.ndarray) -> np.ndarray: ...

    def back(self, projections: np.ndarray) -> np.ndarray: ...

    def subset(self, index) -> Projector: ...


# --------------------------------------------------------------------------- inputs
def _counts(counts) -> np.ndarray:
    y = np.asarray(counts)
    if y.ndim != 3 or min(y.shape) < 1 or y.dtype.kind not in "fiu":
        raise ValueError(
            f"counts must be a non-empty real 3-D array (angle, row, column), got {y.dtype} "
            f"{y.shape}"
        )
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)) or y.min() < 0:
        raise ValueError("counts must be finite and >= 0")
    return y


def _blank(name: str, value, shape, positive: bool) -> np.ndarray:
    b = np.asarray(value, dtype=np.float64)
    try:
        b = np.broadcast_to(b, shape)
    except ValueError:
        raise ValueError(
            f"{name} must broadcast to the counts' shape {shape} (a number, (row, column) or "
            f"(angle, row, column)), got shape {b.shape}"
        ) from None
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{name} must be finite")
    if positive and b.min() <= 0:
        raise ValueError(f"{name} must be > 0 everywhere (expected counts), got min {b.min()!r}")
    if not positive and b.min() < 0:
        raise ValueError(f"{name} must be >= 0, got min {b.min()!r}")
    return b


def log_transform(counts, flat_counts, *, dark_counts=0.0, floor: float = 0.5) -> np.ndarray:
    """Line integrals ``-log((y - r) / b)`` for FBP/FDK, float32.

    Parameters
    ----------
    counts : array_like, shape (n_angles, n_rows, n_cols)
        Measured counts ``y``.
    flat_counts : float or array_like
        Expected blank-scan counts ``b`` per pixel for the projections' exposure, broadcast to
        ``counts`` (``(row, column)`` or ``(angle, row, column)``).
    dark_counts : float or array_like
        Expected background counts ``r``, subtracted first.
    floor : float
        ``y - r`` is raised to at least ``floor`` counts (> 0) before the logarithm, so a pixel
        with no counts gives a finite line integral (assumption: half a count, a common choice).
    """
    y = _counts(counts)
    b = _blank("flat_counts", flat_counts, y.shape, True)
    r = _blank("dark_counts", dark_counts, y.shape, False)
    if not (math.isfinite(floor) and floor > 0):
        raise ValueError(f"floor must be > 0 counts, got {floor!r}")
    t = np.maximum(y - r, floor) / np.maximum(b - r, floor)
    return (-np.log(t)).astype(np.float32)


# --------------------------------------------------------------------------- penalty
@njit(parallel=True, fastmath=True, cache=True)
def _hyperbola_kernel(x, delta, grad, curv):  # pragma: no cover
    """Per voxel, over its (up to) 6 neighbours k: sum psi'(x_j - x_k) and sum 2 omega."""
    nz, ny, nx = x.shape
    inv = 1.0 / (delta * delta)
    for k in prange(nz):
        for j in range(ny):
            for i in range(nx):
                v = x[k, j, i]
                g = 0.0
                c = 0.0
                for dk, dj, di in ((-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1),
                                   (0, 0, 1)):  # fmt: skip
                    kk = k + dk
                    jj = j + dj
                    ii = i + di
                    if 0 <= kk < nz and 0 <= jj < ny and 0 <= ii < nx:
                        t = v - x[kk, jj, ii]
                        w = 1.0 / math.sqrt(1.0 + t * t * inv)  # omega(t) = psi'(t) / t
                        g += t * w
                        c += 2.0 * w
                grad[k, j, i] = g
                curv[k, j, i] = c


def _hyperbola(x: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and surrogate curvature of the 6-neighbour hyperbolic penalty at ``x``.

    ``x`` is a 3-D volume; ``R(x) = sum over neighbour pairs of psi(x_j - x_k)``, so
    ``dR/dx_j = sum_k psi'(x_j - x_k)`` and the separable surrogate's curvature is
    ``sum_k 2 omega(x_j - x_k)``.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    grad = np.empty_like(x)
    curv = np.empty_like(x)
    _hyperbola_kernel(x, float(delta), grad, curv)
    return grad, curv


def _auto_delta(x: np.ndarray) -> float:
    """Edge threshold from a first, smooth estimate: a tenth of its 99th percentile.

    A heuristic (assumption): edges of interest are contrasts above ~10 % of the strongest
    attenuation in the volume; quieter differences are smoothed as noise.
    """
    top = float(np.percentile(x, 99.0))
    return max(0.1 * top, 1e-6 * max(float(x.max()), 1e-30), 1e-12)


# --------------------------------------------------------------------------- ML
def _subsets(n_angles: int, n_subsets: int) -> list[np.ndarray]:
    return [np.arange(m, n_angles, n_subsets) for m in range(n_subsets)]


def poisson_ml(
    counts,
    flat_counts,
    projector: Projector,
    *,
    dark_counts=0.0,
    n_iter: int = 20,
    n_subsets: int | None = None,
    beta: float = 0.0,
    delta_per_mm: float | None = None,
    x0: np.ndarray | None = None,
    callback: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Maximum-likelihood (optionally penalised) reconstruction from transmission counts.

    Parameters
    ----------
    counts : array_like, shape (n_angles, n_rows, n_cols)
        Measured counts per projection pixel (integers or floats >= 0).
    flat_counts : float or array_like
        Expected blank-scan counts per pixel for the projections' exposure (> 0), broadcast
        to ``counts``; e.g. the mean of many flat frames scaled to the exposure. Treated as
        exact (average enough flats that their noise is small next to the projections').
    projector : Projector
        Matched projector pair for the scan, e.g.
        ``LaminoProjector(geometry, angles, (n_rows, n_cols), volume_shape)``.
    dark_counts : float or array_like
        Expected background counts (>= 0); 0 for a counting detector.
    n_iter : int
        Full iterations (each visits every subset once), >= 1.
    n_subsets : int, optional
        Ordered subsets of interleaved angles, in [1, n_angles]; default
        ``min(DEFAULT_SUBSETS, n_angles)``.
    beta : float
        Penalty weight (>= 0) relative to the data: for small neighbour differences the
        penalty's curvature is ``beta`` times the likelihood's curvature of the blank scan,
        averaged over the voxels the scan sees (so ``beta`` does not depend on the counts,
        the number of angles or the voxel size); 0 is plain maximum likelihood. Useful values
        lie around 0.01-1.
    delta_per_mm : float, optional
        Edge threshold of the hyperbolic penalty (1/mm, > 0). None (with ``beta > 0``): the
        first iteration runs without the penalty and ``delta`` is set to a tenth of the 99th
        percentile of its result (a heuristic).
    x0 : numpy.ndarray, optional
        Starting volume (1/mm), clipped at 0; default zeros.
    callback : callable, optional
        ``callback(iteration, x)`` after every full iteration (``x`` is live).

    Returns
    -------
    numpy.ndarray
        float32 ``volume_shape`` attenuation coefficients (1/mm), >= 0.
    """
    y = _counts(counts)
    if tuple(projector.projection_shape) != y.shape:
        raise ValueError(
            f"counts must have the projector's shape {tuple(projector.projection_shape)}, "
            f"got {y.shape}"
        )
    b = _blank("flat_counts", flat_counts, y.shape, True)
    r = _blank("dark_counts", dark_counts, y.shape, False)
    na = y.shape[0]
    if isinstance(n_iter, bool) or int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    if n_subsets is None:
        n_subsets = min(DEFAULT_SUBSETS, na)
    if isinstance(n_subsets, bool) or int(n_subsets) != n_subsets or not 1 <= n_subsets <= na:
        raise ValueError(f"n_subsets must be an integer in [1, {na}] (n_angles), got {n_subsets!r}")
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be >= 0 (counts mm^2), got {beta!r}")
    delta = None
    if delta_per_mm is not None:
        delta = float(delta_per_mm)
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta_per_mm must be > 0 (1/mm) or None, got {delta_per_mm!r}")
    shape = tuple(projector.volume_shape)
    if x0 is None:
        x = np.zeros(shape, np.float64)
    else:
        x = np.array(x0, dtype=np.float64)
        if x.shape != shape:
            raise ValueError(f"x0 must have shape {shape}, got {x.shape}")
        np.maximum(x, 0.0, out=x)
    subsets = _subsets(na, int(n_subsets))
    ops = [projector.subset(s) for s in subsets]
    ray_len = [op.forward(np.ones(shape, np.float32)).astype(np.float64) for op in ops]
    beta_abs = 0.0
    if beta > 0:
        # the data term's curvature for the blank scan, summed over subsets, averaged over the
        # voxels the scan sees; the penalty's curvature for small differences is 4 per axis
        d0 = sum(op.back(b[s] * length).astype(np.float64) for s, op, length in
                 zip(subsets, ops, ray_len, strict=True))  # fmt: skip
        n_axes = sum(1 for n in shape if n > 1)
        seen = d0[d0 > 1e-6 * d0.max()]
        beta_abs = beta * float(seen.mean()) / (4.0 * max(n_axes, 1))
    for it in range(int(n_iter)):
        penalise = beta > 0 and (delta is not None or it > 0)
        for s, op, length in zip(subsets, ops, ray_len, strict=True):
            p = b[s] * np.exp(-op.forward(x.astype(np.float32)).astype(np.float64))
            yhat = p + r[s]
            g = p * (1.0 - y[s] / np.maximum(yhat, 1e-12))
            num = op.back(g).astype(np.float64)
            den = op.back(p * length).astype(np.float64)
            if penalise:
                grad_r, curv_r = _hyperbola(x, delta)  # type: ignore[arg-type]
                num -= beta_abs * grad_r / len(subsets)
                den += beta_abs * curv_r / len(subsets)
            step = np.zeros_like(x)
            np.divide(num, den, out=step, where=den > 1e-12 * max(float(den.max()), 1e-300))
            x += step
            np.maximum(x, 0.0, out=x)
        if beta > 0 and delta is None:
            delta = _auto_delta(x)
            logger.debug("poisson_ml: delta_per_mm=%g from the first iteration", delta)
        if callback is not None:
            callback(it, x)
    logger.debug(
        "poisson_ml: %d iterations x %d subsets, beta=%g (%g counts mm^2)",
        n_iter, len(subsets), beta, beta_abs,
    )  # fmt: skip
    return x.astype(np.float32)


# --------------------------------------------------------------------------- choosing
def choose_algorithm(counts_mean: float, *, threshold: float = DEFAULT_COUNTS_THRESHOLD) -> str:
    """``"poisson-ml"`` when ``counts_mean < threshold`` counts per pixel, else ``"fbp"``.

    ``"fbp"`` stands for the analytic reconstruction of the geometry: FBP (parallel beam),
    FDK (cone beam) or laminographic FBP (tilted axis).
    """
    m = float(counts_mean)
    if not (math.isfinite(m) and m >= 0):
        raise ValueError(f"counts_mean must be a finite count >= 0, got {counts_mean!r}")
    t = float(threshold)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"threshold must be > 0 counts, got {threshold!r}")
    return "poisson-ml" if m < t else "fbp"


@dataclass(frozen=True)
class CountsReconstruction:
    """What :func:`reconstruct_counts` returns.

    Attributes
    ----------
    volume : numpy.ndarray
        float32 ``(nz, ny, nx)`` (or ``(ny, nx)`` from a sinogram), 1/mm.
    algorithm : str
        The algorithm used (:data:`ALGORITHMS`).
    counts_mean : float
        Mean measured counts per projection pixel (what ``"auto"`` decided on).
    """

    volume: np.ndarray
    algorithm: str
    counts_mean: float


def _analytic(p, angles, geom: LaminoGeometry, volume_shape, voxel_mm, filter) -> np.ndarray:
    """FBP (parallel), FDK (cone) or laminographic FBP of line integrals ``p``."""
    n_rows, n_cols = p.shape[1:]
    if geom.tilt_deg == 0.0 and geom.is_cone:
        return fdk(
            p, angles, sod_mm=geom.sod_mm, sdd_mm=geom.sdd_mm, pixel_mm=geom.pixel_mm,
            offset_u_mm=geom.offset_u_mm, offset_v_mm=geom.offset_v_mm,
            volume_shape=volume_shape, voxel_mm=voxel_mm, filter=filter,
        )  # fmt: skip
    vshape = volume_shape if volume_shape is not None else (n_rows, n_cols, n_cols)
    plain_parallel = (
        geom.tilt_deg == 0.0
        and not geom.is_cone
        and geom.offset_v_mm == 0.0
        and (voxel_mm is None or float(voxel_mm) == geom.pixel_mm)
        and int(vshape[0]) == n_rows
    )
    if plain_parallel:
        return fbp(
            p, angles, filter=filter, center_col=(n_cols - 1) / 2.0 - geom.offset_u_mm /
            geom.pixel_mm, size=(int(vshape[1]), int(vshape[2])), pixel_mm=geom.pixel_mm,
        )  # fmt: skip
    return fbp_lamino(p, angles, geom, volume_shape=volume_shape, voxel_mm=voxel_mm, filter=filter)


def reconstruct_counts(
    counts,
    flat_counts,
    angles,
    geometry,
    *,
    algorithm: str = "auto",
    threshold: float = DEFAULT_COUNTS_THRESHOLD,
    dark_counts=0.0,
    volume_shape: tuple[int, int, int] | None = None,
    voxel_mm: float | None = None,
    n_iter: int = 10,
    n_subsets: int | None = None,
    beta: float = DEFAULT_BETA,
    delta_per_mm: float | None = None,
    filter: str = "ram-lak",
) -> CountsReconstruction:
    """Reconstruct photon counts, choosing the algorithm from the mean count when asked.

    Parameters
    ----------
    counts : array_like
        Counts ``(angle, row, column)``, or a sinogram ``(angle, column)`` for a parallel
        beam at zero tilt (one slice).
    flat_counts, dark_counts : float or array_like
        Expected blank-scan and background counts, broadcast to ``counts``
        (:func:`poisson_ml`).
    angles : array_like
        Radians, one per projection (a full turn for FDK and laminography).
    geometry : LaminoGeometry or ConeGeometry
        Scan geometry (parallel/cone beam, any tilt).
    algorithm : {"auto", "poisson-ml", "fbp"}
        ``"auto"``: :func:`choose_algorithm` on the mean of ``counts``.
    threshold : float
        Counts per pixel for ``"auto"``.
    volume_shape, voxel_mm
        As :func:`nanoct.recon.laminography.fbp_lamino` (a sinogram gives ``(1, n, n)``).
    n_iter, n_subsets, delta_per_mm
        For ``"poisson-ml"`` (:func:`poisson_ml`).
    beta : float
        Relative penalty weight for ``"poisson-ml"`` (:func:`poisson_ml`); the default
        :data:`DEFAULT_BETA` with the automatic ``delta_per_mm`` is a penalised likelihood that
        converges (plain maximum likelihood, ``beta=0``, amplifies noise as it converges and
        needs early stopping).
    filter : str
        Ramp window for ``"fbp"``.

    Returns
    -------
    CountsReconstruction
        The volume (1/mm), the algorithm used and the mean count.
    """
    if algorithm not in ("auto", *ALGORITHMS):
        raise ValueError(f"algorithm must be one of {('auto', *ALGORITHMS)}, got {algorithm!r}")
    geom = _as_geometry(geometry)
    y = np.asarray(counts)
    sinogram = y.ndim == 2
    if sinogram:
        if geom.is_cone or geom.tilt_deg != 0.0:
            raise ValueError(
                f"a 2-D sinogram (angle, column) needs a parallel beam at tilt_deg=0, got {geom!r}"
            )
        y = y[:, None, :]
        fl = np.asarray(flat_counts, dtype=np.float64)
        dk = np.asarray(dark_counts, dtype=np.float64)
        flat_counts = fl[..., None, :] if fl.ndim >= 1 else fl
        dark_counts = dk[..., None, :] if dk.ndim >= 1 else dk
        if volume_shape is None:
            volume_shape = (1, y.shape[2], y.shape[2])
    y = _counts(y)
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim != 1 or a.size != y.shape[0] or not np.all(np.isfinite(a)):
        raise ValueError(
            f"angles must be {y.shape[0]} finite radians (one per projection), got shape {a.shape}"
        )
    mean = float(y.mean())
    chosen = choose_algorithm(mean, threshold=threshold) if algorithm == "auto" else algorithm
    logger.info("reconstruct_counts: mean %.3g counts per pixel -> %s", mean, chosen)
    if chosen == "fbp":
        p = log_transform(y, flat_counts, dark_counts=dark_counts)
        vol = _analytic(p, a, geom, volume_shape, voxel_mm, filter)
    else:
        b = _blank("flat_counts", flat_counts, y.shape, True)
        op = LaminoProjector(geom, a, y.shape[1:], volume_shape, voxel_mm)
        vol = poisson_ml(
            y, b, op, dark_counts=dark_counts, n_iter=n_iter,
            n_subsets=n_subsets, beta=beta,
            delta_per_mm=delta_per_mm,
        )  # fmt: skip
    vol = np.asarray(vol, dtype=np.float32)
    if sinogram:
        vol = vol[0] if vol.ndim == 3 else vol
    return CountsReconstruction(vol, chosen, mean)
