"""The CT reconstruction chain of the paper as one pure function, :func:`reconstruct_ct`.

Raw frames in, volume out; no I/O, no tiled, no bluesky (``nanoct.reconstruct`` reads a run
from Tiled and calls this). The chain:

1. dark subtraction and flat-field normalisation with the flat blocks that bracket each
   projection in time (:func:`nanoct.recon.preprocess.flat_field`), then ``-log``;
2. the reference wire's shadow located in every dark-subtracted projection (its arms lie in a
   detector corner the specimen never covers; the regions come from the run's
   ``reference_wire`` metadata) unless the positions are given, e.g. from the run's
   ``wire_x_px`` / ``wire_y_px`` columns. The wire is measured on dark-subtracted *raw*
   images, not on the flat-fielded ones: the flats hold the wire's shadow too (the wire is
   fixed, only the specimen leaves the beam), so after normalisation it is a difference of
   two shadows;
3. the wire motion converted to a focal-spot displacement (the wire sits at
   ``z = sdd / M_wire`` from the source) and that to the shift of the specimen's projection
   (the specimen sits at ``sod``, at another magnification: the shift is scaled by
   ``(M_s - 1) / (M_w - 1)``, not copied), see :mod:`nanoct.recon.alignment`;
4. every projection shifted back by that amount (Fourier shift, sub-pixel);
5. FDK (or FBP / SIRT) with the run's own geometry.

Conventions as in :mod:`nanoct.recon.alignment` and :mod:`nanoct.recon.fdk`: stacks are
``(angle, row, column)``, the volume ``(z, y, x)`` with ``z`` down (slice ``k`` is where
detector row ``k`` looks through the axis), attenuation in 1/mm.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from nanoct.recon import alignment, preprocess
from nanoct.recon.fbp import as_slices, fbp
from nanoct.recon.fdk import fdk
from nanoct.recon.iterative import sirt
from nanoct.recon.resolution import edge_width_10_90

__all__ = [
    "ALGORITHMS",
    "averaged_wire_profile",
    "ct_geometry",
    "measure_wire",
    "reconstruct_ct",
    "wire_profile_widths",
    "wire_regions",
]

logger = logging.getLogger(__name__)

ALGORITHMS = ("fdk", "fbp", "sirt")

Roi = tuple[slice, slice]


# --------------------------------------------------------------------------- metadata
def _number(d: Mapping, key: str, where: str) -> float:
    if key not in d or d[key] is None:
        raise ValueError(f"metadata {where} has no {key!r}: the run's geometry is incomplete")
    try:
        v = float(d[key])
    except (TypeError, ValueError):
        raise ValueError(f"metadata {where}[{key!r}]={d[key]!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"metadata {where}[{key!r}]={v!r} is not finite")
    return v


def ct_geometry(metadata: Mapping[str, Any], detector_shape: tuple[int, int] | None = None) -> dict:
    """The reconstruction geometry of a run, checked.

    Parameters
    ----------
    metadata : mapping
        A ``ct_scan`` start document (or anything with its ``"geometry"`` dict: ``sod_mm``,
        ``sdd_mm``, ``detector_pixel_um`` (after binning), ``detector_shape``, optional
        ``detector_offset_u_mm``, ``detector_offset_v_mm``, ``axis_x_mm``, ``magnification``).
    detector_shape : (int, int), optional
        Shape ``(rows, cols)`` of the images actually given; must match the metadata's.

    Returns
    -------
    dict
        ``sod_mm, sdd_mm, pixel_mm, detector_shape, offset_u_mm, offset_v_mm`` (detector
        centre relative to the central ray, with the axis's lateral displacement folded into
        ``offset_u_mm = detector_offset_u_mm - axis_x_mm * sdd / sod``), ``magnification``
        and ``center_col`` (where the axis projects, fractional column).

    Raises
    ------
    ValueError
        Geometry missing, not a number, ``sdd <= sod``, a recorded magnification that
        contradicts ``sdd / sod``, or a detector shape that contradicts the images.
    """
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a mapping (the run's start document), got {metadata!r}")
    g = metadata.get("geometry")
    if not isinstance(g, Mapping):
        raise ValueError("metadata has no 'geometry' dict: the run's geometry is missing")
    sod = _number(g, "sod_mm", "['geometry']")
    sdd = _number(g, "sdd_mm", "['geometry']")
    pixel_mm = _number(g, "detector_pixel_um", "['geometry']") * 1e-3
    if not 0 < sod < sdd:
        raise ValueError(
            f"inconsistent geometry: sod_mm={sod!r} and sdd_mm={sdd!r} must satisfy 0 < sod < sdd"
        )
    if not pixel_mm > 0:
        raise ValueError(f"inconsistent geometry: detector_pixel_um={pixel_mm * 1e3!r} must be > 0")
    mag = sdd / sod
    if g.get("magnification") is not None:
        m_rec = float(g["magnification"])
        if not math.isclose(m_rec, mag, rel_tol=1e-3):
            raise ValueError(
                f"inconsistent geometry: magnification={m_rec!r} but sdd_mm / sod_mm = {mag!r}"
            )
    shape_md = g.get("detector_shape")
    if shape_md is None and detector_shape is None:
        raise ValueError("metadata ['geometry'] has no 'detector_shape'")
    if shape_md is not None:
        shape_md = tuple(int(v) for v in shape_md)
        if detector_shape is not None and tuple(detector_shape) != shape_md:
            raise ValueError(
                f"inconsistent geometry: detector_shape={list(shape_md)} in the metadata, but "
                f"the images are {tuple(detector_shape)}"
            )
    shape = shape_md if shape_md is not None else tuple(int(v) for v in detector_shape)
    off_u = float(g.get("detector_offset_u_mm") or 0.0)
    off_v = float(g.get("detector_offset_v_mm") or 0.0)
    axis_x = float(g.get("axis_x_mm") or 0.0)
    off_u_total = off_u - axis_x * sdd / sod
    center = (shape[1] - 1) / 2.0 - off_u_total / pixel_mm
    return {
        "sod_mm": sod,
        "sdd_mm": sdd,
        "pixel_mm": pixel_mm,
        "detector_shape": shape,
        "offset_u_mm": off_u_total,
        "offset_v_mm": off_v,
        "magnification": mag,
        "center_col": center,
    }


def wire_regions(
    reference_wire: Mapping[str, Any], detector_shape: tuple[int, int]
) -> tuple[Roi, Roi]:
    """Detector regions ``(rows, cols)`` of the reference wire's vertical and horizontal arm,
    as the instrument recorded them (``reference_wire["regions"]``: ``vertical_arm`` and
    ``horizontal_arm``, each ``[[row_start, row_stop], [col_start, col_stop]]``; ``ct_scan``
    writes the regions its wire monitor measured in).

    Parameters
    ----------
    reference_wire : mapping
        The start document's ``reference_wire``.
    detector_shape : (int, int)
    """
    regions = reference_wire.get("regions")
    if not isinstance(regions, Mapping):
        raise ValueError(
            "metadata['reference_wire'] has no 'regions' (the detector regions of the wire's "
            "arms); the run was not made by ct_scan, or give wire_xy_px"
        )
    rows, cols = (int(v) for v in detector_shape)
    out = []
    for name in ("vertical_arm", "horizontal_arm"):
        try:
            (r0, r1), (c0, c1) = regions[name]
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"metadata['reference_wire']['regions'][{name!r}] must be "
                f"[[row_start, row_stop], [col_start, col_stop]], got {regions.get(name)!r}"
            ) from None
        if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
            raise ValueError(
                f"reference_wire region {name} rows {r0}:{r1}, cols {c0}:{c1} is not on the "
                f"{rows} x {cols} detector"
            )
        out.append((slice(int(r0), int(r1)), slice(int(c0), int(c1))))
    return out[0], out[1]


def _wire_z_mm(reference_wire: Mapping[str, Any], sdd_mm: float) -> float:
    m = _number(reference_wire, "magnification", "['reference_wire']")
    if not m > 1:
        raise ValueError(f"reference_wire magnification={m!r} must be > 1")
    return sdd_mm / m


# --------------------------------------------------------------------------- wire
def measure_wire(
    images: np.ndarray, regions: tuple[Roi, Roi]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wire shadow position per image: ``(x_px, y_px, width_px)``, NaN where none is seen.

    ``images`` are intensities (raw or dark-subtracted), ``(angle, row, column)``;
    see :func:`nanoct.recon.alignment.wire_track`.
    """
    vertical, horizontal = regions
    return alignment.wire_track(images, vertical, horizontal, polarity="dark")


