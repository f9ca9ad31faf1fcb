"""Switches of OCPP Power Manager chargers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .charge_point.base import ChargerConnection
from .charge_point.state import ChargerState
from .entity import OcppPowerChargerEntity, async_setup_charger_entities
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub

PARALLEL_UPDATES = 1

REMOTE_ID_TAG = "ocpp_power"


def _remote_start(charger: ChargerConfig, connection: ChargerConnection) -> Awaitable[bool]:
    """Start a session; with an allow list, under its first tag so the charger accepts it."""
    id_tag = charger.id_tags[0] if charger.id_tags else REMOTE_ID_TAG
    return connection.remote_start(id_tag=id_tag)


@dataclass(frozen=True, kw_only=True)
class OcppPowerSwitchDescription(SwitchEntityDescription):
    """Describe a charger switch."""

    is_on_fn: Callable[[ChargerState], bool]
    # Send nothing when the state is already the one asked for (the command would fail).
    idempotent: bool = False
    # (command name, function) to turn on and off; the function gets the charger and connection.
    turn_on: tuple[str, Callable[[ChargerConfig, ChargerConnection], Awaitable[bool]]]
    turn_off: tuple[str, Callable[[ChargerConfig, ChargerConnection], Awaitable[bool]]]


DESCRIPTIONS: tuple[OcppPowerSwitchDescription, ...] = (
    OcppPowerSwitchDescription(
        key="charging",
        translation_key="charging",
        is_on_fn=lambda state: state.active_transaction is not None,
        idempotent=True,
        turn_on=("RemoteStartTransaction", _remote_start),
        turn_off=("RemoteStopTransaction", lambda _, connection: connection.remote_stop()),
    ),
    OcppPowerSwitchDescription(
        key="available",
        translation_key="available",
        entity_category=EntityCategory.CONFIG,
        is_on_fn=lambda state: state.available,
        turn_on=("ChangeAvailability", lambda _, connection: connection.set_availability(True)),
        turn_off=("ChangeAvailability", lambda _, connection: connection.set_availability(False)),
    ),
)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the switches of one charger."""
    return [OcppPowerSwitch(hub, charger, description) for description in DESCRIPTIONS]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger switches."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)


class OcppPowerSwitch(OcppPowerChargerEntity, SwitchEntity):
    """A charger switch; its state follows what the charger reports."""

    entity_description: OcppPowerSwitchDescription

    @property
    def is_on(self) -> bool:
        """Return the switch's state."""
        return self.entity_description.is_on_fn(self.charger_state)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Turn on: start charging, or make the charger operative."""
        if not (self.entity_description.idempotent and self.is_on):
            await self._async_set(*self.entity_description.turn_on)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Turn off: stop charging, or make the charger inoperative."""
        if not (self.entity_description.idempotent and not self.is_on):
            await self._async_set(*self.entity_description.turn_off)

    async def _async_set(
        self,
        command: str,
        send: Callable[[ChargerConfig, ChargerConnection], Awaitable[bool]],
    ) -> None:
        await self._async_command(command, lambda connection: send(self.charger, connection))
