"""Sensors of OCPP Power Manager chargers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .charge_point.state import ChargerState, ConnectorStatus
from .entity import OcppPowerChargerEntity, async_setup_charger_entities
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub

PARALLEL_UPDATES = 0

# "unavailable" and "unknown" are reserved entity states in Home Assistant.
STATUS_OPTIONS: dict[ConnectorStatus, str | None] = {
    status: status.value for status in ConnectorStatus
} | {ConnectorStatus.UNAVAILABLE: "inoperative", ConnectorStatus.UNKNOWN: None}


def _status(status: ConnectorStatus) -> str | None:
    """Map a connector status to a sensor option."""
    return STATUS_OPTIONS[status]


def _kwh(wh: float | None) -> float | None:
    """Convert Wh to kWh."""
    return None if wh is None else round(wh / 1000, 3)


def _phase_current(index: int) -> Callable[[ChargerState], StateType]:
    """Return a value function for the charger's own phase `index` (0-based)."""
    return lambda state: state.current_a[index]


def _voltage(state: ChargerState) -> float | None:
    """Return the first reported phase voltage."""
    return next((v for v in state.voltage_v if v is not None), None)


@dataclass(frozen=True, kw_only=True)
class OcppPowerSensorDescription(SensorEntityDescription):
    """Describe a charger sensor."""

    exists_fn: Callable[[ChargerConfig], bool] = lambda _: True
    value_fn: Callable[[ChargerState], StateType]


DESCRIPTIONS: tuple[OcppPowerSensorDescription, ...] = (
    OcppPowerSensorDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        options=[o for o in STATUS_OPTIONS.values() if o],
        value_fn=lambda state: _status(state.charging_status),
    ),
    OcppPowerSensorDescription(
        key="connector_status",
        translation_key="connector_status",
        device_class=SensorDeviceClass.ENUM,
        options=[o for o in STATUS_OPTIONS.values() if o],
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: _status(state.status),
    ),
    OcppPowerSensorDescription(
        key="power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda state: state.power_w,
    ),
    *(
        OcppPowerSensorDescription(
            key=f"current_phase_{phase}",
            translation_key=f"current_phase_{phase}",
            device_class=SensorDeviceClass.CURRENT,
            native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
            state_class=SensorStateClass.MEASUREMENT,
            suggested_display_precision=1,
            entity_registry_enabled_default=False,
            # A 1-phase charger reports only its own L1.
            exists_fn=lambda charger, phase=phase: phase == 1 or len(charger.phases) > 1,
            value_fn=_phase_current(phase - 1),
        )
        for phase in (1, 2, 3)
    ),
    OcppPowerSensorDescription(
        key="energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL_INCREASING,
        suggested_display_precision=2,
        value_fn=lambda state: _kwh(state.energy_wh),
    ),
    OcppPowerSensorDescription(
        key="session_energy",
        translation_key="session_energy",
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        state_class=SensorStateClass.TOTAL,
        suggested_display_precision=2,
        value_fn=lambda state: _kwh(state.session_energy_wh),
    ),
    OcppPowerSensorDescription(
        key="soc",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.soc_percent,
    ),
    OcppPowerSensorDescription(
        key="offered_current",
        translation_key="offered_current",
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: state.offered_current_a,
    ),
    OcppPowerSensorDescription(
        key="voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=_voltage,
    ),
)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the sensors of one charger."""
    return [
        OcppPowerSensor(hub, charger, description)
        for description in DESCRIPTIONS
        if description.exists_fn(charger)
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger sensors."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)


class OcppPowerSensor(OcppPowerChargerEntity, SensorEntity):
    """A charger sensor."""

    entity_description: OcppPowerSensorDescription

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.charger_state)
