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

The same chain serves laminography and photon counting:

- **Laminography.** The run's ``geometry["tilt_deg"]`` (the rotation axis' tilt, convention
  of :class:`nanoct.recon.laminography.LaminoGeometry`) selects the tilted-axis methods of
  :mod:`nanoct.recon.laminography`: ``'fdk'`` becomes the laminographic filtered
  backprojection :func:`~nanoct.recon.laminography.fbp_lamino` (cone beam, FDK-type) and
  ``'sirt'`` :func:`~nanoct.recon.laminography.sirt_lamino`; at zero tilt nothing changes.
- **Counting detectors** (``metadata["detector"]["counting"]``, the microscope's Medipix2 in
  ``nano_ct_scan``): the counts are kept as counts. The blank scan of each projection is the
  bright fields interpolated in time (as the flats above), the background the mean dark
  (electronic-noise hits; zero without darks); dead pixels (no bright-field counts) and, without
  darks, hot pixels (bright-field counts far above the median: noise hits of a pixel whose
  threshold sits near the noise) are filled from their neighbours. At a few counts per
  pixel a bright-field block is as noisy as a projection, and dividing by it (or using it as
  the likelihood's blank, which must be the *expected* open-beam count) doubles the noise and
  biases ``-log``. The blank is therefore each block smoothed (Gaussian, ``blank_smooth_px``;
  the open beam varies slowly across the 14 mm chip) times the pixels' fixed pattern
  estimated from all bright fields of the scan together and shrunk towards 1 by its noise
  (an empirical-Bayes factor ``1 - var_noise / var_observed``: an equalised chip's few per cent
  of pixel-to-pixel efficiency are kept only when the counts resolve them). ``algorithm='auto'``
  chooses by the mean count per pixel (:func:`nanoct.recon.poisson.choose_algorithm`): below
  20 the penalised maximum-likelihood reconstruction of the counts
  (:func:`nanoct.recon.poisson.reconstruct_counts`), above it FDK (or laminographic FBP) on
  ``-log`` of the counts.
- **Drift without a wire.** Runs with reference projections (stream ``reference``) are
  corrected with the image shift measured on them (:mod:`nanoct.recon.reference_drift`),
  interpolated in time to every projection.
- ``crop_rows`` and ``bin_factor`` reduce the detector (central rows; sums of counts, means
  of line integrals) after the drift correction, before the reconstruction.
- **Phase retrieval** (optional, ``paganin_delta_beta`` and ``paganin_energy_kev``): the
  single-material Paganin filter (:mod:`nanoct.recon.phase_retrieval`) turns each normalised
  phase-contrast image into the specimen's absorption transmission before ``-log``. For counts
  it is applied to ``(y - r) / (b - r)`` and the filtered image is turned back into counts
  ``r + (b - r) T``: a low-pass of the counts, so their noise is no longer Poisson (the
  likelihood method then weights them as if it were: an approximation that the filter's noise
  suppression more than pays for at a few counts per pixel).

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
from scipy import ndimage

from nanoct.recon import alignment, poisson, preprocess
from nanoct.recon.fbp import METHODS as FBP_METHODS
from nanoct.recon.fbp import as_slices, check_progress, fbp
from nanoct.recon.fdk import fdk
from nanoct.recon.iterative import sirt
from nanoct.recon.laminography import MAX_TILT_DEG, LaminoGeometry, fbp_lamino, sirt_lamino
from nanoct.recon.phase_retrieval import paganin_filter
from nanoct.recon.reference_drift import drift_at, measure_reference_drift
from nanoct.recon.resolution import edge_width_10_90

__all__ = [
    "ALGORITHMS",
    "averaged_wire_profile",
    "blank_counts",
    "ct_geometry",
    "is_counting",
    "measure_wire",
    "reconstruct_ct",
    "wire_profile_widths",
    "wire_regions",
]

logger = logging.getLogger(__name__)

ALGORITHMS = ("fdk", "fbp", "sirt", "poisson-ml", "auto")

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
        ``detector_offset_u_mm``, ``detector_offset_v_mm``, ``axis_x_mm``, ``magnification``,
        ``tilt_deg`` (laminography; 0 when absent)).
    detector_shape : (int, int), optional
        Shape ``(rows, cols)`` of the images actually given; must match the metadata's.

    Returns
    -------
    dict
        ``sod_mm, sdd_mm, pixel_mm, detector_shape, offset_u_mm, offset_v_mm`` (detector
        centre relative to the central ray, with the axis's lateral displacement folded into
        ``offset_u_mm = detector_offset_u_mm - axis_x_mm * sdd / sod``), ``magnification``,
        ``center_col`` (where the axis projects, fractional column) and ``tilt_deg``.

    Raises
    ------
    ValueError
        Geometry missing, not a number, ``sdd <= sod``, a recorded magnification that
        contradicts ``sdd / sod``, a detector shape that contradicts the images, or a tilt
        outside [-89, 89] deg.
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
    tilt = 0.0 if g.get("tilt_deg") is None else _number(g, "tilt_deg", "['geometry']")
    if abs(tilt) > MAX_TILT_DEG:
        raise ValueError(
            f"inconsistent geometry: tilt_deg={tilt!r} is outside [-{MAX_TILT_DEG}, "
            f"{MAX_TILT_DEG}] deg"
        )
    return {
        "sod_mm": sod,
        "sdd_mm": sdd,
        "pixel_mm": pixel_mm,
        "detector_shape": shape,
        "offset_u_mm": off_u_total,
        "offset_v_mm": off_v,
        "magnification": mag,
        "center_col": center,
        "tilt_deg": tilt,
    }


