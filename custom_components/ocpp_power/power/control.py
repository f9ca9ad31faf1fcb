"""Controller: from raw measurements to allocation input, from setpoints to commands.

Nothing here reads a clock: every call takes `now` (seconds, any monotonic origin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
import math
from typing import Any

from .allocator import Allocation, RotationState, allocate, non_ev_loads
from .model import Charger, Circuit, PhaseCurrents, Scenario, build_topology


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """Tuning of the controller; currents in A per phase, times in seconds."""

    # Subtracted from every circuit limit (power limits: margin_a * V * 3).
    margin_a: float = 1.0
    # Release time constant of the meter smoothing; a rising load passes at once.
    smoothing_tau_s: float = 30.0
    # A meter silent for longer than this is stale.
    stale_after_s: float = 60.0
    # Added to the last known non-EV load while the meter is stale.
    stale_margin_a: float = 3.0
    # Share of the limit reserved for non-EV load in offline shares of a metered circuit
    # that never reported (observed circuits reserve their peak non-EV load instead).
    offline_reserve_fraction: float = 0.5
    # Raises smaller than this are not sent...
    deadband_a: float = 1.0
    # ...until the target has stayed above the sent limit this long (0: never), so that a
    # small share is not lost for good while sparing the charger's flash memory.
    small_raise_after_s: float = 60.0
    # A raise is sent once the target has stayed up for this long; cuts go at once.
    hold_before_raise_s: float = 30.0
    # An unchanged setpoint is sent again after this long (lease renewal).
    renew_after_s: float = 600.0


_SNAP = 1e-3  # a decaying value this close to the raw one takes it (no endless tail)


class MeterSmoother:
    """Fast-attack, slow-release smoothing: rises pass at once, falls decay with tau."""

    __slots__ = ("tau_s", "time", "value")

    def __init__(self, tau_s: float) -> None:
        """Create an empty smoother."""
        self.tau_s = tau_s
        self.value: tuple[float, ...] | None = None
        self.time: float | None = None

    def update(self, now: float, raw: Sequence[float]) -> tuple[float, ...]:
        """Feed one sample taken at `now` and return the smoothed values."""
        if self.value is None or self.time is None or self.tau_s <= 0:
            self.value = tuple(raw)
        else:
            dt = max(0.0, now - self.time)
            alpha = 1.0 - math.exp(-dt / self.tau_s)
            out = []
            for r, v in zip(raw, self.value, strict=True):
                d = v + alpha * (r - v)
                out.append(r if d - r < _SNAP else d)
            self.value = tuple(out)
        self.time = now
        return self.value


@dataclass(frozen=True, slots=True)
class Command:
    """A limit to send to a charger now; `kind` is first, cut, raise or renew."""

    charger_id: str
    limit_a: float
    kind: str


class SetpointFilter:
    """Deadband and hold-before-raise for one charger (cut at once, raise after a hold)."""

    __slots__ = (
        "above_since",
        "deadband_a",
        "hold_s",
        "pending_since",
        "renew_s",
        "sent",
        "sent_at",
        "small_raise_s",
    )

    def __init__(
        self, deadband_a: float, hold_s: float, renew_s: float, small_raise_s: float = 0.0
    ) -> None:
        """Create a filter that has sent nothing yet."""
        self.deadband_a = deadband_a
        self.hold_s = hold_s
        self.renew_s = renew_s
        self.small_raise_s = small_raise_s
        self.sent: float | None = None
        self.sent_at: float = 0.0
        self.pending_since: float | None = None  # target up by the deadband since
        self.above_since: float | None = None  # target above the sent limit since

    def update(self, target: float, now: float) -> Command | None:
        """Return the command to send for this target at `now`, or None (charger id unset)."""
        if self.sent is None:
            return self._send(target, now, "first")
        if target < self.sent:
            return self._send(target, now, "cut")
        if target > self.sent:
            if self.above_since is None:
                self.above_since = now
            if target - self.sent >= self.deadband_a or self.sent == 0:
                if self.pending_since is None:
                    self.pending_since = now
                if now - self.pending_since >= self.hold_s:
                    return self._send(target, now, "raise")
            else:
                self.pending_since = None
                if self.small_raise_s > 0 and now - self.above_since >= self.small_raise_s:
                    return self._send(target, now, "raise")
        else:
            self.pending_since = self.above_since = None
        if now - self.sent_at >= self.renew_s:
            return self._send(self.sent, now, "renew")
        return None

    @property
    def applied(self) -> float:
        """Return the limit the charger holds (0 before the first command)."""
        return self.sent or 0.0

    def _send(self, value: float, now: float, kind: str) -> Command:
        if kind != "renew":
            self.pending_since = self.above_since = None
        self.sent = value
        self.sent_at = now
        return Command("", value, kind)


def apply_margin(circuit: Circuit, margin_a: float, voltage: float) -> Circuit:
    """Return the circuit with its limits reduced by the safety margin (never below 0)."""
    if margin_a <= 0 or (circuit.max_current is None and circuit.max_power_w is None):
        return circuit
    cur = circuit.max_current
    if cur is not None:
        cur = (
            max(0.0, cur[0] - margin_a),
            max(0.0, cur[1] - margin_a),
            max(0.0, cur[2] - margin_a),
        )
    pw = circuit.max_power_w
    if pw is not None:
        pw = max(0.0, pw - margin_a * (circuit.voltage or voltage) * 3)
    return replace(circuit, max_current=cur, max_power_w=pw)


def offline_safe_shares(
    scenario: Scenario,
    reserve_current: Mapping[str, Sequence[float]] | None = None,
    reserve_power_w: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Return each charger's offline share: together they fit every circuit.

    Every charger counts as active at its hardware limit (user cap kept) on all its wired
    phases; each circuit's non-EV load is its reserve (default 0). Shares below a
    charger's minimum are 0, as in any allocation.
    """
    reserve_current = reserve_current or {}
    reserve_power_w = reserve_power_w or {}
    circuits = []
    for c in scenario.circuits:
        rc = reserve_current.get(c.id)
        rw = reserve_power_w.get(c.id)
        circuits.append(
            replace(
                c,
                measured_current=None,
                measured_power_w=None,
                non_ev_current=(float(rc[0]), float(rc[1]), float(rc[2])) if rc else None,
                non_ev_power_w=rw,
            )
        )
    chargers = [
        replace(
            x,
            active=True,
            ev_max_current=None,
            measured_current=None,
            energy_needed_wh=None,
            departure=None,
            waiting_s=0.0,
        )
        for x in scenario.chargers
    ]
    static = replace(scenario, circuits=tuple(circuits), chargers=tuple(chargers))
    return allocate(static).setpoints


