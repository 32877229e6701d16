"""One reconstruction entry point over nanoct's own kernels, tomopy and astra-toolbox.

:func:`reconstruct` takes the same arguments whatever the backend and returns the same
orientation, centre convention and units as nanoct's own functions
(:func:`nanoct.recon.fbp.fbp`, :func:`nanoct.recon.fdk.fdk`,
:func:`nanoct.recon.iterative.sirt`); the foreign libraries' conventions are translated here.

========  =====================  ==========================================================
backend   algorithms             notes
========  =====================  ==========================================================
nanoct    fbp, fdk, sirt         always available; "auto" means nanoct
tomopy    fbp (gridrec)          parallel beam only; conda-only, used when importable. Its
                                 orientation, centre convention (``center`` = column of the
                                 axis; default ``n/2`` which nanoct never relies on) and
                                 scale are measured once per process on a small asymmetric
                                 phantom (:func:`calibrate_parallel`), since tomopy cannot
                                 be installed in nanoct's CI to pin them in a test.
astra     fbp, sirt (CPU 2-D),   CPU: slice by slice with the ``linear`` projector, angles
          fdk (CUDA only)        negated (astra's 2-D ``y`` points up) and an off-centre
                                 axis moved to the detector middle by a Fourier shift of
                                 the sinogram (astra's CPU FBP has no detector offset).
                                 FDK_CUDA runs only when ``astra.use_cuda()`` is true
                                 (a CUDA algorithm without a GPU can kill the process with
                                 SIGFPE); its orientation and scale are checked once per
                                 process on a small phantom (:func:`calibrate_cone`).
========  =====================  ==========================================================
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.fft

from nanoct.recon.fbp import (
    as_angles,
    as_projections,
    as_slices,
    check_out,
    fbp,
    forward_project_parallel,
)
from nanoct.recon.fdk import (
    ConeGeometry,
    _resolve_voxel,
    _volume,
    fdk,
    forward_project_cone,
)
from nanoct.recon.filters import FILTERS
from nanoct.recon.iterative import sirt

__all__ = [
    "ALGORITHMS",
    "BACKENDS",
    "Calibration",
    "available_backends",
    "calibrate_cone",
    "calibrate_parallel",
    "reconstruct",
]

logger = logging.getLogger(__name__)

ALGORITHMS = ("fdk", "fbp", "sirt")
BACKENDS = ("nanoct", "tomopy", "astra", "auto")

_TOMOPY_FILTERS = {
    "ram-lak": "ramlak",
    "shepp-logan": "shepp",
    "cosine": "cosine",
    "hamming": "hamming",
    "hann": "hann",
}
_CONE_KEYS = ("sod_mm", "sdd_mm", "pixel_mm", "offset_u_mm", "offset_v_mm")


# --------------------------------------------------------------------------- availability
def _import(name: str):
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken binary wheel
        return None


def available_backends() -> dict[str, bool]:
    """Which backends can run here: ``{"nanoct", "tomopy", "astra", "astra_cuda"}``."""
    astra = _import("astra")
    cuda = False
    if astra is not None:
        try:
            cuda = bool(astra.use_cuda())
        except Exception:
            cuda = False
    return {
        "nanoct": True,
        "tomopy": _import("tomopy") is not None,
        "astra": astra is not None,
        "astra_cuda": cuda,
    }


def _require(backend: str):
    module = _import(backend)
    if module is None:
        hint = " (tomopy is conda-only)" if backend == "tomopy" else ""
        raise ValueError(f"backend={backend!r} is not installed here{hint}; use backend='nanoct'")
    return module


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """How a foreign reconstruction maps onto nanoct's convention.

    ``transform`` indexes the 8 symmetries of the square applied to the last two axes
    (:func:`apply_transform`), ``flip_z`` reverses the first axis (cone only),
    ``center_shift`` is added to ``center_col`` before calling the backend, and ``scale``
    multiplies its output. ``error`` is the relative RMS error on the probe phantom.
    """

    transform: int = 0
    center_shift: float = 0.0
    scale: float = 1.0
    flip_z: bool = False
    error: float = 0.0


def apply_transform(a: np.ndarray, k: int) -> np.ndarray:
    """Symmetry ``k`` (0..7) of the square on the last two axes: rot90 ``k % 4`` times,
    then a left-right flip when ``k >= 4``."""
    out = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return out


def _phantom2d(n: int) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - (n - 1) / 2.0
    s = n / 48.0
    img = ((x - 8 * s) ** 2 + (y + 5 * s) ** 2 < (10 * s) ** 2) * 1.0
    img += ((x + 12 * s) ** 2 + (y - 10 * s) ** 2 < (4 * s) ** 2) * 2.0
    img += (np.abs(x + 10 * s) < 3 * s) & (np.abs(y + 12 * s) < 2 * s)
    return img


def _fit(rec: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Least-squares scale and relative RMS error of ``scale * rec`` against ``ref``."""
    den = float(np.vdot(rec, rec))
    if not math.isfinite(den) or den <= 0:
        return 1.0, math.inf
    scale = float(np.vdot(rec, ref)) / den
    err = float(np.linalg.norm(scale * rec - ref) / np.linalg.norm(ref))
    return scale, err


