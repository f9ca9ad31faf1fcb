"""Configuration and status types shared by the hub, the power manager and the entities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .const import (
    CIRCUIT_KIND_VIRTUAL,
    CONF_CIRCUIT_ID,
    CONF_CURRENT_SENSORS,
    CONF_KIND,
    CONF_MAX_CURRENT,
    CONF_MAX_POWER_KW,
    CONF_MEMBERS,
    CONF_METER,
    CONF_METER_INCLUDES_CHARGERS,
    CONF_PARENT,
    CONF_PHASES,
    CONF_POWER_SENSOR,
    CONF_SAFETY_MARGIN,
    CONF_VOLTAGE,
    DEFAULT_SAFETY_MARGIN,
    METER_CURRENT,
    METER_NONE,
    METER_POWER,
    NOMINAL_VOLTAGE,
)

CIRCUIT_PHASES: dict[str, tuple[str, ...]] = {
    "l1_l2_l3": ("L1", "L2", "L3"),
    "l1": ("L1",),
    "l2": ("L2",),
    "l3": ("L3",),
}


class ChargeMode(StrEnum):
    """How the manager treats one charger (the mode select)."""

    MANAGED = "managed"  # fair share with the others of its priority
    FASTEST = "fastest"  # served before everyone else, within the circuit limits
    PAUSED = "paused"  # held at 0 A


class LimitReason(StrEnum):
    """Why a charger has its current setpoint (the limit-reason sensor)."""

    LIMITED_BY_CIRCUIT = "limited_by_circuit"
    CHARGER_MAX = "charger_max"
    PAUSED_CAPACITY = "paused_capacity"
    PAUSED_ROTATION = "paused_rotation"
    PAUSED_BY_USER = "paused_by_user"
    INACTIVE = "inactive"
    OFFLINE = "offline"
    NOT_FOLLOWING = "not_following"  # rejects or ignores its profile: counted at real draw
    UNMANAGED = "unmanaged"  # on no circuit: only its hardware cap applies


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    """A circuit as the user configured it (one circuit subentry)."""

    subentry_id: str
    circuit_id: str
    name: str
    kind: str  # site, transformer, panel, sub_panel or virtual
    parent: str | None
    members: tuple[str, ...]
    max_current: float | None  # A per phase
    max_power_w: float | None
    phases: tuple[str, ...]  # panel phases the circuit carries
    voltage: float
    safety_margin: float  # A kept free on every phase
    meter: str  # none, power or current
    power_sensor: str | None
    current_sensors: tuple[str, ...]  # one per phase in `phases`
    meter_includes_chargers: bool

    @property
    def is_virtual(self) -> bool:
        """Return True for a virtual circuit (a set of chargers)."""
        return self.kind == CIRCUIT_KIND_VIRTUAL

    @property
    def meter_entities(self) -> tuple[str, ...]:
        """Return the entity ids of the circuit's meter."""
        if self.meter == METER_POWER and self.power_sensor:
            return (self.power_sensor,)
        if self.meter == METER_CURRENT:
            return self.current_sensors
        return ()

    @classmethod
    def from_subentry(cls, subentry_id: str, title: str, data: Mapping[str, Any]) -> CircuitConfig:
        """Build from a circuit subentry's data."""
        kind = data[CONF_KIND]
        power_kw = data.get(CONF_MAX_POWER_KW)
        meter = data.get(CONF_METER, METER_NONE)
        return cls(
            subentry_id=subentry_id,
            circuit_id=data[CONF_CIRCUIT_ID],
            name=title or data[CONF_CIRCUIT_ID],
            kind=kind,
            parent=None if kind == CIRCUIT_KIND_VIRTUAL else data.get(CONF_PARENT) or None,
            members=tuple(data.get(CONF_MEMBERS) or ()) if kind == CIRCUIT_KIND_VIRTUAL else (),
            max_current=_opt_float(data.get(CONF_MAX_CURRENT)),
            max_power_w=None if power_kw in (None, "") else float(power_kw) * 1000,
            phases=CIRCUIT_PHASES[data.get(CONF_PHASES, "l1_l2_l3")],
            voltage=float(data.get(CONF_VOLTAGE, NOMINAL_VOLTAGE)),
            safety_margin=float(data.get(CONF_SAFETY_MARGIN, DEFAULT_SAFETY_MARGIN)),
            meter=meter,
            power_sensor=data.get(CONF_POWER_SENSOR) if meter == METER_POWER else None,
            current_sensors=tuple(data.get(CONF_CURRENT_SENSORS) or ())
            if meter == METER_CURRENT
            else (),
            meter_includes_chargers=bool(data.get(CONF_METER_INCLUDES_CHARGERS, True)),
        )


def _opt_float(value: Any) -> float | None:
    """Return value as float, None for empty."""
    return None if value in (None, "") else float(value)


@dataclass(slots=True)
class CircuitStatus:
    """Live figures of one circuit, refreshed after every allocation pass."""

    limit_a: float | None = None  # active per-phase limit (override or configured)
    limit_power_w: float | None = None
    override_until: datetime | None = None  # when a temporary limit reverts
    overridden: bool = False
    measured_a: tuple[float | None, float | None, float | None] | None = None
    measured_power_w: float | None = None
    ev_load_a: tuple[float, float, float] = (0.0, 0.0, 0.0)  # measured charger draw
    ev_power_w: float = 0.0
    non_ev_load_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    allocated_a: tuple[float, float, float] = (0.0, 0.0, 0.0)  # sum of setpoints
    headroom_a: float | None = None  # smallest spare current over the phases
    utilisation_pct: float | None = None  # highest phase load against its limit
    overload: bool = False  # measured load above the limit
    meter_stale: bool = False
    chargers: tuple[str, ...] = field(default_factory=tuple)


@dataclass(slots=True)
class ChargerPowerStatus:
    """Live allocation of one charger."""

    allocated_a: float | None = None  # setpoint per phase; None when not managed
    reason: LimitReason = LimitReason.INACTIVE
    limiting_circuit: str | None = None
    priority: int = 0
    mode: ChargeMode = ChargeMode.MANAGED
    offline_share_a: float | None = None  # the safe default installed on the charger
