import numpy as np
import pytest
from scipy.special import erf

from nanoct.recon.resolution import isodose_width, line_spread_from_edge, spot_size_from_edge

ISO10 = 2 * np.sqrt(2 * np.log(10))


@pytest.mark.parametrize("sigma", [3.0, 5.0, 11.0])
def test_gaussian_edge_gives_its_10_percent_isodose_width(sigma):
    x = np.arange(400) - 200.3
    esf = 0.5 * (1 + erf(x / (np.sqrt(2) * sigma)))
    width = isodose_width(line_spread_from_edge(esf), 0.1)
    # first differences add a one-sample box: variance + 1/12
    assert width == pytest.approx(ISO10 * np.sqrt(sigma**2 + 1 / 12), rel=0.01)


def test_falling_edge_and_spot_scaling():
    x = np.arange(300) - 150.0
    esf = 1 - 0.5 * (1 + erf(x / (np.sqrt(2) * 8.0)))
    spot = spot_size_from_edge(esf, pixel_um=50.0, magnification=101.0)
    assert spot == pytest.approx(ISO10 * 8.0 * 50.0 / 100.0, rel=0.01)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="level"):
        isodose_width(np.ones(10), 1.5)
    with pytest.raises(ValueError, match="magnification"):
        spot_size_from_edge(np.linspace(0, 1, 50), pixel_um=1.0, magnification=1.0)
    with pytest.raises(ValueError, match="both sides"):
        isodose_width(np.linspace(0, 1, 20), 0.1)


def test_line_group_counting_rejects_fake_lines():
    from nanoct.recon.resolution import line_group_visibility

    w = 1.0
    x = np.arange(-12, 12, 0.05)
    lines = sum(np.exp(-((x - c) ** 2) / (2 * 0.2**2)) for c in (2 * np.arange(6) - 5) * w)
    sharp = 1.0 - 0.1 * lines
    vis = line_group_visibility(x, sharp, line_width_um=w)
    assert vis.resolved and vis.lines_found == 6 and vis.modulation > 0.02
    # a pattern with 5 dips at the wrong pitch (spurious resolution) is not resolved
    fake = 1.0 - 0.1 * sum(np.exp(-((x - c) ** 2) / (2 * 0.3**2)) for c in np.linspace(-5, 5, 5))
    assert not line_group_visibility(x, fake, line_width_um=w).resolved


def test_oversampled_profile_of_tilted_lines():
    from nanoct.recon.resolution import oversampled_profile

    a = np.deg2rad(4.0)
    r, c = np.indices((40, 60), dtype=float)
    xperp = (c - 30) * np.cos(a) - (r - 20) * np.sin(a)
    img = np.cos(2 * np.pi * xperp / 1.5)  # period 1.5 px: below Nyquist on the columns
    xb, prof = oversampled_profile(img, angle_rad=a, centre=(20, 30), bin_px=0.1)
    core = np.abs(xb) < 20
    np.testing.assert_allclose(prof[core], np.cos(2 * np.pi * xb[core] / 1.5), atol=0.08)
