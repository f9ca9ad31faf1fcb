"""A simulated OCPP 1.6J charge point with one connector and an EV, built on the ocpp library."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
import contextlib
from dataclasses import dataclass, field
import logging
import random
import ssl as ssl_lib
import time
from typing import Any

import aiohttp
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError, OCPPError
from ocpp.messages import Call
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result

from .ev import EV
from .profiles import TX_PROFILE, ProfileStore, normalize_keys, plain_json, to_iso

_LOGGER = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"
MIN_CURRENT_A = 6.0  # IEC 61851: below this a charger cannot signal a usable current.
MEASURANDS = (
    "Current.Import",
    "Current.Offered",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
    "Voltage",
    "SoC",
)
FEATURE_PROFILES = (
    "Core",
    "FirmwareManagement",
    "LocalAuthListManagement",
    "Reservation",
    "SmartCharging",
    "RemoteTrigger",
)
RATE_UNIT_NAMES = {"A": "Current", "W": "Power"}  # 1.6 spells the units out in the config key.
MAX_STACK_LEVEL = 8
MAX_PERIODS = 24
BOOT_RETRY_S = 10.0  # when the server gives no usable retry interval
TRIGGERABLE = ("BootNotification", "StatusNotification", "MeterValues", "Heartbeat")
WRITABLE_KEYS = ("MeterValueSampleInterval", "MeterValuesSampledData", "HeartbeatInterval")


class _ConnectionClosedError(ConnectionError):
    """The websocket to the central system is gone."""


class _WsAdapter:
    """Give an aiohttp client websocket the recv()/send() pair the ocpp library expects."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def recv(self) -> str:
        """Return the next text frame; raise when the connection closes."""
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data).decode()
        raise _ConnectionClosedError(f"websocket closed ({msg.type.name})")

    async def send(self, data: str) -> None:
        """Send one text frame."""
        if self._ws.closed:
            raise _ConnectionClosedError("websocket closed")
        await self._ws.send_str(data)


