"""Power engine of OCPP Power Manager: share circuit capacity among EV chargers.

Pure Python: no Home Assistant imports, no I/O, no clock (time is always an argument).
The contract is DESIGN.md "Allocation semantics". Currents are amps per phase.

Model (`model.py`); bad numbers or types raise ScenarioError at construction:
    Circuit(id, parent=None, members=None, max_current=None, max_power_w=None,
            measured_current=None, measured_power_w=None, non_ev_current=None,
            non_ev_power_w=None, voltage=None)
    Charger(id, circuit, phases=("L1", "L2", "L3"), min_current=6.0, max_current=32.0,
            user_max_current=None, ev_max_current=None, priority=0, active=True,
            measured_current=None, energy_needed_wh=None, departure=None, waiting_s=0.0,
            current_step=0.1)
    Scenario(circuits, chargers, now=0.0, voltage=230.0, rotation_period_s=900.0,
             min_on_time_s=300.0)
    parse_scenario(data) -> Scenario          decoded scenario JSON -> Scenario
    scenario_to_dict(scenario) -> dict        the inverse
    ScenarioError(field, message)             e.g. field "chargers[0].circuit"

    A physical circuit has an optional parent; a virtual one lists `members` (charger ids;
    ids that are not among the chargers are ignored) and may overlap others. A charger's
    `circuit` is physical. Higher `priority` is served first. `non_ev_current` /
    `non_ev_power_w` override the non-EV load derived from the meter (the controller
    uses them). Measured loads below the chargers' measured draw count as 0 non-EV load.

Allocation (`allocator.py`):
    allocate(scenario, state=None) -> Allocation
        .setpoints  {charger_id: A per phase}: 0 or within [min, max], on the step grid
        .reasons    {charger_id: "circuit:<id>" | "charger_max" | "paused_capacity" |
                     "paused_rotation" | "inactive"}
        .state      RotationState to pass to the next call
        .chargers   {charger_id: ChargerResult(setpoint, reason: Reason, circuit, phases)}
        .circuits   {circuit_id: CircuitResult(id, limit_current, limit_power_w,
                     non_ev_current, non_ev_power_w, measured_ev_current, ev_current,
                     ev_power_w, headroom_current, headroom_power_w, utilisation)}
                    (.chargers and .circuits are computed on first access)
        .as_dict()  {"setpoints": ..., "reasons": ...} (the CLI output)
    Reason: CIRCUIT, CHARGER_MAX, PAUSED_CAPACITY (its minimum does not fit even alone;
        `circuit` names the full one), PAUSED_ROTATION (it would fit alone: others have
        the turn), INACTIVE.
    RotationState(on_since, waiting_since); .as_dict() / RotationState.from_dict(d)
    non_ev_loads(scenario) -> {circuit_id: NonEvLoad(current, power_w)}

    Order of service: cars inside `min_on_time_s` keep their minimum (all classes); then
    per priority class, highest first: cars with energy_needed_wh and departure get the
    rate they need in least-laxity order; the others get their minimum in turn order
    (cars on for less than `rotation_period_s`, then cars that have waited a full period,
    then cars on for longer, then the other waiting cars); what is left is shared
    max-min fairly by progressive filling; slack left by rounding down to the current
    step goes one step at a time to the lowest setpoints. A rotation period of 0 turns
    rotation off (cars on keep their place).

Control (`control.py`); every method takes `now: float`:
    Controller(config=ControllerConfig(), metered=set())
        .expect_meter(circuit_ids)           circuits that should report a meter
        .update_meter(circuit_id, now, current=None, power_w=None)
        .step(scenario, now) -> ControlStep(allocation, scenario, commands, applied, stale)
        .prepare(scenario, now) -> (scenario, fallback_circuits)
        .offline_shares(scenario) -> {charger_id: A}
        .rotation                            the RotationState carried between steps
    ControllerConfig(margin_a=1.0, smoothing_tau_s=30.0, stale_after_s=60.0,
                     stale_margin_a=3.0, offline_reserve_fraction=0.5, deadband_a=1.0,
                     small_raise_after_s=60.0, hold_before_raise_s=30.0,
                     renew_after_s=600.0)
    Command(charger_id, limit_a, kind)       kind: first | cut | raise | renew
    MeterSmoother(tau_s).update(now, values) rises pass at once, falls decay with tau
    SetpointFilter(deadband_a, hold_s, renew_s, small_raise_s=0).update(target, now)
        -> Command | None: cuts at once; raises of at least deadband_a after hold_s;
        smaller raises once the target has stayed up small_raise_s (0: never)
    offline_safe_shares(scenario, reserve_current=None, reserve_power_w=None) -> {id: A}
    apply_margin(circuit, margin_a, voltage) -> Circuit

Command line: `python -m custom_components.ocpp_power.power [FILE] [--circuits]` reads
scenario JSON (stdin without FILE) and prints {"setpoints": {...}, "reasons": {...}};
bad input prints one line naming the field and exits with code 2.
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
