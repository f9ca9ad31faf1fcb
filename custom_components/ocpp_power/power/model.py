"""Data model of the power engine: circuits, chargers, scenarios, parsing and validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import itertools
import math
from typing import Final

PHASES: Final = ("L1", "L2", "L3")
PHASE_INDEX: Final = {"L1": 0, "L2": 1, "L3": 2}
DEFAULT_VOLTAGE: Final = 230.0
DEFAULT_MIN_CURRENT: Final = 6.0
DEFAULT_MAX_CURRENT: Final = 32.0
DEFAULT_CURRENT_STEP: Final = 0.1
DEFAULT_ROTATION_PERIOD_S: Final = 900.0
DEFAULT_MIN_ON_TIME_S: Final = 300.0
# A phase of a charger counts as drawn when its measured current is above this (DESIGN.md).
DRAW_THRESHOLD_A: Final = 1.0

type PhaseCurrents = tuple[float, float, float]

_VALID_PHASES: Final = frozenset(
    perm for n in (1, 2, 3) for perm in itertools.permutations(PHASES, n)
)
_INF: Final = math.inf


class ScenarioError(ValueError):
    """Invalid scenario input; `field` names the offending field, e.g. `chargers[2].circuit`."""

    def __init__(self, field: str, message: str) -> None:
        """Store the field and message."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Circuit:
    """A physical circuit (with an optional parent) or a virtual one (with a member list).

    Limits: `max_current` per phase in A in panel order [L1, L2, L3] and/or `max_power_w`.
    Load: `measured_current` per phase or `measured_power_w` (the meter's total, import
    positive). `non_ev_current` / `non_ev_power_w`, when set, override the non-EV load
    derived from the meter (the controller uses this for smoothing and stale fallbacks).
    """

    id: str
    parent: str | None = None
    members: tuple[str, ...] | None = None
    max_current: PhaseCurrents | None = None
    max_power_w: float | None = None
    measured_current: PhaseCurrents | None = None
    measured_power_w: float | None = None
    non_ev_current: PhaseCurrents | None = None
    non_ev_power_w: float | None = None
    voltage: float | None = None

    def __post_init__(self) -> None:
        """Reject wrong types and invalid numbers (ScenarioError naming the field)."""
        _check_circuit_numbers("", self)

    @property
    def is_virtual(self) -> bool:
        """Return True for a virtual circuit (explicit member list)."""
        return self.members is not None

    @property
    def has_meter(self) -> bool:
        """Return True when the circuit has a measured load."""
        return self.measured_current is not None or self.measured_power_w is not None


