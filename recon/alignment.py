"""Alignment: reference-wire tracking, focal-spot drift, projection shifts, rotation axis.

Pure functions, array in, array out; nothing here does I/O, and nothing depends on the
reconstruction modules (`center_of_rotation_search` takes the reconstruction as a callable).

Conventions
-----------
- Images are ``(row, column)``, stacks ``(angle, row, column)``. Pixel positions are in
  detector pixels, measured from the centre of pixel 0: column index ``x`` grows to the right,
  row index ``y`` grows downwards (row 0 at the top, as images are displayed).
- A shift ``(dx, dy)`` of an image's content means ``out(y, x) = in(y - dy, x - dx)``: positive
  ``dx`` moves the content to larger columns, positive ``dy`` to larger rows (down).
- The rotation axis position is the fractional column index of the axis: the detector centre
  is ``(n_columns - 1) / 2`` (the convention of astra, algotom and nabu; scikit-image uses
  ``n // 2``, tomopy ``n / 2``).
- Lab frame (as in ``nanoct.devices.sim.geometry``): the beam runs along +z from the focal
  spot to the detector, x is horizontal (to the right seen from the source, the direction of
  increasing column), y is vertical **up** (the direction of decreasing row). A focal-spot
  displacement ``(sx, sy)`` in mm is in this frame.
- Angles are radians unless a name ends in ``_deg``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy import fft as sfft
from scipy import ndimage
from scipy.interpolate import CubicSpline
from scipy.signal.windows import tukey

__all__ = [
    "axis_tilt",
    "center_of_rotation_180",
    "center_of_rotation_search",
    "odd_fast_len",
    "phase_correlation_shift",
    "register_projections",
    "shift_pads",
    "shift_projections",
    "specimen_shift_px",
    "spot_shift_from_wire",
    "wire_position",
    "wire_track",
]

logger = logging.getLogger(__name__)

Roi = tuple[slice, slice]

# --------------------------------------------------------------------------------------------
# Reference wire
# --------------------------------------------------------------------------------------------


def _slice_start(s: slice, n: int, name: str) -> int:
    if not isinstance(s, slice):
        raise ValueError(f"{name} must be a slice, got {s!r}")
    start, _stop, step = s.indices(n)
    if step != 1:
        raise ValueError(f"{name}={s!r}: only slices with step 1 are supported")
    return start


def _axis_index(axis: str | int) -> int:
    """Image axis (0 rows, 1 columns) along which a position is measured."""
    if axis in ("x", 1):
        return 1
    if axis in ("y", 0):
        return 0
    raise ValueError(f"axis={axis!r} must be 'x' (columns; 1) or 'y' (rows; 0)")


def _fwhm(d: np.ndarray, peak: int) -> float:
    """Full width at half maximum of a positive peak at sample ``peak``: the half-maximum
    crossings on each side are found on a cubic spline through the samples (linear
    interpolation overestimates the width of a peak a few samples wide by ~4 %); NaN when
    the profile does not fall below half on both sides."""
    half = d[peak] / 2.0
    n = d.size
    i = peak
    while i > 0 and d[i - 1] >= half:
        i -= 1
    j = peak
    while j < n - 1 and d[j + 1] >= half:
        j += 1
    if i == 0 or j == n - 1:
        return float("nan")
    spline = CubicSpline(np.arange(n, dtype=np.float64), d)

    def crossing(lo: int, hi: int) -> float:
        # the spline between samples lo and hi (one above, one below half) crosses half once
        # for a well-sampled peak; take the root nearest the linear estimate
        roots = [r for r in spline.solve(half, extrapolate=False) if lo <= r <= hi]
        lin = lo + (half - d[lo]) / (d[hi] - d[lo])
        return float(min(roots, key=lambda r: abs(r - lin))) if roots else float(lin)

    return crossing(j, j + 1) - crossing(i - 1, i)


def _line_fit(x: np.ndarray, p: np.ndarray, sel: np.ndarray) -> np.ndarray:
    slope, icpt = np.polyfit(x[sel], p[sel], 1)
    return slope * x + icpt


def _dip_position(
    p: np.ndarray, *, polarity: str, edge_fraction: float, min_depth: float
) -> tuple[float, float]:
    """Centre and FWHM (samples) of a wire shadow in a 1-D profile, or (nan, nan)."""
    n = p.size
    k = max(round(n * edge_fraction), 2)
    if n < 2 * k + 3:
        raise ValueError(
            f"the wire profile has {n} samples; with edge_fraction={edge_fraction} at least "
            f"{2 * k + 3} are needed (widen the roi)"
        )
    x = np.arange(n, dtype=np.float64)

    def depth(bg: np.ndarray) -> np.ndarray:
        # relative depth for intensities (the background multiplies the shadow), additive
        # for attenuation data
        return 1.0 - p / bg if polarity == "dark" else p - bg

    sel = np.zeros(n, dtype=bool)
    sel[:k] = sel[n - k :] = True
    bg = _line_fit(x, p, sel)
    if polarity == "dark" and not np.all(bg > 0):
        return float("nan"), float("nan")  # a dark frame (or -log data given as 'dark')
    d = depth(bg)
    noise = float(np.std(d[sel]))
    smooth = np.convolve(d, [0.25, 0.5, 0.25], mode="same")
    peak = int(np.argmax(smooth[1:-1])) + 1
    if not np.isfinite(d).all() or smooth[peak] < max(6.0 * noise, min_depth):
        return float("nan"), float("nan")
    width = _fwhm(d, peak)
    if not np.isfinite(width):
        width = 2.0
    # refit the background on everything clear of the shadow (its blurred tails included)
    for _ in range(2):
        excl = 1.25 * width + 1.5
        far = np.abs(x - peak) > excl
        if np.count_nonzero(far[:peak]) >= 2 and np.count_nonzero(far[peak:]) >= 2:
            bg = _line_fit(x, p, far)
            d = depth(bg)
        w2 = _fwhm(d, peak)
        if np.isfinite(w2):
            width = w2
    # centroid in a window of fixed half-width, re-centred until it is symmetric about the
    # centroid (fractional weights at its ends keep the result continuous in the centre)
    hw = 0.75 * width + 1.0
    c = float(peak)
    for _ in range(100):
        w = np.clip(hw + 0.5 - np.abs(x - c), 0.0, 1.0)
        wd = w * d
        total = wd.sum()
        if not total > 0:
            return float("nan"), float("nan")
        c_new = float((x * wd).sum() / total)
        done = abs(c_new - c) < 1e-7
        c = c_new
        if done:
            break
    ipk = int(np.clip(round(c), 1, n - 2))
    ipk = ipk - 1 + int(np.argmax(d[ipk - 1 : ipk + 2]))
    width = _fwhm(d, ipk)
    return c, width


def wire_position(
    image_or_profile: np.ndarray,
    *,
    axis: Literal["x", "y"] | int,
    roi: Roi | slice | None = None,
    polarity: Literal["dark", "bright"] = "dark",
    edge_fraction: float = 0.2,
    min_depth: float = 0.0,
) -> tuple[float, float]:
    """Sub-pixel position and width of the shadow of a thin wire.

    The CT carries a fixed 30 um tungsten cross wire in a detector corner that the specimen
    never covers: the shadow of its vertical arm gives the horizontal position (``axis='x'``),
    that of its horizontal arm the vertical position (``axis='y'``).

    Method: the region is averaged along the wire into a profile; a straight background is
    fitted to the outer ``edge_fraction`` of the profile on each side, then refitted to all
    samples clear of the shadow (more than 1.25 FWHM + 1.5 px from it). The depth
    ``1 - profile / background`` (``polarity='dark'``: intensities or transmission; the
    relative depth removes the bias of a sloping beam profile) or ``profile - background``
    (``polarity='bright'``: attenuation data) is located by its centroid in a window of
    +-(0.75 FWHM + 1) px that is re-centred until symmetric about the centroid. For any
    symmetric shadow (cylinder, blurred, with a nonlinear, polychromatic response) this is
    unbiased up to sampling: on noise-free synthetic cylinder shadows 1.2-6 px wide (blur
    sigma 0.2-1.5 px, background sloping 1 %/px) the error is <= 0.007 px; with 0.5 %
    noise per profile sample the rms error is 0.01-0.025 px.

    Parameters
    ----------
    image_or_profile : ndarray, shape (row, column) or (samples,)
        An image (raw, dark-subtracted or flat-fielded) or a 1-D profile across the wire.
    axis : {'x', 'y'} or {1, 0}
        The detector axis along which the position is measured: ``'x'`` (or 1) averages the
        region over rows and locates the shadow along columns (the vertical arm); ``'y'``
        (or 0) averages over columns and locates it along rows (the horizontal arm).
    roi : (slice, slice) or slice, optional
        Region ``(rows, cols)`` of the image holding one arm only, wider than the shadow by
        at least two shadow widths on each side (a slice for a profile). Default: everything.
    polarity : {'dark', 'bright'}
        ``'dark'`` for intensity-like data (the wire is a dip), ``'bright'`` for ``-log`` data.
    edge_fraction : float
        Fraction of the profile at each end used for the first background fit.
    min_depth : float
        Smallest accepted shadow depth (relative for 'dark'); a shallower dip, one less
        than 6 times the background noise, or (for 'dark') a background that is not
        positive returns NaN (a dark frame, a wire out of view).

    Returns
    -------
    centre_px : float
        Position of the shadow's axis in detector pixels of the full image (the roi offset is
        added): a column for ``axis='x'``, a row for ``axis='y'``. NaN if no shadow is found.
    width_px : float
        Full width at half depth of the shadow, pixels (crossings on a cubic spline through
        the samples); NaN if no shadow is found.
    """
    a = np.asarray(image_or_profile, dtype=np.float64)
    ax = _axis_index(axis)
    if polarity not in ("dark", "bright"):
        raise ValueError(f"polarity={polarity!r} is not one of 'dark', 'bright'")
    if not 0.0 < edge_fraction < 0.5:
        raise ValueError(f"edge_fraction={edge_fraction!r} must lie in (0, 0.5)")
    if a.ndim == 1:
        offset = 0
        if roi is not None:
            if not isinstance(roi, slice):
                raise ValueError(f"roi for a 1-D profile must be a slice, got {roi!r}")
            offset = _slice_start(roi, a.size, "roi")
            a = a[roi]
        profile = a
    elif a.ndim == 2:
        offsets = (0, 0)
        if roi is not None:
            if not (isinstance(roi, tuple) and len(roi) == 2):
                raise ValueError(f"roi must be a (rows, cols) pair of slices, got {roi!r}")
            offsets = (
                _slice_start(roi[0], a.shape[0], "roi rows"),
                _slice_start(roi[1], a.shape[1], "roi cols"),
            )
            a = a[roi[0], roi[1]]
        profile = a.mean(axis=1 - ax)
        offset = offsets[ax]
    else:
        raise ValueError(f"image_or_profile must be 1-D or 2-D, got shape {a.shape}")
    c, w = _dip_position(
        profile, polarity=polarity, edge_fraction=edge_fraction, min_depth=min_depth
    )
    return c + offset, w


def wire_track(
    projections: np.ndarray,
    roi_vertical_arm: Roi,
    roi_horizontal_arm: Roi,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wire shadow position in every projection of a stack.

    Parameters
    ----------
    projections : ndarray, shape (angle, row, column)
    roi_vertical_arm : (slice, slice)
        Region ``(rows, cols)`` holding only the vertical arm's shadow (clear of the crossing).
    roi_horizontal_arm : (slice, slice)
        Region holding only the horizontal arm's shadow.
    **kwargs
        Passed to `wire_position` (``polarity``, ``edge_fraction``, ``min_depth``).

    Returns
    -------
    x_px : ndarray, shape (angle,)
        Column of the vertical arm's shadow (horizontal position).
    y_px : ndarray, shape (angle,)
        Row of the horizontal arm's shadow (vertical position).
    width_px : ndarray, shape (angle,)
        Full width at half depth of the vertical arm's shadow (the horizontal blur; the
        quantity the ``WireMonitor`` device reports as ``wire_width_px``).
        NaN where no shadow is found.
    """
    p = np.asarray(projections)
    if p.ndim != 3:
        raise ValueError(f"projections must be (angle, row, column), got shape {p.shape}")
    n = p.shape[0]
    x = np.empty(n)
    y = np.empty(n)
    w = np.empty(n)
    for i in range(n):
        x[i], w[i] = wire_position(p[i], axis="x", roi=roi_vertical_arm, **kwargs)
        y[i], _ = wire_position(p[i], axis="y", roi=roi_horizontal_arm, **kwargs)
    return x, y, w


