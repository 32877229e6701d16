"""The Medipix2 photon-counting detector of the X-ray microscope as an ophyd detector.

``trigger()`` opens the shutter ``num_frames`` times for ``acquire_time_s`` each, sums the
counter read-outs into one image (uint32: each frame's 13-bit counter saturates on its own)
and appends it to an HDF5 file (SWMR, one frame per event) through
:class:`~nanoct.devices.hdf5.HDF5FrameWriter`, reported to the RunEngine as
StreamResource/StreamDatum documents. Each image carries its NXtomo ``image_key`` (0
projection, 1 flat, 2 dark), the rotation angle and the twin time, in the event and in the
file; images of each key go to their own file.

Chip settings: the global thresholds ``thl_kev`` < ``thh_kev`` (keV above the preamplifier
baseline, see :mod:`nanoct.devices.sim.microscope`), the per-pixel 3-bit trims of both
discriminators (``trim_low``, ``trim_high``: integer maps 0..7) and the ``mask``. Every setting
is validated before it is applied: ValueError naming the setting, the value and the range.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Kind
from scipy import special

from nanoct.devices.hdf5 import HDF5FrameWriter, ImageKeyFiles
from nanoct.devices.signals import ReadbackSignal, SettingSignal, run_in_twin_time
from nanoct.devices.sim.materials import absorbed_fraction, attenuation_table
from nanoct.devices.sim.microscope import MicroscopeTwin

__all__ = ["IMAGE_KEYS", "Medipix2"]

logger = logging.getLogger(__name__)

#: NXtomo image_key values.
IMAGE_KEYS = {"projection": 0, "flat": 1, "dark": 2}
_THR = MicroscopeTwin.THRESHOLD_RANGE_KEV


class Medipix2(Device):
    """Medipix2 (256 x 256 pixels of 55 um): shutter time, frames summed, thresholds, trims,
    mask; HDF5 output.

    Parameters
    ----------
    twin : MicroscopeTwin
    data_dir : path
        Where the HDF5 files go (must lie in the Tiled server's readable storage).
    """

    acquire_time_s = Cpt(
        SettingSignal,
        getter="_get_time",
        applier="_set_time",
        validator="_check_time",
        units="s",
        value=1.0,
        kind=Kind.config,
    )
    num_frames = Cpt(
        SettingSignal,
        getter="_get_frames",
        applier="_set_frames",
        validator="_check_frames",
        limits=(1, MicroscopeTwin.MAX_FRAMES),
        value=1,
        kind=Kind.config,
    )
    thl_kev = Cpt(
        SettingSignal,
        getter="_get_thl",
        applier="_set_thl",
        validator="_check_thl",
        units="keV",
        limits=_THR,
        value=MicroscopeTwin.DEFAULT_THL_KEV,
        kind=Kind.normal,
    )
    thh_kev = Cpt(
        SettingSignal,
        getter="_get_thh",
        applier="_set_thh",
        validator="_check_thh",
        units="keV",
        limits=_THR,
        value=MicroscopeTwin.DEFAULT_THH_KEV,
        kind=Kind.normal,
    )
    #: 3-bit threshold adjustment of the lower discriminator, (256, 256) integers 0..7.
    trim_low = Cpt(
        SettingSignal,
        getter="_get_trim_low",
        applier="_set_trim_low",
        validator="_check_trim_low",
        value=None,
        kind=Kind.omitted,
    )
    #: 3-bit threshold adjustment of the upper discriminator, (256, 256) integers 0..7.
    trim_high = Cpt(
        SettingSignal,
        getter="_get_trim_high",
        applier="_set_trim_high",
        validator="_check_trim_high",
        value=None,
        kind=Kind.omitted,
    )
    #: (256, 256) bool, True = masked (the pixel reads 0).
    mask = Cpt(
        SettingSignal,
        getter="_get_mask",
        applier="_set_mask",
        validator="_check_mask",
        value=None,
        kind=Kind.omitted,
    )
    n_masked = Cpt(ReadbackSignal, getter="_get_n_masked", units="pixels", kind=Kind.normal)
    counter_depth = Cpt(ReadbackSignal, getter="_get_depth", units="counts", kind=Kind.config)
    pixel_size = Cpt(ReadbackSignal, getter="_get_pixel", units="um", kind=Kind.config)
    image_key = Cpt(
        SettingSignal,
        getter="_get_key",
        applier="_set_key",
        choices=tuple(IMAGE_KEYS.values()),
        value=0,
        kind=Kind.normal,
    )
    rotation_angle = Cpt(ReadbackSignal, getter="_get_angle", units="deg", kind=Kind.normal)
    twin_time = Cpt(ReadbackSignal, getter="_get_twin_time", units="s", kind=Kind.normal)
    total_counts = Cpt(ReadbackSignal, getter="_get_total", units="counts", kind=Kind.normal)
    saturated_pixels = Cpt(
        ReadbackSignal, getter="_get_saturated", units="pixels", kind=Kind.normal
    )
    #: The latest image (not read into events: it is in the HDF5 file). Analysis plans get it
    #: with ``bps.rd(medipix.image)``.
    image = Cpt(ReadbackSignal, getter="_get_image", value=None, kind=Kind.omitted)

    def __init__(self, prefix: str = "", *, twin: MicroscopeTwin, data_dir: str | Path, **kwargs):
        self._twin = twin
        self._data_dir = Path(data_dir)
        self._time_s = 1.0
        self._frames = 1
        self._key = 0
        self._last = {"angle": math.nan, "time": math.nan, "total": 0, "saturated": 0}
        self._files: ImageKeyFiles | None = None  # made at first use (the name is final then)
        self._armed = False
        self._latest: np.ndarray | None = None
        super().__init__(prefix, labels=kwargs.pop("labels", {"detectors"}), **kwargs)

    # ---- settings --------------------------------------------------------------------------
    @property
    def _model(self):
        return self._twin.detector

    def _get_time(self) -> float:
        return self._time_s

    def _check_time(self, v: float) -> None:
        try:
            self._twin.validate_acquisition(v)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None

    def _set_time(self, v: float) -> None:
        self._time_s = float(v)

    def _get_frames(self) -> int:
        return self._frames

    def _check_frames(self, v: int) -> None:
        ok = isinstance(v, int | np.integer) and not isinstance(v, bool)
        hi = MicroscopeTwin.MAX_FRAMES
        if not ok or not 1 <= v <= hi:
            raise ValueError(f"{self.name}: num_frames={v!r} must be an integer in [1, {hi}]")

    def _set_frames(self, v: int) -> None:
        self._frames = int(v)

    def _get_thl(self) -> float:
        return self._twin.thl_kev

    def _check_thl(self, v: float) -> None:
        self._model.validate(thl_kev=v, thh_kev=self._twin.thh_kev)

    def _set_thl(self, v: float) -> None:
        self._twin.set_thresholds(thl_kev=v)

    def _get_thh(self) -> float:
        return self._twin.thh_kev

    def _check_thh(self, v: float) -> None:
        self._model.validate(thl_kev=self._twin.thl_kev, thh_kev=v)

    def _set_thh(self, v: float) -> None:
        self._twin.set_thresholds(thh_kev=v)

    def _get_trim_low(self) -> np.ndarray:
        return self._model.trims["low"].copy()

    def _check_trim_low(self, v: npt.ArrayLike) -> None:
        self._check_trim("trim_low", v)

    def _set_trim_low(self, v: npt.ArrayLike) -> None:
        self._model.set_trims(low=np.asarray(v))

    def _get_trim_high(self) -> np.ndarray:
        return self._model.trims["high"].copy()

    def _check_trim_high(self, v: npt.ArrayLike) -> None:
        self._check_trim("trim_high", v)

    def _set_trim_high(self, v: npt.ArrayLike) -> None:
        self._model.set_trims(high=np.asarray(v))

    def _check_trim(self, name: str, v: npt.ArrayLike) -> None:
        spec = self._model.spec
        arr = np.asarray(v)
        if arr.shape != spec.shape:
            raise ValueError(f"{self.name}: {name} has shape {arr.shape}; expected {spec.shape}")
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > spec.max_trim:
            raise ValueError(
                f"{self.name}: {name} must hold integers in [0, {spec.max_trim}] (3-bit trims); "
                f"got values in [{arr.min()}, {arr.max()}] ({arr.dtype})"
            )

    def _get_mask(self) -> np.ndarray:
        return self._model.mask.copy()

    def _check_mask(self, v: npt.ArrayLike) -> None:
        arr = np.asarray(v)
        shape = self._model.spec.shape
        if arr.shape != shape or arr.dtype != bool:
            raise ValueError(
                f"{self.name}: mask must be a boolean array of shape {shape}; got {arr.dtype} "
                f"of shape {arr.shape}"
            )

    def _set_mask(self, v: npt.ArrayLike) -> None:
        self._model.mask = np.array(v, dtype=bool)

    def _get_n_masked(self) -> int:
        return int(self._model.mask.sum())

    def _get_depth(self) -> int:
        return int(self._model.spec.max_count)

    def _get_pixel(self) -> float:
        return float(self._model.spec.pixel_um)

    def _get_key(self) -> int:
        return self._key

    def _set_key(self, v: int) -> None:
        self._key = int(v)

    def _get_angle(self) -> float:
        return self._last["angle"]

    def _get_twin_time(self) -> float:
        return self._last["time"]

    def _get_total(self) -> int:
        return int(self._last["total"])

    def _get_saturated(self) -> int:
        return int(self._last["saturated"])

    def _get_image(self) -> np.ndarray | None:
        return self._latest

    @property
    def image_data_key(self) -> str:
        return f"{self.name}_image"

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def shape(self) -> tuple[int, int]:
        return self._model.spec.shape

    # ---- analysis helper -------------------------------------------------------------------
    def detection_efficiency(
        self,
        energies_kev: npt.ArrayLike,
        weights: npt.ArrayLike,
        *,
        air_path_mm: float = 0.0,
    ) -> float:
        """Fraction of a spectrum's photons that an *equalised* pixel counts at the present
        thresholds.

        ``sum_E w_E T_air(E) a(E) P(THL <= E + noise <= THH) / sum_E w_E`` with the sensor's
        photoelectric absorbed fraction ``a`` (300 um Si), Gaussian electronic noise and the
        global thresholds (per-pixel dispersion assumed trimmed away). The detector model of
        the chip's data (Llopart et al. 2002), not a measurement of one pixel.

        Parameters
        ----------
        energies_kev, weights : array_like
            Spectrum bins (keV) and their relative photon numbers (>= 0).
        air_path_mm : float
            Air between source and sensor to include (0: none).
        """
        e = np.asarray(energies_kev, dtype=float)
        w = np.asarray(weights, dtype=float)
        if e.shape != w.shape or e.ndim != 1 or not np.all(w >= 0) or w.sum() <= 0:
            raise ValueError("energies_kev and weights must be 1-D of one length, weights >= 0")
        if not (math.isfinite(air_path_mm) and air_path_mm >= 0):
            raise ValueError(f"air_path_mm={air_path_mm!r} must be >= 0 mm")
        spec = self._model.spec
        sigma = spec.electronic_noise_kev * math.sqrt(2.0)
        p = 0.5 * special.erfc((self._twin.thl_kev - e) / sigma)
        p -= 0.5 * special.erfc((self._twin.thh_kev - e) / sigma)
        eff = absorbed_fraction(spec.sensor, spec.sensor_um, e) * np.clip(p, 0.0, 1.0)
        if air_path_mm > 0:
            eff = eff * np.exp(-attenuation_table(["air"], e)[0] * air_path_mm)
        return float((w * eff).sum() / w.sum())

    # ---- bluesky protocol ------------------------------------------------------------------
    def stage(self):
        self._armed = True
        return super().stage()

    def unstage(self):
        if self._files is not None:
            self._files.close()
        self._armed = False
        return super().unstage()

    def _writer(self, key: int) -> HDF5FrameWriter:
        if self._files is None:
            self._files = ImageKeyFiles(self._data_dir, self.image_data_key, self.name)
        return self._files.writer(key, self.shape, np.uint32)

    def trigger(self) -> DeviceStatus:
        if not self._armed:
            raise RuntimeError(f"{self.name} must be staged (inside a run) before trigger()")
        self._twin.validate_acquisition(self._time_s, self._frames)
        st = DeviceStatus(self)
        key = self._key

        def _acquire() -> None:
            acq = self._twin.acquire(self._time_s, self._frames)
            self._writer(key).append(
                acq.counts,
                image_key=key,
                rotation_angle_deg=acq.angle_deg,
                twin_time_s=acq.time_s,
            )
            self._last = {
                "angle": acq.angle_deg,
                "time": acq.time_s,
                "total": int(acq.counts.sum(dtype=np.int64)),
                "saturated": acq.saturated_pixels,
            }
            self._latest = acq.counts

        run_in_twin_time(st, _acquire, threaded=self._twin.clock.time_scale > 0)
        return st

    def describe(self) -> dict:
        desc = super().describe()
        files = ImageKeyFiles(self._data_dir, self.image_data_key, self.name)
        desc[self.image_data_key] = files.describe_entry(
            f"SIM:{self.name}", self.shape, np.uint32, "counts"
        )
        return desc

    def collect_asset_docs(self, index: int | None = None):
        """Stream documents of the images taken since the last call (``index`` is ignored:
        each image key has its own file and frame count)."""
        if self._files is not None:
            yield from self._files.collect_asset_docs()
