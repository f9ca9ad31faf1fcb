"""Numbers of OCPP Power Manager chargers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import EntityCategory, UnitOfElectricCurrent
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import OcppPowerChargerEntity, async_setup_charger_entities
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub

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


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the numbers of one charger."""
    return [OcppPowerNumber(hub, charger, description) for description in DESCRIPTIONS]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger numbers."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)


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
