"""``nanoct export RUN --nxtomo FILE``: a CT run from Tiled as an NXtomo file.

NXtomo (the NeXus application definition for tomography) is what tomopy/dxchange, nabu,
tomwer, nxtomomill, savu and ImageJ's HDF5 readers understand. The file holds every image of
the run (darks, flats, projections) in acquisition order, each with its ``image_key``
(0 projection, 1 flat, 2 dark) and rotation angle::

    /entry                               NXentry, definition = "NXtomo"
        title, start_time, end_time, experiment_identifier (the run uid)
        instrument/                      NXinstrument
            source/                      NXsource: type "Fixed Tube X-ray", probe "x-ray",
                                         distance = -SOD (m, upstream of the sample)
                                         + lab-source extensions: voltage (kV), current (uA),
                                         focal_spot_size (um), focus_mode, txi,
                                         source_sample_distance (SOD, m),
                                         source_detector_distance (SDD, m)
            detector/                    NXdetector: data (n, rows, cols) float32,
                                         image_key (n), x_pixel_size, y_pixel_size (m, binned
                                         detector pixel), distance (sample-detector, m),
                                         count_time (n, s) + extensions: binning,
                                         frames_per_image
        sample/                          NXsample: name, rotation_angle (n, degree)
                                         + extensions: magnification, x_pixel_size,
                                         y_pixel_size (voxel size at the axis, m)
        control/                         NXmonitor: data (n) = the tube's TXI flux monitor
        data/                            NXdata: data, rotation_angle, image_key (links)
        nanoct/                          NXcollection: per-frame tube voltage and current,
                                         twin time, event time, stream name, run uid

Every length has a ``units`` attribute. The extensions are plain NeXus fields with units, in
the groups where a lab-source reader would look for them; readers that know only NXtomo
ignore them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["ExportResult", "RunNotFoundError", "export_nxtomo", "find_run", "write_nxtomo"]

#: Streams exported, with the image_key their frames carry when no per-frame key was read.
STREAM_IMAGE_KEYS = {"dark": 2, "flat": 1, "primary": 0}
_BLOCK = 32  # frames read from Tiled per request


class RunNotFoundError(KeyError):
    """No run matches the identifier."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    uid: str
    n_frames: int
    n_projections: int
    n_flats: int
    n_darks: int
    frame_shape: tuple[int, int]
    completed: bool


def find_run(client: Any, run: str | int) -> Any:
    """A run by uid, unique uid prefix, scan_id (positive int) or index (-1: latest).

    Raises
    ------
    RunNotFoundError
        Naming the identifier and the server.
    """
    key: str | int = run
    if isinstance(run, str):
        text = run.strip()
        if text.lstrip("-").isdigit():
            key = int(text)
        elif not text:
            raise RunNotFoundError("empty run identifier")
        else:
            key = text
    try:
        return client[key]
    except (KeyError, IndexError, ValueError) as err:
        what = "scan_id" if isinstance(key, int) and key > 0 else "run"
        raise RunNotFoundError(
            f"no {what} {run!r} in the catalog at {getattr(client, 'uri', '?')} ({err})"
        ) from err


