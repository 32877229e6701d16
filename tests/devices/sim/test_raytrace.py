"""Tests of nanoct.devices.sim.raytrace: exact chords checked against brute-force sampling.

Every analytic chord is compared with an independent estimate: points sampled densely along
the ray (midpoint rule over ``t >= 0``) and counted with a point-in-solid test written here
from the shapes' definitions, not from the module's formulas. A convex solid cuts a ray in
one interval, so the sampled length is within ``2 dt`` of the exact one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from nanoct.devices.sim.raytrace import Box, Cylinder, Sphere, rotation_matrix

N_SAMPLES = 20_000  # samples per ray of the brute-force integral

# ---- independent helpers ---------------------------------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    return unit(rng.normal(size=(n, 3)))


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (QR of a Gaussian matrix), independent of the module."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def perpendicular(a: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to ``a``."""
    a = unit(a)
    trial = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    return unit(np.cross(a, trial))


def inside_box(box_center, half_size, rotation) -> Callable[[np.ndarray], np.ndarray]:
    """Closed box: the columns of ``rotation`` are its axes in the parent frame."""
    c = np.asarray(box_center, float)
    h = np.asarray(half_size, float)
    axes = [np.asarray(rotation, float)[:, k] for k in range(3)]

    def test(p: np.ndarray) -> np.ndarray:
        q = p - c
        ok = np.ones(p.shape[:-1], dtype=bool)
        for k in range(3):
            ok &= np.abs(q @ axes[k]) <= h[k]
        return ok

    return test


def inside_cylinder(center, axis, radius, half_length) -> Callable[[np.ndarray], np.ndarray]:
    c = np.asarray(center, float)
    a = unit(axis)

    def test(p: np.ndarray) -> np.ndarray:
        q = p - c
        along = q @ a
        radial = np.linalg.norm(q - along[..., None] * a, axis=-1)
        return (np.abs(along) <= half_length) & (radial <= radius)

    return test


def inside_sphere(center, radius) -> Callable[[np.ndarray], np.ndarray]:
    c = np.asarray(center, float)

    def test(p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p - c, axis=-1) <= radius

    return test


def brute_chord(
    inside: Callable[[np.ndarray], np.ndarray],
    origin: np.ndarray,
    dirs: np.ndarray,
    t_max: float,
    n: int = N_SAMPLES,
) -> tuple[np.ndarray, float]:
    """Length of ``{t in [0, t_max]: inside(origin + t d)}`` by the midpoint rule, and ``dt``."""
    dt = t_max / n
    t = (np.arange(n) + 0.5) * dt
    out = np.empty(len(dirs))
    for start in range(0, len(dirs), 32):
        d = dirs[start : start + 32]
        pts = origin[None, None, :] + t[:, None, None] * d[None, :, :]
        out[start : start + 32] = inside(pts).sum(axis=0) * dt
    return out, dt


def assert_matches_brute(shape, inside, origin, dirs, bound_radius, center):
    """The shape's chords agree with sampling, ray by ray, within two samples."""
    origin = np.asarray(origin, float)
    dirs = np.asarray(dirs, float)
    t_max = np.linalg.norm(origin - center) + bound_radius + 1e-6
    got = shape.chord(origin, dirs)
    assert got.shape == dirs.shape[:-1]
    assert np.all(np.isfinite(got))
    assert np.all(got >= 0)
    want, dt = brute_chord(inside, origin, dirs, t_max)
    np.testing.assert_allclose(got, want, rtol=0, atol=2.5 * dt)
    return got


