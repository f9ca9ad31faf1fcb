"""Live power management: meters and chargers in, charging profiles out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN, UnitOfPower
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    EventStateReportedData,
    HomeAssistant,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import (
    async_call_later,
    async_track_state_change_event,
    async_track_state_report_event,
    async_track_time_interval,
)
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .charge_point.base import ChargerConnection
from .charge_point.state import ChargerState, ConnectorStatus, LimitPurpose
from .const import (
    CONF_HOLD_S,
    CONF_LEASE_S,
    CONF_MIN_ON_TIME_S,
    CONF_ROTATION_PERIOD_S,
    DEFAULT_HOLD_S,
    DEFAULT_LEASE_S,
    DEFAULT_MIN_ON_TIME_S,
    DEFAULT_ROTATION_S,
    DOMAIN,
    EVENT_OVERLOAD,
    METER_POWER,
    METER_STALE_S,
    SIGNAL_CHARGER_POWER_UPDATE,
    SIGNAL_CIRCUIT_POWER_UPDATE,
    SIGNAL_POWER_UPDATE,
)
from .models import (
    ChargeMode,
    ChargerPowerStatus,
    CircuitConfig,
    CircuitStatus,
    LimitReason,
)
from .power import (
    PHASES,
    Allocation,
    Charger,
    Circuit,
    Controller,
    ControllerConfig,
    Reason,
    Scenario,
)

if TYPE_CHECKING:
    from .hub import ChargerConfig, OcppPowerHub

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1
TICK = timedelta(seconds=5)
# Charger reports are coalesced to at most this many passes a second...
PASS_RATE = 5.0
# ...and passes they cause are spaced by at least this many times the last pass's run
# time, so that a large site leaves Home Assistant's event loop mostly free.
PASS_SPACING_FACTOR = 4.0
# A charger drawing this much above its setpoint...
COMPLIANCE_TOLERANCE_A = 1.5
# ...for longer than this after its last command ignores its profile.
REACTION_TIME_S = 20.0
# A charger that refused a profile is asked again after this long.
REJECT_RETRY_S = 60.0
# Safe defaults are re-sent only when they move by at least this much.
SAFE_DEFAULT_DEADBAND_A = 0.5
# A raise waiting for cuts in flight looks this often whether its charger needs a cut.
CUT_POLL_S = 0.05
# Statuses in which a car is connected in a session and may draw current. A charger
# that reports one of them after we restarted is in a session we did not see start.
SESSION_STATUSES = {
    ConnectorStatus.CHARGING,
    ConnectorStatus.SUSPENDED_EV,
    ConnectorStatus.SUSPENDED_EVSE,
}
UNASSIGNED_ROOT = "__unassigned__"
_REASONS = {
    Reason.CIRCUIT: LimitReason.LIMITED_BY_CIRCUIT,
    Reason.CHARGER_MAX: LimitReason.CHARGER_MAX,
    Reason.PAUSED_CAPACITY: LimitReason.PAUSED_CAPACITY,
    Reason.PAUSED_ROTATION: LimitReason.PAUSED_ROTATION,
    Reason.INACTIVE: LimitReason.INACTIVE,
}
FASTEST_PRIORITY_BOOST = 1000
# After a start, the minimum on-time holds nobody until every charger has had this long to
# reconnect (or all have): otherwise the first to come back would keep its share for the
# whole minimum on-time, whatever the priorities say.
STARTUP_SETTLE_S = 60.0
SETTLE_AFTER_BOOT_S = 5.0


class _ChargerControl:
    """What the manager tracks per charger between passes."""

    __slots__ = (
        "applied_a",
        "applied_at",
        "lease_until",
        "not_following",
        "over_since",
        "rejected",
        "retry_at",
        "safe_default_a",
    )

    def __init__(self) -> None:
        self.applied_a: float | None = None  # last dynamic limit the charger accepted
        self.applied_at: float = 0.0
        self.lease_until: float = 0.0  # when that dynamic limit expires on the charger
        self.safe_default_a: float | None = None  # offline share installed on the charger
        self.rejected = False  # its last profile was refused or not answered
        self.retry_at = 0.0  # when a rejected charger gets another chance
        self.not_following = False  # draws above its setpoint past the reaction time
        self.over_since: float | None = None


class PowerManager:
    """Keeps every circuit inside its limit by steering the chargers' charging profiles."""

    def __init__(self, hass: HomeAssistant, hub: OcppPowerHub) -> None:
        """Set up bookkeeping; async_start() subscribes to meters and starts the tick."""
        self.hass = hass
        self.hub = hub
        self.circuits: dict[str, CircuitConfig] = {}
        self.update_signal = SIGNAL_POWER_UPDATE.format(hub.entry.entry_id)
        # What the entities were last told, per charger and per circuit: a pass pushes
        # only what changed (a thousand chargers' entities rewritten five times a second
        # would keep Home Assistant's event loop busy for nothing).
        self._shown_chargers: dict[str, tuple[Any, ...]] = {}
        self._shown_circuits: dict[str, tuple[Any, ...]] = {}
        data = hub.server_data
        self.lease = timedelta(seconds=data.get(CONF_LEASE_S, DEFAULT_LEASE_S))
        self._rotation_period_s = float(data.get(CONF_ROTATION_PERIOD_S, DEFAULT_ROTATION_S))
        self._min_on_time_s = float(data.get(CONF_MIN_ON_TIME_S, DEFAULT_MIN_ON_TIME_S))
        self._controller = Controller(
            ControllerConfig(
                margin_a=0.0,  # per-circuit margins are applied when building the scenario
                stale_after_s=METER_STALE_S,
                hold_before_raise_s=float(data.get(CONF_HOLD_S, DEFAULT_HOLD_S)),
                # A falling house load is trusted after ~10 s: a car that ramped up shows
                # on the panel meter before its own MeterValues do, and must not keep
                # counting as house load for long.
                smoothing_tau_s=10.0,
                renew_after_s=self.lease.total_seconds() / 2,
            )
        )
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{hub.entry.entry_id}.power"
        )
        self._priorities: dict[str, int] = {}
        # What each charger falls back to without us (persisted: it outlives HA restarts).
        self._installed_safe_defaults: dict[str, float] = {}
        self._modes: dict[str, ChargeMode] = {}
        # circuit id -> (current A or None, power W or None, until Unix time or None)
        self._overrides: dict[str, tuple[float | None, float | None, float | None]] = {}
        self._meter_readings: dict[str, tuple[float, tuple[float, ...] | None, float | None]] = {}
        self._meter_available: dict[str, bool] = {}
        self._control: dict[str, _ChargerControl] = {}
        self._circuit_status: dict[str, CircuitStatus] = {}
        self._charger_status: dict[str, ChargerPowerStatus] = {}
        self._overloaded: set[str] = set()
        self._unsubs: list[CALLBACK_TYPE] = []
        self._meter_unsubs: list[CALLBACK_TYPE] = []
        self._pass_handle: asyncio.TimerHandle | None = None  # a deferred pass
        self._pass_soon = False  # a pass is due in this event-loop iteration
        self._last_pass_end = 0.0  # monotonic
        self._last_pass_s = 0.0  # how long the last pass ran
        # Sending: per charger the newest command not sent yet and the task sending it;
        # safe defaults waiting, and their task; cuts in flight (raises wait for none).
        self._outbox: dict[str, tuple[float, str]] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._safe_outbox: dict[str, float] = {}
        self._safe_sender: asyncio.Task[None] | None = None
        self._cuts_in_flight = 0
        self._no_cuts_in_flight = asyncio.Event()
        self._no_cuts_in_flight.set()
        self._safe_defaults_due = True
        self._stopped = False
        self._offline_shares: dict[str, float] = {}
        self._settle_until: float | None = None
        # Caches of _build_scenario: where chargers are, and each one's engine input.
        self._layout_cache: (
            tuple[dict[str, CircuitConfig], tuple[Any, ...], tuple[Any, ...]] | None
        ) = None
        self._members: dict[str, list[str]] = {}
        self._virtual_members: set[str] = set()  # chargers named by a virtual circuit
        self._reported: dict[str, tuple[Any, ...]] = {}  # what charger_updated last saw
        self._engine_chargers: dict[str, tuple[tuple[Any, ...], Charger]] = {}
        self.last_allocation: Allocation | None = None
        self.passes = 0

    # ------------------------------------------------------------------ lifecycle

    async def async_start(self, circuits: dict[str, CircuitConfig]) -> None:
        """Restore settings, watch the meters and start the periodic tick."""
        stored = await self._store.async_load() or {}
        self._priorities = {k: int(v) for k, v in stored.get("priorities", {}).items()}
        self._modes = {k: ChargeMode(v) for k, v in stored.get("modes", {}).items()}
        self._installed_safe_defaults = {
            k: float(v) for k, v in stored.get("safe_defaults", {}).items()
        }
        self._overrides = {
            k: (v[0], v[1], v[2])
            for k, v in stored.get("overrides", {}).items()
            if v[2] is None or v[2] > time.time()
        }
        self._settle_until = time.monotonic() + STARTUP_SETTLE_S
        self.set_circuits(circuits)
        self._unsubs.append(
            async_track_time_interval(
                self.hass, self._async_tick, TICK, name="ocpp_power tick", cancel_on_shutdown=True
            )
        )

    async def async_stop(self) -> None:
        """Save settings now, stop listening and cancel pending work."""
        self._stopped = True
        await self._store.async_save(self._data_to_store())
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        self._unsubscribe_meters()
        if self._pass_handle is not None:
            self._pass_handle.cancel()
            self._pass_handle = None
        pending = [*self._senders.values()]
        if self._safe_sender is not None:
            pending.append(self._safe_sender)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    @callback
    def set_circuits(self, circuits: dict[str, CircuitConfig]) -> None:
        """Apply a new circuit configuration live (no restart, no dropped chargers)."""
        self.circuits = circuits
        # Names and settings shown with the figures may have changed: push everything.
        self._shown_chargers.clear()
        self._shown_circuits.clear()
        for gone in set(self._circuit_status) - set(circuits):
            self._circuit_status.pop(gone, None)
            self._overrides.pop(gone, None)
            ir.async_delete_issue(self.hass, DOMAIN, f"meter_unavailable_{gone}")
        for circuit_id in circuits:
            self._circuit_status.setdefault(circuit_id, CircuitStatus())
        self._controller.metered = {c.circuit_id for c in circuits.values() if c.meter_entities}
        self._virtual_members = {m for c in circuits.values() if c.is_virtual for m in c.members}
        self._unsubscribe_meters()
        entities = [e for c in circuits.values() for e in c.meter_entities]
        if entities:
            # A meter that writes an unchanged value is still alive: that is a report,
            # not a change, and it must refresh the reading as much as a change does.
            self._meter_unsubs = [
                async_track_state_change_event(self.hass, entities, self._async_meter_changed),
                async_track_state_report_event(self.hass, entities, self._async_meter_changed),
            ]
        for circuit in circuits.values():
            self._read_meter(circuit, time.time())
        self._safe_defaults_due = True
        self.request_pass()

    def _unsubscribe_meters(self) -> None:
        for unsub in self._meter_unsubs:
            unsub()
        self._meter_unsubs = []

    # ------------------------------------------------------------------ status for entities

    def circuit_status(self, circuit_id: str) -> CircuitStatus:
        """Return the live figures of a circuit."""
        return self._circuit_status.setdefault(circuit_id, CircuitStatus())

    def charger_status(self, charger_id: str) -> ChargerPowerStatus:
        """Return the live allocation of a charger."""
        status = self._charger_status.setdefault(charger_id, ChargerPowerStatus())
        status.priority = self._priorities.get(charger_id, 0)
        status.mode = self._modes.get(charger_id, ChargeMode.MANAGED)
        return status

    def allocation_report(self) -> dict[str, Any]:
        """Return the live allocation with reasons (service response, diagnostics)."""
        return {
            "circuits": {
                circuit_id: {
                    "name": config.name,
                    "limit_a": status.limit_a,
                    "limit_power_w": status.limit_power_w,
                    "override_until": status.override_until.isoformat()
                    if status.override_until
                    else None,
                    "measured_a": list(status.measured_a) if status.measured_a else None,
                    "measured_power_w": status.measured_power_w,
                    "ev_load_a": list(status.ev_load_a),
                    "non_ev_load_a": list(status.non_ev_load_a),
                    "allocated_a": list(status.allocated_a),
                    "headroom_a": status.headroom_a,
                    "utilisation_pct": status.utilisation_pct,
                    "overload": status.overload,
                    "meter_stale": status.meter_stale,
                    "chargers": list(status.chargers),
                }
                for circuit_id, config in self.circuits.items()
                if (status := self.circuit_status(circuit_id))
            },
            "chargers": {
                charger_id: {
                    "allocated_a": status.allocated_a,
                    "reason": status.reason.value,
                    "limiting_circuit": status.limiting_circuit,
                    "priority": status.priority,
                    "mode": status.mode.value,
                    "offline_share_a": status.offline_share_a,
                }
                for charger_id in self.hub.chargers
                if (status := self.charger_status(charger_id))
            },
        }

    # ------------------------------------------------------------------ settings

    async def async_set_circuit_limit(
        self,
        circuit_id: str,
        *,
        current_a: float | None = None,
        power_kw: float | None = None,
        duration: timedelta | None = None,
    ) -> None:
        """Override a circuit's limit (never above its rating), for a while or until cleared."""
        config = self._circuit(circuit_id)
        if current_a is None and power_kw is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="limit_required"
            )
        power_w = None if power_kw is None else power_kw * 1000
        _check_override(config, current_a, power_w)
        until = None if duration is None else time.time() + duration.total_seconds()
        old = self._overrides.get(circuit_id)
        # Setting one kind of limit keeps an override of the other kind.
        if old is not None and until is None and old[2] is None:
            current_a = old[0] if current_a is None else current_a
            power_w = old[1] if power_w is None else power_w
        self._overrides[circuit_id] = (current_a, power_w, until)
        self._save()
        if duration is not None:
            self._unsubs.append(async_call_later(self.hass, duration, self._async_expire_overrides))
        self.request_pass(immediate=True)

    async def async_clear_circuit_limit(self, circuit_id: str) -> None:
        """Return a circuit to its configured limit."""
        self._circuit(circuit_id)
        if self._overrides.pop(circuit_id, None) is not None:
            self._save()
            self.request_pass(immediate=True)

    async def async_set_priority(self, charger_id: str, priority: int) -> None:
        """Set a charger's priority (higher is served first)."""
        self._charger_config(charger_id)
        self._priorities[charger_id] = int(priority)
        self._save()
        self.request_pass(immediate=True)

    async def async_set_mode(self, charger_id: str, mode: ChargeMode) -> None:
        """Set a charger's mode: managed, fastest allowed, or paused."""
        self._charger_config(charger_id)
        self._modes[charger_id] = ChargeMode(mode)
        self._save()
        self.request_pass(immediate=True)

    def _circuit(self, circuit_id: str) -> CircuitConfig:
        if (config := self.circuits.get(circuit_id)) is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="circuit_not_found",
                translation_placeholders={"circuit": circuit_id},
            )
        return config

    def _charger_config(self, charger_id: str) -> ChargerConfig:
        if (config := self.hub.chargers.get(charger_id)) is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="charger_not_found",
                translation_placeholders={"charger": charger_id},
            )
        return config

    def _data_to_store(self) -> dict[str, Any]:
        return {
            "priorities": dict(self._priorities),
            "modes": {k: v.value for k, v in self._modes.items()},
            "overrides": {k: list(v) for k, v in self._overrides.items()},
            "safe_defaults": dict(self._installed_safe_defaults),
        }

    @callback
    def _save(self) -> None:
        self._store.async_delay_save(self._data_to_store, 1)

    # ------------------------------------------------------------------ inputs

    @callback
    def _async_meter_changed(
        self, event: Event[EventStateChangedData] | Event[EventStateReportedData]
    ) -> None:
        """Record a meter reading and re-allocate in the same event-loop pass."""
        entity_id = event.data["entity_id"]
        now = time.time()
        for circuit in self.circuits.values():
            if entity_id in circuit.meter_entities:
                self._read_meter(circuit, now)
        # A meter may be telling of an overload: never defer it behind charger reports.
        self.request_pass(meter=True)

    def _read_meter(self, circuit: CircuitConfig, now: float) -> None:
        """Read a circuit's meter entities; an unavailable meter makes the circuit stale."""
        entities = circuit.meter_entities
        if not entities:
            return
        values: list[float] = []
        for entity_id in entities:
            state = self.hass.states.get(entity_id)
            if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
                break
            try:
                value = float(state.state)
            except ValueError:
                break
            if circuit.meter == METER_POWER:
                unit = state.attributes.get("unit_of_measurement")
                if unit == UnitOfPower.KILO_WATT:
                    value *= 1000
                elif unit == UnitOfPower.MEGA_WATT:
                    value *= 1_000_000
            values.append(value)
        else:
            self._set_meter_available(circuit, True)
            if circuit.meter == METER_POWER:
                self._meter_readings[circuit.circuit_id] = (now, None, values[0])
            else:
                per_phase = [0.0, 0.0, 0.0]
                for phase, value in zip(circuit.phases, values, strict=False):
                    per_phase[PHASES.index(phase)] = value
                self._meter_readings[circuit.circuit_id] = (now, tuple(per_phase), None)
            return
        self._set_meter_available(circuit, False)
        if (reading := self._meter_readings.get(circuit.circuit_id)) is not None:
            # Unavailable now: treat the last reading as stale at once, not after the timeout.
            stale_time = min(reading[0], now - METER_STALE_S - 1)
            self._meter_readings[circuit.circuit_id] = (stale_time, reading[1], reading[2])

    def _set_meter_available(self, circuit: CircuitConfig, available: bool) -> None:
        if self._meter_available.get(circuit.circuit_id) == available:
            return
        self._meter_available[circuit.circuit_id] = available
        issue_id = f"meter_unavailable_{circuit.circuit_id}"
        if available:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
        else:
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="meter_unavailable",
                translation_placeholders={"circuit": circuit.name},
            )

    @callback
    def charger_updated(self, charger_id: str) -> None:
        """A charger reported (MeterValues, status, connect, disconnect): re-allocate.

        Only when something the allocation uses has changed: its connection, status or
        session, or its draw by an amp or more. Meter passes and the tick read the
        latest draw anyway; a thousand chargers' steady MeterValues need no pass.
        """
        if not self._managed(charger_id):
            return
        conn = self.hub.connection(charger_id)
        state = self.hub.state(charger_id)
        seen = (
            conn is not None and getattr(conn, "booted", True),
            state.charging_status,
            state.active_transaction is not None,
            tuple(round(a) if a is not None else None for a in state.current_a),
        )
        if self._reported.get(charger_id) != seen:
            self._reported[charger_id] = seen
            self.request_pass()

    def _managed(self, charger_id: str) -> bool:
        config = self.hub.chargers.get(charger_id)
        if config is None:
            return False
        return config.circuit in self.circuits or charger_id in self._virtual_members

    async def async_charger_ready(self, conn: ChargerConnection) -> None:
        """A charger (re)booted: forget what it held and install its limits afresh."""
        charger_id = conn.state.charger_id
        control = self._control.setdefault(charger_id, _ChargerControl())
        control.applied_a = None
        control.safe_default_a = None
        control.rejected = False
        control.not_following = False
        control.over_since = None
        self._controller.forget_charger(charger_id)
        self._safe_defaults_due = True
        self.request_pass(immediate=True)

    # ------------------------------------------------------------------ the pass

    @callback
    def request_pass(self, immediate: bool = False, *, meter: bool = False) -> None:
        """Run an allocation pass: now for settings, at once for meters, soon otherwise.

        `immediate` runs it before returning (a setting changed: what the user sees next
        must show it). A `meter` pass runs as soon as the callbacks already queued in
        this event-loop iteration are done, so that the three phase sensors of a meter
        that change one after the other cause one pass, not three. Charger reports (a
        thousand chargers send a hundred a second) are coalesced into at most PASS_RATE
        passes a second, spaced by PASS_SPACING_FACTOR times the last pass's run time.
        """
        if self._stopped:
            return
        if immediate:
            self._run_soon_pass()
            return
        if meter:
            if not self._pass_soon:
                self._pass_soon = True
                self.hass.loop.call_soon(self._run_soon_pass)
            return
        if self._pass_handle is None and not self._pass_soon:
            spacing = max(1 / PASS_RATE, PASS_SPACING_FACTOR * self._last_pass_s)
            wait = max(0.0, self._last_pass_end + spacing - time.monotonic())
            self._pass_handle = self.hass.loop.call_later(wait, self._run_deferred_pass)

    @callback
    def _run_soon_pass(self) -> None:
        """Run a pass now (it also does the work of a deferred one)."""
        self._pass_soon = False
        if self._pass_handle is not None:
            self._pass_handle.cancel()
            self._pass_handle = None
        if not self._stopped:
            self._timed_pass()

    @callback
    def _run_deferred_pass(self) -> None:
        """Run the pass that charger reports asked for."""
        self._pass_handle = None
        if not self._stopped:
            self._timed_pass()

    def _timed_pass(self) -> None:
        start = time.monotonic()
        try:
            self._run_pass()
        finally:
            self._last_pass_end = time.monotonic()
            self._last_pass_s = self._last_pass_end - start

    @callback
    def _async_tick(self, _now: datetime) -> None:
        """Periodic pass: rotation, lease renewal, stale meters, safe defaults."""
        self._expire_overrides()
        self._safe_defaults_due = True
        self.request_pass(immediate=True)

    @callback
    def _async_expire_overrides(self, _now: datetime) -> None:
        """A temporary limit ran out: return to the configured limit at once."""
        if self._expire_overrides():
            self.request_pass(immediate=True)

    def _expire_overrides(self) -> bool:
        """Drop overrides whose time is up; return True if any was dropped."""
        now = time.time()
        expired = [
            cid for cid, (_, _, until) in self._overrides.items() if until and until <= now + 0.05
        ]
        for circuit_id in expired:
            del self._overrides[circuit_id]
        if expired:
            self._save()
        return bool(expired)

    @callback
    def _run_pass(self) -> None:
        """Allocate from the current state and send the resulting limits."""
        if not self.circuits:
            return
        now = time.time()
        self.passes += 1
        self.check_compliance(now)
        self._retry_rejected(now)
        scenario, reserved, memberships = self._build_scenario(now)
        self._feed_meters(memberships, {x.id for x in scenario.chargers}, now)
        step = self._controller.step(scenario, now)
        self.last_allocation = step.allocation
        self._update_status(step.allocation, scenario, set(step.stale), reserved, memberships)
        commands = [(c.charger_id, c.limit_a, c.kind) for c in step.commands]
        safe_defaults: list[tuple[str, float]] = []
        if self._safe_defaults_due:
            self._safe_defaults_due = False
            safe_defaults = self._safe_default_updates(scenario, memberships)
        if commands or safe_defaults:
            self._queue_send(commands, safe_defaults)
        self._push_changes()
        async_dispatcher_send(self.hass, self.update_signal)

    def charger_signal(self, charger_id: str) -> str:
        """Return the signal sent when a charger's live allocation changes."""
        return SIGNAL_CHARGER_POWER_UPDATE.format(self.hub.entry.entry_id, charger_id)

    def circuit_signal(self, circuit_id: str) -> str:
        """Return the signal sent when a circuit's live figures change."""
        return SIGNAL_CIRCUIT_POWER_UPDATE.format(self.hub.entry.entry_id, circuit_id)

    def _push_changes(self) -> None:
        """Tell the entities of every charger and circuit whose figures changed."""
        for charger_id in self.hub.chargers:
            shown = _figures(self.charger_status(charger_id))
            if self._shown_chargers.get(charger_id) != shown:
                self._shown_chargers[charger_id] = shown
                async_dispatcher_send(self.hass, self.charger_signal(charger_id))
        for circuit_id in self.circuits:
            shown = _figures(self.circuit_status(circuit_id))
            if self._shown_circuits.get(circuit_id) != shown:
                self._shown_circuits[circuit_id] = shown
                async_dispatcher_send(self.hass, self.circuit_signal(circuit_id))

    def _build_scenario(
        self, now: float
    ) -> tuple[Scenario, dict[str, list[float]], dict[str, list[str]]]:
        """Turn configuration, meters and charger states into the engine's input.

        Chargers that are offline or do not follow their profile are left out of the
        allocation; what they may still draw is reserved on every circuit that cannot see
        it on a meter (returned per circuit, per phase). Also returns, per charger, every
        circuit it counts in (its circuit, the ancestors, its virtual circuits).
        """
        hub = self.hub
        charger_circuits, memberships, needs_root = self._layout()
        sees_chargers = {
            cid
            for cid, config in self.circuits.items()
            if config.meter_entities
            and config.meter_includes_chargers
            and self._meter_available.get(cid)
        }
        chargers: list[Charger] = []
        reserved: dict[str, list[float]] = {}
        for charger_id, circuit_id in charger_circuits.items():
            config = hub.chargers[charger_id]
            state = hub.state(charger_id)
            control = self._control.setdefault(charger_id, _ChargerControl())
            hold = self._reservation(charger_id, control, now)
            if hold is not None:
                for cid in memberships[charger_id]:
                    # A meter that measures the chargers sees this one's real draw already.
                    if cid not in sees_chargers:
                        row = reserved.setdefault(cid, [0.0, 0.0, 0.0])
                        for phase in config.phases:
                            row[PHASES.index(phase)] += hold
                continue
            mode = self._modes.get(charger_id, ChargeMode.MANAGED)
            active = mode != ChargeMode.PAUSED and _wants_power(state)
            priority = self._priorities.get(charger_id, 0)
            if mode == ChargeMode.FASTEST:
                priority += FASTEST_PRIORITY_BOOST
            hardware = hub.hardware_limit(charger_id) or config.max_current
            measured = tuple(0.0 if a is None else a for a in state.current_a[: len(config.phases)])
            key = (circuit_id, config, hardware, priority, active, measured)
            cached = self._engine_chargers.get(charger_id)
            if cached is None or cached[0] != key:
                # Built (and validated) only when something it holds has changed.
                cached = self._engine_chargers[charger_id] = (
                    key,
                    Charger(
                        id=charger_id,
                        circuit=circuit_id,
                        phases=config.phases,
                        min_current=config.min_current,
                        max_current=max(0.0, hardware),
                        user_max_current=config.max_current,
                        priority=priority,
                        active=active,
                        measured_current=measured if any(measured) else None,
                    ),
                )
            chargers.append(cached[1])

        circuits: list[Circuit] = []
        if needs_root:
            circuits.append(Circuit(id=UNASSIGNED_ROOT))
        for config in self.circuits.values():
            circuits.append(self._engine_circuit(config, memberships, reserved))
        scenario = Scenario(
            circuits=tuple(circuits),
            chargers=tuple(chargers),
            now=now,
            rotation_period_s=self._rotation_period_s,
            min_on_time_s=0.0 if self._settling(charger_circuits) else self._min_on_time_s,
        )
        return scenario, reserved, memberships

    def _layout(self) -> tuple[dict[str, str], dict[str, list[str]], bool]:
        """Return each charger's physical circuit, every circuit it counts in, and more.

        Per charger: its physical circuit, and every circuit it counts in (that circuit,
        the ancestors, its virtual circuits); and whether some charger is only in virtual
        circuits (it then hangs under an unassigned root). Kept until the circuits or the
        chargers' places change; per circuit, the chargers it counts are in self._members.
        """
        hub = self.hub
        key = tuple((charger_id, config.circuit) for charger_id, config in hub.chargers.items())
        cached = self._layout_cache
        if cached is not None and cached[0] is self.circuits and cached[1] == key:
            return cached[2]
        charger_circuits: dict[str, str] = {}
        virtual_members: dict[str, tuple[str, ...]] = {}
        for config in self.circuits.values():
            if config.is_virtual:
                virtual_members[config.circuit_id] = tuple(
                    m for m in config.members if m in hub.chargers
                )
        in_virtual = {m for members in virtual_members.values() for m in members}
        needs_root = False
        for charger_id, charger in hub.chargers.items():
            circuit = self.circuits.get(charger.circuit or "")
            if circuit is not None and not circuit.is_virtual:
                charger_circuits[charger_id] = circuit.circuit_id
            elif charger_id in in_virtual:
                charger_circuits[charger_id] = UNASSIGNED_ROOT
                needs_root = True
        memberships = {
            charger_id: self._circuits_of(charger_id, circuit_id, virtual_members)
            for charger_id, circuit_id in charger_circuits.items()
        }
        members: dict[str, list[str]] = {}
        for charger_id, circuit_ids in memberships.items():
            for circuit_id in circuit_ids:
                members.setdefault(circuit_id, []).append(charger_id)
        self._members = members
        layout = (charger_circuits, memberships, needs_root)
        self._layout_cache = (self.circuits, key, layout)
        return layout

    def _settling(self, managed: dict[str, str]) -> bool:
        """Whether this pass comes while chargers may still be reconnecting after a start.

        Settling ends STARTUP_SETTLE_S after the start, or a few seconds after the last
        charger is back (time for its status notifications to tell of its session).
        """
        if self._settle_until is None:
            return False
        now = time.monotonic()
        connections = [self.hub.connection(charger_id) for charger_id in managed]
        if all(c is not None and getattr(c, "booted", True) for c in connections):
            self._settle_until = min(self._settle_until, now + SETTLE_AFTER_BOOT_S)
        if now >= self._settle_until:
            self._settle_until = None
        return True

    def _feed_meters(
        self, memberships: dict[str, list[str]], allocated: set[str], now: float
    ) -> None:
        """Give the controller each meter's latest sample as the circuit's total load.

        A meter that sees only the house gets the chargers' measured draw added, the
        same draw the engine subtracts again, so its non-EV load is the house reading.
        """
        for circuit_id, (reading_time, house_a, house_w) in self._meter_readings.items():
            config = self.circuits.get(circuit_id)
            if config is None:
                continue
            current, power_w, sample_time = house_a, house_w, reading_time
            if not config.meter_includes_chargers:
                ev = self._ev_draw(circuit_id, memberships, allocated)
                if house_a is not None:
                    current = tuple(house_a[i] + ev[i] for i in range(3))
                if house_w is not None:
                    power_w = house_w + sum(ev) * config.voltage
                # A house-only reading stays true until the meter says otherwise, so it
                # counts as a new sample every pass (and its smoothing keeps decaying),
                # as long as the meter is not stale. A meter that includes the chargers
                # must not be re-used with newer charger readings: that would take a
                # car's ramp-up twice off the house load.
                if now - reading_time <= METER_STALE_S:
                    sample_time = now
            self._controller.update_meter(circuit_id, sample_time, current, power_w)

    def _circuits_of(
        self, charger_id: str, circuit_id: str, virtual_members: dict[str, tuple[str, ...]]
    ) -> list[str]:
        """Return the physical circuit of a charger, its ancestors and its virtual circuits."""
        out = []
        current: str | None = circuit_id
        seen: set[str] = set()
        while current is not None and current in self.circuits and current not in seen:
            seen.add(current)
            out.append(current)
            current = self.circuits[current].parent
        out.extend(cid for cid, members in virtual_members.items() if charger_id in members)
        return out

    def _reservation(self, charger_id: str, control: _ChargerControl, now: float) -> float | None:
        """Return what an offline, booting or non-compliant charger may draw; None if fine."""
        conn = self.hub.connection(charger_id)
        state = self.hub.state(charger_id)
        config = self.hub.chargers[charger_id]
        measured = max((a or 0.0 for a in state.current_a), default=0.0)
        if conn is None or not getattr(conn, "booted", True):
            # Not under our control right now: it keeps its dynamic limit until the lease
            # runs out, then falls back to its safe default. One that never got a safe
            # default from us may draw its full hardware cap.
            if control.applied_a is not None and now < control.lease_until:
                return control.applied_a
            if (safe := self._installed_safe_defaults.get(charger_id)) is not None:
                return safe
            return self.hub.hardware_limit(charger_id) or config.max_current
        if control.rejected:
            # It takes no limit from us: it may draw up to its hardware cap at any time.
            return max(measured, self.hub.hardware_limit(charger_id) or config.max_current)
        if control.not_following:
            return max(measured, control.applied_a or 0.0)
        return None

    def _engine_circuit(
        self,
        config: CircuitConfig,
        memberships: dict[str, list[str]],
        reserved: dict[str, list[float]],
    ) -> Circuit:
        """Return the engine's circuit: active limits less margin and reservations.

        Measured loads reach the engine through the controller (`_feed_meters`).
        """
        current_a, power_w = self._active_limits(config)
        res = reserved.get(config.circuit_id, [0.0, 0.0, 0.0])
        max_current = None
        if current_a is not None:
            max_current = tuple(
                max(0.0, current_a - config.safety_margin - res[i])
                if PHASES[i] in config.phases
                else 0.0
                for i in range(3)
            )
        max_power = None
        if power_w is not None:
            max_power = max(
                0.0,
                power_w - (config.safety_margin * len(config.phases) + sum(res)) * config.voltage,
            )
        return Circuit(
            id=config.circuit_id,
            parent=config.parent if config.parent in self.circuits else None,
            members=tuple(self._members.get(config.circuit_id, ())) if config.is_virtual else None,
            max_current=max_current,  # type: ignore[arg-type]
            max_power_w=max_power,
            voltage=config.voltage,
        )

    def _ev_draw(
        self, circuit_id: str, memberships: dict[str, list[str]], allocated: set[str]
    ) -> list[float]:
        """Return the measured draw per panel phase of the allocated chargers of a circuit."""
        out = [0.0, 0.0, 0.0]
        for charger_id in self._members.get(circuit_id, ()):
            if charger_id not in allocated:
                continue
            config = self.hub.chargers[charger_id]
            currents = self.hub.state(charger_id).current_a
            for phase, amps in zip(config.phases, currents, strict=False):
                out[PHASES.index(phase)] += amps or 0.0
        return out

    def _active_limits(self, config: CircuitConfig) -> tuple[float | None, float | None]:
        """Return the circuit's limits now: the override where set, else configured."""
        current_a, power_w = config.max_current, config.max_power_w
        if (override := self._overrides.get(config.circuit_id)) is not None:
            if override[0] is not None:
                current_a = override[0]
            if override[1] is not None:
                power_w = override[1]
        return current_a, power_w

    # ------------------------------------------------------------------ outputs

    def _update_status(
        self,
        allocation: Allocation,
        scenario: Scenario,
        stale: set[str],
        reserved: dict[str, list[float]],
        memberships: dict[str, list[str]],
    ) -> None:
        """Refresh the figures entities show and fire overload events."""
        in_scenario = {x.id for x in scenario.chargers}
        for charger_id in self.hub.chargers:
            status = self.charger_status(charger_id)
            control = self._control.get(charger_id)
            status.offline_share_a = control.safe_default_a if control else None
            result = allocation.chargers.get(charger_id)
            if not self._managed(charger_id):
                status.allocated_a, status.reason, status.limiting_circuit = (
                    None,
                    LimitReason.UNMANAGED,
                    None,
                )
            elif result is None or charger_id not in in_scenario:
                offline = self.hub.connection(charger_id) is None
                status.allocated_a = None
                status.reason = LimitReason.OFFLINE if offline else LimitReason.NOT_FOLLOWING
                status.limiting_circuit = None
            elif status.mode == ChargeMode.PAUSED:
                status.allocated_a = result.setpoint
                status.reason, status.limiting_circuit = LimitReason.PAUSED_BY_USER, None
            else:
                status.allocated_a = result.setpoint
                status.reason = _REASONS[result.reason]
                status.limiting_circuit = result.circuit

        for circuit_id, config in self.circuits.items():
            status = self.circuit_status(circuit_id)
            result = allocation.circuits.get(circuit_id)
            current_a, power_w = self._active_limits(config)
            override = self._overrides.get(circuit_id)
            status.limit_a, status.limit_power_w = current_a, power_w
            status.overridden = override is not None
            status.override_until = (
                dt_util.utc_from_timestamp(override[2]) if override and override[2] else None
            )
            reading = self._meter_readings.get(circuit_id)
            status.meter_stale = circuit_id in stale
            status.measured_a = None
            status.measured_power_w = None
            if reading is not None and not status.meter_stale:
                if reading[1] is not None:
                    status.measured_a = tuple(
                        reading[1][i] if PHASES[i] in config.phases else None for i in range(3)
                    )  # type: ignore[assignment]
                    status.measured_power_w = sum(reading[1]) * config.voltage
                if reading[2] is not None:
                    status.measured_power_w = reading[2]
            status.chargers = tuple(self._members.get(circuit_id, ()))
            if result is None:
                continue
            status.ev_load_a = result.measured_ev_current
            status.ev_power_w = result.ev_power_w
            status.non_ev_load_a = result.non_ev_current
            status.allocated_a = result.ev_current
            phases = [PHASES.index(p) for p in config.phases]
            if current_a is not None:
                res = reserved.get(circuit_id, [0.0, 0.0, 0.0])
                status.headroom_a = round(
                    min(
                        current_a - result.non_ev_current[i] - result.ev_current[i] - res[i]
                        for i in phases
                    ),
                    2,
                )
            else:
                status.headroom_a = None
            utilisation = result.utilisation
            status.utilisation_pct = (
                round(utilisation * 100, 1)
                if utilisation is not None and math.isfinite(utilisation)
                else None
            )
            overload = self._is_overloaded(config, status, current_a, power_w)
            if overload and circuit_id not in self._overloaded:
                self.hass.bus.async_fire(
                    EVENT_OVERLOAD,
                    {
                        "circuit_id": circuit_id,
                        "name": config.name,
                        "measured_a": list(status.measured_a) if status.measured_a else None,
                        "measured_power_w": status.measured_power_w,
                        "limit_a": current_a,
                        "limit_power_w": power_w,
                    },
                )
                _LOGGER.warning("Circuit %s is over its limit", config.name)
            status.overload = overload
            if overload:
                self._overloaded.add(circuit_id)
            else:
                self._overloaded.discard(circuit_id)

    @staticmethod
    def _is_overloaded(
        config: CircuitConfig,
        status: CircuitStatus,
        current_a: float | None,
        power_w: float | None,
    ) -> bool:
        """Measured load above the (active) limit; without a meter, never."""
        if status.meter_stale:
            return False
        if (
            current_a is not None
            and status.measured_a is not None
            and any(a is not None and a > current_a for a in status.measured_a)
        ):
            return True
        return (
            power_w is not None
            and status.measured_power_w is not None
            and status.measured_power_w > power_w
        )

    def _safe_default_updates(
        self, scenario: Scenario, memberships: dict[str, list[str]]
    ) -> list[tuple[str, float]]:
        """Return the offline shares that changed enough to re-send."""
        if not scenario.chargers:
            return []
        # Offline shares count every configured charger, online or not, so the circuits
        # are taken without the reservations of offline or booting chargers (those would
        # count twice). A charger that refuses profiles holds no safe default: it stays
        # reserved at its hardware cap and gets no share.
        refusing = {
            charger_id
            for charger_id, control in self._control.items()
            if control.rejected and charger_id in memberships
        }
        reserved: dict[str, list[float]] = {}
        for charger_id in refusing:
            config = self.hub.chargers[charger_id]
            cap = self.hub.hardware_limit(charger_id) or config.max_current
            for cid in memberships[charger_id]:
                row = reserved.setdefault(cid, [0.0, 0.0, 0.0])
                for phase in config.phases:
                    row[PHASES.index(phase)] += cap
        every = replace(
            scenario,
            circuits=tuple(
                self._engine_circuit(self.circuits[c.id], memberships, reserved)
                if c.id in self.circuits
                else c
                for c in scenario.circuits
            ),
            # offline_shares counts every one of them as active.
            chargers=tuple(
                x for x in self._all_chargers_for_shares(scenario) if x.id not in refusing
            ),
        )
        shares = self._controller.offline_shares(every)
        self._offline_shares = shares
        updates = []
        for charger_id, share in shares.items():
            control = self._control.setdefault(charger_id, _ChargerControl())
            if self.hub.connection(charger_id) is None:
                continue
            if (
                control.safe_default_a is None
                or abs(control.safe_default_a - share) >= SAFE_DEFAULT_DEADBAND_A
                or (share < control.safe_default_a)
            ):
                updates.append((charger_id, share))
        return updates

    def _all_chargers_for_shares(self, scenario: Scenario) -> list[Charger]:
        """Return every managed charger (also offline ones) as the engine sees them."""
        present = {x.id: x for x in scenario.chargers}
        out = list(present.values())
        circuit_ids = {c.id for c in scenario.circuits}
        for charger_id, config in self.hub.chargers.items():
            if charger_id in present or not self._managed(charger_id):
                continue
            circuit = config.circuit if config.circuit in circuit_ids else UNASSIGNED_ROOT
            if circuit not in circuit_ids:
                continue
            out.append(
                Charger(
                    id=charger_id,
                    circuit=circuit,
                    phases=config.phases,
                    min_current=config.min_current,
                    max_current=self.hub.hardware_limit(charger_id) or config.max_current,
                    user_max_current=config.max_current,
                )
            )
        return out

    # ------------------------------------------------------------------ sending

    def _queue_send(
        self, commands: list[tuple[str, float, str]], safe_defaults: list[tuple[str, float]]
    ) -> None:
        """Hand limits to the senders: cuts go at once, raises once no cut is in flight.

        Every charger has its own sender with at most one profile in flight, so a charger
        that is slow to answer (up to the OCPP response timeout) holds up no other
        charger's cut, and a command that is overtaken before it goes out is replaced by
        the newer one. Raises, renewals and safe defaults wait until every cut in flight
        has been answered, so that no circuit is over its limit in between.
        """
        for charger_id, limit_a, kind in commands:
            self._outbox[charger_id] = (limit_a, kind)
            if charger_id not in self._senders:
                self._senders[charger_id] = self.hass.async_create_background_task(
                    self._async_sender(charger_id), f"ocpp_power send {charger_id}"
                )
        if safe_defaults:
            self._safe_outbox.update(safe_defaults)
            if self._safe_sender is None:
                self._safe_sender = self.hass.async_create_background_task(
                    self._async_safe_sender(), "ocpp_power send safe defaults"
                )

    async def _async_sender(self, charger_id: str) -> None:
        """Send a charger's newest command until none is waiting."""
        try:
            while (item := self._outbox.pop(charger_id, None)) is not None:
                limit_a, kind = item
                if kind != "cut":
                    if await self._wait_for_cuts(charger_id):
                        await self._send_dynamic(charger_id, limit_a)
                    continue  # else overtaken while waiting: send the newer one now
                self._cuts_in_flight += 1
                self._no_cuts_in_flight.clear()
                try:
                    await self._send_dynamic(charger_id, limit_a)
                finally:
                    self._cuts_in_flight -= 1
                    if not self._cuts_in_flight:
                        self._no_cuts_in_flight.set()
        finally:
            del self._senders[charger_id]

    async def _wait_for_cuts(self, charger_id: str) -> bool:
        """Wait until no cut is in flight; False as soon as a newer command is waiting."""
        while not self._no_cuts_in_flight.is_set():
            if charger_id in self._outbox:
                return False
            with suppress(TimeoutError):
                async with asyncio.timeout(CUT_POLL_S):
                    await self._no_cuts_in_flight.wait()
        return charger_id not in self._outbox

    async def _async_safe_sender(self) -> None:
        """Send the waiting safe defaults, all chargers at once, until none is waiting."""
        try:
            while self._safe_outbox:
                await self._no_cuts_in_flight.wait()
                batch, self._safe_outbox = self._safe_outbox, {}
                await asyncio.gather(*(self._send_safe_default(cid, a) for cid, a in batch.items()))
        finally:
            self._safe_sender = None

    async def _send_dynamic(self, charger_id: str, limit_a: float) -> None:
        """Install a leased dynamic limit and track whether the charger took it."""
        conn = self.hub.connection(charger_id)
        config = self.hub.chargers.get(charger_id)
        if conn is None or config is None:
            self._controller.forget_charger(charger_id)
            return
        control = self._control.setdefault(charger_id, _ChargerControl())
        sent_at = time.time()
        ok = await conn.apply_limit(
            LimitPurpose.DYNAMIC, limit_a, phases=len(config.phases), lease=self.lease
        )
        if ok:
            control.retry_at = 0.0
            control.applied_a = limit_a
            control.applied_at = sent_at
            control.lease_until = sent_at + self.lease.total_seconds()
            self._update_compliance_issue(charger_id)
        else:
            # Counted at its real draw (and its share kept) until it accepts one.
            control.rejected = True
            control.retry_at = sent_at + REJECT_RETRY_S
            self._controller.forget_charger(charger_id)
            self._update_compliance_issue(charger_id)
            self.request_pass(immediate=True)  # now counted at its real draw

    async def _send_safe_default(self, charger_id: str, share_a: float) -> None:
        """Install the charger's offline share (used when HA is gone and the lease ends)."""
        conn = self.hub.connection(charger_id)
        config = self.hub.chargers.get(charger_id)
        if conn is None or config is None:
            return
        if await conn.apply_limit(LimitPurpose.SAFE_DEFAULT, share_a, phases=len(config.phases)):
            self._control.setdefault(charger_id, _ChargerControl()).safe_default_a = share_a
            self._installed_safe_defaults[charger_id] = share_a
            self._save()

    # ------------------------------------------------------------------ compliance

    @callback
    def check_compliance(self, now: float) -> None:
        """Flag chargers that keep drawing above their setpoint past the reaction time."""
        for charger_id, control in self._control.items():
            if control.applied_a is None or self.hub.connection(charger_id) is None:
                control.over_since = None
                continue
            state = self.hub.state(charger_id)
            measured = max((a or 0.0 for a in state.current_a), default=0.0)
            if measured <= control.applied_a + COMPLIANCE_TOLERANCE_A:
                control.over_since = None
                if control.not_following:
                    control.not_following = False
                    self._update_compliance_issue(charger_id)
                continue
            since = control.over_since = control.over_since or max(now, control.applied_at)
            if not control.not_following and now - since > REACTION_TIME_S:
                control.not_following = True
                _LOGGER.warning(
                    "Charger %s draws %.1f A, above its %.1f A limit; counting its real draw",
                    charger_id,
                    measured,
                    control.applied_a,
                )
                self._update_compliance_issue(charger_id)

    def _retry_rejected(self, now: float) -> None:
        """Give chargers that refused a profile another chance, once a minute."""
        for control in self._control.values():
            if control.rejected and now >= control.retry_at:
                control.rejected = False  # the repair issue stays until one is accepted

    def _update_compliance_issue(self, charger_id: str) -> None:
        control = self._control.get(charger_id)
        issue_id = f"charger_not_following_{charger_id}"
        if control is not None and (
            control.rejected or control.not_following or control.retry_at > time.time()
        ):
            config = self.hub.chargers.get(charger_id)
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="charger_not_following",
                translation_placeholders={"charger": config.name if config else charger_id},
            )
        else:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)


