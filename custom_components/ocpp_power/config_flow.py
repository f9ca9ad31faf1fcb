"""Config flow for OCPP Power Manager: the hub entry and its charger subentries."""

from __future__ import annotations

from collections.abc import Mapping
import os
import socket
import ssl
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import DiscoveryInfoType
import voluptuous as vol

from .const import (
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
    DEFAULT_HOST,
    DEFAULT_MAX_CURRENT,
    DEFAULT_MIN_CURRENT,
    DEFAULT_PHASE_WIRING,
    DEFAULT_PORT,
    DOMAIN,
    PHASE_WIRINGS,
    SUBENTRY_CHARGER,
    UNKNOWN_CHARGERS_DISCOVER,
    UNKNOWN_CHARGERS_REJECT,
)

HUB_TITLE = "OCPP Power Manager"

# OCPP identity: CiString48, one URL path segment, and the Basic-auth user name (no ':').
CHARGER_ID_MAX_LEN = 48
CHARGER_ID_FORBIDDEN = frozenset("/?#:%\\")
# OCPP 1.6 security profiles want 16-40 characters; many chargers accept 8 and up.
PASSWORD_MIN_LEN = 8
PASSWORD_MAX_LEN = 40
ID_TAG_MAX_LEN = 20  # OCPP 1.6 IdToken is CiString20
CURRENT_LIMIT_MAX = 80.0

_TEXT = TextSelector()
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _current_selector(minimum: float) -> NumberSelector:
    """Return a box selector for a per-phase current in A."""
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=CURRENT_LIMIT_MAX,
            step=1,
            unit_of_measurement="A",
            mode=NumberSelectorMode.BOX,
        )
    )


HUB_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_PORT, default=DEFAULT_PORT): NumberSelector(
            NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
        ),
        vol.Optional(CONF_SSL_CERTFILE): _TEXT,
        vol.Optional(CONF_SSL_KEYFILE): _TEXT,
        vol.Required(CONF_BASIC_AUTH, default=True): BooleanSelector(),
        vol.Required(CONF_UNKNOWN_CHARGERS, default=UNKNOWN_CHARGERS_DISCOVER): SelectSelector(
            SelectSelectorConfig(
                options=[UNKNOWN_CHARGERS_DISCOVER, UNKNOWN_CHARGERS_REJECT],
                translation_key=CONF_UNKNOWN_CHARGERS,
                mode=SelectSelectorMode.LIST,
            )
        ),
    }
)

_CHARGER_FIELDS: dict[vol.Marker, Any] = {
    vol.Optional(CONF_NAME): _TEXT,
    vol.Optional(CONF_PASSWORD): _PASSWORD,
    vol.Required(CONF_PHASES, default=DEFAULT_PHASE_WIRING): SelectSelector(
        SelectSelectorConfig(
            options=list(PHASE_WIRINGS),
            translation_key="phase_wiring",
            mode=SelectSelectorMode.DROPDOWN,
        )
    ),
    vol.Required(CONF_MIN_CURRENT, default=DEFAULT_MIN_CURRENT): _current_selector(0),
    vol.Required(CONF_MAX_CURRENT, default=DEFAULT_MAX_CURRENT): _current_selector(6),
    vol.Optional(CONF_ID_TAGS): _TEXT,
}
# Adding a charger asks for its OCPP identity; reconfigure and discovery know it.
CHARGER_SCHEMA = vol.Schema({vol.Required(CONF_CHARGER_ID): _TEXT, **_CHARGER_FIELDS})
CHARGER_SCHEMA_KNOWN_ID = vol.Schema(_CHARGER_FIELDS)


def _check_port(port: int) -> str | None:
    """Bind the port the way the server will; return an error key or None (executor)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # aiohttp sets SO_REUSEADDR too; without it a TIME_WAIT socket would look busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((DEFAULT_HOST, port))
    except PermissionError:  # EACCES/EPERM: a privileged port
        return "port_permission_denied"
    except OSError:
        return "port_in_use"
    finally:
        sock.close()
    return None


def _check_certificate(certfile: str, keyfile: str) -> bool:
    """Return True if the certificate and key load together (executor)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError, ValueError):
        return False
    return True


