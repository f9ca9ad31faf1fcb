"""Tests for the OCPP Power Manager config flow, charger subentries and discovery."""

from __future__ import annotations

from collections.abc import Generator
import datetime as dt
import errno
import pathlib
import socket
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_USER,
    ConfigSubentry,
    ConfigSubentryData,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.ocpp_power.const import (
    CONF_BASIC_AUTH,
    CONF_CHARGER_ID,
    CONF_ID_TAGS,
    CONF_MAX_CURRENT,
    CONF_MIN_CURRENT,
    CONF_PASSWORD,
    CONF_PHASES,
    CONF_PORT,
    CONF_SSL_CERTFILE,
    CONF_SSL_KEYFILE,
    CONF_UNKNOWN_CHARGERS,
    DOMAIN,
    SUBENTRY_CHARGER,
    UNKNOWN_CHARGERS_DISCOVER,
    UNKNOWN_CHARGERS_REJECT,
)

PASSWORD = "correct-horse-battery"
HUB_DATA = {
    CONF_PORT: 9000,
    CONF_BASIC_AUTH: True,
    CONF_UNKNOWN_CHARGERS: UNKNOWN_CHARGERS_DISCOVER,
}
CHARGER_DATA = {
    CONF_CHARGER_ID: "CP-1",
    CONF_NAME: "Garage",
    CONF_PASSWORD: PASSWORD,
    CONF_PHASES: "l1_l2_l3",
    CONF_MIN_CURRENT: 6.0,
    CONF_MAX_CURRENT: 16.0,
    CONF_ID_TAGS: ["TAG1"],
}
CHARGER_FORM = {
    CONF_CHARGER_ID: "CP-2",
    CONF_NAME: "Driveway",
    CONF_PASSWORD: PASSWORD,
    CONF_PHASES: "l2",
    CONF_MIN_CURRENT: 6,
    CONF_MAX_CURRENT: 32,
    CONF_ID_TAGS: " TAG1, tag2 ,,TAG1",
}
DISCOVERY = {CONF_CHARGER_ID: "CP-9", "vendor": "Acme", "model": "Wallbox 11"}


@pytest.fixture(autouse=True)
def mock_setup_entry() -> Generator[AsyncMock]:
    """Keep the real OCPP server out of config-flow tests."""
    with patch("custom_components.ocpp_power.async_setup_entry", return_value=True) as mock:
        yield mock


@pytest.fixture
def hub_entry(hass: HomeAssistant) -> MockConfigEntry:
    """A hub entry with one charger subentry."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="OCPP Power Manager",
        data=dict(HUB_DATA),
        subentries_data=[
            ConfigSubentryData(
                data=dict(CHARGER_DATA),
                subentry_type=SUBENTRY_CHARGER,
                title="Garage",
                unique_id="CP-1",
            )
        ],
    )
    entry.add_to_hass(hass)
    return entry


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hub_form(port: int, **extra: Any) -> dict[str, Any]:
    return {
        CONF_PORT: port,
        CONF_BASIC_AUTH: True,
        CONF_UNKNOWN_CHARGERS: UNKNOWN_CHARGERS_REJECT,
        **extra,
    }


def _write_cert(directory: pathlib.Path, name: str) -> tuple[str, str]:
    """Write a self-signed certificate and its key; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocpp.local")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


# ---------------------------------------------------------------- hub: user step


async def test_user_creates_hub(
    hass: HomeAssistant, socket_enabled: None, mock_setup_entry: AsyncMock
) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    defaults = {
        str(key): key.default()
        for key in result["data_schema"].schema
        if key.default is not vol.UNDEFINED
    }
    assert defaults[CONF_PORT] == 9000
    assert defaults[CONF_BASIC_AUTH] is True
    assert defaults[CONF_UNKNOWN_CHARGERS] == UNKNOWN_CHARGERS_DISCOVER

    port = _free_port()
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "OCPP Power Manager"
    assert result["data"] == {
        CONF_PORT: port,
        CONF_BASIC_AUTH: True,
        CONF_UNKNOWN_CHARGERS: UNKNOWN_CHARGERS_REJECT,
    }
    assert isinstance(result["data"][CONF_PORT], int)
    assert len(mock_setup_entry.mock_calls) == 1


