"""Pure tests of the OCPP 1.6 charging-profile store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from simulator.profiles import ProfileStore, to_iso, to_timestamp

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # a Monday
HOUR = 3600.0


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def profile(
    profile_id: int,
    limit: float | list[tuple[int, float]],
    *,
    stack_level: int = 0,
    purpose: str = "TxDefaultProfile",
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = T0 - timedelta(minutes=1),
    duration: int | None = None,
    number_phases: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    periods = [(0, limit)] if isinstance(limit, int | float) else limit
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": s, "limit": lim}
            | ({"numberPhases": number_phases} if number_phases else {})
            for s, lim in periods
        ],
    }
    if start is not None and kind != "Relative":
        schedule["startSchedule"] = iso(start)
    if duration is not None:
        schedule["duration"] = duration
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }


@pytest.fixture
def store() -> ProfileStore:
    return ProfileStore()


def test_empty_store_has_no_limit(store: ProfileStore) -> None:
    assert store.limit_a(1, T0) is None


def test_higher_stack_level_wins_and_lease_expiry_falls_back(store: ProfileStore) -> None:
    assert store.install(1, profile(1, 10, stack_level=0), T0) == "Accepted"
    # The dynamic setpoint: a lease of 15 minutes from one minute ago.
    assert store.install(1, profile(2, 16, stack_level=1, duration=900), T0) == "Accepted"
    assert store.limit_a(1, T0) == 16
    assert store.limit_a(1, T0 + timedelta(minutes=13)) == 16
    assert store.limit_a(1, T0 + timedelta(minutes=14)) == 10  # lease over: safe default
    # A lease given by validTo behaves the same.
    store.install(1, profile(2, 20, stack_level=1, validTo=iso(T0 + timedelta(seconds=30))), T0)
    assert store.limit_a(1, T0 + timedelta(seconds=29)) == 20
    assert store.limit_a(1, T0 + timedelta(seconds=30)) == 10


def test_charge_point_max_caps_tx_default(store: ProfileStore) -> None:
    store.install(0, profile(9, 13, purpose="ChargePointMaxProfile"), T0)
    store.install(1, profile(1, 16), T0)
    assert store.limit_a(1, T0) == 13
    store.install(1, profile(1, 8), T0)
    assert store.limit_a(1, T0) == 8
    store.clear(id=1)
    assert store.limit_a(1, T0) == 13  # the cap alone still limits


def test_tx_profile_only_during_transaction(store: ProfileStore) -> None:
    store.install(1, profile(1, 16), T0)
    store.install(1, profile(5, 7, purpose="TxProfile", stack_level=0), T0)
    assert store.limit_a(1, T0, transaction_active=True) == 7
    assert store.limit_a(1, T0, transaction_active=False) == 16
    assert store.end_transaction(1)
    assert store.limit_a(1, T0, transaction_active=True) == 16


def test_tx_profile_beats_tx_default_regardless_of_stack_level(store: ProfileStore) -> None:
    store.install(1, profile(1, 16, stack_level=5), T0)
    store.install(1, profile(5, 20, purpose="TxProfile", stack_level=0), T0)
    assert store.limit_a(1, T0) == 20


def test_watts_convert_with_voltage_and_phases(store: ProfileStore) -> None:
    store.install(1, profile(1, 11040, unit="W"), T0)
    assert store.limit_a(1, T0, voltage=230, phases=3) == pytest.approx(16.0)
    assert store.limit_a(1, T0, voltage=230, phases=1) == pytest.approx(48.0)
    store.install(1, profile(1, 3680, unit="W", number_phases=1), T0)
    assert store.limit_a(1, T0, voltage=230, phases=3) == pytest.approx(16.0)


def test_valid_from_and_valid_to(store: ProfileStore) -> None:
    store.install(
        1,
        profile(
            1,
            12,
            validFrom=iso(T0 + timedelta(hours=1)),
            validTo=iso(T0 + timedelta(hours=2)),
        ),
        T0,
    )
    assert store.limit_a(1, T0) is None
    assert store.limit_a(1, T0 + timedelta(hours=1)) == 12
    assert store.limit_a(1, T0 + timedelta(hours=2)) is None


def test_schedule_periods_and_duration(store: ProfileStore) -> None:
    store.install(1, profile(1, [(0, 16), (600, 10), (1200, 6)], start=T0, duration=1800), T0)
    assert store.limit_a(1, T0 - timedelta(seconds=1)) is None  # not started yet
    assert store.limit_a(1, T0 + timedelta(seconds=599)) == 16
    assert store.limit_a(1, T0 + timedelta(seconds=600)) == 10
    assert store.limit_a(1, T0 + timedelta(seconds=1799)) == 6
    assert store.limit_a(1, T0 + timedelta(seconds=1800)) is None


def test_recurring_daily_and_weekly(store: ProfileStore) -> None:
    midnight = T0.replace(hour=0)
    # Daily: 16 A all day except 6 A from 17:00 to 21:00.
    daily = profile(
        1,
        [(0, 16), (17 * 3600, 6), (21 * 3600, 16)],
        kind="Recurring",
        start=midnight,
        recurrencyKind="Daily",
    )
    assert store.install(1, daily, T0) == "Accepted"
    assert store.limit_a(1, midnight + timedelta(days=3, hours=18)) == 6
    assert store.limit_a(1, midnight + timedelta(days=3, hours=22)) == 16
    # Weekly at a higher stack level, only for the first day of the week (Monday).
    weekly = profile(
        2,
        8,
        kind="Recurring",
        start=midnight,
        duration=86400,
        stack_level=1,
        recurrencyKind="Weekly",
    )
    store.install(1, weekly, T0)
    assert store.limit_a(1, midnight + timedelta(days=7, hours=10)) == 8  # next Monday
    assert store.limit_a(1, midnight + timedelta(days=8, hours=10)) == 16  # Tuesday: daily rules


def test_recurring_needs_recurrency_kind(store: ProfileStore) -> None:
    assert store.install(1, profile(1, 16, kind="Recurring"), T0) == "Rejected"


def test_relative_counts_from_transaction_start(store: ProfileStore) -> None:
    store.install(
        1, profile(1, [(0, 6), (60, 16)], kind="Relative", purpose="TxDefaultProfile"), T0
    )
    assert store.limit_a(1, T0, transaction_start=T0 - timedelta(seconds=30)) == 6
    assert store.limit_a(1, T0, transaction_start=T0 - timedelta(seconds=90)) == 16
    assert store.limit_a(1, T0, transaction_active=False) == 6  # would start now


def test_replacement_by_id_and_by_stack_level_and_purpose(store: ProfileStore) -> None:
    store.install(1, profile(1, 10, stack_level=0), T0)
    store.install(1, profile(1, 12, stack_level=2), T0)  # same id, moved to level 2
    assert len(store) == 1
    assert store.limit_a(1, T0) == 12
    store.install(1, profile(7, 14, stack_level=2), T0)  # same level and purpose
    assert len(store) == 1
    assert store.profiles()[0]["chargingProfileId"] == 7
    store.install(0, profile(8, 9, stack_level=2), T0)  # other connector: kept apart
    assert len(store) == 2


def test_connector_specific_tx_default_beats_connector_zero(store: ProfileStore) -> None:
    store.install(0, profile(1, 10, stack_level=3), T0)
    assert store.limit_a(1, T0) == 10
    store.install(1, profile(2, 14, stack_level=0, duration=120), T0)
    assert store.limit_a(1, T0) == 14
    assert store.limit_a(1, T0 + timedelta(minutes=5)) == 10  # expired: connector 0 applies


def test_clear_by_criteria(store: ProfileStore) -> None:
    store.install(0, profile(1, 32, purpose="ChargePointMaxProfile"), T0)
    store.install(1, profile(2, 10, stack_level=0), T0)
    store.install(1, profile(3, 16, stack_level=1), T0)
    assert not store.clear(id=42)
    assert store.clear(purpose="TxDefaultProfile", stack_level=1)
    assert store.limit_a(1, T0) == 10
    assert not store.clear(connector_id=0, purpose="TxDefaultProfile")
    assert store.clear(connector_id=1)
    assert store.limit_a(1, T0) == 32
    assert store.clear()
    assert len(store) == 0


@pytest.mark.parametrize(
    ("connector_id", "changes"),
    [
        (1, {"chargingProfilePurpose": "ChargePointMaxProfile"}),
        (0, {"chargingProfilePurpose": "TxProfile"}),
        (2, {}),
        (1, {"stackLevel": 9}),
        (1, {"chargingProfileKind": "Sometimes"}),
        (1, {"chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": []}}),
        (
            1,
            {
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 6},
                        {"startPeriod": 0, "limit": 8},
                    ],
                }
            },
        ),
        (
            1,
            {
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 10, "limit": 6}],
                }
            },
        ),
        (
            1,
            {
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [
                        {"startPeriod": i * 60, "limit": 6} for i in range(25)
                    ],
                }
            },
        ),
    ],
)
def test_invalid_profiles_are_rejected(
    store: ProfileStore, connector_id: int, changes: dict[str, Any]
) -> None:
    assert store.install(connector_id, profile(1, 10) | changes, T0) == "Rejected"
    assert len(store) == 0


def test_rate_unit_must_be_allowed() -> None:
    store = ProfileStore(rate_units=("A",))
    assert store.install(1, profile(1, 7000, unit="W"), T0) == "Rejected"
    assert store.install(1, profile(1, 10, unit="A"), T0) == "Accepted"


def test_tx_profile_for_another_transaction_is_rejected(store: ProfileStore) -> None:
    tx = profile(1, 10, purpose="TxProfile", transactionId=5)
    assert store.install(1, tx, T0, transaction_id=6) == "Rejected"
    assert store.install(1, tx, T0, transaction_id=5) == "Accepted"


def test_accepts_snake_case_and_decimals_as_the_ocpp_library_delivers(store: ProfileStore) -> None:
    snake = {
        "charging_profile_id": 3,
        "stack_level": 1,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": {
            "charging_rate_unit": "A",
            "start_schedule": iso(T0),
            "charging_schedule_period": [{"start_period": 0, "limit": Decimal("12.5")}],
        },
    }
    assert store.install(1, snake, T0) == "Accepted"
    assert store.limit_a(1, T0) == 12.5
    assert store.profiles(1)[0]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 12.5


def test_absolute_without_start_schedule_starts_when_received(store: ProfileStore) -> None:
    store.install(1, profile(1, 10, start=None, duration=60), T0)
    assert store.limit_a(1, T0 + timedelta(seconds=59)) == 10
    assert store.limit_a(1, T0 + timedelta(seconds=60)) is None


def test_time_arguments_accept_datetimes_and_unix_seconds(store: ProfileStore) -> None:
    store.install(1, profile(1, 10, duration=120), T0.timestamp())
    assert store.limit_a(1, T0.timestamp()) == store.limit_a(1, T0) == 10
    assert to_timestamp(to_iso(T0.timestamp())) == T0.timestamp()
    assert to_timestamp(T0.replace(tzinfo=None)) == T0.timestamp()


def test_composite_schedule(store: ProfileStore) -> None:
    store.install(0, profile(9, 20, purpose="ChargePointMaxProfile"), T0)
    store.install(1, profile(1, 10, stack_level=0), T0)
    store.install(1, profile(2, [(0, 16), (300, 25)], stack_level=1, start=T0, duration=600), T0)
    schedule = store.composite_schedule(1, T0, 900, hardware_limit_a=32)
    assert schedule is not None
    assert schedule["startSchedule"] == to_iso(T0.timestamp())
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16},
        {"startPeriod": 300, "limit": 20},
        {"startPeriod": 600, "limit": 10},
    ]
    watts = store.composite_schedule(1, T0, 900, unit="W", hardware_limit_a=32)
    assert watts is not None
    assert watts["chargingSchedulePeriod"][0] == {"startPeriod": 0, "limit": 16 * 230 * 3}
    assert store.composite_schedule(1, T0 + timedelta(hours=1), 60, hardware_limit_a=32) == {
        "duration": 60,
        "startSchedule": to_iso(T0.timestamp() + HOUR),
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
    }
    empty = ProfileStore()
    assert empty.composite_schedule(1, T0, 60) is None
    assert empty.composite_schedule(1, T0, 60, hardware_limit_a=16) is not None


def test_next_change(store: ProfileStore) -> None:
    assert store.next_change(T0, 3600) is None
    store.install(1, profile(1, [(0, 16), (600, 10)], start=T0, duration=900), T0)
    t = T0.timestamp()
    assert store.next_change(T0, 3600) == t + 600
    assert store.next_change(t + 600, 3600) == t + 900
    assert store.next_change(t + 600, 60) is None
