"""nanoct.callbacks: document consumers (live reconstruction, monitors, progress, pictures).

Everything here is a bluesky document callback (``cb(name, doc)``) that can run inside the
acquisition process or in another one fed over 0MQ (``nanoct live``). Live callbacks are
subscribed wrapped in :func:`safe`, so that none of them can stop acquisition.
"""

from nanoct.callbacks.frames import FrameRef, FrameSource, FrameUnavailableError
from nanoct.callbacks.live_recon import LiveReconstruction
from nanoct.callbacks.monitors import (
    FlatBlockStats,
    FluxMonitor,
    MonitorWarning,
    WireDriftMonitor,
    parhelion_score,
)
from nanoct.callbacks.pictures import LivePictures
from nanoct.callbacks.progress import ProgressBar
from nanoct.callbacks.safe import SafeCallback, safe
from nanoct.callbacks.suite import LiveCallbacks, live_callbacks

__all__ = [
    "FlatBlockStats",
    "FluxMonitor",
    "FrameRef",
    "FrameSource",
    "FrameUnavailableError",
    "LiveCallbacks",
    "LivePictures",
    "LiveReconstruction",
    "MonitorWarning",
    "ProgressBar",
    "SafeCallback",
    "WireDriftMonitor",
    "live_callbacks",
    "parhelion_score",
    "safe",
]
