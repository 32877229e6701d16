import numpy as np
import pytest

from nanoct.recon.phantoms import (
    ellipse_image,
    ellipse_sinogram,
    ellipsoid_cone_projections,
    ellipsoid_volume,
)


def test_disc_sinogram_is_the_chord_length():
    r, n = 10.0, 41
    sino = ellipse_sinogram([(0.0, 0.0, r, r, 0.0, 1.0)], np.array([0.0, 1.0]), n)
    s = np.arange(n) - (n - 1) / 2
    np.testing.assert_allclose(sino[0], 2 * np.sqrt(np.clip(r**2 - s**2, 0, None)), atol=1e-4)
    np.testing.assert_allclose(sino[1], sino[0], atol=1e-4)  # a disc looks the same at any angle


def test_ellipse_image_area_and_sphere_projection():
    img = ellipse_image([(0.0, 0.0, 12.0, 6.0, 0.3, 1.0)], 64)
    assert img.sum() == pytest.approx(np.pi * 12 * 6, rel=0.01)
    # the central ray through a sphere on the axis crosses its diameter
    proj = ellipsoid_cone_projections(
        [(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)], [0.0], 3, 3, sod_mm=10.0, sdd_mm=40.0, pixel_mm=0.1
    )
    assert proj[0, 1, 1] == pytest.approx(2.0, rel=1e-5)
    vol = ellipsoid_volume([(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)], (40, 40, 40), 0.05)
    assert vol.sum() * 0.05**3 == pytest.approx(4 / 3 * np.pi, rel=0.02)
