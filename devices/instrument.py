"""Factories that build whole instruments: twin plus devices, no module-level instances."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ophyd import Signal

from nanoct.devices.flatpanel import FlatPanel
from nanoct.devices.sim.specimens import Specimen
from nanoct.devices.sim.twin import CTTwin, Instabilities
from nanoct.devices.stages import GeometryReadout, RotationStage, SampleManipulator
from nanoct.devices.tube import Shutter, XrayTube
from nanoct.devices.waiter import TwinWaiter
from nanoct.devices.wire import WireMonitor, WireRegions, wire_regions

__all__ = ["SubMicronCT", "default_data_dir", "sub_um_ct"]


def default_data_dir() -> Path:
    """``$NANOCT_DATA_DIR``, else the user's data directory (``~/.local/share/nanoct`` on
    Linux) joined with ``data``."""
    env = os.environ.get("NANOCT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nanoct" / "data"


@dataclass
class SubMicronCT:
    """The sub-um CT: every device and the twin behind them."""

    twin: CTTwin
    tube: XrayTube
    shutter: Shutter
    rotation: RotationStage
    manipulator: SampleManipulator
    geometry: GeometryReadout
    flatpanel: FlatPanel
    wire: WireMonitor
    waiter: TwinWaiter
    #: Scan bookkeeping read into events by the CT plans.
    projection_index: Signal
    flat_block: Signal

    def devices(self) -> dict[str, object]:
        """The ophyd devices by name (for a namespace or a ``%wa``)."""
        return {
            "tube": self.tube,
            "shutter": self.shutter,
            "rotation": self.rotation,
            "manipulator": self.manipulator,
            "geometry": self.geometry,
            "flatpanel": self.flatpanel,
            "wire": self.wire,
            "waiter": self.waiter,
        }

    def wire_regions(self) -> WireRegions | None:
        """Detector regions of the reference wire's arms for the present geometry/binning."""
        wp = self.twin.wire_projection()
        if wp is None:
            return None
        shape = self.twin.detector.shape(self.twin.binning)
        return wire_regions(wp["row"], wp["col"], wp["diameter_px"], wp["arm_px"], shape)


def sub_um_ct(
    *,
    seed: int = 0,
    specimen: str | Specimen = "chip",
    time_scale: float = 0.0,
    binning: int = 4,
    instabilities: Instabilities | None = None,
    data_dir: str | Path | None = None,
    **twin_options,
) -> SubMicronCT:
    """Build the sub-um CT of the paper on its digital twin.

    Parameters
    ----------
    seed : int
        Seeds every random element; the same seed gives the same frames (time_scale 0).
    specimen : str or Specimen
        ``'chip'`` (default), ``'jima'``, ``'fibres'``, ``'edge'`` or a custom Specimen.
    time_scale : float
        Wall seconds per twin second; 0 = as fast as possible.
    binning : int
        Flat-panel binning (1, 2 or 4).
    instabilities : Instabilities, optional
        Which instabilities are simulated (default: all); ``Instabilities.none()`` for an ideal
        instrument.
    data_dir : path, optional
        Where detector files go; default :func:`default_data_dir`.
    **twin_options
        Passed to :class:`~nanoct.devices.sim.twin.CTTwin` (``sod_mm``, ``sdd_mm``, ``wire``,
        ``conditioned_h``, ``wobble_urad``, ``oversample``, ...).
    """
    twin = CTTwin(
        seed=seed,
        specimen=specimen,
        time_scale=time_scale,
        binning=binning,
        instabilities=instabilities,
        **twin_options,
    )
    data = Path(data_dir) if data_dir is not None else default_data_dir()
    flatpanel = FlatPanel(name="flatpanel", twin=twin, data_dir=data, labels={"detectors"})
    ct = SubMicronCT(
        twin=twin,
        tube=XrayTube(name="tube", twin=twin),
        shutter=Shutter(name="shutter", twin=twin),
        rotation=RotationStage(name="rotation", twin=twin, labels={"motors"}),
        manipulator=SampleManipulator(name="manipulator", twin=twin, labels={"motors"}),
        geometry=GeometryReadout(name="geometry", twin=twin),
        flatpanel=flatpanel,
        wire=None,  # set below: its regions come from the instrument
        waiter=TwinWaiter(name="waiter", clock=twin.clock),
        projection_index=Signal(name="projection_index", value=-1),
        flat_block=Signal(name="flat_block", value=-1),
    )
    ct.wire = WireMonitor(name="wire", image_source=flatpanel.latest_image, regions=ct.wire_regions)
    return ct
