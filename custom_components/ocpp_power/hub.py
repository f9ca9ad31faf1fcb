"""The hub: one OCPP central system, its configured chargers and their live state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import hmac
import logging
import ssl
from typing import Any

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr, discovery_flow
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.storage import Store

from .central_system import Admission, CentralSystem, ServerConfig
from .charge_point.base import ChargerConnection
from .charge_point.state import ChargerState, LimitPurpose
from .const import (
    CONF_BASIC_AUTH,
    CONF_CHARGER_ID,
    CONF_CIRCUIT,
    CONF_HOST,
    CONF_ID_TAGS,
    CONF_MAX_CURRENT,
    CONF_MIN_CURRENT,
    CONF_PASSWORD,
    CONF_PHASES,
    CONF_PORT,
    CONF_SSL_CERTFILE,
    CONF_SSL_KEYFILE,
    CONF_UNKNOWN_CHARGERS,
    DEFAULT_HOST,
    DEFAULT_MAX_CURRENT,
    DEFAULT_MIN_CURRENT,
    DEFAULT_PHASE_WIRING,
    DEFAULT_PORT,
    DOMAIN,
    EVENT_SESSION_STARTED,
    EVENT_SESSION_STOPPED,
    PHASE_WIRINGS,
    SIGNAL_CHARGER_ADDED,
    SIGNAL_CHARGER_UPDATE,
    SIGNAL_CIRCUIT_ADDED,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    UNKNOWN_CHARGERS_DISCOVER,
)
from .manager import PowerManager
from .models import CircuitConfig

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1

type OcppPowerConfigEntry = ConfigEntry[OcppPowerHub]


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    """A charger as the user configured it (one charger subentry)."""

    subentry_id: str
    charger_id: str
    name: str
    password: str | None
    phases: tuple[str, ...]
    min_current: float
    max_current: float
    id_tags: tuple[str, ...]
    circuit: str | None = None  # the physical circuit it is wired to

    @classmethod
    def from_subentry(cls, subentry_id: str, title: str, data: Mapping[str, Any]) -> ChargerConfig:
        """Build from a subentry's data."""
        tags = data.get(CONF_ID_TAGS) or ()
        if isinstance(tags, str):
            tags = [t for t in (part.strip() for part in tags.split(",")) if t]
        return cls(
            subentry_id=subentry_id,
            charger_id=data[CONF_CHARGER_ID],
            name=title or data[CONF_CHARGER_ID],
            password=data.get(CONF_PASSWORD) or None,
            phases=PHASE_WIRINGS[data.get(CONF_PHASES, DEFAULT_PHASE_WIRING)],
            min_current=float(data.get(CONF_MIN_CURRENT, DEFAULT_MIN_CURRENT)),
            max_current=float(data.get(CONF_MAX_CURRENT, DEFAULT_MAX_CURRENT)),
            id_tags=tuple(tags),
            circuit=data.get(CONF_CIRCUIT) or None,
        )


def charger_configs(entry: ConfigEntry) -> dict[str, ChargerConfig]:
    """Return the configured chargers of a hub entry by charger id."""
    configs = {}
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type == SUBENTRY_CHARGER:
            config = ChargerConfig.from_subentry(subentry_id, subentry.title, subentry.data)
            configs[config.charger_id] = config
    return configs


def circuit_configs(entry: ConfigEntry) -> dict[str, CircuitConfig]:
    """Return the configured circuits of a hub entry by circuit id, parents first."""
    configs = {}
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type == SUBENTRY_CIRCUIT:
            config = CircuitConfig.from_subentry(subentry_id, subentry.title, subentry.data)
            configs[config.circuit_id] = config
    ordered: dict[str, CircuitConfig] = {}

    def visit(circuit_id: str, path: tuple[str, ...]) -> None:
        config = configs[circuit_id]
        if circuit_id in ordered or circuit_id in path:
            return
        if config.parent in configs:
            visit(config.parent, (*path, circuit_id))
        ordered[circuit_id] = config

    for circuit_id in sorted(configs):
        visit(circuit_id, ())
    return ordered


def circuit_device_id(circuit_id: str) -> tuple[str, str]:
    """Return the device-registry identifier of a circuit."""
    return (DOMAIN, f"circuit_{circuit_id}")