class _Link(ChargePoint):
    """The ocpp-library side of one connection; handlers delegate to the SimCharger."""

    def __init__(self, sim: SimCharger, connection: _WsAdapter, response_timeout: float) -> None:
        super().__init__(sim.charger_id, connection, response_timeout)
        self._sim = sim

    async def _handle_call(self, msg: Call) -> Any:
        self._sim.received_calls.append(msg.action)
        self._sim._notify()
        return await super()._handle_call(msg)

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        """Report configuration keys."""
        return self._sim._get_configuration(key)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        """Change a configuration key."""
        return call_result.ChangeConfiguration(status=self._sim._change_configuration(key, value))

    @on("SetChargingProfile")
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> call_result.SetChargingProfile:
        """Install a charging profile (after the charger's answer delay, if it has one)."""
        if self._sim.profile_answer_delay_s > 0:
            # Like a charger busy writing flash: nothing else is read meanwhile.
            await asyncio.sleep(self._sim.profile_answer_delay_s)
        status = self._sim._set_charging_profile(connector_id, cs_charging_profiles)
        return call_result.SetChargingProfile(status=status)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
    ) -> call_result.ClearChargingProfile:
        """Clear charging profiles."""
        status = self._sim._clear_charging_profile(
            id, connector_id, charging_profile_purpose, stack_level
        )
        return call_result.ClearChargingProfile(status=status)

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None
    ) -> call_result.GetCompositeSchedule:
        """Report the composite schedule."""
        return self._sim._get_composite_schedule(connector_id, duration, charging_rate_unit)

    @on("RemoteStartTransaction")
    def on_remote_start(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
    ) -> call_result.RemoteStartTransaction:
        """Accept a remote start when the connector can take one."""
        return call_result.RemoteStartTransaction(
            status=self._sim._remote_start_status(connector_id, charging_profile)
        )

    @after("RemoteStartTransaction")
    def after_remote_start(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
    ) -> None:
        """Start the session once the answer is out."""
        if self._sim._remote_start_status(connector_id, charging_profile) == "Accepted":
            self._sim._spawn(self._sim._remote_start(id_tag, charging_profile), "remote-start")

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        """Accept a remote stop of the running transaction."""
        ok = transaction_id == self._sim.transaction_id
        return call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @after("RemoteStopTransaction")
    def after_remote_stop(self, transaction_id: int) -> None:
        """Stop the transaction once the answer is out."""
        if transaction_id == self._sim.transaction_id:
            self._sim._spawn(self._sim._stop_session("Remote"), "remote-stop")

    @on("ChangeAvailability")
    def on_change_availability(
        self, connector_id: int, type: str
    ) -> call_result.ChangeAvailability:
        """Make the charger (in)operative."""
        if connector_id not in (0, 1):
            return call_result.ChangeAvailability(status="Rejected")
        self._sim.operative = type == "Operative"
        return call_result.ChangeAvailability(status="Accepted")

    @after("ChangeAvailability")
    def after_change_availability(self, connector_id: int, type: str) -> None:
        """Act on the new availability once the answer is out."""
        if connector_id in (0, 1):
            self._sim._spawn(self._sim._apply_availability(), "availability")

    @on("Reset")
    def on_reset(self, type: str) -> call_result.Reset:
        """Accept a reset."""
        return call_result.Reset(status="Accepted")

    @after("Reset")
    def after_reset(self, type: str) -> None:
        """Reboot once the answer is out."""
        self._sim._spawn(self._sim._reset(type), "reset")

    @on("UnlockConnector")
    def on_unlock_connector(self, connector_id: int) -> call_result.UnlockConnector:
        """Unlock the connector."""
        return call_result.UnlockConnector(
            status="Unlocked" if connector_id == 1 else "NotSupported"
        )

    @after("UnlockConnector")
    def after_unlock_connector(self, connector_id: int) -> None:
        """End the session and release the cable once the answer is out."""
        if connector_id == 1:
            self._sim._spawn(self._sim._unlock(), "unlock")

    @on("TriggerMessage")
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None
    ) -> call_result.TriggerMessage:
        """Accept a trigger for the messages the simulator can send."""
        ok = requested_message in TRIGGERABLE
        return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after("TriggerMessage")
    def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None
    ) -> None:
        """Send the requested message once the answer is out."""
        if requested_message in TRIGGERABLE:
            self._sim._spawn(self._sim._triggered(requested_message, connector_id), "trigger")

    @on("DataTransfer")
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> call_result.DataTransfer:
        """No vendor extensions here."""
        return call_result.DataTransfer(status="UnknownVendorId")


@dataclass(slots=True)
class _Connection:
    """One websocket session with the central system."""

    ws: aiohttp.ClientWebSocketResponse
    link: _Link
    closed: asyncio.Future[None]
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    booted: bool = False