def calibrate_parallel(
    recon: Callable[[np.ndarray, np.ndarray, float], np.ndarray], n: int = 48
) -> Calibration:
    """Measure a parallel-beam backend's orientation, centre offset and scale.

    ``recon(sinogram, angles, center_col)`` must return an ``(n, n)`` slice for an
    ``(angles, n)`` sinogram made in nanoct's convention. The phantom is asymmetric and the
    axis off-centre by 2.3 pixels, so a wrong orientation, a half-pixel centre error or a
    mirrored detector all show. Raises RuntimeError when no candidate fits.
    """
    img = _phantom2d(n)
    angles = np.arange(4 * n) * np.pi / (4 * n)
    center = (n - 1) / 2.0 + 2.3
    sino = forward_project_parallel(img, angles, center_col=center)
    best = Calibration(error=math.inf)
    for shift in (0.0, -0.5, 0.5):
        rec = np.asarray(recon(sino, angles, center + shift), dtype=np.float64)
        if rec.shape != img.shape:
            raise RuntimeError(f"calibration: backend returned shape {rec.shape}, not {img.shape}")
        for k in range(8):
            scale, err = _fit(apply_transform(rec, k), img)
            if err < best.error:
                best = Calibration(transform=k, center_shift=shift, scale=scale, error=err)
    if best.error > 0.5:
        raise RuntimeError(
            f"calibration: the backend's reconstruction matches no orientation (best relative "
            f"error {best.error:.2f}); its geometry convention is not understood"
        )
    logger.info("parallel backend calibration: %s", best)
    return best


def calibrate_cone(
    recon: Callable[..., np.ndarray], n: int = 32, offset_u_mm: float = 0.8
) -> Calibration:
    """Measure a cone-beam backend's orientation (8 in-plane symmetries x z flip) and scale.

    ``recon(projections, angles, geometry: dict, volume_shape, voxel_mm)`` must return a
    ``volume_shape`` array for projections made by :func:`forward_project_cone`; the probe
    detector is off-centre by ``offset_u_mm`` so a wrong offset sign shows too.
    """
    geo = {"sod_mm": 40.0, "sdd_mm": 160.0, "pixel_mm": 0.4, "offset_u_mm": offset_u_mm}
    vox = 0.1
    shape = (n, n, n)
    z, y, x = np.meshgrid(*(3 * [(np.arange(n) - (n - 1) / 2.0) * vox]), indexing="ij")
    s = n * vox / 3.2  # 1 mm for the default 32 voxels of 0.1 mm
    vol = (((x - 0.6 * s) ** 2 + (y + 0.3 * s) ** 2 + (z - 0.4 * s) ** 2) < (0.8 * s) ** 2) * 1.0
    vol += ((x + 0.8 * s) ** 2 + (y - 0.7 * s) ** 2 + (z + 0.6 * s) ** 2 < (0.4 * s) ** 2) * 2.0
    angles = np.arange(90) * 2 * np.pi / 90
    proj = forward_project_cone(vol, angles, detector_shape=(n + 8, n + 8), voxel_mm=vox, **geo)
    rec = np.asarray(recon(proj, angles, geo, shape, vox), dtype=np.float64)
    best = Calibration(error=math.inf)
    for flip in (False, True):
        r = rec[::-1] if flip else rec
        for k in range(8):
            scale, err = _fit(apply_transform(r, k), vol)
            if err < best.error:
                best = Calibration(transform=k, scale=scale, flip_z=flip, error=err)
    if best.error > 0.6:
        raise RuntimeError(
            f"calibration: the cone-beam backend matches no orientation (best relative error "
            f"{best.error:.2f})"
        )
    logger.info("cone backend calibration: %s", best)
    return best


