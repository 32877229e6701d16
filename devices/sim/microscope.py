"""The digital twin of the X-ray microscope: EPMA transmission-target source and Medipix2.

One :class:`MicroscopeTwin` holds the simulated world of the paper's second instrument
(section 2): the clock, the SX100 source (:class:`~nanoct.devices.sim.epma.EPMASource`), the
geometry, the specimen and the Medipix2 (:class:`~nanoct.devices.sim.medipix.Medipix2Model`).
The ophyd devices of :mod:`nanoct.devices` are thin views onto it.

Geometry (lab frame as in :mod:`nanoct.devices.sim.geometry`: the nominal spot at the origin,
the beam along +z, x to the right, y up). The specimen sits in air in front of the exit
window on a high-resolution manipulator: x, y lateral, z = focus-object distance (FOD) and a
rotation about the vertical axis (with an optional precessing wobble) for nano-CT, which a
tilt cradle can incline by ``tilt_deg`` about the lab x axis through the rotation centre for
laminography (convention of :class:`~nanoct.devices.sim.geometry.CTGeometry`; the chords
follow the tilted rotation exactly).
The Medipix2 stands at a fixed source-detector distance (SDD); the paper's "fixed but large
object-detector distance of ~1 m" is ``SDD - FOD``. Defaults: FOD 4.4 mm and SDD 1004.4 mm,
i.e. an object-detector distance of 1000 mm and a magnification of 228, which puts the
paper's 240 nm on a 55 um pixel (section 2.2: "down to 240 nm ... a magnification of at
least 200").

Image formation, per acquisition:

1. Per-material projected thickness maps of the specimen: exact chords along the cone-beam
   rays from the nominal spot to the (optionally oversampled) pixel centres, through the
   analytic shapes at the present position, rotation angle and wobble (the CT renderer's
   kernel). They are cached per geometry.
2. The exit wave of each energy group and its Fresnel propagation
   (:func:`~nanoct.devices.sim.phase.phase_contrast_image`: projection approximation, Fresnel
   scaling theorem for the point source, the static spot's Gaussian blur scaled by
   ``(M - 1) / M``), or the pure absorption image with ``phase_contrast=False``. The emitted
   spectrum's 0.5 keV bins are merged into ``n_energy_bins`` contiguous groups for this step
   (each imaged at its photon-weighted mean energy); cached per geometry and voltage.
3. The temporal shift of the focal spot: the spot's offset ``s`` at five instants of each
   frame moves the image by ``-s (M - 1)`` on the detector; the five shifted copies are
   averaged (motion blur), exactly, in Fourier space.
4. Expected photons per pixel and per (fine) energy bin: the source's calibrated fluence at
   the detector (inverse square from the spot, linear in the beam current), times the pixel
   area and the shutter time, times the image of the bin's group. Air absorption over the
   source-detector distance is off by default (assumption: the paper's 30 photons/mm^2/s at
   1 m, to which the source is calibrated, is the fluence that arrives there, i.e. it already
   contains the air of the measurement); ``air_absorption=True`` filters the spectrum by
   ``exp(-mu_air SDD)`` on top. The ``cos^3`` fall-off across the 14 mm chip at 1 m
   (< 3e-4) is neglected.
5. :meth:`Medipix2Model.count` for every frame (thresholds, trims, dispersion, electronic
   noise, 13-bit counter saturation, mask), summed over the frames of one trigger. Without
   the ``noise`` instability each frame's count is its rounded expectation.

Assumptions (labelled; none is a figure of the paper): FOD range 0.3-50 mm (the window mount
keeps the specimen >= 0.3 mm from the spot); lateral travel +-10 mm; manipulator 0.1 mm/s,
rotation 10 deg/s, 0.2 s settling; 10 ms read-out per Medipix2 frame; threshold DAC range
-12...100 keV relative to the preamplifier baseline, so that a threshold scan reaches below
the noise peak as on the real chip; a tilt cradle of +-60 deg at 2 deg/s.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields

import numpy as np
from scipy import fft

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.epma import EPMASource, EPMAState
from nanoct.devices.sim.geometry import (
    CTGeometry,
    DetectorGrid,
    check_tilt,
    specimen_reach_mm,
)
from nanoct.devices.sim.imaging import Renderer
from nanoct.devices.sim.materials import absorbed_fraction, attenuation_table
from nanoct.devices.sim.medipix import Medipix2Model, Medipix2Spec
from nanoct.devices.sim.microscope_specimens import make_microscope_specimen
from nanoct.devices.sim.phase import PointSourceGeometry, phase_contrast_image
from nanoct.devices.sim.specimens import Specimen
from nanoct.devices.sim.switches import InstabilitySwitches

__all__ = ["MicroscopeAcquisition", "MicroscopeInstabilities", "MicroscopeTwin"]

# Stage speeds and detector timing of the twin (assumptions; they only set twin time).
LINEAR_MM_PER_S = 0.1
ROTATION_DEG_PER_S = 10.0
TILT_DEG_PER_S = 2.0
SETTLE_S = 0.2
READOUT_S = 0.01
#: Instants per frame at which the drifting spot is sampled for the motion blur.
SPOT_SAMPLES_PER_FRAME = 5


@dataclass(frozen=True)
class MicroscopeInstabilities(InstabilitySwitches):
    """Which instabilities the microscope twin simulates (all on by default).

    ``spot_drift``: the temporal shift of the focal spot (paper, conclusions); ``wobble``: the
    rotation axis' precessing tilt (only with a non-zero ``wobble_urad``); ``noise``: photon
    counting (Poisson) statistics and electronic-noise hits (off: rounded expectations).
    """

    spot_drift: bool = True
    wobble: bool = True
    noise: bool = True

    @classmethod
    def coerce(cls, value: object | None) -> MicroscopeInstabilities:
        """None (all on), an instance, or any object with the same boolean attributes (e.g. the
        CT twin's :class:`~nanoct.devices.sim.twin.Instabilities`, whose other fields do not
        apply to the microscope)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        names = [f.name for f in fields(cls)]
        if not all(hasattr(value, n) for n in names):
            raise ValueError(
                f"instabilities={value!r} must be a MicroscopeInstabilities (or have the "
                f"attributes {names})"
            )
        return cls(**{n: bool(getattr(value, n)) for n in names})


