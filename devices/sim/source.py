"""The Feinfocus FXE 160 multifocus transmission tube of the sub-um CT.

What the twin models, and where each number comes from:

- Voltage 10-160 kV: the FXE 160's name and datasheet class (160 kV maximum). The lower
  bound of 10 kV is an assumption (below it a transmission target gives no useful flux).
- Current 1-1000 uA: assumption for a microfocus tube of this class (the power limits per
  mode, not the current range, are what binds in practice).
- Focus modes and spot sizes at the 10 % isodose level: ``micro_focus`` 1.8 um and
  ``high_focus`` 0.9 um are the paper's two measured spots (section 1.2, the comparison scan
  at 1.8 um and the 900 nm spot of the maximum-resolution scan). ``high_power`` (6 um) and the
  power limits of every mode (20 W, 3 W, 1 W) are assumptions typical of transmission-target
  microfocus tubes (of the order of 1 W per um of spot on tungsten).
- The secondary focal spot ("parhelion") appears in ``high_focus`` only, as the paper saw it
  (Fig. 4). Its offset (3 um, -1.5 um), mean weight (8 %), fluctuation (3 % rms, 30 min
  correlation time) are assumptions chosen so that flats taken 100 projections apart differ
  visibly, as in Fig. 4.
- Conditioning: flux and spot settle over hours after switch-on (the paper's "long
  conditioning period of several hours"). Flux deficit 8 % relaxing with 1.5 h, spot 25 %
  larger relaxing with 2 h: assumptions.
- Focal-spot drift: a thermal trend of (0.3, 0.8) um settling with 3 h after switch-on plus a
  random walk of 0.1 um per sqrt(hour) per axis: assumptions of the size the paper reports
  (sub-um blur in the vertical direction of the 11 h scan).
- Flux: raw output drifts as a random walk of 1 % per sqrt(hour) and flickers 0.3 % rms between
  frames (assumptions). TXI-style stabilisation (Feinfocus' intensity regulation) is modelled
  as a feedback loop that trims the emission current to hold the output, leaving 5 % of the raw
  fluctuation (assumption: the paper says "the TXI stabilization of the intensity works well").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nanoct.devices.sim.clock import SimClock
from nanoct.devices.sim.processes import OrnsteinUhlenbeck, RandomWalk
from nanoct.devices.sim.spectrum import Spectrum, tungsten_transmission_spectrum

__all__ = ["FXE160", "FXE160_MODES", "FocusMode", "SourceState"]

HOUR_S = 3600.0
# The 10 % isodose diameter of a round Gaussian spot is 2 * sqrt(2 ln 10) sigma.
ISODOSE10_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(10.0))


@dataclass(frozen=True)
class FocusMode:
    """A focus mode of the tube: spot diameter at the 10 % isodose level and power limit."""

    name: str
    spot_size_um: float
    max_power_w: float
    has_parhelion: bool = False


FXE160_MODES: dict[str, FocusMode] = {
    m.name: m
    for m in (
        FocusMode("high_power", spot_size_um=6.0, max_power_w=20.0),
        FocusMode("micro_focus", spot_size_um=1.8, max_power_w=3.0),
        FocusMode("high_focus", spot_size_um=0.9, max_power_w=1.0, has_parhelion=True),
    )
}


@dataclass(frozen=True)
class SourceState:
    """Everything the image formation needs from the source at one twin time."""

    time_s: float
    voltage_kv: float
    current_ua: float  # emission current actually flowing (TXI may trim it)
    output_factor: float  # X-ray output relative to nominal for the set current
    effective_current_ua: float  # current a stable, conditioned tube would need for this output
    spot_x_um: float  # focal-spot centre in the source plane
    spot_y_um: float
    spot_size_um: float  # 10 % isodose diameter
    parhelion_weight: float
    parhelion_offset_um: tuple[float, float]
    xray_on: bool

    @property
    def spot_sigma_um(self) -> float:
        """Standard deviation of the Gaussian spot model."""
        return self.spot_size_um / ISODOSE10_PER_SIGMA


class FXE160:
    """Twin of the FXE 160 tube: settings, limits and the time-dependent instabilities.

    Parameters
    ----------
    clock : SimClock
    seed : int
        Seeds every random process of the tube.
    drift, conditioning, flux_fluctuation, parhelion : bool
        Switch each instability on or off (all off gives an ideal, stable source).
    switched_on_at_s : float
        Twin time of the switch-on from which conditioning and thermal drift are counted; a
        negative value models a tube already warmed up.
    """

    VOLTAGE_RANGE_KV = (10.0, 160.0)
    CURRENT_RANGE_UA = (1.0, 1000.0)
    PARHELION_OFFSET_UM = (3.0, -1.5)
    PARHELION_MEAN_WEIGHT = 0.08

    def __init__(
        self,
        clock: SimClock,
        *,
        seed: int = 0,
        drift: bool = True,
        conditioning: bool = True,
        flux_fluctuation: bool = True,
        parhelion: bool = True,
        switched_on_at_s: float = 0.0,
    ) -> None:
        self.clock = clock
        self.drift = drift
        self.conditioning = conditioning
        self.flux_fluctuation = flux_fluctuation
        self.parhelion = parhelion
        self.switched_on_at_s = float(switched_on_at_s)
        seeds = np.random.SeedSequence([seed, 160]).spawn(4)
        self._walk = RandomWalk(seeds[0], 0.1 / np.sqrt(HOUR_S), dims=2)
        self._flux_walk = RandomWalk(seeds[1], 0.01 / np.sqrt(HOUR_S))
        self._parhelion = OrnsteinUhlenbeck(seeds[2], sigma=0.03, tau_s=1800.0)
        self._flicker_rng = np.random.default_rng(seeds[3])
        self.voltage_kv = 90.0
        self.current_ua = 10.0
        self.mode = "high_focus"
        self.txi = True
        self.xray_on = True
        self._spectra: dict[tuple[float, int], Spectrum] = {}
        self._dropouts: list[tuple[float, float, float]] = []
        self._spot_jumps: list[tuple[float, float, float]] = []  # (from t, dx um, dy um)
        self._parhelion_overrides: list[tuple[float, float]] = []  # (from t, weight)

    # ---- settings -------------------------------------------------------------------------
    def validate(
        self,
        *,
        voltage_kv: float | None = None,
        current_ua: float | None = None,
        mode: str | None = None,
    ) -> None:
        """Raise ValueError if the combination is not allowed; nothing changes."""
        kv = self.voltage_kv if voltage_kv is None else float(voltage_kv)
        ua = self.current_ua if current_ua is None else float(current_ua)
        m = self.mode if mode is None else mode
        lo, hi = self.VOLTAGE_RANGE_KV
        if not lo <= kv <= hi:
            raise ValueError(f"voltage_kv={kv!r} is outside the FXE 160 range [{lo}, {hi}] kV")
        lo, hi = self.CURRENT_RANGE_UA
        if not lo <= ua <= hi:
            raise ValueError(f"current_ua={ua!r} is outside the FXE 160 range [{lo}, {hi}] uA")
        if m not in FXE160_MODES:
            raise ValueError(
                f"mode={m!r} is not a focus mode of the FXE 160; allowed: {sorted(FXE160_MODES)}"
            )
        limit = FXE160_MODES[m].max_power_w
        power = kv * ua * 1e-3
        if power > limit * (1 + 1e-9):
            raise ValueError(
                f"power {power:.3g} W (voltage_kv={kv:g} x current_ua={ua:g}) exceeds the "
                f"{m!r} mode limit of {limit:g} W; allowed current at {kv:g} kV: "
                f"<= {limit / kv * 1e3:.4g} uA"
            )

    def configure(
        self,
        *,
        voltage_kv: float | None = None,
        current_ua: float | None = None,
        mode: str | None = None,
    ) -> None:
        """Validate then apply new settings (all at once, or none)."""
        self.validate(voltage_kv=voltage_kv, current_ua=current_ua, mode=mode)
        if voltage_kv is not None:
            self.voltage_kv = float(voltage_kv)
        if current_ua is not None:
            self.current_ua = float(current_ua)
        if mode is not None:
            self.mode = mode

    def switch(self, on: bool) -> None:
        """High voltage on or off. Switching on restarts conditioning and the thermal trend."""
        if on and not self.xray_on:
            self.switched_on_at_s = self.clock.now()
        self.xray_on = bool(on)

    @property
    def focus_mode(self) -> FocusMode:
        return FXE160_MODES[self.mode]

    @property
    def power_w(self) -> float:
        return self.voltage_kv * self.current_ua * 1e-3

    def spectrum(self, n_bins: int = 24) -> Spectrum:
        """Emitted spectrum at the present voltage, rebinned to ``n_bins`` (cached)."""
        key = (self.voltage_kv, n_bins)
        if key not in self._spectra:
            fine = tungsten_transmission_spectrum(self.voltage_kv, bin_width_kev=0.5)
            self._spectra[key] = fine.rebinned(n_bins)
        return self._spectra[key]

    def inject_dropout(self, start_s: float, duration_s: float, level: float = 0.2) -> None:
        """Fault injection: between twin times ``start_s`` and ``start_s + duration_s`` the
        emission collapses to ``level`` of nominal (a filament or high-voltage glitch that the
        TXI loop cannot compensate). Used to test suspenders and the CT plan's recovery."""
        if not (duration_s > 0 and 0.0 <= level < 1.0):
            raise ValueError(f"duration_s={duration_s!r} must be > 0 and level={level!r} in [0, 1)")
        self._dropouts.append((float(start_s), float(start_s) + float(duration_s), float(level)))

    def inject_spot_jump(self, start_s: float, dx_um: float, dy_um: float) -> None:
        """Fault injection: from twin time ``start_s`` on, the focal spot sits ``(dx_um,
        dy_um)`` away from where its drift model puts it (a sudden jump, e.g. a target defect
        or an electron-optics glitch). Jumps add up. Used to test the drift monitors."""
        if not all(np.isfinite(v) for v in (start_s, dx_um, dy_um)):
            raise ValueError(f"start_s, dx_um, dy_um must be finite; got {start_s, dx_um, dy_um}")
        self._spot_jumps.append((float(start_s), float(dx_um), float(dy_um)))

    def inject_parhelion(self, start_s: float, weight: float) -> None:
        """Fault injection: from twin time ``start_s`` on, the secondary focal spot carries
        ``weight`` of the emission (in high-focus mode, where the parhelion exists)."""
        if not (np.isfinite(start_s) and 0.0 <= weight <= 0.5):
            raise ValueError(f"weight={weight!r} must lie in [0, 0.5] (start_s={start_s!r})")
        self._parhelion_overrides.append((float(start_s), float(weight)))

    def _dropout_level(self, t: float) -> float:
        level = 1.0
        for t0, t1, lv in self._dropouts:
            if t0 <= t < t1:
                level = min(level, lv)
        return level

    # ---- time-dependent behaviour ---------------------------------------------------------
    def _age_s(self, t: float) -> float:
        return max(t - self.switched_on_at_s, 0.0)

    def raw_output_factor(self, t: float) -> float:
        """X-ray output per uA relative to a conditioned, stable tube (no TXI)."""
        f = 1.0
        if self.conditioning:
            f *= 1.0 - 0.08 * np.exp(-self._age_s(t) / (1.5 * HOUR_S))
        if self.flux_fluctuation:
            f *= 1.0 + float(self._flux_walk(t)[0])
        return f

    def flicker(self, n_frames: int) -> np.ndarray:
        """Frame-to-frame output multipliers (0.3 % rms; faster than the TXI loop)."""
        if not self.flux_fluctuation:
            return np.ones(n_frames)
        return 1.0 + 0.003 * self._flicker_rng.standard_normal(n_frames)

    def spot_offset_um(self, t: float) -> tuple[float, float]:
        """Focal-spot centre (x, y) in um relative to its cold position."""
        x = y = 0.0
        if self.drift:
            age = self._age_s(t)
            trend = np.array([0.3, 0.8]) * (1.0 - np.exp(-age / (3.0 * HOUR_S)))
            x, y = trend + self._walk(t)
        for t0, dx, dy in self._spot_jumps:
            if t >= t0:
                x, y = x + dx, y + dy
        return float(x), float(y)

    def spot_size_um(self, t: float) -> float:
        size = self.focus_mode.spot_size_um
        if self.conditioning:
            size *= 1.0 + 0.25 * np.exp(-self._age_s(t) / (2.0 * HOUR_S))
        return float(size)

    def parhelion_weight(self, t: float) -> float:
        override = [w for t0, w in self._parhelion_overrides if t >= t0]
        if override and self.focus_mode.has_parhelion:
            return override[-1]
        if not (self.parhelion and self.focus_mode.has_parhelion):
            return 0.0
        w = self.PARHELION_MEAN_WEIGHT + float(self._parhelion(t)[0])
        return float(np.clip(w, 0.0, 0.3))

    def state(self, t: float | None = None) -> SourceState:
        """Snapshot of the source at twin time ``t`` (now if None)."""
        t = self.clock.now() if t is None else float(t)
        raw = self.raw_output_factor(t)
        current = self.current_ua
        output = raw
        if self.txi:
            # The loop trims the emission current to hold the output at nominal; what it cannot
            # reach (5 % of the deviation, and the current range) remains.
            output = 1.0 + 0.05 * (raw - 1.0)
            current = float(np.clip(self.current_ua * output / raw, *self.CURRENT_RANGE_UA))
            output = raw * current / self.current_ua
        glitch = self._dropout_level(t)  # the emission current collapses during a dropout
        current *= glitch
        output *= glitch
        sx, sy = self.spot_offset_um(t)
        return SourceState(
            time_s=t,
            voltage_kv=self.voltage_kv,
            current_ua=current if self.xray_on else 0.0,
            output_factor=output if self.xray_on else 0.0,
            effective_current_ua=raw * current if self.xray_on else 0.0,
            spot_x_um=sx,
            spot_y_um=sy,
            spot_size_um=self.spot_size_um(t),
            parhelion_weight=self.parhelion_weight(t),
            parhelion_offset_um=self.PARHELION_OFFSET_UM,
            xray_on=self.xray_on,
        )
