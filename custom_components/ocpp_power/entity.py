"""Base entities and platform setup helpers for OCPP Power Manager chargers and circuits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .charge_point.base import ChargerConnection
from .charge_point.state import ChargerState
from .const import DOMAIN, SIGNAL_CHARGER_ADDED, SIGNAL_CIRCUIT_ADDED
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub
from .models import ChargerPowerStatus, CircuitConfig, CircuitStatus


@callback
def async_setup_charger_entities(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[OcppPowerHub, ChargerConfig], list[Entity]],
) -> None:
    """Add a platform's entities for every charger, now and when one is added later."""
    hub = entry.runtime_data

    @callback
    def _add(charger: ChargerConfig) -> None:
        async_add_entities(build(hub, charger), config_subentry_id=charger.subentry_id)

    for charger in hub.chargers.values():
        _add(charger)

    @callback
    def _charger_added(charger_id: str) -> None:
        if (charger := hub.chargers.get(charger_id)) is not None:
            _add(charger)

    entry.async_on_unload(
        async_dispatcher_connect(hass, SIGNAL_CHARGER_ADDED.format(entry.entry_id), _charger_added)
    )


class OcppPowerChargerEntity(Entity):
    """An entity of one charger; pushed by the hub's dispatcher signal."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    # Entities that keep working while the charger is offline set this.
    _always_available = False

    def __init__(
        self, hub: OcppPowerHub, charger: ChargerConfig, description: EntityDescription
    ) -> None:
        """Bind the entity to its charger and device."""
        self.hub = hub
        self.charger_id = charger.charger_id
        self._charger = charger
        self.entity_description = description
        self._attr_unique_id = f"{charger.charger_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, charger.charger_id)}, name=charger.name
        )

    @property
    def charger(self) -> ChargerConfig:
        """Return the charger's current settings (a subentry reconfigure replaces them)."""
        self._charger = self.hub.chargers.get(self.charger_id, self._charger)
        return self._charger

    @property
    def charger_state(self) -> ChargerState:
        """Return the charger's live state."""
        return self.hub.state(self.charger_id)

    @property
    def available(self) -> bool:
        """Return True while the charger is connected."""
        return self._always_available or self.charger_state.connected

    async def async_added_to_hass(self) -> None:
        """Follow the charger's state changes."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                self.hub.update_signal(self.charger_id),
                self.async_write_ha_state,
            )
        )

    def _connection(self) -> ChargerConnection:
        """Return the live connection, or raise when the charger is offline."""
        if (connection := self.hub.connection(self.charger_id)) is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="charger_offline",
                translation_placeholders={"name": self.charger.name},
            )
        return connection

    async def _async_command(
        self, command: str, send: Callable[[ChargerConnection], Awaitable[bool]]
    ) -> None:
        """Send one command to the charger; raise a translated error unless it is accepted."""
        connection = self._connection()
        try:
            accepted = await send(connection)
        except TimeoutError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_timeout",
                translation_placeholders={"name": self.charger.name, "command": command},
            ) from err
        if not accepted:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_rejected",
                translation_placeholders={"name": self.charger.name, "command": command},
            )


class OcppPowerChargerPowerEntity(OcppPowerChargerEntity):
    """A charger entity of the power manager (allocation, priority, mode).

    It follows the manager's passes as well as the charger, and stays available while
    the charger is offline: the setting holds, and "offline" is a reason of its own.
    """

    _always_available = True

    @property
    def power_status(self) -> ChargerPowerStatus:
        """Return the charger's live allocation."""
        return self.hub.manager.charger_status(self.charger_id)

    async def async_added_to_hass(self) -> None:
        """Also follow the charger's allocation."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                self.hub.manager.charger_signal(self.charger_id),
                self.async_write_ha_state,
            )
        )


# ---------------------------------------------------------------- circuits


def circuit_device_info(circuit: CircuitConfig) -> DeviceInfo:
    """Return the device of a circuit (the hub registers it with its parent)."""
    return DeviceInfo(identifiers={(DOMAIN, f"circuit_{circuit.circuit_id}")}, name=circuit.name)


@callback
def async_setup_circuit_entities(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    build: Callable[[OcppPowerHub, CircuitConfig], list[OcppPowerCircuitEntity]],
) -> None:
    """Keep a platform's circuit entities in line with the circuits, without a restart.

    Entities are added for every circuit now and when one is added later. A circuit
    edited live (a meter added or dropped, phases or limits changed) gains the entities
    it now needs and loses those that no longer apply.
    """
    hub = entry.runtime_data
    manager = hub.manager
    # circuit id -> (config the entities were built for, unique id -> entity)
    built: dict[str, tuple[CircuitConfig, dict[str, OcppPowerCircuitEntity]]] = {}

    @callback
    def _sync(circuit: CircuitConfig) -> None:
        _, current = built.get(circuit.circuit_id, (circuit, {}))
        wanted = {entity.unique_id: entity for entity in build(hub, circuit) if entity.unique_id}
        registry = er.async_get(hass)
        for unique_id in current.keys() - wanted.keys():
            entity = current[unique_id]
            if entity.registry_entry is not None:
                registry.async_remove(entity.entity_id)
            elif entity.hass is not None:
                hass.async_create_task(entity.async_remove())
        new = [entity for unique_id, entity in wanted.items() if unique_id not in current]
        built[circuit.circuit_id] = (
            circuit,
            {uid: current.get(uid, entity) for uid, entity in wanted.items()},
        )
        if new:
            async_add_entities(new, config_subentry_id=circuit.subentry_id)

    for circuit in manager.circuits.values():
        _sync(circuit)

    @callback
    def _circuit_added(circuit_id: str) -> None:
        # A circuit removed and added again has a new subentry: start afresh.
        built.pop(circuit_id, None)
        if (circuit := manager.circuits.get(circuit_id)) is not None:
            _sync(circuit)

    @callback
    def _circuits_changed() -> None:
        for circuit_id in built.keys() - manager.circuits.keys():
            # Removed: Home Assistant removes its entities with its subentry.
            del built[circuit_id]
        for circuit_id, circuit in manager.circuits.items():
            if circuit_id in built and built[circuit_id][0] != circuit:
                _sync(circuit)

    entry.async_on_unload(
        async_dispatcher_connect(hass, SIGNAL_CIRCUIT_ADDED.format(entry.entry_id), _circuit_added)
    )
    entry.async_on_unload(async_dispatcher_connect(hass, manager.update_signal, _circuits_changed))


class OcppPowerCircuitEntity(Entity):
    """An entity of one circuit; pushed after a pass that changed the circuit's figures."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, hub: OcppPowerHub, circuit: CircuitConfig, description: EntityDescription
    ) -> None:
        """Bind the entity to its circuit and device."""
        self.hub = hub
        self.circuit_id = circuit.circuit_id
        self._circuit = circuit
        self.entity_description = description
        self._attr_unique_id = f"circuit_{circuit.circuit_id}_{description.key}"
        self._attr_device_info = circuit_device_info(circuit)

    @property
    def circuit(self) -> CircuitConfig:
        """Return the circuit's current settings (a reconfigure replaces them)."""
        self._circuit = self.hub.manager.circuits.get(self.circuit_id, self._circuit)
        return self._circuit

    @property
    def status(self) -> CircuitStatus:
        """Return the circuit's live figures."""
        return self.hub.manager.circuit_status(self.circuit_id)

    @property
    def available(self) -> bool:
        """Return True while the circuit is configured."""
        return self.circuit_id in self.hub.manager.circuits

    async def async_added_to_hass(self) -> None:
        """Follow the circuit's live figures."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                self.hub.manager.circuit_signal(self.circuit_id),
                self.async_write_ha_state,
            )
        )