def _magnification_minus_1(sdd_mm: float, z_mm: float, name: str) -> float:
    if not 0.0 < z_mm < sdd_mm:
        raise ValueError(f"{name}={z_mm!r} must lie in (0, sdd_mm={sdd_mm!r}) mm")
    return sdd_mm / z_mm - 1.0


def _relative(v: np.ndarray, reference: str | float | None) -> np.ndarray:
    if reference is None:
        return v
    if isinstance(reference, str):
        if reference == "median":
            return v - np.nanmedian(v)
        if reference == "first":
            return v - v.flat[0]
    elif isinstance(reference, (int, float, np.floating)) and not isinstance(reference, bool):
        return v - float(reference)
    raise ValueError(
        f"reference={reference!r} must be 'median', 'first', a pair of numbers or None"
    )


def spot_shift_from_wire(
    dx_px: np.ndarray | float,
    dy_px: np.ndarray | float,
    *,
    pixel_mm: float,
    sdd_mm: float,
    wire_z_mm: float,
    reference: Literal["median", "first"] | tuple[float, float] | None = "median",
) -> tuple[np.ndarray, np.ndarray]:
    """Focal-spot displacement from the motion of the wire shadow.

    A spot displaced by ``s`` (lab frame) moves the shadow of a fixed object at magnification
    ``M = sdd / z`` by ``-s (M - 1)`` in the detector plane. With columns growing along +x and
    rows growing downwards (along -y)::

        dx_px = -sx (M_w - 1) / pixel      dy_px = +sy (M_w - 1) / pixel

    so ``sx = -dx_px * pixel / (M_w - 1)`` and ``sy = +dy_px * pixel / (M_w - 1)``.

    Parameters
    ----------
    dx_px, dy_px : array_like
        Shadow positions or motions in detector pixels: column of the vertical arm and row of
        the horizontal arm (e.g. from `wire_track`).
    pixel_mm : float
        Detector pixel pitch (after binning), mm.
    sdd_mm : float
        Source-detector distance, mm.
    wire_z_mm : float
        Distance from the source to the wire, mm (``0 < wire_z_mm < sdd_mm``).
    reference : {'median', 'first'}, (float, float) or None
        What the motion is measured against: the median of each coordinate's positions
        (default; NaNs ignored), the first ones, given positions ``(x_ref_px, y_ref_px)``
        (e.g. where the wire was when the spot was last aligned), or ``None`` when
        ``dx_px, dy_px`` are motions already.

    Returns
    -------
    sx_mm, sy_mm : ndarray
        Spot displacement in the lab frame (x right, y up), mm, relative to the reference.
    """
    if not pixel_mm > 0:
        raise ValueError(f"pixel_mm={pixel_mm!r} must be > 0")
    m1 = _magnification_minus_1(sdd_mm, wire_z_mm, "wire_z_mm")
    ref_x, ref_y = (reference, reference) if not isinstance(reference, tuple) else reference
    dx = _relative(np.asarray(dx_px, dtype=np.float64), ref_x)
    dy = _relative(np.asarray(dy_px, dtype=np.float64), ref_y)
    return -dx * pixel_mm / m1, dy * pixel_mm / m1


