"""Drift from reference projections (nano_ct_scan's stream ``reference``)."""

from __future__ import annotations

import numpy as np
import pytest

from nanoct.recon.alignment import shift_projections
from nanoct.recon.reference_drift import drift_at, measure_reference_drift


def _references(shifts, *, counts=200.0, vertical_detail=True, seed=0):
    """Poisson references of a 2-D test object shifted by ``shifts`` ((dx, dy) pixels)."""
    y, x = np.mgrid[0:96, 0:128].astype(float)
    obj = 1.0 - 0.2 * (np.abs(x - 90) < 5) - 0.2 * (np.abs(x - 40) < 8)  # vertical bars
    if vertical_detail:  # and horizontal ones
        obj -= 0.2 * (np.abs(y - 30) < 4) + 0.2 * (np.abs(y - 62) < 6)
    imgs = shift_projections(np.repeat(obj[None], len(shifts), 0), *np.array(shifts).T)
    rng = np.random.default_rng(seed)
    return rng.poisson(counts * np.clip(imgs, 0, None)).astype(float), np.full(obj.shape, counts)


def test_shifts_are_measured_relative_to_the_first_reference():
    shifts = [(0.3, -0.2), (0.5, 0.1), (-0.4, 0.6), (0.0, 0.0)]
    refs, open_beam = _references(shifts)
    drift = measure_reference_drift(refs, [0.0, 10.0, 20.0, 30.0], open_beam)
    assert drift.measurable == (True, True)
    np.testing.assert_allclose(drift.dx_px, [s[0] - 0.3 for s in shifts], atol=0.05)
    np.testing.assert_allclose(drift.dy_px, [s[1] + 0.2 for s in shifts], atol=0.05)
    dx, dy = drift_at(drift, [-5.0, 5.0, 25.0, 40.0])  # linear in time, constant outside
    d = drift.dx_px
    np.testing.assert_allclose(dx, [d[0], (d[0] + d[1]) / 2, (d[2] + d[3]) / 2, d[3]], atol=1e-12)
    assert dy[0] == drift.dy_px[0] and dy[-1] == drift.dy_px[-1]


def test_an_axis_without_detail_is_not_corrected_with_noise():
    """A specimen uniform along the columns (fibres along the axis): no vertical shift can be
    measured; it is reported as not measurable and set to zero, the horizontal one is kept."""
    refs, open_beam = _references([(0.0, 0.0), (0.4, 3.0), (0.8, -2.0)], vertical_detail=False)
    drift = measure_reference_drift(refs, [0.0, 1.0, 2.0], open_beam)
    assert drift.measurable == (True, False)
    assert drift.structure[1] < 2.0 < drift.structure[0]
    np.testing.assert_array_equal(drift.dy_px, 0.0)
    np.testing.assert_allclose(drift.dx_px, [0.0, 0.4, 0.8], atol=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"references": np.ones((1, 8, 8)), "times_s": [0.0]}, "at least 2 images"),
        ({"references": np.ones((2, 8, 8)), "times_s": [1.0, 1.0]}, "strictly increasing"),
        ({"references": np.ones((2, 8, 8)), "times_s": [0.0, 1.0], "smooth_px": 0}, "smooth_px"),
        ({"references": np.ones((2, 8, 8)), "times_s": [0, 1], "open_beam": np.ones((4, 4))},
         "open_beam has shape"),
    ],
)  # fmt: skip
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure_reference_drift(**kwargs)
