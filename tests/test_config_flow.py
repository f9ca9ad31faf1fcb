"""Tests for the OCPP Power Manager config flow, charger and circuit subentries, discovery."""

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
    CONF_CIRCUIT,
    CONF_CIRCUIT_ID,
    CONF_CURRENT_SENSORS,
    CONF_ID_TAGS,
    CONF_KIND,
    CONF_MAX_CURRENT,
    CONF_MAX_POWER_KW,
    CONF_MEMBERS,
    CONF_METER,
    CONF_METER_INCLUDES_CHARGERS,
    CONF_MIN_CURRENT,
    CONF_PARENT,
    CONF_PASSWORD,
    CONF_PHASES,
    CONF_PORT,
    CONF_POWER_SENSOR,
    CONF_SAFETY_MARGIN,
    CONF_SSL_CERTFILE,
    CONF_SSL_KEYFILE,
    CONF_UNKNOWN_CHARGERS,
    CONF_VOLTAGE,
    DOMAIN,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    UNKNOWN_CHARGERS_DISCOVER,
    UNKNOWN_CHARGERS_REJECT,
)
from custom_components.ocpp_power.models import CircuitConfig

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


# ---------------------------------------------------------------- circuit subentries

CIRCUIT_BASICS = {
    CONF_NAME: "Garage panel",
    CONF_KIND: "panel",
    CONF_PHASES: "l1_l2_l3",
    CONF_MAX_CURRENT: 32,
    CONF_VOLTAGE: 230,
    CONF_SAFETY_MARGIN: 1,
}


def _circuit(
    circuit_id: str, title: str, kind: str = "panel", phases: str = "l1_l2_l3", **data: Any
) -> ConfigSubentryData:
    """Return a stored circuit subentry as the flow writes it."""
    return ConfigSubentryData(
        data={
            CONF_CIRCUIT_ID: circuit_id,
            CONF_KIND: kind,
            CONF_PARENT: None,
            CONF_MEMBERS: [],
            CONF_MAX_CURRENT: 63.0,
            CONF_MAX_POWER_KW: None,
            CONF_PHASES: phases,
            CONF_VOLTAGE: 230.0,
            CONF_SAFETY_MARGIN: 1.0,
            CONF_METER: "none",
            CONF_POWER_SENSOR: None,
            CONF_CURRENT_SENSORS: [],
            CONF_METER_INCLUDES_CHARGERS: True,
            **data,
        },
        subentry_type=SUBENTRY_CIRCUIT,
        title=title,
        unique_id=circuit_id,
    )


def _add_subentry(hass: HomeAssistant, entry: MockConfigEntry, sub: ConfigSubentryData) -> str:
    """Add a subentry to a hub entry; return its id."""
    subentry = ConfigSubentry(
        data=sub["data"],
        subentry_type=sub["subentry_type"],
        title=sub["title"],
        unique_id=sub["unique_id"],
    )
    hass.config_entries.async_add_subentry(entry, subentry)
    return subentry.subentry_id


def _subentry(entry: MockConfigEntry, unique_id: str) -> ConfigSubentry:
    return next(s for s in entry.subentries.values() if s.unique_id == unique_id)


def _fields(result: dict[str, Any]) -> dict[str, Any]:
    """Return form field name -> schema key."""
    return {str(key): key for key in result["data_schema"].schema}


def _suggested(result: dict[str, Any]) -> dict[str, Any]:
    return {
        str(key): (key.description or {}).get("suggested_value")
        for key in result["data_schema"].schema
    }


def _options(result: dict[str, Any], field: str) -> list[dict[str, str]]:
    """Return the options of a select field in a form."""
    return result["data_schema"].schema[_fields(result)[field]].config["options"]


def _sensor(hass: HomeAssistant, entity_id: str, unit: str | None, value: str = "0") -> None:
    hass.states.async_set(entity_id, value, {"unit_of_measurement": unit} if unit else {})


