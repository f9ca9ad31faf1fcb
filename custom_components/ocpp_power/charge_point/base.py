"""Version-neutral interface every OCPP charge-point handler offers to the rest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from .state import ChargerState, LimitPurpose


class ChargerHooks(Protocol):
    """What a charge-point handler asks of its owner (the hub)."""

    def charger_state(self, charger_id: str) -> ChargerState:
        """Return the state object this charger's handler fills (kept across reconnects)."""

    def boot_accepted(self, connection: ChargerConnection) -> bool:
        """Answer a BootNotification: True = Accepted, False = Pending (not yet added)."""

    def id_tag_allowed(self, charger_id: str, id_tag: str) -> bool:
        """Whether an id tag may start a session on this charger."""

    async def async_charger_ready(self, connection: ChargerConnection) -> None:
        """The charger booted and is configured: install its limits."""

    def session_changed(
        self, connection: ChargerConnection, connector_id: int, started: bool
    ) -> None:
        """A transaction started or stopped on a connector."""


class ChargerConnection(ABC):
    """One connected charger, as the hub and the manager see it.

    Implementations (v16.py, later v201.py) own the websocket and the OCPP details;
    callers use only this interface and `state`.
    """

    state: ChargerState

    def __init__(self) -> None:
        """Initialise listener bookkeeping."""
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call listener on every state change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def notify(self) -> None:
        """Tell every listener that `state` changed."""
        for listener in list(self._listeners):
            listener()

    @abstractmethod
    async def start(self) -> None:
        """Run the receive loop until the websocket closes."""

    @abstractmethod
    async def close(self) -> None:
        """Close the websocket and stop the receive loop."""

    @abstractmethod
    async def apply_limit(
        self,
        purpose: LimitPurpose,
        current_a: float | None,
        *,
        phases: int = 3,
        lease: timedelta | None = None,
    ) -> bool:
        """Install (or clear, with None) the limit for `purpose`; True if accepted.

        current_a is per phase; it is rounded down to what the charger takes and sent
        in A, or in W (V x A x phases) when the charger only takes W.
        """

    @abstractmethod
    async def remote_start(self, connector_id: int = 1, id_tag: str = "ocpp_power") -> bool:
        """Ask the charger to start a session; True if accepted."""

    @abstractmethod
    async def remote_stop(self) -> bool:
        """Ask the charger to stop the running session; True if accepted."""

    @abstractmethod
    async def set_availability(self, available: bool, connector_id: int = 0) -> bool:
        """Make the charger (or a connector) operative or inoperative."""

    @abstractmethod
    async def reset(self, hard: bool = False) -> bool:
        """Reboot the charger."""

    @abstractmethod
    async def unlock(self, connector_id: int = 1) -> bool:
        """Unlock the connector's cable."""
