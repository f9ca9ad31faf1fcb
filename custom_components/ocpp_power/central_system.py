"""OCPP-J websocket server: accepts chargers and hands each to its OCPP version handler."""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
import json
import logging
import ssl
from typing import Protocol

from aiohttp import WSMsgType, web

from .charge_point.base import ChargerConnection, ChargerHooks
from .charge_point.v16 import ChargePoint16
from .const import MAX_FRAME_BYTES

_LOGGER = logging.getLogger(__name__)

# Subprotocols in order of preference, with the handler class for each.
SUBPROTOCOLS: dict[str, type[ChargePoint16]] = {"ocpp1.6": ChargePoint16}
DEFAULT_SUBPROTOCOL = "ocpp1.6"


class Admission(StrEnum):
    """What the central system does with a charger that knocks."""

    ACCEPT = "accept"  # known charger, credentials good (or not required)
    DISCOVER = "discover"  # unknown charger, let it in so the user can add it
    BAD_CREDENTIALS = "bad_credentials"  # known charger, wrong or missing password
    UNKNOWN = "unknown"  # unknown charger, policy says reject


class CentralSystemHooks(ChargerHooks, Protocol):
    """What the central system asks of its owner (the hub)."""

    def admit(self, charger_id: str, password: str | None) -> Admission:
        """Decide whether a charger may connect."""

    def connected(self, connection: ChargerConnection) -> None:
        """A charger's websocket is open and its handler is running."""

    def disconnected(self, connection: ChargerConnection) -> None:
        """A charger's websocket has closed."""


class ConnectionClosedError(Exception):
    """The websocket closed; ends the ocpp receive loop."""