def is_counting(metadata: Mapping[str, Any]) -> bool:
    """Whether the run's detector counts photons (``metadata["detector"]["counting"]``)."""
    det = metadata.get("detector") if isinstance(metadata, Mapping) else None
    return bool(isinstance(det, Mapping) and det.get("counting"))


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


# --------------------------------------------------------------------------- counting
def _smooth(image: np.ndarray, good: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing over the ``good`` pixels only (normalised convolution)."""
    w = ndimage.gaussian_filter(good.astype(np.float64), sigma_px, mode="nearest")
    v = ndimage.gaussian_filter(np.where(good, image, 0.0), sigma_px, mode="nearest")
    return v / np.maximum(w, 1e-12)


def blank_counts(
    proj_times_s: np.ndarray,
    flats: np.ndarray,
    flat_times_s: np.ndarray,
    flat_blocks: np.ndarray | None = None,
    *,
    method: Literal["interpolate", "nearest"] = "interpolate",
    smooth_px: float | None = None,
    good: np.ndarray | None = None,
) -> np.ndarray:
    """Blank-scan (bright-field) counts for every projection, interpolated in time.

    The bright fields are grouped into blocks (``flat_blocks``, or inferred from the times as
    :func:`nanoct.recon.preprocess.flat_field` does), each block averaged (and, with
    ``smooth_px``, smoothed by a Gaussian of that sigma over the ``good`` pixels), and each
    projection gets the blocks that bracket it in time, weighted linearly
    (:func:`nanoct.recon.preprocess.flat_weights`).

    Returns
    -------
    ndarray, float64, shape (angle, row, column)
        Expected open-beam counts per pixel for each projection's exposure (same exposure and
        frames as the bright fields).
    """
    pt = np.asarray(proj_times_s, dtype=np.float64).ravel()
    fl = np.asarray(flats, dtype=np.float64)
    ft = np.asarray(flat_times_s, dtype=np.float64).ravel()
    if fl.ndim != 3 or fl.shape[0] != ft.size or ft.size == 0:
        raise ValueError(f"flats {fl.shape} and flat_times_s ({ft.size}) do not match")
    labels = (
        preprocess._infer_blocks(ft, pt) if flat_blocks is None else np.asarray(flat_blocks)
    ).ravel()
    if labels.size != ft.size:
        raise ValueError(f"flat_blocks has {labels.size} entries for {ft.size} flats")
    uniq = np.unique(labels)
    block_t = np.array([ft[labels == u].mean() for u in uniq])
    order = np.argsort(block_t, kind="stable")
    blocks = np.stack([fl[labels == u].mean(axis=0) for u in uniq[order]])
    if smooth_px is not None:
        ok = np.ones(fl.shape[1:], dtype=bool) if good is None else np.asarray(good, dtype=bool)
        blocks = np.stack([_smooth(blk, ok, float(smooth_px)) for blk in blocks])
    lo, hi, w = preprocess.flat_weights(pt, block_t[order], method=method)
    return (1.0 - w)[:, None, None] * blocks[lo] + w[:, None, None] * blocks[hi]


def _fixed_pattern(flats: np.ndarray, dark: np.ndarray, good: np.ndarray, sigma_px: float):
    """Per-pixel relative efficiency from all bright fields, shrunk towards 1 by its noise.

    ``g = S / smooth(S)`` of the summed (dark-subtracted) bright fields ``S``; its Poisson
    variance is ``1 / smooth(S)``; the observed variance of ``g`` beyond it is the fixed
    pattern's, so ``1 + (g - 1) max(0, 1 - var_noise / var_observed)`` (empirical Bayes).
    """
    total = np.clip(flats.sum(axis=0, dtype=np.float64) - flats.shape[0] * dark, 0.0, None)
    smooth = _smooth(total, good, sigma_px)
    g = np.where(good, total / np.maximum(smooth, 1e-12), 1.0)
    observed = float(np.var(g[good])) if good.any() else 0.0
    noise = float(np.mean(1.0 / np.maximum(smooth[good], 1e-12))) if good.any() else 0.0
    keep = max(0.0, 1.0 - noise / observed) if observed > 0 else 0.0
    return 1.0 + keep * (g - 1.0), keep


def _fill_pixels(stack: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace ``bad`` pixels of every image of counts by the mean of their good neighbours
    (5 x 5), never below 0 (``uniform_filter``'s running sums leave values like -2e-13 where
    the neighbours are all 0, which the counting model refuses as a negative background)."""
    if not bad.any():
        return stack
    good = (~bad).astype(np.float64)
    weight = ndimage.uniform_filter(good, 5, mode="nearest")
    out = np.array(stack, dtype=np.float64, copy=True)
    for k in range(out.shape[0]):
        mean = ndimage.uniform_filter(out[k] * good, 5, mode="nearest")
        filled = np.maximum(mean[bad] / np.maximum(weight[bad], 1e-12), 0.0)
        out[k][bad] = np.where(weight[bad] > 0, filled, 0.0)
    return out


