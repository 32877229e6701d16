"""The Cameca SX100 electron probe with its transmission target, as an ophyd device.

A thin view onto :class:`nanoct.devices.sim.epma.EPMASource` (the twin's source). Settings are
validated by the source model (0.2-50 kV, 1 pA-1000 nA) before anything changes: a value out
of range raises ValueError naming the setting, the value and the range.
"""

from __future__ import annotations

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind

from nanoct.devices.signals import ReadbackSignal, SettingSignal
from nanoct.devices.sim.epma import CURRENT_RANGE_NA, VOLTAGE_RANGE_KV

__all__ = ["EPMASource"]


class EPMASource(Device):
    """EPMA transmission-target X-ray source: voltage, beam current, beam on/off, spot.

    Read in every event: ``voltage_kv`` (kV), ``current_na`` (nA setpoint), ``beam_current``
    (nA actually on the target: 0 while the beam is off) and the spot-centre offsets
    ``spot_x`` / ``spot_y`` (um, from where the spot was at the start; its temporal shift).
    Configuration: ``beam_on`` and the spot's FWHM ``spot_size`` (um).
    """

    voltage_kv = Cpt(
        SettingSignal,
        getter="_get_kv",
        applier="_set_kv",
        validator="_check_kv",
        units="kV",
        limits=VOLTAGE_RANGE_KV,
        value=30.0,
        kind=Kind.hinted,
    )
    current_na = Cpt(
        SettingSignal,
        getter="_get_na",
        applier="_set_na",
        validator="_check_na",
        units="nA",
        limits=CURRENT_RANGE_NA,
        value=200.0,
        kind=Kind.normal,
    )
    beam_current = Cpt(ReadbackSignal, getter="_get_beam_na", units="nA", kind=Kind.normal)
    beam_on = Cpt(
        SettingSignal,
        getter="_get_on",
        applier="_set_on",
        choices=(True, False),
        value=True,
        kind=Kind.config,
    )
    spot_x = Cpt(ReadbackSignal, getter="_get_spot_x", units="um", kind=Kind.normal)
    spot_y = Cpt(ReadbackSignal, getter="_get_spot_y", units="um", kind=Kind.normal)
    spot_size = Cpt(ReadbackSignal, getter="_get_spot_size", units="um", kind=Kind.config)

    def __init__(self, prefix: str = "", *, twin, **kwargs):
        self._twin = twin
        super().__init__(prefix, **kwargs)

    @property
    def _source(self):
        return self._twin.source

    def _get_kv(self) -> float:
        return self._source.voltage_kv

    def _check_kv(self, v: float) -> None:
        self._source.validate(voltage_kv=v)

    def _set_kv(self, v: float) -> None:
        self._source.configure(voltage_kv=v)

    def _get_na(self) -> float:
        return self._source.current_na

    def _check_na(self, v: float) -> None:
        self._source.validate(current_na=v)

    def _set_na(self, v: float) -> None:
        self._source.configure(current_na=v)

    def _get_beam_na(self) -> float:
        return self._source.state().current_na

    def _get_on(self) -> bool:
        return self._source.beam_on

    def _set_on(self, v: bool) -> None:
        self._source.switch(bool(v))

    def _get_spot_x(self) -> float:
        return self._source.spot_offset_um(self._twin.clock.now())[0]

    def _get_spot_y(self) -> float:
        return self._source.spot_offset_um(self._twin.clock.now())[1]

    def _get_spot_size(self) -> float:
        return self._source.spot_fwhm_um

    def emission_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """The source model's spectrum at the present voltage: energies (keV) and relative
        photon numbers (sum 1), as emitted towards the detector (through the exit window).

        For analyses that need the spectral shape (e.g. a detector's efficiency); a real
        installation gives the same from its source model or a measured spectrum.
        """
        sp = self._source.spectrum()
        n = np.asarray(sp.photons_per_s_sr_ua, dtype=float)
        return np.asarray(sp.energies_kev, dtype=float), n / n.sum()

    def configure_beam(
        self, *, voltage_kv: float | None = None, current_na: float | None = None
    ) -> None:
        """Change voltage and current together (validated together, all or nothing). Not a
        bluesky verb: call it outside a plan or wrap it in a plan stub."""
        self._source.configure(voltage_kv=voltage_kv, current_na=current_na)
