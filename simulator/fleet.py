"""Run many simulated chargers together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from .charger import SimCharger
from .ev import EV


class SimFleet:
    """N simulated chargers with ids {prefix}{i}, started and stopped together."""

    def __init__(
        self,
        url: str,
        count: int,
        *,
        prefix: str = "sim",
        start_index: int = 1,
        ev_factory: Callable[[int], EV] | None = None,
        **charger_kwargs: Any,
    ) -> None:
        """Create the chargers; charger_kwargs go to every SimCharger."""
        self.chargers = [
            SimCharger(
                f"{prefix}{i}",
                url,
                ev=ev_factory(i) if ev_factory is not None else None,
                **charger_kwargs,
            )
            for i in range(start_index, start_index + count)
        ]

    def __len__(self) -> int:
        """Return the number of chargers."""
        return len(self.chargers)

    def __iter__(self) -> Iterator[SimCharger]:
        """Iterate over the chargers."""
        return iter(self.chargers)

    def __getitem__(self, key: int | str) -> SimCharger:
        """Return a charger by position or by id."""
        if isinstance(key, int):
            return self.chargers[key]
        for charger in self.chargers:
            if charger.charger_id == key:
                return charger
        raise KeyError(key)

    async def start(self, *, wait: bool = False, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Start every charger; with wait, return once all are booted."""
        await asyncio.gather(*(c.start(wait=wait, timeout=timeout) for c in self.chargers))

    async def stop(self) -> None:
        """Stop every charger."""
        await asyncio.gather(*(c.stop() for c in self.chargers))

    async def plug_in_all(self) -> list[int | None]:
        """Plug every charger's EV in; return the transaction ids."""
        return list(await asyncio.gather(*(c.plug_in() for c in self.chargers)))

    async def unplug_all(self) -> None:
        """Unplug every EV."""
        await asyncio.gather(*(c.unplug() for c in self.chargers))

    async def __aenter__(self) -> SimFleet:
        """Start without waiting for the boots."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop."""
        await self.stop()

    def snapshot(self) -> list[dict[str, Any]]:
        """State of every charger as plain dicts (for printing and assertions)."""
        return [
            {
                "id": c.charger_id,
                "connected": c.connected,
                "status": c.status,
                "transaction_id": c.transaction_id,
                "current_a": list(c.current_a),
                "power_w": c.power_w,
                "energy_wh": c.energy_wh,
                "limit_a": c.limit_a,
                "offered_a": c.offered_a,
                "soc": c.ev.soc if c.ev_plugged else None,
            }
            for c in self.chargers
        ]

    @property
    def total_power_w(self) -> float:
        """Sum of the chargers' power."""
        return sum(c.power_w for c in self.chargers)
