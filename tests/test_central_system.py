"""The OCPP websocket server: admission, subprotocols, robustness, reconnects, TLS, unload."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
import socket
import ssl
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ocpp_power.central_system import choose_subprotocol, parse_basic_auth
from custom_components.ocpp_power.const import DOMAIN

from .helpers import DEFAULT_PASSWORD, charger_subentry, setup_hub, ws_url

pytestmark = pytest.mark.usefixtures("socket_enabled")


class RawCharger:
    """A bare OCPP-J client: sends frames by hand to probe the server."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next_id = 0

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a Call and return the matching CallResult or CallError frame."""
        self._next_id += 1
        unique_id = f"raw-{self._next_id}"
        await self.ws.send_str(json.dumps([2, unique_id, action, payload]))
        return await self.reply_to(unique_id)

    async def reply_to(self, unique_id: str) -> list[Any]:
        """Answer server calls (accepting them) until the reply to unique_id arrives."""
        while True:
            msg = await self.ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame = json.loads(msg.data)
            if frame[0] == 2:  # a call from the server: answer it minimally
                await self.ws.send_str(json.dumps([3, frame[1], _answer(frame[2])]))
                continue
            if frame[1] == unique_id:
                return frame


async def _wait_closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Read (and drop) frames until the server closes the websocket."""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return


def _answer(action: str) -> dict[str, Any]:
    if action == "GetConfiguration":
        return {"configurationKey": [], "unknownKey": []}
    return {"status": "Accepted"}


async def _connect(
    session: aiohttp.ClientSession,
    url: str,
    *,
    charger_id: str,
    password: str | None = DEFAULT_PASSWORD,
    protocols: tuple[str, ...] = ("ocpp1.6",),
    **kwargs: Any,
) -> aiohttp.ClientWebSocketResponse:
    auth = aiohttp.BasicAuth(charger_id, password) if password is not None else None
    return await session.ws_connect(url, protocols=protocols, auth=auth, **kwargs)


BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Wallbox 1"}


def test_parse_basic_auth() -> None:
    assert parse_basic_auth("Basic Y3AxOnNlY3JldA==") == ("cp1", "secret")
    assert parse_basic_auth("Basic !!!") is None
    assert parse_basic_auth("Bearer abc") is None
    assert parse_basic_auth(None) is None


def test_choose_subprotocol() -> None:
    assert choose_subprotocol(None) == "ocpp1.6"
    assert choose_subprotocol("ocpp2.1, ocpp1.6") == "ocpp1.6"
    assert choose_subprotocol("ocpp1.5") is None


