"""Propagation-based phase contrast: propagator checks and the fibre's edge fringes."""

import itertools
import math

import numpy as np
import pytest

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.epma import EPMASource
from nanoct.devices.sim.materials import linear_attenuation_per_mm, refractive_index
from nanoct.devices.sim.phase import (
    PointSourceGeometry,
    exit_wave,
    fresnel_propagate,
    phase_contrast_image,
    wavelength_m,
)

Z1 = 4.4e-3  # source-object (m): a few mm
Z2 = 1.0  # object-detector (m)
DET_PIXEL = 55e-6  # Medipix2
RADIUS_UM = 5.0  # 10 um chitin fibre


def fibre(pixel_m, n=256):
    x_um = (np.arange(n) - n / 2) * pixel_m * 1e6
    t = 2.0 * np.sqrt(np.clip(RADIUS_UM**2 - x_um**2, 0.0, None))
    return x_um, {"chitin": np.tile(t, (4, 1))}


def fringes(image, x_um):
    """Peak intensity just outside the edges and minimum just inside them."""
    row = image[2]
    outside = (np.abs(x_um) > RADIUS_UM) & (np.abs(x_um) < RADIUS_UM + 2.0)
    inside = (np.abs(x_um) < RADIUS_UM) & (np.abs(x_um) > RADIUS_UM - 2.0)
    return row[outside].max(), row[inside].min()


def test_geometry_of_the_microscope_gives_a_240_nm_pixel():
    g = PointSourceGeometry(Z1, Z2)
    assert g.magnification == pytest.approx(228.3, rel=1e-3)
    assert g.object_pixel_m(DET_PIXEL) == pytest.approx(240e-9, rel=0.01)
    assert g.effective_distance_m == pytest.approx(Z1 * Z2 / (Z1 + Z2))
    assert g.source_blur_factor == pytest.approx(1 - 1 / g.magnification)
    plane = PointSourceGeometry(math.inf, 0.3)
    assert (plane.magnification, plane.effective_distance_m) == (1.0, 0.3)
    with pytest.raises(ValueError, match="object_detector_m"):
        PointSourceGeometry(Z1, -1.0)


def test_exit_wave_has_beer_lambert_amplitude_and_minus_k_delta_t_phase():
    t = np.array([[0.0, 10.0, 100.0]])
    e = np.array([10.0, 20.0])
    w = exit_wave({"chitin": t}, e)
    assert w.shape == (2, 1, 3)
    mu = linear_attenuation_per_mm("chitin", e)
    assert np.allclose(np.abs(w[:, 0, 2]) ** 2, np.exp(-mu * 0.1), rtol=0.02)
    delta, _ = refractive_index("chitin", e)
    k = 2 * np.pi / wavelength_m(e)
    assert np.allclose(np.angle(w[:, 0, 1]), -k * delta * 10e-6)
    assert np.allclose(w[:, 0, 0], 1.0)


def test_propagator_conserves_energy_and_is_identity_at_zero_distance():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(64, 64)) + 1j * rng.normal(size=(64, 64))
    out = fresnel_propagate(u, 1e-10, 240e-9, 5e-3, pad_px=0)
    assert np.sum(np.abs(out) ** 2) == pytest.approx(np.sum(np.abs(u) ** 2), rel=1e-12)
    assert not np.allclose(out, u)
    assert np.array_equal(fresnel_propagate(u, 1e-10, 240e-9, 0.0), u)
    # padded: a localised object in a flat field keeps its mean intensity
    _, maps = fibre(240e-9, n=512)
    w = exit_wave(maps, [10.0])[0]
    prop = fresnel_propagate(w, float(wavelength_m(10.0)), 240e-9, 4.4e-3)
    assert np.mean(np.abs(prop) ** 2) == pytest.approx(np.mean(np.abs(w) ** 2), rel=2e-3)


