"""Calibration plans: what resolution and stability can this scanner reach today?

- :func:`focal_spot_size`: the spot's size at the 10 % isodose level from an edge image;
- :func:`jima_resolution`: which line groups of a JIMA-like chart are resolved;
- :func:`flux_stability`: bright images over time (conditioning, TXI, parhelion);
- :func:`alignment_180`: rotation-axis position and tilt from a 0/180 deg pair;
- :func:`wire_stability`: the reference wire's shadow over time, without a specimen.

Each opens one run: darks (stream ``dark``), flats (``flat``), the measurement images
(``primary``) and the results in stream ``analysis`` (also returned to the caller as a dict,
so both the caller and Tiled hold them). Images are taken from the flat panel's latest image
(``flatpanel.image``), the way an areaDetector plugin would see them.

The analysis uses nanoct's pure resolution/alignment functions (``nanoct.recon``): the
calibration plans and the reconstruction share one implementation, as the recon issue asks;
this is the one place where plans import from recon.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from ophyd import Signal

from nanoct.devices.flatpanel import IMAGE_KEYS
from nanoct.plans.ct import _check_int
from nanoct.recon.alignment import axis_tilt, center_of_rotation_180
from nanoct.recon.illumination import parhelion_score
from nanoct.recon.resolution import (
    line_group_visibility,
    line_spread_from_edge,
    oversampled_profile,
    spot_size_from_edge,
)

__all__ = [
    "alignment_180",
    "flux_stability",
    "focal_spot_size",
    "jima_resolution",
    "wire_stability",
]

logger = logging.getLogger(__name__)


# ---- shared stubs ------------------------------------------------------------------------------
def _images(ct, stream: str, n: int, extra: tuple = ()):
    """Take ``n`` images into ``stream`` and return their mean (float64)."""
    acc = None
    for _ in range(n):
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([ct.flatpanel, ct.tube, *extra], name=stream)
        img = yield from bps.rd(ct.flatpanel.image)
        img = np.asarray(img, dtype=np.float64)
        acc = img if acc is None else acc + img
    return acc / n


def _dark_and_flat(ct, num_darks: int, num_flats: int):
    """Mean dark (shutter closed) and mean flat (specimen out), in their streams."""
    yield from bps.mv(ct.shutter, "closed", ct.flatpanel.image_key, IMAGE_KEYS["dark"])
    dark = yield from _images(ct, "dark", num_darks)
    yield from bps.mv(ct.shutter, "open")
    x_in = yield from bps.rd(ct.manipulator.x)
    yield from bps.mv(
        ct.manipulator.x, ct.manipulator.out_of_beam_x(), ct.flatpanel.image_key, IMAGE_KEYS["flat"]
    )
    flat = yield from _images(ct, "flat", num_flats)
    yield from bps.mv(ct.manipulator.x, x_in, ct.flatpanel.image_key, IMAGE_KEYS["projection"])
    return dark, flat


def _transmission(img: np.ndarray, dark: np.ndarray, flat: np.ndarray) -> np.ndarray:
    den = flat - dark
    out = np.where(den > 0, (img - dark) / np.where(den > 0, den, 1.0), 1.0)
    return out


def _store(results: dict[str, Any]):
    """Put scalar / 1-D results into stream ``analysis`` (one event)."""
    signals = []
    for key, value in results.items():
        v = np.asarray(value)
        if v.dtype.kind not in "biuf" or v.ndim > 1:
            continue
        signals.append(Signal(name=key, value=v if v.ndim else v.item()))
    if signals:
        yield from bps.trigger_and_read(signals, name="analysis")


def _check_schedule(duration_s: float, interval_s: float) -> int:
    """Number of samples of a periodic measurement; ValueError for a bad schedule."""
    if not (duration_s > 0 and 0 < interval_s <= duration_s):
        raise ValueError(
            f"need duration_s > 0 and 0 < interval_s <= duration_s, got "
            f"duration_s={duration_s!r}, interval_s={interval_s!r}"
        )
    return int(duration_s // interval_s) + 1


def _every(ct, n: int, interval_s: float, step):
    """Run ``step(k)`` (a plan) ``n`` times, ``interval_s`` of instrument time apart."""
    for k in range(n):
        t_start = yield from bps.rd(ct.waiter)
        yield from step(k)
        if k < n - 1:
            spent = (yield from bps.rd(ct.waiter)) - t_start
            yield from bps.mv(ct.waiter, max(interval_s - spent, 0.0))


def _settings(ct, exposure_s: float, frames: int):
    yield from bps.mv(ct.flatpanel.exposure_time, exposure_s, ct.flatpanel.frames_per_image, frames)


def _validate_common(ct, exposure_s, frames, num_darks, num_flats) -> None:
    ct.twin.detector.validate(exposure_s=exposure_s, frames=frames)
    _check_int("num_darks", num_darks, 1)
    _check_int("num_flats", num_flats, 1)


def _md(plan_name: str, args: dict, md: dict | None, **extra) -> dict:
    out = {
        "plan_name": plan_name,
        "plan_args": args,
        "detectors": ["flatpanel"],
        "specimen": None,
        **extra,
    }
    out.update(md or {})
    return out


# ---- focal spot ----------------------------------------------------------------------------------
def focal_spot_size(
    ct,
    *,
    sod_mm: float = 0.5073,
    sdd_mm: float | None = 500.0,
    exposure_s: float = 5.0,
    frames: int = 4,
    num_images: int = 2,
    num_darks: int = 2,
    num_flats: int = 2,
    level: float = 0.1,
    md: dict | None = None,
):
    """Focal-spot size at the ``level`` isodose from an edge imaged at high magnification.

    The sharp edge (a tungsten plate whose straight edge lies on the rotation axis) is imaged at
    ``sod_mm`` / ``sdd_mm`` (default magnification ~1000, so the detector's own blur is small
    against the spot's), flat-field corrected, averaged along the edge into an edge spread
    function; its derivative is the line spread function, whose full width at ``level`` of the
    maximum, divided by ``M - 1``, is the spot size. For a symmetric spot this is the diameter
    of the 10 % isodose contour in the direction normal to the edge.

    Relation to the standards: ASTM E1165 images the spot through a pinhole and reads its
    isodose contours directly (impractical below a few um); EN 12543-5 and ASTM E2903 evaluate,
    for mini- and micro-focus tubes, the unsharpness of an edge or wire imaged at high
    magnification, as done here. The result is the spot seen through the whole imaging chain
    (scintillator spread included); it is an upper bound of the true spot.

    Parameters
    ----------
    ct : SubMicronCT
        The instrument with the ``'edge'`` specimen mounted.
    sod_mm : float
        Source-object distance of the edge (mm); default the minimum, 0.5073 mm.
    sdd_mm : float, optional
        Source-detector distance (mm); None keeps the present one.
    exposure_s : float
        Exposure of one frame (s), within the flat panel's range.
    frames : int
        Frames averaged into each image.
    num_images : int
        Edge images averaged.
    num_darks, num_flats : int
        Images in the dark block (shutter closed) and the flat block (specimen out).
    level : float
        Isodose level in (0, 1) at which the line spread is measured (the paper: 0.1).
    md : dict, optional
        Metadata merged into the start document.

    Returns a dict with ``spot_size_um``, ``magnification``, ``lsf`` and ``esf``.
    """
    _validate_common(ct, exposure_s, frames, num_darks, num_flats)
    _check_int("num_images", num_images, 1)
    ct.twin.validate_geometry(sod_mm=sod_mm, sdd_mm=sdd_mm)
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} must lie in (0, 1)")
    z0 = ct.manipulator.z.position
    sdd0 = ct.geometry.sdd.get()
    args = {
        "sod_mm": sod_mm,
        "sdd_mm": sdd_mm,
        "exposure_s": exposure_s,
        "frames": frames,
        "num_images": num_images,
        "level": level,
    }
    _md_ = _md("focal_spot_size", args, md, specimen=ct.twin.specimen.name)
    results: dict[str, Any] = {}

    @bpp.stage_decorator([ct.flatpanel])
    @bpp.run_decorator(md=_md_)
    def inner():
        yield from _settings(ct, exposure_s, frames)
        if sdd_mm is not None:
            yield from bps.mv(ct.geometry.sdd, sdd_mm)
        yield from bps.mv(ct.manipulator.z, sod_mm)
        dark, flat = yield from _dark_and_flat(ct, num_darks, num_flats)
        img = yield from _images(ct, "primary", num_images, (ct.geometry,))
        t = _transmission(img, dark, flat)
        rows = t.shape[0]
        band = t[rows // 4 : 3 * rows // 4]
        esf = band.mean(axis=0)
        lsf = line_spread_from_edge(esf)
        peak = int(np.argmax(lsf))
        half = max(16, int(0.15 * t.shape[1]))
        window = slice(max(peak - half, 0), min(peak + half + 1, esf.size))
        pixel_um = yield from bps.rd(ct.geometry.pixel_size)
        mag = (yield from bps.rd(ct.geometry.sdd)) / (yield from bps.rd(ct.manipulator.z))
        spot = spot_size_from_edge(esf[window], pixel_um=pixel_um, magnification=mag, level=level)
        results.update(
            spot_size_um=spot,
            magnification=mag,
            level=level,
            esf=esf[window],
            lsf=line_spread_from_edge(esf[window]),
        )
        yield from _store(results)
        yield from bps.mv(ct.manipulator.z, z0, ct.geometry.sdd, sdd0)

    yield from inner()
    logger.info("focal spot at the %.0f %% isodose: %.3f um", 100 * level, results["spot_size_um"])
    return results


# ---- JIMA chart ------------------------------------------------------------------------
def jima_resolution(
    ct,
    *,
    sod_mm: float | None = None,
    exposure_s: float = 5.0,
    frames: int = 4,
    num_images: int = 2,
    num_darks: int = 2,
    num_flats: int = 2,
    md: dict | None = None,
):
    """Which line groups of the mounted JIMA-like chart are resolved (lines counted).

    For every group of 6 lines, the chart's lines run at a small angle to the detector columns
    (the chart is mounted tilted, see :func:`nanoct.devices.sim.specimens.jima_chart`), so the
    rows sample the lines at different phases: the profile across the lines is formed from all
    pixels of the group's region binned at a quarter pixel (the slanted-edge method of
    ISO 12233, applied to line groups). A group is resolved when exactly 6 separate minima are
    found at the expected line positions; the finest resolved group is the detail
    recognisability. Returns per-group ``widths_um``, ``resolved``, ``lines_found``,
    ``modulation`` and the ``detail_recognisability_um``.

    Parameters
    ----------
    ct : SubMicronCT
        The instrument with the ``'jima'`` chart mounted.
    sod_mm : float, optional
        Source-object distance of the chart (mm); None keeps the present one.
    exposure_s : float
        Exposure of one frame (s), within the flat panel's range.
    frames : int
        Frames averaged into each image.
    num_images : int
        Chart images averaged.
    num_darks, num_flats : int
        Images in the dark block (shutter closed) and the flat block (specimen out).
    md : dict, optional
        Metadata merged into the start document.
    """
    from nanoct.devices.sim.specimens import JIMA_WIDTHS_UM, jima_layout

    _validate_common(ct, exposure_s, frames, num_darks, num_flats)
    _check_int("num_images", num_images, 1)
    if sod_mm is not None:
        ct.twin.validate_geometry(sod_mm=sod_mm)
    chart = ct.twin.specimen
    if not chart.name.startswith("jima"):
        raise ValueError(
            f"jima_resolution needs the JIMA chart mounted; specimen is {chart.name!r}"
        )
    tilt_rad = float(chart.metadata["tilt_rad"])
    z0 = ct.manipulator.z.position
    args = {"sod_mm": sod_mm, "exposure_s": exposure_s, "frames": frames, "num_images": num_images}
    results: dict[str, Any] = {}

    @bpp.stage_decorator([ct.flatpanel])
    @bpp.run_decorator(md=_md("jima_resolution", args, md, specimen=chart.name))
    def inner():
        yield from _settings(ct, exposure_s, frames)
        if sod_mm is not None:
            yield from bps.mv(ct.manipulator.z, sod_mm)
        dark, flat = yield from _dark_and_flat(ct, num_darks, num_flats)
        img = yield from _images(ct, "primary", num_images, (ct.geometry,))
        t = _transmission(img, dark, flat)
        sdd = yield from bps.rd(ct.geometry.sdd)
        sod = yield from bps.rd(ct.manipulator.z)
        pixel_mm = (yield from bps.rd(ct.geometry.pixel_size)) * 1e-3
        mag = sdd / sod
        rows, cols = t.shape
        found, resolved, modulation = [], [], []
        for group in jima_layout(tilt_rad):
            # the group's centre and extent on the detector (rows grow downwards)
            cu = group["center_um"][0] * 1e-3 * mag / pixel_mm + (cols - 1) / 2
            cv = (rows - 1) / 2 - group["center_um"][1] * 1e-3 * mag / pixel_mm
            half_w = group["half_extent_um"][0] * 1e-3 * mag / pixel_mm
            half_h = group["half_extent_um"][1] * 1e-3 * mag / pixel_mm * 0.8
            r0, r1 = int(cv - half_h), int(cv + half_h) + 1
            c0, c1 = int(cu - half_w), int(cu + half_w) + 1
            if r0 < 0 or c0 < 0 or r1 > rows or c1 > cols or r1 - r0 < 3:
                found.append(0)
                resolved.append(False)
                modulation.append(0.0)
                continue
            x_px, prof = oversampled_profile(
                t[r0:r1, c0:c1], angle_rad=tilt_rad, centre=(cv - r0, cu - c0)
            )
            vis = line_group_visibility(
                x_px * pixel_mm * 1e3 / mag, prof, line_width_um=group["width_um"]
            )
            found.append(vis.lines_found)
            resolved.append(vis.resolved)
            modulation.append(vis.modulation)
        widths = np.array(JIMA_WIDTHS_UM)
        ok = np.array(resolved, dtype=bool)
        results.update(
            widths_um=widths,
            resolved=ok.astype(int),
            lines_found=np.array(found),
            modulation=np.array(modulation),
            detail_recognisability_um=float(widths[ok].min()) if ok.any() else float("nan"),
            voxel_size_um=pixel_mm * 1e3 / mag,
        )
        yield from _store(results)
        if sod_mm is not None:
            yield from bps.mv(ct.manipulator.z, z0)

    yield from inner()
    return results


# ---- flux stability --------------------------------------------------------------------
def flux_stability(
    ct,
    *,
    duration_s: float = 3600.0,
    interval_s: float = 300.0,
    exposure_s: float = 5.0,
    frames: int = 1,
    smooth_px: float = 8.0,
    md: dict | None = None,
):
    """Bright images every ``interval_s`` for ``duration_s`` (instrument time), specimen out.

    Reports the mean flux of each image relative to the first (conditioning, TXI), and the
    difference between consecutive bright images: its large-scale structure (relative
    difference less its mean, smoothed over ``smooth_px``, root mean square) is the
    ``parhelion_score`` -- the secondary focal spot changing the illumination (Fig. 4).

    Parameters
    ----------
    ct : SubMicronCT
    duration_s : float
        How long to watch, in instrument time (s).
    interval_s : float
        Time between bright images (s), in (0, duration_s].
    exposure_s : float
        Exposure of one frame (s), within the flat panel's range.
    frames : int
        Frames averaged into each image.
    smooth_px : float
        Gaussian smoothing (px) of the difference images before the parhelion score.
    md : dict, optional
        Metadata merged into the start document.
    """
    n = _check_schedule(duration_s, interval_s)
    ct.twin.detector.validate(exposure_s=exposure_s, frames=frames)
    x0 = ct.manipulator.x.position
    results: dict[str, Any] = {}

    @bpp.stage_decorator([ct.flatpanel])
    @bpp.run_decorator(
        md=_md(
            "flux_stability",
            {
                "duration_s": duration_s,
                "interval_s": interval_s,
                "exposure_s": exposure_s,
                "frames": frames,
            },
            md,
        )
    )
    def inner():
        yield from _settings(ct, exposure_s, frames)
        yield from bps.mv(ct.shutter, "closed", ct.flatpanel.image_key, IMAGE_KEYS["dark"])
        dark = yield from _images(ct, "dark", 2)
        yield from bps.mv(ct.shutter, "open")
        yield from bps.mv(
            ct.manipulator.x,
            ct.manipulator.out_of_beam_x(),
            ct.flatpanel.image_key,
            IMAGE_KEYS["flat"],
        )
        times, means, scores, prev = [], [], [], []

        def sample(_k):
            img = (yield from _images(ct, "primary", 1, (ct.waiter,))) - dark
            rows, cols = img.shape
            roi = img[rows // 4 : 3 * rows // 4, cols // 4 : 3 * cols // 4]
            times.append((yield from bps.rd(ct.flatpanel.twin_time)))
            means.append(float(roi.mean()))
            if prev:  # large-scale change of the illumination (one implementation)
                scores.append(parhelion_score(prev[0], img, smooth_px=smooth_px)[0])
            prev[:] = [img]

        yield from _every(ct, n, interval_s, sample)
        means_rel = np.array(means) / means[0]
        results.update(
            time_s=np.array(times),
            flux_relative=means_rel,
            parhelion_score=np.array(scores),
            max_flux_deviation=float(np.max(np.abs(means_rel - 1.0))),
        )
        yield from _store(results)
        yield from bps.mv(ct.manipulator.x, x0, ct.flatpanel.image_key, IMAGE_KEYS["projection"])

    yield from inner()
    return results


# ---- rotation axis ---------------------------------------------------------------------
def alignment_180(
    ct,
    *,
    exposure_s: float = 5.0,
    frames: int = 2,
    num_darks: int = 2,
    num_flats: int = 2,
    md: dict | None = None,
):
    """Rotation-axis position and tilt from projections at 0 and 180 deg.

    Returns ``center_col_px`` (column of the axis' projection; the detector centre is
    ``(cols - 1) / 2``), ``offset_px`` from the centre, ``axis_offset_mm`` (the manipulator x
    correction at the axis: offset times pixel over magnification) and ``tilt_deg``.

    Parameters
    ----------
    ct : SubMicronCT
    exposure_s : float
        Exposure of one frame (s), within the flat panel's range.
    frames : int
        Frames averaged into each image.
    num_darks, num_flats : int
        Images in the dark block (shutter closed) and the flat block (specimen out).
    md : dict, optional
        Metadata merged into the start document.
    """
    _validate_common(ct, exposure_s, frames, num_darks, num_flats)
    results: dict[str, Any] = {}

    @bpp.stage_decorator([ct.flatpanel])
    @bpp.run_decorator(
        md=_md(
            "alignment_180",
            {"exposure_s": exposure_s, "frames": frames},
            md,
            specimen=ct.twin.specimen.name,
        )
    )
    def inner():
        yield from _settings(ct, exposure_s, frames)
        dark, flat = yield from _dark_and_flat(ct, num_darks, num_flats)
        proj = []
        for angle in (0.0, 180.0):
            yield from bps.mv(ct.rotation, angle)
            img = yield from _images(ct, "primary", 1, (ct.rotation,))
            proj.append(-np.log(np.clip(_transmission(img, dark, flat), 1e-6, None)))
        cols = proj[0].shape[1]
        centre = float(center_of_rotation_180(proj[0], proj[1]))
        tilt_rad, _ = axis_tilt(proj[0], proj[1])
        pixel_mm = (yield from bps.rd(ct.geometry.pixel_size)) * 1e-3
        mag = yield from bps.rd(ct.geometry.magnification)
        offset = centre - (cols - 1) / 2
        results.update(
            center_col_px=centre,
            offset_px=offset,
            axis_offset_mm=offset * pixel_mm / mag,
            tilt_deg=float(np.degrees(tilt_rad)),
        )
        yield from _store(results)
        yield from bps.mv(ct.rotation, 0.0)

    yield from inner()
    return results


# ---- reference wire without a specimen -----------------------------------------------------------
def wire_stability(
    ct,
    *,
    duration_s: float = 3600.0,
    interval_s: float = 120.0,
    exposure_s: float = 5.0,
    frames: int = 1,
    md: dict | None = None,
):
    """The reference wire's shadow every ``interval_s`` for ``duration_s``, specimen out of the
    beam: the focal spot's (and the wire mount's) stability on its own. Returns the wire
    positions (px), their drift (max - min) and the implied spot motion (um).

    Parameters
    ----------
    ct : SubMicronCT
        The instrument with its reference wire mounted.
    duration_s : float
        How long to watch, in instrument time (s).
    interval_s : float
        Time between images (s), in (0, duration_s].
    exposure_s : float
        Exposure of one frame (s), within the flat panel's range.
    frames : int
        Frames averaged into each image.
    md : dict, optional
        Metadata merged into the start document.
    """
    from nanoct.recon.alignment import spot_shift_from_wire

    n = _check_schedule(duration_s, interval_s)
    ct.twin.detector.validate(exposure_s=exposure_s, frames=frames)
    if ct.twin.wire is None:
        raise ValueError("wire_stability needs the reference wire mounted (wire=True)")
    x0 = ct.manipulator.x.position
    results: dict[str, Any] = {}

    @bpp.stage_decorator([ct.flatpanel])
    @bpp.run_decorator(
        md=_md("wire_stability", {"duration_s": duration_s, "interval_s": interval_s}, md)
    )
    def inner():
        yield from _settings(ct, exposure_s, frames)
        yield from bps.mv(ct.manipulator.x, ct.manipulator.out_of_beam_x())
        xs, ys, ts = [], [], []

        def sample(_k):
            yield from bps.checkpoint()
            reading = yield from bps.trigger_and_read([ct.flatpanel, ct.wire, ct.tube])
            xs.append(reading["wire_x_px"]["value"])
            ys.append(reading["wire_y_px"]["value"])
            ts.append(reading["flatpanel_twin_time"]["value"])

        yield from _every(ct, n, interval_s, sample)
        x, y = np.array(xs), np.array(ys)
        wire = ct.twin.wire_projection()
        sx, sy = spot_shift_from_wire(
            x,
            y,
            pixel_mm=(yield from bps.rd(ct.geometry.pixel_size)) * 1e-3,
            sdd_mm=(yield from bps.rd(ct.geometry.sdd)),
            wire_z_mm=ct.twin.sdd_mm / wire["magnification"],
            reference="first",
        )
        results.update(
            time_s=np.array(ts),
            wire_x_px=x,
            wire_y_px=y,
            drift_x_px=float(np.ptp(x)),
            drift_y_px=float(np.ptp(y)),
            spot_x_um=sx * 1e3,
            spot_y_um=sy * 1e3,
        )
        yield from _store({k: v for k, v in results.items() if not k.startswith("wire_")})
        yield from bps.mv(ct.manipulator.x, x0)

    yield from inner()
    return results
