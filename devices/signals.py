"""Building blocks shared by nanoct's ophyd devices: signals and axes that view a twin.

A real-hardware variant replaces these with EPICS (or vendor SDK) signals of the same names;
plans only see ophyd's interface.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Kind, Signal, SignalRO

__all__ = ["ReadbackSignal", "SettingSignal", "TwinAxis", "run_in_twin_time"]


def run_in_twin_time(status: DeviceStatus, work: Callable[[], Any], *, threaded: bool) -> None:
    """Run ``work`` and finish ``status``: inline (time scale 0) or on a worker thread.

    An exception in ``work`` fails the status with it, so the RunEngine raises it.
    """

    def _go() -> None:
        try:
            work()
        except Exception as exc:  # handed to the RunEngine through the status
            status.set_exception(exc)
        else:
            status.set_finished()

    if threaded:
        threading.Thread(target=_go, daemon=True, name="nanoct-twin").start()
    else:
        _go()


class _TwinSignalMixin:
    """Units, limits and enumeration strings added to ``describe()``."""

    def _extra_describe(self, desc: dict) -> dict:
        entry = desc[self.name]
        if self._units:
            entry["units"] = self._units
        if self._limits is not None:
            entry["limits"] = {"control": {"low": self._limits[0], "high": self._limits[1]}}
        if self._choices is not None:
            entry["choices"] = [str(c) for c in self._choices]
        return desc


class ReadbackSignal(_TwinSignalMixin, Signal):
    """Read-only signal whose value comes from ``getter()`` (a method name on the parent)."""

    def __init__(self, *, getter: str, units: str | None = None, value: Any = 0.0, **kwargs):
        super().__init__(value=value, **kwargs)
        self._getter = getter
        self._units = units
        self._limits = None
        self._choices = None

    def get(self, **kwargs) -> Any:
        value = getattr(self.parent, self._getter)()
        self._readback = value
        return value

    def put(self, value, **kwargs):
        raise PermissionError(f"{self.name} is read-only")

    def set(self, value, **kwargs):
        raise PermissionError(f"{self.name} is read-only")

    def describe(self) -> dict:
        return self._extra_describe(super().describe())


class SettingSignal(_TwinSignalMixin, Signal):
    """Settable signal: ``validator(value)`` raises ValueError before ``applier(value)`` runs.

    ``getter``, ``validator`` and ``applier`` name methods of the parent device.
    """

    def __init__(
        self,
        *,
        getter: str,
        applier: str,
        validator: str | None = None,
        units: str | None = None,
        limits: tuple[float, float] | None = None,
        choices: tuple[Any, ...] | None = None,
        value: Any = 0.0,
        **kwargs,
    ):
        super().__init__(value=value, **kwargs)
        self._getter = getter
        self._applier = applier
        self._validator = validator
        self._units = units
        self._limits = limits
        self._choices = choices

    @property
    def limits(self) -> tuple[float, float]:
        return self._limits if self._limits is not None else (0, 0)

    def get(self, **kwargs) -> Any:
        value = getattr(self.parent, self._getter)()
        self._readback = value
        return value

    def check_value(self, value: Any) -> None:
        if self._choices is not None and value not in self._choices:
            raise ValueError(
                f"{self.name}={value!r} is not allowed; allowed: {list(self._choices)}"
            )
        if self._limits is not None:
            lo, hi = self._limits
            if not lo <= value <= hi:
                raise ValueError(
                    f"{self.name}={value!r} is outside [{lo}, {hi}] {self._units or ''}"
                )
        if self._validator:
            getattr(self.parent, self._validator)(value)

    def put(self, value, **kwargs):
        self.check_value(value)
        old = self.get()
        getattr(self.parent, self._applier)(value)
        new = self.get()
        self._run_subs(sub_type=self.SUB_VALUE, old_value=old, value=new, timestamp=self.timestamp)

    def set(self, value, **kwargs) -> DeviceStatus:
        self.check_value(value)  # raise now, before a status exists
        st = DeviceStatus(self)
        run_in_twin_time(st, lambda: self.put(value), threaded=False)
        return st

    def describe(self) -> dict:
        return self._extra_describe(super().describe())


class _AxisReadback(ReadbackSignal):
    pass


class TwinAxis(Device):
    """A motor axis of the twin: ``set`` moves, taking the twin time the move takes.

    Subclasses (or the parent device) bind it to a twin axis through ``twin_axis``; the
    readback's data key is the axis' own name, as for an EPICS motor.

    Parameters
    ----------
    twin : object with ``set_position``, ``move_time_s``, ``clock`` and the axis attribute
    twin_axis : str
        The twin attribute this axis drives (``'angle_deg'``, ``'sod_mm'``, ...).
    egu : str
        Engineering units.
    limits : (low, high)
        Soft limits; ``(0, 0)`` means unlimited (a continuous rotation).
    """

    readback = Cpt(_AxisReadback, getter="_read_position", kind=Kind.hinted)
    setpoint = Cpt(Signal, value=0.0, kind=Kind.normal)
    #: User/dial offset, as an EPICS motor has (``%wa`` shows it): always 0 on the twin, which
    #: has no separate dial position; read-only.
    user_offset = Cpt(SignalRO, value=0.0, kind=Kind.config)

    def __init__(
        self,
        prefix: str = "",
        *,
        twin=None,
        twin_axis: str,
        egu: str,
        limits: tuple[float, float] = (0.0, 0.0),
        **kwargs,
    ):
        if twin is None:  # a component of a device that holds the twin
            twin = kwargs["parent"]._twin
        self._twin = twin
        self._twin_axis = twin_axis
        self._egu = egu
        self._limits = (float(limits[0]), float(limits[1]))
        super().__init__(prefix, **kwargs)
        self.readback.name = self.name
        self.readback._units = egu
        if self._limits != (0.0, 0.0):
            self.readback._limits = self._limits
        self.setpoint.put(self.position)

    def _read_position(self) -> float:
        return float(getattr(self._twin, self._twin_axis))

    @property
    def position(self) -> float:
        return self._read_position()

    @property
    def limits(self) -> tuple[float, float]:
        return self._limits

    @property
    def low_limit(self) -> float:
        return self._limits[0]

    @property
    def high_limit(self) -> float:
        return self._limits[1]

    @property
    def egu(self) -> str:
        return self._egu

    def check_value(self, value: float) -> None:
        """Raise ValueError naming the axis, the value and the allowed range."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}={value!r} is not a number") from None
        lo, hi = self._limits
        if (lo, hi) != (0.0, 0.0) and not lo <= v <= hi:
            raise ValueError(
                f"{self.name}={v!r} is outside the soft limits [{lo}, {hi}] {self._egu}"
            )
        self._twin.validate_axis(self._twin_axis, v)

    def set(self, value: float, **kwargs) -> DeviceStatus:
        self.check_value(value)
        target = float(value)
        self.setpoint.put(target)
        st = DeviceStatus(self)
        dt = self._twin.move_time_s(self._twin_axis, target)
        clock = self._twin.clock

        def _move() -> None:
            clock.advance(dt)
            self._twin.set_position(self._twin_axis, target)
            self.readback._run_subs(
                sub_type=Signal.SUB_VALUE,
                value=target,
                old_value=None,
                timestamp=self.readback.timestamp,
            )

        run_in_twin_time(st, _move, threaded=clock.time_scale > 0)
        return st

    def move(self, value: float, wait: bool = True, timeout: float | None = None) -> DeviceStatus:
        st = self.set(value)
        if wait:
            st.wait(timeout)
        return st

    def stop(self, *, success: bool = False) -> None:
        """Moves of the twin are atomic; nothing to stop."""
