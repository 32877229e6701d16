"""The X-ray microscope twin: geometry, exact thickness maps at any angle, phase contrast,
flux at the detector, the drifting spot, counting and saturation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nanoct.devices.sim.microscope import MicroscopeInstabilities, MicroscopeTwin
from nanoct.devices.sim.microscope_specimens import (
    MICROSCOPE_SPECIMENS,
    fibre_bundle,
    make_microscope_specimen,
)
from nanoct.devices.sim.raytrace import Cylinder
from nanoct.devices.sim.specimens import Feature, Specimen
from nanoct.devices.sim.twin import Instabilities

IDEAL = MicroscopeInstabilities.none()
Y = np.array([0.0, 1.0, 0.0])


def one_fibre(material: str = "chitin", diameter_um: float = 5.0) -> Specimen:
    cyl = Cylinder(np.zeros(3), Y, diameter_um / 2 * 1e-3, 0.15)
    return Specimen("one fibre", (Feature(cyl, material, "air"),))


def test_default_geometry_puts_the_papers_240_nm_on_a_55_um_pixel():
    tw = MicroscopeTwin(instabilities=IDEAL)
    assert tw.object_distance_mm == pytest.approx(1000.0)  # the paper's ~1 m
    assert tw.magnification == pytest.approx(1004.4 / 4.4)
    assert tw.object_pixel_um == pytest.approx(0.2409, abs=1e-4)
    assert tw.optics().object_pixel_m(55e-6) == pytest.approx(tw.object_pixel_um * 1e-6)
    assert tw.grid().rows == tw.grid().cols == 256


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fod_mm": 0.1}, r"fod_mm=0.1 is outside the focus-object distance range \[0.3, 50.0\]"),
        ({"fod_mm": 80.0}, r"fod_mm=80.0 is outside"),
        ({"sdd_mm": 50.0}, r"sdd_mm=50.0 is outside \[100.0, 2000.0\] mm"),
        ({"oversample": 5}, r"oversample=5"),
        ({"wobble_urad": 500.0}, r"wobble_urad=500.0 is outside"),
        ({"specimen": "fly"}, r"specimen='fly' is unknown; allowed: \['bristles'"),
    ],
)
def test_bad_twin_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MicroscopeTwin(**kwargs)


def test_axes_validate_before_moving():
    tw = MicroscopeTwin(instabilities=IDEAL)
    with pytest.raises(ValueError, match=r"axis_x_mm=11.0 is outside the manipulator range"):
        tw.set_position("axis_x_mm", 11.0)
    with pytest.raises(ValueError, match=r"angle_deg=nan must be finite"):
        tw.set_position("angle_deg", float("nan"))
    assert (tw.axis_x_mm, tw.angle_deg) == (0.0, 0.0)
    assert tw.move_time_s("fod_mm", 5.4) == pytest.approx(1.0 / 0.1 + 0.2)
    tw.set_position("fod_mm", 2.2)
    assert tw.object_pixel_um == pytest.approx(55.0 * 2.2 / 1004.4)


def _analytic_thickness(tw: MicroscopeTwin, spec: Specimen) -> np.ndarray:
    """Sum of exact chords through vertical cylinders for the rays to the pixel centres."""
    grid = tw.grid()
    u, v = np.meshgrid(grid.u_mm(), grid.v_mm())
    theta = np.deg2rad(tw.angle_deg)
    rot = np.array(
        [[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]]
    )
    out = np.zeros(u.shape)
    for f in spec.features:
        c = rot @ f.shape.center + np.array([tw.axis_x_mm, tw.axis_y_mm, tw.fod_mm])
        # distance in the xz plane from the axis to the ray from the origin towards (u, sdd)
        norm_xz = np.hypot(u, tw.sdd_mm)
        d = np.abs(c[0] * tw.sdd_mm - c[2] * u) / norm_xz
        chord_xz = 2.0 * np.sqrt(np.clip(f.shape.radius**2 - d**2, 0.0, None))
        out += chord_xz * np.sqrt(u**2 + v**2 + tw.sdd_mm**2) / norm_xz
    return out * 1e3  # um


@pytest.mark.parametrize("angle_deg", [0.0, 37.0, 90.0])
def test_thickness_maps_are_exact_chords_at_any_rotation_angle(angle_deg):
    spec = fibre_bundle()
    tw = MicroscopeTwin(specimen=spec, oversample=1, instabilities=IDEAL)
    tw.set_position("axis_x_mm", 0.003)
    tw.set_position("angle_deg", angle_deg)
    maps = tw.thickness_maps_um()
    assert set(maps) == {"glass"}
    np.testing.assert_allclose(maps["glass"], _analytic_thickness(tw, spec), atol=2e-3)
    if angle_deg == 90.0:  # the touching fibres line up along the beam
        assert maps["glass"].max() == pytest.approx(sum(spec.metadata["diameters_um"]), rel=1e-3)
    elif angle_deg == 0.0:  # face on: one fibre per ray
        assert maps["glass"].max() <= max(spec.metadata["diameters_um"]) / np.cos(0.01) + 1e-3


def test_every_microscope_specimen_renders_with_nonnegative_maps():
    for name in MICROSCOPE_SPECIMENS:
        tw = MicroscopeTwin(specimen=name, instabilities=IDEAL, n_energy_bins=4, oversample=1)
        maps = tw.thickness_maps_um()
        assert maps, name
        assert all(m.min() >= 0.0 and m.max() > 0.5 for m in maps.values()), name
        image = tw.expected_image()
        assert image.shape == (256, 256)
        assert 0.0 < image.min() < 0.999 and np.isfinite(image).all(), name
    # the hollow leg: its lumen (air displacing chitin) makes the centre thinner than the wall
    leg = make_microscope_specimen("bristles")
    assert {f.material for f in leg.features} == {"chitin", "air"}


@pytest.mark.parametrize("material", ["chitin", "glass"])
def test_phase_contrast_fringes_grow_with_propagation_distance_and_vanish_without_it(material):
    """A weakly absorbing fibre 4.4 mm from the spot: edge fringes (a bright one outside the
    fibre, above the open beam) whose contrast grows with the object-detector distance; with
    propagation off the image is the absorption image, never brighter than the open beam."""
    over = []
    for sdd_mm in (100.0, 250.0, 500.0, 1004.4):
        tw = MicroscopeTwin(
            specimen=one_fibre(material), sdd_mm=sdd_mm, instabilities=IDEAL, n_energy_bins=6
        )
        profile = tw.expected_image().mean(axis=0)
        over.append(profile.max() - 1.0)
    assert all(b > a for a, b in itertools.pairwise(over)), over
    assert over[0] > 0.005 and over[-1] > 0.1
    flat = MicroscopeTwin(
        specimen=one_fibre(material), phase_contrast=False, instabilities=IDEAL, n_energy_bins=6
    )
    profile = flat.expected_image().mean(axis=0)
    assert profile.max() <= 1.0 + 1e-9
    absorption = 1.0 - profile.min()
    assert 0.005 < absorption < 0.2  # weakly absorbing: less than the fringe contrast
    assert absorption < over[-1]


def test_flux_at_the_detector_is_the_calibrated_source_fluence():
    tw = MicroscopeTwin(instabilities=IDEAL)
    tw.set_position("axis_x_mm", tw.out_of_beam_x_mm())
    assert tw.thickness_maps_um() == {}
    per_pixel = {}
    for na in (20.0, 200.0, 1000.0):
        tw.source.configure(current_na=na)
        _, photons = tw.expected_photons(10.0)
        per_pixel[na] = photons.sum(axis=0)
        np.testing.assert_allclose(per_pixel[na], per_pixel[na].mean(), rtol=1e-9)
    # photons/mm2/s at 1 m: counts / (t * pixel area) scaled by the inverse square
    at_1m = per_pixel[200.0].mean() / (10.0 * 0.055**2) * (tw.sdd_mm / 1000.0) ** 2
    assert at_1m == pytest.approx(30.0, rel=1e-6)
    assert per_pixel[1000.0].mean() / per_pixel[20.0].mean() == pytest.approx(50.0)
    tw.source.switch(False)
    _, photons = tw.expected_photons(10.0)
    assert photons.max() == 0.0
    air = MicroscopeTwin(instabilities=IDEAL, air_absorption=True)
    air.set_position("axis_x_mm", air.out_of_beam_x_mm())
    _, photons = air.expected_photons(10.0)
    assert 0.3 < photons.sum(axis=0).mean() / per_pixel[200.0].mean() < 0.7  # 1 m of air


def test_the_spot_shift_moves_the_image_by_s_times_m_minus_1():
    spec = one_fibre("tungsten", 3.0)
    tw = MicroscopeTwin(
        specimen=spec, instabilities=MicroscopeInstabilities.only("spot_drift"), oversample=1
    )

    def centroid(t_s: float) -> float:
        _, photons = tw.expected_photons(1e-3, t_start=t_s)
        profile = photons.sum(axis=0).mean(axis=0)
        a = np.clip(np.median(profile) - profile, 0.0, None)  # the wire's shadow only
        cols = np.arange(a.size)
        return float((a * cols).sum() / a.sum())

    c0 = centroid(0.0)
    later = 10 * 3600.0
    sx, _ = tw.source.spot_offset_um(later)
    expected = -sx * 1e-3 * (tw.magnification - 1.0) / 0.055
    assert abs(expected) > 0.3  # the walk has moved the shadow by a visible fraction
    assert centroid(later) - c0 == pytest.approx(expected, abs=0.03)
    steady = MicroscopeTwin(specimen=spec, instabilities=IDEAL, oversample=1)
    _, a = steady.expected_photons(1e-3, t_start=0.0)
    _, b = steady.expected_photons(1e-3, t_start=later)
    np.testing.assert_array_equal(a, b)


def test_frames_sum_and_each_frame_saturates_on_its_own():
    tw = MicroscopeTwin(instabilities=MicroscopeInstabilities.only("noise"))
    tw.detector.equalise(0.0)
    tw.set_thresholds(thl_kev=6.0, thh_kev=40.0)
    tw.set_position("axis_x_mm", tw.out_of_beam_x_mm())
    tw.source.configure(current_na=1000.0)
    t0 = tw.clock.now()
    acq = tw.acquire(1.0e5, frames=3)
    good = ~tw.detector.mask
    assert acq.counts.dtype == np.uint32
    assert (acq.counts[good] == 3 * 8001).all()
    assert (acq.counts[~good] == 0).all()
    assert acq.saturated_pixels == good.sum()
    assert tw.clock.now() - t0 == pytest.approx(3 * (1.0e5 + 0.01))
    assert acq.time_s == pytest.approx(t0 + 1.5 * (1.0e5 + 0.01))


def test_without_noise_counts_are_the_rounded_expectation():
    tw = MicroscopeTwin(instabilities=IDEAL, oversample=1, n_energy_bins=4)
    tw.detector.equalise(0.0)
    e, photons = tw.expected_photons(300.0)
    mean = tw.detector.expected_counts(photons, e, thl_kev=5.0, thh_kev=60.0, shutter_s=300.0)
    acq = tw.acquire(300.0, frames=2)
    expected = 2 * np.rint(mean)
    expected[tw.detector.mask] = 0
    np.testing.assert_array_equal(acq.counts, expected)
    assert acq.counts[~tw.detector.mask].min() > 0


def test_same_seed_same_counts():
    def counts(seed):
        tw = MicroscopeTwin(seed=seed, oversample=1, n_energy_bins=4)
        tw.set_thresholds(thl_kev=8.0)
        return tw.acquire(200.0).counts

    np.testing.assert_array_equal(counts(4), counts(4))
    assert not np.array_equal(counts(4), counts(5))


def test_ct_instabilities_are_accepted():
    tw = MicroscopeTwin(instabilities=Instabilities.only("noise"))
    assert tw.instabilities == MicroscopeInstabilities.only("noise")
    assert not tw.source.drift
    with pytest.raises(ValueError, match="instabilities="):
        MicroscopeTwin(instabilities="none")
    with pytest.raises(ValueError, match="instability 'flicker' is unknown"):
        MicroscopeInstabilities.only("flicker")


def test_acquisition_refuses_bad_input_before_taking_time():
    tw = MicroscopeTwin(instabilities=IDEAL)
    t0 = tw.clock.now()
    with pytest.raises(ValueError, match=r"acquire_time_s=0.0 is outside \(0, 100000.0\] s"):
        tw.acquire(0.0)
    with pytest.raises(ValueError, match=r"frames=0 must be an integer in \[1, 10000\]"):
        tw.acquire(1.0, frames=0)
    with pytest.raises(ValueError, match=r"thh_kev=4.0 must be greater than thl_kev=5.0"):
        tw.set_thresholds(thh_kev=4.0)
    assert tw.clock.now() == t0 and tw.thh_kev == 60.0