@dataclass(frozen=True)
class MicroscopeAcquisition:
    """One trigger of the Medipix2: ``frames`` shutters of ``acquire_time_s``, counts summed."""

    counts: np.ndarray  # (256, 256) uint32, sum of the frames' counter read-outs
    time_s: float  # twin time at the middle of the acquisition
    duration_s: float  # twin time it took (shutters + read-outs)
    acquire_time_s: float
    frames: int
    source: EPMAState  # the source at the middle of the acquisition
    thl_kev: float
    thh_kev: float
    angle_deg: float
    fod_mm: float
    saturated_pixels: int  # pixels whose counter reached its depth in at least one frame


class MicroscopeTwin:
    """The simulated X-ray microscope (see the module docstring).

    Parameters
    ----------
    seed : int
        Seeds every random element (threshold dispersion, counting noise, spot drift, wobble
        phase). The same seed and the same operations give the same counts.
    specimen : str or Specimen
        ``'fibres'`` (default), ``'bristles'``, ``'facets'``, ``'wire'``, ``'edge'``,
        ``'flat_chip'`` (laminography) (:mod:`nanoct.devices.sim.microscope_specimens`) or any
        :class:`Specimen`.
    time_scale : float
        Wall seconds per twin second (0: as fast as possible, event driven).
    instabilities : MicroscopeInstabilities, optional
        Default: all on.
    fod_mm : float
        Initial focus-object distance, mm (0.3-50).
    sdd_mm : float
        Source-detector distance, mm (fixed on the instrument; a twin option for studies).
    phase_contrast : bool
        Fresnel propagation on (default) or off (pure absorption contrast).
    air_absorption : bool
        Filter the spectrum by the air over the source-detector distance (default off, see the
        module docstring).
    oversample : int
        Thickness samples per detector pixel along each axis (1-4); the image is averaged
        over them (pixel integration). Default 2: against 4, the fibres' and bristles'
        images differ by 0.1-0.5 % rms (1.3-1.7 % with 1), measured 2026-11.
    n_energy_bins : int
        Energy groups of the phase-contrast image formation (>= 1). Default 12: against one
        image per 0.5 keV bin (58 at 30 kV) the sensor-weighted images differ by ~2 % rms,
        up to 0.1-0.17 at the sharpest fringes (measured 2026-11).
    wobble_urad : float
        Amplitude of the rotation axis' precessing tilt, 0-100 urad (assumption: no figure for
        the microscope's manipulator is known; default 0).
    spot_fwhm_um : float
        Focal spot FWHM (default: the EPMA twin's 0.18 um).
    detector_spec : Medipix2Spec, optional
        Default: the Medipix2 constants with the threshold range -12...100 keV.
    """

    DEFAULT_FOD_MM = 4.4
    DEFAULT_SDD_MM = 1004.4
    FOD_RANGE_MM = (0.3, 50.0)
    SDD_RANGE_MM = (100.0, 2000.0)
    LATERAL_RANGE_MM = (-10.0, 10.0)
    MAX_WOBBLE_URAD = 100.0
    MAX_FRAMES = 10000
    THRESHOLD_RANGE_KEV = (-12.0, 100.0)
    DEFAULT_THL_KEV = 5.0
    DEFAULT_THH_KEV = 60.0
    TILT_RANGE_DEG = (-60.0, 60.0)
    AXES = ("angle_deg", "fod_mm", "axis_x_mm", "axis_y_mm", "tilt_deg")

    def __init__(
        self,
        *,
        seed: int = 0,
        specimen: str | Specimen = "fibres",
        time_scale: float = 0.0,
        instabilities: MicroscopeInstabilities | None = None,
        fod_mm: float = DEFAULT_FOD_MM,
        sdd_mm: float = DEFAULT_SDD_MM,
        phase_contrast: bool = True,
        air_absorption: bool = False,
        oversample: int = 2,
        n_energy_bins: int = 12,
        wobble_urad: float = 0.0,
        spot_fwhm_um: float | None = None,
        detector_spec: Medipix2Spec | None = None,
    ) -> None:
        self.instabilities = MicroscopeInstabilities.coerce(instabilities)
        inst = self.instabilities
        self.seed = int(seed)
        if oversample not in (1, 2, 3, 4):
            raise ValueError(f"oversample={oversample!r} must be 1, 2, 3 or 4")
        if not (isinstance(n_energy_bins, int) and n_energy_bins >= 1):
            raise ValueError(f"n_energy_bins={n_energy_bins!r} must be an integer >= 1")
        if not (math.isfinite(wobble_urad) and 0.0 <= wobble_urad <= self.MAX_WOBBLE_URAD):
            raise ValueError(
                f"wobble_urad={wobble_urad!r} is outside [0, {self.MAX_WOBBLE_URAD}] urad"
            )
        lo, hi = self.SDD_RANGE_MM
        if not (math.isfinite(sdd_mm) and lo <= sdd_mm <= hi):
            raise ValueError(f"sdd_mm={sdd_mm!r} is outside [{lo}, {hi}] mm")
        self.sdd_mm = float(sdd_mm)
        self.fod_mm = float(self.DEFAULT_FOD_MM)
        self.validate_axis("fod_mm", fod_mm)
        self.fod_mm = float(fod_mm)
        self.axis_x_mm = 0.0
        self.axis_y_mm = 0.0
        self.angle_deg = 0.0
        self.tilt_deg = 0.0
        self.clock = SimClock(time_scale)
        source_kw = {} if spot_fwhm_um is None else {"spot_fwhm_um": spot_fwhm_um}
        self.source = EPMASource(self.clock, seed=self.seed, drift=inst.spot_drift, **source_kw)
        spec = detector_spec or Medipix2Spec(threshold_range_kev=self.THRESHOLD_RANGE_KEV)
        self.detector = Medipix2Model(seed=self.seed, spec=spec)
        self.thl_kev = self.DEFAULT_THL_KEV
        self.thh_kev = self.DEFAULT_THH_KEV
        self.detector.validate(thl_kev=self.thl_kev, thh_kev=self.thh_kev)
        self.specimen = (
            specimen if isinstance(specimen, Specimen) else make_microscope_specimen(specimen)
        )
        self.phase_contrast = bool(phase_contrast)
        self.air_absorption = bool(air_absorption)
        self.oversample = int(oversample)
        self.n_energy_bins = int(n_energy_bins)
        self.wobble_urad = float(wobble_urad) if inst.wobble else 0.0
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 17]))
        self._wobble_phase = float(rng.uniform(0.0, 2.0 * np.pi))
        self._renderer = Renderer(self.specimen.materials())
        self._maps_cache: dict[tuple, dict[str, np.ndarray]] = {}
        self._image_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    # ---- geometry --------------------------------------------------------------------------
    @property
    def magnification(self) -> float:
        """``SDD / FOD`` at the rotation axis."""
        return self.sdd_mm / self.fod_mm

    @property
    def object_distance_mm(self) -> float:
        """Object-detector distance ``SDD - FOD``, mm."""
        return self.sdd_mm - self.fod_mm

    @property
    def pixel_mm(self) -> float:
        """Detector pixel pitch, mm."""
        return self.detector.spec.pixel_um * 1e-3

    @property
    def object_pixel_um(self) -> float:
        """Detector pixel projected to the rotation axis (the paper's "object length per
        pixel"), um."""
        return self.detector.spec.pixel_um / self.magnification

    def geometry(self) -> CTGeometry:
        """The present geometry (the CT's geometry type: ``sod_mm`` is the FOD)."""
        return CTGeometry(
            sod_mm=self.fod_mm,
            sdd_mm=self.sdd_mm,
            axis_x_mm=self.axis_x_mm,
            axis_y_mm=self.axis_y_mm,
            angle_deg=self.angle_deg,
            wobble_urad=self.wobble_urad,
            wobble_phase_rad=self._wobble_phase,
            tilt_deg=self.tilt_deg,
        )

    def optics(self) -> PointSourceGeometry:
        """Source-object and object-detector distances in metres, for the Fresnel optics."""
        return PointSourceGeometry(self.fod_mm * 1e-3, self.object_distance_mm * 1e-3)

    def grid(self) -> DetectorGrid:
        """The Medipix2's pixel centres (256 x 256 of 55 um, centred on the beam axis)."""
        n = self.detector.spec.pixels
        return DetectorGrid(n, n, self.pixel_mm)

    def validate_axis(self, axis: str, value: float) -> None:
        """Raise ValueError if ``axis`` cannot go to ``value`` (names both and the range)."""
        if axis not in self.AXES:
            raise ValueError(f"axis={axis!r} is not a twin axis; allowed: {list(self.AXES)}")
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise ValueError(f"{axis}={value!r} must be a number")
        v = float(value)
        if axis == "angle_deg":
            if not math.isfinite(v):
                raise ValueError(f"angle_deg={value!r} must be finite")
            return
        if axis == "tilt_deg":
            self._validate_tilt(value)
            return
        lo, hi = self.FOD_RANGE_MM if axis == "fod_mm" else self.LATERAL_RANGE_MM
        if not (math.isfinite(v) and lo <= v <= hi):
            what = "focus-object distance" if axis == "fod_mm" else "manipulator"
            raise ValueError(f"{axis}={value!r} is outside the {what} range [{lo}, {hi}] mm")
        if axis == "fod_mm" and not v < self.sdd_mm:
            raise ValueError(f"fod_mm={value!r} must be smaller than sdd_mm={self.sdd_mm}")

    def _validate_tilt(self, value: float) -> None:
        check_tilt(
            value, self.TILT_RANGE_DEG, self.specimen.corners(), self.fod_mm,
            distance_name="fod_mm", obstacle="exit window",
        )  # fmt: skip

    def set_position(self, axis: str, value: float) -> None:
        """Put a manipulator axis at ``value`` at once (devices account for the move time)."""
        self.validate_axis(axis, value)
        setattr(self, axis, float(value))

    def move_time_s(self, axis: str, target: float) -> float:
        """Twin seconds a move of ``axis`` to ``target`` takes (assumed stage speeds)."""
        now = float(getattr(self, axis))
        speed = {"angle_deg": ROTATION_DEG_PER_S, "tilt_deg": TILT_DEG_PER_S}.get(
            axis, LINEAR_MM_PER_S
        )
        return abs(float(target) - now) / speed + SETTLE_S

    def out_of_beam_x_mm(self, margin_mm: float = 0.02, *, tilt_deg: float | None = None) -> float:
        """A manipulator x that takes the whole specimen out of the cone (for bright fields),
        at the present tilt or at ``tilt_deg``."""
        tilt = self.tilt_deg if tilt_deg is None else float(tilt_deg)
        r, depth = specimen_reach_mm(self.specimen.corners(), tilt)
        half_width = self.grid().cols * self.pixel_mm / 2.0
        x = half_width * (self.fod_mm + depth) / self.sdd_mm + r + margin_mm
        if x > self.LATERAL_RANGE_MM[1]:
            raise ValueError(
                f"the specimen cannot leave the beam: it would need axis_x_mm={x:.3g} > "
                f"{self.LATERAL_RANGE_MM[1]} mm"
            )
        return x

    # ---- thresholds ------------------------------------------------------------------------
    def set_thresholds(self, *, thl_kev: float | None = None, thh_kev: float | None = None):
        """Set the global lower/upper thresholds (validated together; all or nothing)."""
        lo = self.thl_kev if thl_kev is None else thl_kev
        hi = self.thh_kev if thh_kev is None else thh_kev
        self.detector.validate(thl_kev=lo, thh_kev=hi)
        self.thl_kev, self.thh_kev = float(lo), float(hi)

    # ---- image formation -------------------------------------------------------------------
    def _geometry_key(self) -> tuple:
        return (
            self.fod_mm,
            self.sdd_mm,
            self.axis_x_mm,
            self.axis_y_mm,
            self.angle_deg,
            self.wobble_urad,
            self.oversample,
            self.tilt_deg,
        )

    def thickness_maps_um(self) -> dict[str, np.ndarray]:
        """Projected thickness per material (um) on the oversampled detector grid.

        Exact chords along the rays from the nominal spot to each (sub-)pixel centre through
        the specimen at the present position, angle and wobble; air is left out (the
        specimen displaces it; air's refractive index is negligible at this scale). Shape
        ``(256 * oversample, 256 * oversample)``, rows from the top. Cached per geometry.
        """
        key = self._geometry_key()
        maps = self._maps_cache.get(key)
        if maps is None:
            fine = self.grid().oversampled(self.oversample)
            lengths = self._renderer.path_lengths(
                self.specimen, fine, self.geometry(), np.zeros(3), rotates=True
            )
            maps = {}
            if lengths is not None:
                for name, length in zip(self._renderer.materials, lengths, strict=True):
                    if name == "air":
                        continue
                    t_um = np.clip(length.astype(np.float64) * 1e3, 0.0, None)
                    if t_um.max() > 0.0:
                        maps[name] = t_um
            _bounded_put(self._maps_cache, key, maps)
        return maps

    def _spectrum_at_detector(self) -> tuple[np.ndarray, np.ndarray]:
        """Fine energy bins (keV) and photons / s / sr / uA per bin arriving at the detector
        (the calibrated emission, times the air transmission if switched on)."""
        sp = self.source.spectrum()
        e = np.asarray(sp.energies_kev, dtype=float)
        n = np.asarray(sp.photons_per_s_sr_ua, dtype=float)
        if self.air_absorption:
            n = n * np.exp(-attenuation_table(["air"], e)[0] * self.sdd_mm)
        return e, n

    def _groups(self, energies: np.ndarray, photons: np.ndarray) -> tuple[list, np.ndarray]:
        groups = np.array_split(np.arange(energies.size), min(self.n_energy_bins, energies.size))
        e_group = np.array(
            [
                np.average(energies[g], weights=photons[g])
                if photons[g].sum() > 0
                else energies[g].mean()
                for g in groups
            ]
        )
        return groups, e_group

    def group_images(self) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Open-beam-normalised images of each energy group, (n_groups, 256, 256).

        Returns ``(group_energies_kev, groups, images)``: the groups are index arrays into the
        fine spectrum. Static focal spot (its blur, not its temporal shift). Cached per
        geometry, voltage, phase-contrast and air settings.
        """
        energies, photons = self._spectrum_at_detector()
        groups, e_group = self._groups(energies, photons)
        key = (
            self._geometry_key(),
            self.source.voltage_kv,
            self.phase_contrast,
            self.air_absorption,
            self.n_energy_bins,
            self.source.spot_fwhm_um,
        )
        cached = self._image_cache.get(key)
        if cached is None:
            maps = self.thickness_maps_um()
            n = self.detector.spec.pixels
            os_ = self.oversample
            images = np.ones((len(groups), n, n))
            if maps:
                optics = self.optics()
                pixel_m = self.pixel_mm * 1e-3 / os_ / optics.magnification
                for k, e in enumerate(e_group):
                    img = phase_contrast_image(
                        maps,
                        [e],
                        pixel_m=pixel_m,
                        geometry=optics,
                        spot_fwhm_m=self.source.spot_fwhm_um * 1e-6,
                        propagate=self.phase_contrast,
                    )
                    images[k] = img.reshape(n, os_, n, os_).mean(axis=(1, 3))
            cached = (e_group, images)
            _bounded_put(self._image_cache, key, cached)
        return cached[0], groups, cached[1]

    def expected_image(self) -> np.ndarray:
        """Open-beam-normalised image as the sensor weighs it (photons absorbed in the silicon,
        no thresholds), static spot; (256, 256), 1 in the open beam."""
        energies, photons = self._spectrum_at_detector()
        _, groups, images = self.group_images()
        s = self.detector.spec
        absorbed = photons * absorbed_fraction(s.sensor, s.sensor_um, energies)
        w = np.array([absorbed[g].sum() for g in groups])
        return np.tensordot(w / w.sum(), images, axes=1)

    def _spot_shifts_px(self, t0: float, exposure_s: float) -> list[tuple[float, float]]:
        """(row, col) image shifts in detector pixels at instants of one shutter."""
        if not self.instabilities.spot_drift:
            return []
        m1 = self.magnification - 1.0
        out = []
        for k in range(SPOT_SAMPLES_PER_FRAME):
            t = t0 + (k + 0.5) / SPOT_SAMPLES_PER_FRAME * exposure_s
            sx, sy = self.source.spot_offset_um(t)
            # the spot moving +x moves the shadow by -x (M - 1); rows grow downwards
            out.append((sy * 1e-3 * m1 / self.pixel_mm, -sx * 1e-3 * m1 / self.pixel_mm))
        return out

    def expected_photons(
        self, exposure_s: float, *, t_start: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected photons arriving at each pixel during one shutter, per fine energy bin.

        Returns ``(energies_kev, photons)`` with photons of shape ``(n_E, 256, 256)``; zero
        photons (and a single energy) while the beam is off. ``t_start`` (default now) fixes
        where the drifting spot is during the shutter.
        """
        t0 = self.clock.now() if t_start is None else float(t_start)
        n = self.detector.spec.pixels
        if not self.source.beam_on:
            return np.array([10.0]), np.zeros((1, n, n))
        energies, photons = self._spectrum_at_detector()
        _, groups, images = self.group_images()
        shifts = self._spot_shifts_px(t0, exposure_s)
        if shifts and max(max(abs(a), abs(b)) for a, b in shifts) > 1e-3:
            images = _shift_average(images, shifts)
        per_pixel = (
            photons * (self.source.current_na * 1e-3) / self.sdd_mm**2 * self.pixel_mm**2
        ) * exposure_s
        out = np.empty((energies.size, n, n))
        for g, idx in enumerate(groups):
            out[idx] = per_pixel[idx, None, None] * images[g][None]
        return energies, out

    def acquisition_time_s(self, acquire_time_s: float, frames: int = 1) -> float:
        """Twin seconds one trigger takes: shutters plus read-outs."""
        return frames * (acquire_time_s + READOUT_S)

    def validate_acquisition(self, acquire_time_s: float, frames: int = 1) -> None:
        """Raise ValueError naming the parameter, the value and the allowed range."""
        hi = self.detector.spec.max_shutter_s
        if isinstance(acquire_time_s, bool) or not isinstance(acquire_time_s, int | float):
            raise ValueError(f"acquire_time_s={acquire_time_s!r} must be a number in (0, {hi}] s")
        if not (math.isfinite(acquire_time_s) and 0.0 < acquire_time_s <= hi):
            raise ValueError(f"acquire_time_s={acquire_time_s!r} is outside (0, {hi}] s")
        ok = isinstance(frames, int | np.integer) and not isinstance(frames, bool)
        if not ok or not 1 <= frames <= self.MAX_FRAMES:
            raise ValueError(f"frames={frames!r} must be an integer in [1, {self.MAX_FRAMES}]")

    def acquire(self, acquire_time_s: float, frames: int = 1) -> MicroscopeAcquisition:
        """Open the shutter ``frames`` times for ``acquire_time_s`` each and sum the counts.

        Advances the twin clock by the shutters and read-outs. Each frame sees the spot where
        it is during that frame and has its own counting noise; each frame's counter
        saturates on its own (the sum can exceed the counter depth).
        """
        self.validate_acquisition(acquire_time_s, frames)
        wall0 = time.monotonic()
        det = self.detector
        duration = self.acquisition_time_s(acquire_time_s, frames)
        period = acquire_time_s + READOUT_S
        t0 = self.clock.now()
        total = np.zeros(det.spec.shape, dtype=np.uint32)
        saturated = np.zeros(det.spec.shape, dtype=bool)
        kw = {"thl_kev": self.thl_kev, "thh_kev": self.thh_kev, "shutter_s": acquire_time_s}
        for f in range(frames):
            energies, photons = self.expected_photons(acquire_time_s, t_start=t0 + f * period)
            if self.instabilities.noise:
                counts = det.count(photons, energies, **kw)
            else:
                mean = det.expected_counts(photons, energies, **kw)
                counts = np.minimum(np.rint(mean), det.spec.max_count).astype(np.uint16)
                counts[det.mask] = 0
            saturated |= counts >= det.spec.max_count
            total += counts
        t_mid = t0 + duration / 2.0
        state = self.source.state(t_mid)
        spent = time.monotonic() - wall0
        if self.clock.time_scale > 0:
            time.sleep(max(duration * self.clock.time_scale - spent, 0.0))
            self.clock.advance(0.0)
        else:
            self.clock.advance(duration)
        return MicroscopeAcquisition(
            counts=total,
            time_s=t_mid,
            duration_s=duration,
            acquire_time_s=float(acquire_time_s),
            frames=int(frames),
            source=state,
            thl_kev=self.thl_kev,
            thh_kev=self.thh_kev,
            angle_deg=self.angle_deg,
            fod_mm=self.fod_mm,
            saturated_pixels=int(saturated.sum()),
        )