def ray_sets(rng, center, bound_radius, sample_inside, sample_surface, n=60):
    """(label, origin, dirs) sets: random, aimed at the solid, from inside, away from it."""
    center = np.asarray(center, float)
    sets = []
    for i in range(4):
        # random origins around the solid and random directions: mostly misses
        o = center + rng.uniform(-2.5, 2.5, 3) * bound_radius
        sets.append((f"random-{i}", o, random_unit(rng, n)))
    for i in range(3):
        # from outside towards random points of the solid: hits of every length
        o = center + 3.0 * bound_radius * random_unit(rng, 1)[0]
        sets.append((f"aimed-{i}", o, unit(sample_inside(n) - o)))
        # towards points on its surface: hits that only clip it, and grazing rays
        sets.append((f"surface-{i}", o, unit(sample_surface(n) - o)))
        # the same rays reversed: the solid is behind the source and must not count
        sets.append((f"behind-{i}", o, -unit(sample_inside(n) - o)))
    for i in range(3):
        # from a point inside the solid
        o = sample_inside(1)[0]
        sets.append((f"inside-{i}", o, random_unit(rng, n)))
    return sets


# ---- rotation_matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axis", "src", "dst"),
    [("x", [0, 1, 0], [0, 0, 1]), ("y", [0, 0, 1], [1, 0, 0]), ("z", [1, 0, 0], [0, 1, 0])],
)
def test_rotation_matrix_is_right_handed(axis, src, dst):
    r = rotation_matrix(axis, np.pi / 2)
    np.testing.assert_allclose(r @ np.array(src, float), dst, atol=1e-15)


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_rotation_matrix_matches_rodrigues(axis):
    rng = np.random.default_rng(1)
    k = np.eye(3)["xyz".index(axis)]
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    for angle in rng.uniform(-7, 7, 20):
        want = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
        got = rotation_matrix(axis, angle)
        np.testing.assert_allclose(got, want, atol=1e-14)
        np.testing.assert_allclose(got @ got.T, np.eye(3), atol=1e-14)
        assert np.linalg.det(got) == pytest.approx(1.0)


@pytest.mark.parametrize("axis", ["X", "w", "", "xy", 0])
def test_rotation_matrix_rejects_unknown_axis(axis):
    with pytest.raises(ValueError, match="axis"):
        rotation_matrix(axis, 0.1)


# ---- Box ----------------------------------------------------------------------------------------


