"""FDK against analytic cone-beam projections of ellipsoids; chunking, subsets, memory."""

import tracemalloc

import numpy as np
import pytest

from nanoct.recon.fdk import (
    DEFAULT_CHUNK_SLICES,
    ConeGeometry,
    backproject_cone,
    fdk,
    forward_project_cone,
)
from nanoct.recon.phantoms import ellipsoid_cone_projections, ellipsoid_volume

SOD, SDD, PIX = 20.0, 80.0, 0.2  # magnification 4, voxel 0.05 mm
N = 64
NA = 120
ANGLES = np.arange(NA) * 2 * np.pi / NA
GEO = {"sod_mm": SOD, "sdd_mm": SDD, "pixel_mm": PIX}

# (x, y, z, a, b, c, mu) in mm (z down) and 1/mm: nested ellipsoids and small spheres,
# reaching from the central slice to near the top and bottom of the cone.
ELLIPSOIDS = [
    (0.0, 0.0, 0.0, 1.2, 1.0, 1.35, 1.0),
    (0.0, 0.05, 0.0, 1.1, 0.9, 1.25, -0.6),
    (0.35, -0.2, -0.7, 0.25, 0.25, 0.25, 0.8),
    (-0.4, 0.3, 0.75, 0.3, 0.2, 0.25, 0.6),
    (0.1, 0.4, 0.1, 0.15, 0.15, 0.15, 1.2),
]


def cone_projections(ellipsoids, angles, n_rows, n_cols, off_u=0.0, off_v=0.0, sod=SOD, sdd=SDD):
    """Exact line integrals through axis-aligned ellipsoids, nanoct's cone geometry."""
    return ellipsoid_cone_projections(
        ellipsoids,
        angles,
        n_rows,
        n_cols,
        sod_mm=sod,
        sdd_mm=sdd,
        pixel_mm=PIX,
        offset_u_mm=off_u,
        offset_v_mm=off_v,
    )


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


@pytest.fixture(scope="module")
def scan():
    vox = PIX * SOD / SDD
    proj = cone_projections(ELLIPSOIDS, ANGLES, N, N)
    vol = ellipsoid_volume(ELLIPSOIDS, (N, N, N), vox)
    return proj, vol


@pytest.fixture(scope="module")
def full(scan):
    return fdk(scan[0], ANGLES, **GEO)


