"""Binary sensors of OCPP Power Manager chargers."""

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
from .entity import OcppPowerChargerEntity, async_setup_charger_entities
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub

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


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the binary sensors of one charger."""
    return [OcppPowerBinarySensor(hub, charger, description) for description in DESCRIPTIONS]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger binary sensors."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)


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