def averaged_wire_profile(
    images: np.ndarray,
    roi: Roi,
    *,
    axis: Literal["x", "y"],
    positions_px: np.ndarray | None = None,
) -> np.ndarray:
    """The wire's shadow profile averaged over all images (the paper's Fig. 3).

    Each image's profile across the arm (the region averaged along the arm) is divided by a
    straight background fitted to its outer fifths, giving a relative transmission. With
    ``positions_px`` (the shadow's measured position in each image, full-detector pixels) each
    profile is first moved so that its shadow lies at the median position (Fourier shift):
    the average of a drifting wire is wide, that of the realigned one as narrow
    as a single projection's.

    Parameters
    ----------
    images : ndarray, shape (angle, row, column)
        Intensities (dark-subtracted).
    roi : (slice, slice)
        Region of one arm.
    axis : {'x', 'y'}
        ``'x'``: the vertical arm, profile along columns; ``'y'``: the horizontal arm, along rows.
    positions_px : ndarray, shape (angle,), optional
        Shadow positions for the realignment; NaNs are left out of the average.

    Returns
    -------
    ndarray, shape (samples,)
        Mean relative transmission across the arm (1 = background).
    """
    ax = 1 if axis == "x" else 0
    region = np.asarray(images)[:, roi[0], roi[1]].astype(np.float64)
    prof = region.mean(axis=2 - ax)  # (angle, samples)
    n, m = prof.shape
    x = np.arange(m, dtype=np.float64)
    k = max(m // 5, 2)
    sel = np.r_[0:k, m - k : m]
    keep = np.ones(n, dtype=bool)
    if positions_px is not None:
        pos = np.asarray(positions_px, dtype=np.float64)
        if pos.shape != (n,):
            raise ValueError(f"positions_px must have shape ({n},), got {pos.shape}")
        keep = np.isfinite(pos)
        ref = float(np.median(pos[keep])) if keep.any() else 0.0
    if not keep.any():
        raise ValueError("no image had a measurable wire shadow")
    rel = np.empty((int(keep.sum()), m))
    for j, i in enumerate(np.flatnonzero(keep)):
        slope, icpt = np.polyfit(x[sel], prof[i, sel], 1)
        rel[j] = prof[i] / (slope * x + icpt)
    if positions_px is not None:
        # Fourier (sinc) shift: no interpolation blur that would mask the sharpening
        shift = ref - pos[keep]
        rel = alignment.shift_projections(rel[:, None, :], shift, 0.0)[:, 0, :]
    return rel.mean(axis=0)


def wire_profile_widths(profile: np.ndarray) -> dict[str, float]:
    """Sharpness of a wire's (averaged) shadow profile: ``fwhm_px`` (full width at half
    depth) and ``edge_10_90_px`` (the 10-90 % width of its two flanks, averaged), pixels."""
    d = 1.0 - np.asarray(profile, dtype=np.float64)
    peak = int(np.argmax(d))
    fwhm = float(alignment._fwhm(d, peak))
    flanks = []
    for flank in (d[: peak + 1], d[peak:]):
        try:
            flanks.append(edge_width_10_90(flank))
        except (ValueError, IndexError):
            flanks.append(float("nan"))
    return {"fwhm_px": fwhm, "edge_10_90_px": float(np.mean(flanks))}


# --------------------------------------------------------------------------- main chain
def _as_stack(a, name: str, ndim: int = 3) -> np.ndarray:
    if a is None:
        raise ValueError(f"{name} is missing")
    arr = np.asarray(a)
    if arr.ndim == ndim - 1:
        arr = arr[None]
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be (frame, row, column), got shape {arr.shape}")
    return arr


def _vector(a, name: str, n: int) -> np.ndarray:
    if a is None:
        raise ValueError(f"{name} is missing")
    v = np.asarray(a, dtype=np.float64).ravel()
    if v.size != n:
        raise ValueError(f"{name} has {v.size} entries, expected {n}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} holds non-finite values")
    return v


def reconstruct_ct(
    projections: np.ndarray,
    angles_deg: Sequence[float] | np.ndarray,
    proj_times_s: Sequence[float] | np.ndarray,
    flats: np.ndarray,
    flat_times_s: Sequence[float] | np.ndarray,
    flat_blocks: Sequence[int] | np.ndarray | None,
    darks: np.ndarray | None,
    metadata: Mapping[str, Any],
    *,
    wire_xy_px: tuple[np.ndarray, np.ndarray] | None = None,
    drift_correction: bool = True,
    algorithm: str = "fdk",
    slices: int | slice | Sequence[int] | None = None,
    center_col: float | None = None,
    volume_shape: tuple[int, int, int] | None = None,
    voxel_mm: float | None = None,
    filter: str = "ram-lak",
    flat_method: Literal["interpolate", "nearest"] = "interpolate",
    zingers: bool = False,
    rings: bool = False,
    n_iter: int = 50,
    shift_method: Literal["fourier", "spline"] = "fourier",
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Normalise, correct the focal-spot drift and reconstruct one CT scan.

    Parameters
    ----------
    projections : ndarray, shape (angle, row, column)
        Raw projections, detector units (ADU).
    angles_deg : array_like, shape (angle,)
        Rotation angle of each projection, degrees (the twin's/stage's sense).
    proj_times_s : array_like, shape (angle,)
        Acquisition time of each projection, s (any clock shared with ``flat_times_s``).
    flats : ndarray, shape (k, row, column)
        All flat frames of the scan.
    flat_times_s : array_like, shape (k,)
        Time of each flat frame, s.
    flat_blocks : array_like of int, shape (k,), or None
        Block label of each flat (the run's ``flat_block``); None infers the blocks from times.
    darks : ndarray, shape (d, row, column), or None
        Dark frames (averaged); None subtracts nothing.
    metadata : mapping
        The run's start document: ``geometry`` (see :func:`ct_geometry`) and, for the drift
        correction, ``reference_wire`` (``row``, ``col``, ``diameter_px``, ``magnification``).
    wire_xy_px : (ndarray, ndarray), optional
        Wire shadow column (vertical arm) and row (horizontal arm) per projection, pixels;
        measured here when not given. NaNs (a frame where the wire was not found) are filled
        by linear interpolation in time.
    drift_correction : bool
        Shift every projection back by the specimen shift the wire motion implies.
    algorithm : {'fdk', 'fbp', 'sirt'}
        Cone-beam FDK (default); parallel-beam FBP row by row (an approximation for small cone
        angles, voxel = pixel at the axis); cone-beam SIRT (``n_iter`` iterations, whole volume).
    slices : int, slice or sequence of int, optional
        Volume slices (z, i.e. detector rows through the axis) to return; default all.
    center_col : float, optional
        Column onto which the rotation axis projects; overrides the metadata's axis position
        (default: ``(n_cols - 1) / 2 - offset_u / pixel`` from the geometry).
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)``; default ``(rows, cols, cols)``.
    voxel_mm : float, optional
        Voxel size; default the detector pixel seen at the axis, ``pixel * sod / sdd``.
    filter : str
        Ramp filter window for FDK/FBP.
    flat_method : {'interpolate', 'nearest'}
        Flats interpolated in time between the bracketing blocks (default) or the nearest block.
    zingers, rings : bool
        Also remove zingers (before ``-log``) and ring artefacts (after).
    n_iter : int
        SIRT iterations.
    shift_method : {'fourier', 'spline'}
        How projections are shifted (:func:`nanoct.recon.alignment.shift_projections`).
    progress : callable, optional
        Called with a stage name (``"normalise"``, ``"wire"``, ``"shift"``, ``"reconstruct"``)
        as each stage starts.

    Returns
    -------
    volume : ndarray, float32, shape (n_slices, ny, nx)
        Attenuation coefficient, 1/mm.
    info : dict
        ``geometry`` (what was used: sod, sdd, pixel, offsets, voxel, ``center_col``),
        ``algorithm``, ``slices`` (indices), ``drift_corrected``, ``wire_x_px``,
        ``wire_y_px``, ``wire_width_px`` (per projection, NaN-filled where not found),
        ``spot_shift_um`` ((2, angle): x right, y up, relative to the median),
        ``shift_px`` ((2, angle): the specimen shift in columns and rows that was undone),
        ``drift_ptp_px`` (peak-to-peak of that shift, columns and rows), ``wire_profile``
        (per arm ``'x'``/``'y'``: the averaged wire profiles ``uncorrected`` and ``corrected``
        (realigned on the measured positions) and their ``*_widths``, see
        :func:`averaged_wire_profile` and :func:`wire_profile_widths`) when a wire is in view.

    Raises
    ------
    ValueError
        No flats, lengths that do not match, geometry missing or inconsistent, drift
        correction asked for without a reference wire (in the metadata or ``wire_xy_px``),
        an unknown algorithm.
    """

    def stage(name: str) -> None:
        logger.debug("reconstruct_ct: %s", name)
        if progress is not None:
            progress(name)

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {ALGORITHMS}")
    proj = _as_stack(projections, "projections")
    n, rows, cols = proj.shape
    if n < 2:
        raise ValueError(f"projections holds {n} image(s); a CT needs at least 2")
    if flats is None or np.asarray(flats).size == 0:
        raise ValueError("no flats: the run has no flat (open-beam) images to normalise with")
    fl = _as_stack(flats, "flats")
    if fl.shape[1:] != (rows, cols):
        raise ValueError(f"flats are {fl.shape[1:]}, the projections {(rows, cols)}")
    dk = None
    if darks is not None and np.asarray(darks).size:
        dk = _as_stack(darks, "darks")
        if dk.shape[1:] != (rows, cols):
            raise ValueError(f"darks are {dk.shape[1:]}, the projections {(rows, cols)}")
    ang_deg = _vector(angles_deg, "angles_deg", n)
    pt = _vector(proj_times_s, "proj_times_s", n)
    ft = _vector(flat_times_s, "flat_times_s", fl.shape[0])
    fb = None
    if flat_blocks is not None:
        fb = np.asarray(flat_blocks).ravel()
        if fb.size != fl.shape[0]:
            raise ValueError(f"flat_blocks has {fb.size} entries for {fl.shape[0]} flats")
    geo = ct_geometry(metadata, (rows, cols))
    if center_col is not None:
        c = float(center_col)
        if not (math.isfinite(c) and 0 <= c <= cols - 1):
            raise ValueError(f"center_col={center_col!r} must lie in [0, {cols - 1}]")
        geo["center_col"] = c
        geo["offset_u_mm"] = ((cols - 1) / 2.0 - c) * geo["pixel_mm"]
    vox = geo["pixel_mm"] * geo["sod_mm"] / geo["sdd_mm"] if voxel_mm is None else float(voxel_mm)
    geo["voxel_mm"] = vox
    nz = rows if volume_shape is None else int(volume_shape[0])
    idx = as_slices(slices, nz)

    info: dict[str, Any] = {
        "algorithm": algorithm,
        "geometry": geo,
        "slices": idx,
        "drift_corrected": False,
        "flat_method": flat_method,
    }

    # ---- 1. normalisation
    stage("normalise")
    trans = preprocess.flat_field(proj, pt, fl, ft, dk, method=flat_method, flat_blocks=fb)
    if zingers:
        trans = preprocess.remove_zingers(trans)
    lines = preprocess.minus_log(trans)
    del trans
    if rings:
        lines = preprocess.remove_rings(lines)

    # ---- 2./3. the reference wire and the drift it implies
    wire_md = metadata.get("reference_wire")
    regions = None
    if isinstance(wire_md, Mapping):
        regions = wire_regions(wire_md, (rows, cols))
    raw = None
    if wire_xy_px is None and regions is not None:
        stage("wire")
        raw = preprocess.dark_subtract(proj, dk)
        wx, wy, ww = measure_wire(raw, regions)
    elif wire_xy_px is not None:
        wx = np.asarray(wire_xy_px[0], dtype=np.float64).ravel()
        wy = np.asarray(wire_xy_px[1], dtype=np.float64).ravel()
        if wx.size != n or wy.size != n:
            raise ValueError(
                f"wire_xy_px holds {wx.size} and {wy.size} positions for {n} projections"
            )
        ww = np.full(n, np.nan)
    else:
        wx = wy = ww = None
    if drift_correction and (wx is None or not isinstance(wire_md, Mapping)):
        raise ValueError(
            "drift_correction=True needs the reference wire: the metadata has no "
            "'reference_wire' (its magnification and position); pass drift_correction=False"
        )
    if wx is not None:
        ok = np.isfinite(wx) & np.isfinite(wy)
        if ok.sum() < max(2, n // 2):
            if drift_correction:
                raise ValueError(
                    f"the reference wire was found in only {int(ok.sum())} of {n} projections; "
                    "pass drift_correction=False or give wire_xy_px"
                )
        else:
            if not ok.all():
                logger.warning("wire not found in %d projections; interpolated", int((~ok).sum()))
                wx = np.interp(pt, pt[ok], wx[ok])
                wy = np.interp(pt, pt[ok], wy[ok])
            info.update(wire_x_px=wx, wire_y_px=wy, wire_width_px=ww)
            if isinstance(wire_md, Mapping):
                wire_z = _wire_z_mm(wire_md, geo["sdd_mm"])
                sx, sy = alignment.spot_shift_from_wire(
                    wx, wy, pixel_mm=geo["pixel_mm"], sdd_mm=geo["sdd_mm"], wire_z_mm=wire_z
                )
                dx, dy = alignment.specimen_shift_px(
                    sx, sy, pixel_mm=geo["pixel_mm"], sdd_mm=geo["sdd_mm"], sod_mm=geo["sod_mm"]
                )
                info.update(
                    wire_z_mm=wire_z,
                    spot_shift_um=np.vstack([sx, sy]) * 1e3,
                    shift_px=np.vstack([dx, dy]),
                    drift_ptp_px=(float(np.ptp(dx)), float(np.ptp(dy))),
                )
                if regions is not None:
                    if raw is None:
                        raw = preprocess.dark_subtract(proj, dk)
                    prof = {}
                    for axis, roi, pos in (("x", regions[0], wx), ("y", regions[1], wy)):
                        before = averaged_wire_profile(raw, roi, axis=axis)
                        after = averaged_wire_profile(raw, roi, axis=axis, positions_px=pos)
                        prof[axis] = {
                            "uncorrected": before,
                            "corrected": after,
                            "uncorrected_widths": wire_profile_widths(before),
                            "corrected_widths": wire_profile_widths(after),
                        }
                    info["wire_profile"] = prof
                # ---- 4. shift correction
                if drift_correction:
                    stage("shift")
                    lines = alignment.shift_projections(lines, -dx, -dy, method=shift_method)
                    info["drift_corrected"] = True
    del raw

    # ---- 5. reconstruction
    stage("reconstruct")
    angles = np.deg2rad(ang_deg)
    cone = {
        "sod_mm": geo["sod_mm"],
        "sdd_mm": geo["sdd_mm"],
        "pixel_mm": geo["pixel_mm"],
        "offset_u_mm": geo["offset_u_mm"],
        "offset_v_mm": geo["offset_v_mm"],
    }
    if algorithm == "fdk":
        vol = fdk(
            lines, angles, **cone, volume_shape=volume_shape, voxel_mm=vox, slices=idx,
            filter=filter,
        )  # fmt: skip
    elif algorithm == "fbp":
        if nz != rows:
            raise ValueError("algorithm='fbp' reconstructs detector rows: volume_shape[0] = rows")
        size = None if volume_shape is None else (int(volume_shape[1]), int(volume_shape[2]))
        vol = fbp(
            lines, angles, filter=filter, center_col=geo["center_col"], slices=idx, size=size,
            pixel_mm=vox,
        )  # fmt: skip
    else:
        full = sirt(
            lines, angles, geometry="cone", n_iter=n_iter, **cone, volume_shape=volume_shape,
            voxel_mm=vox,
        )  # fmt: skip
        vol = np.ascontiguousarray(full[idx])
    return vol, info