async def test_user_single_instance(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "single_instance_allowed"


async def test_user_ignored_discovery_does_not_count_as_hub(
    hass: HomeAssistant, socket_enabled: None
) -> None:
    MockConfigEntry(domain=DOMAIN, source=SOURCE_IGNORE, unique_id="charger_X").add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _hub_form(_free_port())
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
async def test_user_port_in_use(hass: HomeAssistant, socket_enabled: None, host: str) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((host, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(port))
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_PORT: "port_in_use"}
    # The port is free again: the same flow now succeeds.
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_port_permission_denied(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    sock = MagicMock()
    sock.bind.side_effect = PermissionError(errno.EACCES, "Permission denied")
    with patch("custom_components.ocpp_power.config_flow.socket.socket", return_value=sock):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(80))
    assert result["errors"] == {CONF_PORT: "port_permission_denied"}
    sock.close.assert_called_once()


async def test_user_with_tls(
    hass: HomeAssistant, socket_enabled: None, tmp_path: pathlib.Path
) -> None:
    certfile, keyfile = _write_cert(tmp_path, "server")
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _hub_form(_free_port(), **{CONF_SSL_CERTFILE: certfile, CONF_SSL_KEYFILE: f" {keyfile} "}),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_SSL_CERTFILE] == certfile
    assert result["data"][CONF_SSL_KEYFILE] == keyfile


@pytest.mark.parametrize(
    ("files", "errors"),
    [
        (("good_cert", None), {CONF_SSL_KEYFILE: "ssl_pair_required"}),
        ((None, "good_key"), {CONF_SSL_CERTFILE: "ssl_pair_required"}),
        (("missing", "good_key"), {CONF_SSL_CERTFILE: "file_not_found"}),
        (("good_cert", "missing"), {CONF_SSL_KEYFILE: "file_not_found"}),
        (("good_cert", "other_key"), {"base": "invalid_certificate"}),
        (("garbage", "good_key"), {"base": "invalid_certificate"}),
        (("good_key", "good_cert"), {"base": "invalid_certificate"}),
    ],
)
async def test_user_tls_errors(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: pathlib.Path,
    files: tuple[str | None, str | None],
    errors: dict[str, str],
) -> None:
    good_cert, good_key = _write_cert(tmp_path, "good")
    _, other_key = _write_cert(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    paths = {
        "good_cert": good_cert,
        "good_key": good_key,
        "other_key": other_key,
        "garbage": str(garbage),
        "missing": str(tmp_path / "missing.pem"),
    }
    form = _hub_form(_free_port())
    for field, name in zip((CONF_SSL_CERTFILE, CONF_SSL_KEYFILE), files, strict=True):
        if name is not None:
            form[field] = paths[name]
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    # The form keeps what the user typed.
    suggested = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }
    assert suggested[CONF_PORT] == form[CONF_PORT]


# ---------------------------------------------------------------- hub: reconfigure


async def test_reconfigure_same_port_skips_port_check(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    # No socket_enabled: binding a socket here would fail, so the check must be skipped
    # (the running server itself holds the port).
    result = await hub_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    suggested = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }
    assert suggested[CONF_PORT] == 9000
    assert suggested[CONF_UNKNOWN_CHARGERS] == UNKNOWN_CHARGERS_DISCOVER

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_PORT: 9000, CONF_BASIC_AUTH: False, CONF_UNKNOWN_CHARGERS: UNKNOWN_CHARGERS_REJECT},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(hub_entry.data) == {
        CONF_PORT: 9000,
        CONF_BASIC_AUTH: False,
        CONF_UNKNOWN_CHARGERS: UNKNOWN_CHARGERS_REJECT,
    }
    # Subentries survive a reconfigure.
    assert [sub.unique_id for sub in hub_entry.subentries.values()] == ["CP-1"]


async def test_reconfigure_new_port(
    hass: HomeAssistant, hub_entry: MockConfigEntry, socket_enabled: None, tmp_path: pathlib.Path
) -> None:
    certfile, keyfile = _write_cert(tmp_path, "server")
    result = await hub_entry.start_reconfigure_flow(hass)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        busy_port = busy.getsockname()[1]
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], _hub_form(busy_port)
        )
        assert result["errors"] == {CONF_PORT: "port_in_use"}
    port = _free_port()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        _hub_form(port, **{CONF_SSL_CERTFILE: certfile, CONF_SSL_KEYFILE: keyfile}),
    )
    assert result["reason"] == "reconfigure_successful"
    assert hub_entry.data[CONF_PORT] == port
    assert hub_entry.data[CONF_SSL_CERTFILE] == certfile

    # Clearing both TLS fields goes back to plain ws://.
    result = await hub_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(port))
    assert result["reason"] == "reconfigure_successful"
    assert CONF_SSL_CERTFILE not in hub_entry.data
    assert CONF_SSL_KEYFILE not in hub_entry.data


