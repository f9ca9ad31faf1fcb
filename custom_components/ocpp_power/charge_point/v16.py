"""OCPP 1.6J charge-point handler: messages in, version-neutral state and commands out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
import itertools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityType,
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    ConfigurationStatus,
    DataTransferStatus,
    RegistrationStatus,
    RemoteStartStopStatus,
    ResetStatus,
    ResetType,
    UnlockStatus,
)

from ..const import (
    DEFAULT_LEASE_S,
    HEARTBEAT_INTERVAL_S,
    METER_MEASURANDS,
    METER_SAMPLE_INTERVAL_S,
    NOMINAL_VOLTAGE,
    PROFILE_ID_DYNAMIC,
    PROFILE_ID_HARDWARE,
    PROFILE_ID_SAFE_DEFAULT,
    STACK_LEVEL_DYNAMIC,
    STACK_LEVEL_SAFE_DEFAULT,
)
from .base import ChargerConnection, ChargerHooks
from .state import ConnectorStatus, LimitPurpose

if TYPE_CHECKING:
    from ..central_system import WebSocketAdapter

_LOGGER = logging.getLogger(__name__)

RESPONSE_TIMEOUT_S = 15
# Start dynamic schedules slightly in the past so clock skew cannot delay them.
SCHEDULE_BACKDATE_S = 60
PHASES = ("L1", "L2", "L3")
CONFIG_KEYS = (
    "SupportedFeatureProfiles",
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleMaxPeriods",
    "NumberOfConnectors",
)

# Transaction ids must stay unique across Home Assistant restarts.
_transaction_ids = itertools.count(int(time.time()) % 1_000_000_000)

_STATUS_MAP = {
    "Available": ConnectorStatus.AVAILABLE,
    "Preparing": ConnectorStatus.PREPARING,
    "Charging": ConnectorStatus.CHARGING,
    "SuspendedEV": ConnectorStatus.SUSPENDED_EV,
    "SuspendedEVSE": ConnectorStatus.SUSPENDED_EVSE,
    "Finishing": ConnectorStatus.FINISHING,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}

_PURPOSE_PROFILE = {
    LimitPurpose.HARDWARE: (PROFILE_ID_HARDWARE, "ChargePointMaxProfile"),
    LimitPurpose.SAFE_DEFAULT: (PROFILE_ID_SAFE_DEFAULT, "TxDefaultProfile"),
    LimitPurpose.DYNAMIC: (PROFILE_ID_DYNAMIC, "TxDefaultProfile"),
}


def ocpp_time(moment: datetime) -> str:
    """Format a datetime the way OCPP wants it (UTC, Z suffix)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def round_down(value: float, step: float) -> float:
    """Round value down to a multiple of step (never up: a limit must not grow)."""
    return round(math.floor(value / step + 1e-9) * step, 3)


