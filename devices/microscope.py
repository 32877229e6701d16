"""Factory of the X-ray microscope: twin plus devices, no module-level instances."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ophyd import Signal

from nanoct.devices.epma import EPMASource
from nanoct.devices.instrument import default_data_dir
from nanoct.devices.medipix2 import Medipix2
from nanoct.devices.microscope_stages import (
    MicroscopeGeometry,
    MicroscopeManipulator,
    SpecimenRotation,
)
from nanoct.devices.sim.microscope import MicroscopeInstabilities, MicroscopeTwin
from nanoct.devices.sim.specimens import Specimen
from nanoct.devices.waiter import TwinWaiter

__all__ = ["XRayMicroscope", "xray_microscope"]


@dataclass
class XRayMicroscope:
    """The X-ray microscope: every device and the twin behind them."""

    twin: MicroscopeTwin
    source: EPMASource
    manipulator: MicroscopeManipulator
    rotation: SpecimenRotation
    geometry: MicroscopeGeometry
    medipix: Medipix2
    waiter: TwinWaiter
    #: Scan bookkeeping read into events by the CT plans (nano-CT, laminography).
    projection_index: Signal = field(
        default_factory=lambda: Signal(name="projection_index", value=-1)
    )
    flat_block: Signal = field(default_factory=lambda: Signal(name="flat_block", value=-1))

    def devices(self) -> dict[str, object]:
        """The ophyd devices by their names (for a namespace or a ``%wa``)."""
        devs = (self.source, self.manipulator, self.rotation, self.geometry, self.medipix)
        return {d.name: d for d in (*devs, self.waiter)}

    @property
    def data_dir(self) -> Path:
        """Where the detector (and analysis) files go."""
        return self.medipix.data_dir


def xray_microscope(
    *,
    seed: int = 0,
    specimen: str | Specimen = "fibres",
    time_scale: float = 0.0,
    instabilities: MicroscopeInstabilities | None = None,
    data_dir: str | Path | None = None,
    name_prefix: str = "",
    **twin_options,
) -> XRayMicroscope:
    """Build the paper's X-ray microscope (EPMA source, Medipix2) on its digital twin.

    Parameters
    ----------
    seed : int
        Seeds every random element; the same seed gives the same counts (time_scale 0).
    specimen : str or Specimen
        ``'fibres'`` (default: 6 um glass fibres, for the magnification), ``'bristles'``,
        ``'facets'``, ``'wire'``, ``'edge'``, ``'flat_chip'`` (laminography) or a custom
        Specimen.
    time_scale : float
        Wall seconds per twin second; 0 = as fast as possible.
    instabilities : MicroscopeInstabilities, optional
        Which instabilities are simulated (default: all); ``MicroscopeInstabilities.none()``
        for an ideal instrument. The CT's ``Instabilities`` is accepted too (its
        ``spot_drift``, ``wobble`` and ``noise`` apply).
    data_dir : path, optional
        Where detector files go; default :func:`~nanoct.devices.instrument.default_data_dir`.
    name_prefix : str
        Prepended to every device's name (and so to its data keys): a session that holds the
        CT too uses ``"xm_"``, so ``manipulator``, ``rotation`` ... stay unique.
    **twin_options
        Passed to :class:`~nanoct.devices.sim.microscope.MicroscopeTwin` (``fod_mm``,
        ``sdd_mm``, ``phase_contrast``, ``air_absorption``, ``oversample``,
        ``n_energy_bins``, ``wobble_urad``, ``spot_fwhm_um``, ``detector_spec``).
    """
    twin = MicroscopeTwin(
        seed=seed,
        specimen=specimen,
        time_scale=time_scale,
        instabilities=instabilities,
        **twin_options,
    )
    data = Path(data_dir) if data_dir is not None else default_data_dir()
    p = str(name_prefix)
    if p and not p.isidentifier():
        raise ValueError(f"name_prefix={name_prefix!r} must be a Python identifier (e.g. 'xm_')")
    return XRayMicroscope(
        twin=twin,
        source=EPMASource(name=f"{p}source", twin=twin),
        manipulator=MicroscopeManipulator(name=f"{p}manipulator", twin=twin, labels={"motors"}),
        rotation=SpecimenRotation(name=f"{p}rotation", twin=twin, labels={"motors"}),
        geometry=MicroscopeGeometry(name=f"{p}geometry", twin=twin),
        medipix=Medipix2(name=f"{p}medipix", twin=twin, data_dir=data, labels={"detectors"}),
        waiter=TwinWaiter(name=f"{p}waiter", clock=twin.clock),
    )