async def test_reconfigure_keeps_hidden_keys(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, data={**HUB_DATA, "host": "127.0.0.1"})
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(9000))
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["host"] == "127.0.0.1"
    assert entry.data[CONF_UNKNOWN_CHARGERS] == UNKNOWN_CHARGERS_REJECT


async def test_reconfigure_tls_error(
    hass: HomeAssistant, hub_entry: MockConfigEntry, tmp_path: pathlib.Path
) -> None:
    certfile, _ = _write_cert(tmp_path, "server")
    result = await hub_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _hub_form(9000, **{CONF_SSL_CERTFILE: certfile})
    )
    assert result["errors"] == {CONF_SSL_KEYFILE: "ssl_pair_required"}


async def test_reconfigure_basic_auth_needs_passwords(hass: HomeAssistant) -> None:
    no_password = {**CHARGER_DATA, CONF_CHARGER_ID: "CP-3"}
    no_password.pop(CONF_PASSWORD)
    entry = MockConfigEntry(
        domain=DOMAIN,
        data={**HUB_DATA, CONF_BASIC_AUTH: False},
        subentries_data=[
            ConfigSubentryData(
                data=no_password, subentry_type=SUBENTRY_CHARGER, title="Shed", unique_id="CP-3"
            ),
            ConfigSubentryData(
                data=dict(CHARGER_DATA),
                subentry_type=SUBENTRY_CHARGER,
                title="Garage",
                unique_id="CP-1",
            ),
        ],
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _hub_form(9000))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_BASIC_AUTH: "passwords_missing"}
    assert result["description_placeholders"]["chargers"] == "Shed"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _hub_form(9000, **{CONF_BASIC_AUTH: False})
    )
    assert result["reason"] == "reconfigure_successful"


# ---------------------------------------------------------------- charger subentry: add


async def _start_subentry(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CHARGER), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return result


async def test_subentry_add_charger(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], CHARGER_FORM)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Driveway"
    subentry = next(s for s in hub_entry.subentries.values() if s.unique_id == "CP-2")
    assert subentry.subentry_type == SUBENTRY_CHARGER
    assert subentry.title == "Driveway"
    assert dict(subentry.data) == {
        CONF_CHARGER_ID: "CP-2",
        CONF_NAME: "Driveway",
        CONF_PASSWORD: PASSWORD,
        CONF_PHASES: "l2",
        CONF_MIN_CURRENT: 6.0,
        CONF_MAX_CURRENT: 32.0,
        CONF_ID_TAGS: ["TAG1", "tag2"],
    }


async def test_subentry_defaults(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _start_subentry(hass, hub_entry)
    schema = result["data_schema"]
    validated = schema({CONF_CHARGER_ID: " CP-7 ", CONF_PASSWORD: PASSWORD})
    assert validated[CONF_PHASES] == "l1_l2_l3"
    assert validated[CONF_MIN_CURRENT] == 6
    assert validated[CONF_MAX_CURRENT] == 16
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], validated)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "CP-7"
    subentry = next(s for s in hub_entry.subentries.values() if s.unique_id == "CP-7")
    assert subentry.data[CONF_NAME] == "CP-7"
    assert subentry.data[CONF_ID_TAGS] == []


async def test_subentry_duplicate(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_CHARGER_ID: "CP-1"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hub_entry.subentries) == 1


@pytest.mark.parametrize(
    "charger_id",
    ["", "   ", "a/b", "has space", "tab\tid", "colon:id", "q?x", "h#x", "x" * 49, "bell\x07"],
)
async def test_subentry_invalid_charger_id(
    hass: HomeAssistant, hub_entry: MockConfigEntry, charger_id: str
) -> None:
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_CHARGER_ID: charger_id}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CHARGER_ID: "invalid_charger_id"}


