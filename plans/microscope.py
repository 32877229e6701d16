"""Plans of the X-ray microscope (EPMA source, Medipix2 photon-counting detector).

- :func:`threshold_scan`: counts versus the lower threshold per pixel (dark: the noise peaks
  and each pixel's noise edge; with beam: the S-curves of the spectrum);
- :func:`equalize_thresholds`: 3-bit trims that align the pixels' noise edges, measured with
  two threshold scans; the trim map goes into the run and onto the chip;
- :func:`radiograph`: an image with exposure, frames summed, bright-field (specimen out) and
  optional dark correction;
- :func:`calibrate_magnification`: object-space pixel size and magnification from the 6 um
  glass fibres;
- :func:`measure_flux`: photons/mm^2/s at 1 m from open-beam counts, corrected for the
  detector's efficiency and the distance.

Each opens one run: images in streams ``dark`` (beam off, ``image_key`` 2), ``flat`` (specimen
out, 1), ``primary`` (0) or the scan's own streams; the results in stream ``analysis`` (one
event: scalars and 1-D arrays inline, maps as external HDF5 data through
:class:`~nanoct.devices.array_recorder.ArrayRecorder`), and returned to the caller as a dict.
Every parameter is validated before the run opens; the instrument's state (beam, thresholds,
specimen position, rotation) is restored at the end, also when the plan fails.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from ophyd import Signal

from nanoct.devices.array_recorder import ArrayRecorder
from nanoct.devices.medipix2 import IMAGE_KEYS
from nanoct.devices.microscope import XRayMicroscope
from nanoct.recon.microscope_analysis import (
    choose_trims,
    excess_nonuniformity,
    fibre_pitch_px,
    flux_at_distance,
    noise_edges,
)

__all__ = [
    "calibrate_magnification",
    "equalize_thresholds",
    "measure_flux",
    "radiograph",
    "set_thresholds",
    "threshold_scan",
]

logger = logging.getLogger(__name__)

MAX_SCAN_POINTS = 1000


# ---- validation ----------------------------------------------------------------------------
def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value!r} must be an integer {rng}")
    return int(value)


def _check_number(name: str, value: Any, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{name}={value!r} must be a number in [{low}, {high}] {unit}")
    v = float(value)
    if not (math.isfinite(v) and low <= v <= high):
        raise ValueError(f"{name}={value!r} is outside [{low}, {high}] {unit}")
    return v


def _check_acquisition(mic: XRayMicroscope, acquire_time_s: Any, frames: Any) -> None:
    mic.twin.validate_acquisition(acquire_time_s, _check_int("frames", frames, 1))


def _check_beam(mic: XRayMicroscope, voltage_kv: Any, current_na: Any) -> None:
    mic.twin.source.validate(voltage_kv=voltage_kv, current_na=current_na)


def _check_thresholds(mic: XRayMicroscope, thl_kev: Any, thh_kev: Any) -> tuple[float, float]:
    thl = mic.twin.thl_kev if thl_kev is None else thl_kev
    thh = mic.twin.thh_kev if thh_kev is None else thh_kev
    for name, v in (("thl_kev", thl), ("thh_kev", thh)):
        if isinstance(v, bool) or not isinstance(v, int | float | np.number):
            raise ValueError(f"{name}={v!r} must be a number (keV)")
    mic.twin.detector.validate(thl_kev=thl, thh_kev=thh)
    return float(thl), float(thh)


def _scan_points(mic: XRayMicroscope, start: Any, stop: Any, step: Any) -> np.ndarray:
    lo, hi = mic.twin.detector.spec.threshold_range_kev
    a = _check_number("thl_start_kev", start, lo, hi, "keV")
    b = _check_number("thl_stop_kev", stop, lo, hi, "keV")
    s = _check_number("step_kev", step, 1e-3, hi - lo, "keV")
    if not a < b:
        raise ValueError(f"thl_start_kev={start!r} must be below thl_stop_kev={stop!r}")
    n = math.floor((b - a) / s + 1e-9) + 1
    if not 3 <= n <= MAX_SCAN_POINTS:
        raise ValueError(
            f"the scan from {a} to {b} keV in steps of {s} keV has {n} points; "
            f"allowed: [3, {MAX_SCAN_POINTS}]"
        )
    if not b < mic.twin.thh_kev:
        raise ValueError(
            f"thl_stop_kev={stop!r} must be below the upper threshold thh_kev="
            f"{mic.twin.thh_kev} (the window is [THL, THH])"
        )
    return a + s * np.arange(n)


# ---- shared stubs (no runs opened or closed here) --------------------------------------------
def set_thresholds(mic: XRayMicroscope, thl_kev: float, thh_kev: float):
    """Set both thresholds, in the order that keeps ``thl < thh`` at every step (validated as
    a pair first)."""
    thl, thh = _check_thresholds(mic, thl_kev, thh_kev)
    mpx = mic.medipix
    if thl >= mpx.thh_kev.get():
        yield from bps.mv(mpx.thh_kev, thh)
        yield from bps.mv(mpx.thl_kev, thl)
    else:
        yield from bps.mv(mpx.thl_kev, thl)
        yield from bps.mv(mpx.thh_kev, thh)


def _images(mic: XRayMicroscope, stream: str, n: int, extra: tuple = ()):
    """Take ``n`` images into ``stream``; return their sum (float64 counts)."""
    acc = None
    for _ in range(n):
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([mic.medipix, mic.source, *extra], name=stream)
        img = np.asarray((yield from bps.rd(mic.medipix.image)), dtype=np.float64)
        acc = img if acc is None else acc + img
    return acc


def _darks(mic: XRayMicroscope, n: int):
    """``n`` images with the electron beam off into stream ``dark``; their sum (or None)."""
    if n <= 0:
        return None
    yield from bps.mv(mic.source.beam_on, False, mic.medipix.image_key, IMAGE_KEYS["dark"])
    dark = yield from _images(mic, "dark", n)
    yield from bps.mv(mic.source.beam_on, True, mic.medipix.image_key, IMAGE_KEYS["projection"])
    return dark


def _flats(mic: XRayMicroscope, n: int, stream: str = "flat"):
    """``n`` bright fields (specimen moved out of the cone) into ``stream``; their sum."""
    if n <= 0:
        return None
    x_in = yield from bps.rd(mic.manipulator.x)
    yield from bps.mv(
        mic.manipulator.x,
        mic.manipulator.out_of_beam_x(),
        mic.medipix.image_key,
        IMAGE_KEYS["flat"],
    )
    flat = yield from _images(mic, stream, n)
    yield from bps.mv(mic.manipulator.x, x_in, mic.medipix.image_key, IMAGE_KEYS["projection"])
    return flat


def _record(mic: XRayMicroscope, results: dict[str, Any], maps: dict[str, np.ndarray] | None):
    """One event in stream ``analysis``: scalars and 1-D arrays inline, 2-D maps external."""
    objs: list = []
    for key, value in results.items():
        v = np.asarray(value)
        if v.dtype.kind in "biuf" and v.ndim <= 1:
            objs.append(Signal(name=key, value=v if v.ndim else v.item()))
    recorders = []
    for key, arr in (maps or {}).items():
        a = np.asarray(arr)
        rec = ArrayRecorder(key, shape=a.shape, dtype=a.dtype, data_dir=mic.data_dir)
        rec.put(a)
        recorders.append(rec)
    if objs or recorders:
        yield from bps.trigger_and_read([*objs, *recorders], name="analysis")
    for rec in recorders:
        rec.close()


def _settings(mic: XRayMicroscope, acquire_time_s: float, frames: int):
    yield from bps.mv(mic.medipix.acquire_time_s, acquire_time_s, mic.medipix.num_frames, frames)


def _snapshot(mic: XRayMicroscope) -> dict[str, Any]:
    return {
        "beam_on": mic.source.beam_on.get(),
        "voltage_kv": mic.source.voltage_kv.get(),
        "current_na": mic.source.current_na.get(),
        "thl_kev": mic.medipix.thl_kev.get(),
        "thh_kev": mic.medipix.thh_kev.get(),
        "x": mic.manipulator.x.position,
        "angle": mic.rotation.position,
        "acquire_time_s": mic.medipix.acquire_time_s.get(),
        "frames": mic.medipix.num_frames.get(),
    }


def _restore(mic: XRayMicroscope, s: dict[str, Any]):
    """Put the instrument back as it was before the plan."""
    yield from bps.mv(
        mic.source.beam_on,
        s["beam_on"],
        mic.source.voltage_kv,
        s["voltage_kv"],
        mic.source.current_na,
        s["current_na"],
        mic.medipix.image_key,
        IMAGE_KEYS["projection"],
    )
    yield from set_thresholds(mic, s["thl_kev"], s["thh_kev"])
    yield from _settings(mic, s["acquire_time_s"], s["frames"])
    if mic.manipulator.x.position != s["x"]:
        yield from bps.mv(mic.manipulator.x, s["x"])
    if mic.rotation.position != s["angle"]:
        yield from bps.mv(mic.rotation, s["angle"])


def _md(mic: XRayMicroscope, plan_name: str, args: dict, md: dict | None, **extra) -> dict:
    out = {
        "plan_name": plan_name,
        "plan_args": args,
        "instrument": "xray_microscope",
        "detectors": [mic.medipix.name],
        "specimen": mic.twin.specimen.name,
        "geometry": {
            "fod_mm": mic.geometry.fod.get(),
            "sdd_mm": mic.geometry.sdd.get(),
            "odd_mm": mic.geometry.odd.get(),
            "magnification": mic.geometry.magnification.get(),
            "object_pixel_um": mic.geometry.pixel_size.get(),
            "detector_pixel_um": mic.geometry.detector_pixel_size.get(),
        },
        "source": {
            "model": "Cameca SX100 with transmission target",
            "voltage_kv": mic.source.voltage_kv.get(),
            "current_na": mic.source.current_na.get(),
        },
        "detector": {"model": "Medipix2", "counter_depth": mic.medipix.counter_depth.get()},
        **extra,
    }
    out.update(md or {})
    return out


def _wrap(mic: XRayMicroscope, inner, snapshot: dict[str, Any]):
    """Stage the detector, run ``inner`` and restore the instrument whatever happens."""
    return bpp.finalize_wrapper(bpp.stage_wrapper(inner, [mic.medipix]), _restore(mic, snapshot))


def _scan(mic: XRayMicroscope, points: np.ndarray, stream: str):
    """Trigger the detector at every lower threshold of ``points``; return the counts cube."""
    cube = np.empty((points.size, *mic.medipix.shape), dtype=np.float64)
    for k, thl in enumerate(points):
        yield from bps.checkpoint()
        yield from bps.mv(mic.medipix.thl_kev, float(thl))
        yield from bps.trigger_and_read([mic.medipix], name=stream)
        cube[k] = yield from bps.rd(mic.medipix.image)
    return cube


# ---- threshold scan ----------------------------------------------------------------------------
def threshold_scan(
    mic: XRayMicroscope,
    *,
    thl_start_kev: float = -10.0,
    thl_stop_kev: float = 10.0,
    step_kev: float = 0.5,
    acquire_time_s: float = 1e-3,
    frames: int = 1,
    beam: bool = False,
    md: dict | None = None,
):
    """Counts versus the global lower threshold, per pixel (S-curves and noise edges).

    Parameters
    ----------
    mic : XRayMicroscope
    thl_start_kev, thl_stop_kev, step_kev : float
        The scanned lower thresholds (keV above the baseline; inside the DAC range and below
        the upper threshold).
    acquire_time_s : float
        Shutter time per point, s (> 0). The default 1 ms keeps the noise peak (~1e6 hits/s at
        the baseline) well below the 13-bit counter depth.
    frames : int
        Frames summed per point.
    beam : bool
        False (default): the electron beam is off and the scan measures each pixel's noise
        peak; its centre is the pixel's noise edge. True: the beam is on and the counts are
        the integral spectrum above the threshold (S-curves).
    md : dict, optional
        Merged into the start document.

    Returns
    -------
    dict
        ``thl_kev`` (n,), ``mean_counts`` (n,) over unmasked pixels, and for a dark scan
        ``noise_edge_kev`` (256, 256; NaN where not measurable), ``noise_width_kev`` (256, 256),
        ``noise_edge_mean_kev``, ``noise_edge_spread_kev`` (standard deviation over the
        measured pixels) and ``n_measured``. Scalars and 1-D results are also in stream
        ``analysis``; the maps are stored there as external arrays.
    """
    points = _scan_points(mic, thl_start_kev, thl_stop_kev, step_kev)
    _check_acquisition(mic, acquire_time_s, frames)
    if not isinstance(beam, bool):
        raise ValueError(f"beam={beam!r} must be True or False")
    args = {
        "thl_start_kev": thl_start_kev,
        "thl_stop_kev": thl_stop_kev,
        "step_kev": step_kev,
        "acquire_time_s": acquire_time_s,
        "frames": frames,
        "beam": beam,
    }
    snap = _snapshot(mic)
    _md_ = _md(
        mic,
        "threshold_scan",
        args,
        md,
        motors=[mic.medipix.thl_kev.name],
        num_points=int(points.size),
        hints={"dimensions": [([mic.medipix.thl_kev.name], "primary")]},
    )
    results: dict[str, Any] = {}

    @bpp.run_decorator(md=_md_)
    def inner():
        yield from _settings(mic, acquire_time_s, frames)
        key = IMAGE_KEYS["projection"] if beam else IMAGE_KEYS["dark"]
        yield from bps.mv(mic.source.beam_on, beam, mic.medipix.image_key, key)
        cube = yield from _scan(mic, points, "primary")
        results.update(_scan_results(mic, points, cube, dark=not beam))
        yield from _record(
            mic,
            {k: v for k, v in results.items() if np.ndim(v) <= 1},
            {k: v for k, v in results.items() if np.ndim(v) == 2},
        )

    yield from _wrap(mic, inner(), snap)
    return results


def _scan_results(mic, points: np.ndarray, cube: np.ndarray, *, dark: bool) -> dict[str, Any]:
    good = ~mic.medipix.mask.get()
    out: dict[str, Any] = {
        "thl_kev": points,
        "mean_counts": cube[:, good].mean(axis=1),
    }
    if dark:
        edge, width = noise_edges(points, cube)
        edge[~good] = np.nan
        measured = np.isfinite(edge)
        out.update(
            noise_edge_kev=edge.astype(np.float32),
            noise_width_kev=width.astype(np.float32),
            noise_edge_mean_kev=float(np.nanmean(edge)) if measured.any() else math.nan,
            noise_edge_spread_kev=float(np.nanstd(edge)) if measured.any() else math.nan,
            noise_width_mean_kev=float(np.nanmean(width)) if measured.any() else math.nan,
            n_measured=int(measured.sum()),
        )
    return out


# ---- equalisation ------------------------------------------------------------------------
def equalize_thresholds(
    mic: XRayMicroscope,
    *,
    thl_start_kev: float = -10.0,
    thl_stop_kev: float = 10.0,
    step_kev: float = 0.5,
    acquire_time_s: float = 1e-3,
    target_kev: float | None = None,
    verify: bool = True,
    md: dict | None = None,
):
    """Equalise the lower thresholds: choose each pixel's 3-bit trim so the noise edges align.

    Two dark threshold scans, with every lower trim at 0 (stream ``trim_0``) and at 7
    (``trim_7``), give each pixel's noise edge at both ends of its trim range
    (:func:`~nanoct.recon.microscope_analysis.noise_edges`); the trim that brings the edge
    nearest the common target is interpolated and rounded
    (:func:`~nanoct.recon.microscope_analysis.choose_trims`). Pixels no trim can bring there
    (or that show no noise peak) are masked. The trim map and the mask are loaded into the
    detector and stored in stream ``analysis`` (maps ``trim_low`` and ``mask``, external),
    with the target, the edge spreads and, with ``verify``, a third scan with the new trims
    (stream ``verify``) and the spread it measures. Only the lower discriminator is
    equalised: its dispersion decides the noise and the flat field; the upper threshold is
    best kept far above the spectrum.

    Parameters
    ----------
    thl_start_kev, thl_stop_kev, step_kev, acquire_time_s : float
        The scans (as :func:`threshold_scan`); they must cover every pixel's noise peak at
        both trims (default -10...10 keV for a 1.3 keV dispersion and 1 keV trim steps).
    target_kev : float, optional
        Common noise edge to aim at (default: the median mid-range edge).
    verify : bool
        Measure the result with a third scan.

    Returns
    -------
    dict
        ``trim_low`` (uint8, 256 x 256), ``mask`` (bool), ``target_kev``, ``step_kev`` (edge
        shift per trim LSB), ``spread_trim_0_kev``, ``spread_trim_7_kev``,
        ``predicted_spread_kev``, ``n_masked``, ``n_unreachable`` and with ``verify``
        ``measured_spread_kev`` and ``noise_edge_kev`` (the verified map).
    """
    points = _scan_points(mic, thl_start_kev, thl_stop_kev, step_kev)
    _check_acquisition(mic, acquire_time_s, 1)
    if target_kev is not None:
        lo, hi = mic.twin.detector.spec.threshold_range_kev
        _check_number("target_kev", target_kev, lo, hi, "keV")
    args = {
        "thl_start_kev": thl_start_kev,
        "thl_stop_kev": thl_stop_kev,
        "step_kev": step_kev,
        "acquire_time_s": acquire_time_s,
        "target_kev": target_kev,
        "verify": verify,
    }
    mpx = mic.medipix
    snap = _snapshot(mic)
    old_trims, old_mask = mpx.trim_low.get(), mpx.mask.get()
    max_trim = mic.twin.detector.spec.max_trim
    results: dict[str, Any] = {}
    done: list[bool] = []

    @bpp.run_decorator(md=_md(mic, "equalize_thresholds", args, md))
    def inner():
        yield from _settings(mic, acquire_time_s, 1)
        yield from bps.mv(mic.source.beam_on, False, mpx.image_key, IMAGE_KEYS["dark"])
        edges = {}
        for trim in (0, max_trim):
            yield from bps.mv(mpx.trim_low, np.full(mpx.shape, trim, dtype=np.uint8))
            cube = yield from _scan(mic, points, f"trim_{trim}")
            edges[trim], _ = noise_edges(points, cube)
            edges[trim][old_mask] = np.nan
        choice = choose_trims(
            edges[0],
            edges[max_trim],
            trim_a=0,
            trim_b=max_trim,
            max_trim=max_trim,
            target_kev=target_kev,
        )
        mask = old_mask | choice.unreachable
        yield from bps.mv(mpx.trim_low, choice.trims, mpx.mask, mask)
        results.update(
            trim_low=choice.trims,
            mask=mask,
            target_kev=choice.target_kev,
            step_kev=choice.step_kev,
            spread_trim_0_kev=float(np.nanstd(edges[0])),
            spread_trim_7_kev=float(np.nanstd(edges[max_trim])),
            predicted_spread_kev=choice.predicted_spread_kev,
            n_masked=int(mask.sum()),
            n_unreachable=int(choice.unreachable.sum()),
        )
        if verify:
            cube = yield from _scan(mic, points, "verify")
            edge, _ = noise_edges(points, cube)
            edge[mask] = np.nan
            results.update(
                measured_spread_kev=float(np.nanstd(edge)),
                noise_edge_kev=edge.astype(np.float32),
            )
        maps = {"trim_low": choice.trims, "mask": mask.astype(np.uint8)}
        if verify:
            maps["noise_edge_kev"] = results["noise_edge_kev"]
        yield from _record(mic, {k: v for k, v in results.items() if np.ndim(v) == 0}, maps)
        done.append(True)

    def _undo():
        if not done:  # failed or aborted half way: the chip gets its old trims back
            yield from bps.mv(mpx.trim_low, old_trims, mpx.mask, old_mask)

    yield from bpp.finalize_wrapper(_wrap(mic, inner(), snap), _undo())
    logger.info(
        "equalised: noise-edge spread %.3f keV predicted, %d pixels masked",
        results["predicted_spread_kev"],
        results["n_masked"],
    )
    return results


# ---- radiograph --------------------------------------------------------------------------
def _check_common(mic, acquire_time_s, frames, voltage_kv, current_na, thl_kev, thh_kev):
    _check_acquisition(mic, acquire_time_s, frames)
    _check_beam(mic, voltage_kv, current_na)
    _check_thresholds(mic, thl_kev, thh_kev)


def _apply_beam_and_thresholds(mic, voltage_kv, current_na, thl_kev, thh_kev):
    if voltage_kv is not None:
        yield from bps.mv(mic.source.voltage_kv, voltage_kv)
    if current_na is not None:
        yield from bps.mv(mic.source.current_na, current_na)
    if thl_kev is not None or thh_kev is not None:
        thl, thh = _check_thresholds(mic, thl_kev, thh_kev)
        yield from set_thresholds(mic, thl, thh)
    yield from bps.mv(mic.source.beam_on, True)


def _transmission(image: np.ndarray, flat: np.ndarray, dark: np.ndarray | None) -> np.ndarray:
    img = image if dark is None else image - dark
    den = flat if dark is None else flat - dark
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, img / np.where(den > 0, den, 1.0), np.nan).astype(np.float32)


def radiograph(
    mic: XRayMicroscope,
    *,
    acquire_time_s: float = 60.0,
    frames: int = 1,
    num_images: int = 1,
    num_flats: int = 1,
    num_darks: int = 0,
    voltage_kv: float | None = None,
    current_na: float | None = None,
    thl_kev: float | None = None,
    thh_kev: float | None = None,
    md: dict | None = None,
):
    """A radiograph of the specimen, bright-field corrected.

    Parameters
    ----------
    acquire_time_s : float
        Shutter time per frame, s (> 0).
    frames : int
        Frames summed per image (each frame's counter saturates at the counter depth on its
        own; the sum does not).
    num_images, num_flats, num_darks : int
        Images of the specimen (stream ``primary``), bright fields with the specimen moved out
        of the cone (``flat``; 0: no correction) and darks with the beam off (``dark``; a
        counting detector above its noise edge reads 0, so none are needed by default).
    voltage_kv, current_na : float, optional
        Source settings for this radiograph (default: as set).
    thl_kev, thh_kev : float, optional
        Detector thresholds for this radiograph (default: as set).

    Returns
    -------
    dict
        ``image`` (summed counts of the specimen images), ``flat``, ``dark`` (or None),
        ``transmission`` (image / flat scaled by their numbers, dark subtracted; NaN where
        the flat is empty, e.g. masked pixels), ``mean_counts``, ``mean_flat_counts``,
        ``flat_nonuniformity`` (relative, beyond Poisson) and ``saturated_pixels``. The
        transmission map and the scalars are in stream ``analysis``.
    """
    _check_common(mic, acquire_time_s, frames, voltage_kv, current_na, thl_kev, thh_kev)
    _check_int("num_images", num_images, 1)
    _check_int("num_flats", num_flats, 0)
    _check_int("num_darks", num_darks, 0)
    if num_flats:
        mic.manipulator.out_of_beam_x()
    args = {
        "acquire_time_s": acquire_time_s,
        "frames": frames,
        "num_images": num_images,
        "num_flats": num_flats,
        "num_darks": num_darks,
        "voltage_kv": voltage_kv,
        "current_na": current_na,
        "thl_kev": thl_kev,
        "thh_kev": thh_kev,
    }
    snap = _snapshot(mic)
    results: dict[str, Any] = {}

    @bpp.run_decorator(md=_md(mic, "radiograph", args, md))
    def inner():
        yield from _settings(mic, acquire_time_s, frames)
        yield from _apply_beam_and_thresholds(mic, voltage_kv, current_na, thl_kev, thh_kev)
        dark = yield from _darks(mic, num_darks)
        flat = yield from _flats(mic, num_flats)
        image = yield from _images(
            mic, "primary", num_images, (mic.manipulator, mic.rotation, mic.geometry)
        )
        sat = yield from bps.rd(mic.medipix.saturated_pixels)
        mask = mic.medipix.mask.get()
        results.update(
            image=image,
            flat=flat,
            dark=dark,
            mean_counts=float(image[~mask].mean() / num_images),
            saturated_pixels=int(sat),
        )
        maps = {}
        if flat is not None:
            d = None if dark is None else dark / num_darks
            t = _transmission(image / num_images, flat / num_flats, d)
            results.update(
                transmission=t,
                mean_flat_counts=float(flat[~mask].mean() / num_flats),
                flat_nonuniformity=excess_nonuniformity(flat, mask),
            )
            maps["transmission"] = t
        yield from _record(mic, {k: v for k, v in results.items() if np.ndim(v) == 0}, maps)

    yield from _wrap(mic, inner(), snap)
    return results


# ---- magnification ----------------------------------------------------------------------
def calibrate_magnification(
    mic: XRayMicroscope,
    *,
    fibre_diameter_um: float = 6.0,
    angle_deg: float = 0.0,
    acquire_time_s: float = 600.0,
    frames: int = 1,
    num_flats: int = 1,
    current_na: float | None = None,
    md: dict | None = None,
):
    """Object-space pixel size and magnification from a row of glass fibres of known diameter.

    The fibres (the paper's ~6 um glass fibres, Fig. 9; the twin's ``'fibres'`` specimen) lie
    side by side, touching, with their axes vertical; ``angle_deg`` is the rotation at which
    the row faces the beam. The bright-field-corrected radiograph is averaged along the
    fibres into a profile; the fibres' centres are located (symmetric absorption maxima,
    insensitive to the symmetric edge fringes of phase contrast) and their period in pixels is
    the fibres' mean diameter:
    ``pixel_size = fibre_diameter_um / period_px``, ``magnification = detector pixel /
    pixel_size`` (:func:`~nanoct.recon.microscope_analysis.fibre_pitch_px`).

    Returns
    -------
    dict
        ``object_pixel_um``, ``magnification``, ``pitch_px``, ``n_fibres``, ``centres_px``,
        ``profile`` and, for comparison, ``nominal_object_pixel_um`` read from the geometry.
        All are in stream ``analysis``.
    """
    d = _check_number("fibre_diameter_um", fibre_diameter_um, 0.05, 1000.0, "um")
    if isinstance(angle_deg, bool) or not isinstance(angle_deg, int | float):
        raise ValueError(f"angle_deg={angle_deg!r} must be a finite number")
    mic.twin.validate_axis("angle_deg", angle_deg)
    _check_common(mic, acquire_time_s, frames, None, current_na, None, None)
    _check_int("num_flats", num_flats, 1)
    mic.manipulator.out_of_beam_x()
    args = {
        "fibre_diameter_um": fibre_diameter_um,
        "angle_deg": angle_deg,
        "acquire_time_s": acquire_time_s,
        "frames": frames,
        "num_flats": num_flats,
        "current_na": current_na,
    }
    snap = _snapshot(mic)
    results: dict[str, Any] = {}

    @bpp.run_decorator(md=_md(mic, "calibrate_magnification", args, md))
    def inner():
        yield from _settings(mic, acquire_time_s, frames)
        yield from _apply_beam_and_thresholds(mic, None, current_na, None, None)
        yield from bps.mv(mic.rotation, float(angle_deg))
        flat = yield from _flats(mic, num_flats)
        image = yield from _images(mic, "primary", 1, (mic.manipulator, mic.rotation, mic.geometry))
        t = _transmission(image, flat / num_flats, None)
        profile = np.nanmean(t, axis=0)
        pitch, centres = fibre_pitch_px(profile)
        det_um = yield from bps.rd(mic.geometry.detector_pixel_size)
        nominal = yield from bps.rd(mic.geometry.pixel_size)
        pixel_um = d / pitch
        results.update(
            object_pixel_um=pixel_um,
            magnification=det_um / pixel_um,
            pitch_px=pitch,
            n_fibres=int(centres.size),
            centres_px=centres,
            profile=profile,
            nominal_object_pixel_um=float(nominal),
        )
        yield from _record(mic, results, {"transmission": t})

    yield from _wrap(mic, inner(), snap)
    logger.info(
        "magnification %.1f: %.4f um per pixel (%d fibres, period %.2f px)",
        results["magnification"],
        results["object_pixel_um"],
        results["n_fibres"],
        results["pitch_px"],
    )
    return results


# ---- flux ----------------------------------------------------------------------------------
def measure_flux(
    mic: XRayMicroscope,
    *,
    acquire_time_s: float = 100.0,
    frames: int = 1,
    num_images: int = 1,
    num_darks: int = 1,
    current_na: float | None = None,
    voltage_kv: float | None = None,
    md: dict | None = None,
):
    """Photon flux of the source: photons/mm^2/s at 1 m, from open-beam counts.

    With the specimen out of the cone, the mean counts per pixel and second (over unmasked
    pixels that count nothing in the dark: noisy pixels are left out; darks are subtracted)
    are divided by the pixel area and by the detector's efficiency for the source spectrum
    (sensor absorption, threshold window, air path:
    :meth:`~nanoct.devices.medipix2.Medipix2.detection_efficiency` with
    :meth:`~nanoct.devices.epma.EPMASource.emission_spectrum`), and scaled to 1 m by the
    inverse-square law (:func:`~nanoct.recon.microscope_analysis.flux_at_distance`).
    The paper measured about 30 photons/mm^2/s at 1 m with 200 nA (section 2.1).

    Returns
    -------
    dict
        ``photons_per_mm2_s_at_1m``, ``photons_per_mm2_s_at_detector``,
        ``counts_per_pixel_s``, ``efficiency``, ``current_na``, ``voltage_kv``,
        ``flux_per_na_at_1m``, ``n_pixels_used``, ``saturated_pixels``; all in stream
        ``analysis``.
    """
    _check_common(mic, acquire_time_s, frames, voltage_kv, current_na, None, None)
    _check_int("num_images", num_images, 1)
    _check_int("num_darks", num_darks, 0)
    mic.manipulator.out_of_beam_x()
    args = {
        "acquire_time_s": acquire_time_s,
        "frames": frames,
        "num_images": num_images,
        "num_darks": num_darks,
        "current_na": current_na,
        "voltage_kv": voltage_kv,
    }
    snap = _snapshot(mic)
    results: dict[str, Any] = {}

    @bpp.run_decorator(md=_md(mic, "measure_flux", args, md))
    def inner():
        yield from _settings(mic, acquire_time_s, frames)
        yield from _apply_beam_and_thresholds(mic, voltage_kv, current_na, None, None)
        dark = yield from _darks(mic, num_darks)
        open_beam = yield from _flats(mic, num_images, stream="primary")
        sat = yield from bps.rd(mic.medipix.saturated_pixels)
        good = ~mic.medipix.mask.get()
        if dark is not None:
            good &= dark == 0
        if not good.any():
            raise RuntimeError("no pixel is free of dark counts: raise the lower threshold")
        shutter = acquire_time_s * frames
        rate = float(open_beam[good].mean()) / num_images / shutter
        energies, weights = mic.source.emission_spectrum()
        air = yield from bps.rd(mic.geometry.air_path)
        eff = mic.medipix.detection_efficiency(energies, weights, air_path_mm=air)
        sdd = yield from bps.rd(mic.geometry.sdd)
        pixel_mm = (yield from bps.rd(mic.medipix.pixel_size)) * 1e-3
        at_1m, at_det = flux_at_distance(
            rate, exposure_s=1.0, pixel_mm=pixel_mm, efficiency=eff, detector_distance_mm=sdd
        )
        current = yield from bps.rd(mic.source.current_na)
        results.update(
            photons_per_mm2_s_at_1m=at_1m,
            photons_per_mm2_s_at_detector=at_det,
            counts_per_pixel_s=rate,
            efficiency=eff,
            current_na=float(current),
            voltage_kv=float((yield from bps.rd(mic.source.voltage_kv))),
            flux_per_na_at_1m=at_1m / float(current),
            n_pixels_used=int(good.sum()),
            saturated_pixels=int(sat),
        )
        if sat:
            logger.warning("%d pixels saturated during the flux measurement", sat)
        yield from _record(mic, results, None)

    yield from _wrap(mic, inner(), snap)
    logger.info(
        "flux %.1f photons/mm^2/s at 1 m (%.0f nA, %.0f kV)",
        results["photons_per_mm2_s_at_1m"],
        results["current_na"],
        results["voltage_kv"],
    )
    return results
