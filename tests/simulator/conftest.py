"""Fixtures for the simulator tests: a tiny OCPP 1.6 central system on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
import time
from typing import Any

from aiohttp import WSMsgType, web
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
import pytest

from simulator.charger import SimCharger


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the suite-wide fixture: the simulator needs no Home Assistant instance."""


class _ServerWs:
    """recv()/send() over an aiohttp server websocket."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def recv(self) -> str:
        msg = await self._ws.receive()
        if msg.type is WSMsgType.TEXT:
            return str(msg.data)
        raise ConnectionError("closed")

    async def send(self, data: str) -> None:
        await self._ws.send_str(data)


class CsmsChargePoint(ChargePoint):
    """Central-system side of one charger connection."""

    def __init__(self, charger_id: str, ws: _ServerWs, server: FakeCentralSystem) -> None:
        super().__init__(charger_id, ws, response_timeout=5)
        self.server = server

    def _record(self, action: str, **payload: Any) -> None:
        self.server.messages.append((self.id, action, payload))
        self.server.notify()

    @on("BootNotification")
    def on_boot(self, **payload: Any) -> call_result.BootNotification:
        self._record("BootNotification", **payload)
        return call_result.BootNotification(
            current_time=_now_iso(),
            interval=self.server.boot_interval,
            status=self.server.boot_statuses.pop(0) if self.server.boot_statuses else "Accepted",
        )

    @on("Heartbeat")
    def on_heartbeat(self, **payload: Any) -> call_result.Heartbeat:
        self._record("Heartbeat", **payload)
        return call_result.Heartbeat(current_time=_now_iso())

    @on("StatusNotification")
    def on_status(self, **payload: Any) -> call_result.StatusNotification:
        self._record("StatusNotification", **payload)
        return call_result.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        self._record("Authorize", id_tag=id_tag)
        status = "Accepted" if id_tag in self.server.accepted_tags else "Invalid"
        return call_result.Authorize(id_tag_info={"status": status})

    @on("StartTransaction")
    def on_start(self, **payload: Any) -> call_result.StartTransaction:
        self._record("StartTransaction", **payload)
        self.server.next_transaction_id += 1
        return call_result.StartTransaction(
            transaction_id=self.server.next_transaction_id, id_tag_info={"status": "Accepted"}
        )

    @on("StopTransaction")
    def on_stop(self, **payload: Any) -> call_result.StopTransaction:
        self._record("StopTransaction", **payload)
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def on_meter_values(self, **payload: Any) -> call_result.MeterValues:
        self._record("MeterValues", **payload)
        return call_result.MeterValues()


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeCentralSystem:
    """An OCPP 1.6 central system that records what chargers send and lets tests call them."""

    def __init__(self, *, password: str | None = None, boot_interval: int = 60) -> None:
        self.password = password
        self.boot_interval = boot_interval
        self.boot_statuses: list[str] = []  # popped per boot; empty = Accepted
        self.accepted_tags = {"SIMTAG"}
        self.next_transaction_id = 100
        self.port = 0
        self.messages: list[tuple[str, str, dict[str, Any]]] = []
        self.auth_headers: list[str | None] = []
        self.subprotocols: list[str | None] = []
        self.charge_points: dict[str, CsmsChargePoint] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{charger_id}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Drop every connection and stop listening (the port is kept for a restart)."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.charge_points.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        charger_id = request.match_info["charger_id"]
        header = request.headers.get("Authorization")
        self.auth_headers.append(header)
        self.notify()
        if self.password is not None:
            expected = base64.b64encode(f"{charger_id}:{self.password}".encode()).decode()
            if header != f"Basic {expected}":
                return web.Response(status=401)
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        self.subprotocols.append(ws.ws_protocol)
        self._sockets.add(ws)
        cp = CsmsChargePoint(charger_id, _ServerWs(ws), self)
        self.charge_points[charger_id] = cp
        self.notify()
        try:
            await cp.start()
        except ConnectionError:
            pass
        finally:
            self._sockets.discard(ws)
            if self.charge_points.get(charger_id) is cp:
                del self.charge_points[charger_id]
            self.notify()
        return ws

    def of(self, action: str, charger_id: str | None = None) -> list[dict[str, Any]]:
        """Payloads of one action, in arrival order."""
        return [p for cid, a, p in self.messages if a == action and charger_id in (None, cid)]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                changed = self.changed
                await changed.wait()

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


@pytest.fixture
async def csms(socket_enabled: None) -> AsyncIterator[FakeCentralSystem]:
    """A running fake central system."""
    server = FakeCentralSystem()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_charger() -> AsyncIterator[Callable[..., SimCharger]]:
    """Factory for fast-reacting SimChargers; every one is stopped after the test."""
    created: list[SimCharger] = []

    def factory(charger_id: str, url: str, **kwargs: Any) -> SimCharger:
        kwargs.setdefault("reaction_delay_s", 0.2)
        kwargs.setdefault("meter_interval_s", 0.5)
        kwargs.setdefault("step_s", 0.1)
        kwargs.setdefault("backoff_s", (0.05, 0.2))
        charger = SimCharger(charger_id, url, **kwargs)
        created.append(charger)
        return charger

    yield factory
    for charger in created:
        await charger.stop()