@dataclass(slots=True)
class _Meter:
    raw_current: PhaseCurrents | None = None
    raw_power_w: float | None = None
    time: float | None = None
    used_time: float | None = None
    smoother: MeterSmoother | None = None
    last_non_ev: tuple[float, ...] | None = None  # smoothed (L1, L2, L3, W)
    peak_non_ev: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class ControlStep:
    """Outcome of one controller step."""

    allocation: Allocation
    scenario: Scenario  # the scenario that was allocated (margins, fallbacks applied)
    commands: tuple[Command, ...]
    applied: dict[str, float]  # the limit each charger holds after the commands
    stale: tuple[str, ...] = ()  # metered circuits on a fallback (stale or missing data)


@dataclass(slots=True)
class Controller:
    """Runs meter smoothing, stale fallback, allocation and command filtering over time."""

    config: ControllerConfig = field(default_factory=ControllerConfig)
    metered: set[str] = field(default_factory=set)
    rotation: RotationState = field(default_factory=RotationState)
    _meters: dict[str, _Meter] = field(default_factory=dict)
    _filters: dict[str, SetpointFilter] = field(default_factory=dict)
    # The last offline shares and what they were computed from: they change only when
    # limits, chargers or peak loads do, and a full allocation is not free.
    _shares_key: tuple[Any, ...] | None = None
    _shares: dict[str, float] = field(default_factory=dict)

    def expect_meter(self, circuit_ids: Iterable[str]) -> None:
        """Declare circuits that have a meter (missing data then triggers the fallback)."""
        self.metered.update(circuit_ids)

    def update_meter(
        self,
        circuit_id: str,
        now: float,
        current: Sequence[float] | None = None,
        power_w: float | None = None,
    ) -> None:
        """Record one raw meter sample (per-phase A and/or total W) taken at `now`."""
        self.metered.add(circuit_id)
        m = self._meters.setdefault(circuit_id, _Meter())
        m.raw_current = (
            (float(current[0]), float(current[1]), float(current[2])) if current else None
        )
        m.raw_power_w = None if power_w is None else float(power_w)
        m.time = now

    def prepare(self, scenario: Scenario, now: float) -> tuple[Scenario, tuple[str, ...]]:
        """Return the scenario to allocate at `now` and the circuits on a fallback."""
        cfg = self.config
        circuits = list(scenario.circuits)
        fresh: dict[int, _Meter] = {}
        stale: list[str] = []
        missing: list[str] = []
        for ci, c in enumerate(circuits):
            if c.id not in self.metered:
                continue
            m = self._meters.get(c.id)
            if m is None or m.time is None or (m.raw_current is None and m.raw_power_w is None):
                missing.append(c.id)
                circuits[ci] = replace(c, measured_current=None, measured_power_w=None)
            elif now - m.time > cfg.stale_after_s:
                stale.append(c.id)
                if m.last_non_ev is None:
                    missing.append(c.id)
                    circuits[ci] = replace(c, measured_current=None, measured_power_w=None)
                    continue
                volt = c.voltage or scenario.voltage
                add = cfg.stale_margin_a
                ne = m.last_non_ev
                circuits[ci] = replace(
                    c,
                    non_ev_current=(ne[0] + add, ne[1] + add, ne[2] + add),
                    non_ev_power_w=ne[3] + add * volt * 3,
                )
            elif m.used_time != m.time or m.last_non_ev is None:
                # A new sample: non-EV load = sample - the chargers' draw as known now.
                fresh[ci] = m
                circuits[ci] = replace(
                    c, measured_current=m.raw_current, measured_power_w=m.raw_power_w
                )
            else:
                # No new sample since the last step: keep the estimate made with it.
                ne = m.last_non_ev
                circuits[ci] = replace(
                    c, non_ev_current=(ne[0], ne[1], ne[2]), non_ev_power_w=ne[3]
                )
        raw = replace(scenario, circuits=tuple(circuits), now=now)
        if fresh:
            loads = non_ev_loads(raw)
            for ci, m in fresh.items():
                c = circuits[ci]
                load = loads[c.id]
                if m.smoother is None:
                    m.smoother = MeterSmoother(cfg.smoothing_tau_s)
                sm = m.smoother.update(m.time or now, (*load.current, load.power_w))
                m.used_time = m.time
                m.last_non_ev = sm
                m.peak_non_ev = sm if m.peak_non_ev is None else tuple(map(max, sm, m.peak_non_ev))
                circuits[ci] = replace(
                    c, non_ev_current=(sm[0], sm[1], sm[2]), non_ev_power_w=sm[3]
                )
        chargers = list(scenario.chargers)
        if missing:
            shares = self.offline_shares(scenario)
            topo = build_topology(scenario)
            capped: set[int] = set()
            for cid in missing:
                capped.update(topo.chargers_under(cid))
            for xi in sorted(capped):
                x = chargers[xi]
                cap = shares.get(x.id, 0.0)
                user = cap if x.user_max_current is None else min(cap, x.user_max_current)
                chargers[xi] = replace(x, user_max_current=user)
        volt = scenario.voltage
        circuits = [apply_margin(c, cfg.margin_a, volt) for c in circuits]
        prepared = replace(raw, circuits=tuple(circuits), chargers=tuple(chargers))
        return prepared, tuple(dict.fromkeys(stale + missing))

    def offline_shares(self, scenario: Scenario) -> dict[str, float]:
        """Return offline safe shares reserving each metered circuit's peak non-EV load."""
        rc: dict[str, tuple[float, float, float]] = {}
        rw: dict[str, float] = {}
        frac = self.config.offline_reserve_fraction
        for c in scenario.circuits:
            if c.id not in self.metered:
                continue
            m = self._meters.get(c.id)
            if m is not None and m.peak_non_ev is not None:
                pk = m.peak_non_ev
                rc[c.id] = (pk[0], pk[1], pk[2])
                rw[c.id] = pk[3]
            else:
                if c.max_current is not None:
                    mc = c.max_current
                    rc[c.id] = (mc[0] * frac, mc[1] * frac, mc[2] * frac)
                if c.max_power_w is not None:
                    rw[c.id] = c.max_power_w * frac
        margin = self.config.margin_a
        key = (_static_key(scenario), rc, rw, margin)
        if key != self._shares_key:
            circuits = tuple(apply_margin(c, margin, scenario.voltage) for c in scenario.circuits)
            self._shares = offline_safe_shares(replace(scenario, circuits=circuits), rc, rw)
            self._shares_key = key
        return dict(self._shares)

    def step(self, scenario: Scenario, now: float) -> ControlStep:
        """Allocate at `now` and return the commands to send (cut at once, raise after hold)."""
        prepared, stale = self.prepare(scenario, now)
        allocation = allocate(prepared, self.rotation)
        self.rotation = allocation.state
        cfg = self.config
        commands: list[Command] = []
        applied: dict[str, float] = {}
        for x in prepared.chargers:
            f = self._filters.get(x.id)
            if f is None:
                f = self._filters[x.id] = SetpointFilter(
                    cfg.deadband_a,
                    cfg.hold_before_raise_s,
                    cfg.renew_after_s,
                    cfg.small_raise_after_s,
                )
            cmd = f.update(allocation.setpoints[x.id], now)
            if cmd is not None:
                commands.append(replace(cmd, charger_id=x.id))
            applied[x.id] = f.applied
        for gone in set(self._filters) - {x.id for x in prepared.chargers}:
            del self._filters[gone]
        return ControlStep(allocation, prepared, tuple(commands), applied, stale)

    def forget_charger(self, charger_id: str) -> None:
        """Forget what a charger was sent: its next step sends a fresh `first` command.

        For a charger that rebooted, reconnected or refused its last command.
        """
        self._filters.pop(charger_id, None)


def _static_key(scenario: Scenario) -> tuple[Any, ...]:
    """Return what offline shares depend on: limits and chargers, not measurements."""
    return (
        scenario.voltage,
        tuple(
            (c.id, c.parent, c.members, c.max_current, c.max_power_w, c.voltage)
            for c in scenario.circuits
        ),
        tuple(
            (
                x.id,
                x.circuit,
                x.phases,
                x.min_current,
                x.max_current,
                x.user_max_current,
                x.priority,
                x.current_step,
            )
            for x in scenario.chargers
        ),
    )


def chargers_of(scenario: Scenario, circuit_id: str) -> list[Charger]:
    """Return the chargers under a circuit (its subtree, or its member list)."""
    topo = build_topology(scenario)
    return [scenario.chargers[i] for i in topo.chargers_under(circuit_id)]
