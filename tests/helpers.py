"""Helpers to set up the real component on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ocpp_power.const import DOMAIN

DEFAULT_PASSWORD = "charger-secret-1"


def charger_subentry(
    charger_id: str,
    *,
    name: str | None = None,
    password: str | None = DEFAULT_PASSWORD,
    phases: str = "l1_l2_l3",
    min_current: float = 6.0,
    max_current: float = 16.0,
    id_tags: str = "",
    circuit: str | None = None,
) -> ConfigSubentryData:
    """Return the subentry data of one configured charger."""
    return ConfigSubentryData(
        data={
            "charger_id": charger_id,
            "password": password,
            "phases": phases,
            "min_current": min_current,
            "max_current": max_current,
            "id_tags": id_tags,
        }
        | ({"circuit": circuit} if circuit else {}),
        subentry_type="charger",
        title=name or charger_id,
        unique_id=charger_id,
    )


async def setup_hub(
    hass: HomeAssistant,
    chargers: list[ConfigSubentryData] | None = None,
    **hub_data: Any,
) -> MockConfigEntry:
    """Set up the hub on 127.0.0.1 with an OS-chosen port; return its entry."""
    data = {
        "host": "127.0.0.1",
        "port": 0,
        "basic_auth": True,
        "unknown_chargers": "discover",
        # Chargers in tests react in a fraction of a second: raise almost at once.
        "hold_s": 0.3,
    } | hub_data
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OCPP Power Manager",
        data=data,
        subentries_data=chargers or [],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def ws_url(entry: MockConfigEntry, charger_id: str) -> str:
    """Return the websocket URL a charger uses to reach the hub."""
    return f"ws://127.0.0.1:{entry.runtime_data.port}/ocpp/{charger_id}"


def circuit_subentry(
    circuit_id: str,
    *,
    name: str | None = None,
    kind: str = "panel",
    parent: str | None = None,
    members: list[str] | None = None,
    max_current: float | None = 32.0,
    max_power_kw: float | None = None,
    phases: str = "l1_l2_l3",
    voltage: float = 230.0,
    safety_margin: float = 0.0,
    meter: str = "none",
    power_sensor: str | None = None,
    current_sensors: list[str] | None = None,
    meter_includes_chargers: bool = True,
) -> ConfigSubentryData:
    """Return the subentry data of one circuit (physical, or virtual with members)."""
    data: dict[str, Any] = {
        "circuit_id": circuit_id,
        "kind": kind,
        "phases": phases,
        "voltage": voltage,
        "safety_margin": safety_margin,
        "meter": meter,
        "meter_includes_chargers": meter_includes_chargers,
    }
    optional = {
        "parent": parent,
        "members": members,
        "max_current": max_current,
        "max_power_kw": max_power_kw,
        "power_sensor": power_sensor,
        "current_sensors": current_sensors,
    }
    data |= {key: value for key, value in optional.items() if value is not None}
    return ConfigSubentryData(
        data=data,
        subentry_type="circuit",
        title=name or circuit_id,
        unique_id=circuit_id,
    )