def _to_float(value: Any) -> float | None:
    """Return value as a float, or None when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class ChargePoint16(OcppChargePoint, ChargerConnection):
    """One OCPP 1.6J charger connected to the central system."""

    def __init__(self, charger_id: str, connection: WebSocketAdapter, hooks: ChargerHooks) -> None:
        """Bind the handler to its websocket and to the hub's state for this charger."""
        OcppChargePoint.__init__(
            self, charger_id, connection, response_timeout=RESPONSE_TIMEOUT_S, logger=_LOGGER
        )
        ChargerConnection.__init__(self)
        self._ws = connection
        self._hooks = hooks
        self.state = hooks.charger_state(charger_id)
        self.state.ocpp_version = "1.6"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.booted = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Run the receive loop until the websocket closes."""
        self.state.connected = True
        self.state.last_seen = datetime.now(UTC)
        self.notify()
        await OcppChargePoint.start(self)

    async def close(self) -> None:
        """Close the websocket and cancel this charger's background tasks."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._ws.close()
        self.state.connected = False
        self.notify()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run coro in a task owned by this connection (cancelled on close)."""
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, payload: Any) -> Any:
        """Send a call; return the result payload, or None on CallError or timeout."""
        if self._closed:
            return None
        try:
            return await self.call(payload)
        except TimeoutError:
            _LOGGER.warning("Charger %s did not answer %s in time", self.id, type(payload).__name__)
        except Exception as err:  # the library raises plain exceptions for bad payloads
            _LOGGER.warning("Charger %s: %s failed: %s", self.id, type(payload).__name__, err)
        return None

    def _touch(self) -> None:
        self.state.last_seen = datetime.now(UTC)

    # ------------------------------------------------------------------ from the charger

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> call_result.BootNotification:
        """Record who the charger is; accept it if the hub knows it."""
        self._touch()
        state = self.state
        state.vendor = charge_point_vendor
        state.model = charge_point_model
        state.serial = kwargs.get("charge_point_serial_number") or kwargs.get(
            "charge_box_serial_number"
        )
        state.firmware = kwargs.get("firmware_version")
        state.boot_time = datetime.now(UTC)
        accepted = self._hooks.boot_accepted(self)
        self.notify()
        return call_result.BootNotification(
            current_time=ocpp_time(datetime.now(UTC)),
            interval=HEARTBEAT_INTERVAL_S if accepted else 30,
            status=RegistrationStatus.accepted if accepted else RegistrationStatus.pending,
        )

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs: Any) -> None:
        """Configure an accepted charger without blocking the receive loop."""
        if self._hooks.boot_accepted(self):
            self._spawn(self._configure_after_boot())

    async def _configure_after_boot(self) -> None:
        """Read capabilities, set up metering, then let the hub install limits."""
        await self.read_capabilities()
        await self._configure_metering()
        self.booted = True
        self.notify()
        await self._hooks.async_charger_ready(self)

    async def read_capabilities(self) -> None:
        """Ask the charger what it supports (GetConfiguration)."""
        caps = self.state.capabilities
        result = await self._call(call.GetConfiguration(key=list(CONFIG_KEYS)))
        if result is None:
            return
        values = {
            item.get("key"): item.get("value")
            for item in (result.configuration_key or [])
            if isinstance(item, dict)
        }
        if profiles := values.get("SupportedFeatureProfiles"):
            caps.feature_profiles = {p.strip() for p in profiles.split(",") if p.strip()}
            caps.smart_charging = "SmartCharging" in caps.feature_profiles
        if units := values.get("ChargingScheduleAllowedChargingRateUnit"):
            parsed = set()
            for raw_unit in units.split(","):
                unit = raw_unit.strip().lower()
                if unit in ("current", "a"):
                    parsed.add("A")
                elif unit in ("power", "w"):
                    parsed.add("W")
            caps.rate_units = parsed or {"A"}
        if (level := _to_float(values.get("ChargeProfileMaxStackLevel"))) is not None:
            caps.max_stack_level = int(level)
        if (periods := _to_float(values.get("ChargingScheduleMaxPeriods"))) is not None:
            caps.max_periods = int(periods)
        if (count := _to_float(values.get("NumberOfConnectors"))) is not None:
            caps.number_of_connectors = max(1, int(count))

    async def _configure_metering(self) -> None:
        """Ask for the measurands load management needs; tolerate refusals."""
        await self._change_configuration("MeterValueSampleInterval", str(METER_SAMPLE_INTERVAL_S))
        measurands = list(METER_MEASURANDS)
        # Some chargers refuse the whole list when one measurand is unknown to them:
        # drop the optional ones until it is accepted.
        while measurands:
            if await self._change_configuration("MeterValuesSampledData", ",".join(measurands)):
                return
            if len(measurands) <= 2:
                return
            measurands.pop()

    async def _change_configuration(self, key: str, value: str) -> bool:
        result = await self._call(call.ChangeConfiguration(key=key, value=value))
        ok = result is not None and result.status in (
            ConfigurationStatus.accepted,
            ConfigurationStatus.reboot_required,
        )
        if not ok:
            _LOGGER.info("Charger %s did not accept %s=%s", self.id, key, value)
        return ok

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> call_result.Heartbeat:
        """Answer with the time."""
        self._touch()
        return call_result.Heartbeat(current_time=ocpp_time(datetime.now(UTC)))

    @on(Action.status_notification)
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> call_result.StatusNotification:
        """Track the status of the station (connector 0) and each connector."""
        self._touch()
        normalised = _STATUS_MAP.get(status, ConnectorStatus.UNKNOWN)
        if connector_id == 0:
            self.state.status = normalised
        else:
            conn = self.state.connector(connector_id)
            conn.status = normalised
            conn.error_code = None if error_code == "NoError" else error_code
            if self.state.capabilities.number_of_connectors == 1 and connector_id == 1:
                # A single-connector charger often reports only connector 1.
                self.state.status = normalised
        self.notify()
        return call_result.StatusNotification()

    @on(Action.meter_values)
    def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, Any]], **kwargs: Any
    ) -> call_result.MeterValues:
        """Turn sampled values into per-phase current, power, energy, offered current, SoC."""
        self._touch()
        self._apply_meter_values(connector_id, meter_value, kwargs.get("transaction_id"))
        self.notify()
        return call_result.MeterValues()

    def _apply_meter_values(
        self, connector_id: int, meter_values: list[dict[str, Any]], transaction_id: Any
    ) -> None:
        """Parse MeterValues (also the transactionData of StopTransaction) into the state."""
        state = self.state
        for meter_value in meter_values:
            currents: dict[int, float] = {}
            powers: dict[int | None, float] = {}
            for sample in meter_value.get("sampled_value", []):
                value = _to_float(sample.get("value"))
                if value is None:
                    continue
                measurand = sample.get("measurand", "Energy.Active.Import.Register")
                unit = sample.get("unit", "")
                phase = sample.get("phase")
                index = _phase_index(phase)
                if measurand == "Current.Import":
                    currents[index if index is not None else 0] = value
                elif measurand == "Power.Active.Import":
                    powers[index] = value * 1000 if unit == "kW" else value
                elif measurand == "Energy.Active.Import.Register" and phase is None:
                    state.energy_wh = value * 1000 if unit == "kWh" else value
                elif measurand == "Current.Offered" and index in (None, 0):
                    state.offered_current_a = value
                elif measurand == "SoC":
                    state.soc_percent = value
                elif measurand == "Voltage" and index is not None:
                    state.voltage_v[index] = value
            if currents:
                state.current_a = [currents.get(i) for i in range(3)]
            if None in powers:
                state.power_w = powers[None]
            elif powers:
                state.power_w = sum(powers.values())
        if connector_id > 0 and transaction_id is not None:
            conn = state.connector(connector_id)
            if conn.transaction_id is None:
                # A session that started before we (re)started: adopt it.
                conn.transaction_id = transaction_id
                conn.meter_start_wh = None
                conn.session_energy_wh = None
        if connector_id > 0 and state.energy_wh is not None:
            conn = state.connector(connector_id)
            if conn.transaction_id is not None and conn.meter_start_wh is not None:
                conn.session_energy_wh = max(0.0, state.energy_wh - conn.meter_start_wh)

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kwargs: Any) -> call_result.Authorize:
        """Check an id tag against the charger's allow list."""
        return call_result.Authorize(id_tag_info={"status": self._tag_status(id_tag)})

    def _tag_status(self, id_tag: str) -> AuthorizationStatus:
        allowed = self._hooks.id_tag_allowed(self.id, id_tag)
        return AuthorizationStatus.accepted if allowed else AuthorizationStatus.invalid

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> call_result.StartTransaction:
        """Open a session on a connector."""
        self._touch()
        status = self._tag_status(id_tag)
        transaction_id = next(_transaction_ids)
        if status is AuthorizationStatus.accepted:
            conn = self.state.connector(connector_id)
            conn.transaction_id = transaction_id
            conn.id_tag = id_tag
            conn.session_start = datetime.now(UTC)
            conn.meter_start_wh = float(meter_start)
            conn.session_energy_wh = 0.0
            self.notify()
            self._hooks.session_changed(self, connector_id, True)
        return call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info={"status": status}
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any
    ) -> call_result.StopTransaction:
        """Close a session; its energy stays as the last session's energy."""
        self._touch()
        for conn in self.state.connectors.values():
            if conn.transaction_id == transaction_id:
                if data := kwargs.get("transaction_data"):
                    self._apply_meter_values(conn.connector_id, data, transaction_id)
                if conn.meter_start_wh is not None:
                    conn.session_energy_wh = max(0.0, float(meter_stop) - conn.meter_start_wh)
                conn.transaction_id = None
                self.state.current_a = [None if c is None else 0.0 for c in self.state.current_a]
                self.state.power_w = 0.0
                self.notify()
                self._hooks.session_changed(self, conn.connector_id, False)
                break
        if id_tag := kwargs.get("id_tag"):
            return call_result.StopTransaction(id_tag_info={"status": self._tag_status(id_tag)})
        return call_result.StopTransaction()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> call_result.DataTransfer:
        """Answer vendor extensions politely; we know none."""
        _LOGGER.debug("Charger %s DataTransfer from vendor %s ignored", self.id, vendor_id)
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.firmware_status_notification)
    def on_firmware_status(
        self, status: str, **kwargs: Any
    ) -> call_result.FirmwareStatusNotification:
        """Acknowledge firmware progress."""
        return call_result.FirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(
        self, status: str, **kwargs: Any
    ) -> call_result.DiagnosticsStatusNotification:
        """Acknowledge diagnostics upload progress."""
        return call_result.DiagnosticsStatusNotification()

    # ------------------------------------------------------------------ commands

    def build_profile(
        self,
        purpose: LimitPurpose,
        current_a: float,
        *,
        phases: int,
        lease: timedelta | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Return the OCPP 1.6 charging profile that installs current_a for purpose."""
        profile_id, profile_purpose = _PURPOSE_PROFILE[purpose]
        caps = self.state.capabilities
        start = now - timedelta(seconds=SCHEDULE_BACKDATE_S)
        if "A" in caps.rate_units:
            unit, limit = "A", round_down(current_a, 0.1)
        else:
            unit, limit = "W", float(math.floor(current_a * NOMINAL_VOLTAGE * phases))
        schedule: dict[str, Any] = {
            "chargingRateUnit": unit,
            "startSchedule": ocpp_time(start),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit, "numberPhases": phases}],
        }
        stack_level = 0
        if purpose is LimitPurpose.DYNAMIC:
            stack_level = STACK_LEVEL_DYNAMIC
            if caps.max_stack_level is not None:
                stack_level = min(stack_level, caps.max_stack_level)
        elif purpose is LimitPurpose.SAFE_DEFAULT:
            stack_level = STACK_LEVEL_SAFE_DEFAULT
        profile: dict[str, Any] = {
            "chargingProfileId": profile_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": profile_purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": schedule,
        }
        if purpose is LimitPurpose.DYNAMIC:
            lease_s = int((lease or timedelta(seconds=DEFAULT_LEASE_S)).total_seconds())
            schedule["duration"] = lease_s + SCHEDULE_BACKDATE_S
            profile["validFrom"] = ocpp_time(start)
            profile["validTo"] = ocpp_time(now + timedelta(seconds=lease_s))
        return profile

    async def apply_limit(
        self,
        purpose: LimitPurpose,
        current_a: float | None,
        *,
        phases: int = 3,
        lease: timedelta | None = None,
    ) -> bool:
        """Install (or clear) the limit for purpose as a charging profile."""
        if not self.state.capabilities.smart_charging:
            return False
        profile_id, _ = _PURPOSE_PROFILE[purpose]
        if current_a is None:
            result = await self._call(call.ClearChargingProfile(id=profile_id))
            ok = result is not None and result.status in (
                ClearChargingProfileStatus.accepted,
                ClearChargingProfileStatus.unknown,  # nothing to clear is fine
            )
        else:
            profile = self.build_profile(
                purpose, current_a, phases=phases, lease=lease, now=datetime.now(UTC)
            )
            result = await self._call(
                call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile)
            )
            ok = result is not None and result.status == ChargingProfileStatus.accepted
            if result is not None and result.status == ChargingProfileStatus.not_supported:
                self.state.capabilities.smart_charging = False
        if ok:
            self.state.installed_limits_a[purpose] = current_a
            self.notify()
        else:
            _LOGGER.warning(
                "Charger %s did not accept the %s limit %s A", self.id, purpose, current_a
            )
        return ok

    async def _simple_command(
        self, payload: Any, accepted: tuple[str, ...], after_ok: Callable[[], None] | None = None
    ) -> bool:
        result = await self._call(payload)
        ok = result is not None and result.status in accepted
        if ok and after_ok is not None:
            after_ok()
            self.notify()
        return ok

    async def remote_start(self, connector_id: int = 1, id_tag: str = "ocpp_power") -> bool:
        """Ask the charger to start a session."""
        return await self._simple_command(
            call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector_id),
            (RemoteStartStopStatus.accepted,),
        )

    async def remote_stop(self) -> bool:
        """Ask the charger to stop the running session."""
        if (conn := self.state.active_transaction) is None:
            return False
        return await self._simple_command(
            call.RemoteStopTransaction(transaction_id=int(conn.transaction_id)),
            (RemoteStartStopStatus.accepted,),
        )

    async def set_availability(self, available: bool, connector_id: int = 0) -> bool:
        """Make the charger operative or inoperative."""

        def _record() -> None:
            self.state.available = available

        return await self._simple_command(
            call.ChangeAvailability(
                connector_id=connector_id,
                type=AvailabilityType.operative if available else AvailabilityType.inoperative,
            ),
            ("Accepted", "Scheduled"),
            _record,
        )

    async def reset(self, hard: bool = False) -> bool:
        """Reboot the charger."""
        return await self._simple_command(
            call.Reset(type=ResetType.hard if hard else ResetType.soft), (ResetStatus.accepted,)
        )

    async def unlock(self, connector_id: int = 1) -> bool:
        """Unlock the connector's cable."""
        return await self._simple_command(
            call.UnlockConnector(connector_id=connector_id), (UnlockStatus.unlocked,)
        )


def _phase_index(phase: str | None) -> int | None:
    """Map an OCPP phase ("L1", "L2-N", ...) to 0..2; None when not per phase."""
    if not phase:
        return None
    head = phase[:2]
    return PHASES.index(head) if head in PHASES else None
