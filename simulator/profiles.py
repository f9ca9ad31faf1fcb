"""OCPP 1.6 charging-profile store and composite-limit evaluation (pure; time is an argument)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
import math
from typing import Any

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX_PROFILE = "TxProfile"
PURPOSES = (CHARGE_POINT_MAX, TX_DEFAULT, TX_PROFILE)
KINDS = ("Absolute", "Recurring", "Relative")
RECURRENCY_S = {"Daily": 86400.0, "Weekly": 7 * 86400.0}
ACCEPTED = "Accepted"
REJECTED = "Rejected"

type TimeLike = datetime | float | int | str


def to_timestamp(value: TimeLike) -> float:
    """Convert a datetime (naive = UTC), ISO 8601 string or Unix seconds to Unix seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        return to_timestamp(datetime.fromisoformat(value.strip()))
    return float(value)


def to_iso(ts: float) -> str:
    """Format Unix seconds as an OCPP (UTC, 'Z') timestamp."""
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def normalize_keys(data: Any) -> Any:
    """Return data with snake_case keys turned into OCPP camelCase (camelCase is kept)."""
    if isinstance(data, Mapping):
        return {_camel(str(k)): normalize_keys(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [normalize_keys(v) for v in data]
    return data


def plain_json(data: Any) -> Any:
    """Turn Decimals (the ocpp library parses profile numbers as Decimal) into JSON types."""
    if isinstance(data, Mapping):
        return {k: plain_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain_json(v) for v in data]
    if isinstance(data, bool | int | float | str) or data is None:
        return data
    number = float(data)
    return int(number) if number.is_integer() else number


@dataclass(frozen=True, slots=True)
class Period:
    """One chargingSchedulePeriod."""

    start: float
    limit: float
    number_phases: int | None


@dataclass(frozen=True, slots=True)
class Profile:
    """An installed charging profile, parsed once at install time."""

    connector_id: int
    profile_id: int
    stack_level: int
    purpose: str
    kind: str
    recurrency: str | None
    transaction_id: int | None
    valid_from: float | None
    valid_to: float | None
    start_schedule: float | None
    duration: float | None
    unit: str
    periods: tuple[Period, ...]
    installed_at: float
    raw: dict[str, Any]

    def period_at(self, now: float, tx_start: float | None) -> Period | None:
        """Return the period in force at `now`, or None when the profile is not active."""
        if self.valid_from is not None and now < self.valid_from:
            return None
        if self.valid_to is not None and now >= self.valid_to:
            return None
        start = self.schedule_start(now, tx_start)
        offset = now - start
        if offset < 0 or (self.duration is not None and offset >= self.duration):
            return None
        current: Period | None = None
        for period in self.periods:
            if period.start > offset:
                break
            current = period
        return current

    def schedule_start(self, now: float, tx_start: float | None) -> float:
        """Start of the schedule occurrence that governs `now`."""
        if self.kind == "Relative":
            # No transaction yet: the car would start now, so the schedule's first period rules.
            return now if tx_start is None else tx_start
        if self.kind == "Recurring":
            assert self.start_schedule is not None and self.recurrency is not None
            length = RECURRENCY_S[self.recurrency]
            return self.start_schedule + math.floor((now - self.start_schedule) / length) * length
        # Absolute without startSchedule: 1.6 leaves it open; the charger takes the moment
        # it received the profile.
        return self.start_schedule if self.start_schedule is not None else self.installed_at

    def boundaries(self, t0: float, t1: float, tx_start: float | None) -> set[float]:
        """Moments in [t0, t1) where this profile's contribution may change."""
        points = {t for t in (self.valid_from, self.valid_to) if t is not None}
        starts = [self.schedule_start(t0, tx_start)]
        if self.kind == "Relative" and tx_start is None:
            starts = [t0]
        if self.kind == "Recurring":
            assert self.recurrency is not None
            length = RECURRENCY_S[self.recurrency]
            while starts[-1] + length < t1:
                starts.append(starts[-1] + length)
        for start in starts:
            points.update(start + p.start for p in self.periods)
            if self.duration is not None:
                points.add(start + self.duration)
        return {t for t in points if t0 <= t < t1}


class ProfileStore:
    """Charging profiles installed on a charge point, per connector, as OCPP 1.6 keeps them."""

    def __init__(
        self,
        *,
        max_stack_level: int = 8,
        max_periods: int = 24,
        rate_units: Iterable[str] = ("A", "W"),
        number_of_connectors: int = 1,
    ) -> None:
        """Create an empty store with the charger's smart-charging capabilities."""
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.rate_units = tuple(rate_units)
        self.number_of_connectors = number_of_connectors
        self._profiles: list[Profile] = []

    def __len__(self) -> int:
        """Return the number of installed profiles."""
        return len(self._profiles)

    def profiles(self, connector_id: int | None = None) -> list[dict[str, Any]]:
        """Return the installed profiles (camelCase dicts), optionally for one connector."""
        return [
            dict(p.raw)
            for p in self._profiles
            if connector_id is None or p.connector_id == connector_id
        ]

    def install(
        self,
        connector_id: int,
        profile: Mapping[str, Any],
        now: TimeLike,
        *,
        transaction_id: int | None = None,
    ) -> str:
        """Validate and install a profile; return "Accepted" or "Rejected".

        transaction_id is the transaction running on the connector, if known: a TxProfile
        naming a different transaction is rejected.
        """
        try:
            parsed = self._parse(connector_id, profile, to_timestamp(now))
        except (KeyError, TypeError, ValueError, AssertionError):
            return REJECTED
        if (
            parsed.purpose == TX_PROFILE
            and transaction_id is not None
            and parsed.transaction_id is not None
            and parsed.transaction_id != transaction_id
        ):
            return REJECTED
        # 1.6: a profile with the same id, or the same stackLevel and purpose, is replaced.
        self._profiles = [
            p
            for p in self._profiles
            if p.profile_id != parsed.profile_id
            and not (
                p.connector_id == parsed.connector_id
                and p.stack_level == parsed.stack_level
                and p.purpose == parsed.purpose
            )
        ]
        self._profiles.append(parsed)
        return ACCEPTED

    def clear(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Remove profiles as ClearChargingProfile says; return whether any was removed."""
        if id is not None:
            # 1.6: with an id, only that profile is cleared; the other criteria are ignored.
            keep = [p for p in self._profiles if p.profile_id != id]
        else:
            keep = [
                p
                for p in self._profiles
                if not (
                    (connector_id is None or p.connector_id == connector_id)
                    and (purpose is None or p.purpose == purpose)
                    and (stack_level is None or p.stack_level == stack_level)
                )
            ]
        removed = len(keep) != len(self._profiles)
        self._profiles = keep
        return removed

    def end_transaction(self, connector_id: int) -> bool:
        """Drop the connector's TxProfiles, which live only as long as their transaction."""
        return self.clear(connector_id=connector_id, purpose=TX_PROFILE)

    def limit_a(
        self,
        connector_id: int,
        now: TimeLike,
        voltage: float = 230.0,
        phases: int = 3,
        transaction_active: bool = True,
        *,
        transaction_start: TimeLike | None = None,
    ) -> float | None:
        """Composite limit in A per phase at `now`, or None when no profile applies."""
        t = to_timestamp(now)
        tx_start = None if transaction_start is None else to_timestamp(transaction_start)
        limits = [
            self._amps(period, unit, voltage, phases)
            for period, unit in self._governing(connector_id, t, tx_start, transaction_active)
        ]
        return min(limits) if limits else None

    def next_change(
        self, now: TimeLike, horizon_s: float, *, transaction_start: TimeLike | None = None
    ) -> float | None:
        """First moment after `now` (within horizon_s) at which some profile may change."""
        t0 = to_timestamp(now)
        tx_start = None if transaction_start is None else to_timestamp(transaction_start)
        points = [
            t for p in self._profiles for t in p.boundaries(t0, t0 + horizon_s, tx_start) if t > t0
        ]
        return min(points, default=None)

    def composite_schedule(
        self,
        connector_id: int,
        now: TimeLike,
        duration_s: float,
        *,
        unit: str = "A",
        voltage: float = 230.0,
        phases: int = 3,
        transaction_active: bool = True,
        transaction_start: TimeLike | None = None,
        hardware_limit_a: float | None = None,
    ) -> dict[str, Any] | None:
        """Build a GetCompositeSchedule chargingSchedule for [now, now + duration_s).

        Returns None when some part of the window has no limit at all and no hardware limit
        is given to fill it.
        """
        t0 = to_timestamp(now)
        t1 = t0 + duration_s
        # A Relative schedule without a transaction is shown as if charging started now.
        tx_start = t0 if transaction_start is None else to_timestamp(transaction_start)
        points = {t0}
        for p in self._profiles:
            points |= p.boundaries(t0, t1, tx_start)
        periods: list[dict[str, Any]] = []
        last: float | None = None
        for t in sorted(points):
            amps = self.limit_a(
                connector_id,
                t,
                voltage,
                phases,
                transaction_active,
                transaction_start=tx_start,
            )
            if hardware_limit_a is not None:
                amps = hardware_limit_a if amps is None else min(amps, hardware_limit_a)
            if amps is None:
                return None
            value = amps if unit == "A" else amps * voltage * phases
            # The 1.6 schema wants multiples of 0.1; round down so the limit is never exceeded.
            value = math.floor(value * 10 + 1e-6) / 10
            if value != last:
                periods.append({"startPeriod": round(t - t0), "limit": value})
                last = value
        # Rounding start offsets to whole seconds can make two periods start together.
        deduped: dict[int, dict[str, Any]] = {}
        for period in periods:
            deduped[period["startPeriod"]] = period
        return {
            "duration": round(duration_s),
            "startSchedule": to_iso(t0),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": list(deduped.values()),
        }

    def _governing(
        self, connector_id: int, now: float, tx_start: float | None, transaction_active: bool
    ) -> list[tuple[Period, str]]:
        """The ChargePointMax period and the Tx/TxDefault period that together set the limit."""
        result = []
        if (cp_max := self._top(0, CHARGE_POINT_MAX, now, tx_start)) is not None:
            result.append(cp_max)
        tx: tuple[Period, str] | None = None
        if transaction_active and connector_id != 0:
            tx = self._top(connector_id, TX_PROFILE, now, tx_start)
        if tx is None and connector_id != 0:
            tx = self._top(connector_id, TX_DEFAULT, now, tx_start)
        if tx is None:
            tx = self._top(0, TX_DEFAULT, now, tx_start)
        if tx is not None:
            result.append(tx)
        return result

    def _top(
        self, connector_id: int, purpose: str, now: float, tx_start: float | None
    ) -> tuple[Period, str] | None:
        """Period of the highest-stack-level active profile of a purpose on a connector."""
        candidates = sorted(
            (p for p in self._profiles if p.connector_id == connector_id and p.purpose == purpose),
            key=lambda p: p.stack_level,
            reverse=True,
        )
        for profile in candidates:
            # An inactive top level (lease over, outside its schedule) lets the next one rule.
            if (period := profile.period_at(now, tx_start)) is not None:
                return period, profile.unit
        return None

    @staticmethod
    def _amps(period: Period, unit: str, voltage: float, phases: int) -> float:
        """Convert a period's limit to A per phase."""
        if unit == "A":
            return period.limit
        return round(period.limit / (voltage * (period.number_phases or phases)), 3)

    def _parse(self, connector_id: int, profile: Mapping[str, Any], now: float) -> Profile:
        """Parse and validate a csChargingProfiles dict; raise ValueError when invalid."""
        raw: dict[str, Any] = plain_json(normalize_keys(profile))
        purpose = raw["chargingProfilePurpose"]
        kind = raw["chargingProfileKind"]
        stack_level = int(raw["stackLevel"])
        schedule = raw["chargingSchedule"]
        unit = schedule["chargingRateUnit"]
        if purpose not in PURPOSES or kind not in KINDS:
            raise ValueError("unknown purpose or kind")
        if not 0 <= connector_id <= self.number_of_connectors:
            raise ValueError("no such connector")
        if purpose == CHARGE_POINT_MAX and connector_id != 0:
            raise ValueError("ChargePointMaxProfile belongs on connector 0")
        if purpose == TX_PROFILE and connector_id == 0:
            raise ValueError("TxProfile needs a connector")
        if not 0 <= stack_level <= self.max_stack_level:
            raise ValueError("stack level out of range")
        if unit not in self.rate_units:
            raise ValueError("rate unit not supported")
        recurrency = raw.get("recurrencyKind")
        start_schedule = schedule.get("startSchedule")
        if kind == "Recurring" and (recurrency not in RECURRENCY_S or start_schedule is None):
            raise ValueError("Recurring needs recurrencyKind and startSchedule")
        periods = tuple(
            Period(
                float(p["startPeriod"]),
                float(p["limit"]),
                None if p.get("numberPhases") is None else int(p["numberPhases"]),
            )
            for p in schedule["chargingSchedulePeriod"]
        )
        if not 0 < len(periods) <= self.max_periods:
            raise ValueError("wrong number of periods")
        if periods[0].start != 0:
            raise ValueError("first period must start at 0")
        if any(b.start <= a.start for a, b in pairwise(periods)):
            raise ValueError("periods must be in ascending order")
        if any(p.limit < 0 or (p.number_phases or 1) not in (1, 2, 3) for p in periods):
            raise ValueError("bad period")
        duration = schedule.get("duration")
        if duration is not None and float(duration) < 0:
            raise ValueError("negative duration")
        tx_id = raw.get("transactionId")
        return Profile(
            connector_id=connector_id,
            profile_id=int(raw["chargingProfileId"]),
            stack_level=stack_level,
            purpose=purpose,
            kind=kind,
            recurrency=recurrency if kind == "Recurring" else None,
            transaction_id=None if tx_id is None else int(tx_id),
            valid_from=_opt_ts(raw.get("validFrom")),
            valid_to=_opt_ts(raw.get("validTo")),
            start_schedule=_opt_ts(start_schedule),
            duration=None if duration is None else float(duration),
            unit=unit,
            periods=periods,
            installed_at=now,
            raw=raw,
        )


def _opt_ts(value: TimeLike | None) -> float | None:
    return None if value is None else to_timestamp(value)