async def _async_validate_hub(
    hass: HomeAssistant, user_input: dict[str, Any], *, check_port: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate the hub form; return the entry data and the form errors."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_BASIC_AUTH: bool(user_input[CONF_BASIC_AUTH]),
        CONF_UNKNOWN_CHARGERS: user_input[CONF_UNKNOWN_CHARGERS],
    }
    certfile = (user_input.get(CONF_SSL_CERTFILE) or "").strip()
    keyfile = (user_input.get(CONF_SSL_KEYFILE) or "").strip()
    if certfile and not keyfile:
        errors[CONF_SSL_KEYFILE] = "ssl_pair_required"
    elif keyfile and not certfile:
        errors[CONF_SSL_CERTFILE] = "ssl_pair_required"
    elif certfile and keyfile:
        for key, path in ((CONF_SSL_CERTFILE, certfile), (CONF_SSL_KEYFILE, keyfile)):
            if not await hass.async_add_executor_job(os.path.isfile, path):
                errors[key] = "file_not_found"
        if not errors:
            if await hass.async_add_executor_job(_check_certificate, certfile, keyfile):
                data[CONF_SSL_CERTFILE] = certfile
                data[CONF_SSL_KEYFILE] = keyfile
            else:
                errors["base"] = "invalid_certificate"
    if check_port and (error := await hass.async_add_executor_job(_check_port, data[CONF_PORT])):
        errors[CONF_PORT] = error
    return data, errors


def _valid_charger_id(charger_id: str) -> bool:
    """Return True for a usable OCPP charge point identity."""
    return (
        0 < len(charger_id) <= CHARGER_ID_MAX_LEN
        and charger_id.isprintable()
        and not any(ch.isspace() or ch in CHARGER_ID_FORBIDDEN for ch in charger_id)
    )


def _parse_id_tags(text: str) -> list[str]:
    """Split a comma-separated id-tag list, dropping blanks and duplicates."""
    return list(dict.fromkeys(tag.strip() for tag in text.split(",") if tag.strip()))


