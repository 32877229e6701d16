"""Nano-CT with the X-ray microscope: the CT plan of :mod:`nanoct.plans.ct` on the EPMA source
and the Medipix2.

The paper's outlook (conclusions): computed tomography with the EPMA source, "to make nano-CT
in a simple laboratory setup possible". At 200 nA the source gives about 0.06 counted photons
per Medipix2 pixel and second (the twin, calibrated to the paper's 30 photons/mm^2/s at 1 m),
so a nano-CT is photon-starved and long: minutes per projection, hours per scan.

:func:`nano_ct_scan` is :func:`~nanoct.plans.ct.ct_scan`'s schedule, run by the same code
(:func:`~nanoct.plans.ct.tomo_scan` and its stubs) on the microscope's devices
(:func:`microscope_devices`). What differs:

- the detector counts photons: every image is ``frames_per_projection`` shutters of
  ``exposure_s`` each, counts *summed* (uint32; the flat panel averages);
- bright fields (stream ``flat``, specimen moved out of the cone) every ``flat_every``
  projections, as the CT's flat blocks;
- darks are optional (``num_darks=0`` by default): the Medipix2 has no dark current. With
  ``num_darks > 0`` they are taken with the electron beam off, in stream ``dark`` with
  ``image_key`` 2, like the CT's: above the noise edge they count nothing, below it they
  measure each pixel's electronic-noise hits (the reconstruction then subtracts them as the
  background of the counting model);
- the drift reference. The CT measures the focal spot's drift on a fixed wire; the
  microscope has no such wire (nothing fixed is in its 60 um field). Its focal spot shifts
  in time (the paper's conclusions) and the whole image moves by ``-s (M - 1)``. The plan
  therefore returns to one angle (the first of the scan) with every flat block and takes a
  *reference projection* there (stream ``reference``, same exposure). The reconstruction
  registers each reference against the first by phase correlation
  (:mod:`nanoct.recon.reference_drift`) and interpolates the image shift in time to every
  projection. This measures what matters (the image shift of the specimen itself, spot
  drift and stage drift together) with nothing added to the instrument; its limits are the
  counting noise of one reference image and drift faster than the reference interval, which
  interpolation cannot follow. The source's ``spot_x``/``spot_y`` readings are the twin's
  truth (no real EPMA reports them) and are never used for the correction; tests compare
  against them.

The schedule's validation, the flat interleaving, the dropout handling and the metadata are
the CT's; the start document describes the microscope (``instrument: "xray_microscope"``, the
Medipix2 as ``counting``, the FOD as ``sod_mm``) so :func:`nanoct.recon.pipeline.reconstruct_ct`
reconstructs the run with the right geometry and chooses the Poisson-aware method at low
counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bluesky import plan_stubs as bps

from nanoct.devices.microscope import XRayMicroscope
from nanoct.devices.storage import check_disk_space
from nanoct.plans.ct import (
    CTSchedule,
    PreparedScan,
    ScanDevices,
    check_resume_flux,
    plan_ct,
    run_metadata,
    schedule_metadata,
)

__all__ = ["DEFAULT_EXPOSURE_S", "microscope_devices", "nano_ct_scan", "prepare_nano_ct_scan"]

#: Default shutter time of one frame, s: about 3.5 counts per pixel in the open beam at
#: 200 nA and 30 kV (the twin's 0.058 counts/s), a realistic photon-starved projection.
DEFAULT_EXPOSURE_S = 60.0
#: Shortest shutter time the plan accepts, s (assumption; the Medipix2's shutter is set by
#: an external signal and can be far shorter).
MIN_EXPOSURE_S = 1e-3


def microscope_devices(mic: XRayMicroscope) -> ScanDevices:
    """The X-ray microscope as the generic CT stubs see it: the Medipix2 (counts summed over
    ``num_frames`` shutters of ``acquire_time_s``), the EPMA source (darks with the electron
    beam off), the manipulator's x for bright fields, and the relative beam current (the
    Faraday-cup reading against its setpoint) as the flux."""
    src = mic.source

    def relative_flux(readings: dict) -> float:
        setpoint = float(readings[f"{src.name}_current_na"]["value"])
        return float(readings[f"{src.name}_beam_current"]["value"]) / setpoint

    def flux_now():
        on = yield from bps.rd(src.beam_current)
        return float(on) / float(src.current_na.get())

    return ScanDevices(
        detector=mic.medipix,
        exposure=mic.medipix.acquire_time_s,
        frames=mic.medipix.num_frames,
        source=src,
        rotation=mic.rotation,
        lateral=mic.manipulator.x,
        out_of_beam=mic.manipulator.out_of_beam_x,
        block_beam=(src.beam_on, False),
        unblock_beam=(src.beam_on, True),
        monitors=(),
        projection_index=mic.projection_index,
        flat_block=mic.flat_block,
        waiter=mic.waiter,
        relative_flux=relative_flux,
        flux_now=flux_now,
    )


def _estimate_duration_s(mic: XRayMicroscope, sched: CTSchedule) -> dict[str, float]:
    """Instrument time the scan should take: per projection, flat block, dark block,
    reference, in all (s), from the twin's timing (shutters, read-outs, moves)."""
    tw = mic.twin
    step = 360.0 / max(sched.num_angles, 1)
    image = tw.acquisition_time_s(sched.exposure_s, sched.frames_per_projection)
    proj = image + tw.move_time_s("angle_deg", tw.angle_deg + step)
    out_x = tw.out_of_beam_x_mm()
    flat = 2 * tw.move_time_s("axis_x_mm", out_x) + sched.num_flats * image
    dark = sched.num_darks * image
    ref = image + 2 * tw.move_time_s("angle_deg", tw.angle_deg + 180.0)
    total = (
        sched.num_angles * proj
        + len(sched.flat_blocks_before) * flat
        + len(sched.references_before) * ref
        + dark * (2 if sched.darks_after else 1)
    )
    return {
        "per_projection_s": proj,
        "per_flat_block_s": flat,
        "per_dark_block_s": dark,
        "per_reference_s": ref,
        "total_s": total,
    }