def test_fdk_of_analytic_ellipsoids(scan, full):
    _, vol = scan
    assert full.shape == (N, N, N) and full.dtype == np.float32
    # measured (attenuation contrast 1/mm): whole volume 0.033, central slice 0.047 (it cuts
    # four edges of the nested ellipsoids), slices 14 and 49 (0.9 mm above and below the
    # mid-plane, 2.6 degrees off it in the cone) 0.031 each
    assert rmse(full, vol) < 0.045
    assert rmse(full[N // 2], vol[N // 2]) < 0.06
    for k in (14, 49):
        assert rmse(full[k], vol[k]) < 0.045
    # flat interior of the shell's inner region: 0.4 / mm
    assert full[N // 2, 28:36, 28:36].mean() == pytest.approx(0.4, abs=0.02)  # measured 0.401


def test_slices_subset_equals_full_and_chunking_is_invisible(scan, full):
    proj, _ = scan
    sub = fdk(proj, ANGLES, **GEO, slices=[40, 3, 32])
    np.testing.assert_array_equal(sub, full[[40, 3, 32]])
    one = fdk(proj, ANGLES, **GEO, slices=17)
    np.testing.assert_array_equal(one, full[17:18])
    for chunk in (1, 5, 64):
        np.testing.assert_array_equal(fdk(proj, ANGLES, **GEO, chunk_slices=chunk), full)


def test_out_memmap_and_determinism(tmp_path, scan, full):
    proj, _ = scan
    mm = np.lib.format.open_memmap(tmp_path / "vol.npy", "w+", np.float32, full.shape)
    assert fdk(proj, ANGLES, **GEO, out=mm) is mm
    np.testing.assert_array_equal(np.asarray(mm), full)
    src = np.lib.format.open_memmap(tmp_path / "proj.npy", "w+", np.float32, proj.shape)
    src[...] = proj
    np.testing.assert_array_equal(fdk(src, ANGLES, **GEO), full)  # streamed from disk


def test_detector_offsets():
    off_u, off_v = 0.9, -0.5
    vox = PIX * SOD / SDD
    proj = cone_projections(ELLIPSOIDS, ANGLES, N, N, off_u=off_u, off_v=off_v)
    vol = ellipsoid_volume(ELLIPSOIDS, (N, N, N), vox)
    rec = fdk(proj, ANGLES, **GEO, offset_u_mm=off_u, offset_v_mm=off_v, slices=range(8, 56))
    assert rmse(rec, vol[8:56]) < 0.055  # measured 0.043; 0.24 ignoring the offsets
    wrong = fdk(proj, ANGLES, **GEO, slices=range(8, 56))
    assert rmse(wrong, vol[8:56]) > 2 * rmse(rec, vol[8:56])


def test_matches_the_digital_twin_geometry():
    """A sphere placed in the twin's specimen frame reconstructs where the docs say."""
    raytrace = pytest.importorskip("nanoct.devices.sim.raytrace")
    geometry = pytest.importorskip("nanoct.devices.sim.geometry")
    centre_spec = np.array([0.4, 0.3, -0.5])  # specimen x (right), y (up), z (to detector)
    radius = 0.3
    grid = geometry.DetectorGrid(rows=N, cols=N, pixel_mm=PIX)
    u, v = np.meshgrid(grid.u_mm(), grid.v_mm())
    dirs = np.stack([u, v, np.full_like(u, SDD)], axis=-1)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    angles = np.arange(90) * 2 * np.pi / 90
    proj = np.empty((angles.size, N, N), np.float32)
    for k, th in enumerate(angles):
        g = geometry.CTGeometry(sod_mm=SOD, sdd_mm=SDD, angle_deg=float(np.degrees(th)))
        centre_lab = g.specimen_rotation() @ centre_spec + g.axis_position()
        proj[k] = raytrace.Sphere(centre_lab, radius).chord(np.zeros(3), dirs)
    rec = fdk(proj, angles, **GEO)
    vox = PIX * SOD / SDD
    expect = np.array([-centre_spec[1], centre_spec[2], centre_spec[0]]) / vox + (N - 1) / 2
    w = np.where(rec > 0.5 * rec.max(), rec, 0.0)  # the sphere, not the streaks
    com = np.array([(w.sum(axis=tuple(a for a in range(3) if a != ax)) * np.arange(N)).sum()
                    for ax in range(3)]) / w.sum()  # fmt: skip
    np.testing.assert_allclose(com, expect, atol=0.1)


def test_forward_projector_matches_analytic(scan):
    proj, vol = scan
    fp = forward_project_cone(vol, ANGLES[::10], detector_shape=(N, N), **GEO)
    err = np.abs(fp - proj[::10])
    assert err.mean() < 0.01 * proj.max()  # measured 0.4 %: voxelised phantom edges
    geom = ConeGeometry(SOD, SDD, PIX)
    row, col = geom.project(0.0, 0.0, 0.0, 0.3, N, N)
    assert (row, col) == pytest.approx(((N - 1) / 2, (N - 1) / 2))


def test_backprojection_is_near_transpose_of_forward():
    rng = np.random.default_rng(2)
    shape = (16, 20, 20)
    x = rng.random(shape)
    angles = np.arange(24) * 2 * np.pi / 24
    y = rng.random((24, 20, 24)).astype(np.float32)
    geo = {"sod_mm": 10.0, "sdd_mm": 40.0, "pixel_mm": 0.2}  # one ray per voxel, 0.05 mm
    lhs = float(np.vdot(forward_project_cone(x, angles, detector_shape=(20, 24), **geo), y))
    rhs = float(np.vdot(x, backproject_cone(y, angles, volume_shape=shape, **geo)))
    # the forward projector's weights are path lengths (~ one voxel, 0.05 mm) where the
    # voxel-driven backprojector's are interpolation weights (~ 1)
    assert lhs / (0.05 * rhs) == pytest.approx(1.0, abs=0.1)


def _traced_peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_volume_plus_a_chunk():
    """Extra memory: one chunk + the filtered detector rows it needs, never a second volume."""
    angles = np.arange(36) * 2 * np.pi / 36
    proj = np.zeros((36, 256, 96), np.float32)
    proj[:, :, 30:66] = 1.0
    fdk(proj, angles, **GEO, volume_shape=(4, 96, 96))  # compile outside the measurement
    filtered_bytes = proj.nbytes  # all projections, filtered, as float32 (3.4 MiB)
    for nz in (64, 256):
        shape = (nz, 96, 96)
        out = np.empty(shape, np.float32)
        chunk_bytes = 4 * DEFAULT_CHUNK_SLICES * 96 * 96
        extra = _traced_peak(lambda s=shape, o=out: fdk(proj, angles, **GEO, volume_shape=s, out=o))
        # measured 4.3 MiB (64 slices) and 5.0 MiB (256 slices: the chunks far from the
        # mid-plane need more detector rows, as the magnification varies across the volume):
        # a 1.2 MiB chunk of 32 slices, the band of filtered rows (value, slope pairs, 2.4 MiB
        # at most) and the filter's workspace
        assert extra < chunk_bytes + filtered_bytes + 2**20
        total = _traced_peak(lambda s=shape: fdk(proj, angles, **GEO, volume_shape=s))
        assert total < out.nbytes + chunk_bytes + filtered_bytes + 2**20


def test_bad_input_is_named(scan):
    proj, _ = scan
    with pytest.raises(ValueError, match="sdd_mm"):
        fdk(proj, ANGLES, sod_mm=50.0, sdd_mm=40.0, pixel_mm=PIX)
    with pytest.raises(ValueError, match="pixel_mm"):
        fdk(proj, ANGLES, sod_mm=SOD, sdd_mm=SDD, pixel_mm=-1.0)
    with pytest.raises(ValueError, match="sod_mm"):
        fdk(proj, ANGLES, sod_mm=float("nan"), sdd_mm=SDD, pixel_mm=PIX)
    with pytest.raises(ValueError, match="angles"):
        fdk(proj, ANGLES[:5], **GEO)
    with pytest.raises(ValueError, match="projections"):
        fdk(proj[0], ANGLES, **GEO)
    with pytest.raises(ValueError, match="volume_shape"):
        fdk(proj, ANGLES, **GEO, volume_shape=(4, 4))
    with pytest.raises(ValueError, match="source"):
        fdk(proj, ANGLES, **GEO, voxel_mm=1.0)
    with pytest.raises(ValueError, match="slices"):
        fdk(proj, ANGLES, **GEO, slices=[N])
    with pytest.raises(ValueError, match="chunk_slices"):
        fdk(proj, ANGLES, **GEO, chunk_slices=0)
    with pytest.raises(ValueError, match="filter"):
        fdk(proj, ANGLES, **GEO, filter="ramp")
    with pytest.raises(ValueError, match="out"):
        fdk(proj, ANGLES, **GEO, out=np.empty((N, N, N), np.int32))
    with pytest.raises(ValueError, match="detector_shape"):
        forward_project_cone(np.ones((4, 4, 4)), ANGLES, **GEO, detector_shape=(4,))


def _reference_fdk(proj, angles, geo, shape, vox):
    """FDK written out plainly: cosine weights, the ramp filter, then for every voxel and
    angle a bilinear sample (zero beyond the detector) times (sod / (sod + Z))^2."""
    from scipy.ndimage import map_coordinates

    from nanoct.recon.filters import fdk_cosine_weights, filter_projections

    na, n_rows, n_cols = proj.shape
    w = fdk_cosine_weights(n_rows, n_cols, **{k: geo[k] for k in geo if k != "sod_mm"})
    tau = geo["pixel_mm"] * geo["sod_mm"] / geo["sdd_mm"]
    q = filter_projections(proj * w, "ram-lak", scale=np.pi / na / tau).astype(np.float64)
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * vox for n in shape], indexing="ij")
    g = ConeGeometry(**geo)
    out = np.zeros(shape)
    for a, th in enumerate(angles):
        row, col = g.project(x, y, z, th, n_rows, n_cols)
        big_z = -x * np.sin(th) + y * np.cos(th)
        sample = map_coordinates(q[a], [row.ravel(), col.ravel()], order=1, mode="grid-constant")
        out += sample.reshape(shape) * (g.sod_mm / (g.sod_mm + big_z)) ** 2
    return out


@pytest.mark.parametrize(
    ("uniform", "shape"),
    [
        (False, (24, 26, 30)),  # random angles, non-square slices: the general kernel
        (True, (24, 26, 26)),  # 4k uniform angles, square even slices: the quarter-turn one
    ],
)
def test_matches_a_plain_reference_implementation_for_any_chunking(uniform, shape):
    """Every chunking and slice order (which decides what the band cache keeps, slides or
    refills) gives the plainly written FDK, including voxels that project off the detector."""
    from nanoct.recon import fdk as fdk_module

    rng = np.random.default_rng(5)
    geo = {"sod_mm": 12.0, "sdd_mm": 48.0, "pixel_mm": 0.2, "offset_u_mm": 0.3,
           "offset_v_mm": -0.25}  # fmt: skip
    if uniform:
        angles = 0.3 + np.arange(32) * 2 * np.pi / 32
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, 30))
    proj = rng.normal(size=(angles.size, 18, 22)).astype(np.float32)
    vox = 0.06  # the volume is wider and taller than the detector sees
    quarter = fdk_module._quarter_turn(np.cos(angles), np.sin(angles))
    assert (quarter > 0) == uniform
    ref = _reference_fdk(proj, angles, geo, shape, vox)
    scale = np.abs(ref).max()
    full = fdk(proj, angles, **geo, volume_shape=shape, voxel_mm=vox)
    assert np.abs(full - ref).max() < 1e-4 * scale
    for chunk, slices in ((1, None), (3, None), (7, range(23, -1, -1)), (4, range(0, 24, 5))):
        rec = fdk(proj, angles, **geo, volume_shape=shape, voxel_mm=vox, chunk_slices=chunk,
                  slices=slices)  # fmt: skip
        want = full if slices is None else full[list(slices)]
        np.testing.assert_array_equal(rec, want)
