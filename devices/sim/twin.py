"""The digital twin of the sub-um CT: one object holding the simulated world.

The ophyd devices of :mod:`nanoct.devices` are thin views onto a :class:`CTTwin`: they set its
state (tube, shutter, manipulator, rotation, detector distance) and ask it for frames. Every
setter validates first and changes nothing on bad input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.detector import FlatPanelModel, FlatPanelSpec
from nanoct.devices.sim.geometry import (
    MIN_SOD_MM,
    CTGeometry,
    DetectorGrid,
    check_tilt,
    specimen_reach_mm,
)
from nanoct.devices.sim.imaging import DetectedSpectrum, EmissionPattern, Renderer
from nanoct.devices.sim.source import FXE160, SourceState
from nanoct.devices.sim.specimens import Specimen, make_specimen, reference_wire
from nanoct.devices.sim.switches import InstabilitySwitches

__all__ = ["Acquisition", "CTTwin", "Instabilities"]


@dataclass(frozen=True)
class Instabilities(InstabilitySwitches):
    """Which of the paper's instabilities the twin simulates (all on by default;
    ``Instabilities.none()`` is the ideal instrument: stable source, perfect stage, noise-free
    detector; ``Instabilities.only("spot_drift", ...)``)."""

    spot_drift: bool = True
    conditioning: bool = True
    flux_fluctuation: bool = True
    parhelion: bool = True
    wobble: bool = True
    noise: bool = True


@dataclass(frozen=True)
class Acquisition:
    """One (averaged) exposure and the state it was taken in."""

    image: np.ndarray  # (rows, cols) float32 ADU, mean of `frames` 12-bit frames
    time_s: float  # twin time at the middle of the acquisition
    duration_s: float  # twin time it took (exposures + read-outs)
    exposure_s: float
    frames: int
    source: SourceState
    geometry: CTGeometry
    shutter_open: bool
    flux_min: float  # lowest relative source output over the frames (TXI monitor)


# Motion speeds of the twin's stages (assumptions; they only set how much twin time moves take).
ROTATION_DEG_PER_S = 20.0
LINEAR_MM_PER_S = 1.0
SETTLE_S = 0.2
#: Speed of the laminography tilt cradle (assumption: a goniometer cradle under the rotation).
TILT_DEG_PER_S = 2.0


class CTTwin:
    """The simulated sub-um CT.

    Parameters
    ----------
    seed : int
        Seeds every random element (noise, drift, maps, wobble phase).
    specimen : str or Specimen
        ``'chip'``, ``'jima'``, ``'fibres'``, ``'edge'``, ``'flat_chip'`` (laminography) or a
        :class:`Specimen`.
    time_scale : float
        0 = as fast as possible; 1 = real time (see :class:`SimClock`).
    binning : int
        Flat-panel binning 1, 2 or 4.
    instabilities : Instabilities
        Which instabilities are simulated.
    sod_mm, sdd_mm : float
        Initial source-object and source-detector distances. The defaults give the paper's
        CT voxel of 0.59 um at binning 1 (magnification 84.7).
    wire : bool
        Whether the fixed reference cross wire is mounted.
    wire_center_mm : (x, y, z)
        Where the wire's crossing is, relative to the nominal focal spot. The default puts it
        2 mm from the source in the upper left corner of the default field of view, where the
        specimens do not project.
    conditioned_h : float
        Hours the tube had been on before the twin starts (0 = switched on cold at t = 0).
    wobble_urad : float
        Amplitude of the rotation axis wobble (<= 15 urad for the paper's stage).
    oversample : int
        Rays per pixel along each axis.
    n_energy_bins : int
        Energy bins of the polychromatic image formation.

    Notes
    -----
    Laminography: ``tilt_deg`` (an axis like ``angle_deg``, set with :meth:`set_position`)
    tilts the rotation stage about the lab x axis through the rotation centre, within
    :attr:`TILT_RANGE_DEG` (assumption: a goniometer cradle of +-60 deg under the rotation
    stage; the paper's outlook names laminography but no stage). The rendering stays exact:
    the chords follow the tilted rotation (:class:`~nanoct.devices.sim.geometry.CTGeometry`).
    """

    DEFAULT_SOD_MM = 2.95
    DEFAULT_SDD_MM = 250.0
    DEFAULT_WIRE_CENTER_MM = (-0.32, 0.34, 2.0)
    SOD_RANGE_MM = (MIN_SOD_MM, 200.0)
    SDD_RANGE_MM = (50.0, 1500.0)
    LATERAL_RANGE_MM = (-25.0, 25.0)
    MAX_WOBBLE_URAD = 15.0
    TILT_RANGE_DEG = (-60.0, 60.0)

    def __init__(
        self,
        *,
        seed: int = 0,
        specimen: str | Specimen = "chip",
        time_scale: float = 0.0,
        binning: int = 4,
        instabilities: Instabilities | None = None,
        sod_mm: float = DEFAULT_SOD_MM,
        sdd_mm: float = DEFAULT_SDD_MM,
        wire: bool = True,
        wire_center_mm: tuple[float, float, float] = DEFAULT_WIRE_CENTER_MM,
        conditioned_h: float = 0.0,
        wobble_urad: float = MAX_WOBBLE_URAD,
        oversample: int = 1,
        n_energy_bins: int = 24,
        detector_spec: FlatPanelSpec | None = None,
    ) -> None:
        self.instabilities = instabilities or Instabilities()
        inst = self.instabilities
        self.seed = int(seed)
        self.clock = SimClock(time_scale)
        self.specimen = specimen if isinstance(specimen, Specimen) else make_specimen(specimen)
        self.wire = reference_wire(wire_center_mm) if wire else None
        self.wire_center_mm = tuple(float(x) for x in wire_center_mm)
        if not 0.0 <= wobble_urad <= self.MAX_WOBBLE_URAD:
            raise ValueError(f"wobble_urad={wobble_urad!r} is outside [0, {self.MAX_WOBBLE_URAD}]")
        if not conditioned_h >= 0.0:
            raise ValueError(f"conditioned_h={conditioned_h!r} must be >= 0 h")
        self.tube = FXE160(
            self.clock,
            seed=seed,
            drift=inst.spot_drift,
            conditioning=inst.conditioning,
            flux_fluctuation=inst.flux_fluctuation,
            parhelion=inst.parhelion,
            switched_on_at_s=-conditioned_h * 3600.0,
        )
        self.detector = FlatPanelModel(seed=seed, spec=detector_spec, noise=inst.noise)
        self.detector.validate(binning=binning)
        self.binning = int(binning)
        self.shutter_open = True
        self.pattern = EmissionPattern()
        rng = np.random.default_rng(np.random.SeedSequence([seed, 15]))
        self._wobble_phase = float(rng.uniform(0, 2 * np.pi))
        self.wobble_urad = float(wobble_urad) if inst.wobble else 0.0
        self.n_energy_bins = int(n_energy_bins)
        mats = self.specimen.materials() + (self.wire.materials() if self.wire else ())
        self.renderer = Renderer(mats, oversample=oversample)
        self.sod_mm = self.sdd_mm = 0.0
        self.validate_geometry(sod_mm=sod_mm, sdd_mm=sdd_mm)
        self.sod_mm, self.sdd_mm = float(sod_mm), float(sdd_mm)
        self.axis_x_mm = 0.0
        self.axis_y_mm = 0.0
        self.angle_deg = 0.0
        self.tilt_deg = 0.0
        self._detected: dict[tuple, DetectedSpectrum] = {}

    # ---- geometry --------------------------------------------------------------------------
    def validate_geometry(
        self,
        *,
        sod_mm: float | None = None,
        sdd_mm: float | None = None,
        axis_x_mm: float | None = None,
        axis_y_mm: float | None = None,
    ) -> None:
        """Raise ValueError naming the parameter, value and allowed range; changes nothing."""
        sod = self.sod_mm if sod_mm is None else float(sod_mm)
        sdd = self.sdd_mm if sdd_mm is None else float(sdd_mm)
        lo, hi = self.SOD_RANGE_MM
        if sod_mm is not None and not lo <= sod <= hi:
            raise ValueError(
                f"sod_mm={sod_mm!r} is outside the manipulator range [{lo}, {hi}] mm "
                f"(the paper's minimum focus-object distance is {MIN_SOD_MM} mm)"
            )
        lo, hi = self.SDD_RANGE_MM
        if sdd_mm is not None and not lo <= sdd <= hi:
            raise ValueError(f"sdd_mm={sdd_mm!r} is outside the detector range [{lo}, {hi}] mm")
        if (sod_mm is not None or sdd_mm is not None) and not sod < sdd:
            raise ValueError(f"sod_mm={sod!r} must be smaller than sdd_mm={sdd!r}")
        lo, hi = self.LATERAL_RANGE_MM
        for name, val in (("axis_x_mm", axis_x_mm), ("axis_y_mm", axis_y_mm)):
            if val is not None and not lo <= float(val) <= hi:
                raise ValueError(f"{name}={val!r} is outside the manipulator range [{lo}, {hi}] mm")

    def geometry(self) -> CTGeometry:
        """The present geometry."""
        return CTGeometry(
            sod_mm=self.sod_mm,
            sdd_mm=self.sdd_mm,
            axis_x_mm=self.axis_x_mm,
            axis_y_mm=self.axis_y_mm,
            angle_deg=self.angle_deg,
            wobble_urad=self.wobble_urad,
            wobble_phase_rad=self._wobble_phase,
            tilt_deg=self.tilt_deg,
        )

    def grid(self, binning: int | None = None) -> DetectorGrid:
        b = self.binning if binning is None else binning
        rows, cols = self.detector.shape(b)
        return DetectorGrid(rows, cols, self.detector.pixel_mm(b))

    def move_time_s(self, axis: str, target: float) -> float:
        """Twin seconds a move of ``axis`` to ``target`` takes (assumed stage speeds)."""
        now = {
            "angle_deg": self.angle_deg,
            "sod_mm": self.sod_mm,
            "sdd_mm": self.sdd_mm,
            "axis_x_mm": self.axis_x_mm,
            "axis_y_mm": self.axis_y_mm,
            "tilt_deg": self.tilt_deg,
        }[axis]
        speed = {"angle_deg": ROTATION_DEG_PER_S, "tilt_deg": TILT_DEG_PER_S}.get(
            axis, LINEAR_MM_PER_S
        )
        return abs(float(target) - now) / speed + SETTLE_S

    AXES = ("angle_deg", "sod_mm", "sdd_mm", "axis_x_mm", "axis_y_mm", "tilt_deg")

    def validate_tilt(self, tilt_deg: float) -> None:
        """Raise ValueError if the rotation axis cannot be tilted to ``tilt_deg``: outside
        :attr:`TILT_RANGE_DEG`, or a tilt that would swing the specimen into the source."""
        check_tilt(
            tilt_deg, self.TILT_RANGE_DEG, self.specimen.corners(), self.sod_mm,
            distance_name="sod_mm", obstacle="source",
        )  # fmt: skip

    def validate_axis(self, axis: str, value: float) -> None:
        """Raise ValueError if ``axis`` cannot go to ``value``; changes nothing."""
        if axis not in self.AXES:
            raise ValueError(f"axis={axis!r} is not a twin axis; allowed: {list(self.AXES)}")
        if axis == "angle_deg":
            if not np.isfinite(value):
                raise ValueError(f"angle_deg={value!r} must be finite")
        elif axis == "tilt_deg":
            self.validate_tilt(value)
        else:
            self.validate_geometry(**{axis: value})

    def set_position(self, axis: str, value: float) -> None:
        """Put a stage axis at ``value`` at once (devices account for the move time)."""
        self.validate_axis(axis, value)
        setattr(self, axis, float(value))

    def out_of_beam_x_mm(self, margin_mm: float = 0.5, *, tilt_deg: float | None = None) -> float:
        """A manipulator x that takes the whole specimen out of the cone beam (for flats), at
        the present tilt or at ``tilt_deg``."""
        tilt = self.tilt_deg if tilt_deg is None else float(tilt_deg)
        r, depth = specimen_reach_mm(self.specimen.corners(), tilt)
        half_width = self.grid().cols * self.grid().pixel_mm / 2.0
        cone = half_width * (self.sod_mm + depth) / self.sdd_mm
        x = cone + r + margin_mm
        if x > self.LATERAL_RANGE_MM[1]:
            raise ValueError(
                f"the specimen cannot leave the beam at sod_mm={self.sod_mm}: it "
                f"would need axis_x_mm={x:.3g} > {self.LATERAL_RANGE_MM[1]} mm"
            )
        return x

    # ---- detector ------------------------------------------------------------------------
    def set_binning(self, binning: int) -> None:
        self.detector.validate(binning=binning)
        self.binning = int(binning)

    def detected_spectrum(self) -> DetectedSpectrum:
        key = (self.tube.voltage_kv, self.sdd_mm, self.n_energy_bins)
        if key not in self._detected:
            spec = self.detector.spec
            self._detected[key] = DetectedSpectrum.build(
                self.tube.spectrum(self.n_energy_bins),
                sdd_mm=self.sdd_mm,
                scintillator=spec.scintillator,
                scintillator_um=spec.scintillator_um,
            )
        return self._detected[key]

    def deposited_energy(
        self,
        exposure_s: float,
        *,
        time_s: float | None = None,
        grid: DetectorGrid | None = None,
        unit_current: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected keV per native pixel area and ``<E^2>/<E>`` for an exposure now.

        ``unit_current`` renders for an effective tube current of 1 uA (the caller scales by
        the current of each frame).
        """
        state = self.tube.state(time_s)
        grid = grid or self.grid()
        if not (self.shutter_open and state.xray_on):
            return (
                np.zeros((grid.rows, grid.cols), np.float32),
                np.ones((grid.rows, grid.cols), np.float32),
            )
        if unit_current:
            state = replace(state, effective_current_ua=1.0)
        return self.renderer.deposited_energy(
            source=state,
            geometry=self.geometry(),
            grid=grid,
            native_pixel_mm=self.detector.spec.pixel_mm,
            detected=self.detected_spectrum(),
            exposure_s=exposure_s,
            specimen=self.specimen,
            wire=self.wire,
            light_spread_sigma_mm=self.detector.spec.light_spread_sigma_mm,
            pattern=self.pattern,
        )

    def acquisition_time_s(self, exposure_s: float, frames: int = 1) -> float:
        """Twin seconds one acquisition takes: exposures plus read-outs."""
        return frames * (exposure_s + self.detector.readout_s(self.binning))

    def acquire(self, exposure_s: float, frames: int = 1) -> Acquisition:
        """Expose, read out and average ``frames`` frames; advances the twin clock.

        The expected image is rendered for the middle of the acquisition (the spot drifts by
        far less than a nanometre within one projection's frames); each frame then gets its own
        source flicker and its own noise.
        """
        self.detector.validate(exposure_s=exposure_s, frames=frames)
        wall0 = time.monotonic()
        duration = self.acquisition_time_s(exposure_s, frames)
        t0 = self.clock.now()
        t_mid = t0 + duration / 2.0
        period = duration / frames
        # the source during each frame: dropouts and flux changes hit the frames they overlap
        states = [self.tube.state(t0 + k * period + exposure_s / 2.0) for k in range(frames)]
        per_frame_current = np.array([st.effective_current_ua for st in states])
        deposited, e_var = self.deposited_energy(exposure_s, time_s=t_mid, unit_current=True)
        image = self.detector.read_frames(
            deposited,
            e_var,
            binning=self.binning,
            exposure_s=exposure_s,
            frames=frames,
            frame_scale=per_frame_current * self.tube.flicker(frames),
        )
        state = self.tube.state(t_mid)
        geometry = self.geometry()
        flux_min = min(st.output_factor for st in states)
        spent = time.monotonic() - wall0
        if self.clock.time_scale > 0:
            # the wall clock carries the twin forward
            time.sleep(max(duration * self.clock.time_scale - spent, 0.0))
            self.clock.advance(0.0)  # tell the listeners
        else:
            self.clock.advance(duration)
        return Acquisition(
            image,
            t_mid,
            duration,
            exposure_s,
            frames,
            state,
            geometry,
            self.shutter_open,
            flux_min,
        )

    # ---- reference wire ------------------------------------------------------------------
    def wire_projection(self) -> dict[str, float] | None:
        """Where the cross wire's shadow is for the nominal spot: centre (row, col), shadow
        diameter and arm length in pixels, and the wire's magnification."""
        if self.wire is None:
            return None
        g = self.geometry()
        grid = self.grid()
        x, y, z = self.wire_center_mm
        u, v = g.project(np.array([[x, y, z]]), np.zeros(3))
        row, col = grid.to_pixel(u, v)
        mag = self.sdd_mm / z
        arm = self.wire.features[0].shape.half_length
        return {
            "row": float(row[0]),
            "col": float(col[0]),
            "diameter_px": 2 * self.wire.features[0].shape.radius * mag / grid.pixel_mm,
            "arm_px": arm * mag / grid.pixel_mm,
            "magnification": mag,
        }