def box_samplers(rng, center, half, rot):
    center, half = np.asarray(center, float), np.asarray(half, float)

    def sample_inside(n):
        local = rng.uniform(-1, 1, (n, 3)) * half
        return center + local @ rot.T

    def sample_surface(n):
        local = rng.uniform(-1, 1, (n, 3))
        face = rng.integers(0, 3, n)
        local[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
        return center + (local * half) @ rot.T

    return sample_inside, sample_surface


BOX_CASES = {
    "axis-aligned": ([0.0, 0.0, 0.0], [1.0, 0.5, 0.25], None),
    "offset": ([3.0, -2.0, 7.5], [0.2, 1.5, 0.7], None),
    "rotated-z": ([0.5, 0.1, -0.3], [1.2, 0.3, 0.6], ("z", 0.6)),
    "rotated-xyz": ([-1.0, 2.0, 0.5], [0.4, 0.9, 0.15], "random"),
    "thin-plate": ([0.0, 0.0, 1.0], [2.0, 2.0, 0.01], "random"),
}


@pytest.mark.parametrize("case", list(BOX_CASES))
def test_box_chord_matches_brute_force(case):
    rng = np.random.default_rng(list(BOX_CASES).index(case))
    center, half, rot_spec = BOX_CASES[case]
    if rot_spec is None:
        rot = np.eye(3)
    elif rot_spec == "random":
        rot = random_rotation(rng)
    else:
        rot = rotation_matrix(*rot_spec)
    box = Box(center, half, rot)
    inside = inside_box(center, half, rot)
    bound = float(np.linalg.norm(half))
    sample_inside, sample_surface = box_samplers(rng, center, half, rot)
    n_hit = 0
    for label, o, dirs in ray_sets(rng, center, bound, sample_inside, sample_surface):
        got = assert_matches_brute(box, inside, o, dirs, bound, np.asarray(center))
        if label.startswith("behind"):
            assert np.all(got == 0.0), label
        n_hit += int(np.count_nonzero(got))
    assert n_hit > 300  # the sets really exercise hits, not only misses


@pytest.mark.parametrize("rotated", [False, True])
def test_box_rays_parallel_to_faces(rotated):
    """Rays parallel to a face just inside, just outside, and through the slab of it."""
    rng = np.random.default_rng(7)
    center, half = np.array([0.3, -0.2, 0.1]), np.array([1.0, 0.6, 0.4])
    rot = random_rotation(rng) if rotated else np.eye(3)
    box = Box(center, half, rot)
    inside = inside_box(center, half, rot)
    bound = float(np.linalg.norm(half))
    eps = 1e-6
    for k in range(3):  # the ray runs along box axis k
        for j in (x for x in range(3) if x != k):  # parallel to the faces normal to axis j
            for sign in (-1.0, 1.0):
                for offset, expect_hit in ((-eps, True), (+eps, False), (-0.5 * half[j], True)):
                    o_local = np.zeros(3)
                    o_local[k] = -3.0 * half[k]
                    o_local[j] = sign * (half[j] + offset)
                    d_local = np.zeros(3)
                    d_local[k] = 1.0
                    origin = center + rot @ o_local
                    d = (rot @ d_local)[None]
                    got = assert_matches_brute(box, inside, origin, d, bound, center)
                    want = 2 * half[k] if expect_hit else 0.0
                    assert got[0] == pytest.approx(want, abs=1e-9), (k, j, sign, offset)
                    # with the ray in the face's plane but oblique inside it
                    m = 3 - k - j
                    d_local2 = d_local.copy()
                    d_local2[m] = 0.3
                    d2 = unit(rot @ d_local2)[None]
                    assert_matches_brute(box, inside, origin, d2, bound, center)


def test_box_rays_exactly_parallel_to_faces_axis_aligned():
    """Direction components exactly 0 (the slab test's division by zero)."""
    box = Box([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    d = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -0.0, 0.0]])
    inner = box.chord(np.array([-5.0, -0.0, 0.0]), d[[0]])
    assert inner[0] == pytest.approx(2.0)
    np.testing.assert_allclose(box.chord(np.array([0.0, -10.0, 0.5]), d[[1]]), [4.0])
    np.testing.assert_allclose(box.chord(np.array([0.2, 0.3, -9.0]), d[[2]]), [6.0])
    np.testing.assert_allclose(box.chord(np.array([5.0, 0.0, 0.0]), d[[3]]), [2.0])
    # outside the slab of a face it is parallel to: a miss, whatever the distance
    np.testing.assert_allclose(box.chord(np.array([-5.0, 2.0 + 1e-12, 0.0]), d[[0]]), [0.0])
    np.testing.assert_allclose(box.chord(np.array([-5.0, 0.0, -3.5]), d[[0]]), [0.0])
    # from inside, parallel to faces: distance to the exit face
    np.testing.assert_allclose(box.chord(np.array([0.25, 1.0, -2.0]), d[:3]), [0.75, 1.0, 5.0])
    # exactly on a face: the closed box gives the full edge, an open one 0; never NaN
    on_face = box.chord(np.array([-5.0, 2.0, 0.0]), d[[0]])[0]
    assert on_face in (0.0, pytest.approx(2.0))


