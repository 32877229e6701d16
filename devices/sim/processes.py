"""Seeded random processes of twin time.

Drift and fluctuation models must give the same value at the same twin time whatever the
order and frequency of the queries (a plan that reads the tube every second and one that reads
it once an hour see the same drift). Each process is therefore sampled on a fixed twin-time grid,
generated lazily in blocks from its own seeded generator, and linearly interpolated between grid
points.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OrnsteinUhlenbeck", "RandomWalk"]

_BLOCK = 4096


class _GridProcess:
    """Base: values on a grid ``t_k = k * step_s`` for ``k >= 0``, extended on demand."""

    def __init__(self, seed: int | np.random.SeedSequence, step_s: float, dims: int) -> None:
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0 s, got {step_s!r}")
        self._rng = np.random.default_rng(seed)
        self._step = float(step_s)
        self._dims = int(dims)
        self._values = np.zeros((1, self._dims))

    def _extend(self, n_needed: int) -> None:
        while self._values.shape[0] < n_needed:
            block = self._next_block(self._values[-1], _BLOCK)
            self._values = np.concatenate([self._values, block])

    def _next_block(self, last: np.ndarray, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, t_s: float) -> np.ndarray:
        """Value at twin time ``t_s`` (seconds, >= 0), shape ``(dims,)``."""
        t = max(float(t_s), 0.0) / self._step
        k = int(np.floor(t))
        self._extend(k + 2)
        frac = t - k
        return (1.0 - frac) * self._values[k] + frac * self._values[k + 1]


class RandomWalk(_GridProcess):
    """Brownian motion starting at zero with diffusion ``sigma_per_sqrt_s`` per axis.

    The standard deviation after time ``t`` is ``sigma_per_sqrt_s * sqrt(t)``.
    """

    def __init__(
        self,
        seed: int | np.random.SeedSequence,
        sigma_per_sqrt_s: float,
        *,
        dims: int = 1,
        step_s: float = 10.0,
    ) -> None:
        super().__init__(seed, step_s, dims)
        self._sigma = float(sigma_per_sqrt_s)

    def _next_block(self, last: np.ndarray, n: int) -> np.ndarray:
        steps = self._rng.normal(0.0, self._sigma * np.sqrt(self._step), size=(n, self._dims))
        return last + np.cumsum(steps, axis=0)


class OrnsteinUhlenbeck(_GridProcess):
    """Mean-reverting fluctuation with stationary standard deviation ``sigma`` and correlation
    time ``tau_s``, starting at zero, sampled exactly on the grid."""

    def __init__(
        self,
        seed: int | np.random.SeedSequence,
        sigma: float,
        tau_s: float,
        *,
        dims: int = 1,
        step_s: float = 10.0,
    ) -> None:
        super().__init__(seed, step_s, dims)
        if not tau_s > 0:
            raise ValueError(f"tau_s must be > 0 s, got {tau_s!r}")
        self._a = float(np.exp(-self._step / tau_s))
        self._b = float(sigma) * float(np.sqrt(1.0 - self._a**2))

    def _next_block(self, last: np.ndarray, n: int) -> np.ndarray:
        out = np.empty((n, self._dims))
        x = last.copy()
        noise = self._rng.normal(0.0, self._b, size=(n, self._dims))
        for i in range(n):
            x = self._a * x + noise[i]
            out[i] = x
        return out
