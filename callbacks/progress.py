"""Progress of long plans: done / total, time left in instrument (twin) and wall time.

:class:`ProgressBar` is a document callback. For a ``ct_scan`` it uses the scan's own
estimate (:func:`nanoct.callbacks.ct_progress.ct_progress`: the start document's expected durations
and the latest ``primary`` event); for any other plan with ``num_points`` it counts
``primary`` events and extrapolates the wall time. It shows a tqdm bar in a terminal and, in
IPython or when the output is not a terminal, a plain line at most every ``min_interval_s``
seconds (and at the end).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Literal, TextIO

from event_model import DocumentRouter

from nanoct.callbacks.ct_progress import CTProgress, ct_progress

__all__ = ["ProgressBar", "format_progress", "in_ipython"]

logger = logging.getLogger(__name__)

Mode = Literal["auto", "bar", "line"]


def in_ipython() -> bool:
    """Whether this runs inside IPython (a terminal shell or a Jupyter kernel)."""
    main = sys.modules.get("IPython")
    if main is None:
        return False
    try:
        return main.get_ipython() is not None
    except AttributeError:
        return False


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = max(round(s), 0)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_progress(p: CTProgress) -> str:
    """One line: done/total, percent, instrument and wall time left ("?" where unknown)."""
    text = f"{p.done}/{p.total} ({100 * p.fraction:.0f} %)"
    if math.isfinite(p.eta_twin_s):
        text += f", {_hms(p.eta_twin_s)} instrument time left"
    return text + f", ~{_hms(p.eta_wall_s)} wall time left"


class ProgressBar(DocumentRouter):
    """Done / total and the time left of the running plan.

    Parameters
    ----------
    mode : {"auto", "bar", "line"}
        ``"bar"``: a tqdm progress bar; ``"line"``: plain lines; ``"auto"``: a line inside
        IPython or when ``file`` is not a terminal, a bar otherwise.
    file : text stream, optional
        Where it writes (default ``sys.stderr`` at the time of each run's start).
    min_interval_s : float
        Least wall time between two lines in line mode (the first and the last are always
        written).

    Attributes
    ----------
    latest : CTProgress or None
        The progress after the latest ``primary`` event.
    lines : list of str
        Every line written in line mode (this run).
    """

    def __init__(
        self, *, mode: Mode = "auto", file: TextIO | None = None, min_interval_s: float = 10.0
    ) -> None:
        super().__init__()
        if mode not in ("auto", "bar", "line"):
            raise ValueError(f"mode={mode!r} is not one of 'auto', 'bar', 'line'")
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s={min_interval_s!r} must be >= 0 s")
        self.mode = mode
        self.file = file
        self.min_interval_s = float(min_interval_s)
        self.latest: CTProgress | None = None
        self.lines: list[str] = []
        self._start: dict[str, Any] | None = None
        self._primary: set[str] = set()
        self._bar: Any = None
        self._out: TextIO | None = None
        self._last_line = -math.inf
        self._count = 0

    def _resolved_mode(self, out: TextIO) -> str:
        if self.mode != "auto":
            return self.mode
        tty = bool(getattr(out, "isatty", lambda: False)())
        return "line" if in_ipython() or not tty else "bar"

    def start(self, doc):
        self._close_bar()
        self._start = dict(doc)
        self._primary = set()
        self.latest = None
        self.lines = []
        self._count = 0
        self._last_line = -math.inf
        total = self._total()
        if total is None:
            self._start = None  # nothing to count
            return
        self._out = self.file if self.file is not None else sys.stderr
        if self._resolved_mode(self._out) == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, file=self._out, unit="proj", desc=str(doc.get("plan_name", "")),
                dynamic_ncols=True, leave=True,
            )  # fmt: skip
        else:
            self._line(self._progress(None), force=True)

    def _total(self) -> int | None:
        s = self._start or {}
        for key in ("num_angles", "num_points"):
            try:
                n = int(s[key])
            except (KeyError, TypeError, ValueError):
                continue
            if n > 0:
                return n
        return None

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary.add(doc["uid"])

    def _progress(self, event: dict | None) -> CTProgress:
        s = self._start or {}
        if s.get("plan_name") == "ct_scan" and "expected_duration_s" in s:
            try:
                return ct_progress(s, event)
            except (KeyError, TypeError, ValueError):
                logger.debug("ct_progress could not read the documents", exc_info=True)
        total = self._total() or 0
        done = self._count
        if event is None or done == 0:
            return CTProgress(done, total, float("nan"), float("nan"))
        wall = float(event["time"]) - float(s.get("wall_start", s.get("time", event["time"])))
        return CTProgress(done, total, float("nan"), wall / done * (total - done))

    def event(self, doc):
        if self._start is None or doc["descriptor"] not in self._primary:
            return
        self._count += 1
        p = self._progress(doc)
        self.latest = p
        if self._bar is not None:
            self._bar.n = min(p.done, p.total)
            self._bar.set_postfix_str(
                f"left: {_hms(p.eta_twin_s)} instrument, ~{_hms(p.eta_wall_s)} wall", refresh=False
            )
            self._bar.refresh()
        else:
            self._line(p, force=p.done >= p.total)

    def stop(self, doc):
        if self._start is None:
            return
        s = self._start
        wall = float(doc.get("time", time.time())) - float(s.get("wall_start", s.get("time", 0)))
        text = f"{s.get('plan_name', 'run')} {doc.get('exit_status', 'done')}: "
        if self.latest is not None:
            text += f"{self.latest.done}/{self.latest.total} "
        text += f"in {_hms(wall)} wall time"
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)
            self._close_bar()
        else:
            self._write(text)
        self._start = None

    def _line(self, p: CTProgress, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_line < self.min_interval_s:
            return
        self._last_line = now
        self._write(format_progress(p))

    def _write(self, text: str) -> None:
        self.lines.append(text)
        out = self._out or sys.stderr
        out.write(text + "\n")
        out.flush()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