def specimen_shift_px(
    sx_mm: np.ndarray | float,
    sy_mm: np.ndarray | float,
    *,
    pixel_mm: float,
    sdd_mm: float,
    sod_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Shift of the specimen's projection caused by a focal-spot displacement.

    The specimen (on the rotation axis, at ``sod``) sits at another magnification than the
    wire, so its projection moves by the spot displacement times ``M_s - 1``, not by the wire's
    motion::

        dx_px = -sx (M_s - 1) / pixel      dy_px = +sy (M_s - 1) / pixel,   M_s = sdd / sod

    (columns along +x, rows downwards). Combined with `spot_shift_from_wire`, the specimen
    moves ``(M_s - 1) / (M_w - 1)`` times as far as the wire shadow, in the same direction.
    To correct the projections, shift them back: ``shift_projections(p, -dx_px, -dy_px)``.

    Parameters
    ----------
    sx_mm, sy_mm : array_like
        Spot displacement in the lab frame (x right, y up), mm.
    pixel_mm, sdd_mm, sod_mm : float
        Detector pitch, source-detector and source-object (rotation axis) distances, mm.

    Returns
    -------
    dx_px, dy_px : ndarray
        Shift of the specimen's projection in detector columns (+ right) and rows (+ down).

    Notes
    -----
    Cone beam: this is the shift of points at the axis depth. ``M - 1`` scales as ``1 / z``,
    so a part of the specimen ``dz`` nearer the source moves ``sod / (sod - dz)`` times as
    far (at ``sod = 3`` mm, +-0.3 mm of depth gives about +-10 %); a whole-projection shift
    corrects the axis plane exactly and the rest approximately.
    """
    if not pixel_mm > 0:
        raise ValueError(f"pixel_mm={pixel_mm!r} must be > 0")
    m1 = _magnification_minus_1(sdd_mm, sod_mm, "sod_mm")
    sx = np.asarray(sx_mm, dtype=np.float64)
    sy = np.asarray(sy_mm, dtype=np.float64)
    return -sx * m1 / pixel_mm, sy * m1 / pixel_mm


# --------------------------------------------------------------------------------------------
# Shifting and registration
# --------------------------------------------------------------------------------------------


def odd_fast_len(n: int) -> int:
    """Smallest odd length >= ``n`` whose only prime factors are 3, 5, 7, 11: the FFT length
    of :func:`shift_projections` (fast, and no Nyquist bin, so a sub-pixel phase shift of real
    data stays real and is exactly invertible)."""
    m = max(int(n), 1)
    if m % 2 == 0:
        m += 1
    while True:
        r = m
        for p in (3, 5, 7, 11):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 2


def shift_pads(dx_px: np.ndarray | float, dy_px: np.ndarray | float) -> tuple[int, int]:
    """Edge padding ``(rows, columns)`` that :func:`shift_projections` uses for a stack
    shifted by ``dx_px, dy_px`` (the largest shift, rounded up, plus 8)."""
    dx = np.abs(np.asarray(dx_px, dtype=np.float64))
    dy = np.abs(np.asarray(dy_px, dtype=np.float64))
    return int(np.ceil(dy.max())) + 8, int(np.ceil(dx.max())) + 8


def shift_projections(
    projections: np.ndarray,
    dx_px: np.ndarray | float,
    dy_px: np.ndarray | float,
    *,
    method: Literal["fourier", "spline"] = "fourier",
) -> np.ndarray:
    """Shift each projection by a sub-pixel amount.

    Parameters
    ----------
    projections : ndarray, shape (angle, row, column) or (row, column)
    dx_px, dy_px : float or ndarray, shape (angle,)
        Shift of each projection's content in pixels: ``out(y, x) = in(y - dy, x - dx)``
        (positive dx to the right, positive dy down). To undo a measured displacement, pass
        its negative.
    method : {'fourier', 'spline'}
        ``'fourier'`` (default): a phase ramp in Fourier space after padding each image by
        replicating its border (``numpy.pad`` mode 'edge') by more than the shift, on odd
        FFT lengths; exact for band-limited content, so a shift and its inverse restore the
        input to float precision away from the border. ``'spline'``: cubic spline
        interpolation (``scipy.ndimage.shift``, order 3, mode 'nearest'); local, smooths the
        finest detail slightly.

    Returns
    -------
    ndarray, float32, same shape
        Content that enters the field from outside repeats the border values in both methods.
    """
    p = np.asarray(projections, dtype=np.float32)
    single = p.ndim == 2
    if single:
        p = p[None]
    if p.ndim != 3:
        raise ValueError(f"projections must be (angle, row, column) or (row, column): {p.shape}")
    n, rows, cols = p.shape
    dx = np.broadcast_to(np.asarray(dx_px, dtype=np.float64), (n,)).copy()
    dy = np.broadcast_to(np.asarray(dy_px, dtype=np.float64), (n,)).copy()
    if not (np.isfinite(dx).all() and np.isfinite(dy).all()):
        raise ValueError("dx_px and dy_px must be finite")
    out = np.empty_like(p)
    if method == "spline":
        for i in range(n):
            out[i] = ndimage.shift(p[i], (dy[i], dx[i]), order=3, mode="nearest")
    elif method == "fourier":
        py, px = shift_pads(dx, dy)
        shape = (odd_fast_len(rows + 2 * py), odd_fast_len(cols + 2 * px))
        fy = sfft.fftfreq(shape[0])[:, None]
        fx = sfft.rfftfreq(shape[1])[None, :]
        for i in range(n):
            if dx[i] == 0.0 and dy[i] == 0.0:
                out[i] = p[i]
                continue
            padded = np.pad(
                p[i].astype(np.float64),
                ((py, shape[0] - rows - py), (px, shape[1] - cols - px)),
                mode="edge",
            )
            f = sfft.rfft2(padded)
            f *= np.exp(-2j * np.pi * (fy * dy[i] + fx * dx[i]))
            res = sfft.irfft2(f, s=shape)
            out[i] = res[py : py + rows, px : px + cols]
    else:
        raise ValueError(f"method={method!r} is not one of 'fourier', 'spline'")
    return out[0] if single else out


def _prepare(img: np.ndarray) -> np.ndarray:
    """Subtract the level of the left and right borders and taper the edges (Tukey window,
    alpha 0.25) before an FFT.

    The side columns are taken as the background because in CT the specimen lies inside the
    field horizontally but often runs through its top and bottom: after subtraction the
    background is ~0, so the window adds no static pattern that would pull the estimate
    towards zero shift (for ``-log`` data and transmission alike).
    """
    a = np.asarray(img, dtype=np.float64)
    k = min(2, a.shape[1] // 4) or 1
    a = a - np.mean(np.concatenate([a[:, :k].ravel(), a[:, -k:].ravel()]))
    wy = tukey(a.shape[0], 0.25) if a.shape[0] > 8 else np.ones(a.shape[0])
    wx = tukey(a.shape[1], 0.25) if a.shape[1] > 8 else np.ones(a.shape[1])
    return a * wy[:, None] * wx[None, :]


def _dft_patch(c: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Inverse DFT of spectrum ``c`` evaluated at arbitrary (fractional) positions."""
    m, n = c.shape
    ey = np.exp(2j * np.pi * np.outer(ys, sfft.fftfreq(m)))
    ex = np.exp(2j * np.pi * np.outer(sfft.fftfreq(n), xs))
    return (ey @ c @ ex).real


def phase_correlation_shift(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    normalization: Literal["phase"] | None = None,
) -> tuple[float, float]:
    """Sub-pixel translation of ``image`` relative to ``reference`` by phase correlation.

    Both are taken to the level of their side columns and tapered by a Tukey window (alpha
    0.25); the
    peak of the (phase-normalised) cross-correlation is found on the pixel grid and refined
    by evaluating the inverse DFT on successively finer 7 x 7 grids (0.2, 0.04, 0.008 px)
    around it, then by a parabola through the finest grid (the matrix-DFT upsampling of
    Guizar-Sicairos et al., Opt. Lett. 33 (2008) 156).

    Parameters
    ----------
    reference, image : ndarray, shape (row, column) or (column,)
        Same shape. Content should sit away from the borders (they are tapered).
    normalization : {'phase', None}
        ``'phase'`` (default) whitens the cross-power spectrum (sharp peak, insensitive to
        smooth intensity differences); ``None`` is plain cross-correlation.

    Returns
    -------
    dx_px, dy_px : float
        ``image(y, x) ~ reference(y - dy, x - dx)``; ``dy_px`` is 0.0 for 1-D inputs.
    """
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(image, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"reference {a.shape} and image {b.shape} differ in shape")
    one_d = a.ndim == 1
    if one_d:
        a, b = a[None], b[None]
    if a.ndim != 2 or a.shape[1] < 4:
        raise ValueError(f"inputs must be 1-D or 2-D with >= 4 columns, got {a.shape}")
    fa = sfft.fft2(_prepare(a))
    fb = sfft.fft2(_prepare(b))
    c = fb * np.conj(fa)
    if normalization == "phase":
        mag = np.abs(c)
        c = c / (mag + 1e-12 * mag.max() + np.finfo(np.float64).tiny)
    elif normalization is not None:
        raise ValueError(f"normalization={normalization!r} is not one of 'phase', None")
    corr = sfft.ifft2(c).real
    m, n = corr.shape
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    y0 = float(iy - m if iy > m // 2 else iy)
    x0 = float(ix - n if ix > n // 2 else ix)
    steps = np.arange(-3, 4, dtype=np.float64)
    for spacing in (0.2, 0.04, 0.008):
        ys = y0 + steps * spacing if m > 1 else np.array([0.0])
        xs = x0 + steps * spacing
        patch = _dft_patch(c, ys, xs)
        jy, jx = np.unravel_index(int(np.argmax(patch)), patch.shape)
        y0, x0 = float(ys[jy]), float(xs[jx])
    # parabolic refinement on the finest grid
    if 0 < jx < len(xs) - 1:
        row = patch[jy]
        den = row[jx - 1] - 2 * row[jx] + row[jx + 1]
        if den < 0:
            x0 += 0.5 * (row[jx - 1] - row[jx + 1]) / den * 0.008
    if m > 1 and 0 < jy < len(ys) - 1:
        col = patch[:, jx]
        den = col[jy - 1] - 2 * col[jy] + col[jy + 1]
        if den < 0:
            y0 += 0.5 * (col[jy - 1] - col[jy + 1]) / den * 0.008
    return x0, (0.0 if one_d else y0)


def register_projections(
    projections: np.ndarray,
    *,
    reference: Literal["previous", "first"] | np.ndarray = "previous",
    roi: Roi | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Displacement of every projection by phase correlation (when no wire is in view).

    Parameters
    ----------
    projections : ndarray, shape (angle, row, column)
    reference : {'previous', 'first'} or ndarray
        ``'previous'`` (default): each projection is registered to the one before and the
        steps are summed, so the result is the displacement relative to projection 0 (errors
        accumulate as a random walk, a few 0.001 px per step on clean synthetic data). ``'first'``:
        each projection against projection 0 directly (only when the content hardly changes).
        An array ``(row, column)``: against that image.
    roi : (slice, slice), optional
        Region ``(rows, cols)`` used for the registration, e.g. a part that does not rotate
        (the sample holder) or a fiducial.

    Returns
    -------
    dx_px, dy_px : ndarray, shape (angle,)
        Displacement of each projection's content (columns + right, rows + down) relative to
        the reference; ``shift_projections(p, -dx_px, -dy_px)`` aligns them.

    Notes
    -----
    Projections of a rotating specimen change with angle, so consecutive registration also
    measures the specimen's own apparent motion. Source jitter is fast while that motion is
    smooth in angle: high-pass the result (subtract a smoothed version) before correcting, or
    register a non-rotating region.
    """
    p = np.asarray(projections)
    if p.ndim != 3:
        raise ValueError(f"projections must be (angle, row, column), got shape {p.shape}")
    if roi is not None:
        p = p[:, roi[0], roi[1]]
    n = p.shape[0]
    dx = np.zeros(n)
    dy = np.zeros(n)
    if isinstance(reference, np.ndarray):
        ref = reference if roi is None else reference[roi[0], roi[1]]
        if ref.shape != p.shape[1:]:
            raise ValueError(f"reference has shape {ref.shape}, projections {p.shape[1:]}")
        for i in range(n):
            dx[i], dy[i] = phase_correlation_shift(ref, p[i])
    elif reference == "first":
        for i in range(1, n):
            dx[i], dy[i] = phase_correlation_shift(p[0], p[i])
    elif reference == "previous":
        for i in range(1, n):
            sx, sy = phase_correlation_shift(p[i - 1], p[i])
            dx[i], dy[i] = dx[i - 1] + sx, dy[i - 1] + sy
    else:
        raise ValueError(f"reference={reference!r} must be 'previous', 'first' or an array")
    return dx, dy


# --------------------------------------------------------------------------------------------
# Rotation axis
# --------------------------------------------------------------------------------------------


def center_of_rotation_180(
    proj0: np.ndarray, proj180: np.ndarray, *, rows: slice | None = None
) -> float:
    """Rotation-axis column from two projections 180 degrees apart (parallel beam).

    The projection at 180 degrees is the mirror image of the one at 0 about the axis. The
    mirrored ``proj180`` is registered against ``proj0`` by sub-pixel phase correlation: if
    it is displaced by ``d`` columns, the axis lies at ``c = ((n - 1) - d) / 2``.

    Parameters
    ----------
    proj0, proj180 : ndarray, shape (row, column) or (column,)
        Flat-fielded projections (``-log`` data work best: the background is then zero),
        same shape.
    rows : slice, optional
        Rows to use (default all). In cone beam only rows near the central ray are mirror
        images; use a band around it.

    Returns
    -------
    float
        Column index of the axis, in pixels, with ``(n_columns - 1) / 2`` the detector
        centre; 0 is the centre of the first column.
    """
    a = np.asarray(proj0, dtype=np.float64)
    b = np.asarray(proj180, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"proj0 {a.shape} and proj180 {b.shape} differ in shape")
    if a.ndim == 2 and rows is not None:
        a, b = a[rows], b[rows]
    elif a.ndim not in (1, 2):
        raise ValueError(f"projections must be 1-D or 2-D, got shape {a.shape}")
    n = a.shape[-1]
    d, _ = phase_correlation_shift(a, b[..., ::-1])
    return ((n - 1) - d) / 2.0


def _rotate_about(img: np.ndarray, phi: float, row0: float, col0: float) -> np.ndarray:
    """Resample ``img`` so that a line through (row0, col0) with column slope ``tan(phi)`` per
    row becomes vertical (cubic spline, border values repeated)."""
    c, s = np.cos(phi), np.sin(phi)
    mat = np.array([[c, -s], [s, c]])
    o = np.array([row0, col0])
    return ndimage.affine_transform(img, mat, offset=o - mat @ o, order=3, mode="nearest")


def axis_tilt(
    proj0: np.ndarray,
    proj180: np.ndarray,
    *,
    n_bands: int = 4,
    iterations: int = 6,
) -> tuple[float, float]:
    """Tilt of the rotation axis in the detector plane, from a 0/180 degree pair.

    The pair is cut into ``n_bands`` horizontal bands; `center_of_rotation_180` gives the axis
    column in each, and a straight line through them the tilt. That first estimate is low:
    the 180 degree projection is the 0 degree one *reflected across the tilted axis line*,
    which also moves content vertically in proportion to its distance from the axis, and the
    band registration mistakes part of that for a smaller tilt (how much depends on the
    specimen). So both images are rotated by a trial tilt (cubic spline, about the axis
    point at the middle row) and the tilt remaining in the rotated pair is measured again;
    the trial tilt at which none remains is found by secant steps (``iterations`` at most;
    they stop when the change falls below 1e-6 rad).

    Parameters
    ----------
    proj0, proj180 : ndarray, shape (row, column)
        Flat-fielded projections (``-log`` preferred), parallel beam (or a cone-beam pair of
        rows near the central ray).
    n_bands : int
        Number of horizontal bands (>= 2), each of >= 4 rows.
    iterations : int
        Most trial rotations (>= 1; 1 returns the uncorrected first estimate).

    Returns
    -------
    tilt_rad : float
        Angle of the axis from the column direction: the axis column grows by
        ``tan(tilt_rad)`` per row downwards. Positive: the axis runs from top left to bottom
        right in an image displayed with row 0 at the top.
    center_px : float
        Axis column at the middle row ``(n_rows - 1) / 2``.
    """
    a = np.asarray(proj0, dtype=np.float64)
    b = np.asarray(proj180, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"proj0 {a.shape} and proj180 {b.shape} must be equal 2-D shapes")
    if n_bands < 2 or iterations < 1:
        raise ValueError(f"n_bands={n_bands!r} must be >= 2 and iterations={iterations!r} >= 1")
    rows = a.shape[0]
    if rows < 4 * n_bands:
        raise ValueError(f"{rows} rows are too few for n_bands={n_bands} (>= 4 rows per band)")
    rmid = (rows - 1) / 2.0
    edges = np.linspace(0, rows, n_bands + 1).round().astype(int)
    band_rows = (edges[:-1] + edges[1:] - 1) / 2.0 - rmid

    def measure(phi: float, c_mid: float) -> tuple[float, float]:
        """Tilt remaining after rotating by ``phi``, and the axis column at the middle row
        in the original frame."""
        ra = _rotate_about(a, phi, rmid, c_mid) if phi else a
        rb = _rotate_about(b, phi, rmid, c_mid) if phi else b
        cs = [center_of_rotation_180(ra[lo:hi], rb[lo:hi]) for lo, hi in itertools.pairwise(edges)]
        slope, icpt = np.polyfit(band_rows, cs, 1)
        resid = float(np.arctan(slope))
        # the rotated frame's point (rmid, icpt) lies on the axis; its line has angle
        # phi + resid in the original frame
        delta = icpt - c_mid
        return resid, c_mid + delta * (np.cos(phi) + np.sin(phi) * np.tan(phi + resid))

    c_mid = center_of_rotation_180(a, b)
    phi0, (g0, c_mid) = 0.0, measure(0.0, c_mid)
    if iterations == 1:
        return g0, float(c_mid)
    phi1 = g0
    for _ in range(iterations - 1):
        g1, c_mid = measure(phi1, c_mid)
        if abs(g1) < 1e-7 or g1 == g0:
            break
        step = -g1 * (phi1 - phi0) / (g1 - g0)
        phi0, g0 = phi1, g1
        phi1 = phi1 + step
        if abs(step) < 1e-6:
            break
    return float(phi1), float(c_mid)


def _entropy(img: np.ndarray, lo: float, hi: float, bins: int = 256) -> float:
    h, _ = np.histogram(np.clip(img, lo, hi), bins=bins, range=(lo, hi))
    p = h[h > 0] / h.sum()
    return float(-(p * np.log(p)).sum())


def center_of_rotation_search(
    sinogram: np.ndarray,
    angles: np.ndarray,
    candidates: Sequence[float] | np.ndarray,
    reconstruct: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
    *,
    metric: Literal["entropy", "negativity"] = "entropy",
) -> tuple[float, np.ndarray]:
    """Rotation-axis column by reconstructing a slice at each candidate and scoring it.

    Parameters
    ----------
    sinogram : ndarray, shape (angle, column)
        ``-log`` data of one detector row.
    angles : ndarray, shape (angle,)
        Projection angles, radians.
    candidates : sequence of float
        Axis columns to try (``(n_columns - 1) / 2`` is the detector centre), in pixels.
    reconstruct : callable
        ``reconstruct(sinogram, angles, center) -> image (y, x)``: reconstructs the slice with
        the axis at column ``center`` (same convention). Any backend will do (e.g. nanoct's FBP
        with a coarse grid), so this module does not depend on the reconstruction modules.
    metric : {'entropy', 'negativity'}
        Scored inside the inscribed circle of the image. ``'entropy'`` (default): Shannon
        entropy of the grey-value histogram (256 bins over a range fixed from the middle
        candidate's reconstruction), lowest when the slice is free of the doubled edges
        and arcs of a wrong centre (Donath et al., J. Opt. Soc. Am. A 23 (2006) 1048).
        ``'negativity'``: the sum of squares of the negative values over the sum of squares
        of all values; the arcs of a wrong centre undershoot below zero (for specimens of
        non-negative attenuation it has a deeper, smoother minimum than the entropy).
        (The mean squared gradient, a "sharpness", was tried and rejected: the streaks of a
        wrong centre raise it as much as the blur lowers it.)

    Returns
    -------
    best_center_px : float
        The candidate with the lowest score, refined by a parabola through it and its two
        neighbours when it is not at either end of the list.
    scores : ndarray, shape (len(candidates),)
        Score of each candidate (lower is better), in the order given.
    """
    cand = np.asarray(candidates, dtype=np.float64).ravel()
    if cand.size == 0:
        raise ValueError("candidates is empty")
    if metric not in ("entropy", "negativity"):
        raise ValueError(f"metric={metric!r} is not one of 'entropy', 'negativity'")
    sino = np.asarray(sinogram)
    if sino.ndim != 2:
        raise ValueError(f"sinogram must be (angle, column), got shape {sino.shape}")
    ang = np.asarray(angles, dtype=np.float64).ravel()
    if ang.size != sino.shape[0]:
        raise ValueError(f"angles has {ang.size} entries for {sino.shape[0]} sinogram rows")
    order = np.argsort(np.abs(np.arange(cand.size) - (cand.size - 1) / 2.0), kind="stable")
    scores = np.empty(cand.size)
    mask = None
    lo = hi = 0.0
    for k in order:
        img = np.asarray(reconstruct(sino, ang, float(cand[k])), dtype=np.float64)
        if mask is None:
            ny, nx = img.shape
            yy, xx = np.mgrid[:ny, :nx]
            r = min(ny, nx) / 2.0 - 1.0
            mask = (yy - (ny - 1) / 2.0) ** 2 + (xx - (nx - 1) / 2.0) ** 2 <= r * r
            v = img[mask]
            p1, p99 = np.percentile(v, [0.5, 99.5])
            span = max(p99 - p1, np.finfo(np.float64).eps)
            lo, hi = p1 - 0.5 * span, p99 + 0.5 * span
        if metric == "entropy":
            scores[k] = _entropy(img[mask], lo, hi)
        else:
            v = img[mask]
            neg = v[v < 0]
            scores[k] = (neg**2).sum() / max((v**2).sum(), np.finfo(np.float64).tiny)
    i = int(np.argmin(scores))
    best = float(cand[i])
    if 0 < i < cand.size - 1:
        x0, x1, x2 = cand[i - 1 : i + 2]
        y0, y1, y2 = scores[i - 1 : i + 2]
        den = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
        if a > 0:
            best = float(np.clip(-b / (2 * a), x0, x2))
    return best, scores
