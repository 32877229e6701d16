"""Motion and geometry of the X-ray microscope: specimen manipulator, rotation, geometry readout.

The specimen sits in air in front of the EPMA's exit window on a high-resolution manipulator
(paper, section 2.1): x (lateral), y (vertical) and z = the focus-object distance (FOD), which
sets the magnification; a rotation about the vertical axis is mounted on it (for a later
nano-CT), on a tilt cradle (``rotation.tilt``, laminography; the convention of
:mod:`nanoct.devices.stages`). The detector is fixed. Ranges are the twin's (assumptions, see
:mod:`nanoct.devices.sim.microscope`): FOD 0.3-50 mm, x and y +-10 mm, rotation continuous,
tilt +-60 deg.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, Kind

from nanoct.devices.signals import ReadbackSignal, TwinAxis
from nanoct.devices.sim.microscope import MicroscopeTwin
from nanoct.devices.stages import TiltAxis

__all__ = ["MicroscopeGeometry", "MicroscopeManipulator", "SpecimenRotation"]

_LAT = MicroscopeTwin.LATERAL_RANGE_MM
_FOD = MicroscopeTwin.FOD_RANGE_MM


class MicroscopeManipulator(Device):
    """x, y (lateral, mm) and z (= focus-object distance, mm) of the specimen."""

    x = Cpt(TwinAxis, twin_axis="axis_x_mm", egu="mm", limits=_LAT, kind=Kind.normal)
    y = Cpt(TwinAxis, twin_axis="axis_y_mm", egu="mm", limits=_LAT, kind=Kind.normal)
    z = Cpt(TwinAxis, twin_axis="fod_mm", egu="mm", limits=_FOD, kind=Kind.normal)

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        super().__init__(prefix, **kwargs)

    def out_of_beam_x(self, *, tilt_deg: float | None = None) -> float:
        """An x position (mm) where the whole specimen is outside the cone (bright fields);
        ``tilt_deg``: at that laminography tilt instead of the present one."""
        return self._twin.out_of_beam_x_mm(tilt_deg=tilt_deg)


class SpecimenRotation(TwinAxis):
    """Rotation of the specimen about the vertical axis, deg, continuous (no soft limits);
    ``tilt`` inclines the axis (laminography)."""

    wobble = Cpt(ReadbackSignal, getter="_get_wobble", units="urad", kind=Kind.config)
    tilt = Cpt(
        TiltAxis,
        twin_axis="tilt_deg",
        egu="deg",
        limits=MicroscopeTwin.TILT_RANGE_DEG,
        kind=Kind.normal,
    )

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        super().__init__(prefix, twin=twin, twin_axis="angle_deg", egu="deg", **kwargs)

    def _get_wobble(self) -> float:
        return self._twin.wobble_urad


class MicroscopeGeometry(Device):
    """The imaging geometry: focus-object (``fod``), source-detector (``sdd``) and
    object-detector (``odd``) distances in mm, the ``magnification`` and the object-plane
    ``pixel_size`` (um, the paper's "object length per pixel"); the detector pixel
    (``detector_pixel_size``, um) and the ``air_path`` (mm of air the photons cross in the
    twin: 0 when the twin leaves air absorption out) as configuration."""

    fod = Cpt(ReadbackSignal, getter="_get_fod", units="mm", kind=Kind.normal)
    odd = Cpt(ReadbackSignal, getter="_get_odd", units="mm", kind=Kind.normal)
    magnification = Cpt(ReadbackSignal, getter="_get_mag", kind=Kind.normal)
    pixel_size = Cpt(ReadbackSignal, getter="_get_pixel", units="um", kind=Kind.normal)
    sdd = Cpt(ReadbackSignal, getter="_get_sdd", units="mm", kind=Kind.config)
    detector_pixel_size = Cpt(ReadbackSignal, getter="_get_det_pixel", units="um", kind=Kind.config)
    air_path = Cpt(ReadbackSignal, getter="_get_air", units="mm", kind=Kind.config)

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        super().__init__(prefix, **kwargs)

    def _get_fod(self) -> float:
        return self._twin.fod_mm

    def _get_sdd(self) -> float:
        return self._twin.sdd_mm

    def _get_odd(self) -> float:
        return self._twin.object_distance_mm

    def _get_mag(self) -> float:
        return self._twin.magnification

    def _get_pixel(self) -> float:
        return self._twin.object_pixel_um

    def _get_det_pixel(self) -> float:
        return self._twin.detector.spec.pixel_um

    def _get_air(self) -> float:
        return self._twin.sdd_mm if self._twin.air_absorption else 0.0