def test_box_known_chords_and_rotation_convention():
    # a cube's space diagonal
    cube = Box([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    d = unit(np.array([[1.0, 1.0, 1.0]]))
    assert cube.chord(np.array([-1.0, -1.0, -1.0]), d)[0] == pytest.approx(np.sqrt(3.0))
    # a unit square turned 45 deg about z: along x it shows its diagonal
    turned = Box([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], rotation_matrix("z", np.pi / 4))
    ex = np.array([[1.0, 0.0, 0.0]])
    assert turned.chord(np.array([-5.0, 0.0, 0.0]), ex)[0] == pytest.approx(2 * np.sqrt(2))
    # the columns of `rotation` are the box axes: long x axis turned onto y
    long = Box([0.0, 0.0, 0.0], [3.0, 1.0, 0.5], rotation_matrix("z", np.pi / 2))
    ey = np.array([[0.0, 1.0, 0.0]])
    assert long.chord(np.array([0.0, -10.0, 0.0]), ey)[0] == pytest.approx(6.0)
    assert long.chord(np.array([-10.0, 0.0, 0.0]), ex)[0] == pytest.approx(2.0)
    # a non-symmetric rotation tells R from R.T
    r = rotation_matrix("z", 0.3) @ rotation_matrix("x", 1.1)
    box = Box([0.0, 0.0, 0.0], [2.0, 0.2, 0.1], r)
    axis0 = r[:, 0]
    assert box.chord(-10 * axis0, axis0[None])[0] == pytest.approx(4.0)


def test_box_chord_is_frame_invariant():
    """Rotating and shifting rays and box together leaves every chord unchanged."""
    rng = np.random.default_rng(11)
    half = np.array([0.7, 0.3, 1.1])
    local = Box([0.0, 0.0, 0.0], half)
    for _ in range(5):
        rot, shift = random_rotation(rng), rng.normal(size=3) * 5
        world = Box(shift, half, rot)
        o_local = rng.uniform(-2, 2, 3)
        d_local = random_unit(rng, 200)
        np.testing.assert_allclose(
            world.chord(shift + rot @ o_local, d_local @ rot.T),
            local.chord(o_local, d_local),
            atol=1e-12,
        )


# ---- Cylinder -----------------------------------------------------------------------------------


def cylinder_samplers(rng, center, axis, radius, half_length):
    center, a = np.asarray(center, float), unit(axis)
    u = perpendicular(a)
    v = np.cross(a, u)

    def at(s, rho, phi):
        return (
            center
            + s[:, None] * a
            + (rho * np.cos(phi))[:, None] * u
            + (rho * np.sin(phi))[:, None] * v
        )

    def sample_inside(n):
        s = rng.uniform(-half_length, half_length, n)
        rho = radius * np.sqrt(rng.uniform(0, 1, n))
        return at(s, rho, rng.uniform(0, 2 * np.pi, n))

    def sample_surface(n):
        s = rng.uniform(-half_length, half_length, n)
        rho = np.full(n, float(radius))
        cap = rng.uniform(0, 1, n) < 0.4
        s[cap] = rng.choice([-half_length, half_length], int(cap.sum()))
        rho[cap] = radius * np.sqrt(rng.uniform(0, 1, int(cap.sum())))
        return at(s, rho, rng.uniform(0, 2 * np.pi, n))

    return sample_inside, sample_surface


CYLINDER_CASES = {
    "along-z": ([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], 0.5, 1.0),
    "along-x-offset": ([2.0, -1.0, 4.0], [1.0, 0.0, 0.0], 0.3, 0.8),
    "tilted": ([0.2, 0.4, -0.1], [1.0, 2.0, 3.0], 0.6, 0.4),
    "tilted-disc": ([0.0, 1.0, 0.0], [0.3, -0.1, 1.0], 1.5, 0.05),
    "tilted-needle": ([-0.5, 0.0, 0.3], [-2.0, 1.0, 0.2], 0.02, 2.0),
}


@pytest.mark.parametrize("case", list(CYLINDER_CASES))
def test_cylinder_chord_matches_brute_force(case):
    rng = np.random.default_rng(100 + list(CYLINDER_CASES).index(case))
    center, axis, radius, half_length = CYLINDER_CASES[case]
    cyl = Cylinder(center, axis, radius, half_length)
    inside = inside_cylinder(center, axis, radius, half_length)
    bound = float(np.hypot(radius, half_length))
    sample_inside, sample_surface = cylinder_samplers(rng, center, axis, radius, half_length)
    n_hit = 0
    for label, o, dirs in ray_sets(rng, center, bound, sample_inside, sample_surface):
        got = assert_matches_brute(cyl, inside, o, dirs, bound, np.asarray(center))
        if label.startswith("behind"):
            assert np.all(got == 0.0), label
        n_hit += int(np.count_nonzero(got))
    assert n_hit > 300


@pytest.mark.parametrize("axis", [[0.0, 0.0, 1.0], [1.0, 2.0, 3.0], [0.0, -1.0, 0.0]])
def test_cylinder_rays_parallel_to_axis(axis):
    center, radius, half_length = np.array([0.1, -0.3, 0.2]), 0.5, 1.5
    cyl = Cylinder(center, axis, radius, half_length)
    inside = inside_cylinder(center, axis, radius, half_length)
    bound = float(np.hypot(radius, half_length))
    a = unit(axis)
    u = perpendicular(a)
    for sign in (1.0, -1.0):
        d = (sign * a)[None]
        for rho, want in ((0.0, 2 * half_length), (0.49, 2 * half_length), (0.51, 0.0)):
            o = center - sign * 4.0 * a + rho * u
            got = assert_matches_brute(cyl, inside, o, d, bound, center)
            assert got[0] == pytest.approx(want, abs=1e-9), (sign, rho)
        # grazing the mantle from just inside / just outside
        for rho, want in ((radius * (1 - 1e-9), 2 * half_length), (radius * (1 + 1e-9), 0.0)):
            got = cyl.chord(center - sign * 4.0 * a + rho * u, d)
            assert got[0] == pytest.approx(want, abs=1e-6)
        # from inside, along the axis: distance to the cap
        o = center + 0.5 * a + 0.2 * u
        want = half_length - 0.5 if sign > 0 else half_length + 0.5
        assert cyl.chord(o, d)[0] == pytest.approx(want, abs=1e-12)
        # beyond a cap, looking away from the cylinder
        o = center + sign * 2.0 * a
        assert cyl.chord(o, d)[0] == 0.0


def test_cylinder_rays_parallel_to_caps():
    """Rays perpendicular to the axis: the cap slab test divides by zero."""
    cyl = Cylinder([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], 1.0, 2.0)
    ex = np.array([[1.0, 0.0, 0.0]])
    for y in (0.0, 0.6, 0.99):
        for z in (0.0, 1.9999, -1.9999):
            want = 2 * np.sqrt(1 - y * y)
            assert cyl.chord(np.array([-5.0, y, z]), ex)[0] == pytest.approx(want), (y, z)
    for z in (2.0001, -2.0001, 10.0):
        assert cyl.chord(np.array([-5.0, 0.0, z]), ex)[0] == 0.0
    assert cyl.chord(np.array([-5.0, 1.0001, 0.0]), ex)[0] == 0.0
    # tangent to the mantle: zero length (measure zero), never NaN
    assert cyl.chord(np.array([-5.0, 1.0, 0.0]), ex)[0] == pytest.approx(0.0, abs=1e-7)
    # tilted cylinder, rays in a cap's plane family, versus brute force
    rng = np.random.default_rng(5)
    axis = unit([0.4, -0.7, 1.0])
    center = np.array([0.2, 0.1, -0.4])
    tilted = Cylinder(center, axis, 0.8, 0.6)
    inside = inside_cylinder(center, axis, 0.8, 0.6)
    u = perpendicular(axis)
    v = np.cross(axis, u)
    for s in (0.0, 0.59, 0.61, -0.59):
        phi = rng.uniform(0, 2 * np.pi, 40)
        dirs = np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v
        o = center + s * axis - 2.0 * u
        assert_matches_brute(tilted, inside, o, dirs, 1.0, center)


def test_cylinder_chord_is_frame_invariant():
    rng = np.random.default_rng(12)
    local = Cylinder([0.0, 0.0, 0.0], [0.0, 0.0, 1.0], 0.4, 0.9)
    for _ in range(5):
        rot, shift = random_rotation(rng), rng.normal(size=3) * 5
        world = Cylinder(shift, rot[:, 2], 0.4, 0.9)
        o_local = rng.uniform(-1.5, 1.5, 3)
        d_local = random_unit(rng, 200)
        np.testing.assert_allclose(
            world.chord(shift + rot @ o_local, d_local @ rot.T),
            local.chord(o_local, d_local),
            atol=1e-9,
        )


def test_cylinder_normalises_axis():
    a = Cylinder([0, 0, 0], [0.0, 0.0, 7.0], 1.0, 1.0)
    b = Cylinder([0, 0, 0], [0.0, 0.0, 1.0], 1.0, 1.0)
    np.testing.assert_allclose(a.axis, [0.0, 0.0, 1.0])
    d = random_unit(np.random.default_rng(3), 50)
    np.testing.assert_allclose(a.chord(np.array([0.3, 0.2, -3.0]), d), b.chord([0.3, 0.2, -3], d))


# ---- Sphere -------------------------------------------------------------------------------------


def sphere_samplers(rng, center, radius):
    center = np.asarray(center, float)

    def sample_inside(n):
        return center + random_unit(rng, n) * radius * rng.uniform(0, 1, (n, 1)) ** (1 / 3)

    def sample_surface(n):
        return center + random_unit(rng, n) * radius

    return sample_inside, sample_surface


@pytest.mark.parametrize(("center", "radius"), [([0.0, 0.0, 0.0], 1.0), ([2.0, -3.0, 5.0], 0.3)])
def test_sphere_chord_matches_brute_force(center, radius):
    rng = np.random.default_rng(int(radius * 10))
    sph = Sphere(center, radius)
    inside = inside_sphere(center, radius)
    sample_inside, sample_surface = sphere_samplers(rng, center, radius)
    for label, o, dirs in ray_sets(rng, center, radius, sample_inside, sample_surface):
        got = assert_matches_brute(sph, inside, o, dirs, radius, np.asarray(center))
        if label.startswith("behind"):
            assert np.all(got == 0.0), label


def test_sphere_chord_is_analytic():
    """2 sqrt(r^2 - d^2) for a sphere fully ahead; from inside, the distance to the exit."""
    rng = np.random.default_rng(21)
    center, radius = np.array([0.5, -0.2, 3.0]), 0.8
    sph = Sphere(center, radius)
    o = center + np.array([0.0, 0.0, -10.0])
    # lines at known distances d from the centre, grazing ones included
    d_vals = np.concatenate(
        [rng.uniform(0, radius, 200), radius * (1 - np.logspace(-12, -2, 11)), [0.0]]
    )
    phi = rng.uniform(0, 2 * np.pi, d_vals.size)
    targets = center + np.stack([d_vals * np.cos(phi), d_vals * np.sin(phi), 0 * phi], -1)
    dirs = unit(targets - o)
    # exact distance of the centre from each ray
    dist = np.linalg.norm(np.cross(center - o, dirs), axis=-1)
    want = 2 * np.sqrt(np.maximum(radius**2 - dist**2, 0.0))
    np.testing.assert_allclose(sph.chord(o, dirs), want, rtol=1e-9, atol=1e-7)
    # lines passing at d > r from the centre, including the barely missing, miss it
    for d in radius * (1 + np.logspace(-9, 0, 10)):
        w = random_unit(rng, 1)[0]
        start = center + d * perpendicular(w) - 10.0 * w
        assert sph.chord(start, w[None])[0] == 0.0, d
    # from inside: sqrt(r^2 - d^2) + (c - o).d
    starts = sphere_samplers(rng, center, radius)[0](50)
    for p in starts:
        d = random_unit(rng, 30)
        proj = (center - p) @ d.T
        dist2 = np.sum((center - p) ** 2) - proj**2
        np.testing.assert_allclose(sph.chord(p, d), np.sqrt(radius**2 - dist2) + proj, atol=1e-12)


# ---- all shapes ---------------------------------------------------------------------------------

SHAPES = {
    "box": lambda: Box([0.1, 0.2, 0.3], [0.5, 0.2, 0.9], rotation_matrix("y", 0.7)),
    "cylinder": lambda: Cylinder([0.1, -0.2, 0.0], [1.0, 1.0, 0.2], 0.3, 0.7),
    "sphere": lambda: Sphere([0.0, 0.4, -0.1], 0.6),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_chord_keeps_batch_shape_and_is_reversible(name):
    shape = SHAPES[name]()
    rng = np.random.default_rng(31)
    o = np.array([0.05, 0.1, -5.0])
    dirs = unit(np.array([0.0, 0.0, 5.0]) + rng.normal(scale=0.3, size=(4, 5, 3)))
    got = shape.chord(o, dirs)
    assert got.shape == (4, 5)
    np.testing.assert_array_equal(got.ravel(), shape.chord(o, dirs.reshape(-1, 3)))
    assert np.count_nonzero(got) > 5
    # the same segment traversed from the far side gives the same length
    far = o + 20.0 * dirs.reshape(-1, 3)
    back = np.array(
        [shape.chord(p, -d[None])[0] for p, d in zip(far, dirs.reshape(-1, 3), strict=True)]
    )
    np.testing.assert_allclose(back, got.ravel(), atol=1e-9)


@pytest.mark.parametrize("name", list(SHAPES))
def test_solid_behind_the_source_is_not_seen(name):
    shape = SHAPES[name]()
    c = shape.corners().mean(axis=0)
    o = c + np.array([0.0, 0.0, 5.0])
    toward = unit(c - o)[None]
    assert shape.chord(o, toward)[0] > 0
    assert shape.chord(o, -toward)[0] == 0.0


def _hull_contains(corners: np.ndarray, pts: np.ndarray, tol: float) -> np.ndarray:
    eq = ConvexHull(corners).equations
    return np.max(pts @ eq[:, :3].T + eq[:, 3], axis=1) <= tol


@pytest.mark.parametrize("case", list(BOX_CASES))
def test_box_corners_hull_contains_the_box(case):
    rng = np.random.default_rng(40)
    center, half, rot_spec = BOX_CASES[case]
    rot = (
        np.eye(3)
        if rot_spec is None
        else random_rotation(rng)
        if rot_spec == "random"
        else rotation_matrix(*rot_spec)
    )
    box = Box(center, half, rot)
    corners = box.corners()
    assert corners.shape == (8, 3)
    sample_inside, sample_surface = box_samplers(rng, center, half, rot)
    pts = np.concatenate([sample_inside(2000), sample_surface(2000)])
    assert np.all(_hull_contains(corners, pts, 1e-9))
    # the hull is the box itself: every corner is a vertex of it
    assert np.all(inside_box(center, np.asarray(half) * (1 + 1e-12), rot)(corners))
    assert ConvexHull(corners).volume == pytest.approx(8 * np.prod(half))


@pytest.mark.parametrize("case", list(CYLINDER_CASES))
def test_cylinder_corners_hull_contains_the_cylinder(case):
    rng = np.random.default_rng(41)
    center, axis, radius, half_length = CYLINDER_CASES[case]
    corners = Cylinder(center, axis, radius, half_length).corners()
    assert corners.shape == (8, 3)
    sample_inside, sample_surface = cylinder_samplers(rng, center, axis, radius, half_length)
    # the rims of both caps are the outermost points
    phi = np.linspace(0, 2 * np.pi, 721)
    a = unit(axis)
    u = perpendicular(a)
    v = np.cross(a, u)
    rims = np.concatenate(
        [
            np.asarray(center)
            + s * half_length * a
            + radius * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)
            for s in (-1, 1)
        ]
    )
    pts = np.concatenate([sample_inside(2000), sample_surface(2000), rims])
    assert np.all(_hull_contains(corners, pts, 1e-9))
    # and it is not wastefully large
    assert np.all(
        np.linalg.norm(corners - center, axis=1)
        <= np.hypot(np.sqrt(2) * radius, half_length) + 1e-9
    )


@pytest.mark.parametrize(("center", "radius"), [([0.0, 0.0, 0.0], 1.0), ([2.0, -3.0, 5.0], 0.3)])
def test_sphere_corners_hull_contains_the_sphere(center, radius):
    rng = np.random.default_rng(42)
    corners = Sphere(center, radius).corners()
    assert corners.shape == (8, 3)
    sample_inside, sample_surface = sphere_samplers(rng, center, radius)
    pts = np.concatenate([sample_inside(2000), sample_surface(2000)])
    assert np.all(_hull_contains(corners, pts, 1e-9))
    assert np.all(np.linalg.norm(corners - center, axis=1) <= np.sqrt(3) * radius + 1e-9)


# ---- invalid parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: Box([0, 0, 0], [0.0, 1.0, 1.0]),
        lambda: Box([0, 0, 0], [1.0, -1.0, 1.0]),
        lambda: Box([0, 0, 0], [1.0, 1.0, 0.0]),
        lambda: Box([0, 0, 0], [1.0, 1.0]),
        lambda: Box([0, 0], [1.0, 1.0, 1.0]),
        lambda: Cylinder([0, 0, 0], [0, 0, 0], 1.0, 1.0),
        lambda: Cylinder([0, 0, 0], [0, 0, 1], 0.0, 1.0),
        lambda: Cylinder([0, 0, 0], [0, 0, 1], -1.0, 1.0),
        lambda: Cylinder([0, 0, 0], [0, 0, 1], 1.0, 0.0),
        lambda: Cylinder([0, 0, 0], [0, 0, 1], 1.0, -2.0),
        lambda: Cylinder([0, 0, 0], [0, 0, 1], float("nan"), 1.0),
        lambda: Cylinder([0, 0, 0], [0, 1], 1.0, 1.0),
        lambda: Sphere([0, 0, 0], 0.0),
        lambda: Sphere([0, 0, 0], -0.5),
        lambda: Sphere([0, 0, 0], float("nan")),
        lambda: Sphere([0, 0, 0, 0], 1.0),
    ],
)
def test_invalid_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Box([0, 0, 0], [float("nan"), 1, 1]), id="box-nan-half-size"),
        pytest.param(lambda: Box([0, 0, 0], [1, 1, 1], np.eye(2)), id="box-rotation-2x2"),
        pytest.param(lambda: Box([0, 0, 0], [1, 1, 1], 2 * np.eye(3)), id="box-rotation-scaled"),
        pytest.param(
            lambda: Box([0, 0, 0], [1, 1, 1], [[1, 1, 0], [0, 1, 0], [0, 0, 1]]),
            id="box-rotation-sheared",
        ),
        pytest.param(lambda: Cylinder([0, 0, 0], [0, 0, np.nan], 1, 1), id="cylinder-nan-axis"),
        pytest.param(lambda: Sphere([0, 0, np.nan], 1.0), id="sphere-nan-center"),
    ],
)
def test_malformed_parameters_raise(make):
    try:
        make()
    except ValueError:
        return
    raise AssertionError("no ValueError")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_box_tiny_direction_component_on_face_plane_is_finite():
    box = Box([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    got = box.chord(np.array([-1.0, -3.0, 0.0]), np.array([[1e-320, 1.0, 0.0]]))
    assert np.isfinite(got[0])
    assert got[0] in (0.0, pytest.approx(2.0))
