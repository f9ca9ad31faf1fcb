"""Buttons of OCPP Power Manager chargers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import (
    ButtonDeviceClass,
    ButtonEntity,
    ButtonEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .charge_point.base import ChargerConnection
from .entity import OcppPowerChargerEntity, async_setup_charger_entities
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class OcppPowerButtonDescription(ButtonEntityDescription):
    """Describe a charger button."""

    command: str  # the OCPP message, named in error messages
    press_fn: Callable[[ChargerConnection], Awaitable[bool]]


DESCRIPTIONS: tuple[OcppPowerButtonDescription, ...] = (
    OcppPowerButtonDescription(
        key="reset",
        device_class=ButtonDeviceClass.RESTART,
        entity_category=EntityCategory.CONFIG,
        command="Reset",
        press_fn=lambda connection: connection.reset(),
    ),
    OcppPowerButtonDescription(
        key="unlock",
        translation_key="unlock",
        entity_category=EntityCategory.CONFIG,
        command="UnlockConnector",
        press_fn=lambda connection: connection.unlock(),
    ),
)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the buttons of one charger."""
    return [OcppPowerButton(hub, charger, description) for description in DESCRIPTIONS]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger buttons."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)


class OcppPowerButton(OcppPowerChargerEntity, ButtonEntity):
    """A charger button."""

    entity_description: OcppPowerButtonDescription

    async def async_press(self) -> None:
        """Send the button's command."""
        await self._async_command(self.entity_description.command, self.entity_description.press_fn)
