"""Power engine of OCPP Power Manager: share circuit capacity among EV chargers.

Pure Python: no Home Assistant imports, no I/O, no clock (time is always an argument).
The contract is DESIGN.md "Allocation semantics". Currents are amps per phase.

Model (`model.py`):
    Circuit(id, parent=None, members=None, max_current=None, max_power_w=None,
            measured_current=None, measured_power_w=None, non_ev_current=None,
            non_ev_power_w=None, voltage=None)
    Charger(id, circuit, phases=("L1", "L2", "L3"), min_current=6.0, max_current=32.0,
            user_max_current=None, ev_max_current=None, priority=0, active=True,
            measured_current=None, energy_needed_wh=None, departure=None, waiting_s=0.0,
            current_step=0.1)
    Scenario(circuits, chargers, now=0.0, voltage=230.0, rotation_period_s=900.0,
             min_on_time_s=300.0)
    parse_scenario(data) -> Scenario          scenario JSON (decoded) -> Scenario
    scenario_to_dict(scenario) -> dict        the inverse
    ScenarioError(field, message)             bad input; `field` names it, e.g. chargers[0].circuit

    Higher `priority` is served first. A physical circuit has an optional parent; a
    virtual one has `members` (charger ids) and may overlap others. A charger's circuit
    is physical.

Allocation (`allocator.py`):
    allocate(scenario, state=None) -> Allocation
        Allocation.setpoints  {charger_id: amps per phase} (0 or within [min, max])
        Allocation.reasons    {charger_id: "circuit:<id>" | "charger_max" |
                               "paused_capacity" | "paused_rotation" | "inactive"}
        Allocation.chargers   {charger_id: ChargerResult(setpoint, reason: Reason,
                               circuit, phases)}
        Allocation.circuits   {circuit_id: CircuitResult(limit_current, limit_power_w,
                               non_ev_current, non_ev_power_w, measured_ev_current,
                               ev_current, ev_power_w, headroom_current,
                               headroom_power_w, utilisation)}
        Allocation.state      RotationState to pass to the next call (rotation over time)
    RotationState(on_since, waiting_since); .as_dict() / RotationState.from_dict(d)
    non_ev_loads(scenario) -> {circuit_id: NonEvLoad(current, power_w)}

Control (`control.py`), every method takes `now: float`:
    Controller(config=ControllerConfig(), metered=set())
        .expect_meter(circuit_ids)             circuits that should report a meter
        .update_meter(circuit_id, now, current=None, power_w=None)
        .step(scenario, now) -> ControlStep(allocation, scenario, commands, applied, stale)
        .prepare(scenario, now) -> (scenario, stale_circuits)
        .offline_shares(scenario) -> {charger_id: amps}
    MeterSmoother(tau_s).update(now, values)   rises pass at once, falls decay
    SetpointFilter(deadband_a, hold_s, renew_s).update(target, now) -> Command | None
    offline_safe_shares(scenario, reserve_current=None, reserve_power_w=None)
    apply_margin(circuit, margin_a, voltage) -> Circuit

Command line: `python -m custom_components.ocpp_power.power [FILE]` reads scenario JSON
(stdin without FILE) and prints {"setpoints": {...}, "reasons": {...}}; bad input prints
one line naming the field and exits with code 2.
"""

from __future__ import annotations

from .allocator import (
    Allocation,
    ChargerResult,
    CircuitResult,
    NonEvLoad,
    Reason,
    RotationState,
    allocate,
    non_ev_loads,
)
from .control import (
    Command,
    Controller,
    ControllerConfig,
    ControlStep,
    MeterSmoother,
    SetpointFilter,
    apply_margin,
    offline_safe_shares,
)
from .model import (
    PHASES,
    Charger,
    Circuit,
    Scenario,
    ScenarioError,
    parse_scenario,
    scenario_to_dict,
)

__all__ = [
    "PHASES",
    "Allocation",
    "Charger",
    "ChargerResult",
    "Circuit",
    "CircuitResult",
    "Command",
    "ControlStep",
    "Controller",
    "ControllerConfig",
    "MeterSmoother",
    "NonEvLoad",
    "Reason",
    "RotationState",
    "Scenario",
    "ScenarioError",
    "SetpointFilter",
    "allocate",
    "apply_margin",
    "non_ev_loads",
    "offline_safe_shares",
    "parse_scenario",
    "scenario_to_dict",
]
