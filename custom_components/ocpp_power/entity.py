"""Base entity and platform setup helper for OCPP Power Manager chargers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .charge_point.base import ChargerConnection
from .charge_point.state import ChargerState
from .const import DOMAIN, SIGNAL_CHARGER_ADDED
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub


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
