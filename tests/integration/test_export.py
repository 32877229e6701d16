"""``nanoct export RUN --nxtomo FILE``: an NXtomo file that matches the run and that a reader
knowing only NXtomo field names can reconstruct from."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import ndimage
from test_server_support import served, small_ct

from nanoct.cli import main
from nanoct.session import start_session

pytestmark = pytest.mark.integration

N_ANGLES = 36


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    with served(root / "data") as srv:
        session = start_session(srv.data_dir, tiled_uri=srv.uri, api_key=srv.api_key, seed=5)
        try:
            (uid,) = session.RE(small_ct(session.ct, num_angles=N_ANGLES))
        finally:
            session.close()
        path = root / "scan.nx"
        capsys = _Capture()
        with capsys:
            rc = main(
                [
                    "export",
                    uid[:8],
                    "--nxtomo",
                    str(path),
                    "--uri",
                    srv.uri,
                    "--api-key",
                    srv.api_key,
                ]
            )
        assert rc == 0, capsys.err
        yield path, srv.client()[uid], capsys


class _Capture:
    """stdout/stderr of an in-process ``nanoct`` call (a module fixture cannot use capsys)."""

    def __enter__(self):
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._cms = [contextlib.redirect_stdout(self._out), contextlib.redirect_stderr(self._err)]
        for cm in self._cms:
            cm.__enter__()
        return self

    def __exit__(self, *exc):
        for cm in reversed(self._cms):
            cm.__exit__(*exc)
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


def test_nxtomo_matches_the_run(exported):
    path, run, res = exported
    start = run.metadata["start"]
    n_dark = run["dark"]["flatpanel_image"].shape[0]
    n_flat = run["flat"]["flatpanel_image"].shape[0]
    assert f"{N_ANGLES} projections, {n_flat} flats, {n_dark} darks" in res.out
    with h5py.File(path, "r") as f:
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry["definition"][()].decode() == "NXtomo"
        det = entry["instrument/detector"]
        data, keys = det["data"], det["image_key"][:]
        assert data.shape == (N_ANGLES + n_flat + n_dark, 512, 512)
        assert data.dtype == np.float32
        assert [int((keys == k).sum()) for k in (0, 1, 2)] == [N_ANGLES, n_flat, n_dark]
        angles = entry["sample/rotation_angle"]
        assert angles.attrs["units"] == "degree"
        np.testing.assert_allclose(angles[:][keys == 0], start["angles_deg"], atol=1e-6)
        # the projections are the run's frames, in acquisition order
        np.testing.assert_array_equal(data[keys == 0], run["primary"]["flatpanel_image"].read())
        np.testing.assert_array_equal(data[keys == 2], run["dark"]["flatpanel_image"].read())
        assert keys[0] == 2  # darks first, as acquired
        # NXdata links and the pixel sizes and distances, in SI units
        assert entry["data"].attrs["signal"] == "data"
        assert entry["data/data"].id == data.id
        geom = start["geometry"]
        assert det["x_pixel_size"].attrs["units"] == "m"
        assert det["x_pixel_size"][()] == pytest.approx(geom["detector_pixel_um"] * 1e-6)
        assert det["distance"][()] == pytest.approx((geom["sdd_mm"] - geom["sod_mm"]) * 1e-3)
        # the lab-source extensions
        src = entry["instrument/source"]
        assert src["type"][()].decode() == "Fixed Tube X-ray"
        assert src["distance"][()] == pytest.approx(-geom["sod_mm"] * 1e-3)
        assert src["source_sample_distance"][()] == pytest.approx(geom["sod_mm"] * 1e-3)
        assert src["voltage"][()] == pytest.approx(start["tube"]["voltage_kv"])
        assert src["voltage"].attrs["units"] == "kV"
        assert src["current"][()] == pytest.approx(start["tube"]["current_ua"])
        assert src["focal_spot_size"][()] == pytest.approx(start["tube"]["spot_size_um"])
        assert entry["sample/x_pixel_size"][()] == pytest.approx(geom["voxel_size_um"] * 1e-6)


def _nxtomo_reader(path):
    """What a generic NXtomo reader does: only NXtomo names, nothing nanoct-specific."""
    with h5py.File(path, "r") as f:
        (entry,) = [
            g
            for g in f.values()
            if g.attrs.get("NX_class") == "NXentry" and g["definition"][()] == b"NXtomo"
        ]
        data = entry["instrument/detector/data"][:]
        keys = entry["instrument/detector/image_key"][:]
        theta = np.deg2rad(entry["sample/rotation_angle"][:])
    dark = data[keys == 2].mean(axis=0)
    flat = data[keys == 1].mean(axis=0)
    proj = data[keys == 0]
    transmission = (proj - dark) / np.maximum(flat - dark, 1e-6)
    return -np.log(np.clip(transmission, 1e-6, None)), theta[keys == 0]


def _fbp(sino, theta):
    """Parallel-beam filtered back-projection of one sinogram (angle, column)."""
    n = sino.shape[1]
    freqs = np.fft.fftfreq(n)
    filtered = np.real(np.fft.ifft(np.fft.fft(sino, axis=1) * np.abs(freqs), axis=1))
    x = np.arange(n) - n / 2
    xx, yy = np.meshgrid(x, x)
    img = np.zeros((n, n))
    for row, t in zip(filtered, theta, strict=True):
        s = xx * np.cos(t) + yy * np.sin(t) + n / 2
        img += np.interp(s.ravel(), np.arange(n), row).reshape(n, n)
    return img * np.pi / len(theta)


def test_a_generic_nxtomo_reader_can_reconstruct(exported):
    path, _, _ = exported
    sino_all, theta = _nxtomo_reader(path)
    assert np.isfinite(sino_all).all()
    assert np.all(np.diff(theta) > 0) and np.ptp(theta) > np.pi  # radians, a full turn
    row = sino_all.shape[1] // 2
    sino = ndimage.uniform_filter1d(sino_all[:, row, ::4], 3, axis=1)  # 128 columns
    # the specimen attenuates: line integrals are positive where it is
    assert sino.max() > 0.05
    img = _fbp(sino, theta)
    assert np.isfinite(img).all()
    # the reconstruction reprojects onto the measured data at every angle (angles, flats,
    # darks and image keys were read right; degrees taken for radians or shuffled angles
    # fail this: mean 0.86-0.88, worst angle below 0.78)
    corr = [np.corrcoef(_project(img, t), p)[0, 1] for t, p in zip(theta, sino, strict=True)]
    assert np.mean(corr) > 0.89 and np.min(corr) > 0.8, corr


def _project(img, t):
    """Parallel projection of `img` at angle `t` (rays s = x cos t + y sin t)."""
    n = img.shape[0]
    x = np.arange(n) - n / 2
    xx, yy = np.meshgrid(x, x)
    s = np.clip((xx * np.cos(t) + yy * np.sin(t) + n / 2).astype(int), 0, n - 1)
    return np.bincount(s.ravel(), weights=img.ravel(), minlength=n)
