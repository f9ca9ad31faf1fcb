"""Services (limits for automations, the live allocation) and diagnostics."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.ocpp_power.const import DOMAIN

from .helpers import DEFAULT_PASSWORD, charger_subentry, circuit_subentry, setup_hub

pytestmark = pytest.mark.usefixtures("socket_enabled")

SITE = [
    circuit_subentry("main", max_current=40),
    circuit_subentry("cap", kind="virtual", members=["cp1"], max_current=None, max_power_kw=7),
    charger_subentry("cp1", circuit="main", id_tags="SECRET-TAG"),
]


async def test_set_and_clear_limit_by_device(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, SITE)
    device = dr.async_get(hass).async_get_device({(DOMAIN, "circuit_main")})
    assert device is not None
    await hass.services.async_call(
        DOMAIN, "set_circuit_limit", {"circuit": device.id, "current": 25}, blocking=True
    )
    status = entry.runtime_data.manager.circuit_status("main")
    assert status.limit_a == 25
    assert status.overridden
    assert status.override_until is None  # no duration: until cleared
    await hass.services.async_call(
        DOMAIN, "clear_circuit_limit", {"circuit": device.id}, blocking=True
    )
    assert status.limit_a == 40
    assert not status.overridden
    await hass.config_entries.async_unload(entry.entry_id)


async def test_power_limit_on_virtual_circuit(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, SITE)
    await hass.services.async_call(
        DOMAIN, "set_circuit_limit", {"circuit": "cap", "power": 3.5}, blocking=True
    )
    assert entry.runtime_data.manager.circuit_status("cap").limit_power_w == 3500
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"circuit": "nowhere", "current": 10}, "circuit_not_found"),
        ({"circuit": "main"}, "limit_required"),
        ({"circuit": "main", "current": 41}, "limit_above_rating"),
        ({"circuit": "main", "power": 5}, "circuit_has_no_power_limit"),
        ({"circuit": "cap", "current": 5}, "circuit_has_no_current_limit"),
    ],
)
async def test_set_limit_errors(
    hass: HomeAssistant, data: dict[str, object], translation_key: str
) -> None:
    entry = await setup_hub(hass, SITE)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "set_circuit_limit", data, blocking=True)
    assert err.value.translation_key == translation_key
    # Nothing changed.
    assert not entry.runtime_data.manager.circuit_status("main").overridden
    await hass.config_entries.async_unload(entry.entry_id)


async def test_services_need_a_loaded_hub(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, SITE)
    await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, "get_allocation", {}, blocking=True, return_response=True
        )
    assert err.value.translation_key == "not_loaded"


async def test_get_allocation(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, SITE)
    response = await hass.services.async_call(
        DOMAIN, "get_allocation", {}, blocking=True, return_response=True
    )
    assert set(response["circuits"]) == {"main", "cap"}
    assert response["circuits"]["main"]["limit_a"] == 40
    assert response["chargers"]["cp1"]["reason"] == "offline"
    assert response["chargers"]["cp1"]["mode"] == "managed"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_diagnostics_redact_secrets(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    entry = await setup_hub(hass, SITE)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = str(diagnostics)
    assert DEFAULT_PASSWORD not in text
    assert "SECRET-TAG" not in text
    assert diagnostics["port"] == entry.runtime_data.port
    assert "cp1" in diagnostics["chargers"]
    assert diagnostics["allocation"]["circuits"]["main"]["limit_a"] == 40
    charger = next(s for s in diagnostics["entry"]["subentries"] if s["type"] == "charger")
    assert charger["data"]["password"] == "**REDACTED**"
    await hass.config_entries.async_unload(entry.entry_id)
