"""End-to-end tests of the power-management entities: circuits, allocation, priority, mode.

Real Home Assistant, the real hub and power manager; meters are plain sensor states.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import ConfigSubentry, ConfigSubentryData
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_ENTITY_ID,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ocpp_power.const import DOMAIN, SUBENTRY_CIRCUIT
from custom_components.ocpp_power.models import ChargeMode, LimitReason
from simulator.charger import SimCharger
from simulator.ev import EV

from .helpers import DEFAULT_PASSWORD, charger_subentry, setup_hub, ws_url

TIMEOUT = 10.0
SITE_SENSORS = ["sensor.site_l1", "sensor.site_l2", "sensor.site_l3"]

# unique-id key -> platform of the entities a fully featured circuit gets.
CIRCUIT_KEYS = {
    "measured_current_l1": "sensor",
    "measured_current_l2": "sensor",
    "measured_current_l3": "sensor",
    "power": "sensor",
    "ev_load": "sensor",
    "ev_power": "sensor",
    "non_ev_load": "sensor",
    "allocated_current": "sensor",
    "headroom": "sensor",
    "utilisation": "sensor",
    "limit": "number",
    "overload": "binary_sensor",
    "meter_stale": "binary_sensor",
}


def circuit(
    circuit_id: str,
    name: str,
    *,
    kind: str = "panel",
    parent: str | None = None,
    members: list[str] | None = None,
    max_current: float | None = 32.0,
    max_power_kw: float | None = None,
    phases: str = "l1_l2_l3",
    safety_margin: float = 0.0,
    meter: str = "none",
    power_sensor: str | None = None,
    current_sensors: list[str] | None = None,
    meter_includes_chargers: bool = True,
) -> ConfigSubentryData:
    """Return a circuit subentry with the data the config flow stores."""
    return ConfigSubentryData(
        data={
            "circuit_id": circuit_id,
            "kind": kind,
            "parent": parent,
            "members": members or [],
            "max_current": max_current,
            "max_power_kw": max_power_kw,
            "phases": phases,
            "voltage": 230.0,
            "safety_margin": safety_margin,
            "meter": meter,
            "power_sensor": power_sensor,
            "current_sensors": current_sensors or [],
            "meter_includes_chargers": meter_includes_chargers,
        },
        subentry_type=SUBENTRY_CIRCUIT,
        title=name,
        unique_id=circuit_id,
    )


def _meter(hass: HomeAssistant, amps: tuple[float, float, float] | str) -> None:
    """Set the site's three current sensors (or all to one state such as unavailable)."""
    values = (amps,) * 3 if isinstance(amps, str) else amps
    for entity_id, value in zip(SITE_SENSORS, values, strict=True):
        hass.states.async_set(entity_id, str(value), {"unit_of_measurement": "A"})


@pytest.fixture(autouse=True)
def fast_metering() -> Generator[None]:
    """Have the hub ask chargers for a meter sample every second."""
    with patch("custom_components.ocpp_power.charge_point.v16.METER_SAMPLE_INTERVAL_S", 1):
        yield


@pytest.fixture
async def hub(hass: HomeAssistant, socket_enabled: None) -> AsyncGenerator[MockConfigEntry]:
    """A site (metered per phase) feeding a garage panel with charger Wallbox (CP1).

    Also a 1-phase shed without meter, a virtual power cap over the wallbox, and an
    unmanaged charger Visitor (CP2) on no circuit.
    """
    _meter(hass, (10.0, 12.0, 8.0))
    entry = await setup_hub(
        hass,
        [
            circuit(
                "site",
                "Site",
                kind="site",
                max_current=63,
                safety_margin=1.0,
                meter="current",
                current_sensors=SITE_SENSORS,
            ),
            circuit("garage", "Garage", parent="site", max_current=25),
            circuit("shed", "Shed", kind="sub_panel", parent="site", phases="l2", max_current=16),
            circuit(
                "fleet",
                "Fleet cap",
                kind="virtual",
                members=["CP1"],
                max_current=None,
                max_power_kw=11,
            ),
            charger_subentry("CP1", name="Wallbox", circuit="garage"),
            charger_subentry("CP2", name="Visitor"),
        ],
    )
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def sims() -> AsyncGenerator[list[SimCharger]]:
    """Simulated chargers a test starts; all stopped at the end."""
    started: list[SimCharger] = []
    yield started
    for sim in started:
        await sim.stop()


