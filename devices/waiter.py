"""Waiting in instrument time.

On the real instrument, waiting for the tube to settle is a wall-clock sleep. On the twin the
wait must pass in *twin* time (in the event-driven mode nothing else advances it), so plans
wait through this device: ``yield from bps.mv(waiter, seconds)``.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Kind

from nanoct.devices.signals import ReadbackSignal, run_in_twin_time

__all__ = ["TwinWaiter"]


class TwinWaiter(Device):
    """``set(seconds)`` finishes after ``seconds`` of instrument time; reads the time now."""

    time = Cpt(ReadbackSignal, getter="_now", units="s", kind=Kind.hinted)

    def __init__(self, prefix: str = "", *, clock, **kwargs):
        self._clock = clock
        super().__init__(prefix, **kwargs)

    def _now(self) -> float:
        return self._clock.now()

    def set(self, seconds: float) -> DeviceStatus:
        if not seconds >= 0:
            raise ValueError(f"{self.name}: seconds={seconds!r} must be >= 0")
        st = DeviceStatus(self)
        run_in_twin_time(
            st, lambda: self._clock.advance(float(seconds)), threaded=self._clock.time_scale > 0
        )
        return st
