import time

import numpy as np
import pytest

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.processes import OrnsteinUhlenbeck, RandomWalk


def test_event_driven_clock_only_moves_when_told():
    c = SimClock(0.0)
    assert c.now() == 0.0
    time.sleep(0.01)
    assert c.now() == 0.0
    assert c.advance(3600.0) == 3600.0
    assert c.wall_duration(10.0) == 0.0


def test_scaled_clock_follows_the_wall_clock():
    c = SimClock(0.001)  # a thousand times faster than real time
    t0 = time.monotonic()
    c.advance(50.0)  # sleeps 50 ms
    assert time.monotonic() - t0 >= 0.045  # slept (at least) 50 ms of wall time
    assert c.now() >= 50.0
    time.sleep(0.02)
    assert c.now() >= 70.0  # idle time counts in real-time mode


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"time_scale": -1}, "time_scale"), ({"start_s": -5}, "start_s")]
)
def test_clock_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimClock(**kwargs)


def test_processes_do_not_depend_on_how_often_they_are_queried():
    a = RandomWalk(5, 0.1, dims=2)
    b = RandomWalk(5, 0.1, dims=2)
    dense = [a(t) for t in np.linspace(0, 40000, 4001)]
    sparse = b(40000.0)
    np.testing.assert_allclose(dense[-1], sparse)
    assert b(12345.6)[0] == pytest.approx(a(12345.6)[0])


def test_random_walk_spreads_as_sqrt_time():
    ends = np.array([RandomWalk(s, 0.01)(10000.0)[0] for s in range(400)])
    assert ends.std() == pytest.approx(0.01 * np.sqrt(10000.0), rel=0.15)


def test_ornstein_uhlenbeck_is_stationary_with_its_sigma():
    p = OrnsteinUhlenbeck(1, sigma=0.03, tau_s=600.0)
    values = np.array([p(t)[0] for t in np.arange(3600.0, 3600.0 * 200, 1800.0)])
    assert values.std() == pytest.approx(0.03, rel=0.2)
    assert abs(values.mean()) < 0.01
