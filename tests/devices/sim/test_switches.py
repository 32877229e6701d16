"""Instability switches shared by the CT and microscope twins."""

import pytest

from nanoct.devices.sim.microscope import MicroscopeInstabilities
from nanoct.devices.sim.twin import Instabilities


@pytest.mark.parametrize("cls", [Instabilities, MicroscopeInstabilities])
def test_none_only_and_unknown_names(cls):
    assert not any(vars(cls.none()).values())
    assert all(vars(cls()).values())  # all on by default
    one = cls.only("spot_drift", "noise")
    assert isinstance(one, cls)
    assert {k for k, v in vars(one).items() if v} == {"spot_drift", "noise"}
    with pytest.raises(ValueError, match=r"instability 'flicker' is unknown; allowed: \["):
        cls.only("flicker")