async def test_subentry_longest_valid_charger_id(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_CHARGER_ID: "Ü" + "x" * 47}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("basic_auth", "password", "error"),
    [
        (True, None, "password_required"),
        (True, "", "password_required"),
        (True, "short", "password_length"),
        (True, "x" * 41, "password_length"),
        (False, "x" * 7, "password_length"),
        (True, "x" * 8, None),
        (True, "x" * 40, None),
        (False, None, None),
    ],
)
async def test_subentry_password_rules(
    hass: HomeAssistant,
    hub_entry: MockConfigEntry,
    basic_auth: bool,
    password: str | None,
    error: str | None,
) -> None:
    hass.config_entries.async_update_entry(
        hub_entry, data={**hub_entry.data, CONF_BASIC_AUTH: basic_auth}
    )
    form = dict(CHARGER_FORM)
    form.pop(CONF_PASSWORD)
    if password is not None:
        form[CONF_PASSWORD] = password
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    if error is None:
        assert result["type"] is FlowResultType.CREATE_ENTRY
        subentry = next(s for s in hub_entry.subentries.values() if s.unique_id == "CP-2")
        assert subentry.data.get(CONF_PASSWORD) == (password or None)
    else:
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_PASSWORD: error}


async def test_subentry_min_above_max_then_fixed(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_MIN_CURRENT: 20, CONF_MAX_CURRENT: 16}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_MIN_CURRENT: "min_above_max"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_MIN_CURRENT: 16, CONF_MAX_CURRENT: 16}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_subentry_invalid_id_tags(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_ID_TAGS: "ok, " + "x" * 21}
    )
    assert result["errors"] == {CONF_ID_TAGS: "invalid_id_tags"}


async def test_subentry_several_errors_at_once(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _start_subentry(hass, hub_entry)
    form = {**CHARGER_FORM, CONF_CHARGER_ID: "bad id", CONF_MIN_CURRENT: 40}
    form.pop(CONF_PASSWORD)
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["errors"] == {
        CONF_CHARGER_ID: "invalid_charger_id",
        CONF_PASSWORD: "password_required",
        CONF_MIN_CURRENT: "min_above_max",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (CONF_MIN_CURRENT, -1),
        (CONF_MIN_CURRENT, 81),
        (CONF_MAX_CURRENT, 5),
        (CONF_MAX_CURRENT, 81),
        (CONF_PHASES, "l4"),
    ],
)
async def test_subentry_schema_ranges(
    hass: HomeAssistant, hub_entry: MockConfigEntry, field: str, value: Any
) -> None:
    result = await _start_subentry(hass, hub_entry)
    with pytest.raises(Exception, match="Schema validation failed"):
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {**CHARGER_FORM, field: value}
        )


# ---------------------------------------------------------------- charger subentry: reconfigure


async def test_subentry_reconfigure(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    subentry_id = next(iter(hub_entry.subentries))
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CHARGER, subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"] == {CONF_CHARGER_ID: "CP-1"}
    suggested = {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }
    assert CONF_CHARGER_ID not in suggested
    assert suggested[CONF_NAME] == "Garage"
    assert suggested[CONF_ID_TAGS] == "TAG1"
    assert suggested[CONF_PHASES] == "l1_l2_l3"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            CONF_NAME: "Garage left",
            CONF_PASSWORD: PASSWORD,
            CONF_PHASES: "l3",
            CONF_MIN_CURRENT: 8,
            CONF_MAX_CURRENT: 10,
            CONF_ID_TAGS: "",
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    subentry = hub_entry.subentries[subentry_id]
    assert subentry.title == "Garage left"
    assert subentry.unique_id == "CP-1"
    assert dict(subentry.data) == {
        CONF_CHARGER_ID: "CP-1",
        CONF_NAME: "Garage left",
        CONF_PASSWORD: PASSWORD,
        CONF_PHASES: "l3",
        CONF_MIN_CURRENT: 8.0,
        CONF_MAX_CURRENT: 10.0,
        CONF_ID_TAGS: [],
    }


async def test_subentry_reconfigure_errors(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    subentry_id = next(iter(hub_entry.subentries))
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CHARGER, subentry_id)
    form = {CONF_PHASES: "l1", CONF_MIN_CURRENT: 20, CONF_MAX_CURRENT: 10}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {
        CONF_PASSWORD: "password_required",
        CONF_MIN_CURRENT: "min_above_max",
    }
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**form, CONF_MIN_CURRENT: 6, CONF_PASSWORD: "new-password-1"}
    )
    assert result["reason"] == "reconfigure_successful"
    subentry = hub_entry.subentries[subentry_id]
    assert subentry.title == "CP-1"  # name cleared: back to the charger id
    assert subentry.data[CONF_PASSWORD] == "new-password-1"