def _start_metadata(mic: XRayMicroscope, sched: CTSchedule) -> dict[str, Any]:
    """Everything a reconstruction needs, read from the microscope's devices now (what only
    the twin knows, specimen, seed, time scale, instabilities, from ``mic.twin``)."""
    tw = mic.twin
    rows, cols = mic.medipix.shape
    md: dict[str, Any] = {
        "instrument": "xray_microscope",
        "specimen": tw.specimen.name,
        "seed": tw.seed,
        "time_scale": tw.clock.time_scale,
        **schedule_metadata(sched),
        "geometry": {
            # the focus-object distance is the CT's source-object distance
            "sod_mm": mic.geometry.fod.get(),
            "fod_mm": mic.geometry.fod.get(),
            "sdd_mm": mic.geometry.sdd.get(),
            "odd_mm": mic.geometry.odd.get(),
            "magnification": mic.geometry.magnification.get(),
            "voxel_size_um": mic.geometry.pixel_size.get(),
            "detector_pixel_um": mic.geometry.detector_pixel_size.get(),
            "binning": 1,
            "detector_shape": [rows, cols],
            # the Medipix2 is centred on the beam axis in the twin; a real installation
            # records its measured offsets here
            "detector_offset_u_mm": 0.0,
            "detector_offset_v_mm": 0.0,
            "axis_x_mm": mic.manipulator.x.position,
            "axis_y_mm": mic.manipulator.y.position,
            "wobble_urad": mic.rotation.wobble.get(),
            "rotation_sense": "counter-clockwise seen from above (right-handed about +y)",
            "tilt_deg": mic.rotation.tilt.position,
        },
        "source": {
            "model": "Cameca SX100 with transmission target",
            "voltage_kv": mic.source.voltage_kv.get(),
            "current_na": mic.source.current_na.get(),
            "spot_size_um": mic.source.spot_size.get(),
        },
        "detector": {
            "model": "Medipix2",
            "counting": True,
            "counter_depth": mic.medipix.counter_depth.get(),
            "thl_kev": mic.medipix.thl_kev.get(),
            "thh_kev": mic.medipix.thh_kev.get(),
            "n_masked": mic.medipix.n_masked.get(),
            "image_dtype": "uint32 (counts summed over the frames of one image)",
        },
        "reference_wire": None,
        "drift_reference": None,
        "instabilities": asdict(tw.instabilities),
        "expected_duration_s": _estimate_duration_s(mic, sched),
    }
    if sched.references_before:
        md["drift_reference"] = {
            "method": "reference projections registered by phase correlation",
            "stream": "reference",
            "angle_deg": sched.reference_angle_deg,
        }
    return md