def _build_ssl_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """Load the TLS certificate (blocking; run in the executor)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


class OcppPowerHub:
    """Owns the central system and is the single source of charger state for entities."""

    def __init__(self, hass: HomeAssistant, entry: OcppPowerConfigEntry) -> None:
        """Set up bookkeeping; async_start() opens the port."""
        self.hass = hass
        self.entry = entry
        self.server_data = dict(entry.data)
        self.chargers: dict[str, ChargerConfig] = charger_configs(entry)
        self._states: dict[str, ChargerState] = {
            charger_id: ChargerState(charger_id) for charger_id in self.chargers
        }
        self._listener_removers: dict[ChargerConnection, Callable[[], None]] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}"
        )
        self._hardware_limits: dict[str, float] = {}
        self.central_system: CentralSystem | None = None
        self.manager = PowerManager(hass, self)

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """Return the port the central system listens on."""
        return self.central_system.port if self.central_system else self.server_data[CONF_PORT]

    async def async_start(self) -> None:
        """Load stored limits, register devices and open the OCPP port."""
        stored = await self._store.async_load() or {}
        self._hardware_limits = {
            charger_id: float(value)
            for charger_id, value in stored.get("hardware_limits", {}).items()
        }
        circuits = circuit_configs(self.entry)
        for circuit in circuits.values():
            self._register_circuit_device(circuit)
        for config in self.chargers.values():
            self._register_device(config)
        await self.manager.async_start(circuits)
        ssl_context = None
        certfile = self.server_data.get(CONF_SSL_CERTFILE)
        keyfile = self.server_data.get(CONF_SSL_KEYFILE)
        if certfile and keyfile:
            try:
                ssl_context = await self.hass.async_add_executor_job(
                    _build_ssl_context, certfile, keyfile
                )
            except (OSError, ssl.SSLError) as err:
                raise ConfigEntryNotReady(
                    translation_domain=DOMAIN,
                    translation_key="tls_error",
                    translation_placeholders={"error": str(err)},
                ) from err
        server_config = ServerConfig(
            host=self.server_data.get(CONF_HOST, DEFAULT_HOST),
            port=self.server_data.get(CONF_PORT, DEFAULT_PORT),
            ssl_context=ssl_context,
        )
        self.central_system = CentralSystem(server_config, self)
        try:
            await self.central_system.start()
        except OSError as err:
            await self.manager.async_stop()
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key="port_unavailable",
                translation_placeholders={"port": str(server_config.port), "error": str(err)},
            ) from err

    async def async_stop(self) -> None:
        """Close every charger connection and free the port."""
        await self._store.async_save(self._data_to_store())
        await self.manager.async_stop()
        if self.central_system is not None:
            await self.central_system.stop()
        for remove in self._listener_removers.values():
            remove()
        self._listener_removers.clear()

    async def async_sync_subentries(self) -> None:
        """Apply added, changed and removed subentries without a restart."""
        circuits = circuit_configs(self.entry)
        added_circuits = circuits.keys() - self.manager.circuits.keys()
        for circuit in circuits.values():
            self._register_circuit_device(circuit)
        await self._async_sync_chargers()
        self.manager.set_circuits(circuits)
        for circuit_id in added_circuits:
            async_dispatcher_send(
                self.hass, SIGNAL_CIRCUIT_ADDED.format(self.entry.entry_id), circuit_id
            )

    async def _async_sync_chargers(self) -> None:
        """Apply added, changed and removed charger subentries."""
        new_configs = charger_configs(self.entry)
        connections = self.central_system.connections if self.central_system else {}
        for charger_id in self.chargers.keys() - new_configs.keys():
            self._states.pop(charger_id, None)
            self._hardware_limits.pop(charger_id, None)
            if (conn := connections.get(charger_id)) is not None:
                await conn.close()
        added = new_configs.keys() - self.chargers.keys()
        changed = {
            charger_id
            for charger_id in new_configs.keys() & self.chargers.keys()
            if new_configs[charger_id] != self.chargers[charger_id]
        }
        old_configs, self.chargers = self.chargers, new_configs
        for charger_id in changed:
            self._register_device(new_configs[charger_id])
            self._notify(charger_id)
            old_cap, new_cap = (
                old_configs[charger_id].max_current,
                new_configs[charger_id].max_current,
            )
            if (
                old_cap != new_cap
                and charger_id not in self._hardware_limits
                and (conn := self.connection(charger_id)) is not None
            ):
                await self._install_hardware_limit(conn)
        for charger_id in added:
            config = new_configs[charger_id]
            # A charger that waited as "discovered" keeps its state (boot info).
            self._states.setdefault(charger_id, ChargerState(charger_id))
            self._register_device(config)
            async_dispatcher_send(
                self.hass, SIGNAL_CHARGER_ADDED.format(self.entry.entry_id), charger_id
            )
            if (conn := connections.get(charger_id)) is not None:
                # It was let in pending; make it reconnect and authenticate as a known charger.
                await conn.close()
        self._save()

    # ------------------------------------------------------------------ entity API

    def state(self, charger_id: str) -> ChargerState:
        """Return the live state of a configured charger."""
        return self._states[charger_id]

    def connection(self, charger_id: str) -> ChargerConnection | None:
        """Return the charger's live connection, or None when offline."""
        if self.central_system is None:
            return None
        conn = self.central_system.connections.get(charger_id)
        return conn if conn is not None and conn.state.connected else None

    def update_signal(self, charger_id: str) -> str:
        """Return the dispatcher signal sent on every change of a charger."""
        return SIGNAL_CHARGER_UPDATE.format(self.entry.entry_id, charger_id)

    def hardware_limit(self, charger_id: str) -> float | None:
        """Return the hardware cap of a charger in A: set on the number, else its max current."""
        if (limit := self._hardware_limits.get(charger_id)) is not None:
            return limit
        config = self.chargers.get(charger_id)
        return config.max_current if config else None

    async def async_set_hardware_limit(self, charger_id: str, current_a: float) -> None:
        """Store the hardware cap and install it on the charger now if it is online."""
        self._hardware_limits[charger_id] = current_a
        self._save()
        self._notify(charger_id)
        if (conn := self.connection(charger_id)) is not None:
            await self._install_hardware_limit(conn)

    async def _install_hardware_limit(self, conn: ChargerConnection) -> bool:
        """Send the fixed cap as ChargePointMaxProfile: it holds even when HA is down."""
        limit = self.hardware_limit(conn.state.charger_id)
        if limit is None:
            return True
        config = self.chargers.get(conn.state.charger_id)
        phases = len(config.phases) if config else 3
        return await conn.apply_limit(LimitPurpose.HARDWARE, limit, phases=phases)

    # ------------------------------------------------------------------ central-system hooks

    def admit(self, charger_id: str, password: str | None) -> Admission:
        """Decide whether a charger may open a connection."""
        config = self.chargers.get(charger_id)
        if config is None:
            if self.server_data.get(CONF_UNKNOWN_CHARGERS) == UNKNOWN_CHARGERS_DISCOVER:
                return Admission.DISCOVER
            return Admission.UNKNOWN
        if not self.server_data.get(CONF_BASIC_AUTH, True):
            return Admission.ACCEPT
        if config.password is None or password is None:
            return Admission.BAD_CREDENTIALS
        if hmac.compare_digest(password.encode(), config.password.encode()):
            return Admission.ACCEPT
        return Admission.BAD_CREDENTIALS

    def charger_state(self, charger_id: str) -> ChargerState:
        """Return the state object for a connecting charger (a scratch one if unknown)."""
        if (state := self._states.get(charger_id)) is None:
            state = ChargerState(charger_id)
            if charger_id in self.chargers:
                self._states[charger_id] = state
        return state

    @callback
    def connected(self, connection: ChargerConnection) -> None:
        """Start forwarding a new connection's changes to its entities."""
        charger_id = connection.state.charger_id
        self._listener_removers[connection] = connection.add_listener(
            lambda: self._notify(charger_id)
        )

    @callback
    def disconnected(self, connection: ChargerConnection) -> None:
        """Stop forwarding; entities turn unavailable unless a newer connection exists."""
        if (remove := self._listener_removers.pop(connection, None)) is not None:
            remove()
        self._notify(connection.state.charger_id)

    def boot_accepted(self, connection: ChargerConnection) -> bool:
        """Accept known chargers; hold unknown ones pending and offer them for adding."""
        charger_id = connection.state.charger_id
        if charger_id in self.chargers:
            self._update_device_info(connection.state)
            return True
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={
                "charger_id": charger_id,
                "vendor": connection.state.vendor or "",
                "model": connection.state.model or "",
            },
        )
        return False

    def id_tag_allowed(self, charger_id: str, id_tag: str) -> bool:
        """Accept any tag when the allow list is empty."""
        config = self.chargers.get(charger_id)
        return config is not None and (not config.id_tags or id_tag in config.id_tags)

    async def async_charger_ready(self, connection: ChargerConnection) -> None:
        """Install the hardware cap, then let the manager install the managed limits."""
        await self._install_hardware_limit(connection)
        if connection.state.charger_id in self.chargers:
            await self.manager.async_charger_ready(connection)

    @callback
    def session_changed(
        self, connection: ChargerConnection, connector_id: int, started: bool
    ) -> None:
        """Fire a Home Assistant event for automations."""
        state = connection.state
        conn = state.connector(connector_id)
        self.hass.bus.async_fire(
            EVENT_SESSION_STARTED if started else EVENT_SESSION_STOPPED,
            {
                "charger_id": state.charger_id,
                "connector_id": connector_id,
                "transaction_id": conn.transaction_id,
                "session_energy_wh": conn.session_energy_wh,
            },
        )

    # ------------------------------------------------------------------ helpers

    @callback
    def _notify(self, charger_id: str) -> None:
        """Tell the charger's entities and the power manager that it changed."""
        async_dispatcher_send(self.hass, self.update_signal(charger_id))
        self.manager.charger_updated(charger_id)

    def _data_to_store(self) -> dict[str, Any]:
        return {"hardware_limits": dict(self._hardware_limits)}

    @callback
    def _save(self) -> None:
        self._store.async_delay_save(self._data_to_store, 1)

    @callback
    def _register_device(self, config: ChargerConfig) -> None:
        """Create the charger's device, or rename it after a reconfigure."""
        state = self._states.get(config.charger_id)
        registry = dr.async_get(self.hass)
        via = circuit_device_id(config.circuit) if config.circuit else None
        if via is not None and registry.async_get_device({via}) is None:
            via = None
        device = registry.async_get_or_create(
            config_entry_id=self.entry.entry_id,
            config_subentry_id=config.subentry_id,
            identifiers={(DOMAIN, config.charger_id)},
            name=config.name,
            manufacturer=state.vendor if state else None,
            model=state.model if state else None,
            via_device=via,
        )
        self._align_device(registry, device, config.name, via)

    @callback
    def _register_circuit_device(self, config: CircuitConfig) -> None:
        """Create a circuit's device under its parent, or update it after a reconfigure."""
        registry = dr.async_get(self.hass)
        via = circuit_device_id(config.parent) if config.parent else None
        if via is not None and registry.async_get_device({via}) is None:
            via = None
        device = registry.async_get_or_create(
            config_entry_id=self.entry.entry_id,
            config_subentry_id=config.subentry_id,
            identifiers={circuit_device_id(config.circuit_id)},
            name=config.name,
            manufacturer="OCPP Power Manager",
            model="Virtual circuit" if config.is_virtual else config.kind.replace("_", "-").title(),
            via_device=via,
        )
        self._align_device(registry, device, config.name, via)

    @staticmethod
    def _align_device(
        registry: dr.DeviceRegistry,
        device: dr.DeviceEntry,
        name: str,
        via: tuple[str, str] | None,
    ) -> None:
        """Apply a changed name or parent to an existing device."""
        via_id = None
        if via is not None and (parent := registry.async_get_device({via})) is not None:
            via_id = parent.id
        if device.name != name or device.via_device_id != via_id:
            registry.async_update_device(device.id, name=name, via_device_id=via_id)

    @callback
    def _update_device_info(self, state: ChargerState) -> None:
        registry = dr.async_get(self.hass)
        if (device := registry.async_get_device({(DOMAIN, state.charger_id)})) is None:
            return
        registry.async_update_device(
            device.id,
            manufacturer=state.vendor,
            model=state.model,
            serial_number=state.serial,
            sw_version=state.firmware,
        )