def _bad_counting_pixels(flat_mean: np.ndarray, have_darks: bool) -> np.ndarray:
    """Dead pixels (no bright-field counts) and, without darks to subtract their noise hits,
    hot pixels: bright-field mean above ``median + 8 sqrt(median) + 5`` counts (assumption:
    the beam is uniform to far better than that over the Medipix2, so only noise hits of a
    pixel whose threshold sits near the noise reach it)."""
    bad = ~(flat_mean > 0)
    if not have_darks and (~bad).any():
        med = float(np.median(flat_mean[~bad]))
        bad |= flat_mean > med + 8.0 * math.sqrt(max(med, 0.0)) + 5.0
    return bad


def _central_rows(n: int, crop_rows: int | None) -> slice:
    if crop_rows is None:
        return slice(0, n)
    k = crop_rows
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n:
        raise ValueError(f"crop_rows={crop_rows!r} must be an integer in [1, {n}]")
    if (n - k) % 2:
        raise ValueError(
            f"crop_rows={crop_rows!r}: keeping the central rows of {n} needs n - crop_rows even "
            "(the detector centre must stay where it was)"
        )
    return slice((n - k) // 2, (n + k) // 2)


def _check_bin(bin_factor: int, rows: int, cols: int) -> int:
    b = bin_factor
    if isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 1:
        raise ValueError(f"bin_factor={bin_factor!r} must be an integer >= 1")
    if rows % b or cols % b:
        raise ValueError(
            f"bin_factor={bin_factor!r} must divide the (cropped) detector {rows} x {cols}: a "
            "trimmed edge would move the detector centre"
        )
    return int(b)


def _reduce(stack: np.ndarray, rows: slice, b: int, *, total: bool) -> np.ndarray:
    """Central rows, then ``b x b`` bins: sums (counts) or means."""
    a = np.asarray(stack)[..., rows, :]
    if b == 1:
        return a
    binned = preprocess.bin_projections(a, b).astype(np.float64)
    return binned * (b * b) if total else binned


def _reduced_geometry(geo: dict, rows: int, cols: int, b: int) -> dict:
    """The geometry of a centrally cropped, ``b``-binned detector (centre kept)."""
    out = dict(geo)
    if b == 1 and rows == geo["detector_shape"][0]:
        return out
    out["pixel_mm"] = geo["pixel_mm"] * b
    out["detector_shape"] = (rows // b, cols // b)
    out["center_col"] = (geo["center_col"] + 0.5) / b - 0.5
    return out


def _lamino_geometry(geo: dict) -> LaminoGeometry:
    return LaminoGeometry(
        geo["tilt_deg"], geo["pixel_mm"], geo["sod_mm"], geo["sdd_mm"],
        geo["offset_u_mm"], geo["offset_v_mm"],
    )  # fmt: skip


# --------------------------------------------------------------------------- main chain
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
    fbp_method: Literal["direct", "fourier"] = "direct",
    shift_method: Literal["fourier", "spline"] = "fourier",
    progress: Callable[[str], None] | None = None,
    slice_progress: Callable[[int, int], Any] | None = None,
    references: np.ndarray | None = None,
    reference_times_s: Sequence[float] | np.ndarray | None = None,
    counting: bool | None = None,
    crop_rows: int | None = None,
    bin_factor: int = 1,
    counts_threshold: float = poisson.DEFAULT_COUNTS_THRESHOLD,
    ml_iterations: int = 10,
    beta: float = poisson.DEFAULT_BETA,
    blank_smooth_px: float = 4.0,
    paganin_delta_beta: float | None = None,
    paganin_energy_kev: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Normalise, correct the focal-spot drift and reconstruct one CT (or laminography) scan.

    Parameters
    ----------
    projections : ndarray, shape (angle, row, column)
        Raw projections, detector units (ADU) or counts (a counting detector).
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
        The run's start document: ``geometry`` (see :func:`ct_geometry`; its ``tilt_deg``
        selects laminography), for the drift correction ``reference_wire`` (``row``,
        ``col``, ``diameter_px``, ``magnification``), and ``detector["counting"]`` for a
        photon-counting detector.
    wire_xy_px : (ndarray, ndarray), optional
        Wire shadow column (vertical arm) and row (horizontal arm) per projection, pixels;
        measured here when not given. NaNs (a frame where the wire was not found) are filled
        by linear interpolation in time.
    drift_correction : bool
        Shift every projection back by the specimen shift the wire motion (or, without a
        wire, the reference projections) implies.
    algorithm : {'fdk', 'fbp', 'sirt', 'poisson-ml', 'auto'}
        Cone-beam FDK (default; with a tilted axis the laminographic FBP); parallel-beam FBP
        row by row (an approximation for small cone angles, voxel = pixel at the axis; zero
        tilt only); cone-beam SIRT (``n_iter`` iterations, whole volume; tilted-axis SIRT
        with a tilt); ``'poisson-ml'``: penalised maximum likelihood on the counts (counting
        detectors only); ``'auto'``: for counts, ``'poisson-ml'`` below ``counts_threshold``
        mean counts per (binned) pixel and ``'fdk'`` above; ``'fdk'`` otherwise.
    slices : int, slice or sequence of int, optional
        Volume slices (z, i.e. detector rows through the axis) to return; default all.
    center_col : float, optional
        Column onto which the rotation axis projects (of the full, unbinned detector);
        overrides the metadata's axis position (default: ``(n_cols - 1) / 2 - offset_u /
        pixel`` from the geometry).
    volume_shape : (int, int, int), optional
        ``(nz, ny, nx)``; default ``(rows, cols, cols)`` of the (cropped, binned) detector.
    voxel_mm : float, optional
        Voxel size; default the (binned) detector pixel seen at the axis, ``pixel * sod / sdd``.
    filter : str
        Ramp filter window for FDK/FBP.
    flat_method : {'interpolate', 'nearest'}
        Flats interpolated in time between the bracketing blocks (default) or the nearest block.
    zingers, rings : bool
        Also remove zingers (before ``-log``) and ring artefacts (after); integrating
        detectors only.
    n_iter : int
        SIRT iterations.
    fbp_method : {'direct', 'fourier'}
        Backprojection of ``algorithm='fbp'`` (:func:`nanoct.recon.fbp.fbp`'s ``method``):
        ``'fourier'`` grids in Fourier space, several times faster for large slices.
    shift_method : {'fourier', 'spline'}
        How projections are shifted (:func:`nanoct.recon.alignment.shift_projections`);
        shifted counts are clipped at zero.
    progress : callable, optional
        Called with a stage name (``"normalise"``, ``"wire"``, ``"shift"``, ``"reconstruct"``)
        as each stage starts.
    slice_progress : callable, optional
        ``slice_progress(done, total)`` during the reconstruction stage, as slices are
        finished (FDK, FBP and laminographic FBP; the iterative methods report nothing).
    references : ndarray, shape (m, row, column), optional
        Reference projections (the same pose again and again, e.g. ``nano_ct_scan``'s stream
        ``reference``), the drift reference when the run has no wire.
    reference_times_s : array_like, shape (m,), optional
        Their acquisition times (the clock of ``proj_times_s``).
    counting : bool, optional
        Whether the images are photon counts; default from ``metadata["detector"]
        ["counting"]``.
    crop_rows : int, optional
        Keep only this many central detector rows (``rows - crop_rows`` even), after the
        drift correction.
    bin_factor : int
        Bin ``b x b`` detector pixels (counts summed, line integrals averaged) after the drift
        correction; must divide the (cropped) detector.
    counts_threshold : float
        Mean counts per pixel below which ``'auto'`` chooses ``'poisson-ml'``
        (:data:`nanoct.recon.poisson.DEFAULT_COUNTS_THRESHOLD`, 20).
    ml_iterations, beta : int, float
        Iterations and relative penalty weight of ``'poisson-ml'``
        (:func:`nanoct.recon.poisson.reconstruct_counts`).
    blank_smooth_px : float
        Counts only: Gaussian sigma (pixels, > 0) with which each bright-field block is
        smoothed into the blank scan (the fixed pattern is restored from all bright fields,
        see the module docstring).
    paganin_delta_beta, paganin_energy_kev : float, optional
        Both given: single-material phase retrieval
        (:func:`nanoct.recon.phase_retrieval.paganin_filter`) with the specimen's
        ``delta / beta`` at the (effective) energy, before ``-log`` and the drift correction.

    Returns
    -------
    volume : ndarray, float32, shape (n_slices, ny, nx)
        Attenuation coefficient, 1/mm.
    info : dict
        ``geometry`` (what was used: sod, sdd, pixel, offsets, voxel, ``center_col``,
        ``tilt_deg``), ``algorithm`` (the one used), ``slices`` (indices),
        ``drift_corrected``, ``drift_method`` (``'wire'``, ``'reference'`` or None),
        ``counting`` and, for counts, ``counts_mean`` (per binned pixel), ``bad_pixels``;
        with the wire ``wire_x_px``, ``wire_y_px``, ``wire_width_px`` (per projection,
        NaN-filled where not found), ``spot_shift_um`` ((2, angle): x right, y up, relative
        to the median), ``wire_profile`` (per arm ``'x'``/``'y'``: the averaged wire
        profiles ``uncorrected`` and ``corrected`` and their ``*_widths``, see
        :func:`averaged_wire_profile` and :func:`wire_profile_widths`); with references
        ``reference_drift`` (:class:`~nanoct.recon.reference_drift.ReferenceDrift`);
        ``shift_px`` ((2, angle): the specimen shift in columns and rows that was undone,
        unbinned pixels) and ``drift_ptp_px`` (its peak-to-peak) with either.

    Raises
    ------
    ValueError
        No flats, lengths that do not match, geometry missing or inconsistent, drift
        correction asked for without a reference wire or reference projections, an unknown
        algorithm or one that does not fit the data (``'poisson-ml'`` without counts,
        ``'fbp'`` with a tilted axis), a crop or bin that does not fit the detector.
    """

    def stage(name: str) -> None:
        logger.debug("reconstruct_ct: %s", name)
        if progress is not None:
            progress(name)

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {ALGORITHMS}")
    check_progress(slice_progress)
    if fbp_method not in FBP_METHODS:
        raise ValueError(f"fbp_method={fbp_method!r} is not one of {FBP_METHODS}")
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
    refs = rt = None
    if references is not None and np.asarray(references).size:
        refs = _as_stack(references, "references")
        if refs.shape[1:] != (rows, cols):
            raise ValueError(f"references are {refs.shape[1:]}, the projections {(rows, cols)}")
        rt = _vector(reference_times_s, "reference_times_s", refs.shape[0])
    counts = is_counting(metadata) if counting is None else bool(counting)
    geo = ct_geometry(metadata, (rows, cols))
    tilted = geo["tilt_deg"] != 0.0
    if algorithm == "poisson-ml" and not counts:
        raise ValueError(
            "algorithm='poisson-ml' needs photon counts; the run's detector integrates "
            "(metadata['detector']['counting'] is not true)"
        )
    if algorithm == "fbp" and tilted:
        raise ValueError(
            f"algorithm='fbp' reconstructs detector rows about an untilted axis; this run's "
            f"axis is tilted by tilt_deg={geo['tilt_deg']!r}: use 'fdk' (laminographic FBP) "
            "or 'sirt'"
        )
    if center_col is not None:
        c = float(center_col)
        if not (math.isfinite(c) and 0 <= c <= cols - 1):
            raise ValueError(f"center_col={center_col!r} must lie in [0, {cols - 1}]")
        geo["center_col"] = c
        geo["offset_u_mm"] = ((cols - 1) / 2.0 - c) * geo["pixel_mm"]
    if (paganin_delta_beta is None) != (paganin_energy_kev is None):
        raise ValueError(
            f"paganin_delta_beta={paganin_delta_beta!r} and paganin_energy_kev="
            f"{paganin_energy_kev!r}: give both (phase retrieval) or neither"
        )
    paganin = None
    if paganin_delta_beta is not None:
        paganin = {
            "pixel_mm": geo["pixel_mm"],
            "sod_mm": geo["sod_mm"],
            "sdd_mm": geo["sdd_mm"],
            "delta_over_beta": paganin_delta_beta,
            "energy_kev": paganin_energy_kev,
        }
        paganin_filter(np.ones((4, 4)), **paganin)  # checks the parameters now
    row_sel = _central_rows(rows, crop_rows)
    b = _check_bin(bin_factor, row_sel.stop - row_sel.start, cols)
    geo = _reduced_geometry(geo, row_sel.stop - row_sel.start, cols, b)
    vox = geo["pixel_mm"] * geo["sod_mm"] / geo["sdd_mm"] if voxel_mm is None else float(voxel_mm)
    geo["voxel_mm"] = vox
    nz = geo["detector_shape"][0] if volume_shape is None else int(volume_shape[0])
    idx = as_slices(slices, nz)

    info: dict[str, Any] = {
        "algorithm": algorithm,
        "geometry": geo,
        "slices": idx,
        "drift_corrected": False,
        "drift_method": None,
        "flat_method": flat_method,
        "counting": counts,
        "crop_rows": crop_rows,
        "bin_factor": b,
        "phase_retrieval": paganin,
    }

    # ---- 1. normalisation (line integrals), or blank and background counts
    stage("normalise")
    if counts:
        if not (math.isfinite(blank_smooth_px) and blank_smooth_px > 0):
            raise ValueError(f"blank_smooth_px={blank_smooth_px!r} must be > 0 pixels")
        y = proj.astype(np.float64)
        dark_b = dk.mean(axis=0) if dk is not None else np.zeros((rows, cols))
        flat_mean = fl.mean(axis=0, dtype=np.float64) - dark_b
        bad = _bad_counting_pixels(flat_mean, dk is not None)
        info["bad_pixels"] = int(bad.sum())
        if bad.any():
            logger.info("reconstruct_ct: %d dead or hot pixels filled", int(bad.sum()))
        # the blank: smoothed bright-field blocks (of the signal above the background) in
        # time, times the pixels' fixed pattern
        open_b = blank_counts(pt, fl - dark_b, ft, fb, method=flat_method,
                              smooth_px=blank_smooth_px, good=~bad)  # fmt: skip
        gain, kept = _fixed_pattern(fl, dark_b, ~bad, blank_smooth_px)
        info["fixed_pattern_kept"] = kept
        flat_b = dark_b + open_b * gain
        y = _fill_pixels(y, bad)
        flat_b = _fill_pixels(flat_b, bad)
        dark_b = _fill_pixels(dark_b[None], bad)[0]
        if paganin is not None:
            stage("phase")
            open_counts = np.maximum(flat_b - dark_b, 1e-3)
            trans = paganin_filter((y - dark_b) / open_counts, **paganin)
            y = np.clip(dark_b + open_counts * trans, 0.0, None)
            del trans
        lines = None
    else:
        trans = preprocess.flat_field(proj, pt, fl, ft, dk, method=flat_method, flat_blocks=fb)
        if zingers:
            trans = preprocess.remove_zingers(trans)
        if paganin is not None:
            stage("phase")
            trans = paganin_filter(trans, **paganin)
        lines = preprocess.minus_log(trans)
        del trans
        if rings:
            lines = preprocess.remove_rings(lines)

    # ---- 2./3. the drift: the reference wire, or the reference projections
    dx, dy = _drift(
        proj, dk, pt, metadata, geo, info, wire_xy_px, refs, rt, fl, drift_correction, stage,
        (rows, cols),
    )  # fmt: skip

    # ---- 4. shift correction, crop and bin
    if dx is not None and drift_correction:
        stage("shift")
        if counts:
            y = np.clip(alignment.shift_projections(y, -dx, -dy, method=shift_method), 0, None)
        else:
            lines = alignment.shift_projections(lines, -dx, -dy, method=shift_method)
        info["drift_corrected"] = True

    # ---- 5. reconstruction
    angles = np.deg2rad(ang_deg)
    if counts:
        y = _reduce(y, row_sel, b, total=True)
        flat_b = _reduce(flat_b, row_sel, b, total=True)
        dark_b = _reduce(dark_b, row_sel, b, total=True)
        mean = float(y.mean())
        info["counts_mean"] = mean
        chosen = algorithm
        if algorithm == "auto":
            picked = poisson.choose_algorithm(mean, threshold=counts_threshold)
            chosen = "poisson-ml" if picked == "poisson-ml" else "fdk"
        info["algorithm"] = chosen
        logger.info("reconstruct_ct: %.3g counts per pixel -> %s", mean, chosen)
        stage("reconstruct")
        if chosen == "poisson-ml":
            geom = _lamino_geometry(geo)
            res = poisson.reconstruct_counts(
                y, np.maximum(flat_b, 1e-3), angles, geom, algorithm="poisson-ml",
                dark_counts=np.maximum(dark_b, 0.0), volume_shape=volume_shape, voxel_mm=vox,
                n_iter=ml_iterations, beta=beta,
            )  # fmt: skip
            return np.ascontiguousarray(res.volume[idx]), info
        lines = poisson.log_transform(y, np.maximum(flat_b, 1e-3), dark_counts=dark_b)
    else:
        lines = _reduce(lines, row_sel, b, total=False).astype(np.float32)
        if algorithm == "auto":
            info["algorithm"] = "fdk"
        stage("reconstruct")
    if info["algorithm"] == "fbp":
        info["fbp_method"] = fbp_method
    return _reconstruct_lines(
        lines, angles, geo, info["algorithm"], idx, volume_shape, vox, filter, n_iter, fbp_method,
        slice_progress,
    ), info  # fmt: skip


def _drift(proj, dk, pt, metadata, geo, info, wire_xy_px, refs, rt, fl, drift_correction, stage,
           shape):  # fmt: skip
    """The specimen's image shift per projection (unbinned pixels) from the wire or the
    reference projections; ``(None, None)`` when there is neither. Fills ``info``."""
    n = proj.shape[0]
    rows, cols = shape
    full_pixel_mm = geo["pixel_mm"] / info["bin_factor"]
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
    use_wire = wx is not None and isinstance(wire_md, Mapping)
    if drift_correction and not use_wire and refs is None:
        raise ValueError(
            "drift_correction=True needs the reference wire (the metadata has no "
            "'reference_wire': its magnification and position) or reference projections; "
            "pass drift_correction=False"
        )
    if wx is not None:
        ok = np.isfinite(wx) & np.isfinite(wy)
        if ok.sum() < max(2, n // 2):
            if drift_correction and refs is None:
                raise ValueError(
                    f"the reference wire was found in only {int(ok.sum())} of {n} projections; "
                    "pass drift_correction=False or give wire_xy_px"
                )
            use_wire = False
        else:
            if not ok.all():
                logger.warning("wire not found in %d projections; interpolated", int((~ok).sum()))
                wx = np.interp(pt, pt[ok], wx[ok])
                wy = np.interp(pt, pt[ok], wy[ok])
            info.update(wire_x_px=wx, wire_y_px=wy, wire_width_px=ww)
    if use_wire:
        wire_z = _wire_z_mm(wire_md, geo["sdd_mm"])
        sx, sy = alignment.spot_shift_from_wire(
            wx, wy, pixel_mm=full_pixel_mm, sdd_mm=geo["sdd_mm"], wire_z_mm=wire_z
        )
        dx, dy = alignment.specimen_shift_px(
            sx, sy, pixel_mm=full_pixel_mm, sdd_mm=geo["sdd_mm"], sod_mm=geo["sod_mm"]
        )
        info.update(
            wire_z_mm=wire_z,
            spot_shift_um=np.vstack([sx, sy]) * 1e3,
            shift_px=np.vstack([dx, dy]),
            drift_ptp_px=(float(np.ptp(dx)), float(np.ptp(dy))),
            drift_method="wire",
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
        return dx, dy
    if refs is not None and drift_correction:
        stage("reference")
        open_beam = fl.mean(axis=0, dtype=np.float64)
        if dk is not None:
            open_beam = open_beam - dk.mean(axis=0, dtype=np.float64)
        drift = measure_reference_drift(refs, rt, open_beam)
        dx, dy = drift_at(drift, pt)
        info.update(
            reference_drift=drift,
            shift_px=np.vstack([dx, dy]),
            drift_ptp_px=(float(np.ptp(dx)), float(np.ptp(dy))),
            drift_method="reference",
        )
        return dx, dy
    return None, None


def _reconstruct_lines(
    lines, angles, geo, algorithm, idx, volume_shape, vox, filter, n_iter, fbp_method="direct",
    slice_progress=None,
):  # fmt: skip
    """FDK / FBP / SIRT of line integrals, or their tilted-axis forms for laminography."""
    rows = lines.shape[1]
    nz = rows if volume_shape is None else int(volume_shape[0])
    if geo["tilt_deg"] != 0.0:
        geom = _lamino_geometry(geo)
        if algorithm == "fdk":
            return fbp_lamino(
                lines, angles, geom, volume_shape=volume_shape, voxel_mm=vox, slices=idx,
                filter=filter, progress=slice_progress,
            )  # fmt: skip
        full = sirt_lamino(lines, angles, geom, volume_shape=volume_shape, voxel_mm=vox,
                           n_iter=n_iter)  # fmt: skip
        return np.ascontiguousarray(full[idx])
    cone = {
        "sod_mm": geo["sod_mm"],
        "sdd_mm": geo["sdd_mm"],
        "pixel_mm": geo["pixel_mm"],
        "offset_u_mm": geo["offset_u_mm"],
        "offset_v_mm": geo["offset_v_mm"],
    }
    if algorithm == "fdk":
        return fdk(
            lines, angles, **cone, volume_shape=volume_shape, voxel_mm=vox, slices=idx,
            filter=filter, progress=slice_progress,
        )  # fmt: skip
    if algorithm == "fbp":
        if nz != rows:
            raise ValueError("algorithm='fbp' reconstructs detector rows: volume_shape[0] = rows")
        size = None if volume_shape is None else (int(volume_shape[1]), int(volume_shape[2]))
        return fbp(
            lines, angles, filter=filter, center_col=geo["center_col"], slices=idx, size=size,
            pixel_mm=vox, method=fbp_method, progress=slice_progress,
        )  # fmt: skip
    full = sirt(
        lines, angles, geometry="cone", n_iter=n_iter, **cone, volume_shape=volume_shape,
        voxel_mm=vox,
    )  # fmt: skip
    return np.ascontiguousarray(full[idx])
