"""Shared helpers of the live-callback tests (imported as ``live_helpers``): a small twin CT
and fault injection.

The twin's panel is shrunk for speed: 512 native pixels of 0.2 mm instead of 2048 of 0.05 mm
(the same field of view; 128 x 128 images at binning 4), so a 40-angle CT takes about two
seconds. Its pixels collect 16 times the photons of the real ones, so the exposure is 0.3 s
instead of the paper's 5 s for the same signal (about 2500 ADU open beam, well below the
12-bit saturation).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nanoct.devices import Instabilities, sub_um_ct
from nanoct.devices.sim.detector import FlatPanelSpec

#: The CT every live-callback test runs (flat blocks before projections 0, 20 and 40).
SCAN: dict[str, Any] = {
    "num_angles": 40,
    "exposure_s": 0.3,
    "frames_per_projection": 1,
    "flat_every": 20,
    "num_darks": 2,
    "num_flats": 2,
}


def small_ct(data_dir: Path, *, seed: int = 7, instabilities: Instabilities | None = None):
    """The sub-um CT on its twin (all instabilities on by default) with the small panel."""
    return sub_um_ct(
        seed=seed,
        binning=4,
        data_dir=data_dir,
        instabilities=instabilities,
        detector_spec=FlatPanelSpec(native_pixels=512, pixel_mm=0.2),
    )


class AtProjection:
    """A callback that runs ``action()`` once, when projection ``index`` has been saved: from
    then on the twin's world is changed (a fault injected mid-scan)."""

    def __init__(self, index: int, action: Callable[[], None]) -> None:
        self.index, self.action, self.done = index, action, False

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event" and not self.done and doc["data"].get("projection_index") == self.index:
            self.action()
            self.done = True


def spot_jump(tube, dx_um: float, dy_um: float) -> Callable[[], None]:
    """Fault: the focal spot jumps by ``(dx_um, dy_um)`` now and stays there (the twin's own
    fault-injection hook)."""

    def apply() -> None:
        tube.inject_spot_jump(tube.clock.now(), dx_um, dy_um)

    return apply


def parhelion_change(tube, weight: float) -> Callable[[], None]:
    """Fault: the secondary focal spot's weight changes to ``weight`` now and stays there."""

    def apply() -> None:
        tube.inject_parhelion(tube.clock.now(), weight)

    return apply
