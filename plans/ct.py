"""The CT scan of the paper: darks, interleaved flat blocks, averaged projections, reference wire.

One run holds three streams:

- ``dark``: shutter closed (the tube stays on, so its thermal state is not disturbed),
  ``flatpanel_image_key == 2``;
- ``flat``: specimen moved out of the beam, ``flatpanel_image_key == 1``, a ``flat_block`` index
  per frame; a block at the start, before every ``flat_every``-th projection and at the end
  (250 angles with ``flat_every=100`` give blocks before projections 0, 100, 200 and 250);
- ``primary``: one event per angle, ``flatpanel_image_key == 0``, with the rotation angle, the
  twin time, the tube's readbacks, the flux minimum during the exposure, the reference wire's
  shadow position and width (``wire_x_px``, ``wire_y_px``, ``wire_width_px``) and
  ``projection_index``.

Every frame is preceded by a ``checkpoint``: a pause or a suspension rewinds to the frame in
progress, so no angle is lost or repeated. A projection during which the source dropped below
``min_flux`` is dropped (never saved); the plan waits, in instrument time, for the flux to
recover, takes a fresh flat block and repeats that angle.

The schedule, the flat-block interleaving, the dropout/repeat logic and the schedule's part of
the metadata are instrument-generic: the plan stubs and :func:`tomo_scan` drive a
:class:`ScanDevices`, a small description of an instrument (its detector, source, rotation,
lateral stage and out-of-beam position, how the beam is blocked for darks, where the flux is
read). :func:`ct_devices` describes the sub-um CT; :func:`nanoct.plans.nano_ct.microscope_devices`
the X-ray microscope, whose :func:`~nanoct.plans.nano_ct.nano_ct_scan` and the laminography of
:func:`~nanoct.plans.laminography.laminography_scan` run through the same code. Optional
``reference`` projections (stream ``reference``: the specimen at one fixed angle, taken with
the flat blocks) give a drift reference where no wire is in view; ``ct_scan`` takes none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from nanoct.devices.flatpanel import IMAGE_KEYS
from nanoct.devices.storage import check_disk_space

__all__ = [
    "ANGLE_RANGE_DEG",
    "CTSchedule",
    "PreparedScan",
    "ScanDevices",
    "as_scan_devices",
    "ct_devices",
    "ct_scan",
    "dark_block",
    "flat_block",
    "plan_ct",
    "prepare_ct_scan",
    "projection",
    "reference_projection",
    "schedule_metadata",
    "tomo_scan",
    "wait_for_flux",
]

logger = logging.getLogger(__name__)

#: Angles a scan may use, deg (two full turns either side of zero would be a user error).
ANGLE_RANGE_DEG = (-360.0, 720.0)


@dataclass(frozen=True)
class CTSchedule:
    """A validated CT: what will be acquired and in which order."""

    angles_deg: tuple[float, ...]
    exposure_s: float
    frames_per_projection: int
    flat_every: int
    num_darks: int
    num_flats: int
    darks_after: bool
    min_flux: float
    #: projection indices before which a flat block is taken (the last equals num_angles)
    flat_blocks_before: tuple[int, ...]
    #: projection indices before which a reference projection is taken (stream
    #: ``reference``, the last equals num_angles); empty: none
    references_before: tuple[int, ...] = ()
    #: rotation angle of the reference projections, deg
    reference_angle_deg: float = 0.0

    @property
    def num_angles(self) -> int:
        return len(self.angles_deg)

    def frame_count(self) -> dict[str, int]:
        """Images per stream (without dropout repeats); ``reference`` only when taken."""
        out = {
            "dark": self.num_darks * (2 if self.darks_after else 1),
            "flat": self.num_flats * len(self.flat_blocks_before),
            "primary": self.num_angles,
        }
        if self.references_before:
            out["reference"] = len(self.references_before)
        return out


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value!r} must be an integer {rng}")
    return int(value)


def plan_ct(
    *,
    num_angles: int | None = None,
    exposure_s: float = 5.0,
    frames_per_projection: int = 4,
    flat_every: int = 100,
    num_darks: int = 10,
    num_flats: int = 10,
    angles_deg: Sequence[float] | None = None,
    darks_after: bool = True,
    min_flux: float = 0.8,
    exposure_range_s: tuple[float, float] = (0.01, 60.0),
    max_frames: int = 64,
    reference_every: int | None = None,
) -> CTSchedule:
    """Validate a CT's arguments and work out its schedule; raises ValueError naming the
    parameter, the value and the allowed range. Nothing moves.

    ``reference_every`` (optional): a reference projection at the first angle before every
    ``reference_every``-th projection and after the last (stream ``reference``)."""
    lo, hi = exposure_range_s
    if not (isinstance(exposure_s, int | float) and lo <= exposure_s <= hi):
        raise ValueError(f"exposure_s={exposure_s!r} must lie in [{lo}, {hi}] s")
    frames = _check_int("frames_per_projection", frames_per_projection, 1, max_frames)
    every = _check_int("flat_every", flat_every, 1)
    darks = _check_int("num_darks", num_darks, 0)
    flats = _check_int("num_flats", num_flats, 1)
    if not 0.0 <= min_flux < 1.0:
        raise ValueError(f"min_flux={min_flux!r} must lie in [0, 1) (relative to nominal)")
    if angles_deg is None:
        n = _check_int("num_angles", 1600 if num_angles is None else num_angles, 1)
        angles = tuple(float(a) for a in np.arange(n) * (360.0 / n))
    else:
        angles = tuple(float(a) for a in np.asarray(angles_deg, dtype=float).ravel())
        if len(angles) < 1:
            raise ValueError("angles_deg must hold at least one angle")
        if num_angles is not None and num_angles != len(angles):
            raise ValueError(
                f"num_angles={num_angles!r} contradicts len(angles_deg)={len(angles)}; "
                "give one or the other"
            )
        a = np.asarray(angles)
        if not np.all(np.isfinite(a)):
            raise ValueError("angles_deg must be finite numbers")
        if np.any(np.diff(a) <= 0):
            k = int(np.flatnonzero(np.diff(a) <= 0)[0])
            raise ValueError(
                f"angles_deg must increase strictly; angles_deg[{k + 1}]={float(a[k + 1])!r} "
                f"follows {float(a[k])!r}"
            )
        lo_a, hi_a = ANGLE_RANGE_DEG
        if a[0] < lo_a or a[-1] > hi_a:
            raise ValueError(
                f"angles_deg span [{float(a[0])!r}, {float(a[-1])!r}] leaves the allowed range "
                f"[{lo_a}, {hi_a}] deg"
            )
    n = len(angles)
    before = (*range(0, n, every), n)
    refs: tuple[int, ...] = ()
    if reference_every is not None:
        refs = (*range(0, n, _check_int("reference_every", reference_every, 1)), n)
    return CTSchedule(
        angles,
        float(exposure_s),
        frames,
        every,
        darks,
        flats,
        bool(darks_after),
        float(min_flux),
        before,
        refs,
        angles[0],
    )


# ---- the instrument, as the generic stubs see it ----------------------------------------------
@dataclass(frozen=True)
class ScanDevices:
    """What the generic CT schedule drives; :func:`ct_devices` builds it for the sub-um CT,
    :func:`nanoct.plans.nano_ct.microscope_devices` for the X-ray microscope.

    Attributes
    ----------
    detector : ophyd device
        Triggered for every image; has ``image_key`` and ``name``.
    exposure, frames : ophyd signals
        The detector's exposure (s) per frame and frames per image.
    source : ophyd device
        Read into every dark, flat and projection event (tube or EPMA source).
    rotation : positioner
        The rotation stage (deg).
    lateral : positioner
        The manipulator axis that takes the specimen out of the beam (x, mm).
    out_of_beam : callable
        ``out_of_beam() -> float``: where ``lateral`` goes for flats (raises ValueError if the
        specimen cannot leave the beam).
    block_beam, unblock_beam : (device, value)
        The move that stops the beam for darks and the one that restores it.
    monitors : tuple of devices
        Further readables of each projection event (e.g. the reference wire).
    projection_index, flat_block : ophyd signals
        Scan bookkeeping read into events.
    waiter : positioner
        Lets instrument time pass (:func:`wait_for_flux`).
    relative_flux : callable
        ``relative_flux(readings) -> float``: the source's output relative to nominal from a
        projection event's readings (the minimum during the exposure where the instrument
        logs it).
    flux_now : callable
        ``flux_now()``, a plan stub returning the present relative flux.
    """

    detector: Any
    exposure: Any
    frames: Any
    source: Any
    rotation: Any
    lateral: Any
    out_of_beam: Callable[[], float]
    block_beam: tuple[Any, Any]
    unblock_beam: tuple[Any, Any]
    monitors: tuple[Any, ...]
    projection_index: Any
    flat_block: Any
    waiter: Any
    relative_flux: Callable[[dict], float]
    flux_now: Callable[[], Generator]


def ct_devices(ct) -> ScanDevices:
    """The sub-um CT (:func:`nanoct.devices.sub_um_ct`) as the generic stubs see it: flat panel,
    tube (darks with the shutter closed, the tube stays on), reference wire, TXI flux."""
    key = f"{ct.flatpanel.name}_flux_min"

    def flux_now():
        return (yield from bps.rd(ct.tube.flux))

    return ScanDevices(
        detector=ct.flatpanel,
        exposure=ct.flatpanel.exposure_time,
        frames=ct.flatpanel.frames_per_image,
        source=ct.tube,
        rotation=ct.rotation,
        lateral=ct.manipulator.x,
        out_of_beam=ct.manipulator.out_of_beam_x,
        block_beam=(ct.shutter, "closed"),
        unblock_beam=(ct.shutter, "open"),
        monitors=(ct.wire,),
        projection_index=ct.projection_index,
        flat_block=ct.flat_block,
        waiter=ct.waiter,
        relative_flux=lambda readings: readings[key]["value"],
        flux_now=flux_now,
    )


def as_scan_devices(instrument) -> ScanDevices:
    """``instrument`` itself if it is a :class:`ScanDevices`, else its description: the sub-um
    CT or the X-ray microscope."""
    if isinstance(instrument, ScanDevices):
        return instrument
    if hasattr(instrument, "flatpanel"):
        return ct_devices(instrument)
    if hasattr(instrument, "medipix"):
        from nanoct.plans.nano_ct import microscope_devices

        return microscope_devices(instrument)
    raise ValueError(
        f"instrument={instrument!r:.80} is neither the sub-um CT nor the X-ray microscope"
    )


# ---- plan stubs (no runs opened or closed here) ----------------------------------------------
def _trigger_and_save(detectors: list, stream: str):
    """checkpoint, then trigger the detector and save one event of ``detectors``."""
    yield from bps.checkpoint()
    yield from bps.trigger_and_read(detectors, name=stream)


def dark_block(ct, num_darks: int):
    """``num_darks`` dark images (beam blocked: the CT's shutter closed) into stream ``dark``.

    ``ct`` is the instrument or its :class:`ScanDevices`."""
    if num_darks <= 0:
        return
    dev = as_scan_devices(ct)
    key = dev.detector.image_key
    yield from bps.mv(*dev.block_beam, key, IMAGE_KEYS["dark"])
    for _ in range(num_darks):
        yield from _trigger_and_save([dev.detector, dev.source], "dark")
    yield from bps.mv(*dev.unblock_beam, key, IMAGE_KEYS["projection"])


def flat_block(ct, num_flats: int):
    """A block of ``num_flats`` flats (specimen out of the beam) into stream ``flat``; the
    block index (``flat_block``) counts up through the run. ``ct`` is the instrument or its
    :class:`ScanDevices`."""
    dev = as_scan_devices(ct)
    block = (yield from bps.rd(dev.flat_block)) + 1
    x_in = yield from bps.rd(dev.lateral)
    x_out = dev.out_of_beam()
    key = dev.detector.image_key
    yield from bps.checkpoint()
    yield from bps.mv(dev.flat_block, block)
    yield from bps.mv(dev.lateral, x_out, key, IMAGE_KEYS["flat"])
    for _ in range(num_flats):
        yield from _trigger_and_save([dev.detector, dev.source, dev.flat_block], "flat")
    yield from bps.mv(dev.lateral, x_in, key, IMAGE_KEYS["projection"])
    logger.info("flat block %d taken", block)


def _new_files(detector):
    """Close the detector's files and open new ones (unstage, stage)."""
    yield from bps.unstage(detector)
    yield from bps.stage(detector)


def reference_projection(ct, angle_deg: float):
    """One projection at the fixed reference angle into stream ``reference`` (a drift
    reference: the same view again and again through the scan); ``image_key`` 0.

    The detectors write one HDF5 file per image key, and a file's frames must belong to one
    stream (Tiled files each file's frames under the stream that referenced it first): the
    reference is written to a file of its own by restaging the detector before and after it.
    """
    dev = as_scan_devices(ct)
    yield from bps.checkpoint()
    yield from bps.mv(dev.rotation, angle_deg)
    yield from _new_files(dev.detector)
    yield from bps.trigger_and_read([dev.detector, dev.source, dev.rotation], name="reference")
    yield from _new_files(dev.detector)


def projection(ct, index: int, angle_deg: float, *, min_flux: float = 0.0):
    """One projection at ``angle_deg`` into stream ``primary``.

    Returns True if it was saved, False if it was dropped because the source's output fell
    below ``min_flux`` during the exposure. ``ct`` is the instrument or its
    :class:`ScanDevices`.
    """
    dev = as_scan_devices(ct)
    yield from bps.checkpoint()
    yield from bps.mv(dev.rotation, angle_deg, dev.projection_index, index)
    yield from bps.trigger(dev.detector, group="projection")
    yield from bps.wait(group="projection")
    yield from bps.create("primary")
    reading = yield from bps.read(dev.detector)
    readings = dict(reading or {})
    for obj in (dev.source, *dev.monitors, dev.rotation, dev.projection_index):
        readings.update((yield from bps.read(obj)) or {})
    flux = dev.relative_flux(readings) if reading else 1.0
    if flux < min_flux:
        yield from bps.drop()
        logger.warning(
            "projection %d at %.3f deg dropped: flux fell to %.2f", index, angle_deg, flux
        )
        return False
    yield from bps.save()
    return True


def wait_for_flux(ct, *, resume_flux: float, poll_s: float = 30.0, max_wait_s: float = 3600.0):
    """Wait in instrument time until the source's flux is back above ``resume_flux``."""
    dev = as_scan_devices(ct)
    waited = 0.0
    while (yield from dev.flux_now()) < resume_flux:
        if waited >= max_wait_s:
            raise RuntimeError(
                f"the source's flux did not recover above {resume_flux} within {max_wait_s} s; "
                "the run is closed with every image taken so far saved"
            )
        yield from bps.mv(dev.waiter, poll_s)
        waited += poll_s


# ---- the plan ----------------------------------------------------------------------------------
def schedule_metadata(sched: CTSchedule) -> dict[str, Any]:
    """The schedule's part of a CT's start document (any instrument)."""
    md: dict[str, Any] = {
        "num_angles": sched.num_angles,
        "angles_deg": list(sched.angles_deg),
        "exposure_s": sched.exposure_s,
        "frames_per_projection": sched.frames_per_projection,
        "flat_every": sched.flat_every,
        "num_darks": sched.num_darks,
        "num_flats": sched.num_flats,
        "darks_after": sched.darks_after,
        "flat_blocks_before": list(sched.flat_blocks_before),
        "expected_frames": sched.frame_count(),
    }
    if sched.references_before:
        md["references_before"] = list(sched.references_before)
        md["reference_angle_deg"] = sched.reference_angle_deg
    return md


def _start_metadata(ct, sched: CTSchedule) -> dict[str, Any]:
    """Everything a reconstruction needs, read from the instrument's devices now.

    Geometry, detector and tube settings come from the devices (as they would from real
    hardware); what only the twin knows (specimen, seed, time scale, instabilities, where the
    wire is mounted) is added from ``ct.twin``.
    """
    tw = ct.twin
    wire = tw.wire_projection()
    rows, cols = ct.flatpanel.describe()[ct.flatpanel.image_data_key]["shape"]
    md: dict[str, Any] = {
        "instrument": "sub_um_ct",
        "specimen": tw.specimen.name,
        "seed": tw.seed,
        "time_scale": tw.clock.time_scale,
        **schedule_metadata(sched),
        "geometry": {
            "sod_mm": ct.geometry.sod.get(),
            "sdd_mm": ct.geometry.sdd.get(),
            "magnification": ct.geometry.magnification.get(),
            "voxel_size_um": ct.geometry.voxel_size.get(),
            "detector_pixel_um": ct.geometry.pixel_size.get(),
            "binning": ct.flatpanel.binning.get(),
            "detector_shape": [rows, cols],
            # the panel is centred on the central ray in this setup (the twin's detector has no
            # offset); a real installation records its measured offsets here
            "detector_offset_u_mm": 0.0,
            "detector_offset_v_mm": 0.0,
            "axis_x_mm": ct.manipulator.x.position,
            "axis_y_mm": ct.manipulator.y.position,
            "wobble_urad": ct.rotation.wobble.get(),
            "rotation_sense": "counter-clockwise seen from above (right-handed about +y)",
            # laminography: the axis' tilt about the lab x axis, + = upper end towards the
            # detector (nanoct.recon.laminography.LaminoGeometry's convention); 0 = CT
            "tilt_deg": ct.rotation.tilt.position,
        },
        "tube": {
            "model": "Feinfocus FXE 160",
            "voltage_kv": ct.tube.voltage.get(),
            "current_ua": ct.tube.current.get(),
            "focus_mode": ct.tube.focus_mode.get(),
            "spot_size_um": ct.tube.spot_size.get(),
            "txi": ct.tube.txi.get(),
        },
        "detector": {
            "model": "Hamamatsu C9312SK-05",
            "bits": tw.detector.spec.bits,
            "image_dtype": "float32 (mean of averaged frames, ADU)",
        },
        "reference_wire": None,
        "instabilities": asdict(tw.instabilities),
        "expected_duration_s": estimate_duration_s(ct, sched),
    }
    if wire is not None:
        md["reference_wire"] = {
            "center_mm": list(tw.wire_center_mm),
            "diameter_um": 30.0,
            "magnification": wire["magnification"],
            "row": wire["row"],
            "col": wire["col"],
            "diameter_px": wire["diameter_px"],
        }
        regions = ct.wire_regions()
        if regions is not None:
            # detector regions (rows, cols as [start, stop]) the wire is measured in
            md["reference_wire"]["regions"] = {
                name: [[sl.start, sl.stop] for sl in region]
                for name, region in zip(("vertical_arm", "horizontal_arm"), regions, strict=True)
            }
    return md


def estimate_duration_s(ct, sched: CTSchedule) -> dict[str, float]:
    """Instrument time the scan should take: per projection, per flat block, in all (s)."""
    tw = ct.twin
    step = 360.0 / max(sched.num_angles, 1)
    proj = tw.acquisition_time_s(sched.exposure_s, sched.frames_per_projection)
    proj += tw.move_time_s("angle_deg", tw.angle_deg + step)
    out_x = tw.out_of_beam_x_mm()
    move = 2 * (abs(out_x - tw.axis_x_mm) / 1.0 + 0.2)
    flat = move + sched.num_flats * tw.acquisition_time_s(
        sched.exposure_s, sched.frames_per_projection
    )
    dark = sched.num_darks * tw.acquisition_time_s(sched.exposure_s, sched.frames_per_projection)
    total = (
        sched.num_angles * proj
        + len(sched.flat_blocks_before) * flat
        + dark * (2 if sched.darks_after else 1)
    )
    return {
        "per_projection_s": proj,
        "per_flat_block_s": flat,
        "per_dark_block_s": dark,
        "total_s": total,
    }


def ct_scan(
    ct,
    *,
    num_angles: int | None = None,
    exposure_s: float = 5.0,
    frames_per_projection: int = 4,
    flat_every: int = 100,
    num_darks: int = 10,
    num_flats: int = 10,
    angles_deg: Sequence[float] | None = None,
    darks_after: bool = True,
    min_flux: float = 0.8,
    resume_flux: float = 0.95,
    md: dict[str, Any] | None = None,
):
    """Cone-beam CT with darks, interleaved flat blocks, frame averaging and the reference wire.

    Parameters
    ----------
    ct : SubMicronCT
        The instrument (:func:`nanoct.devices.sub_um_ct`).
    num_angles : int, optional
        Projections over 360 deg; default 1600 (the paper). Give either this or ``angles_deg``.
    exposure_s : float
        Exposure of one frame. The paper: 5 s.
    frames_per_projection : int
        Frames averaged into each image (projections, flats and darks). The paper: 4.
    flat_every : int
        A flat block before every ``flat_every``-th projection (and at the start and the end).
        The paper: 100.
    num_darks, num_flats : int
        Images per dark block (before, and after if ``darks_after``) and per flat block.
    angles_deg : sequence of float, optional
        Explicit, strictly increasing angles in [-360, 720] deg.
    darks_after : bool
        Take a second dark block after the last flat block, so that a drift of the
        detector's offset over a long scan shows in the run (the reconstruction subtracts
        the mean of all darks).
    min_flux, resume_flux : float
        A projection during which the source fell below ``min_flux`` (relative output) is
        dropped; the plan waits until the flux is back above ``resume_flux``, takes a fresh flat
        block and repeats the angle.
    md : dict, optional
        Metadata merged into the start document.

    Yields
    ------
    Msg
        Bluesky messages; returns the run's uid.
    """
    prep = prepare_ct_scan(
        ct,
        num_angles=num_angles,
        exposure_s=exposure_s,
        frames_per_projection=frames_per_projection,
        flat_every=flat_every,
        num_darks=num_darks,
        num_flats=num_flats,
        angles_deg=angles_deg,
        darks_after=darks_after,
        min_flux=min_flux,
        resume_flux=resume_flux,
    )
    return (yield from prep.run("ct_scan", md))


@dataclass(frozen=True)
class PreparedScan:
    """A validated CT of one instrument, ready to run through :func:`tomo_scan`.

    ``metadata(plan_name)`` builds the start document from the devices *when called* (so a
    plan that moves something first, e.g. the laminography tilt, records the state it scans
    in); ``plan_args`` are the plan's arguments for it.
    """

    devices: ScanDevices
    sched: CTSchedule
    resume_flux: float
    plan_args: dict[str, Any]
    metadata: Callable[[str, dict[str, Any]], dict[str, Any]]

    def run(self, plan_name: str, md: dict[str, Any] | None = None, **plan_args: Any):
        """The scan's run: metadata read now, ``plan_args`` added to the plan's, ``md`` merged
        last; returns the run's uid."""
        _md = self.metadata(plan_name, {**self.plan_args, **plan_args})
        _md.update(md or {})
        plan = tomo_scan(self.devices, self.sched, md=_md, resume_flux=self.resume_flux)
        return (yield from plan)


def check_resume_flux(min_flux: float, resume_flux: float) -> None:
    """ValueError unless ``min_flux <= resume_flux <= 1.5``."""
    if not min_flux <= resume_flux <= 1.5:
        raise ValueError(f"resume_flux={resume_flux!r} must lie in [min_flux={min_flux}, 1.5]")


def prepare_ct_scan(
    ct,
    *,
    num_angles: int | None = None,
    exposure_s: float = 5.0,
    frames_per_projection: int = 4,
    flat_every: int = 100,
    num_darks: int = 10,
    num_flats: int = 10,
    angles_deg: Sequence[float] | None = None,
    darks_after: bool = True,
    min_flux: float = 0.8,
    resume_flux: float = 0.95,
    tilt_deg: float | None = None,
) -> PreparedScan:
    """Validate :func:`ct_scan`'s arguments (ValueError naming the parameter, the value and the
    range; nothing moves) and prepare the run. ``tilt_deg`` (laminography): the tilt the scan
    will run at, for the out-of-beam check (default: the present tilt)."""
    spec = ct.twin.detector.spec
    sched = plan_ct(
        num_angles=num_angles,
        exposure_s=exposure_s,
        frames_per_projection=frames_per_projection,
        flat_every=flat_every,
        num_darks=num_darks,
        num_flats=num_flats,
        angles_deg=angles_deg,
        darks_after=darks_after,
        min_flux=min_flux,
        exposure_range_s=spec.exposure_range_s,
        max_frames=spec.max_frames,
    )
    check_resume_flux(min_flux, resume_flux)
    # raises now if the specimen cannot leave the beam
    if tilt_deg is None:
        ct.manipulator.out_of_beam_x()
    else:
        ct.manipulator.out_of_beam_x(tilt_deg=tilt_deg)
    counts = sched.frame_count()
    check_disk_space(
        ct.flatpanel.data_dir,
        n_images=sum(counts.values()),
        image_shape=ct.twin.detector.shape(ct.twin.binning),
    )
    plan_args = {
        "ct": repr(type(ct).__name__),
        "num_angles": sched.num_angles,
        "exposure_s": exposure_s,
        "frames_per_projection": frames_per_projection,
        "flat_every": flat_every,
        "num_darks": num_darks,
        "num_flats": num_flats,
        "angles_deg": None if angles_deg is None else list(sched.angles_deg),
        "darks_after": darks_after,
        "min_flux": min_flux,
        "resume_flux": resume_flux,
    }

    def metadata(plan_name: str, args: dict[str, Any]) -> dict[str, Any]:
        # read when the run starts (after a laminography tilt has moved), not now
        return run_metadata(
            plan_name, args, ct.flatpanel.name, ct.rotation.name, sched, _start_metadata(ct, sched)
        )

    return PreparedScan(ct_devices(ct), sched, float(resume_flux), plan_args, metadata)


def run_metadata(
    plan_name: str,
    args: dict[str, Any],
    detector: str,
    rotation: str,
    sched: CTSchedule,
    instrument_md: dict[str, Any],
) -> dict[str, Any]:
    """The start document of a tomography run (any instrument): the bluesky keys (plan_name,
    plan_args, detectors, motors, num_points, hints) and the instrument's own."""
    _md = {
        "plan_name": plan_name,
        "plan_args": args,
        "detectors": [detector],
        "motors": [rotation],
        "num_points": sched.num_angles,
        "hints": {"dimensions": [([rotation], "primary")]},
        "wall_start": time.time(),
    }
    _md.update(instrument_md)
    return _md


def tomo_scan(dev: ScanDevices, sched: CTSchedule, *, md: dict[str, Any], resume_flux: float):
    """Open one run and acquire ``sched`` on the instrument ``dev`` describes (the generic CT).

    Darks (if any), a flat block before every ``flat_every``-th projection and after the last,
    reference projections where the schedule asks for them, the projections with dropout
    handling (a projection that saw the flux fall below ``min_flux`` is dropped; the plan
    waits for ``resume_flux``, takes a fresh flat block and repeats the angle), darks after.
    Validation is the caller's (every argument is checked before this runs).

    Parameters
    ----------
    dev : ScanDevices
    sched : CTSchedule
    md : dict
        The start document's metadata (plan name, arguments, instrument, geometry).
    resume_flux : float
        Relative flux to wait for after a dropout.

    Yields
    ------
    Msg
        Bluesky messages; returns the run's uid.
    """

    @bpp.stage_decorator([dev.detector])
    @bpp.run_decorator(md=md)
    def inner():
        yield from bps.mv(dev.exposure, sched.exposure_s, dev.frames, sched.frames_per_projection)
        yield from bps.mv(dev.flat_block, -1, dev.projection_index, -1)
        yield from dark_block(dev, sched.num_darks)
        blocks = set(sched.flat_blocks_before)
        refs = set(sched.references_before)
        i = 0
        while i < sched.num_angles:
            if i in refs:
                yield from reference_projection(dev, sched.reference_angle_deg)
                refs.discard(i)
            if i in blocks:
                yield from flat_block(dev, sched.num_flats)
                blocks.discard(i)
            saved = yield from projection(dev, i, sched.angles_deg[i], min_flux=sched.min_flux)
            if saved:
                i += 1
                continue
            yield from wait_for_flux(dev, resume_flux=resume_flux)
            yield from flat_block(dev, sched.num_flats)
        if refs:
            yield from reference_projection(dev, sched.reference_angle_deg)
        yield from flat_block(dev, sched.num_flats)
        if sched.darks_after:
            yield from dark_block(dev, sched.num_darks)

    return (yield from inner())
