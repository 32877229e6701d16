"""Image formation: from source, geometry and specimen to the energy deposited in each pixel.

For each exposure:

1. Rays run from the (drifted) focal-spot centre to every pixel centre (``oversample`` x
   ``oversample`` rays per pixel when asked). Exact chord lengths through every feature give,
   per material, the signed path length ``L_m`` (see :mod:`nanoct.devices.sim.specimens`).
2. Beer-Lambert over the spectrum: ``T(E) = exp(-sum_m mu_m(E) L_m)``, weighted by the energy
   each photon deposits in the scintillator (``a_E``), gives the transmitted fraction of the
   detected signal and the ``<E^2>/<E>`` the noise model needs.
3. The focal spot blurs each object by its own magnification: a Gaussian spot of the present
   10 % isodose size projected by ``(M - 1)``, plus the secondary spot's ghost, shifted by
   ``-offset * (M - 1)`` and weighted by the parhelion weight. The specimen (at the rotation
   axis) and the reference wire (at its own distance) are blurred separately; their shadows do
   not overlap on the detector, so the product of the two blurred transmissions is exact there.
   The scintillator's light spread is folded into the same filter.
4. The open beam: photons per steradian from the spectrum, times the tube current and output
   factor, the pixel's solid angle (``cos^3`` falloff of a flat detector), air over the
   source-detector distance, and the source's angular emission pattern, to which the secondary
   spot adds a broad blob (this is what makes consecutive flats differ, Fig. 4 of the paper).

Simplifications (documented, deliberate): magnification across the specimen's depth is exact
for the ray geometry but the blur uses the magnification of the rotation axis; the spot is a
round Gaussian; beam hardening couples specimen and wire only where their shadows overlap,
which the layout avoids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft

from nanoct.devices.sim.geometry import CTGeometry, DetectorGrid
from nanoct.devices.sim.kernels import accumulate_chords, polychromatic_transmission
from nanoct.devices.sim.materials import absorbed_fraction, attenuation_table
from nanoct.devices.sim.source import SourceState
from nanoct.devices.sim.specimens import Specimen
from nanoct.devices.sim.spectrum import Spectrum

__all__ = ["DetectedSpectrum", "EmissionPattern", "Renderer", "blur"]

UM = 1e-3


@dataclass(frozen=True)
class DetectedSpectrum:
    """The spectrum as the detector weighs it, after air over the source-detector distance.

    ``deposit_kev_per_s_sr_ua`` is the energy deposited in the scintillator per second, per
    steradian and per uA in the open beam; ``weights`` its split over the energy bins.
    """

    energies_kev: np.ndarray
    weights: np.ndarray
    deposit_kev_per_s_sr_ua: float

    @classmethod
    def build(
        cls, spectrum: Spectrum, *, sdd_mm: float, scintillator: str, scintillator_um: float
    ) -> DetectedSpectrum:
        e = np.asarray(spectrum.energies_kev, dtype=float)
        air = attenuation_table(["air"], e)[0]
        photons = np.asarray(spectrum.photons_per_s_sr_ua, dtype=float) * np.exp(-air * sdd_mm)
        deposit = photons * absorbed_fraction(scintillator, scintillator_um, e) * e
        total = float(deposit.sum())
        return cls(e, deposit / total, total)

    @property
    def e_var_open_kev(self) -> float:
        return float((self.weights * self.energies_kev).sum())


@dataclass(frozen=True)
class EmissionPattern:
    """Angular emission of the source relative to the beam axis.

    The main spot emits a smooth field with a static non-uniformity of +-2 % (window and target
    texture; assumption). The secondary spot emits a blob centred ``center_rad`` off axis, of
    width ``sigma_rad`` and peak ``peak`` times the main spot's emission per unit weight
    (assumptions: shape and size chosen to resemble the paper's Fig. 4).
    """

    center_rad: tuple[float, float] = (0.06, -0.04)
    sigma_rad: float = 0.035
    peak: float = 2.0
    texture: float = 0.02

    def main(self, ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
        return 1.0 + self.texture * (np.sin(23.0 * ax + 1.3) * np.cos(17.0 * ay - 0.4))

    def secondary(self, ax: np.ndarray, ay: np.ndarray) -> np.ndarray:
        d2 = (ax - self.center_rad[0]) ** 2 + (ay - self.center_rad[1]) ** 2
        return 1.0 + self.peak * np.exp(-d2 / (2 * self.sigma_rad**2))


def blur(
    image: np.ndarray,
    sigma_px: float,
    *,
    ghost_weight: float = 0.0,
    ghost_shift_px: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Convolve with ``(1 - w) G + w G(shifted)`` (Gaussian G of ``sigma_px``), edge-padded.

    ``ghost_shift_px`` is (rows, cols). Exact in Fourier space; the pad is wide enough that
    nothing wraps around.
    """
    if sigma_px <= 0.0 and ghost_weight == 0.0:
        return image
    pad = int(np.ceil(4 * sigma_px + max(abs(ghost_shift_px[0]), abs(ghost_shift_px[1])))) + 2
    rows, cols = image.shape
    shape = (
        fft.next_fast_len(rows + 2 * pad, real=True),
        fft.next_fast_len(cols + 2 * pad, real=True),
    )
    padded = np.pad(
        image, ((pad, shape[0] - rows - pad), (pad, shape[1] - cols - pad)), mode="edge"
    )
    fy = fft.fftfreq(shape[0])
    fx = fft.rfftfreq(shape[1])
    # the transfer function is separable: Gaussian x ((1 - w) + w * shift phase)
    gy = np.exp(-2.0 * np.pi**2 * sigma_px**2 * fy**2)
    gx = np.exp(-2.0 * np.pi**2 * sigma_px**2 * fx**2)
    h = np.outer(gy, gx).astype(np.complex64)
    if ghost_weight:
        py = gy * np.exp(-2j * np.pi * fy * ghost_shift_px[0])
        px = gx * np.exp(-2j * np.pi * fx * ghost_shift_px[1])
        h *= np.float32(1.0 - ghost_weight)
        h += np.float32(ghost_weight) * np.outer(py, px).astype(np.complex64)
    spec = fft.rfft2(padded.astype(np.float32, copy=False), workers=-1)
    spec *= h
    out = fft.irfft2(spec, s=shape, workers=-1)
    return out[pad : pad + rows, pad : pad + cols].astype(image.dtype, copy=False)


class Renderer:
    """Renders the expected deposited energy for one exposure.

    Parameters
    ----------
    materials : sequence of str
        Every material that can occur (specimen and wire); fixes the attenuation table.
    oversample : int
        Rays per pixel along each axis (1 = pixel centres only).
    """

    def __init__(self, materials: tuple[str, ...], *, oversample: int = 1) -> None:
        if oversample not in (1, 2, 3, 4):
            raise ValueError(f"oversample={oversample!r} must be 1, 2, 3 or 4")
        self.materials = tuple(sorted(set(materials) | {"air"}))
        self._index = {m: i for i, m in enumerate(self.materials)}
        self.oversample = oversample
        self._mu_cache: dict[tuple[float, ...], np.ndarray] = {}
        self._open_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _mu(self, energies_kev: np.ndarray) -> np.ndarray:
        key = tuple(np.round(energies_kev, 6))
        if key not in self._mu_cache:
            self._mu_cache[key] = attenuation_table(list(self.materials), energies_kev).T.copy()
        return self._mu_cache[key]

    def _open_beam(
        self, grid: DetectorGrid, sdd_mm: float, native_pixel_mm: float, pattern: EmissionPattern
    ) -> tuple[np.ndarray, np.ndarray]:
        """Solid angle of each native pixel (a flat pixel subtends ``A cos(theta) / r^2``) times
        the main and the secondary spot's emission, float32, cached per detector layout.

        Seen from the detector the spot's drift (um) changes these angles by ~1e-6: the cache
        ignores it (the drift's effect on the image is in the rays, not here)."""
        key = (grid, sdd_mm, native_pixel_mm, pattern)
        if key not in self._open_cache:
            u = grid.u_mm()[None, :]
            v = grid.v_mm()[:, None]
            omega = native_pixel_mm**2 * sdd_mm / (u**2 + v**2 + sdd_mm**2) ** 1.5
            ax, ay = u / sdd_mm, v / sdd_mm
            self._open_cache.clear()  # one layout at a time is what an acquisition needs
            self._open_cache[key] = (
                (omega * pattern.main(ax, ay)).astype(np.float32),
                (omega * pattern.secondary(ax, ay)).astype(np.float32),
            )
        return self._open_cache[key]

    # ---- step 1: path lengths ------------------------------------------------------------
    def path_lengths(
        self,
        specimen: Specimen,
        grid: DetectorGrid,
        geometry: CTGeometry,
        source_mm: np.ndarray,
        *,
        rotates: bool,
    ) -> np.ndarray | None:
        """Signed path length per material, (n_materials, rows, cols) float32 mm, or None if
        no feature's footprint touches the grid."""
        if rotates:
            rot = geometry.specimen_rotation()
            origin = geometry.axis_position()
        else:
            rot = np.eye(3)
            origin = np.zeros(3)
        src_local = (source_mm - origin) @ rot
        u_all, v_all = grid.u_mm(), grid.v_mm()
        lengths: np.ndarray | None = None
        for feat in specimen.features:
            corners_lab = feat.shape.corners() @ rot.T + origin
            u, v = geometry.project(corners_lab, source_mm)
            r, c = grid.to_pixel(u, v)
            r0, r1 = max(int(np.floor(r.min())) - 1, 0), min(int(np.ceil(r.max())) + 2, grid.rows)
            c0, c1 = max(int(np.floor(c.min())) - 1, 0), min(int(np.ceil(c.max())) + 2, grid.cols)
            if r0 >= r1 or c0 >= c1:
                continue
            if lengths is None:
                lengths = np.zeros((len(self.materials), grid.rows, grid.cols), dtype=np.float32)
            center, frame, kind, params = feat.shape.local_frame()
            accumulate_chords(
                lengths,
                self._index[feat.material],
                self._index[feat.displaces],
                r0,
                c0,
                u_all[c0:c1],
                v_all[r0:r1],
                np.asarray(source_mm, dtype=np.float64),
                float(geometry.sdd_mm),
                rot @ frame,
                (src_local - center) @ frame,
                kind,
                *params,
            )
        return lengths

    @staticmethod
    def _footprint(
        obj: Specimen,
        grid: DetectorGrid,
        geometry: CTGeometry,
        source_mm: np.ndarray,
        rotates: bool,
        margin_mm: float,
    ) -> tuple[tuple[int, int, int, int], DetectorGrid] | None:
        """Pixel window ``(r0, r1, c0, c1)`` that the object's shadow (plus ``margin_mm``) can
        touch, and the sub-grid of those pixels; None if it misses the detector."""
        corners = obj.corners()
        if rotates:
            corners = corners @ geometry.specimen_rotation().T + geometry.axis_position()
        u, v = geometry.project(corners, source_mm)
        m = margin_mm / grid.pixel_mm + 1.0
        r, c = grid.to_pixel(u, v)
        r0 = max(int(np.floor(r.min() - m)), 0)
        r1 = min(int(np.ceil(r.max() + m)) + 1, grid.rows)
        c0 = max(int(np.floor(c.min() - m)), 0)
        c1 = min(int(np.ceil(c.max() + m)) + 1, grid.cols)
        if r0 >= r1 or c0 >= c1:
            return None
        u_all, v_all = grid.u_mm(), grid.v_mm()
        sub = DetectorGrid(
            rows=r1 - r0,
            cols=c1 - c0,
            pixel_mm=grid.pixel_mm,
            offset_u_mm=float((u_all[c0] + u_all[c1 - 1]) / 2.0),
            offset_v_mm=float((v_all[r0] + v_all[r1 - 1]) / 2.0),
        )
        return (r0, r1, c0, c1), sub

    # ---- step 2: polychromatic transmission ----------------------------------------------
    def transmission(
        self, lengths: np.ndarray, detected: DetectedSpectrum
    ) -> tuple[np.ndarray, np.ndarray]:
        """(T, E_var): detected-signal transmission and ``<E^2>/<E>`` per pixel."""
        rows, cols = lengths.shape[1:]
        t = np.empty((rows, cols), dtype=np.float32)
        e_var = np.empty((rows, cols), dtype=np.float32)
        mu = self._mu(detected.energies_kev).astype(np.float32)
        w = detected.weights.astype(np.float32)
        we = (detected.weights * detected.energies_kev).astype(np.float32)
        polychromatic_transmission(
            lengths, mu, w, we, np.float32(detected.e_var_open_kev), t, e_var
        )
        return t, e_var

    # ---- steps 3-4: the whole exposure ---------------------------------------------------
    def deposited_energy(
        self,
        *,
        source: SourceState,
        geometry: CTGeometry,
        grid: DetectorGrid,
        native_pixel_mm: float,
        detected: DetectedSpectrum,
        exposure_s: float,
        specimen: Specimen | None,
        wire: Specimen | None,
        light_spread_sigma_mm: float,
        pattern: EmissionPattern,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Expected energy (keV) deposited per native pixel area in one exposure, and E_var.

        Both arrays have the (binned) grid's shape.
        """
        src = np.array([source.spot_x_um * UM, source.spot_y_um * UM, 0.0])
        sigma_spot_mm = source.spot_sigma_um * UM
        off = np.array(source.parhelion_offset_um) * UM

        trans = np.ones((grid.rows, grid.cols), dtype=np.float32)
        e_var = np.full((grid.rows, grid.cols), detected.e_var_open_kev, dtype=np.float32)
        for obj, rotates in ((specimen, True), (wire, False)):
            if obj is None:
                continue
            if rotates:
                z_obj = geometry.sod_mm
            else:
                z_obj = float(np.mean([f.shape.corners()[:, 2].mean() for f in obj.features]))
            m_minus_1 = (geometry.sdd_mm - z_obj) / z_obj
            sigma_mm = float(np.hypot(sigma_spot_mm * m_minus_1, light_spread_sigma_mm))
            # A secondary spot displaced by +off casts a shadow displaced by -off * (M - 1);
            # detector rows grow downwards, so a +y displacement is a -row shift.
            shift_mm = (off[1] * m_minus_1, -off[0] * m_minus_1)
            margin_mm = 4.0 * sigma_mm + max(abs(shift_mm[0]), abs(shift_mm[1]))
            window = self._footprint(obj, grid, geometry, src, rotates, margin_mm)
            if window is None:
                continue
            (r0, r1, c0, c1), sub = window
            # The small, fixed wire is always sampled finely (its sharp shadow is what drift is
            # measured on); the specimen at the renderer's oversampling.
            os_ = self.oversample if rotates else max(self.oversample, 4)
            fine = sub.oversampled(os_)
            lengths = self.path_lengths(obj, fine, geometry, src, rotates=rotates)
            if lengths is None:
                continue
            t_obj, ev_obj = self.transmission(lengths, detected)
            t_obj = blur(
                t_obj,
                sigma_mm / fine.pixel_mm,
                ghost_weight=source.parhelion_weight,
                ghost_shift_px=(shift_mm[0] / fine.pixel_mm, shift_mm[1] / fine.pixel_mm),
            )
            if os_ > 1:
                t_obj = t_obj.reshape(sub.rows, os_, sub.cols, os_).mean(axis=(1, 3))
                ev_obj = ev_obj.reshape(sub.rows, os_, sub.cols, os_).mean(axis=(1, 3))
            trans[r0:r1, c0:c1] *= t_obj
            touched = ev_obj != np.float32(detected.e_var_open_kev)
            e_var[r0:r1, c0:c1][touched] = ev_obj[touched]

        open_kev = detected.deposit_kev_per_s_sr_ua * source.effective_current_ua * exposure_s
        main, secondary = self._open_beam(grid, geometry.sdd_mm, native_pixel_mm, pattern)
        w = np.float32(source.parhelion_weight)
        emission = main * (np.float32(1.0) - w)
        if w:
            emission += w * secondary
        deposited = emission * np.float32(open_kev)
        deposited *= trans
        return deposited, e_var
