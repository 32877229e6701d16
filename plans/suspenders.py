"""Suspenders for long scans: the tube's flux and emission current.

Installed by the session (not by plans). When the flux drops below ``flux_floor`` (relative
to nominal) or the emission current below ``current_floor`` of its setpoint, the RunEngine
suspends; it resumes when both are back above their resume levels, and before resuming takes
a fresh flat block (the old flats no longer describe the beam). The CT plan additionally drops
any projection whose exposure saw the dropout, so nothing taken during it is kept.
"""

from __future__ import annotations

import threading
import time

from bluesky.suspenders import SuspendFloor

from nanoct.plans.ct import flat_block

__all__ = ["TwinTimeSuspendFloor", "flux_suspenders", "install_flux_suspenders"]


class TwinTimeSuspendFloor(SuspendFloor):
    """A SuspendFloor that lets instrument time pass while it holds the RunEngine.

    On the real instrument (and on the twin in real time) time passes by itself while a
    suspended scan waits. On the event-driven twin (``time_scale == 0``) nothing would advance
    it, so while tripped this suspender advances the twin's clock in ``step_s`` steps on a
    helper thread until the signal is back above its resume level.
    """

    def __init__(self, signal, suspend_thresh, *, clock, step_s: float = 10.0, **kwargs):
        super().__init__(signal, suspend_thresh, **kwargs)
        self._clock = clock
        self._step_s = float(step_s)
        self._waiter: threading.Thread | None = None

    def __call__(self, value, **kwargs):
        super().__call__(value, **kwargs)
        if self._tripped and self._clock.time_scale == 0 and self._waiter is None:
            self._waiter = threading.Thread(
                target=self._let_time_pass, daemon=True, name="nanoct-suspended-twin-time"
            )
            self._waiter.start()

    def _let_time_pass(self) -> None:
        try:
            time.sleep(0.05)  # let the RunEngine take the suspension first
            while self._tripped and self.RE is not None:
                self._clock.advance(self._step_s)
                time.sleep(0.001)
        finally:
            self._waiter = None


def flux_suspenders(
    ct,
    *,
    flux_floor: float = 0.8,
    resume_flux: float = 0.95,
    num_flats: int = 10,
    sleep_s: float = 0.0,
) -> list[SuspendFloor]:
    """Suspenders on ``ct.tube.flux``; after the flux recovers, a fresh flat block is taken
    (bluesky runs ``post_plan`` after the suspension ends, before the interrupted frame is
    repeated)."""
    if not 0 < flux_floor < resume_flux:
        raise ValueError(f"need 0 < flux_floor ({flux_floor!r}) < resume_flux ({resume_flux!r})")

    def _fresh_flats():
        return flat_block(ct, num_flats)

    return [
        TwinTimeSuspendFloor(
            ct.tube.flux,
            flux_floor,
            clock=ct.twin.clock,
            resume_thresh=resume_flux,
            sleep=sleep_s,
            post_plan=_fresh_flats,
            tripped_message="tube flux below its floor (filament or high-voltage dropout)",
        )
    ]


def install_flux_suspenders(RE, ct, **kwargs) -> list[SuspendFloor]:
    """Build :func:`flux_suspenders` and install them on ``RE``; returns them."""
    sus = flux_suspenders(ct, **kwargs)
    for s in sus:
        RE.install_suspender(s)
    if ct.twin.clock.time_scale > 0:
        ct.tube.start_monitoring()
    return sus
