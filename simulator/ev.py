"""Electric-vehicle model: battery, state of charge and the current the car accepts (pure)."""

from __future__ import annotations

from dataclasses import dataclass

# Above this state of charge the car's charger tapers its current down towards zero at 100 %.
TAPER_START_SOC = 0.8
# Share of max current the car still takes just below full, so that a charge completes in
# finite time instead of approaching 100 % asymptotically.
TAPER_FLOOR_SHARE = 0.05


@dataclass(slots=True)
class EV:
    """A car with a battery; time is passed in, the model holds no clock."""

    battery_kwh: float = 60.0
    soc: float = 0.3
    max_current_a: float = 16.0
    phases: int = 3
    target_soc: float = 1.0

    def __post_init__(self) -> None:
        """Validate the parameters."""
        if self.battery_kwh <= 0:
            raise ValueError("battery_kwh must be positive")
        if self.phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")
        if self.max_current_a < 0:
            raise ValueError("max_current_a must not be negative")
        self.soc = min(max(self.soc, 0.0), 1.0)
        self.target_soc = min(max(self.target_soc, 0.0), 1.0)

    @property
    def full(self) -> bool:
        """Whether the car has reached its target state of charge."""
        return self.soc >= self.target_soc - 1e-9

    @property
    def energy_needed_wh(self) -> float:
        """Energy still needed to reach the target state of charge."""
        return max(0.0, (self.target_soc - self.soc) * self.battery_kwh * 1000.0)

    def acceptance_a(self, now: float | None = None) -> float:
        """Current per phase the car takes now: max current, tapering above 80 % SoC."""
        del now  # The car's behaviour depends on its SoC only; kept for a uniform call shape.
        if self.full:
            return 0.0
        if self.soc <= TAPER_START_SOC:
            return self.max_current_a
        share = (1.0 - self.soc) / (1.0 - TAPER_START_SOC)
        return self.max_current_a * max(share, TAPER_FLOOR_SHARE)

    def charge(
        self, current_a_per_phase: float, phases_used: int, voltage: float, dt_s: float
    ) -> float:
        """Feed the battery for dt_s seconds; return the energy taken in Wh and update SoC."""
        if current_a_per_phase <= 0 or phases_used <= 0 or dt_s <= 0 or self.full:
            return 0.0
        energy_wh = current_a_per_phase * phases_used * voltage * dt_s / 3600.0
        energy_wh = min(energy_wh, self.energy_needed_wh)
        self.soc = min(self.target_soc, self.soc + energy_wh / (self.battery_kwh * 1000.0))
        return energy_wh
