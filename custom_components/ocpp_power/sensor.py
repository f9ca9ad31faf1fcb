"""Sensors of OCPP Power Manager chargers and circuits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
from .const import METER_CURRENT, METER_NONE
from .entity import (
    OcppPowerChargerEntity,
    OcppPowerChargerPowerEntity,
    OcppPowerCircuitEntity,
    async_setup_charger_entities,
    async_setup_circuit_entities,
)
from .hub import ChargerConfig, OcppPowerConfigEntry, OcppPowerHub
from .models import ChargerPowerStatus, CircuitConfig, CircuitStatus, LimitReason

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


@dataclass(frozen=True, kw_only=True)
class OcppPowerAllocationSensorDescription(SensorEntityDescription):
    """Describe a charger sensor of the power manager."""

    value_fn: Callable[[ChargerPowerStatus], StateType]
    attributes_fn: Callable[[OcppPowerHub, ChargerPowerStatus], dict[str, Any]] | None = None


def _limiting_circuit(hub: OcppPowerHub, status: ChargerPowerStatus) -> dict[str, Any]:
    """Name the circuit that holds the charger back."""
    circuit_id = status.limiting_circuit
    circuit = hub.manager.circuits.get(circuit_id) if circuit_id else None
    return {"limiting_circuit": circuit.name if circuit else circuit_id}


ALLOCATION_DESCRIPTIONS: tuple[OcppPowerAllocationSensorDescription, ...] = (
    OcppPowerAllocationSensorDescription(
        key="allocated_current",
        translation_key="allocated_current",
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        value_fn=lambda status: status.allocated_a,
    ),
    OcppPowerAllocationSensorDescription(
        key="limit_reason",
        translation_key="limit_reason",
        device_class=SensorDeviceClass.ENUM,
        options=[reason.value for reason in LimitReason],
        value_fn=lambda status: status.reason.value,
        attributes_fn=_limiting_circuit,
    ),
)


# ---------------------------------------------------------------- circuits

PHASE_NAMES = ("L1", "L2", "L3")


def _carried(circuit: CircuitConfig, per_phase: tuple[float | None, ...]) -> dict[str, float]:
    """Return the values of the phases the circuit carries, keyed l1, l2, l3."""
    return {
        name.lower(): round(value, 2)
        for name, value in zip(PHASE_NAMES, per_phase, strict=True)
        if name in circuit.phases and value is not None
    }


def _highest(circuit: CircuitConfig, per_phase: tuple[float | None, ...]) -> float | None:
    """Return the highest value over the phases the circuit carries."""
    return max(_carried(circuit, per_phase).values(), default=None)


def _measured_phase(index: int) -> Callable[[CircuitConfig, CircuitStatus], StateType]:
    """Return a value function for the measured current of panel phase `index`."""

    def value(_: CircuitConfig, status: CircuitStatus) -> StateType:
        return None if status.measured_a is None else status.measured_a[index]

    return value


@dataclass(frozen=True, kw_only=True)
class OcppPowerCircuitSensorDescription(SensorEntityDescription):
    """Describe a circuit sensor."""

    exists_fn: Callable[[CircuitConfig], bool] = lambda _: True
    value_fn: Callable[[CircuitConfig, CircuitStatus], StateType]
    attributes_fn: Callable[[CircuitConfig, CircuitStatus], dict[str, Any]] | None = None


_AMPS: dict[str, Any] = {
    "device_class": SensorDeviceClass.CURRENT,
    "native_unit_of_measurement": UnitOfElectricCurrent.AMPERE,
    "state_class": SensorStateClass.MEASUREMENT,
    "suggested_display_precision": 1,
}
_WATTS: dict[str, Any] = {
    "device_class": SensorDeviceClass.POWER,
    "native_unit_of_measurement": UnitOfPower.WATT,
    "state_class": SensorStateClass.MEASUREMENT,
    "suggested_display_precision": 0,
}

CIRCUIT_DESCRIPTIONS: tuple[OcppPowerCircuitSensorDescription, ...] = (
    *(
        OcppPowerCircuitSensorDescription(
            key=f"measured_current_{name.lower()}",
            translation_key=f"measured_current_{name.lower()}",
            exists_fn=lambda circuit, name=name: (
                circuit.meter == METER_CURRENT and name in circuit.phases
            ),
            value_fn=_measured_phase(index),
            **_AMPS,
        )
        for index, name in enumerate(PHASE_NAMES)
    ),
    # The meter's power; with current sensors, voltage x the sum of the phase currents.
    OcppPowerCircuitSensorDescription(
        key="power",
        exists_fn=lambda circuit: circuit.meter != METER_NONE,
        value_fn=lambda _, status: status.measured_power_w,
        **_WATTS,
    ),
    OcppPowerCircuitSensorDescription(
        key="ev_load",
        translation_key="ev_load",
        value_fn=lambda circuit, status: _highest(circuit, status.ev_load_a),
        attributes_fn=lambda circuit, status: _carried(circuit, status.ev_load_a),
        **_AMPS,
    ),
    OcppPowerCircuitSensorDescription(
        key="ev_power",
        translation_key="ev_power",
        value_fn=lambda _, status: status.ev_power_w,
        **_WATTS,
    ),
    # Without a meter the other loads are unknown (counted as 0): no sensor then.
    OcppPowerCircuitSensorDescription(
        key="non_ev_load",
        translation_key="non_ev_load",
        exists_fn=lambda circuit: circuit.meter != METER_NONE,
        value_fn=lambda circuit, status: _highest(circuit, status.non_ev_load_a),
        attributes_fn=lambda circuit, status: _carried(circuit, status.non_ev_load_a),
        **_AMPS,
    ),
    OcppPowerCircuitSensorDescription(
        key="allocated_current",
        translation_key="allocated_current",
        value_fn=lambda circuit, status: _highest(circuit, status.allocated_a),
        attributes_fn=lambda circuit, status: _carried(circuit, status.allocated_a),
        **_AMPS,
    ),
    OcppPowerCircuitSensorDescription(
        key="headroom",
        translation_key="headroom",
        exists_fn=lambda circuit: circuit.max_current is not None,
        value_fn=lambda _, status: status.headroom_a,
        **_AMPS,
    ),
    OcppPowerCircuitSensorDescription(
        key="utilisation",
        translation_key="utilisation",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda _, status: status.utilisation_pct,
    ),
)


def _build(hub: OcppPowerHub, charger: ChargerConfig) -> list[Entity]:
    """Return the sensors of one charger."""
    return [
        *(
            OcppPowerSensor(hub, charger, description)
            for description in DESCRIPTIONS
            if description.exists_fn(charger)
        ),
        *(
            OcppPowerAllocationSensor(hub, charger, description)
            for description in ALLOCATION_DESCRIPTIONS
        ),
    ]


def _build_circuit(hub: OcppPowerHub, circuit: CircuitConfig) -> list[OcppPowerCircuitEntity]:
    """Return the sensors of one circuit."""
    return [
        OcppPowerCircuitSensor(hub, circuit, description)
        for description in CIRCUIT_DESCRIPTIONS
        if description.exists_fn(circuit)
    ]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OcppPowerConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up charger and circuit sensors."""
    async_setup_charger_entities(hass, entry, async_add_entities, _build)
    async_setup_circuit_entities(hass, entry, async_add_entities, _build_circuit)


class OcppPowerSensor(OcppPowerChargerEntity, SensorEntity):
    """A charger sensor."""

    entity_description: OcppPowerSensorDescription

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.charger_state)


class OcppPowerAllocationSensor(OcppPowerChargerPowerEntity, SensorEntity):
    """A charger sensor of the power manager: its allocation and why."""

    entity_description: OcppPowerAllocationSensorDescription

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.power_status)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the sensor's attributes, if it has any."""
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self.hub, self.power_status)


class OcppPowerCircuitSensor(OcppPowerCircuitEntity, SensorEntity):
    """A circuit sensor."""

    entity_description: OcppPowerCircuitSensorDescription

    @property
    def native_value(self) -> StateType:
        """Return the sensor's value."""
        return self.entity_description.value_fn(self.circuit, self.status)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the per-phase values, for the phases the circuit carries."""
        if (attributes_fn := self.entity_description.attributes_fn) is None:
            return None
        return attributes_fn(self.circuit, self.status)
