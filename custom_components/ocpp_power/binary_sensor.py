"""Binary sensors of OCPP Power Manager chargers and circuits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .charge_point.state import ChargerState
from .const import METER_NONE
from .entity import (
    OcppPowerChargerEntity,
    OcppPowerCircuitEntity,
    async_setup_charger_entities,
    async_setup_circuit_entities,
)
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub
from .models import CircuitConfig, CircuitStatus

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class OcppPowerBinarySensorDescription(BinarySensorEntityDescription):
    """Describe a charger binary sensor."""

    always_available: bool = False
    is_on_fn: Callable[[ChargerState], bool]


DESCRIPTIONS: tuple[OcppPowerBinarySensorDescription, ...] = (
    OcppPowerBinarySensorDescription(
        key="connected",
        translation_key="connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        always_available=True,
        is_on_fn=lambda state: state.connected,
    ),
)


@dataclass(frozen=True, kw_only=True)
class OcppPowerCircuitBinarySensorDescription(BinarySensorEntityDescription):
    """Describe a circuit binary sensor."""

    exists_fn: Callable[[CircuitConfig], bool] = lambda _: True
    is_on_fn: Callable[[CircuitStatus], bool]


CIRCUIT_DESCRIPTIONS: tuple[OcppPowerCircuitBinarySensorDescription, ...] = (
    OcppPowerCircuitBinarySensorDescription(
        key="overload",
        translation_key="overload",
        device_class=BinarySensorDeviceClass.PROBLEM,
        is_on_fn=lambda status: status.overload,
    ),
    OcppPowerCircuitBinarySensorDescription(
        key="meter_stale",
        translation_key="meter_stale",
        device_class=BinarySensorDeviceClass.PROBLEM,
        entity_category=EntityCategory.DIAGNOSTIC,
        exists_fn=lambda circuit: circuit.meter != METER_NONE,
        is_on_fn=lambda status: status.meter_stale,
    ),
)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the binary sensors of one charger."""
    return [OcppPowerBinarySensor(hub, charger, description) for description in DESCRIPTIONS]


def _build_circuit(hub: OcppPowerHub, circuit: CircuitConfig) -> list[OcppPowerCircuitEntity]:
    """Return the binary sensors of one circuit."""
    return [
        OcppPowerCircuitBinarySensor(hub, circuit, description)
        for description in CIRCUIT_DESCRIPTIONS
        if description.exists_fn(circuit)
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger and circuit binary sensors."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)
    async_setup_circuit_entities(hass, entry, async_add_entities, _build_circuit)


class OcppPowerBinarySensor(OcppPowerChargerEntity, BinarySensorEntity):
    """A charger binary sensor."""

    entity_description: OcppPowerBinarySensorDescription

    def __init__(
        self,
        hub: OcppPowerHub,
        charger: ChargerConfig,
        description: OcppPowerBinarySensorDescription,
    ) -> None:
        """Initialise; the connectivity sensor stays available while offline."""
        super().__init__(hub, charger, description)
        self._always_available = description.always_available

    @property
    def is_on(self) -> bool:
        """Return the sensor's state."""
        return self.entity_description.is_on_fn(self.charger_state)


class OcppPowerCircuitBinarySensor(OcppPowerCircuitEntity, BinarySensorEntity):
    """A circuit binary sensor."""

    entity_description: OcppPowerCircuitBinarySensorDescription

    @property
    def is_on(self) -> bool:
        """Return the sensor's state."""
        return self.entity_description.is_on_fn(self.status)