def _undo(rec: np.ndarray, cal: Calibration) -> np.ndarray:
    out = apply_transform(rec, cal.transform)
    if cal.flip_z:
        out = out[::-1]
    return np.ascontiguousarray(out * cal.scale, dtype=np.float32)


# --------------------------------------------------------------------------- tomopy
def _tomopy_fbp_raw(sino3d, angles, center, filter="ram-lak"):
    tomopy = _require("tomopy")
    return tomopy.recon(
        np.ascontiguousarray(sino3d, dtype=np.float32),
        angles,
        center=center,
        algorithm="gridrec",
        filter_name=_TOMOPY_FILTERS[filter],
        sinogram_order=False,
    )


@functools.cache
def _tomopy_calibration() -> Calibration:
    return calibrate_parallel(lambda s, a, c: _tomopy_fbp_raw(s[:, None, :], a, c)[0])


def _tomopy(algorithm: str, p: np.ndarray, a: np.ndarray, options: dict) -> np.ndarray:
    if algorithm != "fbp":
        raise ValueError(
            f"backend='tomopy' implements algorithm='fbp' here (parallel beam), not "
            f"algorithm={algorithm!r}; use backend='nanoct'"
        )
    _require("tomopy")
    opts = dict(options)
    filter = opts.pop("filter", "ram-lak")
    center_col = opts.pop("center_col", None)
    slices = opts.pop("slices", None)
    pixel_mm = opts.pop("pixel_mm", None)
    out = opts.pop("out", None)
    _no_more(opts, "tomopy", algorithm)
    if filter not in _TOMOPY_FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    cal = _tomopy_calibration()
    p3 = p[:, None, :] if p.ndim == 2 else p
    idx = as_slices(slices, p3.shape[1]) if p.ndim == 3 else np.array([0])
    n = p3.shape[-1]
    center = (n - 1) / 2.0 if center_col is None else float(center_col)
    raw = _tomopy_fbp_raw(p3[:, idx, :], a, center + cal.center_shift, filter)
    rec = _undo(raw, cal)
    if pixel_mm is not None:
        rec /= float(pixel_mm)
    rec = rec[0] if p.ndim == 2 else rec
    return _into(out, rec)


# --------------------------------------------------------------------------- astra
def _centre_sinogram(sino: np.ndarray, center: float) -> np.ndarray:
    """Move the axis from column ``center`` to the middle of a wider sinogram (Fourier
    shift, exact for band-limited rows; zero padding keeps it from wrapping round)."""
    n = sino.shape[-1]
    d = (n - 1) / 2.0 - center
    if d == 0.0:
        return np.asarray(sino, dtype=np.float32)
    pad = math.ceil(abs(d)) + 2
    n2 = n + 2 * pad
    buf = np.zeros((*sino.shape[:-1], n2), np.float64)
    buf[..., pad : pad + n] = sino
    nf = scipy.fft.next_fast_len(2 * n2, real=True)
    spec = scipy.fft.rfft(buf, nf, axis=-1)
    spec *= np.exp(-2j * np.pi * scipy.fft.rfftfreq(nf) * d)
    return scipy.fft.irfft(spec, nf, axis=-1)[..., :n2].astype(np.float32)


def _astra_2d(astra, algorithm: str, sino: np.ndarray, a: np.ndarray, size, cfg_opt, n_iter):
    ny, nx = size
    vol_geom = astra.create_vol_geom(ny, nx)
    proj_geom = astra.create_proj_geom("parallel", 1.0, sino.shape[-1], -a)
    pid = astra.create_projector("linear", proj_geom, vol_geom)
    sid = astra.data2d.create("-sino", proj_geom, sino)
    rid = astra.data2d.create("-vol", vol_geom, 0.0)
    aid = None
    try:
        cfg = astra.astra_dict(algorithm)
        cfg["ProjectorId"] = pid
        cfg["ProjectionDataId"] = sid
        cfg["ReconstructionDataId"] = rid
        cfg["option"] = cfg_opt
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid, n_iter)
        return astra.data2d.get(rid).astype(np.float32)
    finally:
        if aid is not None:
            astra.algorithm.delete(aid)
        astra.data2d.delete(sid)
        astra.data2d.delete(rid)
        astra.projector.delete(pid)


