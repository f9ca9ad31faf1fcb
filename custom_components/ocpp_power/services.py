"""Services: circuit limits for automations and demand response, and the live allocation."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import voluptuous as vol

from .const import DOMAIN

if TYPE_CHECKING:
    from .hub import OcppPowerHub

SERVICE_SET_CIRCUIT_LIMIT = "set_circuit_limit"
SERVICE_CLEAR_CIRCUIT_LIMIT = "clear_circuit_limit"
SERVICE_GET_ALLOCATION = "get_allocation"
ATTR_CIRCUIT = "circuit"
ATTR_CURRENT = "current"
ATTR_POWER = "power"
ATTR_DURATION = "duration"

SET_LIMIT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CIRCUIT): cv.string,
        vol.Optional(ATTR_CURRENT): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional(ATTR_POWER): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional(ATTR_DURATION): cv.positive_time_period,
    }
)
CLEAR_LIMIT_SCHEMA = vol.Schema({vol.Required(ATTR_CIRCUIT): cv.string})


def _hub(hass: HomeAssistant) -> OcppPowerHub:
    """Return the loaded hub."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            return entry.runtime_data
    raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")


def _circuit_id(hass: HomeAssistant, hub: OcppPowerHub, value: str) -> str:
    """Accept a circuit device id (from the UI) or a circuit id (from YAML)."""
    if value in hub.manager.circuits:
        return value
    if (device := dr.async_get(hass).async_get(value)) is not None:
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith("circuit_"):
                return identifier.removeprefix("circuit_")
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="circuit_not_found",
        translation_placeholders={"circuit": value},
    )


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the services of the integration."""

    async def set_circuit_limit(call: ServiceCall) -> None:
        hub = _hub(hass)
        duration: timedelta | None = call.data.get(ATTR_DURATION)
        await hub.manager.async_set_circuit_limit(
            _circuit_id(hass, hub, call.data[ATTR_CIRCUIT]),
            current_a=call.data.get(ATTR_CURRENT),
            power_kw=call.data.get(ATTR_POWER),
            duration=duration,
        )

    async def clear_circuit_limit(call: ServiceCall) -> None:
        hub = _hub(hass)
        await hub.manager.async_clear_circuit_limit(_circuit_id(hass, hub, call.data[ATTR_CIRCUIT]))

    async def get_allocation(call: ServiceCall) -> ServiceResponse:
        return _hub(hass).manager.allocation_report()

    hass.services.async_register(
        DOMAIN, SERVICE_SET_CIRCUIT_LIMIT, set_circuit_limit, schema=SET_LIMIT_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_CLEAR_CIRCUIT_LIMIT, clear_circuit_limit, schema=CLEAR_LIMIT_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_ALLOCATION,
        get_allocation,
        supports_response=SupportsResponse.ONLY,
    )
