"""The X-ray source of the sub-um CT (Feinfocus FXE 160) and the beam shutter, as ophyd devices.

Both are thin views onto :class:`nanoct.devices.sim.twin.CTTwin`. Settings are validated by the
twin's tube model (range per quantity, power limit per focus mode) before anything changes.
"""

from __future__ import annotations

import threading
import time

from ophyd import Component as Cpt
from ophyd import Device, Kind

from nanoct.devices.signals import ReadbackSignal, SettingSignal
from nanoct.devices.sim.source import FXE160, FXE160_MODES

__all__ = ["Shutter", "XrayTube"]


class XrayTube(Device):
    """FXE 160 multifocus tube: voltage, current, focus mode, TXI stabilisation, HV on/off.

    Read in every event: ``voltage`` (kV), ``current_rbv`` (emission current actually flowing,
    uA; TXI trims it), ``flux`` (TXI intensity monitor, relative to nominal) and ``power`` (W).
    Configuration: ``current`` setpoint, ``focus_mode``, ``txi``, ``xray_on`` and the mode's
    nominal ``spot_size`` (um, 10 % isodose).
    """

    voltage = Cpt(
        SettingSignal,
        getter="_get_kv",
        applier="_set_kv",
        validator="_check_kv",
        units="kV",
        limits=FXE160.VOLTAGE_RANGE_KV,
        kind=Kind.hinted,
    )
    current = Cpt(
        SettingSignal,
        getter="_get_ua",
        applier="_set_ua",
        validator="_check_ua",
        units="uA",
        limits=FXE160.CURRENT_RANGE_UA,
        kind=Kind.config,
    )
    current_rbv = Cpt(ReadbackSignal, getter="_get_ua_rbv", units="uA", kind=Kind.normal)
    flux = Cpt(ReadbackSignal, getter="_get_flux", units="relative", kind=Kind.normal)
    power = Cpt(ReadbackSignal, getter="_get_power", units="W", kind=Kind.normal)
    focus_mode = Cpt(
        SettingSignal,
        getter="_get_mode",
        applier="_set_mode",
        validator="_check_mode",
        choices=tuple(FXE160_MODES),
        value="high_focus",
        kind=Kind.config,
    )
    spot_size = Cpt(ReadbackSignal, getter="_get_spot", units="um", kind=Kind.config)
    txi = Cpt(
        SettingSignal,
        getter="_get_txi",
        applier="_set_txi",
        choices=(True, False),
        value=True,
        kind=Kind.config,
    )
    xray_on = Cpt(
        SettingSignal,
        getter="_get_on",
        applier="_set_on",
        choices=(True, False),
        value=True,
        kind=Kind.config,
    )

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        self._monitor: threading.Thread | None = None
        super().__init__(prefix, **kwargs)
        # Publish flux and current whenever twin time advances, so suspenders and monitors
        # subscribed to them see dropouts as they happen (as an EPICS monitor would).
        twin.clock.add_listener(self._publish)

    def _publish(self, _t: float | None = None) -> None:
        for sig in (self.flux, self.current_rbv):
            value = sig.get()
            sig._run_subs(
                sub_type=sig.SUB_VALUE, value=value, old_value=None, timestamp=time.time()
            )

    def start_monitoring(self, period_s: float = 0.1) -> None:
        """Publish flux and current every ``period_s`` wall seconds on a daemon thread.

        Needed only when the twin runs in real time (``time_scale > 0``) and something must see
        the flux change while the instrument is idle (a suspender waiting for recovery). In the
        event-driven mode, values are published whenever twin time advances.
        """
        if self._monitor is not None:
            return

        def _loop() -> None:
            while True:
                time.sleep(period_s)
                self._publish()

        self._monitor = threading.Thread(target=_loop, daemon=True, name=f"{self.name}-monitor")
        self._monitor.start()

    @property
    def _tube(self):
        return self._twin.tube

    def _get_kv(self) -> float:
        return self._tube.voltage_kv

    def _check_kv(self, v: float) -> None:
        self._tube.validate(voltage_kv=v)

    def _set_kv(self, v: float) -> None:
        self._tube.configure(voltage_kv=v)

    def _get_ua(self) -> float:
        return self._tube.current_ua

    def _check_ua(self, v: float) -> None:
        self._tube.validate(current_ua=v)

    def _set_ua(self, v: float) -> None:
        self._tube.configure(current_ua=v)

    def _get_mode(self) -> str:
        return self._tube.mode

    def _check_mode(self, v: str) -> None:
        self._tube.validate(mode=v)

    def _set_mode(self, v: str) -> None:
        self._tube.configure(mode=v)

    def _get_ua_rbv(self) -> float:
        return self._tube.state().current_ua

    def _get_flux(self) -> float:
        return float(self._tube.state().output_factor)

    def _get_power(self) -> float:
        return self._tube.voltage_kv * self._get_ua_rbv() * 1e-3

    def _get_spot(self) -> float:
        return self._tube.focus_mode.spot_size_um

    def _get_txi(self) -> bool:
        return self._tube.txi

    def _set_txi(self, v: bool) -> None:
        self._tube.txi = bool(v)

    def _get_on(self) -> bool:
        return self._tube.xray_on

    def _set_on(self, v: bool) -> None:
        self._tube.switch(bool(v))

    def configure_beam(
        self,
        *,
        voltage_kv: float | None = None,
        current_ua: float | None = None,
        mode: str | None = None,
    ) -> None:
        """Change several settings at once (validated together; needed when the power limit
        forbids every intermediate step). Not a bluesky verb: call it outside a plan or wrap it
        in a plan stub."""
        self._tube.configure(voltage_kv=voltage_kv, current_ua=current_ua, mode=mode)


class Shutter(Device):
    """A tungsten beam shutter at the tube exit (closed for darks; the tube stays on so its
    thermal state, drift and conditioning are not disturbed)."""

    state = Cpt(
        SettingSignal,
        getter="_get",
        applier="_put",
        choices=("open", "closed"),
        value="open",
        kind=Kind.normal,
    )

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        super().__init__(prefix, **kwargs)

    def _get(self) -> str:
        return "open" if self._twin.shutter_open else "closed"

    def _put(self, v: str) -> None:
        self._twin.shutter_open = v == "open"

    def set(self, value: str):
        """``'open'`` or ``'closed'``."""
        return self.state.set(value)