def _astra_parallel(algorithm: str, p: np.ndarray, a: np.ndarray, options: dict) -> np.ndarray:
    astra = _require("astra")
    opts = dict(options)
    if opts.pop("geometry", "parallel") != "parallel":
        _cone_refused("astra", algorithm)
    center_col = opts.pop("center_col", None)
    slices = opts.pop("slices", None)
    size = opts.pop("size", None)
    pixel_mm = opts.pop("pixel_mm", None)
    out = opts.pop("out", None)
    if algorithm == "fbp":
        filter = opts.pop("filter", "ram-lak")
        if filter not in FILTERS:
            raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
        name, cfg_opt, n_iter = "FBP", {"FilterType": filter}, 1
    else:
        n_iter = int(opts.pop("n_iter", 100))
        if n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
        nonneg = bool(opts.pop("nonnegative", True))
        name, cfg_opt = "SIRT", ({"MinConstraint": 0.0} if nonneg else {})
    _no_more(opts, "astra", algorithm)
    n = p.shape[-1]
    if size is None:
        size = (n, n)
    elif isinstance(size, int | np.integer):
        size = (int(size), int(size))
    center = (n - 1) / 2.0 if center_col is None else float(center_col)
    p3 = p[:, None, :] if p.ndim == 2 else p
    idx = as_slices(slices, p3.shape[1]) if p.ndim == 3 else np.array([0])
    rec = np.empty((idx.size, *size), np.float32)
    for m, row in enumerate(idx):
        sino = _centre_sinogram(np.asarray(p3[:, row, :], dtype=np.float64), center)
        rec[m] = _astra_2d(astra, name, sino, a, size, cfg_opt, n_iter)
    if pixel_mm is not None:
        rec /= float(pixel_mm)
    rec = rec[0] if p.ndim == 2 else rec
    return _into(out, rec)


def _cone_vectors(geom: ConeGeometry, angles: np.ndarray) -> np.ndarray:
    """astra ``cone_vec`` rows (src, d, u, v) for nanoct's geometry, in voxel-index-aligned
    coordinates (x = last axis, y = middle axis, z = first axis, z down, mm)."""
    c, s = np.cos(angles), np.sin(angles)
    vec = np.zeros((angles.size, 12))
    sod, sdd, pix = geom.sod_mm, geom.sdd_mm, geom.pixel_mm
    vec[:, 0], vec[:, 1] = sod * s, -sod * c  # source
    vec[:, 3] = -(sdd - sod) * s + geom.offset_u_mm * c  # detector centre
    vec[:, 4] = (sdd - sod) * c + geom.offset_u_mm * s
    vec[:, 5] = -geom.offset_v_mm
    vec[:, 6], vec[:, 7] = pix * c, pix * s  # one column to the next
    vec[:, 11] = pix  # one row to the next (down)
    return vec


def _astra_fdk_raw(astra, proj, angles, geo: dict, vol_shape, vox):
    geom = ConeGeometry(**geo)
    nz, ny, nx = vol_shape
    vol_geom = astra.create_vol_geom(
        ny, nx, nz, -nx * vox / 2, nx * vox / 2, -ny * vox / 2, ny * vox / 2,
        -nz * vox / 2, nz * vox / 2,
    )  # fmt: skip
    n_rows, n_cols = proj.shape[1], proj.shape[2]
    proj_geom = astra.create_proj_geom("cone_vec", n_rows, n_cols, _cone_vectors(geom, angles))
    data = np.ascontiguousarray(np.transpose(np.asarray(proj, np.float32), (1, 0, 2)))
    pid = astra.data3d.create("-proj3d", proj_geom, data)
    rid = astra.data3d.create("-vol", vol_geom, 0.0)
    aid = None
    try:
        cfg = astra.astra_dict("FDK_CUDA")
        cfg["ProjectionDataId"] = pid
        cfg["ReconstructionDataId"] = rid
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid)
        return astra.data3d.get(rid)
    finally:
        if aid is not None:
            astra.algorithm.delete(aid)
        astra.data3d.delete(pid)
        astra.data3d.delete(rid)


@functools.cache
def _astra_cone_calibration() -> Calibration:
    astra = _require("astra")
    return calibrate_cone(lambda p, a, g, s, v: _astra_fdk_raw(astra, p, a, g, s, v))


