"""Live callbacks that can never stop acquisition.

:func:`safe` wraps a document callback so that an exception it raises is logged (and kept in
``errors``), never raised into the RunEngine: bluesky's ``make_class_safe`` pattern, applied to
one instance instead of a class. Live reconstruction, monitors, progress bars and pictures are
subscribed this way. The data writer (bluesky-tiled-plugins' ``TiledWriter`` and the session's
writers around it) must *not* be wrapped: if data cannot be stored, the scan has to stop, so
:func:`safe` refuses it.

As in bluesky, setting the environment variable ``BLUESKY_DEBUG_CALLBACKS=1`` lets the
exceptions through (for debugging a callback).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

__all__ = ["SafeCallback", "safe"]

logger = logging.getLogger(__name__)

#: Classes (by name, anywhere in the MRO) that store data and so must never be wrapped.
DATA_WRITERS = ("TiledWriter", "JournalingWriter", "PerRunTiledWriter")


class SafeCallback:
    """A document callback whose exceptions are logged, not raised.

    Parameters
    ----------
    callback : callable
        ``callback(name, doc)``.
    name : str, optional
        Name in the log messages (default the callback's class name).
    max_tracebacks : int
        Full tracebacks logged per wrapped callback; later failures are logged in one line.

    Attributes
    ----------
    errors : list of (str, str)
        ``(document name, "ExceptionType: message")`` of every suppressed exception.

    Notes
    -----
    Attributes not found on the wrapper are looked up on the wrapped callback, so
    ``safe(live).result`` is ``live.result``.
    """

    def __init__(
        self, callback: Callable[[str, dict], Any], *, name: str | None = None,
        max_tracebacks: int = 3,
    ) -> None:  # fmt: skip
        if not callable(callback):
            raise ValueError(f"callback={callback!r} is not callable")
        if isinstance(callback, SafeCallback):
            callback = callback.callback
        names = {c.__name__ for c in type(callback).__mro__}
        writer = names.intersection(DATA_WRITERS)
        if writer:
            raise ValueError(
                f"{type(callback).__name__} stores the data ({sorted(writer)[0]}): it must not "
                "be wrapped, a failure to store data has to stop the scan"
            )
        self.callback = callback
        self.name = name or getattr(callback, "__name__", type(callback).__name__)
        self.max_tracebacks = int(max_tracebacks)
        self.errors: list[tuple[str, str]] = []

    def __call__(self, name: Any, doc: dict) -> Any:
        try:
            return self.callback(name, doc)
        except Exception as err:
            if os.environ.get("BLUESKY_DEBUG_CALLBACKS", "") not in ("", "0"):
                raise
            doc_name = str(getattr(name, "name", name))
            self.errors.append((doc_name, f"{type(err).__name__}: {err}"))
            if len(self.errors) <= self.max_tracebacks:
                logger.exception(
                    "live callback %s raised on a %s document; suppressed so acquisition goes "
                    "on (set BLUESKY_DEBUG_CALLBACKS=1 to raise)",
                    self.name,
                    doc_name,
                )
            else:
                logger.error(
                    "live callback %s raised on a %s document (%d so far): %s: %s",
                    self.name, doc_name, len(self.errors), type(err).__name__, err,
                )  # fmt: skip
            return None

    def __getattr__(self, attr: str) -> Any:
        if attr == "callback":  # not set yet (during __init__)
            raise AttributeError(attr)
        return getattr(self.callback, attr)

    def __repr__(self) -> str:
        return f"safe({self.callback!r})"


def safe(callback: Callable[[str, dict], Any], **kwargs: Any) -> SafeCallback:
    """Wrap ``callback`` so its exceptions are logged, not raised (see :class:`SafeCallback`)."""
    return SafeCallback(callback, **kwargs)
