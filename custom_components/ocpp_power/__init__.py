"""OCPP Power Manager: an OCPP central system with load management for EV chargers."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .hub import OcppPowerConfigEntry, OcppPowerHub
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the services (once, for every hub)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: OcppPowerConfigEntry) -> bool:
    """Start the central system and the charger entities."""
    hub = OcppPowerHub(hass, entry)
    await hub.async_start()
    entry.runtime_data = hub
    entry.async_on_unload(entry.add_update_listener(_async_update_listener))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: OcppPowerConfigEntry) -> bool:
    """Stop the entities, then close every charger connection and free the port."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_stop()
    return unloaded


async def _async_update_listener(hass: HomeAssistant, entry: OcppPowerConfigEntry) -> None:
    """Apply charger subentry changes live.

    Server settings (port, TLS, auth) change only through the reconfigure flow, which
    reloads the entry itself.
    """
    await entry.runtime_data.async_sync_subentries()
