"""End-to-end tests of the charger entities: real HA, the real hub, simulated chargers."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from unittest.mock import AsyncMock, MagicMock, PropertyMock, patch

from homeassistant.config_entries import ConfigSubentry
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
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import async_get_platforms
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ocpp_power.const import DOMAIN, SUBENTRY_CHARGER
from simulator.charger import SimCharger
from simulator.ev import EV

from .helpers import DEFAULT_PASSWORD, charger_subentry, setup_hub, ws_url

CP = "CP1"
TIMEOUT = 10.0

# (platform, key) of every entity a 3-phase charger gets; True = enabled by default.
EXPECTED_ENTITIES: dict[tuple[str, str], bool] = {
    ("sensor", "status"): True,
    ("sensor", "connector_status"): False,
    ("sensor", "power"): True,
    ("sensor", "current_phase_1"): False,
    ("sensor", "current_phase_2"): False,
    ("sensor", "current_phase_3"): False,
    ("sensor", "energy"): True,
    ("sensor", "session_energy"): True,
    ("sensor", "soc"): True,
    ("sensor", "offered_current"): False,
    ("sensor", "voltage"): False,
    ("binary_sensor", "connected"): True,
    ("number", "hardware_limit"): True,
    ("switch", "charging"): True,
    ("switch", "available"): True,
    ("button", "reset"): True,
    ("button", "unlock"): True,
    ("sensor", "allocated_current"): True,
    ("sensor", "limit_reason"): True,
    ("number", "priority"): True,
    ("select", "mode"): True,
}


@pytest.fixture(autouse=True)
def fast_metering() -> Generator[None]:
    """Have the hub ask chargers for a meter sample every second instead of every 10 s."""
    with patch("custom_components.ocpp_power.charge_point.v16.METER_SAMPLE_INTERVAL_S", 1):
        yield


@pytest.fixture
def enable_all_entities() -> Generator[None]:
    """Create entities that are disabled by default as enabled."""
    with patch.object(
        Entity, "entity_registry_enabled_default", new_callable=PropertyMock, return_value=True
    ):
        yield


@pytest.fixture
async def sims() -> AsyncGenerator[list[SimCharger]]:
    """Simulated chargers a test starts; all stopped at the end."""
    started: list[SimCharger] = []
    yield started
    for sim in started:
        await sim.stop()


@pytest.fixture
async def hub(hass: HomeAssistant, socket_enabled: None) -> AsyncGenerator[MockConfigEntry]:
    """The real component on 127.0.0.1 with one 3-phase charger "Garage" (CP1)."""
    entry = await setup_hub(hass, [charger_subentry(CP, name="Garage", max_current=16)])
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def _sim(entry: MockConfigEntry, charger_id: str = CP, **kwargs: Any) -> SimCharger:
    options: dict[str, Any] = {
        "password": DEFAULT_PASSWORD,
        "reaction_delay_s": 0.0,
        "meter_interval_s": 1.0,
        "step_s": 0.1,
        "backoff_s": (0.1, 0.5),
    } | kwargs
    return SimCharger(charger_id, ws_url(entry, charger_id), **options)


async def _start(sims: list[SimCharger], sim: SimCharger) -> SimCharger:
    sims.append(sim)
    await sim.start(timeout=TIMEOUT)
    return sim


def _eid(hass: HomeAssistant, platform: str, key: str, charger_id: str = CP) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{charger_id}_{key}")
    assert entity_id is not None, f"no {platform} entity {charger_id}_{key}"
    return entity_id


async def _until(
    hass: HomeAssistant, sim: SimCharger, predicate: Callable[[], bool], what: str
) -> None:
    """Wait until predicate() holds, letting HA and the simulator run."""
    try:
        await sim.wait_for(lambda _: predicate(), TIMEOUT)
    except TimeoutError as err:
        raise AssertionError(f"timed out waiting for {what}") from err
    await hass.async_block_till_done()


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state


def _float(hass: HomeAssistant, entity_id: str) -> float | None:
    try:
        return float(_state(hass, entity_id) or "")
    except ValueError:
        return None


async def _call(hass: HomeAssistant, domain: str, service: str, entity_id: str, **data: Any):
    await hass.services.async_call(
        domain, service, {ATTR_ENTITY_ID: entity_id, **data}, blocking=True
    )


# ---------------------------------------------------------------- registry and device


async def test_entities_registered(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    registry = er.async_get(hass)
    entries = er.async_entries_for_config_entry(registry, hub.entry_id)
    found = {(e.domain, e.unique_id.removeprefix(f"{CP}_")): e for e in entries}
    assert set(found) == set(EXPECTED_ENTITIES)
    subentry_id = next(iter(hub.subentries))
    for key, enabled in EXPECTED_ENTITIES.items():
        entry = found[key]
        assert (entry.disabled_by is None) is enabled, key
        assert entry.config_subentry_id == subentry_id, key
        assert entry.has_entity_name
    assert found[("sensor", "connector_status")].entity_category is EntityCategory.DIAGNOSTIC
    assert found[("binary_sensor", "connected")].entity_category is EntityCategory.DIAGNOSTIC
    for key in (
        ("number", "hardware_limit"),
        ("number", "priority"),
        ("switch", "available"),
        ("button", "unlock"),
    ):
        assert found[key].entity_category is EntityCategory.CONFIG, key
    assert found[("switch", "charging")].entity_category is None
    # Translated names with the device name in front.
    assert _eid(hass, "sensor", "status") == "sensor.garage_status"
    assert _eid(hass, "sensor", "session_energy") == "sensor.garage_session_energy"
    assert _eid(hass, "number", "hardware_limit") == "number.garage_hardware_limit"
    assert _eid(hass, "switch", "charging") == "switch.garage_charging"
    assert _eid(hass, "button", "unlock") == "button.garage_unlock_connector"
    assert _eid(hass, "button", "reset") == "button.garage_restart"
    assert _eid(hass, "binary_sensor", "connected") == "binary_sensor.garage_connected"


async def test_single_phase_charger_has_one_current_sensor(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    entry = await setup_hub(hass, [charger_subentry("CP2", phases="l2")])
    unique_ids = {
        e.unique_id for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    }
    assert "CP2_current_phase_1" in unique_ids
    assert "CP2_current_phase_2" not in unique_ids
    assert "CP2_current_phase_3" not in unique_ids
    await hass.config_entries.async_unload(entry.entry_id)


async def test_offline_at_start(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    assert _state(hass, "binary_sensor.garage_connected") == STATE_OFF
    for entity_id in ("sensor.garage_status", "sensor.garage_power", "switch.garage_charging"):
        assert _state(hass, entity_id) == STATE_UNAVAILABLE, entity_id
    # The hardware limit is held by the hub and can be set while the charger is offline.
    assert _float(hass, "number.garage_hardware_limit") == 16.0


async def test_device_info_from_boot(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    await _start(sims, _sim(hub, vendor="Acme", model="Volt 22", serial="SN-42", firmware="4.2"))
    await hass.async_block_till_done()
    device = dr.async_get(hass).async_get_device({(DOMAIN, CP)})
    assert device is not None
    assert device.name == "Garage"
    assert device.manufacturer == "Acme"
    assert device.model == "Volt 22"
    assert device.serial_number == "SN-42"
    assert device.sw_version == "4.2"
    assert hub.entry_id in device.config_entries
    entity = er.async_get(hass).async_get(_eid(hass, "sensor", "status"))
    assert entity is not None
    assert entity.device_id == device.id


# ---------------------------------------------------------------- measured values


@pytest.mark.usefixtures("enable_all_entities")
async def test_charging_values(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub, ev=EV(max_current_a=16, soc=0.5, phases=3)))
    await _until(
        hass, sim, lambda: _state(hass, "binary_sensor.garage_connected") == STATE_ON, "connected"
    )
    await _until(
        hass, sim, lambda: _state(hass, "sensor.garage_status") == "available", "available"
    )
    assert _state(hass, "switch.garage_charging") == STATE_OFF

    await sim.plug_in()
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "charging", "charging")
    assert _state(hass, "switch.garage_charging") == STATE_ON
    await _until(hass, sim, lambda: (_float(hass, "sensor.garage_power") or 0) > 10_000, "power")
    assert _float(hass, "sensor.garage_power") == pytest.approx(16 * 3 * 230, rel=0.01)
    for phase in (1, 2, 3):
        assert _float(hass, f"sensor.garage_current_l{phase}") == pytest.approx(16, abs=0.1)
    # Offered: the charger (32 A) is capped by the configured max current, installed as
    # its ChargePointMaxProfile at boot; the car takes 16 A.
    assert hub.runtime_data.hardware_limit(CP) == 16
    assert _float(hass, "sensor.garage_offered_current") == pytest.approx(16, abs=0.1)
    assert _float(hass, "sensor.garage_voltage") == pytest.approx(230, abs=1)
    assert _float(hass, "sensor.garage_battery") == pytest.approx(50, abs=1)

    # Energy: lifetime register and session energy, in kWh, both growing.
    await _until(
        hass, sim, lambda: (_float(hass, "sensor.garage_session_energy") or 0) > 0, "session energy"
    )
    energy = hass.states.get("sensor.garage_energy")
    assert energy is not None
    assert energy.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
    assert energy.attributes[ATTR_DEVICE_CLASS] == "energy"
    assert energy.attributes["state_class"] == "total_increasing"
    hub_state = hub.runtime_data.state(CP)
    assert float(energy.state) == pytest.approx(hub_state.energy_wh / 1000, abs=0.001)
    assert float(energy.state) <= sim.energy_wh / 1000 + 0.001
    session = hass.states.get("sensor.garage_session_energy")
    assert session is not None
    assert session.attributes[ATTR_UNIT_OF_MEASUREMENT] == "kWh"
    assert session.attributes["state_class"] == "total"
    assert _state(hass, "sensor.garage_charger_status") in ("available", "charging")

    await sim.unplug()
    await _until(hass, sim, lambda: _state(hass, "switch.garage_charging") == STATE_OFF, "stopped")
    assert _state(hass, "sensor.garage_status") == "available"


async def test_soc_unknown_when_not_reported(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub))
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "available", "online")
    assert _state(hass, "sensor.garage_battery") == STATE_UNKNOWN
    assert _state(hass, "sensor.garage_power") in (STATE_UNKNOWN, "0", "0.0")


# ---------------------------------------------------------------- commands


async def test_charging_switch(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub, auto_start=False))
    await sim.plug_in()
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "preparing", "plugged")
    assert _state(hass, "switch.garage_charging") == STATE_OFF

    await _call(hass, "switch", "turn_on", "switch.garage_charging")
    await _until(hass, sim, lambda: _state(hass, "switch.garage_charging") == STATE_ON, "started")
    await _until(hass, sim, lambda: sim.transaction_id is not None, "simulator in session")
    assert "RemoteStartTransaction" in sim.received_calls
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "charging", "charging")

    # Turning on again is a no-op, not a rejected command.
    await _call(hass, "switch", "turn_on", "switch.garage_charging")
    assert sim.received_calls.count("RemoteStartTransaction") == 1

    await _call(hass, "switch", "turn_off", "switch.garage_charging")
    await _until(hass, sim, lambda: _state(hass, "switch.garage_charging") == STATE_OFF, "stopped")
    await _until(hass, sim, lambda: sim.transaction_id is None, "simulator session ended")
    assert "RemoteStopTransaction" in sim.received_calls
    await _call(hass, "switch", "turn_off", "switch.garage_charging")
    assert sim.received_calls.count("RemoteStopTransaction") == 1


async def test_charging_switch_uses_allowed_tag(
    hass: HomeAssistant, socket_enabled: None, sims: list[SimCharger]
) -> None:
    entry = await setup_hub(hass, [charger_subentry(CP, name="Garage", id_tags="CARD1, CARD2")])
    sim = await _start(sims, _sim(entry, auto_start=False))
    await sim.plug_in()
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "preparing", "plugged")
    await _call(hass, "switch", "turn_on", "switch.garage_charging")
    await _until(hass, sim, lambda: _state(hass, "switch.garage_charging") == STATE_ON, "started")
    assert hub_state_tag(entry) == "CARD1"
    await sim.stop()
    await hass.config_entries.async_unload(entry.entry_id)


def hub_state_tag(entry: MockConfigEntry) -> str | None:
    transaction = entry.runtime_data.state(CP).active_transaction
    return None if transaction is None else transaction.id_tag


async def test_availability_switch(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub))
    await _until(hass, sim, lambda: _state(hass, "switch.garage_available") == STATE_ON, "online")

    await _call(hass, "switch", "turn_off", "switch.garage_available")
    await _until(hass, sim, lambda: not sim.operative, "inoperative")
    await _until(hass, sim, lambda: _state(hass, "switch.garage_available") == STATE_OFF, "off")
    await _until(
        hass, sim, lambda: _state(hass, "sensor.garage_status") == "inoperative", "inoperative"
    )
    # An inoperative charger refuses a remote start: a translated error, no traceback.
    await sim.plug_in()
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "switch", "turn_on", "switch.garage_charging")
    assert err.value.translation_key == "command_rejected"
    assert err.value.translation_placeholders == {
        "name": "Garage",
        "command": "RemoteStartTransaction",
    }

    await _call(hass, "switch", "turn_on", "switch.garage_available")
    await _until(hass, sim, lambda: sim.operative, "operative")
    await _until(hass, sim, lambda: _state(hass, "switch.garage_available") == STATE_ON, "on")
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "charging", "charging")


async def test_hardware_limit(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub, ev=EV(max_current_a=32, soc=0.2)))
    await sim.plug_in()
    # The configured maximum is installed at boot as the charger's hardware cap.
    await _until(hass, sim, lambda: sim.current_a[0] == pytest.approx(16), "capped draw")
    assert _float(hass, "number.garage_hardware_limit") == 16.0
    boot_profiles = len(sim.received_profiles)
    assert boot_profiles >= 1

    await _call(hass, "number", "set_value", "number.garage_hardware_limit", value=10)
    assert _float(hass, "number.garage_hardware_limit") == 10.0
    assert hub.runtime_data.hardware_limit(CP) == 10.0
    await _until(hass, sim, lambda: len(sim.received_profiles) > boot_profiles, "profile")
    profile = sim.received_profiles[-1][1]["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "ChargePointMaxProfile"
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10
    await _until(hass, sim, lambda: sim.current_a[0] == pytest.approx(10), "draw follows")
    await _until(
        hass,
        sim,
        lambda: _float(hass, "sensor.garage_power") == pytest.approx(10 * 3 * 230),
        "power sensor follows",
    )


async def test_hardware_limit_set_offline_sent_on_connect(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    await _call(hass, "number", "set_value", "number.garage_hardware_limit", value=8)
    assert _float(hass, "number.garage_hardware_limit") == 8.0
    sim = await _start(sims, _sim(hub, ev=EV(max_current_a=32)))
    await _until(hass, sim, lambda: bool(sim.received_profiles), "profile on connect")
    await sim.plug_in()
    await _until(hass, sim, lambda: sim.current_a[0] == pytest.approx(8), "draw capped")


async def test_number_range(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    state = hass.states.get("number.garage_hardware_limit")
    assert state is not None
    assert state.attributes["min"] == 6
    assert state.attributes["max"] == 80
    assert state.attributes["step"] == 1
    assert state.attributes["mode"] == "box"
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "A"
    with pytest.raises(ServiceValidationError, match="outside valid range"):
        await _call(hass, "number", "set_value", "number.garage_hardware_limit", value=5)


async def test_unlock_button(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub))
    await sim.plug_in()
    await _until(hass, sim, lambda: _state(hass, "switch.garage_charging") == STATE_ON, "charging")
    await _call(hass, "button", "press", "button.garage_unlock_connector")
    assert "UnlockConnector" in sim.received_calls
    await _until(hass, sim, lambda: not sim.ev_plugged, "unplugged")
    await _until(hass, sim, lambda: _state(hass, "switch.garage_charging") == STATE_OFF, "stopped")


async def test_reset_button(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub))
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "available", "online")
    assert sim.connect_count == 1
    await _call(hass, "button", "press", "button.garage_restart")
    assert "Reset" in sim.received_calls
    await _until(
        hass, sim, lambda: sim.connect_count == 2 and sim.boot_status == "Accepted", "reboot"
    )
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "available", "back")


# ---------------------------------------------------------------- connection loss


async def test_unavailable_on_disconnect_and_recover(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    sim = await _start(sims, _sim(hub))
    await _until(hass, sim, lambda: _state(hass, "sensor.garage_status") == "available", "online")
    assert _state(hass, "binary_sensor.garage_connected") == STATE_ON

    await sim.stop()
    await _until(
        hass, sim, lambda: _state(hass, "sensor.garage_status") == STATE_UNAVAILABLE, "unavailable"
    )
    for entity_id in (
        "sensor.garage_power",
        "sensor.garage_energy",
        "switch.garage_charging",
        "switch.garage_available",
        "button.garage_unlock_connector",
    ):
        assert _state(hass, entity_id) == STATE_UNAVAILABLE, entity_id
    assert _state(hass, "binary_sensor.garage_connected") == STATE_OFF
    assert _state(hass, "number.garage_hardware_limit") == "16.0"

    # Commands to an offline charger fail with a translated error.
    with pytest.raises(HomeAssistantError) as err:
        await _press_unlock_directly(hass)
    assert err.value.translation_key == "charger_offline"
    assert err.value.translation_placeholders == {"name": "Garage"}

    sim2 = await _start(sims, _sim(hub))
    await _until(hass, sim2, lambda: _state(hass, "sensor.garage_status") == "available", "back")
    assert _state(hass, "binary_sensor.garage_connected") == STATE_ON
    assert _state(hass, "switch.garage_charging") == STATE_OFF


async def _press_unlock_directly(hass: HomeAssistant) -> None:
    """Press through the entity object: the service layer refuses unavailable entities."""
    platform = next(p for p in async_get_platforms(hass, DOMAIN) if p.domain == "button")
    await platform.entities["button.garage_unlock_connector"].async_press()


async def test_command_timeout(hass: HomeAssistant, hub: MockConfigEntry) -> None:
    """A connection that raises TimeoutError gives a translated error."""
    connection = MagicMock()
    connection.unlock = AsyncMock(side_effect=TimeoutError)
    with (
        patch.object(hub.runtime_data, "connection", return_value=connection),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _press_unlock_directly(hass)
    assert err.value.translation_key == "command_timeout"
    assert err.value.translation_placeholders == {"name": "Garage", "command": "UnlockConnector"}


# ---------------------------------------------------------------- chargers added later


async def test_charger_added_while_loaded(
    hass: HomeAssistant, hub: MockConfigEntry, sims: list[SimCharger]
) -> None:
    new = charger_subentry("CP7", name="Carport", phases="l1")
    hass.config_entries.async_add_subentry(
        hub,
        ConfigSubentry(
            data=new["data"],
            subentry_type=SUBENTRY_CHARGER,
            title=new["title"],
            unique_id=new["unique_id"],
        ),
    )
    await hass.async_block_till_done()
    status = _eid(hass, "sensor", "status", "CP7")
    assert status == "sensor.carport_status"
    subentry_id = next(s.subentry_id for s in hub.subentries.values() if s.unique_id == "CP7")
    assert er.async_get(hass).async_get(status).config_subentry_id == subentry_id
    assert _state(hass, status) == STATE_UNAVAILABLE

    sim = await _start(sims, _sim(hub, "CP7", phases=1))
    await _until(hass, sim, lambda: _state(hass, status) == "available", "new charger online")
    # The first charger's entities are untouched.
    assert _state(hass, "sensor.garage_status") == STATE_UNAVAILABLE


async def test_entities_follow_subentry_reconfigure(
    hass: HomeAssistant, hub: MockConfigEntry
) -> None:
    subentry = next(iter(hub.subentries.values()))
    hass.config_entries.async_update_subentry(
        hub, subentry, title="Garage 2", data={**subentry.data, "max_current": 20.0}
    )
    await hass.async_block_till_done()
    with pytest.raises(HomeAssistantError) as err:
        await _press_unlock_directly(hass)
    assert err.value.translation_placeholders == {"name": "Garage 2"}
    platform = next(p for p in async_get_platforms(hass, DOMAIN) if p.domain == "number")
    assert platform.entities["number.garage_hardware_limit"].native_value == 20.0
