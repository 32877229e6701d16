"""Laminography in both twins: a tilted rotation axis rendered exactly, 0 deg unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.devices import sub_um_ct, xray_microscope
from nanoct.devices.sim.geometry import CTGeometry, DetectorGrid, specimen_reach_mm
from nanoct.devices.sim.microscope import MicroscopeInstabilities, MicroscopeTwin
from nanoct.devices.sim.microscope_specimens import make_microscope_specimen
from nanoct.devices.sim.raytrace import Cylinder
from nanoct.devices.sim.specimens import Feature, Specimen, make_specimen
from nanoct.devices.sim.twin import CTTwin, Instabilities

UM = 1e-3


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _reference_lengths(specimen, materials, grid, geometry, source, rot):
    """Signed path length per material through every pixel centre, from the shapes' own
    numpy chord functions and a rotation built here (not the renderer's)."""
    u, v = np.meshgrid(grid.u_mm(), grid.v_mm())
    ends = np.stack([u, v, np.full_like(u, geometry.sdd_mm)], axis=-1) - source
    dirs = ends / np.linalg.norm(ends, axis=-1, keepdims=True)
    origin = (source - geometry.axis_position()) @ rot  # into the specimen frame
    local = dirs @ rot
    out = np.zeros((len(materials), grid.rows, grid.cols))
    for f in specimen.features:
        chord = f.shape.chord(origin, local)
        out[materials.index(f.material)] += chord
        out[materials.index(f.displaces)] -= chord
    return out


# ---- 0 deg: nothing changes ---------------------------------------------------------------
def test_zero_tilt_leaves_the_rotation_matrix_exactly_as_without_a_tilt():
    g = CTGeometry(3.0, 250.0, angle_deg=37.0, wobble_urad=15.0, wobble_phase_rad=0.4)
    a, phi = 15.0 * 1e-6, np.deg2rad(37.0) + 0.4  # as the twin computes them
    by_hand = _rz(a * np.sin(phi)) @ _rx(a * np.cos(phi)) @ _ry(np.deg2rad(37.0))
    assert g.tilt_deg == 0.0
    np.testing.assert_array_equal(g.specimen_rotation(), by_hand)
    np.testing.assert_array_equal(CTGeometry(3.0, 250.0, angle_deg=12.0).specimen_rotation(),
                                  _ry(np.deg2rad(12.0)))  # fmt: skip


def test_tilting_and_returning_to_zero_gives_bit_identical_frames():
    kw = {"seed": 3, "specimen": "flat_chip", "binning": 4, "instabilities": Instabilities.none()}
    plain, tilted = CTTwin(**kw), CTTwin(**kw)
    tilted.set_position("tilt_deg", 30.0)
    assert not np.array_equal(tilted.acquire(1.0).image, plain.acquire(1.0).image)
    tilted.set_position("tilt_deg", 0.0)
    plain.clock.advance(tilted.clock.now() - plain.clock.now())
    np.testing.assert_array_equal(tilted.acquire(1.0).image, plain.acquire(1.0).image)
    assert tilted.out_of_beam_x_mm() == plain.out_of_beam_x_mm()


# ---- tilted: exact chords ---------------------------------------------------------------------
@pytest.mark.parametrize(("tilt", "angle", "wobble"), [(30.0, 37.0, 15.0), (-45.0, 200.0, 0.0)])
def test_tilted_ct_rendering_equals_the_analytic_chords(tilt, angle, wobble):
    inst = Instabilities.only("wobble")
    tw = CTTwin(seed=1, specimen="flat_chip", wire=False, instabilities=inst, wobble_urad=wobble)
    tw.set_position("tilt_deg", tilt)
    tw.set_position("angle_deg", angle)
    tw.set_position("axis_x_mm", 0.013)
    g = tw.geometry()
    grid = DetectorGrid(40, 60, 0.5, offset_u_mm=1.3, offset_v_mm=-0.7)
    src = np.array([0.4e-3, -0.2e-3, 0.0])  # a drifted spot
    got = tw.renderer.path_lengths(tw.specimen, grid, g, src, rotates=True)
    phi = np.deg2rad(angle) + tw._wobble_phase
    a = wobble * 1e-6
    rot = (
        _rx(np.deg2rad(tilt)) @ _rz(a * np.sin(phi)) @ _rx(a * np.cos(phi)) @ _ry(np.deg2rad(angle))
    )
    ref = _reference_lengths(tw.specimen, list(tw.renderer.materials), grid, g, src, rot)
    assert np.abs(ref).max() > 0.05  # the chip is in view (mm of silicon and copper)
    np.testing.assert_allclose(got, ref, atol=2e-6, rtol=1e-5)


def test_a_rod_along_the_tilted_axis_casts_the_foreshortened_chord():
    """A thin rod on the rotation axis: the central ray crosses it at 90 - tilt deg to its
    axis, so its chord is 2 r / cos(tilt), at every rotation angle; its shadow stays centred
    on the central column and spans the cone projection of its tilted end caps."""
    r, half = 5 * UM, 50 * UM  # its shadow (8.5 mm at 0 deg) fits the 10 mm grid
    rod = Specimen(
        "rod", (Feature(Cylinder(np.zeros(3), np.array([0, 1.0, 0]), r, half), "tungsten"),)
    )
    tw = CTTwin(seed=0, specimen=rod, wire=False, instabilities=Instabilities.none())
    grid = DetectorGrid(201, 201, 0.05)  # the centre pixel sits on the central ray
    for tilt in (0.0, 30.0, 50.0):
        tw.set_position("tilt_deg", tilt)
        for angle in (0.0, 71.0):
            tw.set_position("angle_deg", angle)
            lengths = tw.renderer.path_lengths(tw.specimen, grid, tw.geometry(), np.zeros(3),
                                               rotates=True)  # fmt: skip
            w = lengths[tw.renderer.materials.index("tungsten")]
            assert w[100, 100] == pytest.approx(2 * r / np.cos(np.deg2rad(tilt)), rel=1e-5)
            cols = np.flatnonzero(w.max(axis=0) > 0)
            assert cols.min() + cols.max() == 200  # centred on the central column
            rows = np.flatnonzero(w[:, 100] > 0)
            # the end caps' rims, tilted and turned, projected from the source: their extreme
            # heights bound the shadow (they lie at x = 0, on the central column)
            phi = np.linspace(0, 2 * np.pi, 3601)
            rim = [np.stack([r * np.cos(phi), np.full_like(phi, y), r * np.sin(phi)])
                   for y in (-half, half)]  # fmt: skip
            m = _rx(np.deg2rad(tilt)) @ _ry(np.deg2rad(angle))
            lab = np.concatenate([m @ p for p in rim], axis=1) + np.array([[0], [0], [tw.sod_mm]])
            v = lab[1] * tw.sdd_mm / lab[2]
            assert (rows.max() - rows.min() + 1) * 0.05 == pytest.approx(np.ptp(v), abs=0.05)


def test_tilted_microscope_thickness_maps_equal_the_analytic_chords():
    tw = MicroscopeTwin(seed=2, specimen="flat_chip", oversample=1,
                        instabilities=MicroscopeInstabilities.none())  # fmt: skip
    tw.set_position("tilt_deg", 30.0)
    tw.set_position("angle_deg", 25.0)
    maps = tw.thickness_maps_um()
    rot = _rx(np.deg2rad(30.0)) @ _ry(np.deg2rad(25.0))
    mats = list(tw._renderer.materials)
    ref = _reference_lengths(tw.specimen, mats, tw.grid(), tw.geometry(), np.zeros(3), rot)
    for name in ("silicon", "copper", "tungsten"):
        k = tw._renderer.materials.index(name)
        np.testing.assert_allclose(maps[name], np.clip(ref[k] * 1e3, 0, None), atol=2e-3)
    # the die (4 um) is crossed at 30 deg to its plane: ~8 um of silicon where no metal is
    si = maps["silicon"] + maps["copper"] + maps.get("tungsten", 0.0)
    assert np.percentile(si[si > 0], 50) == pytest.approx(8.0, rel=0.02)


# ---- specimens and limits ------------------------------------------------------------------
def test_flat_chip_is_in_both_specimen_sets_and_fits_each_field_of_view():
    ct_chip, mic_chip = make_specimen("flat_chip"), make_microscope_specimen("flat_chip")
    for chip, twin in ((ct_chip, CTTwin(specimen="flat_chip")),
                       (mic_chip, MicroscopeTwin(specimen="flat_chip"))):  # fmt: skip
        c = chip.corners()
        assert np.ptp(c[:, 1]) == pytest.approx(chip.metadata["thickness_um"] * UM)  # flat along y
        layers = {it["layer"] for it in chip.metadata["layout"]}
        assert layers == {"top", "bottom", "via"}
        g = twin.geometry()
        grid = twin.grid()
        lateral, depth = specimen_reach_mm(c, 30.0)
        half_field = grid.cols * grid.pixel_mm / 2 * (g.sod_mm - depth) / g.sdd_mm
        assert lateral < half_field  # inside the field at every angle at 30 deg tilt
    assert ct_chip.metadata["width_um"] == 500.0 and mic_chip.metadata["width_um"] == 36.0


def test_tilt_limits_and_clearance_are_checked_before_anything_changes():
    tw = CTTwin(specimen="chip")
    for bad in (60.5, -90.0, float("nan")):
        with pytest.raises(ValueError, match=r"tilt_deg=.*tilt range \[-60.0, 60.0\]"):
            tw.set_position("tilt_deg", bad)
    assert tw.tilt_deg == 0.0
    tw.set_position("sod_mm", 0.5073)  # the epoxy mount: 0.42 mm radius, 0.8 mm high
    tw.validate_axis("tilt_deg", 10.0)
    with pytest.raises(ValueError, match=r"tilt_deg=60.0 would swing the specimen"):
        tw.validate_axis("tilt_deg", 60.0)
    mic = MicroscopeTwin(specimen="flat_chip")
    with pytest.raises(ValueError, match=r"tilt_deg=61 is outside the tilt range"):
        mic.set_position("tilt_deg", 61)
    assert mic.move_time_s("tilt_deg", 30.0) == pytest.approx(30.0 / 2.0 + 0.2)


@pytest.mark.parametrize("factory", [sub_um_ct, xray_microscope])
def test_rotation_tilt_device(factory, tmp_path):
    inst = factory(data_dir=tmp_path, specimen="flat_chip")
    tilt = inst.rotation.tilt
    desc = inst.rotation.describe()["rotation_tilt"]
    assert desc["units"] == "deg"
    assert desc["limits"]["control"] == {"low": -60.0, "high": 60.0}
    assert "rotation_tilt" in inst.rotation.read()
    assert inst.rotation.hints == {"fields": ["rotation"]}
    t0 = inst.twin.clock.now()
    with pytest.raises(ValueError, match=r"rotation_tilt=75.0 is outside the soft limits"):
        tilt.set(75.0)
    assert inst.twin.clock.now() == t0 and inst.twin.tilt_deg == 0.0
    tilt.set(30.0).wait(5)
    assert inst.twin.tilt_deg == 30.0 == inst.rotation.read()["rotation_tilt"]["value"]
    assert inst.twin.clock.now() - t0 == pytest.approx(30.0 / 2.0 + 0.2)
    assert inst.twin.geometry().tilt_deg == 30.0
    # the flats' out-of-beam position follows the tilt (the die reaches less along the beam)
    assert inst.manipulator.out_of_beam_x() < inst.manipulator.out_of_beam_x(tilt_deg=0.0)


def test_check_tilt_names_the_value_the_obstacle_and_the_distance():
    from nanoct.devices.sim.geometry import check_tilt

    corners = np.array([[1.0, 0.5, 0.0], [-1.0, -0.5, 0.0]])  # r = 1 mm, 0.5 mm high
    kw = {"distance_name": "fod_mm", "obstacle": "exit window"}
    assert check_tilt(np.float32(0.0), (-60.0, 60.0), corners, 1.05, **kw) == 0.0
    # at 30 deg it reaches 1 cos 30 + 0.5 sin 30 = 1.116 mm along the beam
    with pytest.raises(ValueError, match=r"into the exit window at fod_mm=1.05; .* larger fod_mm"):
        check_tilt(30.0, (-60.0, 60.0), corners, 1.05, **kw)
    with pytest.raises(ValueError, match=r"tilt_deg='30' must be a number in \[-60.0, 60.0\]"):
        check_tilt("30", (-60.0, 60.0), corners, 1.05, **kw)