def prepare_nano_ct_scan(
    mic: XRayMicroscope,
    *,
    num_angles: int | None = None,
    exposure_s: float = DEFAULT_EXPOSURE_S,
    frames_per_projection: int = 1,
    flat_every: int = 20,
    num_darks: int = 0,
    num_flats: int = 2,
    angles_deg: Sequence[float] | None = None,
    darks_after: bool = True,
    drift_reference: bool = True,
    reference_every: int | None = None,
    min_flux: float = 0.8,
    resume_flux: float = 0.95,
    tilt_deg: float | None = None,
) -> PreparedScan:
    """Validate :func:`nano_ct_scan`'s arguments (ValueError naming the parameter, the value
    and the allowed range; nothing moves) and prepare the run; ``tilt_deg``: the laminography
    tilt it will run at (for the out-of-beam check; default the present tilt)."""
    if not isinstance(mic, XRayMicroscope):
        raise ValueError(f"mic={mic!r:.80} must be the X-ray microscope (xray_microscope())")
    if not isinstance(drift_reference, bool):
        raise ValueError(f"drift_reference={drift_reference!r} must be True or False")
    spec = mic.twin.detector.spec
    n_default = 360 if num_angles is None and angles_deg is None else num_angles
    every_ref = None
    if drift_reference:
        every_ref = flat_every if reference_every is None else reference_every
    sched = plan_ct(
        num_angles=n_default,
        exposure_s=exposure_s,
        frames_per_projection=frames_per_projection,
        flat_every=flat_every,
        num_darks=num_darks,
        num_flats=num_flats,
        angles_deg=angles_deg,
        darks_after=darks_after,
        min_flux=min_flux,
        exposure_range_s=(MIN_EXPOSURE_S, spec.max_shutter_s),
        max_frames=mic.twin.MAX_FRAMES,
        reference_every=every_ref,
    )
    check_resume_flux(min_flux, resume_flux)
    mic.manipulator.out_of_beam_x(tilt_deg=tilt_deg)  # raises now if it cannot leave the beam
    check_disk_space(
        mic.medipix.data_dir,
        n_images=sum(sched.frame_count().values()),
        image_shape=mic.medipix.shape,
        dtype="uint32",
    )
    plan_args = {
        "mic": repr(type(mic).__name__),
        "num_angles": sched.num_angles,
        "exposure_s": exposure_s,
        "frames_per_projection": frames_per_projection,
        "flat_every": flat_every,
        "num_darks": num_darks,
        "num_flats": num_flats,
        "angles_deg": None if angles_deg is None else list(sched.angles_deg),
        "darks_after": darks_after,
        "drift_reference": drift_reference,
        "reference_every": reference_every,
        "min_flux": min_flux,
        "resume_flux": resume_flux,
    }

    def metadata(plan_name: str, args: dict[str, Any]) -> dict[str, Any]:
        # read when the run starts (after a laminography tilt has moved), not now
        return run_metadata(
            plan_name, args, mic.medipix.name, mic.rotation.name, sched, _start_metadata(mic, sched)
        )

    return PreparedScan(microscope_devices(mic), sched, float(resume_flux), plan_args, metadata)


def nano_ct_scan(
    mic: XRayMicroscope,
    *,
    num_angles: int | None = None,
    exposure_s: float = DEFAULT_EXPOSURE_S,
    frames_per_projection: int = 1,
    flat_every: int = 20,
    num_darks: int = 0,
    num_flats: int = 2,
    angles_deg: Sequence[float] | None = None,
    darks_after: bool = True,
    drift_reference: bool = True,
    reference_every: int | None = None,
    min_flux: float = 0.8,
    resume_flux: float = 0.95,
    md: dict[str, Any] | None = None,
):
    """Nano-CT with the EPMA source and the Medipix2: the CT schedule of
    :func:`~nanoct.plans.ct.ct_scan` with summed counting frames, bright fields every
    ``flat_every`` projections and reference projections as the drift reference.

    Parameters
    ----------
    mic : XRayMicroscope
        The instrument (:func:`nanoct.devices.xray_microscope`); beam voltage, current and
        thresholds as set (the paper: 200 nA).
    num_angles : int, optional
        Projections over 360 deg; default 360. Give either this or ``angles_deg``.
    exposure_s : float
        Shutter time of one Medipix2 frame, s, in [0.001, 1e5]. Default 60 s (~3.5 counts
        per pixel in the open beam at 200 nA).
    frames_per_projection : int
        Frames whose counts are summed into each image (projections, bright fields, darks,
        references), in [1, 10000].
    flat_every : int
        Bright fields (specimen out of the cone) before every ``flat_every``-th projection and
        at the start and the end.
    num_darks : int
        Images with the electron beam off per dark block (before, and after if
        ``darks_after``); default 0 (no dark current; see the module docstring).
    num_flats : int
        Bright fields per block (>= 1).
    angles_deg : sequence of float, optional
        Explicit, strictly increasing angles in [-360, 720] deg.
    darks_after : bool
        A second dark block at the end (when ``num_darks > 0``).
    drift_reference : bool
        Take reference projections at the first angle (stream ``reference``) for the drift
        correction (default True).
    reference_every : int, optional
        A reference before every ``reference_every``-th projection and after the last;
        default ``flat_every``.
    min_flux, resume_flux : float
        A projection during which the beam current fell below ``min_flux`` of its setpoint is
        dropped; the plan waits until it is back above ``resume_flux``, takes fresh bright
        fields and repeats the angle.
    md : dict, optional
        Metadata merged into the start document.

    Yields
    ------
    Msg
        Bluesky messages; returns the run's uid.
    """
    prep = prepare_nano_ct_scan(
        mic,
        num_angles=num_angles,
        exposure_s=exposure_s,
        frames_per_projection=frames_per_projection,
        flat_every=flat_every,
        num_darks=num_darks,
        num_flats=num_flats,
        angles_deg=angles_deg,
        darks_after=darks_after,
        drift_reference=drift_reference,
        reference_every=reference_every,
        min_flux=min_flux,
        resume_flux=resume_flux,
    )
    return (yield from prep.run("nano_ct_scan", md))