class SimCharger:
    """An OCPP 1.6J charge point with one connector, an EV and smart charging."""

    def __init__(
        self,
        charger_id: str,
        url: str,
        *,
        password: str | None = None,
        ev: EV | None = None,
        phases: int = 3,
        max_current_a: float = 32.0,
        voltage: float = 230.0,
        reaction_delay_s: float = 5.0,
        meter_interval_s: float = 10.0,
        step_s: float = 0.5,
        heartbeat_s: float | None = None,
        vendor: str = "OCPPPowerSim",
        model: str = "SimWallbox",
        serial: str | None = None,
        firmware: str = "1.0.0",
        ocpp_version: str = "1.6",
        rate_units: Iterable[str] = ("A", "W"),
        supports_smart_charging: bool = True,
        reject_profiles: bool = False,
        ignore_profiles: bool = False,
        profile_answer_delay_s: float = 0.0,
        id_tag: str = "SIMTAG",
        auto_start: bool = True,
        reconnect: bool = True,
        backoff_s: tuple[float, float] = (1.0, 30.0),
        response_timeout_s: float = 30.0,
        ssl: ssl_lib.SSLContext | bool = True,
    ) -> None:
        """Configure the charger; nothing runs until start()."""
        if ocpp_version != "1.6":
            raise ValueError("only OCPP 1.6J is simulated")
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        self.charger_id = charger_id
        base = url.rstrip("/")
        # The central system takes the charger id from the last path segment.
        self.url = base if base.endswith(f"/{charger_id}") else f"{base}/{charger_id}"
        self.password = password
        self.ev = ev if ev is not None else EV()
        self.phases = phases
        self.max_current_a = max_current_a
        self.voltage = voltage
        self.reaction_delay_s = reaction_delay_s
        self.meter_interval_s = meter_interval_s
        self.step_s = step_s
        self.heartbeat_s = heartbeat_s
        self.vendor = vendor
        self.model = model
        self.serial = serial if serial is not None else f"SIM-{charger_id}"
        self.firmware = firmware
        self.rate_units = tuple(rate_units)
        self.supports_smart_charging = supports_smart_charging
        self.reject_profiles = reject_profiles
        self.ignore_profiles = ignore_profiles
        self.profile_answer_delay_s = profile_answer_delay_s
        self.id_tag = id_tag
        self.auto_start = auto_start
        self.reconnect = reconnect
        self.backoff_s = backoff_s
        self.response_timeout_s = response_timeout_s
        self.ssl = ssl
        self.profiles = ProfileStore(
            max_stack_level=MAX_STACK_LEVEL, max_periods=MAX_PERIODS, rate_units=self.rate_units
        )
        self.measurands: tuple[str, ...] = MEASURANDS

        # Observable state.
        self.connected = False
        self.boot_status: str | None = None
        self.status = "Available"
        self.operative = True
        self.ev_plugged = False
        self.transaction_id: int | None = None
        self.transaction_start: float | None = None  # Unix seconds
        self.current_a = [0.0, 0.0, 0.0]
        self.power_w = 0.0
        self.energy_wh = 0.0
        self.limit_a: float | None = None
        self.offered_a = 0.0
        self.received_profiles: list[tuple[float, dict[str, Any]]] = []
        self.received_calls: list[str] = []
        self.sent_calls: list[str] = []
        self.connect_count = 0
        self.last_error: str | None = None

        self._heartbeat_interval: float = heartbeat_s or 0.0
        self._tx_id_tag: str | None = None
        self._pending_stops: list[call.StopTransaction] = []
        # Compressed history of the target limit: (monotonic time, limit) at each change.
        self._targets: list[tuple[float, float | None]] = []
        self._last_step: float | None = None
        self._session: aiohttp.ClientSession | None = None
        self._conn: _Connection | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._reset_requested = False
        self._tx_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._sim_wakeup = asyncio.Event()
        self._meter_wakeup = asyncio.Event()
        self._meter_now = False
        self._heartbeat_wakeup = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle

    # A timeout argument is the contract tests rely on, hence ASYNC109 is silenced.
    async def start(self, *, wait: bool = True, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Start connecting and simulating; with wait, return once the boot is accepted."""
        if self._run_task is not None:
            raise RuntimeError("already started")
        self._stopping = False
        self._session = aiohttp.ClientSession()
        self._last_step = time.monotonic()
        self._record_target()
        self._spawn(self._sim_loop(), "sim")
        run_task = self._run_task = self._spawn(self._run(), "run")
        if wait:
            await self.wait_for(lambda c: c.boot_status == "Accepted" or run_task.done(), timeout)
            if self.boot_status != "Accepted":
                raise ConnectionError(f"{self.charger_id}: not booted: {self.last_error}")

    async def stop(self) -> None:
        """Close the connection and end every task the charger runs."""
        self._stopping = True
        if (conn := self._conn) is not None and not conn.ws.closed:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await conn.ws.close()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._run_task = None
        self._conn = None
        self.connected = False
        self._notify()

    async def __aenter__(self) -> SimCharger:
        """Start and wait for the boot."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop."""
        await self.stop()

    async def wait_for(
        self,
        predicate: Callable[[SimCharger], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until predicate(self) holds; raise TimeoutError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.charger_id}: condition not met within {timeout} s")
            changed = self._changed
            # Poll as well: some predicates depend on time rather than on a state change.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.1))

    # ------------------------------------------------------------------ EV actions

    async def plug_in(self, ev: EV | None = None) -> int | None:
        """Connect a car (the charger's own EV by default); return the transaction id if any."""
        if ev is not None:
            self.ev = ev
        if self.ev_plugged:
            return self.transaction_id
        self.ev_plugged = True
        if self.operative:
            await self._set_status("Preparing")
        if self.auto_start:
            return await self._start_session(self.id_tag)
        return None

    async def authorize_and_start(self, id_tag: str | None = None) -> int | None:
        """Start a session for the plugged car (when auto_start is off); return its id."""
        return await self._start_session(id_tag or self.id_tag)

    async def unplug(self) -> None:
        """Disconnect the car, ending its transaction."""
        if not self.ev_plugged:
            return
        async with self._tx_lock:
            if self.transaction_id is not None:
                await self._stop_locked("EVDisconnected")
            self.ev_plugged = False
            await self._advance_and_report()
        await self._set_status("Available" if self.operative else "Unavailable")

    # ------------------------------------------------------------------ simulation

    async def step(self) -> None:
        """Advance the simulation to now and report a status change."""
        await self._advance_and_report()

    def _advance(self) -> None:
        """Integrate energy since the last step and recompute limit, draw and status."""
        now = time.monotonic()
        dt = 0.0 if self._last_step is None else max(0.0, now - self._last_step)
        self._last_step = now
        phases_used = self._phases_used()
        if dt > 0 and self.current_a[0] > 0:
            self.energy_wh += self.ev.charge(self.current_a[0], phases_used, self.voltage, dt)
        self._record_target(now)
        self.limit_a = self._delayed_target(now)
        offered = (
            self.max_current_a if self.limit_a is None else min(self.limit_a, self.max_current_a)
        )
        self.offered_a = offered if offered >= MIN_CURRENT_A else 0.0
        draw = 0.0
        if self.transaction_id is not None and self.ev_plugged and self.operative:
            draw = min(self.offered_a, self.ev.acceptance_a())
        self.current_a = [draw if i < phases_used else 0.0 for i in range(3)]
        self.power_w = draw * phases_used * self.voltage
        self._notify()

    def _session_status(self) -> str | None:
        """Connector status the draw implies during a transaction, else None."""
        if self.transaction_id is None or not self.operative:
            return None
        if self.offered_a <= 0:
            return "SuspendedEVSE"
        if self.ev.acceptance_a() <= 0:
            return "SuspendedEV"
        return "Charging"

    async def _advance_and_report(self) -> None:
        self._advance()
        if (status := self._session_status()) is not None:
            await self._set_status(status)

    def _phases_used(self) -> int:
        return min(self.phases, self.ev.phases) if self.ev_plugged else self.phases

    def _target_now(self) -> float | None:
        """Composite profile limit right now, before the reaction delay."""
        if self.ignore_profiles:
            return None
        return self.profiles.limit_a(
            1,
            time.time(),
            self.voltage,
            self._phases_used(),
            self.transaction_id is not None,
            transaction_start=self.transaction_start,
        )

    def _record_target(self, now: float | None = None) -> None:
        """Append the current target limit to the history when it changed."""
        now = time.monotonic() if now is None else now
        value = self._target_now()
        if not self._targets or self._targets[-1][1] != value:
            self._targets.append((now, value))
            self._sim_wakeup.set()

    def _delayed_target(self, now: float) -> float | None:
        """Target limit as it stood reaction_delay_s ago (the charger's reaction time)."""
        cutoff = now - self.reaction_delay_s
        index = 0
        for i, (t, _) in enumerate(self._targets):
            if t <= cutoff:
                index = i
            else:
                break
        del self._targets[:index]  # older changes can no longer matter
        return self._targets[0][1] if self._targets else None

    async def _sim_loop(self) -> None:
        """Step every step_s, and exactly when a delayed limit change falls due."""
        while True:
            await self._advance_and_report()
            self._sim_wakeup.clear()
            now = time.monotonic()
            timeout = self.step_s
            # Wake just after a schedule boundary (a lease ending, a new period) so the
            # reaction delay counts from the moment the profile says, not from the next tick.
            wall = time.time()
            boundary = self.profiles.next_change(
                wall, timeout, transaction_start=self.transaction_start
            )
            if boundary is not None:
                timeout = min(timeout, boundary - wall + 0.001)
            for t, _ in self._targets[1:]:
                due = t + self.reaction_delay_s - now
                if due > 0:
                    timeout = min(timeout, due)
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sim_wakeup.wait(), max(timeout, 0.001))

    # ------------------------------------------------------------------ sessions

    async def _start_session(
        self, id_tag: str, *, remote: bool = False, profile: dict[str, Any] | None = None
    ) -> int | None:
        """Authorise (unless remote) and start a transaction for the plugged car."""
        async with self._tx_lock:
            if self.transaction_id is not None:
                return self.transaction_id
            if not self.ev_plugged or not self.operative:
                return None
            if self._conn is None or not self._conn.booted:
                return None  # started after the (next) accepted boot
            if not remote:
                auth = await self._call(call.Authorize(id_tag=id_tag))
                if auth is None or auth.id_tag_info.get("status") != "Accepted":
                    self.last_error = f"id tag {id_tag} not accepted"
                    return None
            await self.step()
            started = await self._call(
                call.StartTransaction(
                    connector_id=1,
                    id_tag=id_tag,
                    meter_start=int(self.energy_wh),
                    timestamp=to_iso(time.time()),
                )
            )
            if started is None:
                return None
            self.transaction_id = int(started.transaction_id)
            self.transaction_start = time.time()
            self._tx_id_tag = id_tag
            if started.id_tag_info.get("status") != "Accepted":
                # StopTransactionOnInvalidId: the central system refused the tag.
                await self._stop_locked("DeAuthorized")
                return None
            if profile is not None and self.supports_smart_charging:
                self.profiles.install(1, profile, time.time(), transaction_id=self.transaction_id)
            self._record_target()
            # Meter samples run from the start of the transaction.
            self._meter_now = True
            self._meter_wakeup.set()
            await self._advance_and_report()
            return self.transaction_id

    async def _stop_session(self, reason: str) -> None:
        async with self._tx_lock:
            if self.transaction_id is not None:
                await self._stop_locked(reason)

    async def _stop_locked(self, reason: str) -> None:
        """End the transaction; the caller holds the transaction lock."""
        self._advance()
        assert self.transaction_id is not None
        stop = call.StopTransaction(
            meter_stop=int(self.energy_wh),
            timestamp=to_iso(time.time()),
            transaction_id=self.transaction_id,
            reason=reason,
            id_tag=self._tx_id_tag,
        )
        self.transaction_id = None
        self.transaction_start = None
        self._tx_id_tag = None
        self.profiles.end_transaction(1)
        self._advance()
        conn = self._conn
        if conn is None or not conn.booted or (await self._call(stop) is None and not self._conn):
            # Offline: a real charger queues transaction messages until it is back.
            self._pending_stops.append(stop)
        if self.ev_plugged:
            await self._set_status("Finishing" if self.operative else "Unavailable")

    async def _remote_start(self, id_tag: str, profile: dict[str, Any] | None) -> None:
        if not self.ev_plugged:
            self.ev_plugged = True
            await self._set_status("Preparing")
        await self._start_session(id_tag, remote=True, profile=profile)

    def _remote_start_status(self, connector_id: int | None, profile: dict[str, Any] | None) -> str:
        if not self.operative or self.transaction_id is not None or connector_id not in (None, 1):
            return "Rejected"
        if profile is not None:
            purpose = normalize_keys(profile).get("chargingProfilePurpose")
            if purpose != TX_PROFILE:
                return "Rejected"
        return "Accepted"

    async def _apply_availability(self) -> None:
        if not self.operative:
            await self._stop_session("Other")
            await self._set_status("Unavailable")
            await self._send_status(0)
            return
        await self._set_status("Preparing" if self.ev_plugged else "Available")
        await self._send_status(0)
        if self.ev_plugged and self.auto_start:
            await self._start_session(self.id_tag)

    async def _unlock(self) -> None:
        await self._stop_session("UnlockCommand")
        await self.unplug()

    async def _reset(self, kind: str) -> None:
        """Stop the transaction, drop the connection and boot again."""
        await self._stop_session("HardReset" if kind == "Hard" else "SoftReset")
        if self.ev_plugged and self.operative:
            self.status = "Preparing"  # reported after the new boot
        self._reset_requested = True
        if (conn := self._conn) is not None:
            await conn.ws.close()

    # ------------------------------------------------------------------ connection

    async def _run(self) -> None:
        """Connect, serve and reconnect with exponential back-off."""
        attempt = 0
        while not self._stopping:
            booted = False
            try:
                booted = await self._serve_once()
            except Exception as err:  # any failure of a session means: reconnect
                self.last_error = f"{type(err).__name__}: {err}"
                _LOGGER.debug("%s: connection failed: %s", self.charger_id, self.last_error)
            self._notify()
            if self._stopping or not self.reconnect:
                return
            if self._reset_requested:
                self._reset_requested = False
                attempt = 0
                continue
            if booted:
                attempt = 0
            low, high = self.backoff_s
            # Jitter spreads a fleet's reconnects after the server comes back.
            delay = min(high, low * 2**attempt) * random.uniform(0.9, 1.1)
            attempt += 1
            await asyncio.sleep(delay)

    async def _serve_once(self) -> bool:
        """Run one websocket session; return whether the boot was accepted."""
        assert self._session is not None
        auth = aiohttp.BasicAuth(self.charger_id, self.password) if self.password else None
        async with asyncio.timeout(10):
            ws = await self._session.ws_connect(
                self.url,
                protocols=(SUBPROTOCOL,),
                auth=auth,
                ssl=self.ssl,
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
        if ws.protocol != SUBPROTOCOL:
            await ws.close()
            raise ConnectionError(f"server did not agree to {SUBPROTOCOL}")
        link = _Link(self, _WsAdapter(ws), self.response_timeout_s)
        conn = _Connection(ws, link, asyncio.get_running_loop().create_future())
        self._conn = conn
        self.connected = True
        self.connect_count += 1
        self.last_error = None
        self._notify()
        receiver = self._spawn(link.start(), "receive", conn)
        self._spawn(self._boot(conn), "boot", conn)
        try:
            await receiver
        except _ConnectionClosedError:
            pass
        finally:
            self._conn = None
            self.connected = False
            self.boot_status = None
            conn.closed.set_result(None)
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            if not ws.closed:
                await ws.close()
            self._notify()
        return conn.booted

    async def _boot(self, conn: _Connection) -> None:
        """BootNotification until accepted, then status, queued messages and periodic loops."""
        while True:
            result = await self._boot_notification(conn)
            if result is not None and result.status == "Accepted":
                break
            interval = float(result.interval) if result is not None else 0.0
            await asyncio.sleep(interval if interval > 0 else BOOT_RETRY_S)
        conn.booted = True
        await self._send_status(0, conn)
        await self._send_status(1, conn)
        while self._pending_stops:
            if await self._call(self._pending_stops[0], conn) is None and conn.closed.done():
                return  # still queued for the next connection
            self._pending_stops.pop(0)
        self._spawn(self._heartbeat_loop(), "heartbeat", conn)
        self._spawn(self._meter_loop(), "meter", conn)
        # A car left waiting (plugged while offline, or across a reset) starts now.
        if self.status == "Preparing" and self.auto_start:
            await self._start_session(self.id_tag)

    async def _boot_notification(self, conn: _Connection | None = None) -> Any:
        result = await self._call(
            call.BootNotification(
                charge_point_model=self.model,
                charge_point_vendor=self.vendor,
                charge_point_serial_number=self.serial,
                firmware_version=self.firmware,
            ),
            conn,
            before_boot=True,
        )
        if result is not None:
            self.boot_status = str(result.status)
            if result.status == "Accepted" and self.heartbeat_s is None:
                self._heartbeat_interval = float(result.interval)
                self._heartbeat_wakeup.set()
            self._notify()
        return result

    async def _heartbeat_loop(self) -> None:
        while True:
            interval = self._heartbeat_interval
            self._heartbeat_wakeup.clear()
            try:
                async with asyncio.timeout(interval if interval > 0 else None):
                    await self._heartbeat_wakeup.wait()
                continue  # interval changed: start counting again
            except TimeoutError:
                pass
            await self._call(call.Heartbeat())

    async def _meter_loop(self) -> None:
        while True:
            if not self._meter_now:
                interval = self.meter_interval_s
                self._meter_wakeup.clear()
                try:
                    async with asyncio.timeout(interval if interval > 0 else None):
                        await self._meter_wakeup.wait()
                    if not self._meter_now:
                        continue  # interval changed: start counting again
                except TimeoutError:
                    pass
            self._meter_now = False
            await self.step()
            await self._send_meter_values("Sample.Periodic")

    def _spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        conn: _Connection | None = None,
    ) -> asyncio.Task[Any]:
        """Run a tracked background task (cancelled by stop(), or with its connection)."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.charger_id}:{name}")
        self._tasks.add(task)
        if conn is not None:
            conn.tasks.add(task)
            task.add_done_callback(conn.tasks.discard)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        if (err := task.exception()) is not None and not isinstance(err, _ConnectionClosedError):
            _LOGGER.error("%s: task %s failed", self.charger_id, task.get_name(), exc_info=err)

    async def _call(
        self, payload: Any, conn: _Connection | None = None, *, before_boot: bool = False
    ) -> Any:
        """Send a call; return its result, or None when it failed or the connection went."""
        conn = conn or self._conn
        if conn is None or conn.closed.done():
            return None
        if not conn.booted and not before_boot:
            return None  # 1.6: nothing but BootNotification until the boot is accepted
        self.sent_calls.append(type(payload).__name__)
        task = asyncio.ensure_future(conn.link.call(payload))
        try:
            await asyncio.wait({task, conn.closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            elif not task.cancelled():
                # Retrieve a failure now: if we are being cancelled, nobody else will.
                task.exception()
        if task.cancelled():
            return None
        try:
            return task.result()
        except (ConnectionError, aiohttp.ClientError) as err:
            # The connection went while sending; the run loop reconnects.
            _LOGGER.debug("%s: %s not sent: %r", self.charger_id, type(payload).__name__, err)
        except (TimeoutError, OCPPError) as err:
            _LOGGER.warning("%s: %s failed: %r", self.charger_id, type(payload).__name__, err)
        return None

    def _notify(self) -> None:
        """Wake wait_for() callers."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ outgoing messages

    async def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self._notify()
            await self._send_status(1)

    async def _send_status(self, connector_id: int, conn: _Connection | None = None) -> None:
        if connector_id == 0:
            status = "Available" if self.operative else "Unavailable"
        else:
            status = self.status
        await self._call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code="NoError",
                status=status,
                timestamp=to_iso(time.time()),
            ),
            conn,
        )

    def meter_sample(self, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
        """SampledValue list for the configured measurands."""
        values: list[dict[str, Any]] = []

        def add(measurand: str, value: float, unit: str, **extra: str) -> None:
            values.append(
                {
                    "value": f"{value:.1f}" if unit != "Percent" else f"{value:.0f}",
                    "context": context,
                    "measurand": measurand,
                    "unit": unit,
                    "location": "EV" if unit == "Percent" else "Outlet",
                    **extra,
                }
            )

        for measurand in self.measurands:
            if measurand == "Current.Import":
                for i in range(self.phases):
                    add(measurand, self.current_a[i], "A", phase=f"L{i + 1}")
            elif measurand == "Current.Offered":
                add(measurand, self.offered_a, "A")
            elif measurand == "Power.Active.Import":
                add(measurand, self.power_w, "W")
            elif measurand == "Energy.Active.Import.Register":
                add(measurand, self.energy_wh, "Wh")
            elif measurand == "Voltage":
                for i in range(self.phases):
                    add(measurand, self.voltage, "V", phase=f"L{i + 1}-N")
            elif measurand == "SoC" and self.ev_plugged:
                add(measurand, self.ev.soc * 100, "Percent")
        return values

    async def _send_meter_values(self, context: str) -> None:
        await self._call(
            call.MeterValues(
                connector_id=1,
                meter_value=[
                    {"timestamp": to_iso(time.time()), "sampledValue": self.meter_sample(context)}
                ],
                transaction_id=self.transaction_id,
            )
        )

    async def _triggered(self, message: str, connector_id: int | None) -> None:
        if message == "BootNotification":
            await self._boot_notification()
        elif message == "Heartbeat":
            await self._call(call.Heartbeat())
        elif message == "MeterValues":
            await self.step()
            await self._send_meter_values("Trigger")
        elif connector_id is None:
            await self._send_status(0)
            await self._send_status(1)
        else:
            await self._send_status(connector_id)

    # ------------------------------------------------------------------ incoming calls

    def _configuration(self) -> dict[str, tuple[bool, str]]:
        """Configuration keys: name -> (readonly, value)."""
        features = [
            f for f in FEATURE_PROFILES if f != "SmartCharging" or self.supports_smart_charging
        ]
        config = {
            "SupportedFeatureProfiles": (True, ",".join(features)),
            "NumberOfConnectors": (True, "1"),
            "MeterValueSampleInterval": (False, f"{self.meter_interval_s:g}"),
            "MeterValuesSampledData": (False, ",".join(self.measurands)),
            "MeterValuesSampledDataMaxLength": (True, str(len(MEASURANDS))),
            "HeartbeatInterval": (False, f"{self._heartbeat_interval:g}"),
        }
        if self.supports_smart_charging:
            units = ",".join(RATE_UNIT_NAMES[u] for u in self.rate_units)
            config |= {
                "ChargingScheduleAllowedChargingRateUnit": (True, units),
                "ChargeProfileMaxStackLevel": (True, str(MAX_STACK_LEVEL)),
                "ChargingScheduleMaxPeriods": (True, str(MAX_PERIODS)),
                "MaxChargingProfilesInstalled": (True, "10"),
            }
        return config

    def _get_configuration(self, keys: list[str] | None) -> call_result.GetConfiguration:
        config = self._configuration()
        wanted = keys or list(config)
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": k, "readonly": config[k][0], "value": config[k][1]}
                for k in wanted
                if k in config
            ],
            unknown_key=[k for k in wanted if k not in config] or None,
        )

    def _change_configuration(self, key: str, value: str) -> str:
        config = self._configuration()
        if key not in config:
            return "NotSupported"
        if key not in WRITABLE_KEYS:
            return "Rejected"
        if key == "MeterValuesSampledData":
            wanted = tuple(m.strip() for m in value.split(",") if m.strip())
            if not wanted or any(m not in MEASURANDS for m in wanted):
                return "Rejected"
            self.measurands = wanted
            return "Accepted"
        try:
            seconds = int(value)
        except ValueError:
            return "Rejected"
        if seconds < 0:
            return "Rejected"
        if key == "MeterValueSampleInterval":
            self.meter_interval_s = float(seconds)
            self._meter_wakeup.set()
        else:
            self._heartbeat_interval = float(seconds)
            self._heartbeat_wakeup.set()
        return "Accepted"

    def _require_smart_charging(self) -> None:
        if not self.supports_smart_charging:
            raise OcppNotImplementedError(details={"cause": "SmartCharging is not supported"})

    def _set_charging_profile(self, connector_id: int, profile: dict[str, Any]) -> str:
        self._require_smart_charging()
        request = {"connectorId": connector_id, "csChargingProfiles": profile}
        request = plain_json(normalize_keys(request))
        self.received_profiles.append((time.monotonic(), request))
        self._notify()
        if self.reject_profiles:
            return "Rejected"
        purpose = request["csChargingProfiles"].get("chargingProfilePurpose")
        if purpose == TX_PROFILE and (self.transaction_id is None or connector_id != 1):
            return "Rejected"  # 1.6: a TxProfile needs a running transaction
        status = self.profiles.install(
            connector_id, profile, time.time(), transaction_id=self.transaction_id
        )
        self._record_target()
        return status

    def _clear_charging_profile(
        self,
        profile_id: int | None,
        connector_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> str:
        self._require_smart_charging()
        removed = self.profiles.clear(profile_id, connector_id, purpose, stack_level)
        self._record_target()
        return "Accepted" if removed else "Unknown"

    def _get_composite_schedule(
        self, connector_id: int, duration: int, unit: str | None
    ) -> call_result.GetCompositeSchedule:
        self._require_smart_charging()
        unit = unit or self.rate_units[0]
        if connector_id not in (0, 1) or unit not in RATE_UNIT_NAMES:
            return call_result.GetCompositeSchedule(status="Rejected")
        now = time.time()
        schedule = self.profiles.composite_schedule(
            connector_id,
            now,
            duration,
            unit=unit,
            voltage=self.voltage,
            phases=self._phases_used(),
            transaction_active=self.transaction_id is not None,
            transaction_start=self.transaction_start,
            hardware_limit_a=self.max_current_a,
        )
        if schedule is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=schedule["startSchedule"],
            charging_schedule=schedule,
        )