def validate_charger(
    user_input: dict[str, Any], *, charger_id: str, basic_auth: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate the charger form (add, reconfigure, discovery); return data and errors."""
    errors: dict[str, str] = {}
    password = user_input.get(CONF_PASSWORD) or ""
    if not password:
        if basic_auth:
            errors[CONF_PASSWORD] = "password_required"
    elif not PASSWORD_MIN_LEN <= len(password) <= PASSWORD_MAX_LEN:
        errors[CONF_PASSWORD] = "password_length"
    min_current = float(user_input[CONF_MIN_CURRENT])
    max_current = float(user_input[CONF_MAX_CURRENT])
    if min_current > max_current:
        errors[CONF_MIN_CURRENT] = "min_above_max"
    id_tags = _parse_id_tags(user_input.get(CONF_ID_TAGS) or "")
    if any(len(tag) > ID_TAG_MAX_LEN for tag in id_tags):
        errors[CONF_ID_TAGS] = "invalid_id_tags"
    data: dict[str, Any] = {
        CONF_CHARGER_ID: charger_id,
        CONF_NAME: (user_input.get(CONF_NAME) or "").strip() or charger_id,
        CONF_PHASES: user_input[CONF_PHASES],
        CONF_MIN_CURRENT: min_current,
        CONF_MAX_CURRENT: max_current,
        CONF_ID_TAGS: id_tags,
    }
    if password:
        data[CONF_PASSWORD] = password
    return data, errors


def _charger_form_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn stored (or submitted) charger data into form values."""
    values = dict(data)
    if isinstance(tags := values.get(CONF_ID_TAGS), list):
        values[CONF_ID_TAGS] = ", ".join(tags)
    return values


def _charger_unique_ids(entry: ConfigEntry) -> set[str]:
    """Return the charger ids configured on the hub entry."""
    return {
        sub.unique_id
        for sub in entry.subentries.values()
        if sub.subentry_type == SUBENTRY_CHARGER and sub.unique_id
    }


@callback
def _async_abort_discovery_flows(hass: HomeAssistant, charger_id: str) -> None:
    """Drop discovery flows for a charger that has just been configured."""
    for flow in hass.config_entries.flow.async_progress_by_handler(
        DOMAIN, match_context={"unique_id": f"charger_{charger_id}"}
    ):
        hass.config_entries.flow.async_abort(flow["flow_id"])


class OcppPowerConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up the OCPP central system and add discovered chargers to it."""

    VERSION = 1

    _discovered: dict[str, str]

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Return the subentry types the hub supports."""
        return {SUBENTRY_CHARGER: ChargerSubentryFlow}

    def _hub_entry(self) -> ConfigEntry | None:
        """Return the hub entry, if one is set up (ignored discoveries do not count)."""
        return next(
            (
                entry
                for entry in self.hass.config_entries.async_entries(DOMAIN)
                if entry.source != SOURCE_IGNORE
            ),
            None,
        )

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Create the hub: the OCPP server's port, TLS and authentication."""
        if self._hub_entry() is not None:
            return self.async_abort(reason="single_instance_allowed")
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = await _async_validate_hub(self.hass, user_input, check_port=True)
            if not errors:
                return self.async_create_entry(title=HUB_TITLE, data=data)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(HUB_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the hub's server settings."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"chargers": ""}
        if user_input is not None:
            port_changed = int(user_input[CONF_PORT]) != entry.data.get(CONF_PORT)
            data, errors = await _async_validate_hub(self.hass, user_input, check_port=port_changed)
            if data[CONF_BASIC_AUTH] and (
                missing := [
                    sub.title
                    for sub in entry.subentries.values()
                    if sub.subentry_type == SUBENTRY_CHARGER and not sub.data.get(CONF_PASSWORD)
                ]
            ):
                errors[CONF_BASIC_AUTH] = "passwords_missing"
                placeholders["chargers"] = ", ".join(sorted(missing))
            if not errors:
                # Keep keys this form does not show (e.g. a host set outside the UI).
                kept = {
                    key: value
                    for key, value in entry.data.items()
                    if key not in (CONF_SSL_CERTFILE, CONF_SSL_KEYFILE)
                }
                return self.async_update_reload_and_abort(entry, data=kept | data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                HUB_SCHEMA, user_input if user_input is not None else entry.data
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_integration_discovery(
        self, discovery_info: DiscoveryInfoType
    ) -> ConfigFlowResult:
        """Offer to add a charger that connected with an unknown identity."""
        charger_id = str(discovery_info[CONF_CHARGER_ID])
        await self.async_set_unique_id(f"charger_{charger_id}")
        self._abort_if_unique_id_configured()
        if (entry := self._hub_entry()) is None:
            return self.async_abort(reason="no_hub")
        if charger_id in _charger_unique_ids(entry):
            return self.async_abort(reason="already_configured")
        self._discovered = {
            CONF_CHARGER_ID: charger_id,
            "vendor": str(discovery_info.get("vendor") or "-"),
            "model": str(discovery_info.get("model") or "-"),
        }
        self.context["title_placeholders"] = {"name": charger_id}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the discovered charger's settings and add it to the hub."""
        if (entry := self._hub_entry()) is None:
            return self.async_abort(reason="no_hub")
        charger_id = self._discovered[CONF_CHARGER_ID]
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = validate_charger(
                user_input,
                charger_id=charger_id,
                basic_auth=entry.data.get(CONF_BASIC_AUTH, True),
            )
            if not errors:
                self.hass.config_entries.async_add_subentry(
                    entry,
                    ConfigSubentry(
                        data=MappingProxyType(data),
                        subentry_type=SUBENTRY_CHARGER,
                        title=data[CONF_NAME],
                        unique_id=charger_id,
                    ),
                )
                return self.async_abort(reason="charger_added")
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=self.add_suggested_values_to_schema(
                CHARGER_SCHEMA_KNOWN_ID,
                user_input if user_input is not None else {CONF_NAME: charger_id},
            ),
            errors=errors,
            description_placeholders=self._discovered,
        )


class ChargerSubentryFlow(ConfigSubentryFlow):
    """Add or change one charger of the hub."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add a charger by its OCPP identity."""
        entry = self._get_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            charger_id = str(user_input[CONF_CHARGER_ID]).strip()
            if not _valid_charger_id(charger_id):
                errors[CONF_CHARGER_ID] = "invalid_charger_id"
            elif charger_id in _charger_unique_ids(entry):
                return self.async_abort(reason="already_configured")
            data, charger_errors = validate_charger(
                user_input, charger_id=charger_id, basic_auth=entry.data.get(CONF_BASIC_AUTH, True)
            )
            errors.update(charger_errors)
            if not errors:
                _async_abort_discovery_flows(self.hass, charger_id)
                return self.async_create_entry(
                    title=data[CONF_NAME], data=data, unique_id=charger_id
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(CHARGER_SCHEMA, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a charger's settings; its identity stays."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        charger_id = subentry.data[CONF_CHARGER_ID]
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = validate_charger(
                user_input, charger_id=charger_id, basic_auth=entry.data.get(CONF_BASIC_AUTH, True)
            )
            if not errors:
                return self.async_update_and_abort(
                    entry, subentry, title=data[CONF_NAME], data=data
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                CHARGER_SCHEMA_KNOWN_ID,
                user_input if user_input is not None else _charger_form_values(subentry.data),
            ),
            errors=errors,
            description_placeholders={CONF_CHARGER_ID: charger_id},
        )