@dataclass(frozen=True, slots=True)
class Charger:
    """A charger: wiring, current range, priority and what it measures and needs.

    `phases` lists the panel phases its own L1, L2, L3 are wired to. `max_current` is the
    hardware limit; the effective maximum is the smallest of it, `user_max_current` and
    `ev_max_current` (what the car takes). `measured_current` is in the charger's own phase
    order. Higher `priority` is served first.
    """

    id: str
    circuit: str
    phases: tuple[str, ...] = PHASES
    min_current: float = DEFAULT_MIN_CURRENT
    max_current: float = DEFAULT_MAX_CURRENT
    user_max_current: float | None = None
    ev_max_current: float | None = None
    priority: int = 0
    active: bool = True
    measured_current: tuple[float, ...] | None = None
    energy_needed_wh: float | None = None
    departure: float | None = None
    waiting_s: float = 0.0
    current_step: float = DEFAULT_CURRENT_STEP

    def __post_init__(self) -> None:
        """Reject wrong types and invalid numbers (ScenarioError naming the field)."""
        inf = _INF
        try:
            meas = self.measured_current
            ok = (
                self.phases in _VALID_PHASES
                and 0 <= self.min_current < inf
                and 0 <= self.max_current < inf
                and 0 < self.current_step < inf
                and 0 <= self.waiting_s < inf
                and type(self.priority) is int
                and type(self.active) is bool
                and type(self.id) is str
                and type(self.circuit) is str
                and self.id != ""
                and (self.user_max_current is None or 0 <= self.user_max_current < inf)
                and (self.ev_max_current is None or 0 <= self.ev_max_current < inf)
                and (self.energy_needed_wh is None or 0 <= self.energy_needed_wh < inf)
                and (self.departure is None or -inf < self.departure < inf)
                and (
                    meas is None
                    or (type(meas) is tuple and 0 < len(meas) <= 3 and -inf < sum(meas) < inf)
                )
            )
        except TypeError:
            ok = False
        if not ok:
            _check_charger_numbers("", self)

    @property
    def effective_max(self) -> float:
        """Return the smallest of hardware limit, user cap and what the car takes."""
        m = self.max_current
        if self.user_max_current is not None:
            m = min(m, self.user_max_current)
        if self.ev_max_current is not None:
            m = min(m, self.ev_max_current)
        return m

    def wired_phases(self) -> tuple[int, ...]:
        """Return the panel phase indices (0..2) of the charger's own L1, L2, L3."""
        return tuple(PHASE_INDEX[p] for p in self.phases)

    def drawn_phases(self) -> tuple[int, ...]:
        """Return the sorted panel phase indices counted as drawn (DESIGN.md conventions)."""
        wired = self.wired_phases()
        meas = self.measured_current
        if meas:
            drawn = {w for w, a in zip(wired, meas, strict=False) if a > DRAW_THRESHOLD_A}
            if drawn:
                return tuple(sorted(drawn))
        return tuple(sorted(set(wired)))

    def measured_by_phase(self) -> PhaseCurrents:
        """Return the measured draw per panel phase (negative readings count as 0)."""
        out = [0.0, 0.0, 0.0]
        if self.measured_current:
            for w, a in zip(self.wired_phases(), self.measured_current, strict=False):
                if a > 0:
                    out[w] += a
        return (out[0], out[1], out[2])


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything one allocation needs; `now` is Unix seconds."""

    circuits: tuple[Circuit, ...] = ()
    chargers: tuple[Charger, ...] = ()
    now: float = 0.0
    voltage: float = DEFAULT_VOLTAGE
    rotation_period_s: float = DEFAULT_ROTATION_PERIOD_S
    min_on_time_s: float = DEFAULT_MIN_ON_TIME_S


@dataclass(slots=True)
class Topology:
    """Indexes over a validated scenario, shared by the allocator and the controller."""

    circuit_index: dict[str, int]
    charger_index: dict[str, int]
    parent: list[int]
    children: list[list[int]]
    virtual: list[bool]
    # Physical circuits, every parent before its children.
    order: list[int]
    # Charger index -> index of its (physical) circuit.
    leaf: list[int]
    # Charger index -> bit set of the virtual circuits listing it (bit b: vlist[b]).
    vbits: list[int]
    vlist: list[int]
    # Virtual circuit index -> member charger indices (empty list for physical circuits).
    vmembers: list[list[int]]
    # Depth-first preorder position of each physical circuit (-1 for virtual ones) and the
    # end of its subtree: circuit d is under c (or is c) iff pos[c] <= pos[d] < end[c].
    pos: list[int]
    end: list[int]

    @property
    def virtual_of(self) -> list[tuple[int, ...]]:
        """Return, per charger, the indices of the virtual circuits listing it."""
        out: list[list[int]] = [[] for _ in self.leaf]
        for ci, vm in enumerate(self.vmembers):
            for xi in vm:
                out[xi].append(ci)
        return [tuple(v) for v in out]

    def ancestors(self, circuit: int) -> list[int]:
        """Return the circuit and its physical ancestors, nearest first."""
        out = []
        while circuit >= 0:
            out.append(circuit)
            circuit = self.parent[circuit]
        return out

    def chargers_under(self, circuit_id: str) -> list[int]:
        """Return indices of the chargers under a circuit (subtree or member list)."""
        ci = self.circuit_index[circuit_id]
        if self.virtual[ci]:
            return list(self.vmembers[ci])
        lo, hi = self.pos[ci], self.end[ci]
        return [i for i, leaf in enumerate(self.leaf) if lo <= self.pos[leaf] < hi]


def build_topology(scenario: Scenario) -> Topology:
    """Validate the structure and limits of a scenario and index it; raise ScenarioError."""
    _check_number("voltage", scenario.voltage, positive=True)
    _check_number("now", scenario.now)
    _check_number("rotation_period_s", scenario.rotation_period_s, nonneg=True)
    _check_number("min_on_time_s", scenario.min_on_time_s, nonneg=True)
    circuits = scenario.circuits
    index: dict[str, int] = {}
    for ci, c in enumerate(circuits):
        where = f"circuits[{ci}]"
        if not isinstance(c.id, str) or not c.id:
            raise ScenarioError(f"{where}.id", "must be a non-empty string")
        if c.id in index:
            raise ScenarioError(f"{where}.id", f"duplicate circuit id {c.id!r}")
        index[c.id] = ci
    n = len(circuits)
    parent = [-1] * n
    children: list[list[int]] = [[] for _ in range(n)]
    virtual = [c.members is not None for c in circuits]
    for ci, c in enumerate(circuits):
        if c.parent is None:
            continue
        where = f"circuits[{ci}].parent"
        if virtual[ci]:
            raise ScenarioError(where, "a virtual circuit (with members) cannot have a parent")
        pi = index.get(c.parent)
        if pi is None:
            raise ScenarioError(where, f"unknown circuit {c.parent!r}")
        if virtual[pi]:
            raise ScenarioError(where, f"{c.parent!r} is a virtual circuit")
        parent[ci] = pi
        children[pi].append(ci)
    # Depth-first preorder; circuits left unvisited sit on a cycle.
    roots = [ci for ci in range(n) if parent[ci] < 0 and not virtual[ci]]
    order: list[int] = []
    stack = roots[::-1]
    while stack:
        ci = stack.pop()
        order.append(ci)
        stack.extend(reversed(children[ci]))
    if len(order) != n - sum(virtual):
        seen = set(order)
        ci = next(ci for ci in range(n) if not virtual[ci] and ci not in seen)
        raise ScenarioError(f"circuits[{ci}].parent", f"cycle through circuit {circuits[ci].id!r}")
    chargers = scenario.chargers
    charger_index = {x.id: xi for xi, x in enumerate(chargers)}
    if len(charger_index) != len(chargers):
        seen: set[str] = set()
        for xi, x in enumerate(chargers):
            if x.id in seen:
                raise ScenarioError(f"chargers[{xi}].id", f"duplicate charger id {x.id!r}")
            seen.add(x.id)
    leaf = [index.get(x.circuit, -1) for x in chargers]
    bad = {ci for ci in set(leaf) if ci < 0 or virtual[ci]}
    if bad:
        xi = next(xi for xi, ci in enumerate(leaf) if ci in bad)
        where = f"chargers[{xi}].circuit"
        if leaf[xi] < 0:
            raise ScenarioError(where, f"unknown circuit {chargers[xi].circuit!r}")
        raise ScenarioError(
            where, f"{chargers[xi].circuit!r} is a virtual circuit; list it in its members"
        )
    nx = len(leaf)
    vbits = [0] * nx
    vlist: list[int] = []
    vmembers: list[list[int]] = [[] for _ in range(n)]
    for ci, c in enumerate(circuits):
        if c.members is None:
            continue
        # Members that are not among the chargers draw nothing: they are ignored.
        got = [xi for m in dict.fromkeys(c.members) if (xi := charger_index.get(m)) is not None]
        vmembers[ci] = got
        bit = 1 << len(vlist)
        vlist.append(ci)
        for xi in got:
            vbits[xi] |= bit
    pos = [-1] * n
    for k, ci in enumerate(order):
        pos[ci] = k
    end = [0] * n
    for ci in reversed(order):
        e = pos[ci] + 1
        for ch in children[ci]:
            e = max(e, end[ch])
        end[ci] = e
    return Topology(
        index,
        charger_index,
        parent,
        children,
        virtual,
        order,
        leaf,
        vbits,
        vlist,
        vmembers,
        pos,
        end,
    )


def _check_number(
    where: str, value: object, *, nonneg: bool = False, positive: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(where, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ScenarioError(where, "must be finite")
    if positive and value <= 0:
        raise ScenarioError(where, "must be positive")
    if nonneg and value < 0:
        raise ScenarioError(where, "must not be negative")


def _check_triple(where: str, value: object, *, nonneg: bool) -> None:
    if not isinstance(value, tuple) or len(value) != 3:
        raise ScenarioError(where, "must be a list of 3 numbers [L1, L2, L3]")
    for p, v in enumerate(value):
        _check_number(f"{where}[{p}]", v, nonneg=nonneg)


def _f(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_circuit_numbers(where: str, c: Circuit) -> None:
    if c.max_current is not None:
        _check_triple(_f(where, "max_current"), c.max_current, nonneg=True)
    if c.max_power_w is not None:
        _check_number(_f(where, "max_power_w"), c.max_power_w, nonneg=True)
    if c.measured_current is not None:
        _check_triple(_f(where, "measured_current"), c.measured_current, nonneg=False)
    if c.measured_power_w is not None:
        _check_number(_f(where, "measured_power_w"), c.measured_power_w)
    if c.non_ev_current is not None:
        _check_triple(_f(where, "non_ev_current"), c.non_ev_current, nonneg=False)
    if c.non_ev_power_w is not None:
        _check_number(_f(where, "non_ev_power_w"), c.non_ev_power_w)
    if c.voltage is not None:
        _check_number(_f(where, "voltage"), c.voltage, positive=True)
    if c.parent is not None and not isinstance(c.parent, str):
        raise ScenarioError(_f(where, "parent"), "must be a string")
    if c.members is not None:
        if not isinstance(c.members, tuple):
            raise ScenarioError(_f(where, "members"), "must be a list of charger ids")
        for mi, m in enumerate(c.members):
            if not isinstance(m, str):
                raise ScenarioError(_f(where, f"members[{mi}]"), "must be a string")


def _check_charger_numbers(where: str, x: Charger) -> None:
    if not isinstance(x.id, str) or not x.id:
        raise ScenarioError(_f(where, "id"), "must be a non-empty string")
    if not isinstance(x.circuit, str):
        raise ScenarioError(_f(where, "circuit"), "must be a string")
    if not isinstance(x.phases, tuple) or not 1 <= len(x.phases) <= 3:
        raise ScenarioError(_f(where, "phases"), "must list 1 to 3 phases")
    for pi, p in enumerate(x.phases):
        if p not in PHASE_INDEX:
            raise ScenarioError(_f(where, f"phases[{pi}]"), f"must be L1, L2 or L3, got {p!r}")
    if len(set(x.phases)) != len(x.phases):
        raise ScenarioError(_f(where, "phases"), "lists a phase twice")
    _check_number(_f(where, "min_current"), x.min_current, nonneg=True)
    _check_number(_f(where, "max_current"), x.max_current, nonneg=True)
    for name in ("user_max_current", "ev_max_current", "energy_needed_wh"):
        if (v := getattr(x, name)) is not None:
            _check_number(_f(where, f"{name}"), v, nonneg=True)
    if x.departure is not None:
        _check_number(_f(where, "departure"), x.departure)
    _check_number(_f(where, "waiting_s"), x.waiting_s, nonneg=True)
    _check_number(_f(where, "current_step"), x.current_step, positive=True)
    if isinstance(x.priority, bool) or not isinstance(x.priority, int):
        raise ScenarioError(_f(where, "priority"), "must be an integer")
    if not isinstance(x.active, bool):
        raise ScenarioError(_f(where, "active"), "must be true or false")
    if x.measured_current is not None:
        if not isinstance(x.measured_current, tuple) or not 1 <= len(x.measured_current) <= 3:
            raise ScenarioError(_f(where, "measured_current"), "must be a list of 1 to 3 numbers")
        for p, v in enumerate(x.measured_current):
            _check_number(_f(where, f"measured_current[{p}]"), v)


# --- JSON parsing -------------------------------------------------------------------------


def parse_scenario(data: object) -> Scenario:
    """Build and validate a Scenario from decoded scenario JSON; raise ScenarioError."""
    if not isinstance(data, Mapping):
        raise ScenarioError("scenario", "must be a JSON object")
    circuits_raw = data.get("circuits", [])
    chargers_raw = data.get("chargers", [])
    if not isinstance(circuits_raw, list):
        raise ScenarioError("circuits", "must be a list")
    if not isinstance(chargers_raw, list):
        raise ScenarioError("chargers", "must be a list")
    voltage = _num(data, "voltage", "voltage", DEFAULT_VOLTAGE)
    circuits = tuple(_parse_circuit(f"circuits[{i}]", c) for i, c in enumerate(circuits_raw))
    chargers = tuple(_parse_charger(f"chargers[{i}]", x) for i, x in enumerate(chargers_raw))
    scenario = Scenario(
        circuits=circuits,
        chargers=chargers,
        now=_num(data, "now", "now", 0.0),
        voltage=voltage,
        rotation_period_s=_num(
            data, "rotation_period_s", "rotation_period_s", DEFAULT_ROTATION_PERIOD_S
        ),
        min_on_time_s=_num(data, "min_on_time_s", "min_on_time_s", DEFAULT_MIN_ON_TIME_S),
    )
    build_topology(scenario)
    return scenario


def _num(obj: Mapping, key: str, where: str, default: float | None) -> float:
    value = obj.get(key)
    if value is None:
        if default is None:
            raise ScenarioError(where, "is required")
        return default
    _check_number(where, value)
    return float(value)


def _opt_num(obj: Mapping, key: str, where: str) -> float | None:
    if obj.get(key) is None:
        return None
    return _num(obj, key, where, None)


def _str(obj: Mapping, key: str, where: str, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ScenarioError(where, "is required")
        return None
    if not isinstance(value, str) or not value:
        raise ScenarioError(where, "must be a non-empty string")
    return value


def _triple(obj: Mapping, key: str, where: str) -> PhaseCurrents | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(where, value)
        return (float(value), float(value), float(value))
    if not isinstance(value, list) or len(value) != 3:
        raise ScenarioError(where, "must be a number or a list of 3 numbers [L1, L2, L3]")
    for p, v in enumerate(value):
        _check_number(f"{where}[{p}]", v)
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_circuit(where: str, raw: object) -> Circuit:
    if not isinstance(raw, Mapping):
        raise ScenarioError(where, "must be an object")
    members_raw = raw.get("members")
    members: tuple[str, ...] | None = None
    if members_raw is not None:
        if not isinstance(members_raw, list):
            raise ScenarioError(f"{where}.members", "must be a list of charger ids")
        for mi, m in enumerate(members_raw):
            if not isinstance(m, str):
                raise ScenarioError(f"{where}.members[{mi}]", "must be a string")
        members = tuple(members_raw)
    kwargs = dict(
        id=_str(raw, "id", f"{where}.id", required=True) or "",
        parent=_str(raw, "parent", f"{where}.parent", required=False),
        members=members,
        max_current=_triple(raw, "max_current", f"{where}.max_current"),
        max_power_w=_opt_num(raw, "max_power_w", f"{where}.max_power_w"),
        measured_current=_triple(raw, "measured_current", f"{where}.measured_current"),
        measured_power_w=_opt_num(raw, "measured_power_w", f"{where}.measured_power_w"),
        non_ev_current=_triple(raw, "non_ev_current", f"{where}.non_ev_current"),
        non_ev_power_w=_opt_num(raw, "non_ev_power_w", f"{where}.non_ev_power_w"),
        voltage=_opt_num(raw, "voltage", f"{where}.voltage"),
    )
    try:
        circuit = Circuit(**kwargs)
    except ScenarioError as err:
        raise ScenarioError(f"{where}.{err.field}", err.message) from None
    return circuit


def _parse_charger(where: str, raw: object) -> Charger:
    if not isinstance(raw, Mapping):
        raise ScenarioError(where, "must be an object")
    phases_raw = raw.get("phases", list(PHASES))
    if not isinstance(phases_raw, list):
        raise ScenarioError(f"{where}.phases", 'must be a list such as ["L1"]')
    for pi, p in enumerate(phases_raw):
        if not isinstance(p, str):
            raise ScenarioError(f"{where}.phases[{pi}]", "must be a string")
    meas_raw = raw.get("measured_current")
    measured: tuple[float, ...] | None = None
    if meas_raw is not None:
        if isinstance(meas_raw, int | float) and not isinstance(meas_raw, bool):
            meas_raw = [meas_raw]
        if not isinstance(meas_raw, list) or not 1 <= len(meas_raw) <= 3:
            raise ScenarioError(f"{where}.measured_current", "must be a list of 1 to 3 numbers")
        for p, v in enumerate(meas_raw):
            _check_number(f"{where}.measured_current[{p}]", v)
        measured = tuple(float(v) for v in meas_raw)
    priority = raw.get("priority", 0)
    if isinstance(priority, float) and priority.is_integer():
        priority = int(priority)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ScenarioError(f"{where}.priority", "must be an integer")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise ScenarioError(f"{where}.active", "must be true or false")
    kwargs = dict(
        id=_str(raw, "id", f"{where}.id", required=True) or "",
        circuit=_str(raw, "circuit", f"{where}.circuit", required=True) or "",
        phases=tuple(phases_raw),
        min_current=_num(raw, "min_current", f"{where}.min_current", DEFAULT_MIN_CURRENT),
        max_current=_num(raw, "max_current", f"{where}.max_current", DEFAULT_MAX_CURRENT),
        user_max_current=_opt_num(raw, "user_max_current", f"{where}.user_max_current"),
        ev_max_current=_opt_num(raw, "ev_max_current", f"{where}.ev_max_current"),
        priority=priority,
        active=active,
        measured_current=measured,
        energy_needed_wh=_opt_num(raw, "energy_needed_wh", f"{where}.energy_needed_wh"),
        departure=_opt_num(raw, "departure", f"{where}.departure"),
        waiting_s=_num(raw, "waiting_s", f"{where}.waiting_s", 0.0),
        current_step=_num(raw, "current_step", f"{where}.current_step", DEFAULT_CURRENT_STEP),
    )
    try:
        charger = Charger(**kwargs)
    except ScenarioError as err:
        raise ScenarioError(f"{where}.{err.field}", err.message) from None
    return charger


def scenario_to_dict(scenario: Scenario) -> dict[str, object]:
    """Return the scenario as scenario JSON (inverse of parse_scenario)."""
    circuits: list[dict[str, object]] = []
    for c in scenario.circuits:
        d: dict[str, object] = {"id": c.id}
        if c.parent is not None:
            d["parent"] = c.parent
        if c.members is not None:
            d["members"] = list(c.members)
        for key in (
            "max_current",
            "max_power_w",
            "measured_current",
            "measured_power_w",
            "non_ev_current",
            "non_ev_power_w",
            "voltage",
        ):
            if (v := getattr(c, key)) is not None:
                d[key] = list(v) if isinstance(v, tuple) else v
        circuits.append(d)
    chargers: list[dict[str, object]] = []
    for x in scenario.chargers:
        d = {
            "id": x.id,
            "circuit": x.circuit,
            "phases": list(x.phases),
            "min_current": x.min_current,
            "max_current": x.max_current,
            "priority": x.priority,
            "active": x.active,
            "waiting_s": x.waiting_s,
            "current_step": x.current_step,
        }
        for key in ("user_max_current", "ev_max_current", "energy_needed_wh", "departure"):
            if (v := getattr(x, key)) is not None:
                d[key] = v
        if x.measured_current is not None:
            d["measured_current"] = list(x.measured_current)
        chargers.append(d)
    return {
        "voltage": scenario.voltage,
        "now": scenario.now,
        "rotation_period_s": scenario.rotation_period_s,
        "min_on_time_s": scenario.min_on_time_s,
        "circuits": circuits,
        "chargers": chargers,
    }


def phase_triple(values: Sequence[float]) -> PhaseCurrents:
    """Return a per-phase triple from a 3-sequence."""
    return (float(values[0]), float(values[1]), float(values[2]))