# ---------------------------------------------------------------- discovery


async def _discover(hass: HomeAssistant, info: dict[str, Any] | None = None) -> dict[str, Any]:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=info or DISCOVERY
    )


async def test_discovery_adds_charger(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _discover(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {
        CONF_CHARGER_ID: "CP-9",
        "vendor": "Acme",
        "model": "Wallbox 11",
    }
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flows[0]["context"]["title_placeholders"] == {"name": "CP-9"}
    assert flows[0]["context"]["unique_id"] == "charger_CP-9"

    form = {CONF_NAME: "Visitor", CONF_PHASES: "l1", CONF_MIN_CURRENT: 6, CONF_MAX_CURRENT: 20}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], form)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_PASSWORD: "password_required"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_PASSWORD: PASSWORD, CONF_ID_TAGS: "A1"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "charger_added"
    subentry = next(s for s in hub_entry.subentries.values() if s.unique_id == "CP-9")
    assert subentry.subentry_type == SUBENTRY_CHARGER
    assert subentry.title == "Visitor"
    assert dict(subentry.data) == {
        CONF_CHARGER_ID: "CP-9",
        CONF_NAME: "Visitor",
        CONF_PASSWORD: PASSWORD,
        CONF_PHASES: "l1",
        CONF_MIN_CURRENT: 6.0,
        CONF_MAX_CURRENT: 20.0,
        CONF_ID_TAGS: ["A1"],
    }
    # No second hub entry was created.
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_discovery_name_defaults_to_id(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    hass.config_entries.async_update_entry(
        hub_entry, data={**hub_entry.data, CONF_BASIC_AUTH: False}
    )
    result = await _discover(hass, {CONF_CHARGER_ID: "CP-10"})
    assert result["description_placeholders"]["vendor"] == "-"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_NAME: "", CONF_PHASES: "l1", CONF_MIN_CURRENT: 6, CONF_MAX_CURRENT: 16},
    )
    assert result["reason"] == "charger_added"
    subentry = next(s for s in hub_entry.subentries.values() if s.unique_id == "CP-10")
    assert subentry.title == "CP-10"
    assert CONF_PASSWORD not in subentry.data


async def test_discovery_already_configured(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _discover(hass, {**DISCOVERY, CONF_CHARGER_ID: "CP-1"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_discovery_no_hub(hass: HomeAssistant) -> None:
    result = await _discover(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_hub"


async def test_discovery_ignored(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _discover(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_IGNORE},
        data={"unique_id": "charger_CP-9", "title": "CP-9"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    result = await _discover(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # The ignored charger does not count as a hub.
    result = await _discover(hass, {**DISCOVERY, CONF_CHARGER_ID: "CP-11"})
    assert result["step_id"] == "discovery_confirm"


async def test_discovery_flow_dropped_when_added_by_hand(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    await _discover(hass)
    assert hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_CHARGER_ID: "CP-9"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


async def test_discovery_charger_added_meanwhile(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _discover(hass)
    # Another discovery (or the user) adds the same charger before this one is confirmed.
    other = await _discover(hass)
    assert other["type"] is FlowResultType.ABORT
    assert other["reason"] == "already_in_progress"
    hass.config_entries.async_add_subentry(
        hub_entry,
        ConfigSubentry(
            data={**CHARGER_DATA, CONF_CHARGER_ID: "CP-9"},
            subentry_type=SUBENTRY_CHARGER,
            title="CP-9",
            unique_id="CP-9",
        ),
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_PASSWORD: PASSWORD, CONF_PHASES: "l1", CONF_MIN_CURRENT: 6, CONF_MAX_CURRENT: 16},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_discovery_hub_removed_before_confirm(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _discover(hass)
    await hass.config_entries.async_remove(hub_entry.entry_id)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_PASSWORD: PASSWORD, CONF_PHASES: "l1", CONF_MIN_CURRENT: 6, CONF_MAX_CURRENT: 16},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_hub"