def export_nxtomo(
    run: str | int,
    path: str | Path,
    *,
    data_dir: str | Path | None = None,
    uri: str | None = None,
    api_key: str | None = None,
    client: Any = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write run `run` from Tiled to an NXtomo file at `path`.

    Parameters
    ----------
    run : str or int
        uid, unique uid prefix, scan_id, or -1 for the latest run.
    path : path
        The ``.nx``/``.h5`` file to write (its directory must exist).
    data_dir, uri, api_key
        Which server (as :func:`nanoct.session.connect`).
    client : CatalogOfBlueskyRuns, optional
        Use this client instead.
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    RunNotFoundError
        If no run matches.
    FileExistsError
        If `path` exists and not `overwrite`.
    ValueError
        If the run has no images.
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist")
    if client is None:
        from nanoct.session import connect

        client, _, _ = connect(data_dir, uri=uri, api_key=api_key)
    return write_nxtomo(find_run(client, run), path)


def _column(node: Any, key: str) -> np.ndarray | None:
    if key in node:
        return np.asarray(node[key].read())
    return None


def _image_key_name(node: Any) -> str | None:
    candidates = [k for k in node if k.endswith("_image")]
    for k in candidates:
        if len(node[k].shape) == 3:
            return k
    return None


def write_nxtomo(run: Any, path: str | Path) -> ExportResult:
    """Write a run client (BlueskyRun) to an NXtomo file (see the module docstring)."""
    import h5py

    path = Path(path)
    start = dict(run.metadata["start"])
    stop = run.metadata.get("stop")
    uid = start["uid"]
    if stop is None:
        logger.warning("run %s has no stop document (not completed): exporting what it has", uid)

    # Per stream: image node, per-frame columns.
    parts = []
    frame_shape = None
    dtype = None
    for stream, default_key in STREAM_IMAGE_KEYS.items():
        if stream not in run:
            continue
        node = run[stream]
        img_key = _image_key_name(node)
        if img_key is None:
            continue
        img = node[img_key]
        n = int(img.shape[0])
        if n == 0:
            continue
        if frame_shape is None:
            frame_shape, dtype = tuple(int(s) for s in img.shape[1:]), np.dtype(img.dtype)
        elif tuple(img.shape[1:]) != frame_shape:
            raise ValueError(
                f"run {uid}: stream {stream!r} has frames of {tuple(img.shape[1:])}, "
                f"others {frame_shape}"
            )

        def col(name, default, node=node, n=n):
            v = _column(node, name)
            return np.full(n, default, dtype=float) if v is None else v[:n].astype(float)

        prefix = img_key.removesuffix("_image")
        keys = _column(node, f"{prefix}_image_key")
        angle = _column(node, f"{prefix}_rotation_angle")
        if angle is None:
            angle = _column(node, "rotation")
        parts.append(
            {
                "stream": stream,
                "image": img,
                "n": n,
                "image_key": (
                    np.full(n, default_key, np.int8) if keys is None else keys[:n].astype(np.int8)
                ),
                "angle": np.full(n, np.nan) if angle is None else angle[:n].astype(float),
                "time": col("time", np.nan),
                "twin_time": col(f"{prefix}_twin_time", np.nan),
                "voltage": col("tube_voltage", np.nan),
                "current": col("tube_current_rbv", np.nan),
                "flux": col("tube_flux", np.nan),
            }
        )
    if not parts:
        raise ValueError(f"run {uid} has no detector images in streams {list(STREAM_IMAGE_KEYS)}")

    # Acquisition order: by event time (stable: streams in dark, flat, primary order on ties).
    order_time = np.concatenate([p["time"] for p in parts])
    src = np.concatenate([np.full(p["n"], i) for i, p in enumerate(parts)])
    order = np.argsort(order_time, kind="stable")
    n_total = int(order.size)
    dest_of = np.empty(n_total, dtype=np.int64)
    dest_of[order] = np.arange(n_total)

    def gather(name):
        return np.concatenate([p[name] for p in parts])[order]

    image_key = gather("image_key").astype(np.int8)
    angles = gather("angle")
    geometry = start.get("geometry") or {}
    tube = start.get("tube") or {}
    sod_mm = _num(geometry.get("sod_mm"))
    sdd_mm = _num(geometry.get("sdd_mm"))
    pixel_um = _num(geometry.get("detector_pixel_um"))
    voxel_um = _num(geometry.get("voxel_size_um"))
    exposure_s = _num(start.get("exposure_s"))
    frames = _num(start.get("frames_per_projection"), 1.0)

    tmp = path.with_name(f".{path.name}.part{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["default"] = "entry"
            f.attrs["creator"] = "nanoct export"
            f.attrs["file_time"] = datetime.now(UTC).isoformat()
            entry = _group(f, "entry", "NXentry", default="data")
            entry["definition"] = "NXtomo"
            entry["title"] = (
                f"{start.get('plan_name', 'run')} of {start.get('specimen', 'specimen')} "
                f"(scan_id {start.get('scan_id', '?')})"
            )
            entry["experiment_identifier"] = uid
            entry["start_time"] = _iso(start.get("time"))
            if stop is not None:
                entry["end_time"] = _iso(stop.get("time"))
            entry["nanoct_run_completed"] = bool(stop is not None)
            if stop is not None:
                entry["nanoct_exit_status"] = str(stop.get("exit_status", ""))

            inst = _group(entry, "instrument", "NXinstrument")
            inst["name"] = "nanoct sub-um CT (Feinfocus FXE 160, Hamamatsu C9312SK-05)"
            source = _group(inst, "source", "NXsource")
            source["name"] = "Feinfocus FXE 160 (tungsten transmission target)"
            source["type"] = "Fixed Tube X-ray"
            source["probe"] = "x-ray"
            _field(source, "distance", -sod_mm * 1e-3, "m")
            _field(source, "source_sample_distance", sod_mm * 1e-3, "m")
            _field(source, "source_detector_distance", sdd_mm * 1e-3, "m")
            _field(source, "voltage", _num(tube.get("voltage_kv")), "kV")
            _field(source, "current", _num(tube.get("current_ua")), "uA")
            _field(source, "focal_spot_size", _num(tube.get("spot_size_um")), "um")
            source["focus_mode"] = str(tube.get("focus_mode", ""))
            source["txi"] = bool(tube.get("txi", False))

            det = _group(inst, "detector", "NXdetector")
            data = det.create_dataset(
                "data",
                shape=(n_total, *frame_shape),
                dtype=dtype,
                chunks=(1, *frame_shape),
            )
            data.attrs["units"] = "counts"
            data.attrs["interpretation"] = "image"
            det.create_dataset("image_key", data=image_key)
            det.create_dataset("image_key_control", data=image_key)
            _field(det, "x_pixel_size", pixel_um * 1e-6, "m")
            _field(det, "y_pixel_size", pixel_um * 1e-6, "m")
            _field(det, "distance", (sdd_mm - sod_mm) * 1e-3, "m")
            _field(det, "count_time", np.full(n_total, exposure_s * frames), "s")
            _field(det, "binning", _num(geometry.get("binning")), None)
            _field(det, "frames_per_image", frames, None)

            sample = _group(entry, "sample", "NXsample")
            sample["name"] = str(start.get("specimen", ""))
            _field(sample, "rotation_angle", angles, "degree")
            _field(sample, "magnification", _num(geometry.get("magnification")), None)
            _field(sample, "x_pixel_size", voxel_um * 1e-6, "m")
            _field(sample, "y_pixel_size", voxel_um * 1e-6, "m")

            control = _group(entry, "control", "NXmonitor")
            _field(control, "data", gather("flux"), "relative")

            nxdata = _group(entry, "data", "NXdata")
            nxdata.attrs["signal"] = "data"
            nxdata["data"] = data
            nxdata["rotation_angle"] = sample["rotation_angle"]
            nxdata["image_key"] = det["image_key"]

            extra = _group(entry, "nanoct", "NXcollection")
            extra["run_uid"] = uid
            _field(extra, "tube_voltage", gather("voltage"), "kV")
            _field(extra, "tube_current", gather("current"), "uA")
            _field(extra, "twin_time", gather("twin_time"), "s")
            _field(extra, "event_time", gather("time"), "s")
            streams = np.array([p["stream"] for p in parts], dtype=object)[src[order]]
            extra.create_dataset("stream", data=streams.astype("S"))
            extra["start_document"] = _json(start)

            # frames, block by block from Tiled
            for i, p in enumerate(parts):
                dest = dest_of[src == i]
                for a in range(0, p["n"], _BLOCK):
                    b = min(a + _BLOCK, p["n"])
                    block = np.asarray(p["image"][a:b])
                    targets = dest[a:b]
                    if np.all(np.diff(targets) == 1):
                        data[targets[0] : targets[-1] + 1] = block
                    else:
                        for t, frame in zip(targets, block, strict=True):
                            data[int(t)] = frame
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    counts = {k: int(np.sum(image_key == v)) for k, v in STREAM_IMAGE_KEYS.items()}
    logger.info("wrote %s: %d frames of run %s", path, n_total, uid)
    return ExportResult(
        path=path,
        uid=uid,
        n_frames=n_total,
        n_projections=counts["primary"],
        n_flats=counts["flat"],
        n_darks=counts["dark"],
        frame_shape=frame_shape,
        completed=stop is not None,
    )


def _group(parent, name: str, nx_class: str, **attrs: str):
    g = parent.create_group(name)
    g.attrs["NX_class"] = nx_class
    for k, v in attrs.items():
        g.attrs[k] = v
    return g


def _field(group, name: str, value, units: str | None):
    ds = group.create_dataset(name, data=value)
    if units is not None:
        ds.attrs["units"] = units
    return ds


def _num(value, default: float = np.nan) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _iso(t) -> str:
    try:
        return datetime.fromtimestamp(float(t), UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return ""


def _json(doc: dict) -> str:
    import json

    return json.dumps(doc, default=str)
