"""Constants for OCPP Power Manager."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "ocpp_power"
MANUFACTURER_FALLBACK: Final = "Unknown"

# Hub entry data
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_SSL_CERTFILE: Final = "ssl_certfile"
CONF_SSL_KEYFILE: Final = "ssl_keyfile"
CONF_BASIC_AUTH: Final = "basic_auth"
CONF_UNKNOWN_CHARGERS: Final = "unknown_chargers"
UNKNOWN_CHARGERS_DISCOVER: Final = "discover"
UNKNOWN_CHARGERS_REJECT: Final = "reject"

DEFAULT_HOST: Final = "0.0.0.0"
DEFAULT_PORT: Final = 9000
MAX_FRAME_BYTES: Final = 64 * 1024

# Charger subentry data
SUBENTRY_CHARGER: Final = "charger"
CONF_CHARGER_ID: Final = "charger_id"
CONF_PASSWORD: Final = "password"
CONF_PHASES: Final = "phases"
CONF_MIN_CURRENT: Final = "min_current"
CONF_MAX_CURRENT: Final = "max_current"
CONF_ID_TAGS: Final = "id_tags"

# Phase wiring choices for a charger: panel phases its own L1, L2, L3 connect to.
PHASE_WIRINGS: Final[dict[str, tuple[str, ...]]] = {
    "l1": ("L1",),
    "l2": ("L2",),
    "l3": ("L3",),
    "l1_l2_l3": ("L1", "L2", "L3"),
    "l2_l3_l1": ("L2", "L3", "L1"),
    "l3_l1_l2": ("L3", "L1", "L2"),
}
DEFAULT_PHASE_WIRING: Final = "l1_l2_l3"
DEFAULT_MIN_CURRENT: Final = 6.0
DEFAULT_MAX_CURRENT: Final = 16.0
NOMINAL_VOLTAGE: Final = 230.0

# OCPP charging-profile layout (DESIGN.md "How limits reach a charger").
PROFILE_ID_HARDWARE: Final = 9001
PROFILE_ID_SAFE_DEFAULT: Final = 9002
PROFILE_ID_DYNAMIC: Final = 9003
STACK_LEVEL_SAFE_DEFAULT: Final = 0
STACK_LEVEL_DYNAMIC: Final = 1
DEFAULT_LEASE_S: Final = 600

# Metering configuration asked of chargers at boot.
METER_SAMPLE_INTERVAL_S: Final = 10
HEARTBEAT_INTERVAL_S: Final = 60
METER_MEASURANDS: Final = (
    "Current.Import",
    "Current.Offered",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
    "Voltage",
    "SoC",
)

# Dispatcher signals; format with the config entry id (and charger id).
SIGNAL_CHARGER_UPDATE: Final = "ocpp_power_charger_update_{}_{}"
SIGNAL_CHARGER_ADDED: Final = "ocpp_power_charger_added_{}"

# Circuit subentry data
SUBENTRY_CIRCUIT: Final = "circuit"
CONF_CIRCUIT: Final = "circuit"  # in a charger subentry: its physical circuit
CONF_CIRCUIT_ID: Final = "circuit_id"
CONF_KIND: Final = "kind"
CONF_PARENT: Final = "parent"
CONF_MEMBERS: Final = "members"
CONF_MAX_POWER_KW: Final = "max_power_kw"
CONF_VOLTAGE: Final = "voltage"
CONF_SAFETY_MARGIN: Final = "safety_margin"
CONF_METER: Final = "meter"
CONF_POWER_SENSOR: Final = "power_sensor"
CONF_CURRENT_SENSORS: Final = "current_sensors"
CONF_METER_INCLUDES_CHARGERS: Final = "meter_includes_chargers"
CIRCUIT_KINDS: Final = ("site", "transformer", "panel", "sub_panel", "virtual")
CIRCUIT_KIND_VIRTUAL: Final = "virtual"
METER_NONE: Final = "none"
METER_POWER: Final = "power"
METER_CURRENT: Final = "current"
DEFAULT_SAFETY_MARGIN: Final = 1.0

# Power manager
SIGNAL_POWER_UPDATE: Final = "ocpp_power_power_update_{}"  # after every pass
# Sent after a pass only for a charger or circuit whose live figures changed.
SIGNAL_CHARGER_POWER_UPDATE: Final = "ocpp_power_charger_power_{}_{}"
SIGNAL_CIRCUIT_POWER_UPDATE: Final = "ocpp_power_circuit_power_{}_{}"
SIGNAL_CIRCUIT_ADDED: Final = "ocpp_power_circuit_added_{}"
EVENT_SESSION_STARTED: Final = "ocpp_power_session_started"
EVENT_SESSION_STOPPED: Final = "ocpp_power_session_stopped"
EVENT_OVERLOAD: Final = "ocpp_power_overload"
# Advanced hub settings (entry data; defaults suit real chargers).
CONF_LEASE_S: Final = "lease_s"  # how long a dynamic limit holds without renewal
CONF_ROTATION_PERIOD_S: Final = "rotation_period_s"  # turn length of paused cars
CONF_MIN_ON_TIME_S: Final = "min_on_time_s"  # shortest charging turn (spares contactors)
CONF_HOLD_S: Final = "hold_s"  # a raise waits this long so that cuts take effect first
DEFAULT_ROTATION_S: Final = 900.0
DEFAULT_HOLD_S: Final = 15.0
DEFAULT_MIN_ON_TIME_S: Final = 300.0
METER_STALE_S: Final = 60.0