def _figures(status: ChargerPowerStatus | CircuitStatus) -> tuple[Any, ...]:
    """Return every field of a status, to tell whether it changed."""
    return tuple(getattr(status, name) for name in status.__slots__)


def _wants_power(state: ChargerState) -> bool:
    """Whether a car is in a session on the charger (so it should get a share)."""
    status = state.charging_status
    if status in SESSION_STATUSES:
        return True
    return status is ConnectorStatus.PREPARING and state.active_transaction is not None


def _check_override(config: CircuitConfig, current_a: float | None, power_w: float | None) -> None:
    """Refuse overrides of a limit the circuit lacks, or above its rating."""
    checks: list[tuple[float | None, float | None, str, Callable[[float], str]]] = [
        (current_a, config.max_current, "circuit_has_no_current_limit", lambda v: f"{v:g} A"),
        (power_w, config.max_power_w, "circuit_has_no_power_limit", lambda v: f"{v / 1000:g} kW"),
    ]
    for value, rating, missing_key, fmt in checks:
        if value is None:
            continue
        if rating is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key=missing_key,
                translation_placeholders={"circuit": config.name},
            )
        if value < 0 or value > rating:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="limit_above_rating",
                translation_placeholders={"value": fmt(value), "limit": fmt(rating)},
            )