def _eid(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, f"no {platform} entity {unique_id}"
    return entity_id


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state


def _float(hass: HomeAssistant, entity_id: str) -> float | None:
    try:
        return float(_state(hass, entity_id) or "")
    except ValueError:
        return None


def _attrs(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return dict(state.attributes)


async def _until(hass: HomeAssistant, predicate: Callable[[], bool], what: str) -> None:
    """Let Home Assistant (and the manager's passes) run until predicate() holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        await hass.async_block_till_done()
        if predicate():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _call(hass: HomeAssistant, domain: str, service: str, entity_id: str, **data: Any):
    await hass.services.async_call(
        domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
    )


def _circuit_keys(hass: HomeAssistant, entry: MockConfigEntry, circuit_id: str) -> dict[str, Any]:
    """Return key -> registry entry of a circuit's entities."""
    prefix = f"circuit_{circuit_id}_"
    return {
        e.unique_id.removeprefix(prefix): e
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.unique_id.startswith(prefix)
    }


def _subentry_id(entry: MockConfigEntry, unique_id: str) -> str:
    return next(s.subentry_id for s in entry.subentries.values() if s.unique_id == unique_id)


# ---------------------------------------------------------------- registry and devices


async def test_circuit_entities_registered(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    site = _circuit_keys(hass, hub, "site")
    assert {key: e.domain for key, e in site.items()} == CIRCUIT_KEYS
    for key, entry in site.items():
        assert entry.config_subentry_id == _subentry_id(hub, "site"), key
        assert entry.disabled_by is None, key
        assert entry.has_entity_name
    assert site["meter_stale"].entity_category is EntityCategory.DIAGNOSTIC
    assert site["overload"].entity_category is None
    assert site["limit"].entity_category is None

    # No meter: no measured values, no non-EV load, no staleness.
    assert set(_circuit_keys(hass, hub, "garage")) == {
        "ev_load",
        "ev_power",
        "allocated_current",
        "headroom",
        "utilisation",
        "limit",
        "overload",
    }
    # A power cap: a power limit instead of a current limit, no headroom in A.
    assert set(_circuit_keys(hass, hub, "fleet")) == {
        "ev_load",
        "ev_power",
        "allocated_current",
        "utilisation",
        "power_limit",
        "overload",
    }

    # Translated names under the device name.
    assert _eid(hass, "sensor", "circuit_site_measured_current_l1") == "sensor.site_current_l1"
    assert _eid(hass, "sensor", "circuit_site_power") == "sensor.site_power"
    assert _eid(hass, "sensor", "circuit_site_non_ev_load") == "sensor.site_non_ev_load"
    assert _eid(hass, "sensor", "circuit_garage_ev_load") == "sensor.garage_ev_load"
    assert _eid(hass, "sensor", "circuit_garage_allocated_current") == (
        "sensor.garage_allocated_current"
    )
    assert _eid(hass, "sensor", "circuit_garage_utilisation") == "sensor.garage_utilisation"
    assert _eid(hass, "number", "circuit_garage_limit") == "number.garage_current_limit"
    assert _eid(hass, "number", "circuit_fleet_power_limit") == "number.fleet_cap_power_limit"
    assert _eid(hass, "binary_sensor", "circuit_site_overload") == "binary_sensor.site_overload"
    assert _eid(hass, "binary_sensor", "circuit_site_meter_stale") == (
        "binary_sensor.site_meter_stale"
    )


async def test_single_phase_circuit(hass: HomeAssistant, socket_enabled: None) -> None:
    hass.states.async_set("sensor.shed_l2", "3.5", {"unit_of_measurement": "A"})
    entry = await setup_hub(
        hass,
        [
            circuit(
                "shed",
                "Shed",
                phases="l2",
                max_current=16,
                meter="current",
                current_sensors=["sensor.shed_l2"],
            )
        ],
    )
    keys = set(_circuit_keys(hass, entry, "shed"))
    assert "measured_current_l2" in keys
    assert not keys & {"measured_current_l1", "measured_current_l3"}
    await _until(hass, lambda: _float(hass, "sensor.shed_current_l2") == 3.5, "shed current")
    assert _float(hass, "sensor.shed_power") == pytest.approx(3.5 * 230)
    assert _float(hass, "sensor.shed_non_ev_load") == pytest.approx(3.5)
    # Per-phase attributes list only the phase the circuit carries.
    assert _attrs(hass, "sensor.shed_non_ev_load")["l2"] == pytest.approx(3.5)
    assert "l1" not in _attrs(hass, "sensor.shed_non_ev_load")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_device_hierarchy(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    registry = dr.async_get(hass)
    site = registry.async_get_device({(DOMAIN, "circuit_site")})
    garage = registry.async_get_device({(DOMAIN, "circuit_garage")})
    fleet = registry.async_get_device({(DOMAIN, "circuit_fleet")})
    wallbox = registry.async_get_device({(DOMAIN, "CP1")})
    visitor = registry.async_get_device({(DOMAIN, "CP2")})
    assert site and garage and fleet and wallbox and visitor
    assert site.name == "Site"
    assert site.via_device_id is None
    assert garage.via_device_id == site.id
    assert wallbox.via_device_id == garage.id
    assert visitor.via_device_id is None
    assert fleet.via_device_id is None
    # Entities sit on their circuit's device.
    entity = er.async_get(hass).async_get("sensor.garage_ev_load")
    assert entity is not None
    assert entity.device_id == garage.id
    entity = er.async_get(hass).async_get("select.wallbox_charge_mode")
    assert entity is not None
    assert entity.device_id == wallbox.id


# ---------------------------------------------------------------- measured values


async def test_meter_values(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    await _until(hass, lambda: _float(hass, "sensor.site_current_l2") == 12.0, "meter")
    assert _float(hass, "sensor.site_current_l1") == 10.0
    assert _float(hass, "sensor.site_current_l3") == 8.0
    current = _attrs(hass, "sensor.site_current_l1")
    assert current[ATTR_UNIT_OF_MEASUREMENT] == "A"
    assert current[ATTR_DEVICE_CLASS] == "current"
    assert current["state_class"] == "measurement"
    # Power from the current sensors: voltage x the sum of the phase currents.
    assert _float(hass, "sensor.site_power") == pytest.approx(230 * 30)
    assert _attrs(hass, "sensor.site_power")[ATTR_UNIT_OF_MEASUREMENT] == "W"
    # Nothing is charging: all of it is other load; the highest phase is the state.
    assert _float(hass, "sensor.site_non_ev_load") == pytest.approx(12.0)
    attrs = _attrs(hass, "sensor.site_non_ev_load")
    assert (attrs["l1"], attrs["l2"], attrs["l3"]) == (10.0, 12.0, 8.0)
    assert _float(hass, "sensor.site_ev_load") == 0
    assert _float(hass, "sensor.site_ev_power") == 0
    assert _float(hass, "sensor.site_allocated_current") == 0
    assert _attrs(hass, "sensor.site_allocated_current")["l3"] == 0
    assert _state(hass, "binary_sensor.site_overload") == STATE_OFF
    assert _state(hass, "binary_sensor.site_meter_stale") == STATE_OFF
    assert _float(hass, "sensor.site_utilisation") == pytest.approx(12 / 63 * 100, abs=1)
    assert _attrs(hass, "sensor.site_utilisation")[ATTR_UNIT_OF_MEASUREMENT] == "%"
    headroom = _float(hass, "sensor.site_headroom")
    assert headroom is not None
    assert headroom <= 63 - 12

    # Above the limit on one phase: an overload the user sees at once.
    _meter(hass, (10.0, 70.0, 8.0))
    await _until(hass, lambda: _state(hass, "binary_sensor.site_overload") == STATE_ON, "overload")
    assert _float(hass, "sensor.site_current_l2") == 70.0
    _meter(hass, (10.0, 12.0, 8.0))
    await _until(hass, lambda: _state(hass, "binary_sensor.site_overload") == STATE_OFF, "ok")

    # The meter drops out: stale, and no measured values are shown.
    _meter(hass, STATE_UNAVAILABLE)
    await _until(hass, lambda: _state(hass, "binary_sensor.site_meter_stale") == STATE_ON, "stale")
    assert _state(hass, "sensor.site_current_l1") == STATE_UNKNOWN
    assert _state(hass, "sensor.site_power") == STATE_UNKNOWN
    _meter(hass, (5.0, 5.0, 5.0))
    await _until(hass, lambda: _state(hass, "binary_sensor.site_meter_stale") == STATE_OFF, "fresh")
    await _until(hass, lambda: _float(hass, "sensor.site_current_l1") == 5.0, "meter back")


# ---------------------------------------------------------------- limits


async def test_current_limit_number(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    manager = hub.runtime_data.manager
    await _until(hass, lambda: _float(hass, "number.garage_current_limit") == 25, "limit")
    attrs = _attrs(hass, "number.garage_current_limit")
    assert attrs["min"] == 0
    assert attrs["max"] == 25
    assert attrs["step"] == 1
    assert attrs["mode"] == "box"
    assert attrs[ATTR_UNIT_OF_MEASUREMENT] == "A"
    # The wallbox never connected, so it never got a safe default from us: it may draw
    # its 16 A hardware cap on its own, and that is kept free for it.
    assert _float(hass, "sensor.garage_headroom") == 25 - 16

    await _call(hass, "number", "set_value", "number.garage_current_limit", value=18)
    assert manager.circuit_status("garage").limit_a == 18
    assert manager.circuit_status("garage").overridden
    await _until(hass, lambda: _float(hass, "number.garage_current_limit") == 18, "override")
    await _until(hass, lambda: _float(hass, "sensor.garage_headroom") == 18 - 16, "headroom")

    # Never above the configured limit.
    with pytest.raises(ServiceValidationError, match="outside valid range"):
        await _call(hass, "number", "set_value", "number.garage_current_limit", value=26)

    await manager.async_clear_circuit_limit("garage")
    await _until(hass, lambda: _float(hass, "number.garage_current_limit") == 25, "cleared")


async def test_power_limit_number(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    manager = hub.runtime_data.manager
    await _until(hass, lambda: _float(hass, "number.fleet_cap_power_limit") == 11, "limit")
    attrs = _attrs(hass, "number.fleet_cap_power_limit")
    assert attrs["max"] == 11
    assert attrs[ATTR_UNIT_OF_MEASUREMENT] == "kW"
    await _call(hass, "number", "set_value", "number.fleet_cap_power_limit", value=7.5)
    assert manager.circuit_status("fleet").limit_power_w == 7500
    await _until(hass, lambda: _float(hass, "number.fleet_cap_power_limit") == 7.5, "override")


# ---------------------------------------------------------------- charger settings


async def test_priority_and_mode(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    manager = hub.runtime_data.manager
    # Settings of the manager: available while the charger is offline.
    assert _state(hass, "binary_sensor.wallbox_connected") == STATE_OFF
    assert _float(hass, "number.wallbox_priority") == 0
    attrs = _attrs(hass, "number.wallbox_priority")
    assert (attrs["min"], attrs["max"], attrs["step"]) == (0, 10, 1)
    entry = er.async_get(hass).async_get("number.wallbox_priority")
    assert entry is not None
    assert entry.entity_category is EntityCategory.CONFIG

    await _call(hass, "number", "set_value", "number.wallbox_priority", value=7)
    assert manager.charger_status("CP1").priority == 7
    assert _float(hass, "number.wallbox_priority") == 7
    with pytest.raises(ServiceValidationError, match="outside valid range"):
        await _call(hass, "number", "set_value", "number.wallbox_priority", value=11)

    assert _state(hass, "select.wallbox_charge_mode") == "managed"
    assert _attrs(hass, "select.wallbox_charge_mode")["options"] == [
        "managed",
        "fastest",
        "paused",
    ]
    await _call(hass, "select", "select_option", "select.wallbox_charge_mode", option="paused")
    assert manager.charger_status("CP1").mode is ChargeMode.PAUSED
    assert _state(hass, "select.wallbox_charge_mode") == "paused"
    await _call(hass, "select", "select_option", "select.wallbox_charge_mode", option="fastest")
    assert manager.charger_status("CP1").mode is ChargeMode.FASTEST
    with pytest.raises(ServiceValidationError):
        await _call(hass, "select", "select_option", "select.wallbox_charge_mode", option="turbo")


async def test_limit_reason_offline_and_unmanaged(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    await _until(
        hass, lambda: _state(hass, "sensor.visitor_limit_reason") == "unmanaged", "unmanaged"
    )
    attrs = _attrs(hass, "sensor.visitor_limit_reason")
    assert attrs[ATTR_DEVICE_CLASS] == "enum"
    assert attrs["options"] == [reason.value for reason in LimitReason]
    assert attrs["limiting_circuit"] is None
    assert _state(hass, "sensor.visitor_allocated_current") == STATE_UNKNOWN
    await _until(hass, lambda: _state(hass, "sensor.wallbox_limit_reason") == "offline", "offline")
    assert _state(hass, "sensor.wallbox_allocated_current") != STATE_UNAVAILABLE


async def test_charging_on_a_limited_circuit(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    """A car that wants 16 A on a garage held to 10 A: what the user sees."""
    await _call(hass, "number", "set_value", "number.garage_current_limit", value=10)
    sim = SimCharger(
        "CP1",
        ws_url(hub, "CP1"),
        password=DEFAULT_PASSWORD,
        ev=EV(max_current_a=16, soc=0.3),
        reaction_delay_s=0.0,
        meter_interval_s=1.0,
        step_s=0.1,
        backoff_s=(0.1, 0.5),
    )
    sims.append(sim)
    await sim.start(timeout=TIMEOUT)
    await sim.plug_in()
    await _until(
        hass, lambda: _state(hass, "sensor.wallbox_limit_reason") == "limited_by_circuit", "limit"
    )
    assert _attrs(hass, "sensor.wallbox_limit_reason")["limiting_circuit"] == "Garage"
    await _until(
        hass, lambda: (_float(hass, "sensor.wallbox_allocated_current") or 99) <= 10, "allocation"
    )
    await _until(hass, lambda: (_float(hass, "sensor.garage_ev_load") or 0) > 5, "ev load")
    assert _float(hass, "sensor.garage_ev_load") <= 10.5
    assert _float(hass, "sensor.garage_allocated_current") == _float(
        hass, "sensor.wallbox_allocated_current"
    )
    assert (_float(hass, "sensor.garage_ev_power") or 0) > 0
    # The site sees the car as EV load; its meter includes it.
    await _until(hass, lambda: (_float(hass, "sensor.site_ev_load") or 0) > 5, "site ev load")

    # Paused by the user: 0 A and the reason says so.
    await _call(hass, "select", "select_option", "select.wallbox_charge_mode", option="paused")
    await _until(
        hass, lambda: _state(hass, "sensor.wallbox_limit_reason") == "paused_by_user", "paused"
    )
    await _until(hass, lambda: _float(hass, "sensor.wallbox_allocated_current") == 0, "0 A")


# ---------------------------------------------------------------- live changes


async def test_circuit_added_while_loaded(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    new = circuit("carport", "Carport", parent="site", max_current=20)
    subentry = ConfigSubentry(
        data=new["data"],
        subentry_type=SUBENTRY_CIRCUIT,
        title=new["title"],
        unique_id=new["unique_id"],
    )
    hass.config_entries.async_add_subentry(hub, subentry)
    await hass.async_block_till_done()
    keys = _circuit_keys(hass, hub, "carport")
    assert "limit" in keys
    assert keys["limit"].config_subentry_id == subentry.subentry_id
    await _until(hass, lambda: _float(hass, "number.carport_current_limit") == 20, "new limit")
    device = dr.async_get(hass).async_get_device({(DOMAIN, "circuit_carport")})
    site = dr.async_get(hass).async_get_device({(DOMAIN, "circuit_site")})
    assert device is not None
    assert site is not None
    assert device.via_device_id == site.id


async def test_circuit_reconfigured_live(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """Adding a meter, dropping the current limit: the entities follow, no restart."""
    hass.states.async_set("sensor.garage_meter", "2.3", {"unit_of_measurement": "kW"})
    subentry = hub.subentries[_subentry_id(hub, "garage")]
    hass.config_entries.async_update_subentry(
        hub,
        subentry,
        data={
            **subentry.data,
            "meter": "power",
            "power_sensor": "sensor.garage_meter",
            "max_current": None,
            "max_power_kw": 7.0,
        },
    )
    await _until(hass, lambda: "power" in _circuit_keys(hass, hub, "garage"), "power sensor added")
    await _until(hass, lambda: _float(hass, "sensor.garage_power") == 2300, "garage power")
    keys = set(_circuit_keys(hass, hub, "garage"))
    assert {"power", "non_ev_load", "meter_stale", "power_limit"} <= keys
    assert not keys & {"limit", "headroom"}
    assert hass.states.get("number.garage_current_limit") is None
    await _until(hass, lambda: _float(hass, "number.garage_power_limit") == 7, "power limit")

    # And back: the meter's entities go again.
    subentry = hub.subentries[_subentry_id(hub, "garage")]
    hass.config_entries.async_update_subentry(
        hub, subentry, data={**subentry.data, "meter": "none", "power_sensor": None}
    )
    await _until(
        hass, lambda: "power" not in _circuit_keys(hass, hub, "garage"), "power sensor removed"
    )
    assert hass.states.get("sensor.garage_power") is None
    assert "meter_stale" not in _circuit_keys(hass, hub, "garage")


async def test_circuit_removed(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    subentry_id = _subentry_id(hub, "shed")
    assert _circuit_keys(hass, hub, "shed")
    hass.config_entries.async_remove_subentry(hub, subentry_id)
    await hass.async_block_till_done()
    assert not _circuit_keys(hass, hub, "shed")
    assert hass.states.get("sensor.shed_ev_load") is None
    assert dr.async_get(hass).async_get_device({(DOMAIN, "circuit_shed")}) is None
    # The others carry on.
    await _until(hass, lambda: _float(hass, "number.garage_current_limit") == 25, "garage")