async def _start_circuit(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CIRCUIT), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return result


async def _configure(hass: HomeAssistant, result: dict[str, Any], form: dict[str, Any]):
    """Submit a subentry form; None stands for a field the user left empty (not sent)."""
    form = {key: value for key, value in form.items() if value is not None}
    return await hass.config_entries.subentries.async_configure(result["flow_id"], form)


async def test_circuit_add_without_meter(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _start_circuit(hass, hub_entry)
    assert result["errors"] == {}
    validated = result["data_schema"]({CONF_NAME: "Main", CONF_MAX_CURRENT: 40})
    assert validated[CONF_KIND] == "panel"
    assert validated[CONF_PHASES] == "l1_l2_l3"
    assert validated[CONF_VOLTAGE] == 230
    assert validated[CONF_SAFETY_MARGIN] == 1.0
    assert CONF_MAX_POWER_KW not in validated

    result = await _configure(hass, result, {**CIRCUIT_BASICS, CONF_KIND: "site"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "physical"
    assert result["description_placeholders"] == {"name": "Garage panel"}
    # No other circuit yet: nothing to be fed by.
    assert CONF_PARENT not in _fields(result)
    assert result["data_schema"]({})[CONF_METER] == "none"

    result = await _configure(hass, result, {CONF_METER: "none"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Garage panel"
    subentry = _subentry(hub_entry, "garage_panel")
    assert subentry.subentry_type == SUBENTRY_CIRCUIT
    assert subentry.title == "Garage panel"
    assert dict(subentry.data) == {
        CONF_CIRCUIT_ID: "garage_panel",
        CONF_KIND: "site",
        CONF_PARENT: None,
        CONF_MEMBERS: [],
        CONF_MAX_CURRENT: 32.0,
        CONF_MAX_POWER_KW: None,
        CONF_PHASES: "l1_l2_l3",
        CONF_VOLTAGE: 230.0,
        CONF_SAFETY_MARGIN: 1.0,
        CONF_METER: "none",
        CONF_POWER_SENSOR: None,
        CONF_CURRENT_SENSORS: [],
        CONF_METER_INCLUDES_CHARGERS: True,
    }
    config = CircuitConfig.from_subentry(subentry.subentry_id, subentry.title, subentry.data)
    assert config.max_current == 32.0
    assert config.max_power_w is None
    assert config.meter_entities == ()


async def test_circuit_add_with_power_meter(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _sensor(hass, "sensor.grid_power", "kW", "3.2")
    _sensor(hass, "sensor.grid_energy", "kWh")
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(
        hass,
        result,
        {**CIRCUIT_BASICS, CONF_MAX_CURRENT: None, CONF_MAX_POWER_KW: 11, CONF_SAFETY_MARGIN: 0},
    )
    assert result["step_id"] == "physical"
    assert _options(result, CONF_PARENT) == [{"value": "site", "label": "Site"}]
    result = await _configure(hass, result, {CONF_PARENT: "site", CONF_METER: "power"})
    assert result["step_id"] == "meter"
    assert set(_fields(result)) == {CONF_POWER_SENSOR, CONF_METER_INCLUDES_CHARGERS}
    selector = result["data_schema"].schema[_fields(result)[CONF_POWER_SENSOR]]
    assert selector.config["domain"] == ["sensor"]
    assert selector.config["device_class"] == ["power"]

    form = {CONF_POWER_SENSOR: "sensor.missing", CONF_METER_INCLUDES_CHARGERS: False}
    result = await _configure(hass, result, form)
    assert result["errors"] == {CONF_POWER_SENSOR: "sensor_not_found"}
    result = await _configure(hass, result, {**form, CONF_POWER_SENSOR: "sensor.grid_energy"})
    assert result["errors"] == {CONF_POWER_SENSOR: "sensor_unit"}
    result = await _configure(hass, result, {**form, CONF_POWER_SENSOR: "sensor.grid_power"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = _subentry(hub_entry, "garage_panel").data
    assert data[CONF_PARENT] == "site"
    assert data[CONF_MAX_CURRENT] is None
    assert data[CONF_MAX_POWER_KW] == 11.0
    assert data[CONF_SAFETY_MARGIN] == 0.0
    assert data[CONF_METER] == "power"
    assert data[CONF_POWER_SENSOR] == "sensor.grid_power"
    assert data[CONF_CURRENT_SENSORS] == []
    assert data[CONF_METER_INCLUDES_CHARGERS] is False


async def test_circuit_add_with_current_meter(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    for phase in (1, 2, 3):
        _sensor(hass, f"sensor.panel_l{phase}", "A")
    _sensor(hass, "sensor.panel_ma", "mA")
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, CIRCUIT_BASICS)
    result = await _configure(hass, result, {CONF_METER: "current"})
    assert result["step_id"] == "meter"
    assert result["description_placeholders"] == {
        "name": "Garage panel",
        "phases": "L1, L2, L3",
        "count": "3",
    }
    assert set(_fields(result)) == {CONF_CURRENT_SENSORS, CONF_METER_INCLUDES_CHARGERS}
    assert result["data_schema"]({CONF_CURRENT_SENSORS: ["sensor.a"]})[CONF_METER_INCLUDES_CHARGERS]

    l1, l2, l3 = "sensor.panel_l1", "sensor.panel_l2", "sensor.panel_l3"
    for sensors, error in (
        ([l1, l2], "current_sensor_count"),
        ([l1, l2, l3, "sensor.panel_ma"], "current_sensor_count"),
        ([l1, l1, l2], "current_sensor_count"),
        ([l1, l2, "sensor.nope"], "sensor_not_found"),
        ([l1, "sensor.panel_ma", l3], "sensor_unit"),
    ):
        result = await _configure(
            hass, result, {CONF_CURRENT_SENSORS: sensors, CONF_METER_INCLUDES_CHARGERS: True}
        )
        assert result["errors"] == {CONF_CURRENT_SENSORS: error}, sensors
    result = await _configure(
        hass, result, {CONF_CURRENT_SENSORS: [l1, l2, l3], CONF_METER_INCLUDES_CHARGERS: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = _subentry(hub_entry, "garage_panel").data
    assert data[CONF_METER] == "current"
    assert data[CONF_CURRENT_SENSORS] == [l1, l2, l3]
    assert data[CONF_POWER_SENSOR] is None
    config = CircuitConfig.from_subentry("x", "Garage panel", data)
    assert config.meter_entities == (l1, l2, l3)


async def test_circuit_single_phase_current_meter(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    _sensor(hass, "sensor.shed_l2", "A")
    _sensor(hass, "sensor.other", "A")
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(
        hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Shed", CONF_PHASES: "l2"}
    )
    result = await _configure(hass, result, {CONF_METER: "current"})
    assert result["description_placeholders"]["phases"] == "L2"
    assert result["description_placeholders"]["count"] == "1"
    form = {CONF_CURRENT_SENSORS: ["sensor.shed_l2", "sensor.other"]}
    result = await _configure(hass, result, {**form, CONF_METER_INCLUDES_CHARGERS: True})
    assert result["errors"] == {CONF_CURRENT_SENSORS: "current_sensor_count"}
    result = await _configure(
        hass, result, {CONF_CURRENT_SENSORS: ["sensor.shed_l2"], CONF_METER_INCLUDES_CHARGERS: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _subentry(hub_entry, "shed").data[CONF_PHASES] == "l2"


async def test_circuit_add_virtual(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    _add_subentry(
        hass,
        hub_entry,
        ConfigSubentryData(
            data={**CHARGER_DATA, CONF_CHARGER_ID: "CP-2"},
            subentry_type=SUBENTRY_CHARGER,
            title="Annex",
            unique_id="CP-2",
        ),
    )
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(
        hass,
        result,
        {
            **CIRCUIT_BASICS,
            CONF_NAME: "Fleet cap",
            CONF_KIND: "virtual",
            CONF_MAX_CURRENT: None,
            CONF_MAX_POWER_KW: 50,
        },
    )
    assert result["step_id"] == "virtual"
    assert result["description_placeholders"] == {"name": "Fleet cap"}
    # Chargers by name, sorted.
    assert _options(result, CONF_MEMBERS) == [
        {"value": "CP-2", "label": "Annex"},
        {"value": "CP-1", "label": "Garage"},
    ]
    result = await _configure(hass, result, {CONF_MEMBERS: []})
    assert result["errors"] == {CONF_MEMBERS: "members_required"}
    result = await _configure(hass, result, {})
    assert result["errors"] == {CONF_MEMBERS: "members_required"}
    result = await _configure(hass, result, {CONF_MEMBERS: ["CP-1", "CP-2"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = _subentry(hub_entry, "fleet_cap").data
    assert data[CONF_KIND] == "virtual"
    assert data[CONF_MEMBERS] == ["CP-1", "CP-2"]
    assert data[CONF_PARENT] is None
    assert data[CONF_METER] == "none"
    config = CircuitConfig.from_subentry("x", "Fleet cap", data)
    assert config.is_virtual
    assert config.max_power_w == 50_000
    assert config.members == ("CP-1", "CP-2")


async def test_circuit_virtual_is_no_parent(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(
        hass, hub_entry, _circuit("fleet", "Fleet", kind="virtual", **{CONF_MEMBERS: ["CP-1"]})
    )
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, CIRCUIT_BASICS)
    assert [o["value"] for o in _options(result, CONF_PARENT)] == ["site"]
    with pytest.raises(Exception, match="Schema validation failed"):
        await _configure(hass, result, {CONF_PARENT: "fleet", CONF_METER: "none"})


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        ({CONF_MAX_CURRENT: None}, {"base": "limit_required"}),
        ({CONF_MAX_CURRENT: 0}, {CONF_MAX_CURRENT: "limit_not_positive"}),
        ({CONF_MAX_CURRENT: None, CONF_MAX_POWER_KW: 0}, {CONF_MAX_POWER_KW: "limit_not_positive"}),
        ({CONF_NAME: "  "}, {CONF_NAME: "invalid_name"}),
        ({CONF_NAME: "!!"}, {CONF_NAME: "invalid_name"}),
        ({CONF_NAME: "House"}, {CONF_NAME: "name_in_use"}),
        ({CONF_NAME: "house "}, {CONF_NAME: "name_in_use"}),
        ({CONF_NAME: "cp 7"}, {CONF_NAME: "name_in_use"}),  # a charger's id
        (
            {CONF_NAME: "", CONF_MAX_CURRENT: None},
            {CONF_NAME: "invalid_name", "base": "limit_required"},
        ),
    ],
)
async def test_circuit_basics_errors(
    hass: HomeAssistant, hub_entry: MockConfigEntry, form: dict[str, Any], errors: dict[str, str]
) -> None:
    _add_subentry(hass, hub_entry, _circuit("house", "House", kind="site"))
    _add_subentry(
        hass,
        hub_entry,
        ConfigSubentryData(
            data={**CHARGER_DATA, CONF_CHARGER_ID: "cp_7"},
            subentry_type=SUBENTRY_CHARGER,
            title="Seven",
            unique_id="cp_7",
        ),
    )
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, {**CIRCUIT_BASICS, **form})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == errors
    # What the user typed stays in the form.
    assert _suggested(result)[CONF_NAME] == {**CIRCUIT_BASICS, **form}[CONF_NAME]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (CONF_VOLTAGE, 99),
        (CONF_VOLTAGE, 481),
        (CONF_SAFETY_MARGIN, -1),
        (CONF_SAFETY_MARGIN, 21),
        (CONF_MAX_CURRENT, -5),
        (CONF_KIND, "house"),
        (CONF_PHASES, "l1_l2"),
    ],
)
async def test_circuit_schema_ranges(
    hass: HomeAssistant, hub_entry: MockConfigEntry, field: str, value: Any
) -> None:
    result = await _start_circuit(hass, hub_entry)
    with pytest.raises(Exception, match="Schema validation failed"):
        await _configure(hass, result, {**CIRCUIT_BASICS, field: value})


async def test_circuit_parent_phase_mismatch(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    _add_subentry(hass, hub_entry, _circuit("house", "House", kind="site", phases="l1"))
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, CIRCUIT_BASICS)
    result = await _configure(hass, result, {CONF_PARENT: "house", CONF_METER: "none"})
    assert result["errors"] == {CONF_PARENT: "parent_phase_mismatch"}
    # A 1-phase sub-panel on the phase the house carries is fine.
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, {**CIRCUIT_BASICS, CONF_PHASES: "l1"})
    result = await _configure(hass, result, {CONF_PARENT: "house", CONF_METER: "none"})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_circuit_parent_became_virtual(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    site_id = _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, CIRCUIT_BASICS)
    # While the form is open, the parent is changed into a virtual circuit.
    site = hub_entry.subentries[site_id]
    hass.config_entries.async_update_subentry(
        hub_entry, site, data={**site.data, CONF_KIND: "virtual", CONF_MEMBERS: ["CP-1"]}
    )
    result = await _configure(hass, result, {CONF_PARENT: "site", CONF_METER: "none"})
    assert result["errors"] == {CONF_PARENT: "parent_not_physical"}
    # The form now offers no parent at all; going without one works.
    assert CONF_PARENT not in _fields(result)
    result = await _configure(hass, result, {CONF_METER: "none"})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_circuit_reconfigure(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    _sensor(hass, "sensor.site_power", "W")
    _sensor(hass, "sensor.panel_power", "W")
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    subentry_id = _add_subentry(
        hass,
        hub_entry,
        _circuit(
            "garage",
            "Garage",
            **{
                CONF_PARENT: "site",
                CONF_MAX_CURRENT: 25.0,
                CONF_METER: "power",
                CONF_POWER_SENSOR: "sensor.panel_power",
                CONF_METER_INCLUDES_CHARGERS: False,
            },
        ),
    )
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, subentry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"]["name"] == "Garage"
    suggested = _suggested(result)
    assert suggested[CONF_NAME] == "Garage"
    assert suggested[CONF_MAX_CURRENT] == 25.0
    assert suggested[CONF_MAX_POWER_KW] is None
    assert suggested[CONF_KIND] == "panel"

    result = await _configure(
        hass,
        result,
        {**CIRCUIT_BASICS, CONF_NAME: "Garage (new)", CONF_MAX_CURRENT: 20, CONF_MAX_POWER_KW: 9},
    )
    assert result["step_id"] == "physical"
    # A circuit cannot feed itself: only the site is offered.
    assert [o["value"] for o in _options(result, CONF_PARENT)] == ["site"]
    assert _suggested(result)[CONF_PARENT] == "site"
    assert _suggested(result)[CONF_METER] == "power"
    result = await _configure(hass, result, {CONF_PARENT: "site", CONF_METER: "power"})
    assert result["step_id"] == "meter"
    assert _suggested(result)[CONF_POWER_SENSOR] == "sensor.panel_power"
    assert _suggested(result)[CONF_METER_INCLUDES_CHARGERS] is False
    result = await _configure(
        hass,
        result,
        {CONF_POWER_SENSOR: "sensor.site_power", CONF_METER_INCLUDES_CHARGERS: True},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    subentry = hub_entry.subentries[subentry_id]
    assert subentry.title == "Garage (new)"
    assert subentry.unique_id == "garage"  # the id stays
    assert dict(subentry.data) == {
        CONF_CIRCUIT_ID: "garage",
        CONF_KIND: "panel",
        CONF_PARENT: "site",
        CONF_MEMBERS: [],
        CONF_MAX_CURRENT: 20.0,
        CONF_MAX_POWER_KW: 9.0,
        CONF_PHASES: "l1_l2_l3",
        CONF_VOLTAGE: 230.0,
        CONF_SAFETY_MARGIN: 1.0,
        CONF_METER: "power",
        CONF_POWER_SENSOR: "sensor.site_power",
        CONF_CURRENT_SENSORS: [],
        CONF_METER_INCLUDES_CHARGERS: True,
    }


async def test_circuit_reconfigure_drops_meter_and_parent(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    for phase in (1, 2, 3):
        _sensor(hass, f"sensor.l{phase}", "A")
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    subentry_id = _add_subentry(
        hass,
        hub_entry,
        _circuit(
            "garage",
            "Garage",
            **{
                CONF_PARENT: "site",
                CONF_METER: "current",
                CONF_CURRENT_SENSORS: ["sensor.l1", "sensor.l2", "sensor.l3"],
            },
        ),
    )
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, subentry_id)
    result = await _configure(hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Garage"})
    result = await _configure(hass, result, {CONF_METER: "none"})
    assert result["reason"] == "reconfigure_successful"
    data = hub_entry.subentries[subentry_id].data
    assert data[CONF_PARENT] is None
    assert data[CONF_METER] == "none"
    assert data[CONF_CURRENT_SENSORS] == []


async def test_circuit_reconfigure_parent_cycle(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    site_id = _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(hass, hub_entry, _circuit("panel", "Panel", **{CONF_PARENT: "site"}))
    _add_subentry(
        hass, hub_entry, _circuit("sub", "Sub", kind="sub_panel", **{CONF_PARENT: "panel"})
    )
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, site_id)
    result = await _configure(
        hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Site", CONF_KIND: "site"}
    )
    assert [o["value"] for o in _options(result, CONF_PARENT)] == ["panel", "sub"]
    for parent in ("sub", "panel"):
        result = await _configure(hass, result, {CONF_PARENT: parent, CONF_METER: "none"})
        assert result["errors"] == {CONF_PARENT: "parent_cycle"}
    with pytest.raises(Exception, match="Schema validation failed"):
        await _configure(hass, result, {CONF_PARENT: "site", CONF_METER: "none"})
    result = await _configure(hass, result, {CONF_METER: "none"})
    assert result["reason"] == "reconfigure_successful"


async def test_circuit_reconfigure_kind_and_phase_conflicts(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    site_id = _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(hass, hub_entry, _circuit("annex", "Annex", **{CONF_PARENT: "site"}))
    subentry = next(iter(hub_entry.subentries.values()))  # charger CP-1 (3-phase)
    hass.config_entries.async_update_subentry(
        hub_entry, subentry, data={**subentry.data, CONF_CIRCUIT: "site"}
    )
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, site_id)
    form = {**CIRCUIT_BASICS, CONF_NAME: "Site"}
    result = await _configure(hass, result, {**form, CONF_KIND: "virtual"})
    assert result["errors"] == {CONF_KIND: "circuit_in_use"}
    result = await _configure(hass, result, {**form, CONF_PHASES: "l1"})
    assert result["errors"] == {CONF_PHASES: "circuit_phases_conflict"}
    assert result["description_placeholders"]["conflicts"] == "Annex, Garage"
    result = await _configure(hass, result, form)
    assert result["step_id"] == "physical"


async def test_circuit_virtual_reconfigure_members(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    subentry_id = _add_subentry(
        hass,
        hub_entry,
        _circuit(
            "fleet", "Fleet", kind="virtual", **{CONF_MEMBERS: ["CP-1"], CONF_MAX_CURRENT: 20.0}
        ),
    )
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, subentry_id)
    result = await _configure(
        hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Fleet", CONF_KIND: "virtual"}
    )
    assert result["step_id"] == "virtual"
    assert _suggested(result)[CONF_MEMBERS] == ["CP-1"]
    result = await _configure(hass, result, {CONF_MEMBERS: []})
    assert result["errors"] == {CONF_MEMBERS: "members_required"}
    result = await _configure(hass, result, {CONF_MEMBERS: ["CP-1"]})
    assert result["reason"] == "reconfigure_successful"
    # A virtual circuit turned physical loses its members.
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, subentry_id)
    result = await _configure(hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Fleet"})
    result = await _configure(hass, result, {CONF_METER: "none"})
    data = hub_entry.subentries[subentry_id].data
    assert data[CONF_KIND] == "panel"
    assert data[CONF_MEMBERS] == []


# ---------------------------------------------------------------- charger on a circuit


async def test_charger_circuit_field_only_with_physical_circuits(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    result = await _start_subentry(hass, hub_entry)
    assert CONF_CIRCUIT not in _fields(result)
    _add_subentry(
        hass, hub_entry, _circuit("fleet", "Fleet", kind="virtual", **{CONF_MEMBERS: ["CP-1"]})
    )
    result = await _start_subentry(hass, hub_entry)
    assert CONF_CIRCUIT not in _fields(result)
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(hass, hub_entry, _circuit("annex", "annex panel"))
    result = await _start_subentry(hass, hub_entry)
    assert _options(result, CONF_CIRCUIT) == [
        {"value": "annex", "label": "annex panel"},
        {"value": "site", "label": "Site"},
    ]
    # Optional: a charger may be on no circuit.
    assert isinstance(_fields(result)[CONF_CIRCUIT], vol.Optional)


async def test_charger_add_on_circuit(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(hass, hub_entry, _circuit("shed", "Shed", phases="l1"))
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_PHASES: "l1_l2_l3", CONF_CIRCUIT: "shed"}
    )
    assert result["errors"] == {CONF_CIRCUIT: "charger_phase_mismatch"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_PHASES: "l2", CONF_CIRCUIT: "shed"}
    )
    assert result["errors"] == {CONF_CIRCUIT: "charger_phase_mismatch"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_PHASES: "l1", CONF_CIRCUIT: "shed"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _subentry(hub_entry, "CP-2").data[CONF_CIRCUIT] == "shed"
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {**CHARGER_FORM, CONF_CHARGER_ID: "CP-3", CONF_PHASES: "l3_l1_l2", CONF_CIRCUIT: "site"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _subentry(hub_entry, "CP-3").data[CONF_CIRCUIT] == "site"


async def test_charger_circuit_made_virtual_meanwhile(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    site_id = _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    result = await _start_subentry(hass, hub_entry)
    site = hub_entry.subentries[site_id]
    hass.config_entries.async_update_subentry(
        hub_entry, site, data={**site.data, CONF_KIND: "virtual", CONF_MEMBERS: ["CP-1"]}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_CIRCUIT: "site"}
    )
    assert result["errors"] == {CONF_CIRCUIT: "circuit_not_physical"}


async def test_charger_id_taken_by_circuit(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    _add_subentry(hass, hub_entry, _circuit("garage", "Garage panel", kind="site"))
    result = await _start_subentry(hass, hub_entry)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**CHARGER_FORM, CONF_CHARGER_ID: "garage"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CHARGER_ID: "charger_id_in_use"}


async def test_charger_reconfigure_circuit(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(hass, hub_entry, _circuit("shed", "Shed", phases="l2"))
    subentry_id = _subentry(hub_entry, "CP-1").subentry_id
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CHARGER, subentry_id)
    assert _suggested(result)[CONF_CIRCUIT] is None
    form = {
        CONF_NAME: "Garage",
        CONF_PASSWORD: PASSWORD,
        CONF_PHASES: "l1_l2_l3",
        CONF_MIN_CURRENT: 6,
        CONF_MAX_CURRENT: 16,
    }
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**form, CONF_CIRCUIT: "shed"}
    )
    assert result["errors"] == {CONF_CIRCUIT: "charger_phase_mismatch"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**form, CONF_CIRCUIT: "site"}
    )
    assert result["reason"] == "reconfigure_successful"
    assert hub_entry.subentries[subentry_id].data[CONF_CIRCUIT] == "site"

    # The form shows the circuit; clearing it takes the charger off the circuit.
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CHARGER, subentry_id)
    assert _suggested(result)[CONF_CIRCUIT] == "site"
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    assert result["reason"] == "reconfigure_successful"
    assert CONF_CIRCUIT not in hub_entry.subentries[subentry_id].data


async def test_discovery_on_circuit(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    _add_subentry(hass, hub_entry, _circuit("shed", "Shed", phases="l3"))
    result = await _discover(hass)
    assert _options(result, CONF_CIRCUIT) == [{"value": "shed", "label": "Shed"}]
    form = {CONF_PASSWORD: PASSWORD, CONF_MIN_CURRENT: 6, CONF_MAX_CURRENT: 16}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_PHASES: "l1", CONF_CIRCUIT: "shed"}
    )
    assert result["errors"] == {CONF_CIRCUIT: "charger_phase_mismatch"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**form, CONF_PHASES: "l3", CONF_CIRCUIT: "shed"}
    )
    assert result["reason"] == "charger_added"
    assert _subentry(hub_entry, "CP-9").data[CONF_CIRCUIT] == "shed"


async def test_reconfigure_after_circuit_or_charger_removed(
    hass: HomeAssistant, hub_entry: MockConfigEntry
) -> None:
    """Stored references to removed subentries are not suggested (they would not validate)."""
    site_id = _add_subentry(hass, hub_entry, _circuit("site", "Site", kind="site"))
    _add_subentry(hass, hub_entry, _circuit("garage", "Garage panel", **{CONF_PARENT: "site"}))
    fleet_id = _add_subentry(
        hass,
        hub_entry,
        _circuit("fleet", "Fleet", kind="virtual", **{CONF_MEMBERS: ["CP-1", "CP-X"]}),
    )
    charger_id = _subentry(hub_entry, "CP-1").subentry_id
    charger = hub_entry.subentries[charger_id]
    hass.config_entries.async_update_subentry(
        hub_entry, charger, data={**charger.data, CONF_CIRCUIT: "site"}
    )
    hass.config_entries.async_remove_subentry(hub_entry, site_id)

    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CHARGER, charger_id)
    assert _suggested(result)[CONF_CIRCUIT] is None
    garage_id = _subentry(hub_entry, "garage").subentry_id
    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, garage_id)
    result = await _configure(hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Garage panel"})
    assert CONF_PARENT not in _fields(result)
    result = await _configure(hass, result, {CONF_METER: "none"})
    assert hub_entry.subentries[garage_id].data[CONF_PARENT] is None

    result = await hub_entry.start_subentry_reconfigure_flow(hass, SUBENTRY_CIRCUIT, fleet_id)
    result = await _configure(
        hass, result, {**CIRCUIT_BASICS, CONF_NAME: "Fleet", CONF_KIND: "virtual"}
    )
    assert _suggested(result)[CONF_MEMBERS] == ["CP-1"]


async def test_current_sensor_selector(hass: HomeAssistant, hub_entry: MockConfigEntry) -> None:
    result = await _start_circuit(hass, hub_entry)
    result = await _configure(hass, result, CIRCUIT_BASICS)
    result = await _configure(hass, result, {CONF_METER: "current"})
    selector = result["data_schema"].schema[_fields(result)[CONF_CURRENT_SENSORS]]
    assert selector.config["multiple"] is True
    assert selector.config["domain"] == ["sensor"]
    assert selector.config["device_class"] == ["current"]