def _bounded_put(cache: dict, key: tuple, value, size: int = 4) -> None:
    """Insert into a small cache, dropping the oldest entries beyond ``size``."""
    cache[key] = value
    while len(cache) > size:
        cache.pop(next(iter(cache)))


def _shift_average(images: np.ndarray, shifts_px: list[tuple[float, float]]) -> np.ndarray:
    """Average of copies of each image shifted by ``shifts_px`` ((row, col) pixels), computed
    exactly in Fourier space on edge-padded images (the transfer function is the mean of the
    shifts' phase ramps)."""
    reach = max(max(abs(a), abs(b)) for a, b in shifts_px)
    pad = int(np.ceil(reach)) + 4
    _, rows, cols = images.shape
    shape = (
        fft.next_fast_len(rows + 2 * pad, real=True),
        fft.next_fast_len(cols + 2 * pad, real=True),
    )
    padded = np.pad(
        images, ((0, 0), (pad, shape[0] - rows - pad), (pad, shape[1] - cols - pad)), mode="edge"
    )
    fy = fft.fftfreq(shape[0])[:, None]
    fx = fft.rfftfreq(shape[1])[None, :]
    h = np.zeros((shape[0], fx.shape[1]), dtype=complex)
    for dr, dc in shifts_px:
        h += np.exp(-2j * np.pi * (fy * dr + fx * dc))
    h /= len(shifts_px)
    spec = fft.rfft2(padded, axes=(-2, -1), workers=-1) * h
    out = fft.irfft2(spec, s=shape, axes=(-2, -1), workers=-1)
    # the shifted copies of sharp images ring slightly (Gibbs); intensities stay >= 0
    return np.clip(out[:, pad : pad + rows, pad : pad + cols], 0.0, None)
