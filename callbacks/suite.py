"""The live callbacks of a CT session, built and ordered in one call.

:func:`live_callbacks` makes the live reconstruction, the wire and flux monitors, the
progress bar and the pictures, each wrapped in :func:`nanoct.callbacks.safe.safe`, in the
order they must be subscribed (the pictures last: at a run's stop they draw what the others
have just finished). The same set runs inside the acquisition process (subscribe
:attr:`LiveCallbacks.subscribers` to the RunEngine) or in another process fed over 0MQ
(``nanoct live``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanoct.callbacks.live_recon import LiveReconstruction
from nanoct.callbacks.monitors import FluxMonitor, WireDriftMonitor
from nanoct.callbacks.pictures import LivePictures
from nanoct.callbacks.progress import ProgressBar
from nanoct.callbacks.safe import SafeCallback, safe

__all__ = ["LiveCallbacks", "live_callbacks"]


@dataclass
class LiveCallbacks:
    """The live callbacks of a session (any of them may be None: not wanted)."""

    recon: LiveReconstruction | None = None
    wire: WireDriftMonitor | None = None
    flux: FluxMonitor | None = None
    progress: ProgressBar | None = None
    pictures: LivePictures | None = None
    #: the safe wrappers, in subscription order
    subscribers: list[SafeCallback] = field(default_factory=list)

    def subscribe(self, target: Any) -> list[int]:
        """Subscribe every callback to ``target`` (a RunEngine or a RemoteDispatcher), in
        order; returns the tokens."""
        return [target.subscribe(cb) for cb in self.subscribers]

    @property
    def warnings(self) -> list:
        """Warnings of both monitors, in time order."""
        found = [
            *(self.wire.warnings if self.wire else []),
            *(self.flux.warnings if self.flux else []),
        ]
        return sorted(found, key=lambda w: w.time_s)

    def close(self) -> None:
        """Finish the reconstruction's queue and stop its thread and the live figure."""
        if self.recon is not None:
            self.recon.close()
        if self.pictures is not None:
            self.pictures.close()


def live_callbacks(
    *,
    slices: int | slice | Sequence[int] | None = None,
    tiled: Any = None,
    out_dir: str | Path | None = None,
    recon: bool = True,
    monitors: bool = True,
    progress: bool = True,
    pictures: bool = True,
    background: bool = True,
    drift_threshold_voxels: float = 0.25,
    progress_mode: str = "auto",
    path_map: Mapping[str, str] | None = None,
) -> LiveCallbacks:
    """Build the live callbacks of a CT session.

    Parameters
    ----------
    slices : int, slice or sequence of int, optional
        Slices reconstructed live (default the central one).
    tiled : tiled client node, optional
        The runs catalog; the final live slices go to ``processed`` beside it.
    out_dir : path, optional
        Where PNGs go (slices, drift, flux, flat difference); None: no PNGs.
    recon, monitors, progress, pictures : bool
        Which callbacks to make (pictures need ``out_dir``).
    background : bool
        Reconstruct on a background thread (see :class:`LiveReconstruction`).
    drift_threshold_voxels : float
        Wire drift warning threshold.
    progress_mode : {"auto", "bar", "line"}
    path_map : mapping, optional
        Path prefixes to replace when the detector files are mounted elsewhere here.

    Returns
    -------
    LiveCallbacks
        The callbacks and their safe wrappers in subscription order.
    """
    live = LiveCallbacks()
    if recon:
        live.recon = LiveReconstruction(
            slices, tiled=tiled, out_dir=out_dir, background=background, path_map=path_map
        )
    if monitors:
        live.wire = WireDriftMonitor(threshold_voxels=drift_threshold_voxels)
        live.flux = FluxMonitor(path_map=path_map)
    if progress:
        live.progress = ProgressBar(mode=progress_mode)  # type: ignore[arg-type]
    if pictures and out_dir is not None:
        live.pictures = LivePictures(
            recon=live.recon, wire=live.wire, flux=live.flux, out_dir=out_dir
        )
    for cb in (live.recon, live.wire, live.flux, live.progress, live.pictures):
        if cb is not None:
            live.subscribers.append(safe(cb))
    return live
