"""The demo site: panels, chargers, a virtual cap, a house load and a circuit monitor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PHASES = ("L1", "L2", "L3")
VOLTAGE = 230.0
# Readings within this of a limit count as on it (meter rounding), not over it.
TOLERANCE_A = 0.05


@dataclass(frozen=True)
class DemoCircuit:
    """One circuit of the demo site."""

    circuit_id: str
    name: str
    kind: str
    max_current: float | None = None
    max_power_kw: float | None = None
    parent: str | None = None
    members: tuple[str, ...] = ()
    house_meter: bool = False  # the main panel's house-load meter (an HA sensor)
    safety_margin: float = 1.0


@dataclass(frozen=True)
class DemoCharger:
    """One charger of the demo site and the car plugged into it."""

    charger_id: str
    name: str
    circuit: str
    wiring: str  # key of const.PHASE_WIRINGS
    max_current: float
    ev_phases: int
    battery_kwh: float
    soc: float

    @property
    def panel_phases(self) -> tuple[str, ...]:
        """Panel phases the charger's own L1, L2, L3 are wired to."""
        return {
            "l1": ("L1",),
            "l2": ("L2",),
            "l3": ("L3",),
            "l1_l2_l3": ("L1", "L2", "L3"),
            "l2_l3_l1": ("L2", "L3", "L1"),
            "l3_l1_l2": ("L3", "L1", "L2"),
        }[self.wiring]


CIRCUITS: tuple[DemoCircuit, ...] = (
    DemoCircuit("main", "Main panel", "panel", max_current=50, house_meter=True, safety_margin=2),
    DemoCircuit("garage", "Garage", "sub_panel", max_current=32, parent="main"),
    DemoCircuit("carport", "Carport", "sub_panel", max_current=25, parent="main"),
    DemoCircuit(
        "evening_cap",
        "Evening cap",
        "virtual",
        max_power_kw=11,
        members=("garage_1", "carport_1"),
        safety_margin=0.0,
    ),
)

CHARGERS: tuple[DemoCharger, ...] = (
    DemoCharger("garage_1", "Garage 1", "garage", "l1_l2_l3", 16, 3, 60, 0.25),
    DemoCharger("garage_2", "Garage 2", "garage", "l2_l3_l1", 16, 3, 77, 0.40),
    DemoCharger("garage_3", "Garage 3", "garage", "l3", 32, 1, 40, 0.30),
    DemoCharger("carport_1", "Carport 1", "carport", "l1_l2_l3", 16, 3, 58, 0.55),
    DemoCharger("carport_2", "Carport 2", "carport", "l2", 32, 1, 50, 0.20),
)

HOUSE_SENSORS = tuple(f"sensor.house_load_{p.lower()}" for p in PHASES)

# The house load steps through these (A on L1, L2, L3), one step every STEP_S seconds:
# base load, an oven on L1, a heat pump on all phases, a kettle on L2, back down.
HOUSE_PROFILE: tuple[tuple[float, float, float], ...] = (
    (4.0, 3.0, 5.0),
    (18.0, 3.0, 5.0),
    (18.0, 11.0, 13.0),
    (26.0, 21.0, 13.0),
    (12.0, 11.0, 13.0),
    (4.0, 3.0, 5.0),
)
STEP_S = 30.0


