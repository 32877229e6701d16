"""On/off switches of a twin's instabilities, shared by the CT and the microscope twins."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Self

__all__ = ["InstabilitySwitches"]


class InstabilitySwitches:
    """Base of the frozen dataclasses of boolean fields naming which instabilities a twin
    simulates (:class:`~nanoct.devices.sim.twin.Instabilities`,
    :class:`~nanoct.devices.sim.microscope.MicroscopeInstabilities`)."""

    @classmethod
    def none(cls) -> Self:
        """Every instability off: the ideal instrument."""
        return cls(**{f.name: False for f in fields(cls)})

    @classmethod
    def only(cls, *names: str) -> Self:
        """Everything off except ``names``."""
        known = {f.name for f in fields(cls)}
        for n in names:
            if n not in known:
                raise ValueError(f"instability {n!r} is unknown; allowed: {sorted(known)}")
        return replace(cls.none(), **dict.fromkeys(names, True))
