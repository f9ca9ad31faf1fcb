"""Version-neutral state of one charger, filled by the OCPP 1.6 and 2.0.1 handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class ConnectorStatus(StrEnum):
    """Connector status, normalised across OCPP versions."""

    AVAILABLE = "available"
    PREPARING = "preparing"
    CHARGING = "charging"
    SUSPENDED_EV = "suspended_ev"
    SUSPENDED_EVSE = "suspended_evse"
    FINISHING = "finishing"
    RESERVED = "reserved"
    UNAVAILABLE = "unavailable"
    FAULTED = "faulted"
    OCCUPIED = "occupied"
    UNKNOWN = "unknown"


class LimitPurpose(StrEnum):
    """Why a limit is sent; each purpose maps to one charging profile (DESIGN.md)."""

    HARDWARE = "hardware"  # ChargePointMaxProfile, never expires
    SAFE_DEFAULT = "safe_default"  # TxDefaultProfile, low stack level, never expires
    DYNAMIC = "dynamic"  # TxDefaultProfile, higher stack level, leased


@dataclass(slots=True)
class Capabilities:
    """What a charger told us it can do (GetConfiguration at boot)."""

    feature_profiles: set[str] = field(default_factory=set)
    rate_units: set[str] = field(default_factory=lambda: {"A"})
    max_stack_level: int | None = None
    max_periods: int | None = None
    number_of_connectors: int = 1
    smart_charging: bool = True  # False once the charger rejects or lacks SmartCharging


@dataclass(slots=True)
class ConnectorState:
    """State of one connector (1.6) or EVSE (2.0.1)."""

    connector_id: int
    status: ConnectorStatus = ConnectorStatus.UNKNOWN
    error_code: str | None = None
    transaction_id: int | str | None = None
    id_tag: str | None = None
    session_start: datetime | None = None
    meter_start_wh: float | None = None
    session_energy_wh: float | None = None


@dataclass(slots=True)
class ChargerState:
    """Everything known about one charger, independent of its OCPP version."""

    charger_id: str
    ocpp_version: str = "1.6"
    connected: bool = False
    boot_time: datetime | None = None
    last_seen: datetime | None = None
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    status: ConnectorStatus = ConnectorStatus.UNKNOWN  # connector 0 / whole station
    connectors: dict[int, ConnectorState] = field(default_factory=dict)
    # Per phase in the charger's own phase order (its L1, L2, L3), as MeterValues report.
    current_a: list[float | None] = field(default_factory=lambda: [None, None, None])
    voltage_v: list[float | None] = field(default_factory=lambda: [None, None, None])
    power_w: float | None = None
    energy_wh: float | None = None  # lifetime register
    offered_current_a: float | None = None
    soc_percent: float | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    # Limits the charger accepted, by purpose, in amps per phase (None = cleared).
    installed_limits_a: dict[LimitPurpose, float | None] = field(default_factory=dict)
    available: bool = True

    def connector(self, connector_id: int) -> ConnectorState:
        """Return the connector, creating it on first use."""
        if (conn := self.connectors.get(connector_id)) is None:
            conn = self.connectors[connector_id] = ConnectorState(connector_id)
        return conn

    @property
    def active_transaction(self) -> ConnectorState | None:
        """Return the first connector with a running transaction."""
        for conn in sorted(self.connectors.values(), key=lambda c: c.connector_id):
            if conn.transaction_id is not None:
                return conn
        return None

    @property
    def session_energy_wh(self) -> float | None:
        """Energy of the running (or last) session in Wh."""
        if (conn := self.active_transaction) is not None:
            return conn.session_energy_wh
        energies = [c.session_energy_wh for c in self.connectors.values()]
        return next((e for e in energies if e is not None), None)

    @property
    def charging_status(self) -> ConnectorStatus:
        """Status of the main connector (1), or of the station if it has none."""
        if (conn := self.connectors.get(1)) is not None:
            return conn.status
        return self.status
