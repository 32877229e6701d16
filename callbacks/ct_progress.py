"""Progress of a running CT from its documents: done / total and the time left.

Pure functions a callback (terminal progress bar, IPython line, a remote monitor) can call with
the ``ct_scan`` start document and the latest ``primary`` event; no RunEngine needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CTProgress", "ct_progress"]


@dataclass(frozen=True)
class CTProgress:
    done: int
    total: int
    eta_twin_s: float  # instrument time left
    eta_wall_s: float  # wall time left, at the pace observed so far

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def line(self) -> str:
        """One line for a terminal or an IPython prompt."""
        return (
            f"{self.done}/{self.total} projections ({100 * self.fraction:.0f} %), "
            f"{_hms(self.eta_twin_s)} instrument time left, "
            f"~{_hms(self.eta_wall_s)} wall time left"
        )


def _hms(s: float) -> str:
    if s != s or s in (float("inf"), float("-inf")):  # NaN or infinite: not known yet
        return "?:??:??"
    s = max(round(s), 0)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def ct_progress(start: dict[str, Any], event: dict[str, Any] | None) -> CTProgress:
    """Progress after ``event`` (the latest primary event; None before the first).

    The instrument time left is the scan's own estimate (``expected_duration_s`` in the start
    document: per projection and per flat block) for the remaining projections and flat blocks;
    the wall time left scales it by the wall seconds per instrument second seen so far (the
    event's ``time`` against the start's, and its ``flatpanel_twin_time``).
    """
    total = int(start["num_angles"])
    est = start["expected_duration_s"]
    blocks = start["flat_blocks_before"]
    if event is None:
        return CTProgress(0, total, float(est["total_s"]), float("nan"))
    done = int(event["data"]["projection_index"]) + 1
    blocks_left = sum(1 for b in blocks if b >= done)
    twin_left = (total - done) * est["per_projection_s"] + blocks_left * est["per_flat_block_s"]
    if start.get("darks_after"):
        twin_left += est.get("per_dark_block_s", 0.0)
    detector = (start.get("detectors") or ["flatpanel"])[0]
    twin_elapsed = float(event["data"][f"{detector}_twin_time"])
    wall_elapsed = float(event["time"]) - float(start.get("wall_start", start["time"]))
    pace = wall_elapsed / twin_elapsed if twin_elapsed > 0 else float("nan")
    return CTProgress(done, total, float(twin_left), float(twin_left * pace))
