"""Numbers of OCPP Power Manager chargers and circuits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import EntityCategory, UnitOfElectricCurrent, UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import (
    OcppPowerChargerEntity,
    OcppPowerChargerPowerEntity,
    OcppPowerCircuitEntity,
    async_setup_charger_entities,
    async_setup_circuit_entities,
)
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub
from .models import ChargerPowerStatus, CircuitConfig, CircuitStatus

PRIORITY_MAX = 10

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class OcppPowerNumberDescription(NumberEntityDescription):
    """Describe a charger number."""

    value_fn: Callable[[OcppPowerHub, ChargerConfig], float | None]
    set_fn: Callable[[OcppPowerHub, ChargerConfig, float], Awaitable[None]]


def _hardware_limit(hub: OcppPowerHub, charger: ChargerConfig) -> float:
    """Return the stored hardware cap, or the charger's configured maximum."""
    limit = hub.hardware_limit(charger.charger_id)
    return charger.max_current if limit is None else limit


DESCRIPTIONS: tuple[OcppPowerNumberDescription, ...] = (
    OcppPowerNumberDescription(
        key="hardware_limit",
        translation_key="hardware_limit",
        device_class=NumberDeviceClass.CURRENT,
        entity_category=EntityCategory.CONFIG,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        native_min_value=6,
        native_max_value=80,
        native_step=1,
        mode=NumberMode.BOX,
        value_fn=_hardware_limit,
        set_fn=lambda hub, charger, value: hub.async_set_hardware_limit(charger.charger_id, value),
    ),
)


@dataclass(frozen=True, kw_only=True)
class OcppPowerPowerSettingDescription(NumberEntityDescription):
    """Describe a charger number held by the power manager."""

    value_fn: Callable[[ChargerPowerStatus], float | None]
    set_fn: Callable[[OcppPowerHub, str, float], Awaitable[None]]


POWER_SETTING_DESCRIPTIONS: tuple[OcppPowerPowerSettingDescription, ...] = (
    OcppPowerPowerSettingDescription(
        key="priority",
        translation_key="priority",
        entity_category=EntityCategory.CONFIG,
        native_min_value=0,
        native_max_value=PRIORITY_MAX,
        native_step=1,
        value_fn=lambda status: status.priority,
        set_fn=lambda hub, charger_id, value: hub.manager.async_set_priority(
            charger_id, int(value)
        ),
    ),
)


@dataclass(frozen=True, kw_only=True)
class OcppPowerCircuitNumberDescription(NumberEntityDescription):
    """Describe a circuit's live limit; its maximum is the configured limit."""

    exists_fn: Callable[[CircuitConfig], bool]
    max_fn: Callable[[CircuitConfig], float]
    value_fn: Callable[[CircuitConfig, CircuitStatus], float | None]
    set_fn: Callable[[OcppPowerHub, str, float], Awaitable[None]]


CIRCUIT_DESCRIPTIONS: tuple[OcppPowerCircuitNumberDescription, ...] = (
    OcppPowerCircuitNumberDescription(
        key="limit",
        translation_key="limit",
        device_class=NumberDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        native_min_value=0,
        native_step=1,
        mode=NumberMode.BOX,
        exists_fn=lambda circuit: circuit.max_current is not None,
        max_fn=lambda circuit: circuit.max_current or 0.0,
        value_fn=lambda circuit, status: (
            circuit.max_current if status.limit_a is None else status.limit_a
        ),
        set_fn=lambda hub, circuit_id, value: hub.manager.async_set_circuit_limit(
            circuit_id, current_a=value
        ),
    ),
    OcppPowerCircuitNumberDescription(
        key="power_limit",
        translation_key="power_limit",
        device_class=NumberDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.KILO_WATT,
        native_min_value=0,
        native_step=0.1,
        mode=NumberMode.BOX,
        exists_fn=lambda circuit: circuit.max_power_w is not None,
        max_fn=lambda circuit: (circuit.max_power_w or 0.0) / 1000,
        value_fn=lambda circuit, status: _kw(
            circuit.max_power_w if status.limit_power_w is None else status.limit_power_w
        ),
        set_fn=lambda hub, circuit_id, value: hub.manager.async_set_circuit_limit(
            circuit_id, power_kw=value
        ),
    ),
)


def _kw(watts: float | None) -> float | None:
    """Convert W to kW."""
    return None if watts is None else round(watts / 1000, 3)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the numbers of one charger."""
    return [
        *(OcppPowerNumber(hub, charger, description) for description in DESCRIPTIONS),
        *(
            OcppPowerSettingNumber(hub, charger, description)
            for description in POWER_SETTING_DESCRIPTIONS
        ),
    ]


def _build_circuit(hub: OcppPowerHub, circuit: CircuitConfig) -> list[OcppPowerCircuitEntity]:
    """Return the numbers of one circuit."""
    return [
        OcppPowerCircuitNumber(hub, circuit, description)
        for description in CIRCUIT_DESCRIPTIONS
        if description.exists_fn(circuit)
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger and circuit numbers."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)
    async_setup_circuit_entities(hass, entry, async_add_entities, _build_circuit)


class OcppPowerNumber(OcppPowerChargerEntity, NumberEntity):
    """A charger setting held by the hub.

    The hub stores the value and installs it whenever the charger (re)connects, so it
    can be set while the charger is offline.
    """

    entity_description: OcppPowerNumberDescription
    _always_available = True

    @property
    def native_value(self) -> float | None:
        """Return the setting."""
        return self.entity_description.value_fn(self.hub, self.charger)

    async def async_set_native_value(self, value: float) -> None:
        """Store the setting and send it to the charger when it is online."""
        await self.entity_description.set_fn(self.hub, self.charger, value)
        self.async_write_ha_state()


class OcppPowerSettingNumber(OcppPowerChargerPowerEntity, NumberEntity):
    """A charger setting held by the power manager (kept across restarts)."""

    entity_description: OcppPowerPowerSettingDescription

    @property
    def native_value(self) -> float | None:
        """Return the setting."""
        return self.entity_description.value_fn(self.power_status)

    async def async_set_native_value(self, value: float) -> None:
        """Change the setting; the manager re-allocates at once."""
        await self.entity_description.set_fn(self.hub, self.charger_id, value)
        self.async_write_ha_state()


class OcppPowerCircuitNumber(OcppPowerCircuitEntity, NumberEntity):
    """A circuit's live limit, up to its configured limit.

    Setting it overrides the limit until it is set again or cleared with the
    clear_circuit_limit action; the configured limit itself stays.
    """

    entity_description: OcppPowerCircuitNumberDescription

    @property
    def native_max_value(self) -> float:
        """Return the configured limit (it follows a reconfigure)."""
        return self.entity_description.max_fn(self.circuit)

    @property
    def native_value(self) -> float | None:
        """Return the active limit."""
        return self.entity_description.value_fn(self.circuit, self.status)

    async def async_set_native_value(self, value: float) -> None:
        """Override the circuit's limit; the chargers under it follow at once."""
        await self.entity_description.set_fn(self.hub, self.circuit_id, value)
        self.async_write_ha_state()
