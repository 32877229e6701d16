"""The twin's simulated clock.

An 11-hour CT must run in minutes while focal-spot drift, flux conditioning and the
parhelion evolve in *twin* time. Two modes:

- ``time_scale == 0`` (as fast as possible, the default in tests): the clock is purely
  event driven. It advances only when the instrument does something that takes time
  (an exposure, a read-out, a motion, an explicit :meth:`SimClock.wait`), so a run is
  fully deterministic: the same sequence of operations sees the same twin times.
- ``time_scale > 0``: twin time follows the wall clock, ``twin = elapsed_wall / time_scale``
  (``1`` is real time, ``0.01`` runs a hundred times faster than real time). Operations
  that take twin time ``dt`` sleep ``dt * time_scale`` wall seconds. Idle time counts too,
  as it would on the real instrument. Frames then depend on wall timing and are not
  bit-reproducible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["SimClock"]


class SimClock:
    """Twin time in seconds since the twin was created (the tube's switch-on).

    Parameters
    ----------
    time_scale : float
        Wall seconds per twin second; 0 means as fast as possible (event driven).
    start_s : float
        Twin time at creation, seconds. A positive value models an instrument that was
        switched on (and conditioning) ``start_s`` seconds before the session starts.
    """

    def __init__(self, time_scale: float = 0.0, *, start_s: float = 0.0) -> None:
        if not (time_scale >= 0.0):
            raise ValueError(
                f"time_scale must be >= 0 (0 = as fast as possible), got {time_scale!r}"
            )
        if not (start_s >= 0.0):
            raise ValueError(f"start_s must be >= 0 s, got {start_s!r}")
        self._time_scale = float(time_scale)
        self._lock = threading.Lock()
        self._event_time = float(start_s)
        self._wall_origin = time.monotonic()
        self._offset = float(start_s)
        self._listeners: list[Callable[[float], None]] = []

    @property
    def time_scale(self) -> float:
        """Wall seconds per twin second (0 = event driven)."""
        return self._time_scale

    def now(self) -> float:
        """Current twin time in seconds."""
        with self._lock:
            if self._time_scale == 0.0:
                return self._event_time
            return self._offset + (time.monotonic() - self._wall_origin) / self._time_scale

    def add_listener(self, fn: Callable[[float], None]) -> None:
        """Call ``fn(twin_time)`` after every :meth:`advance` (monitors of slow quantities such
        as the tube's flux use it to publish new values)."""
        self._listeners.append(fn)

    def _notify(self, t: float) -> float:
        for fn in list(self._listeners):
            fn(t)
        return t

    def advance(self, dt_s: float) -> float:
        """Let ``dt_s`` twin seconds pass (sleeping ``dt_s * time_scale`` wall seconds).

        Returns the twin time afterwards. Blocks the caller in real-time mode: devices call it
        from a worker thread when they must not block the RunEngine.
        """
        if not (dt_s >= 0.0):
            raise ValueError(f"dt_s must be >= 0 s, got {dt_s!r}")
        if self._time_scale == 0.0:
            with self._lock:
                self._event_time += dt_s
                t = self._event_time
            return self._notify(t)
        time.sleep(dt_s * self._time_scale)
        return self._notify(self.now())

    def wait(self, dt_s: float) -> float:
        """Alias of :meth:`advance` for the user-facing 'let the instrument sit' action."""
        return self.advance(dt_s)

    def wall_duration(self, dt_s: float) -> float:
        """Wall seconds that ``dt_s`` twin seconds take in this mode."""
        return dt_s * self._time_scale
