"""The compiled kernels compute exactly what the numpy references compute."""

import numpy as np
import pytest

from nanoct.devices.sim.geometry import CTGeometry, DetectorGrid
from nanoct.devices.sim.imaging import DetectedSpectrum, Renderer
from nanoct.devices.sim.kernels import accumulate_chords, polychromatic_transmission
from nanoct.devices.sim.materials import attenuation_table
from nanoct.devices.sim.raytrace import Box, Cylinder, Sphere, rotation_matrix
from nanoct.devices.sim.specimens import glass_fibres, silicon_chip
from nanoct.devices.sim.spectrum import tungsten_transmission_spectrum

SHAPES = [
    Box(
        (0.01, -0.02, 0.03),
        (0.05, 0.02, 0.01),
        rotation_matrix("y", 0.4) @ rotation_matrix("x", 0.2),
    ),
    Cylinder((0.0, 0.01, -0.02), (0.2, 1.0, 0.3), 0.03, 0.05),
    Cylinder((0.02, 0.0, 0.0), (0.0, 0.0, 1.0), 0.01, 0.02),
    Sphere((-0.02, 0.02, 0.01), 0.025),
]


@pytest.mark.parametrize("shape", SHAPES, ids=["box", "tilted-cyl", "axial-cyl", "sphere"])
def test_chord_kernel_matches_numpy_shapes(shape):
    geom = CTGeometry(sod_mm=1.5, sdd_mm=100.0, angle_deg=33.0, wobble_urad=15.0)
    grid = DetectorGrid(rows=60, cols=70, pixel_mm=0.2)
    src = np.array([0.3e-3, -0.2e-3, 0.0])
    rot, origin = geom.specimen_rotation(), geom.axis_position()
    src_local = (src - origin) @ rot
    u, v = grid.u_mm(), grid.v_mm()
    dirs = np.stack(
        np.broadcast_arrays(u[None, :] - src[0], v[:, None] - src[1], geom.sdd_mm - src[2]), axis=-1
    )
    dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    expected = shape.chord(src_local, dirs @ rot)
    assert expected.max() > 0
    lengths = np.zeros((2, grid.rows, grid.cols), np.float32)
    center, frame, kind, params = shape.local_frame()
    accumulate_chords(
        lengths,
        1,
        0,
        0,
        0,
        u,
        v,
        src,
        geom.sdd_mm,
        rot @ frame,
        (src_local - center) @ frame,
        kind,
        *params,
    )
    np.testing.assert_allclose(lengths[1], expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(lengths[0], -expected, rtol=1e-5, atol=1e-9)


def test_transmission_kernel_matches_numpy_beer_lambert():
    spec = tungsten_transmission_spectrum(90.0, bin_width_kev=0.5).rebinned(24)
    det = DetectedSpectrum.build(
        spec, sdd_mm=250.0, scintillator="caesium_iodide", scintillator_um=150.0
    )
    mats = ("air", "copper", "epoxy", "silicon")
    rng = np.random.default_rng(0)
    lengths = rng.uniform(0, 0.3, size=(4, 20, 30)) * (rng.random((1, 20, 30)) > 0.3)
    lengths[0] *= -1
    lengths = lengths.astype(np.float32)
    mu = attenuation_table(list(mats), det.energies_kev).T  # (E, m)
    att = np.exp(-np.einsum("em,mij->eij", mu, lengths.astype(float)))
    t_ref = np.einsum("e,eij->ij", det.weights, att)
    ev_ref = np.einsum("e,eij->ij", det.weights * det.energies_kev, att) / t_ref
    t = np.empty((20, 30), np.float32)
    ev = np.empty((20, 30), np.float32)
    polychromatic_transmission(
        lengths,
        mu.astype(np.float32),
        det.weights.astype(np.float32),
        (det.weights * det.energies_kev).astype(np.float32),
        np.float32(det.e_var_open_kev),
        t,
        ev,
    )
    np.testing.assert_allclose(t, t_ref, rtol=2e-5)
    np.testing.assert_allclose(ev, ev_ref, rtol=2e-5)
    empty = ~np.any(lengths != 0, axis=0)
    assert np.all(t[empty] == 1.0)


@pytest.mark.parametrize("specimen", [silicon_chip(), glass_fibres()], ids=["chip", "fibres"])
def test_renderer_path_lengths_match_per_feature_numpy(specimen):
    r = Renderer(specimen.materials())
    geom = CTGeometry(sod_mm=2.95, sdd_mm=250.0, angle_deg=20.0)
    grid = DetectorGrid(rows=64, cols=64, pixel_mm=0.4)
    src = np.zeros(3)
    got = r.path_lengths(specimen, grid, geom, src, rotates=True)
    rot, origin = geom.specimen_rotation(), geom.axis_position()
    u, v = grid.u_mm(), grid.v_mm()
    dirs = np.stack(np.broadcast_arrays(u[None, :], v[:, None], geom.sdd_mm), axis=-1)
    dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    ref = np.zeros_like(got, dtype=float)
    for f in specimen.features:
        c = f.shape.chord((src - origin) @ rot, dirs @ rot)
        ref[r.materials.index(f.material)] += c
        ref[r.materials.index(f.displaces)] -= c
    np.testing.assert_allclose(got, ref, atol=2e-7)
