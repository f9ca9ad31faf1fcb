"""Selects of OCPP Power Manager chargers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import OcppPowerChargerPowerEntity, async_setup_charger_entities
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub
from .models import ChargeMode, ChargerPowerStatus

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class OcppPowerSelectDescription(SelectEntityDescription):
    """Describe a charger select held by the power manager."""

    current_fn: Callable[[ChargerPowerStatus], str | None]
    select_fn: Callable[[OcppPowerHub, str, str], Awaitable[None]]


DESCRIPTIONS: tuple[OcppPowerSelectDescription, ...] = (
    OcppPowerSelectDescription(
        key="mode",
        translation_key="mode",
        options=[mode.value for mode in ChargeMode],
        current_fn=lambda status: status.mode.value,
        select_fn=lambda hub, charger_id, option: hub.manager.async_set_mode(
            charger_id, ChargeMode(option)
        ),
    ),
)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the selects of one charger."""
    return [OcppPowerSelect(hub, charger, description) for description in DESCRIPTIONS]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger selects."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)


class OcppPowerSelect(OcppPowerChargerPowerEntity, SelectEntity):
    """A charger setting of the power manager; it holds while the charger is offline."""

    entity_description: OcppPowerSelectDescription

    @property
    def current_option(self) -> str | None:
        """Return the selected option."""
        return self.entity_description.current_fn(self.power_status)

    async def async_select_option(self, option: str) -> None:
        """Change the setting; the manager re-allocates at once."""
        await self.entity_description.select_fn(self.hub, self.charger_id, option)
        self.async_write_ha_state()