def _astra_fdk(p, a, options: dict) -> np.ndarray:
    astra = _require("astra")
    if not available_backends()["astra_cuda"]:
        raise ValueError(
            "backend='astra' does cone-beam algorithm='fdk' only with CUDA (FDK_CUDA) and "
            "astra.use_cuda() is False here; use backend='nanoct'"
        )
    opts = dict(options)
    geo = {k: opts.pop(k) for k in _CONE_KEYS if k in opts}
    missing = [k for k in ("sod_mm", "sdd_mm", "pixel_mm") if k not in geo]
    if missing:
        raise ValueError(f"algorithm='fdk' needs {missing}")
    geom = ConeGeometry(**geo)
    if p.ndim != 3:
        raise ValueError(f"projections must be 3-D for algorithm='fdk', got shape {p.shape}")
    vol_shape = _volume(opts.pop("volume_shape", None), p.shape[1], p.shape[2])
    vox = _resolve_voxel(opts.pop("voxel_mm", None), geom)
    slices = opts.pop("slices", None)
    out = opts.pop("out", None)
    filter = opts.pop("filter", "ram-lak")
    opts.pop("chunk_slices", None)  # astra reconstructs the volume in one go
    if filter != "ram-lak":
        raise ValueError(f"backend='astra' FDK_CUDA supports filter='ram-lak' only, got {filter!r}")
    _no_more(opts, "astra", "fdk")
    cal = _astra_cone_calibration()
    rec = _undo(_astra_fdk_raw(astra, p, a, geo, vol_shape, vox), cal)
    if slices is not None:
        rec = np.ascontiguousarray(rec[as_slices(slices, vol_shape[0])])
    return _into(out, rec)


# --------------------------------------------------------------------------- dispatch
def _cone_refused(backend: str, algorithm: str):
    raise ValueError(
        f"backend={backend!r} cannot do cone-beam geometry for algorithm={algorithm!r}; "
        "use backend='nanoct'"
    )


def _no_more(opts: dict, backend: str, algorithm: str) -> None:
    if not opts:
        return
    if any(k in opts for k in ("sod_mm", "sdd_mm")):
        _cone_refused(backend, algorithm)
    raise ValueError(
        f"unknown or unsupported keyword(s) {sorted(opts)} for backend={backend!r}, "
        f"algorithm={algorithm!r}"
    )


def _into(out, rec: np.ndarray) -> np.ndarray:
    if out is None:
        return rec
    target = check_out(out, rec.shape)
    target[...] = rec
    return target


def reconstruct(
    projections,
    angles,
    *,
    algorithm: str = "fdk",
    backend: str = "auto",
    **geometry,
) -> np.ndarray:
    """Reconstruct with the chosen algorithm and backend; one signature for all.

    Parameters
    ----------
    projections : array_like
        ``(angle, row, column)`` line integrals, or a sinogram ``(angle, column)`` for the
        parallel-beam algorithms.
    angles : array_like
        Radians, nanoct's sign convention (:mod:`nanoct.recon.fbp`, :mod:`nanoct.recon.fdk`).
    algorithm : {"fdk", "fbp", "sirt"}
        Cone-beam FDK, parallel-beam FBP, or SIRT (parallel; cone when ``sod_mm`` is given
        or ``geometry="cone"``).
    backend : {"auto", "nanoct", "tomopy", "astra"}
        ``"auto"`` is nanoct's own kernels.
    **geometry
        Keywords of the nanoct function for the algorithm: FDK ``sod_mm, sdd_mm, pixel_mm,
        offset_u_mm, offset_v_mm, volume_shape, voxel_mm, slices, chunk_slices, filter,
        out``; FBP ``center_col, filter, slices, size, pixel_mm, out, method``; SIRT ``n_iter,
        nonnegative, ...``. A foreign backend refuses keywords it cannot honour.

    Returns
    -------
    numpy.ndarray
        float32 slice or volume in nanoct's orientation and units.

    Raises
    ------
    ValueError
        Unknown ``algorithm`` or ``backend``, a backend that is not installed, or one that
        cannot do the geometry (tomopy and astra's CPU path are parallel-beam only).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "nanoct"
    if backend == "nanoct":
        if algorithm == "fbp":
            return fbp(projections, angles, **geometry)
        if algorithm == "fdk":
            return fdk(projections, angles, **geometry)
        opts = dict(geometry)
        if "geometry" not in opts:
            opts["geometry"] = "cone" if "sod_mm" in opts else "parallel"
        return sirt(projections, angles, **opts)
    p = as_projections(projections, "projections")
    a = as_angles(angles, p.shape[0])
    cone = algorithm == "fdk" or geometry.get("geometry") == "cone" or "sod_mm" in geometry
    if backend == "tomopy":
        if cone:
            _cone_refused("tomopy", algorithm)
        return _tomopy(algorithm, p, a, geometry)
    # astra
    if algorithm == "fdk":
        return _astra_fdk(p, a, geometry)
    if cone:
        _cone_refused("astra", algorithm)
    return _astra_parallel(algorithm, p, a, geometry)
