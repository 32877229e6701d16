"""Laminography: the CT schedule with the rotation axis tilted against the beam.

A flat specimen (a chip, a thin section) cannot be turned through a CT: edge-on, the beam's
path through it grows without bound. Laminography tilts the rotation axis by ``tilt_deg`` out
of the plane perpendicular to the beam (the specimen lies flat on the stage, its normal along
the axis) and turns it through a full revolution; the rays then cross it at ``90 - tilt`` deg
to its normal at every angle, and its in-plane structure is measured completely
(:mod:`nanoct.recon.laminography`).

:func:`laminography_scan` serves both instruments with the code of their CT plans: it
validates everything (the tilt against the cradle's range and the specimen's clearance, then
the scan exactly as :func:`~nanoct.plans.ct.ct_scan` or
:func:`~nanoct.plans.nano_ct.nano_ct_scan` would), moves ``rotation.tilt``, runs the generic
CT schedule (:func:`~nanoct.plans.ct.tomo_scan`: darks, interleaved flat blocks, dropout
handling, the drift reference) and puts the tilt back, also when the scan fails or is
aborted. The start document is read from the devices after the tilt move, so its
``geometry["tilt_deg"]`` is the tilt the scan ran at (sign convention of
:class:`~nanoct.recon.laminography.LaminoGeometry`: positive moves the axis' upper end towards
the detector); :func:`nanoct.recon.pipeline.reconstruct_ct` reconstructs such a run with the
laminographic filtered backprojection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from nanoct.devices.instrument import SubMicronCT
from nanoct.devices.microscope import XRayMicroscope
from nanoct.plans.ct import prepare_ct_scan
from nanoct.plans.nano_ct import prepare_nano_ct_scan

__all__ = ["laminography_scan"]


def _check_tilt(instrument, tilt_deg: Any) -> float:
    if isinstance(tilt_deg, bool) or not isinstance(tilt_deg, int | float):
        lo, hi = instrument.rotation.tilt.limits
        raise ValueError(f"tilt_deg={tilt_deg!r} must be a number in [{lo}, {hi}] deg")
    instrument.rotation.tilt.check_value(tilt_deg)  # soft limits, then the twin's clearance
    return float(tilt_deg)


def laminography_scan(
    instrument: SubMicronCT | XRayMicroscope,
    tilt_deg: float,
    *,
    num_angles: int | None = None,
    exposure_s: float | None = None,
    frames_per_projection: int | None = None,
    flat_every: int | None = None,
    num_darks: int | None = None,
    num_flats: int | None = None,
    angles_deg: Sequence[float] | None = None,
    darks_after: bool | None = None,
    min_flux: float | None = None,
    resume_flux: float | None = None,
    drift_reference: bool | None = None,
    md: dict[str, Any] | None = None,
):
    """Laminography on the sub-um CT or the X-ray microscope: a full turn about an axis
    tilted by ``tilt_deg``; the tilt is restored at the end.

    Parameters
    ----------
    instrument : SubMicronCT or XRayMicroscope
        :func:`nanoct.devices.sub_um_ct` or :func:`nanoct.devices.xray_microscope`.
    tilt_deg : float
        Tilt of the rotation axis out of the plane perpendicular to the beam, deg, within the
        tilt cradle's range (+-60 deg); 0 is an ordinary CT. Typical laminography: 20-40 deg.
    num_angles, exposure_s, frames_per_projection, flat_every, num_darks, num_flats,
    angles_deg, darks_after, min_flux, resume_flux
        As for the instrument's CT plan (:func:`~nanoct.plans.ct.ct_scan` on the CT,
        :func:`~nanoct.plans.nano_ct.nano_ct_scan` on the microscope); None takes that plan's
        default. Angles must cover a full turn for the filtered backprojection.
    drift_reference : bool, optional
        Microscope only: reference projections for the drift correction (default True); the
        CT's drift reference is its wire.
    md : dict, optional
        Metadata merged into the start document.

    Yields
    ------
    Msg
        Bluesky messages; returns the run's uid.
    """
    options = {
        k: v
        for k, v in {
            "num_angles": num_angles,
            "exposure_s": exposure_s,
            "frames_per_projection": frames_per_projection,
            "flat_every": flat_every,
            "num_darks": num_darks,
            "num_flats": num_flats,
            "angles_deg": angles_deg,
            "darks_after": darks_after,
            "min_flux": min_flux,
            "resume_flux": resume_flux,
        }.items()
        if v is not None
    }
    if isinstance(instrument, SubMicronCT):
        if drift_reference is not None:
            raise ValueError(
                f"drift_reference={drift_reference!r} applies to the X-ray microscope only; the "
                "sub-um CT's drift reference is its wire (leave it None)"
            )
        tilt = _check_tilt(instrument, tilt_deg)
        prep = prepare_ct_scan(instrument, tilt_deg=tilt, **options)
    elif isinstance(instrument, XRayMicroscope):
        tilt = _check_tilt(instrument, tilt_deg)
        if drift_reference is not None:
            options["drift_reference"] = drift_reference
        prep = prepare_nano_ct_scan(instrument, tilt_deg=tilt, **options)
    else:
        raise ValueError(
            f"instrument={instrument!r:.80} must be the sub-um CT (sub_um_ct()) or the X-ray "
            "microscope (xray_microscope())"
        )
    tilt_axis = instrument.rotation.tilt
    tilt_before = tilt_axis.position

    def scan():
        yield from bps.mv(tilt_axis, tilt)
        return (yield from prep.run("laminography_scan", md, tilt_deg=tilt))

    def restore():
        if tilt_axis.position != tilt_before:
            yield from bps.mv(tilt_axis, tilt_before)

    return (yield from bpp.finalize_wrapper(scan(), restore()))