@dataclass(slots=True)
class ServerConfig:
    """Where and how to listen."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    max_frame_bytes: int = MAX_FRAME_BYTES


class WebSocketAdapter:
    """Adapt an aiohttp websocket to the recv()/send() pair the ocpp library uses."""

    def __init__(self, charger_id: str, ws: web.WebSocketResponse) -> None:
        """Wrap ws."""
        self._charger_id = charger_id
        self._ws = ws

    async def recv(self) -> str:
        """Return the next well-formed text frame; raise when the socket closes."""
        while True:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.TEXT:
                if _is_json_array(msg.data):
                    return msg.data
                # An OCPP-J frame we cannot parse has no unique id to answer to.
                _LOGGER.warning(
                    "Charger %s sent a frame that is not an OCPP-J message; ignored: %.200s",
                    self._charger_id,
                    msg.data,
                )
                continue
            if msg.type == WSMsgType.BINARY:
                _LOGGER.warning("Charger %s sent a binary frame; ignored", self._charger_id)
                continue
            if msg.type == WSMsgType.ERROR:
                _LOGGER.warning(
                    "Charger %s: websocket error, closing: %s",
                    self._charger_id,
                    self._ws.exception(),
                )
            raise ConnectionClosedError

    async def send(self, message: str) -> None:
        """Send one text frame."""
        if self._ws.closed:
            raise ConnectionClosedError
        await self._ws.send_str(message)

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        """Close the websocket."""
        await self._ws.close(code=code, message=message)

    @property
    def closed(self) -> bool:
        """Whether the websocket is closed."""
        return self._ws.closed


def _is_json_array(data: str) -> bool:
    """Return True if data parses as a JSON array (the shape of every OCPP-J frame)."""
    try:
        return isinstance(json.loads(data), list)
    except ValueError:
        return False


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Return (user, password) from an HTTP Basic Authorization header, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def choose_subprotocol(offered_header: str | None) -> str | None:
    """Pick our preferred subprotocol among those offered; none offered means OCPP 1.6."""
    if not offered_header:
        return DEFAULT_SUBPROTOCOL
    offered = [p.strip() for p in offered_header.split(",") if p.strip()]
    return next((p for p in SUBPROTOCOLS if p in offered), None)


class CentralSystem:
    """The websocket server; one handler per connected charger."""

    def __init__(self, config: ServerConfig, hooks: CentralSystemHooks) -> None:
        """Prepare the server; call start() to listen."""
        self._config = config
        self._hooks = hooks
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.connections: dict[str, ChargerConnection] = {}
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self.port: int = config.port

    async def start(self) -> None:
        """Bind the port and start accepting chargers."""
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        self._site = web.TCPSite(
            self._runner,
            self._config.host,
            self._config.port,
            ssl_context=self._config.ssl_context,
            reuse_address=True,
        )
        try:
            await self._site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        server = self._site._server  # aiohttp has no public accessor for the bound socket
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        _LOGGER.info(
            "OCPP central system listening on %s:%s%s",
            self._config.host,
            self.port,
            " (TLS)" if self._config.ssl_context else "",
        )

    async def stop(self) -> None:
        """Close every charger connection and free the port."""
        for connection in list(self.connections.values()):
            await connection.close()
        if self._handler_tasks:
            await asyncio.wait(list(self._handler_tasks), timeout=5)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        _LOGGER.info("OCPP central system on port %s stopped", self.port)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade one charger's HTTP request to an OCPP websocket session."""
        charger_id = request.match_info["path"].rstrip("/").rsplit("/", 1)[-1]
        peer = request.remote
        if not charger_id:
            _LOGGER.warning("Connection from %s without a charger id in the path refused", peer)
            return web.Response(status=404, text="charger id missing from path")

        offered = request.headers.get("Sec-WebSocket-Protocol")
        subprotocol = choose_subprotocol(offered)
        if subprotocol is None:
            _LOGGER.warning(
                "Charger %s (%s) offered only unsupported OCPP versions (%s); refused. "
                "Supported: %s",
                charger_id,
                peer,
                offered,
                ", ".join(SUBPROTOCOLS),
            )
            return web.Response(status=400, text="unsupported OCPP subprotocol")

        credentials = parse_basic_auth(request.headers.get("Authorization"))
        password = None
        if credentials is not None:
            user, password = credentials
            if user != charger_id:
                password = None  # a password for another identity proves nothing
        admission = self._hooks.admit(charger_id, password)
        if admission is Admission.BAD_CREDENTIALS:
            _LOGGER.warning("Charger %s (%s) refused: wrong or missing password", charger_id, peer)
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="OCPP"'},
                text="authentication required",
            )
        if admission is Admission.UNKNOWN:
            _LOGGER.warning("Unknown charger %s (%s) refused by hub policy", charger_id, peer)
            return web.Response(status=404, text="unknown charger")

        ws = web.WebSocketResponse(
            protocols=(subprotocol,),
            max_msg_size=self._config.max_frame_bytes,
            heartbeat=None,
            autoping=True,
        )
        if offered:
            await ws.prepare(request)
        else:
            # No Sec-WebSocket-Protocol offered: answer without one (RFC 6455), speak 1.6.
            ws = web.WebSocketResponse(max_msg_size=self._config.max_frame_bytes)
            await ws.prepare(request)

        handler_cls = SUBPROTOCOLS[subprotocol]
        adapter = WebSocketAdapter(charger_id, ws)
        connection = handler_cls(charger_id, adapter, self._hooks)
        if (old := self.connections.get(charger_id)) is not None:
            _LOGGER.info("Charger %s reconnected; closing its previous connection", charger_id)
            await old.close()
        self.connections[charger_id] = connection
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
        _LOGGER.info("Charger %s connected from %s (%s)", charger_id, peer, subprotocol)
        self._hooks.connected(connection)
        try:
            await connection.start()
        except ConnectionClosedError:
            pass
        finally:
            await connection.close()
            if task is not None:
                self._handler_tasks.discard(task)
            if self.connections.get(charger_id) is connection:
                del self.connections[charger_id]
            _LOGGER.info("Charger %s disconnected (code %s)", charger_id, ws.close_code)
            self._hooks.disconnected(connection)
        return ws
