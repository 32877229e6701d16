"""Motion and geometry of the sub-um CT: rotation stage, sample manipulator, geometry readout.

The manipulator's z is the source-object distance (SOD): moving it changes the magnification.
Limits: z from the paper's minimum focus-object distance 0.5073 mm up to 200 mm, x and y
+-25 mm (travel ranges are assumptions), rotation continuous. The rotation stage's wobble
(<= 15 urad, the paper's stage) is a property of the twin, reported as configuration.

Laminography: the rotation stage sits on a tilt cradle, ``rotation.tilt`` (deg, within the
twin's ``TILT_RANGE_DEG``, an assumption of +-60 deg): it inclines the rotation axis about the
lab x axis through the rotation centre, positive moving the axis' upper end towards the
detector; 0 is ordinary CT. Read with the rotation (data key ``rotation_tilt``), validated
before anything moves.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, Kind

from nanoct.devices.signals import ReadbackSignal, SettingSignal, TwinAxis
from nanoct.devices.sim.twin import CTTwin

__all__ = ["GeometryReadout", "RotationStage", "SampleManipulator", "TiltAxis"]


class TiltAxis(TwinAxis):
    """The laminography tilt of a rotation stage (twin axis ``tilt_deg``), deg.

    Its readback is read with the stage (kind normal) but not hinted, so plots and tables keep
    the rotation angle as the scan's dimension.
    """

    readback = Cpt(ReadbackSignal, getter="_read_position", kind=Kind.normal)


class RotationStage(TwinAxis):
    """Air-bearing rotation stage: ``set(angle_deg)``; continuous (no soft limits). ``tilt``
    inclines its axis (laminography)."""

    wobble = Cpt(ReadbackSignal, getter="_get_wobble", units="urad", kind=Kind.config)
    tilt = Cpt(
        TiltAxis, twin_axis="tilt_deg", egu="deg", limits=CTTwin.TILT_RANGE_DEG, kind=Kind.normal
    )

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        super().__init__(prefix, twin=twin, twin_axis="angle_deg", egu="deg", **kwargs)

    def _get_wobble(self) -> float:
        return self._twin.wobble_urad


class SampleManipulator(Device):
    """x (lateral), y (vertical) and z (= SOD, along the beam) of the specimen and its stage."""

    x = Cpt(TwinAxis, twin_axis="axis_x_mm", egu="mm", limits=(-25.0, 25.0), kind=Kind.normal)
    y = Cpt(TwinAxis, twin_axis="axis_y_mm", egu="mm", limits=(-25.0, 25.0), kind=Kind.normal)
    z = Cpt(TwinAxis, twin_axis="sod_mm", egu="mm", limits=(0.5073, 200.0), kind=Kind.normal)

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        super().__init__(prefix, **kwargs)

    def out_of_beam_x(self, *, tilt_deg: float | None = None) -> float:
        """An x position (mm) where the whole specimen is outside the cone beam (for flats);
        ``tilt_deg``: at that laminography tilt instead of the present one (a check before a
        tilt move). ValueError if the specimen cannot leave the beam."""
        return self._twin.out_of_beam_x_mm(tilt_deg=tilt_deg)


class GeometryReadout(Device):
    """The scan geometry as a reconstruction needs it.

    ``sdd`` (source-detector distance, mm) is settable (the detector sits on a rail); ``sod``,
    ``magnification`` and ``voxel_size`` (um, at the rotation axis, for the present binning)
    follow from the manipulator and the detector.
    """

    sod = Cpt(ReadbackSignal, getter="_get_sod", units="mm", kind=Kind.normal)
    sdd = Cpt(
        SettingSignal,
        getter="_get_sdd",
        applier="_set_sdd",
        validator="_check_sdd",
        units="mm",
        limits=(50.0, 1500.0),
        kind=Kind.normal,
    )
    magnification = Cpt(ReadbackSignal, getter="_get_mag", kind=Kind.normal)
    voxel_size = Cpt(ReadbackSignal, getter="_get_voxel", units="um", kind=Kind.normal)
    pixel_size = Cpt(ReadbackSignal, getter="_get_pixel", units="um", kind=Kind.config)

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        super().__init__(prefix, **kwargs)

    def _get_sod(self) -> float:
        return self._twin.sod_mm

    def _get_sdd(self) -> float:
        return self._twin.sdd_mm

    def _check_sdd(self, v: float) -> None:
        self._twin.validate_geometry(sdd_mm=v)

    def _set_sdd(self, v: float) -> None:
        self._twin.set_position("sdd_mm", v)

    def _get_mag(self) -> float:
        return self._twin.sdd_mm / self._twin.sod_mm

    def _get_pixel(self) -> float:
        return self._twin.grid().pixel_mm * 1e3

    def _get_voxel(self) -> float:
        return self._twin.geometry().voxel_size_um(self._twin.grid().pixel_mm)
