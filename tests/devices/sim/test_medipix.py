"""Tests of the Medipix2 twin: thresholds, equalisation, noise, counter depth, validation."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.devices.sim.materials import absorbed_fraction
from nanoct.devices.sim.medipix import Medipix2Model, Medipix2Spec

SHAPE = (256, 256)
# a bremsstrahlung-like (Kramers) spectrum of a 20.5 kV tube, 1 keV bins
ENERGIES = np.arange(4.0, 21.0, 1.0)
WEIGHTS = (20.5 - ENERGIES) / (20.5 - ENERGIES).sum()


def flat(photons_total: float, energies=ENERGIES, weights=WEIGHTS) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return photons_total * w[:, None, None] * np.ones((1, *SHAPE))


def dark(n_e: int = 1) -> np.ndarray:
    return np.zeros((n_e, *SHAPE))


def test_spec_constants():
    s = Medipix2Spec()
    assert s.shape == (256, 256) and s.pixel_um == 55.0
    assert s.counter_bits == 13 and s.max_count == 8001 < 2**13
    assert s.max_trim == 7
    # Llopart et al. 2002: 140 e- rms noise, ~360 e- rms unadjusted threshold spread
    assert s.threshold_dispersion_kev == pytest.approx(360 * 3.62e-3, rel=0.01)
    assert 0.35 < s.electronic_noise_kev < 0.6  # 100-150 e- ENC in Si


def test_noise_edge_spread_matches_dispersion_and_shrinks_4x():
    m = Medipix2Model(seed=3)
    before = m.noise_edge_kev().std()
    assert before == pytest.approx(m.spec.threshold_dispersion_kev, rel=0.02)
    report = m.equalise(8.0)
    after = m.noise_edge_kev()[~m.mask].std()
    assert report.sigma_before_low_kev == pytest.approx(before, rel=1e-6)
    assert report.sigma_after_low_kev == pytest.approx(after, rel=1e-6)
    # residual of a uniform rounding error: step / sqrt(12)
    assert after == pytest.approx(m.spec.trim_step_kev / np.sqrt(12), rel=0.05)
    assert before / after > 4.0
    assert report.sigma_before_high_kev / report.sigma_after_high_kev > 4.0
    # only the pixels beyond the 3-bit range are masked (+-3.5 steps = +-2.8 sigma)
    assert 0 < report.n_masked < 0.01 * m.mask.size
    assert set(np.unique(m.trims["low"])) <= set(range(8))


def test_no_dark_counts_at_proper_threshold_noise_counts_when_too_low():
    m = Medipix2Model(seed=0)
    m.equalise(5.0)
    quiet = m.count(dark(), [10.0], thl_kev=5.0, thh_kev=50.0, shutter_s=1000.0)
    assert quiet.dtype == np.uint16 and quiet.shape == SHAPE
    assert quiet.max() == 0
    noisy = m.count(dark(), [10.0], thl_kev=0.5, thh_kev=50.0, shutter_s=1.0)
    good = ~m.mask
    assert noisy[good].min() > 100
    assert noisy[good].mean() > 1000


def test_unequalised_chip_is_noisy_where_equalised_chip_is_quiet():
    # with 1.3 keV dispersion some untrimmed pixels sit near the baseline at THL = 5 keV
    m = Medipix2Model(seed=0)
    before = m.count(dark(), [10.0], thl_kev=5.0, thh_kev=50.0, shutter_s=10.0)
    m.equalise(5.0)
    after = m.count(dark(), [10.0], thl_kev=5.0, thh_kev=50.0, shutter_s=10.0)
    assert (before > 0).sum() > 10
    assert after.max() == 0


def test_flat_field_nonuniformity_drops_after_equalisation_to_near_poisson():
    m = Medipix2Model(seed=1)
    photons = flat(300.0)
    thl = 8.0  # in the bulk of the detected spectrum
    c0 = m.count(photons, ENERGIES, thl_kev=thl, thh_kev=40.0, shutter_s=1.0).astype(float)
    m.equalise(thl)
    c1 = m.count(photons, ENERGIES, thl_kev=thl, thh_kev=40.0, shutter_s=1.0).astype(float)
    good = ~m.mask
    c1 = c1[good]
    rel0 = c0.std() / c0.mean()
    rel1 = c1.std() / c1.mean()
    poisson = 1.0 / np.sqrt(c1.mean())
    assert rel0 > 1.8 * rel1
    assert c0.var() / c0.mean() > 4.0
    # after: Poisson plus the small residual threshold spread (0.29 keV), which the model
    # predicts from the per-pixel expected counts
    assert poisson <= rel1 < 1.3 * poisson
    assert c1.var() / c1.mean() < 1.6
    expected = m.expected_counts(photons, ENERGIES, thl_kev=thl, thh_kev=40.0, shutter_s=1.0)
    expected = expected[good]
    assert c1.mean() == pytest.approx(expected.mean(), rel=0.01)
    assert c1.var() == pytest.approx(expected.mean() + expected.var(), rel=0.05)


def test_flat_is_poisson_at_proper_threshold():
    m = Medipix2Model(seed=2)
    m.equalise(6.0)
    n = 400.0
    counts = m.count(flat(n, [12.0], [1.0]), [12.0], thl_kev=6.0, thh_kev=30.0, shutter_s=2.0)
    c = counts[~m.mask].astype(float)
    expected = n * float(absorbed_fraction("silicon", 300.0, [12.0])[0])
    assert c.mean() == pytest.approx(expected, rel=0.01)
    assert c.var() / c.mean() == pytest.approx(1.0, abs=0.03)


def test_window_excluding_photon_energy_counts_nothing():
    m = Medipix2Model(seed=4)
    m.equalise(5.0)
    photons = flat(2000.0, [20.0], [1.0])
    above = m.count(photons, [20.0], thl_kev=5.0, thh_kev=12.0, shutter_s=1.0)
    below = m.count(photons, [20.0], thl_kev=25.0, thh_kev=40.0, shutter_s=1.0)
    inside = m.count(photons, [20.0], thl_kev=15.0, thh_kev=25.0, shutter_s=1.0)
    assert above.max() == 0 and below.max() == 0
    assert inside[~m.mask].min() > 0


def test_counter_saturates_at_its_depth():
    m = Medipix2Model(seed=5)
    m.equalise(6.0)
    photons = flat(1.0e6, [12.0], [1.0])
    counts = m.count(photons, [12.0], thl_kev=6.0, thh_kev=30.0, shutter_s=1.0)
    assert counts.max() == 8001
    assert (counts[~m.mask] == 8001).all()
    noisy = m.count(dark(), [12.0], thl_kev=0.0, thh_kev=30.0, shutter_s=100.0)
    assert noisy.max() == 8001


def test_counter_depth_is_a_spec_field():
    m = Medipix2Model(seed=5, spec=Medipix2Spec(max_count=11810))  # a Timepix-like depth
    counts = m.count(flat(1.0e5, [12.0], [1.0]), [12.0], thl_kev=6.0, thh_kev=30.0, shutter_s=1)
    assert counts.max() == 11810


def test_masked_pixels_read_zero():
    m = Medipix2Model(seed=6)
    m.mask[10:20, 30:40] = True
    counts = m.count(flat(500.0, [12.0], [1.0]), [12.0], thl_kev=6.0, thh_kev=30.0, shutter_s=1)
    assert counts[10:20, 30:40].max() == 0
    assert counts[~m.mask].min() > 0


def test_determinism_by_seed():
    args = (flat(200.0), ENERGIES)
    kw = {"thl_kev": 7.0, "thh_kev": 30.0, "shutter_s": 1.0}
    a, b, c = Medipix2Model(seed=7), Medipix2Model(seed=7), Medipix2Model(seed=8)
    np.testing.assert_array_equal(a.offsets["low"], b.offsets["low"])
    assert not np.array_equal(a.offsets["low"], c.offsets["low"])
    assert not np.array_equal(a.offsets["low"], a.offsets["high"])
    np.testing.assert_array_equal(a.count(*args, **kw), b.count(*args, **kw))
    assert not np.array_equal(a.count(*args, **kw), c.count(*args, **kw))
    np.testing.assert_array_equal(a.equalise(7.0).n_masked, b.equalise(7.0).n_masked)
    np.testing.assert_array_equal(a.trims["low"], b.trims["low"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"thl_kev": 8.0, "thh_kev": 6.0}, r"thh_kev=6.0 must be greater than thl_kev=8.0"),
        ({"thl_kev": 8.0, "thh_kev": 8.0}, r"thh_kev=8.0"),
        ({"thl_kev": -1.0}, r"thl_kev=-1.0 is outside \[0.0, 100.0\] keV"),
        ({"thh_kev": 500.0}, r"thh_kev=500.0 is outside"),
        ({"thl_kev": float("nan")}, r"thl_kev=nan"),
        ({"shutter_s": 0.0}, r"shutter_s=0.0 is outside \(0, "),
        ({"shutter_s": -2.0}, r"shutter_s=-2.0"),
    ],
)
def test_validate_errors(kwargs, match):
    m = Medipix2Model(seed=0)
    with pytest.raises(ValueError, match=match):
        m.validate(**kwargs)


def test_count_rejects_bad_input_before_acquiring():
    m = Medipix2Model(seed=0)
    state = m._rng.bit_generator.state
    with pytest.raises(ValueError, match="thh_kev"):
        m.count(flat(10.0), ENERGIES, thl_kev=10.0, thh_kev=5.0, shutter_s=1.0)
    with pytest.raises(ValueError, match="shutter_s"):
        m.count(flat(10.0), ENERGIES, thl_kev=5.0, thh_kev=10.0, shutter_s=0.0)
    with pytest.raises(ValueError, match="shape"):
        m.count(np.ones((2, 16, 16)), [5.0, 6.0], thl_kev=5.0, thh_kev=10.0, shutter_s=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        m.count(-flat(10.0), ENERGIES, thl_kev=5.0, thh_kev=10.0, shutter_s=1.0)
    assert m._rng.bit_generator.state == state


def test_trims_validation():
    m = Medipix2Model(seed=0)
    with pytest.raises(ValueError, match=r"integers in \[0, 7\]"):
        m.set_trims(low=np.full(SHAPE, 8))
    with pytest.raises(ValueError, match=r"integers in \[0, 7\]"):
        m.set_trims(high=np.full(SHAPE, -1))
    with pytest.raises(ValueError, match="shape"):
        m.set_trims(low=np.zeros((4, 4), dtype=int))
    m.set_trims(low=np.full(SHAPE, 7))
    assert m.trims["low"].dtype == np.uint8 and (m.trims["low"] == 7).all()
    # one trim LSB moves the noise edge by one trim step
    edge7 = m.noise_edge_kev()
    m.set_trims(low=np.full(SHAPE, 6))
    np.testing.assert_allclose(m.noise_edge_kev() - edge7, m.spec.trim_step_kev)


def test_upper_threshold_can_be_disabled():
    m = Medipix2Model(seed=9)
    m.equalise(5.0)
    photons = flat(100.0, [20.0], [1.0])
    counts = m.count(photons, [20.0], thl_kev=5.0, thh_kev=None, shutter_s=1.0)
    assert counts[~m.mask].mean() > 0.5 * 100.0 * absorbed_fraction("silicon", 300.0, [20.0])[0]
