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