def test_propagator_matches_the_analytic_gaussian_beam():
    lam, pixel, w0 = 1e-10, 50e-9, 1e-6
    n = 256
    x = (np.arange(n) - n / 2) * pixel
    r2 = x[None, :] ** 2 + x[:, None] ** 2
    u = np.exp(-r2 / w0**2)
    z_r = np.pi * w0**2 / lam
    z = 2 * z_r
    out = fresnel_propagate(u, lam, pixel, z)
    w_z = w0 * np.sqrt(1 + (z / z_r) ** 2)
    expected = (w0 / w_z) ** 2 * np.exp(-2 * r2 / w_z**2)
    assert np.allclose(np.abs(out) ** 2, expected, atol=2e-4)


def test_chitin_fibre_shows_bright_dark_fringes_at_its_edges():
    g = PointSourceGeometry(Z1, Z2)
    pixel = g.object_pixel_m(DET_PIXEL)
    x_um, maps = fibre(pixel)
    # polychromatic: the EPMA's 30 kV spectrum, coarsely binned
    sp = EPMASource(SimClock(), seed=0).spectrum().rebinned(8)
    img = phase_contrast_image(
        maps,
        sp.energies_kev,
        sp.photons_per_s_sr_ua,
        pixel_m=pixel,
        geometry=g,
        spot_fwhm_m=0.18e-6,
    )
    bright, dark = fringes(img, x_um)
    assert bright > 1.05  # overshoot just outside the edge
    assert dark < 0.95  # undershoot just inside
    contact = phase_contrast_image(
        maps, sp.energies_kev, sp.photons_per_s_sr_ua, pixel_m=pixel, geometry=g, propagate=False
    )
    assert contact.max() <= 1.0 + 1e-12
    assert contact.min() > 0.95  # the fibre itself barely absorbs
    assert dark < contact.min() - 0.1  # the fringe is far deeper than the absorption
    assert np.abs(img[:, :20] - 1).max() < 1e-3  # open beam far from the fibre


def test_fringe_contrast_grows_with_distance_and_vanishes_at_zero():
    pixel = 240e-9
    x_um, maps = fibre(pixel)
    contrasts = []
    for z2 in (0.0, 1e-3, 4e-3, Z2):
        g = PointSourceGeometry(Z1, z2)
        img = phase_contrast_image(maps, [10.0], pixel_m=pixel, geometry=g)
        bright, dark = fringes(img, x_um)
        contrasts.append(bright - dark)
        if z2 == 0.0:
            assert bright <= 1.0 + 1e-12
    assert contrasts[0] < 0.01  # absorption only
    assert all(b > a for a, b in itertools.pairwise(contrasts))
    assert contrasts[-1] > 0.3


def test_a_large_spot_washes_the_fringes_out():
    g = PointSourceGeometry(Z1, Z2)
    pixel = g.object_pixel_m(DET_PIXEL)
    x_um, maps = fibre(pixel)
    contrast = []
    for spot in (0.0, 0.18e-6, 2e-6):
        img = phase_contrast_image(maps, [10.0], pixel_m=pixel, geometry=g, spot_fwhm_m=spot)
        bright, dark = fringes(img, x_um)
        contrast.append(bright - dark)
    assert contrast[1] > 0.9 * contrast[0]  # the paper: spot influence negligible
    assert contrast[2] < 0.25 * contrast[0]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="distance_m"):
        fresnel_propagate(np.ones((4, 4)), 1e-10, 1e-7, -1.0)
    with pytest.raises(ValueError, match=">= 2 dimensions"):
        fresnel_propagate(np.ones(4), 1e-10, 1e-7, 1.0)
    with pytest.raises(ValueError, match="weights"):
        phase_contrast_image(
            {"chitin": np.zeros((4, 4))},
            [10.0],
            [0.0],
            pixel_m=1e-7,
            geometry=PointSourceGeometry(Z1, Z2),
        )
    with pytest.raises(ValueError, match="chitin"):
        exit_wave({"chitin": -np.ones((2, 2))}, [10.0])
