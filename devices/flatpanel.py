"""The Hamamatsu C9312SK-05 flat panel as an ophyd detector.

``trigger()`` exposes and averages ``frames_per_image`` frames of ``exposure_time`` seconds,
appends the averaged image to an HDF5 file (SWMR, flushed at every frame) and reports it to
the RunEngine as StreamResource/StreamDatum documents: images never travel inside Event
documents. Each image carries its NXtomo ``image_key`` (0 projection, 1 flat, 2 dark), the
rotation angle and the twin time, both in the event and in the file.

Frames of each image key go to their own file, so a run's dark, flat and projection streams
each reference their own resource. Images are stored as float32: the mean of integer 12-bit
frames is exact in float32, so nothing is lost by averaging on the fly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Kind

from nanoct.devices.hdf5 import HDF5FrameWriter, ImageKeyFiles
from nanoct.devices.signals import ReadbackSignal, SettingSignal, run_in_twin_time
from nanoct.devices.sim.detector import FlatPanelSpec

__all__ = ["IMAGE_KEYS", "FlatPanel"]

logger = logging.getLogger(__name__)

#: NXtomo image_key values.
IMAGE_KEYS = {"projection": 0, "flat": 1, "dark": 2}
_SPEC = FlatPanelSpec()


class FlatPanel(Device):
    """Integrating flat panel: exposure, frame averaging, binning, image_key; HDF5 output.

    Parameters
    ----------
    twin : CTTwin
    data_dir : path
        Where the HDF5 files go (must lie in the Tiled server's readable storage).
    """

    exposure_time = Cpt(
        SettingSignal,
        getter="_get_exp",
        applier="_set_exp",
        validator="_check_exp",
        units="s",
        limits=_SPEC.exposure_range_s,
        value=5.0,
        kind=Kind.config,
    )
    frames_per_image = Cpt(
        SettingSignal,
        getter="_get_frames",
        applier="_set_frames",
        validator="_check_frames",
        limits=(1, _SPEC.max_frames),
        value=1,
        kind=Kind.config,
    )
    binning = Cpt(
        SettingSignal,
        getter="_get_binning",
        applier="_set_binning",
        validator="_check_binning",
        choices=_SPEC.allowed_binning,
        value=4,
        kind=Kind.config,
    )
    image_key = Cpt(
        SettingSignal,
        getter="_get_key",
        applier="_set_key",
        choices=tuple(IMAGE_KEYS.values()),
        value=0,
        kind=Kind.normal,
    )
    rotation_angle = Cpt(ReadbackSignal, getter="_get_angle", units="deg", kind=Kind.normal)
    twin_time = Cpt(ReadbackSignal, getter="_get_time", units="s", kind=Kind.normal)
    #: Lowest relative source output (the tube's TXI monitor) during the latest image's frames;
    #: a real installation logs the monitor during the exposure the same way.
    flux_min = Cpt(ReadbackSignal, getter="_get_flux_min", units="relative", kind=Kind.normal)
    pixel_size = Cpt(ReadbackSignal, getter="_get_pixel", units="um", kind=Kind.config)
    #: The latest averaged image (not read into events: it is in the HDF5 file). Analysis
    #: plans get it with ``bps.rd(flatpanel.image)``.
    image = Cpt(ReadbackSignal, getter="_get_image", value=None, kind=Kind.omitted)

    def __init__(self, prefix: str = "", *, twin, data_dir: str | Path, **kwargs):
        self._twin = twin
        self._data_dir = Path(data_dir)
        self._exposure_s = 5.0
        self._frames = 1
        self._key = 0
        self._last_angle = float("nan")
        self._last_time = float("nan")
        self._last_flux_min = float("nan")
        self._files: ImageKeyFiles | None = None  # made at stage (the name is final then)
        self._staged_shape: tuple[int, int] | None = None
        self._latest: tuple[int, np.ndarray] | None = None
        self._n_images = 0
        super().__init__(prefix, labels=kwargs.pop("labels", {"detectors"}), **kwargs)

    # ---- settings ------------------------------------------------------------------------
    def _get_exp(self) -> float:
        return self._exposure_s

    def _check_exp(self, v: float) -> None:
        self._twin.detector.validate(exposure_s=v)

    def _set_exp(self, v: float) -> None:
        self._exposure_s = float(v)

    def _get_frames(self) -> int:
        return self._frames

    def _check_frames(self, v: int) -> None:
        self._twin.detector.validate(frames=v)

    def _set_frames(self, v: int) -> None:
        self._frames = int(v)

    def _get_binning(self) -> int:
        return self._twin.binning

    def _check_binning(self, v: int) -> None:
        self._twin.detector.validate(binning=v)
        if self._staged_shape is not None and v != self._twin.binning:
            raise ValueError(
                f"{self.name}: binning cannot change while staged (inside a run); "
                f"it is {self._twin.binning}, asked {v}"
            )

    def _set_binning(self, v: int) -> None:
        self._twin.set_binning(int(v))

    def _get_key(self) -> int:
        return self._key

    def _set_key(self, v: int) -> None:
        self._key = int(v)

    def _get_angle(self) -> float:
        return self._last_angle

    def _get_time(self) -> float:
        return self._last_time

    def _get_flux_min(self) -> float:
        return self._last_flux_min

    def _get_image(self) -> np.ndarray | None:
        return None if self._latest is None else self._latest[1]

    def latest_image(self) -> tuple[int, np.ndarray] | None:
        """``(number, image)`` of the latest image since the device was built, or None."""
        return self._latest

    def _get_pixel(self) -> float:
        return self._twin.grid().pixel_mm * 1e3

    @property
    def image_data_key(self) -> str:
        return f"{self.name}_image"

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    # ---- bluesky protocol ------------------------------------------------------------------
    def stage(self):
        self._staged_shape = self._twin.detector.shape(self._twin.binning)
        return super().stage()

    def unstage(self):
        if self._files is not None:
            self._files.close()
        self._staged_shape = None
        return super().unstage()

    def _writer(self, key: int) -> HDF5FrameWriter:
        if self._files is None:
            self._files = ImageKeyFiles(self._data_dir, self.image_data_key, self.name)
        return self._files.writer(key, self._staged_shape, np.float32)

    def trigger(self) -> DeviceStatus:
        if self._staged_shape is None:
            raise RuntimeError(f"{self.name} must be staged (inside a run) before trigger()")
        st = DeviceStatus(self)
        key = self._key

        def _acquire() -> None:
            acq = self._twin.acquire(self._exposure_s, self._frames)
            self._writer(key).append(
                acq.image,
                image_key=key,
                rotation_angle_deg=acq.geometry.angle_deg,
                twin_time_s=acq.time_s,
            )
            self._last_angle = acq.geometry.angle_deg
            self._last_time = acq.time_s
            self._last_flux_min = float(acq.flux_min)
            self._n_images += 1
            self._latest = (self._n_images, acq.image)

        run_in_twin_time(st, _acquire, threaded=self._twin.clock.time_scale > 0)
        return st

    def describe(self) -> dict:
        desc = super().describe()
        shape = self._staged_shape or self._twin.detector.shape(self._twin.binning)
        files = ImageKeyFiles(self._data_dir, self.image_data_key, self.name)
        desc[self.image_data_key] = files.describe_entry(
            f"SIM:{self.name}", shape, np.float32, "ADU"
        )
        return desc

    def collect_asset_docs(self, index: int | None = None):
        """Stream documents of the images taken since the last call (``index`` is ignored:
        each image key has its own file and frame count)."""
        if self._files is not None:
            yield from self._files.collect_asset_docs()