def house_load(elapsed_s: float) -> tuple[float, float, float]:
    """House load per phase at a time since the start of the demo."""
    return HOUSE_PROFILE[int(elapsed_s // STEP_S) % len(HOUSE_PROFILE)]


def charger_draw_by_panel_phase(
    charger: DemoCharger, current_a: list[float]
) -> tuple[float, float, float]:
    """Map a charger's own per-phase current onto the panel phases it is wired to."""
    out = [0.0, 0.0, 0.0]
    for phase, amps in zip(charger.panel_phases, current_a, strict=False):
        out[PHASES.index(phase)] += amps
    return (out[0], out[1], out[2])


@dataclass
class CircuitRecord:
    """What the monitor saw of one circuit."""

    circuit: DemoCircuit
    peak_a: float = 0.0
    peak_kw: float = 0.0
    seconds_over_limit: int = 0
    last: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def limit_a(self) -> float | None:
        """The per-phase limit (a power cap shown as the equal per-phase current)."""
        if self.circuit.max_current is not None:
            return self.circuit.max_current
        if self.circuit.max_power_kw is not None:
            return round(self.circuit.max_power_kw * 1000 / (3 * VOLTAGE), 1)
        return None


@dataclass
class CircuitMonitor:
    """Samples the physical load of every circuit once a second and counts overloads."""

    records: dict[str, CircuitRecord] = field(
        default_factory=lambda: {c.circuit_id: CircuitRecord(c) for c in CIRCUITS}
    )

    def sample(self, house: tuple[float, float, float], draws: dict[str, list[float]]) -> None:
        """Record one second: house load and each charger's own per-phase current."""
        by_circuit: dict[str, list[float]] = {c.circuit_id: [0.0, 0.0, 0.0] for c in CIRCUITS}
        for charger in CHARGERS:
            draw = charger_draw_by_panel_phase(charger, draws.get(charger.charger_id, []))
            for circuit in self._circuits_of(charger):
                row = by_circuit[circuit]
                for i in range(3):
                    row[i] += draw[i]
        for circuit in CIRCUITS:
            load = by_circuit[circuit.circuit_id]
            if circuit.house_meter:
                load = [load[i] + house[i] for i in range(3)]
            record = self.records[circuit.circuit_id]
            record.last = (load[0], load[1], load[2])
            record.peak_a = max(record.peak_a, *load)
            power_kw = sum(load) * VOLTAGE / 1000
            record.peak_kw = max(record.peak_kw, power_kw)
            over = False
            if circuit.max_current is not None:
                over = max(load) > circuit.max_current + TOLERANCE_A
            if circuit.max_power_kw is not None:
                over = over or power_kw > circuit.max_power_kw + TOLERANCE_A * VOLTAGE / 1000
            record.seconds_over_limit += int(over)

    @staticmethod
    def _circuits_of(charger: DemoCharger) -> list[str]:
        """The charger's panel, the panels above it and its virtual circuits."""
        parents = {c.circuit_id: c.parent for c in CIRCUITS}
        out: list[str] = []
        current: str | None = charger.circuit
        while current is not None:
            out.append(current)
            current = parents[current]
        out.extend(
            c.circuit_id
            for c in CIRCUITS
            if c.kind == "virtual" and charger.charger_id in c.members
        )
        return out

    def report(self) -> list[dict[str, Any]]:
        """The `circuits` part of the demo report."""
        return [
            {
                "id": r.circuit.circuit_id,
                "limit_a": r.limit_a,
                "peak_a": round(r.peak_a, 1),
                "seconds_over_limit": r.seconds_over_limit,
            }
            | (
                {"limit_kw": r.circuit.max_power_kw, "peak_kw": round(r.peak_kw, 2)}
                if r.circuit.max_power_kw is not None
                else {}
            )
            for r in self.records.values()
        ]


def password_for(charger_id: str) -> str:
    """Return the demo Basic-auth password of a charger."""
    return f"demo-{charger_id}-pw"


def subentries() -> list[dict[str, Any]]:
    """Config subentries (as stored) for the demo's circuits and chargers."""
    out: list[dict[str, Any]] = []
    for c in CIRCUITS:
        out.append(
            {
                "subentry_type": "circuit",
                "title": c.name,
                "unique_id": c.circuit_id,
                "data": {
                    "circuit_id": c.circuit_id,
                    "kind": c.kind,
                    "parent": c.parent,
                    "members": list(c.members),
                    "max_current": c.max_current,
                    "max_power_kw": c.max_power_kw,
                    "phases": "l1_l2_l3",
                    "voltage": VOLTAGE,
                    "safety_margin": c.safety_margin,
                    "meter": "current" if c.house_meter else "none",
                    "power_sensor": None,
                    "current_sensors": list(HOUSE_SENSORS) if c.house_meter else [],
                    "meter_includes_chargers": not c.house_meter,
                },
            }
        )
    for x in CHARGERS:
        out.append(
            {
                "subentry_type": "charger",
                "title": x.name,
                "unique_id": x.charger_id,
                "data": {
                    "charger_id": x.charger_id,
                    "name": x.name,
                    "password": password_for(x.charger_id),
                    "phases": x.wiring,
                    "min_current": 6.0,
                    "max_current": float(x.max_current),
                    "id_tags": [],
                    "circuit": x.circuit,
                },
            }
        )
    return out