async def test_boot_is_accepted_and_state_tracked(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        assert ws.protocol == "ocpp1.6"
        charger = RawCharger(ws)
        reply = await charger.call("BootNotification", BOOT)
        assert reply[0] == 3
        assert reply[2]["status"] == "Accepted"
        await charger.call(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
        )
        state = entry.runtime_data.state("cp1")
        assert state.connected
        assert (state.vendor, state.model) == ("Acme", "Wallbox 1")
        assert state.connectors[1].status == "available"
        await ws.close()
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("password", "expected_status"),
    [(None, 401), ("wrong-password", 401)],
)
async def test_bad_credentials_are_refused(
    hass: HomeAssistant, password: str | None, expected_status: int
) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await _connect(session, ws_url(entry, "cp1"), charger_id="cp1", password=password)
        assert err.value.status == expected_status
    assert entry.runtime_data.connection("cp1") is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_password_not_needed_when_basic_auth_off(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1", password=None)], basic_auth=False)
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1", password=None)
        reply = await RawCharger(ws).call("BootNotification", BOOT)
        assert reply[2]["status"] == "Accepted"
        await ws.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_unknown_charger_rejected_by_policy(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [], unknown_chargers="reject")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await _connect(session, ws_url(entry, "stranger"), charger_id="stranger")
        assert err.value.status == 404
    await hass.config_entries.async_unload(entry.entry_id)


async def test_unknown_charger_starts_discovery(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [], unknown_chargers="discover")
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, ws_url(entry, "newcomer"), charger_id="newcomer")
        reply = await RawCharger(ws).call("BootNotification", BOOT)
        # Held pending until the user adds it.
        assert reply[2]["status"] == "Pending"
        await hass.async_block_till_done()
        flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        assert len(flows) == 1
        assert flows[0]["context"]["source"] == "integration_discovery"
        assert flows[0]["context"]["unique_id"] == "charger_newcomer"
        await ws.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_unsupported_subprotocol_refused(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await _connect(session, ws_url(entry, "cp1"), charger_id="cp1", protocols=("ocpp1.5",))
        assert err.value.status == 400
    assert "offered only unsupported OCPP versions" in caplog.text
    await hass.config_entries.async_unload(entry.entry_id)


async def test_no_subprotocol_means_ocpp16(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1", protocols=())
        reply = await RawCharger(ws).call("BootNotification", BOOT)
        assert reply[2]["status"] == "Accepted"
        await ws.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_bad_frames_do_not_break_the_connection(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        charger = RawCharger(ws)
        await charger.call("BootNotification", BOOT)
        await ws.send_str("this is not json {")
        await ws.send_bytes(b"\x00\x01")
        reply = await charger.call("FlyToTheMoon", {})
        assert reply[0] == 4
        assert reply[2] in ("NotImplemented", "NotSupported")
        # A known action with a payload that breaks the schema: FormationViolation-type error.
        reply = await charger.call("StatusNotification", {"connectorId": "one"})
        assert reply[0] == 4
        # DataTransfer is answered, never a crash.
        reply = await charger.call("DataTransfer", {"vendorId": "com.acme", "data": "x"})
        assert reply[:1] == [3]
        assert reply[2]["status"] == "UnknownVendorId"
        # The connection still works.
        reply = await charger.call("Heartbeat", {})
        assert reply[0] == 3
        assert "currentTime" in reply[2]
        await ws.close()
    assert "not an OCPP-J message" in caplog.text
    await hass.config_entries.async_unload(entry.entry_id)


async def test_oversize_frame_closes_only_that_connection(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1"), charger_subentry("cp2")])
    async with aiohttp.ClientSession() as session:
        ws1 = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        ws2 = await _connect(session, ws_url(entry, "cp2"), charger_id="cp2")
        await RawCharger(ws1).call("BootNotification", BOOT)
        await RawCharger(ws2).call("BootNotification", BOOT)
        await ws1.send_str(json.dumps([2, "big", "DataTransfer", {"vendorId": "x" * 100_000}]))
        await _wait_closed(ws1)
        assert ws1.close_code == 1009  # message too big
        await hass.async_block_till_done()
        assert entry.runtime_data.connection("cp1") is None
        # The other charger is untouched, and cp1 may come back.
        assert (await RawCharger(ws2).call("Heartbeat", {}))[0] == 3
        ws1 = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        assert (await RawCharger(ws1).call("Heartbeat", {}))[0] == 3
        await ws1.close()
        await ws2.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_reconnect_replaces_previous_connection(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    hub = entry.runtime_data
    async with aiohttp.ClientSession() as session:
        old = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        await RawCharger(old).call("BootNotification", BOOT)
        first = hub.connection("cp1")
        new = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        await _wait_closed(old)
        reply = await RawCharger(new).call("BootNotification", BOOT)
        assert reply[2]["status"] == "Accepted"
        await hass.async_block_till_done()
        second = hub.connection("cp1")
        assert second is not None
        assert second is not first
        assert hub.state("cp1").connected
        assert len(hub.central_system.connections) == 1
        await new.close()
    await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_closes_chargers_and_frees_port(hass: HomeAssistant) -> None:
    entry = await setup_hub(hass, [charger_subentry("cp1")])
    port = entry.runtime_data.port
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, ws_url(entry, "cp1"), charger_id="cp1")
        await RawCharger(ws).call("BootNotification", BOOT)
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert entry.state is ConfigEntryState.NOT_LOADED
        await _wait_closed(ws)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # raises if the port were still taken


async def test_port_in_use_retries_setup(hass: HomeAssistant) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        entry = MockConfigEntry(
            domain=DOMAIN,
            data={"host": "127.0.0.1", "port": port, "basic_auth": True},
        )
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        assert entry.state is ConfigEntryState.SETUP_RETRY
        assert str(port) in (entry.reason or "")
    await hass.config_entries.async_unload(entry.entry_id)


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_tls_security_profile_2(hass: HomeAssistant, tmp_path: Path) -> None:
    certfile, keyfile = await hass.async_add_executor_job(_self_signed, tmp_path)
    entry = await setup_hub(
        hass, [charger_subentry("cp1")], ssl_certfile=certfile, ssl_keyfile=keyfile
    )
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    url = ws_url(entry, "cp1").replace("ws://", "wss://")
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, url, charger_id="cp1", ssl=client_ctx)
        reply = await RawCharger(ws).call("BootNotification", BOOT)
        assert reply[2]["status"] == "Accepted"
        await ws.close()
    await hass.config_entries.async_unload(entry.entry_id)
