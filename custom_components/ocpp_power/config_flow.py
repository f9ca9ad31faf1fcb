"""Config flow for OCPP Power Manager: the hub entry, its charger and circuit subentries."""

from __future__ import annotations

from collections.abc import Mapping
import os
import socket
import ssl
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_USER,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_NAME, UnitOfElectricCurrent, UnitOfPower
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import DiscoveryInfoType
from homeassistant.util import slugify
import voluptuous as vol

from .const import (
    CIRCUIT_KIND_VIRTUAL,
    CIRCUIT_KINDS,
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
    DEFAULT_HOST,
    DEFAULT_MAX_CURRENT,
    DEFAULT_MIN_CURRENT,
    DEFAULT_PHASE_WIRING,
    DEFAULT_PORT,
    DEFAULT_SAFETY_MARGIN,
    DOMAIN,
    METER_CURRENT,
    METER_NONE,
    METER_POWER,
    NOMINAL_VOLTAGE,
    PHASE_WIRINGS,
    SUBENTRY_CHARGER,
    SUBENTRY_CIRCUIT,
    UNKNOWN_CHARGERS_DISCOVER,
    UNKNOWN_CHARGERS_REJECT,
)
from .models import CIRCUIT_PHASES, CircuitConfig

HUB_TITLE = "OCPP Power Manager"

# OCPP identity: CiString48, one URL path segment, and the Basic-auth user name (no ':').
CHARGER_ID_MAX_LEN = 48
CHARGER_ID_FORBIDDEN = frozenset("/?#:%\\")
# OCPP 1.6 security profiles want 16-40 characters; many chargers accept 8 and up.
PASSWORD_MIN_LEN = 8
PASSWORD_MAX_LEN = 40
ID_TAG_MAX_LEN = 20  # OCPP 1.6 IdToken is CiString20
CURRENT_LIMIT_MAX = 80.0

# Circuits: from a sub-panel breaker up to a transformer or a site's grid connection.
CIRCUIT_CURRENT_MAX = 5000.0
CIRCUIT_POWER_MAX_KW = 5000.0
VOLTAGE_MIN = 100.0
VOLTAGE_MAX = 480.0
SAFETY_MARGIN_MAX = 20.0
POWER_UNITS = (UnitOfPower.WATT, UnitOfPower.KILO_WATT)
CURRENT_UNITS = (UnitOfElectricCurrent.AMPERE,)
DEFAULT_CIRCUIT_KIND = "panel"
DEFAULT_CIRCUIT_PHASES = "l1_l2_l3"

_TEXT = TextSelector()
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _box(minimum: float, maximum: float, step: float, unit: str) -> NumberSelector:
    """Return a box number selector."""
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=maximum,
            step=step,
            unit_of_measurement=unit,
            mode=NumberSelectorMode.BOX,
        )
    )


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

CIRCUIT_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME): _TEXT,
        vol.Required(CONF_KIND, default=DEFAULT_CIRCUIT_KIND): SelectSelector(
            SelectSelectorConfig(
                options=list(CIRCUIT_KINDS),
                translation_key="circuit_kind",
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        vol.Required(CONF_PHASES, default=DEFAULT_CIRCUIT_PHASES): SelectSelector(
            SelectSelectorConfig(
                options=list(CIRCUIT_PHASES),
                translation_key="circuit_phases",
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        # Limits may be left empty, but not both; zero is refused with a form error.
        vol.Optional(CONF_MAX_CURRENT): _box(0, CIRCUIT_CURRENT_MAX, 1, "A"),
        vol.Optional(CONF_MAX_POWER_KW): _box(0, CIRCUIT_POWER_MAX_KW, 0.1, "kW"),
        vol.Required(CONF_VOLTAGE, default=NOMINAL_VOLTAGE): _box(VOLTAGE_MIN, VOLTAGE_MAX, 1, "V"),
        vol.Required(CONF_SAFETY_MARGIN, default=DEFAULT_SAFETY_MARGIN): _box(
            0, SAFETY_MARGIN_MAX, 0.5, "A"
        ),
    }
)
_METER_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=[METER_NONE, METER_POWER, METER_CURRENT],
        translation_key="meter",
        mode=SelectSelectorMode.LIST,
    )
)
_POWER_SENSOR_SELECTOR = EntitySelector(EntitySelectorConfig(domain="sensor", device_class="power"))
_CURRENT_SENSORS_SELECTOR = EntitySelector(
    EntitySelectorConfig(domain="sensor", device_class="current", multiple=True)
)

_PHASE_WIRING_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=list(PHASE_WIRINGS),
        translation_key="phase_wiring",
        mode=SelectSelectorMode.DROPDOWN,
    )
)


def _charger_schema(entry: ConfigEntry, *, with_id: bool) -> vol.Schema:
    """Return the charger form; adding asks for the OCPP identity, the others know it.

    The circuit field appears once the hub has a physical circuit to wire the charger to.
    """
    fields: dict[vol.Marker, Any] = {}
    if with_id:
        fields[vol.Required(CONF_CHARGER_ID)] = _TEXT
    fields[vol.Optional(CONF_NAME)] = _TEXT
    fields[vol.Optional(CONF_PASSWORD)] = _PASSWORD
    fields[vol.Required(CONF_PHASES, default=DEFAULT_PHASE_WIRING)] = _PHASE_WIRING_SELECTOR
    if options := _circuit_options(entry, physical=True):
        fields[vol.Optional(CONF_CIRCUIT)] = SelectSelector(
            SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
        )
    fields[vol.Required(CONF_MIN_CURRENT, default=DEFAULT_MIN_CURRENT)] = _current_selector(0)
    fields[vol.Required(CONF_MAX_CURRENT, default=DEFAULT_MAX_CURRENT)] = _current_selector(6)
    fields[vol.Optional(CONF_ID_TAGS)] = _TEXT
    return vol.Schema(fields)


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
    user_input: dict[str, Any],
    *,
    charger_id: str,
    basic_auth: bool,
    circuits: Mapping[str, CircuitConfig] | None = None,
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
    if circuit_id := user_input.get(CONF_CIRCUIT):
        circuit = (circuits or {}).get(circuit_id)
        if circuit is None or circuit.is_virtual:
            # Removed or made virtual since the form was shown.
            errors[CONF_CIRCUIT] = "circuit_not_physical"
        elif not set(PHASE_WIRINGS[data[CONF_PHASES]]) <= set(circuit.phases):
            errors[CONF_CIRCUIT] = "charger_phase_mismatch"
        data[CONF_CIRCUIT] = circuit_id
    return data, errors


def _charger_form_values(entry: ConfigEntry, data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn stored charger data into form values."""
    values = dict(data)
    if isinstance(tags := values.get(CONF_ID_TAGS), list):
        values[CONF_ID_TAGS] = ", ".join(tags)
    if values.get(CONF_CIRCUIT) not in {o["value"] for o in _circuit_options(entry, physical=True)}:
        # Its circuit was removed (or made virtual): suggest none rather than an invalid one.
        values.pop(CONF_CIRCUIT, None)
    return values


def _charger_unique_ids(entry: ConfigEntry) -> set[str]:
    """Return the charger ids configured on the hub entry."""
    return {
        sub.unique_id
        for sub in entry.subentries.values()
        if sub.subentry_type == SUBENTRY_CHARGER and sub.unique_id
    }


def _circuit_configs(entry: ConfigEntry) -> dict[str, CircuitConfig]:
    """Return the circuits configured on the hub entry by circuit id."""
    configs = {}
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type == SUBENTRY_CIRCUIT:
            config = CircuitConfig.from_subentry(subentry_id, subentry.title, subentry.data)
            configs[config.circuit_id] = config
    return configs


def _circuit_options(
    entry: ConfigEntry, *, physical: bool, exclude: str | None = None
) -> list[SelectOptionDict]:
    """Return select options for the hub's physical (or all) circuits, labelled by name."""
    return sorted(
        (
            SelectOptionDict(value=circuit.circuit_id, label=circuit.name)
            for circuit in _circuit_configs(entry).values()
            if circuit.circuit_id != exclude and not (physical and circuit.is_virtual)
        ),
        key=lambda option: option["label"].casefold(),
    )


def _charger_options(entry: ConfigEntry) -> list[SelectOptionDict]:
    """Return select options for the hub's chargers, labelled by name."""
    return sorted(
        (
            SelectOptionDict(value=sub.data[CONF_CHARGER_ID], label=sub.title)
            for sub in entry.subentries.values()
            if sub.subentry_type == SUBENTRY_CHARGER
        ),
        key=lambda option: option["label"].casefold(),
    )


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
        return {SUBENTRY_CHARGER: ChargerSubentryFlow, SUBENTRY_CIRCUIT: CircuitSubentryFlow}

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
                circuits=_circuit_configs(entry),
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
                _charger_schema(entry, with_id=False),
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
            elif any(sub.unique_id == charger_id for sub in entry.subentries.values()):
                # Subentry unique ids are shared by chargers and circuits.
                errors[CONF_CHARGER_ID] = "charger_id_in_use"
            data, charger_errors = validate_charger(
                user_input,
                charger_id=charger_id,
                basic_auth=entry.data.get(CONF_BASIC_AUTH, True),
                circuits=_circuit_configs(entry),
            )
            errors.update(charger_errors)
            if not errors:
                _async_abort_discovery_flows(self.hass, charger_id)
                return self.async_create_entry(
                    title=data[CONF_NAME], data=data, unique_id=charger_id
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                _charger_schema(entry, with_id=True), user_input
            ),
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
                user_input,
                charger_id=charger_id,
                basic_auth=entry.data.get(CONF_BASIC_AUTH, True),
                circuits=_circuit_configs(entry),
            )
            if not errors:
                return self.async_update_and_abort(
                    entry, subentry, title=data[CONF_NAME], data=data
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _charger_schema(entry, with_id=False),
                user_input
                if user_input is not None
                else _charger_form_values(entry, subentry.data),
            ),
            errors=errors,
            description_placeholders={CONF_CHARGER_ID: charger_id},
        )


# ---------------------------------------------------------------- circuits


def _opt_float(value: Any) -> float | None:
    """Return a form number as float, None when left empty."""
    return None if value in (None, "") else float(value)


def _wired_chargers(entry: ConfigEntry, circuit_id: str) -> dict[str, str]:
    """Return charger id -> phase wiring of the chargers wired to a circuit."""
    return {
        sub.data[CONF_CHARGER_ID]: sub.data.get(CONF_PHASES, DEFAULT_PHASE_WIRING)
        for sub in entry.subentries.values()
        if sub.subentry_type == SUBENTRY_CHARGER and sub.data.get(CONF_CIRCUIT) == circuit_id
    }


def _validate_circuit_basics(
    entry: ConfigEntry, user_input: dict[str, Any], circuit_id: str | None
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Validate the first circuit form; return its data, errors and the names in conflict.

    circuit_id is None when adding: the id is then made from the name, and stays.
    """
    errors: dict[str, str] = {}
    conflicts: list[str] = []
    name = str(user_input.get(CONF_NAME) or "").strip()
    if not any(ch.isalnum() for ch in name):
        errors[CONF_NAME] = "invalid_name"
    elif circuit_id is None:
        circuit_id = slugify(name)
        # Subentry unique ids are shared by chargers and circuits.
        if any(sub.unique_id == circuit_id for sub in entry.subentries.values()):
            errors[CONF_NAME] = "name_in_use"
    max_current = _opt_float(user_input.get(CONF_MAX_CURRENT))
    max_power_kw = _opt_float(user_input.get(CONF_MAX_POWER_KW))
    if max_current is None and max_power_kw is None:
        errors["base"] = "limit_required"
    for key, value in ((CONF_MAX_CURRENT, max_current), (CONF_MAX_POWER_KW, max_power_kw)):
        if value is not None and value <= 0:
            errors[key] = "limit_not_positive"
    kind = user_input[CONF_KIND]
    phases = CIRCUIT_PHASES[user_input[CONF_PHASES]]
    existing = _circuit_configs(entry)
    if circuit_id in existing and not errors.get(CONF_NAME):
        # A changed circuit must still fit the circuits and chargers wired to it.
        children = [c for c in existing.values() if c.parent == circuit_id]
        chargers = _wired_chargers(entry, circuit_id)
        if kind == CIRCUIT_KIND_VIRTUAL and (children or chargers):
            errors[CONF_KIND] = "circuit_in_use"
        else:
            names = _charger_names(entry)
            conflicts = sorted(
                [c.name for c in children if not set(c.phases) <= set(phases)]
                + [
                    names.get(charger_id, charger_id)
                    for charger_id, wiring in chargers.items()
                    if not set(PHASE_WIRINGS[wiring]) <= set(phases)
                ]
            )
            if conflicts:
                errors[CONF_PHASES] = "circuit_phases_conflict"
    data = {
        CONF_CIRCUIT_ID: circuit_id,
        CONF_KIND: kind,
        CONF_MAX_CURRENT: max_current,
        CONF_MAX_POWER_KW: max_power_kw,
        CONF_PHASES: user_input[CONF_PHASES],
        CONF_VOLTAGE: float(user_input[CONF_VOLTAGE]),
        CONF_SAFETY_MARGIN: float(user_input[CONF_SAFETY_MARGIN]),
        CONF_NAME: name,
    }
    return data, errors, conflicts


def _charger_names(entry: ConfigEntry) -> dict[str, str]:
    """Return charger id -> name."""
    return {
        sub.data[CONF_CHARGER_ID]: sub.title
        for sub in entry.subentries.values()
        if sub.subentry_type == SUBENTRY_CHARGER
    }


def _validate_parent(
    circuits: Mapping[str, CircuitConfig], circuit_id: str, phases: tuple[str, ...], parent: str
) -> str | None:
    """Return the error key for an unusable parent circuit, or None."""
    if (config := circuits.get(parent)) is None or config.is_virtual:
        return "parent_not_physical"
    seen: set[str] = set()
    current: str | None = parent
    while current is not None and current not in seen:
        if current == circuit_id:
            return "parent_cycle"
        seen.add(current)
        current = circuits[current].parent if current in circuits else None
    if not set(phases) <= set(config.phases):
        return "parent_phase_mismatch"
    return None


def _sensor_error(hass: HomeAssistant, entity_id: str, units: tuple[str, ...]) -> str | None:
    """Return the error key for a meter sensor that is missing or in the wrong unit."""
    if (state := hass.states.get(entity_id)) is None:
        return "sensor_not_found"
    if state.attributes.get("unit_of_measurement") not in units:
        return "sensor_unit"
    return None


class CircuitSubentryFlow(ConfigSubentryFlow):
    """Add or change one circuit: a physical part of the supply, or a set of chargers.

    Steps: name, kind, phases and limits; then parent and meter type (physical) or
    members (virtual); then the meter's sensors when there is a meter.
    """

    _data: dict[str, Any]
    _previous: Mapping[str, Any]

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add a circuit: its name, kind, phases and limits."""
        if user_input is None:
            self._previous = {}
        return await self._async_step_basics("user", user_input, None)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a circuit; its id stays, the hub applies the change live."""
        subentry = self._get_reconfigure_subentry()
        if user_input is None:
            self._previous = {**subentry.data, CONF_NAME: subentry.title}
        return await self._async_step_basics(
            "reconfigure", user_input, subentry.data[CONF_CIRCUIT_ID]
        )

    async def _async_step_basics(
        self, step_id: str, user_input: dict[str, Any] | None, circuit_id: str | None
    ) -> SubentryFlowResult:
        """Show and validate the first form, shared by adding and reconfiguring."""
        errors: dict[str, str] = {}
        placeholders = {"name": str(self._previous.get(CONF_NAME, "")), "conflicts": ""}
        if user_input is not None:
            data, errors, conflicts = _validate_circuit_basics(
                self._get_entry(), user_input, circuit_id
            )
            placeholders["conflicts"] = ", ".join(conflicts)
            if not errors:
                self._data = data
                if data[CONF_KIND] == CIRCUIT_KIND_VIRTUAL:
                    return await self.async_step_virtual()
                return await self.async_step_physical()
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                CIRCUIT_SCHEMA, user_input if user_input is not None else self._suggested()
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_physical(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the parent circuit and the meter type of a physical circuit."""
        entry = self._get_entry()
        circuit_id = self._data[CONF_CIRCUIT_ID]
        errors: dict[str, str] = {}
        if user_input is not None:
            parent = user_input.get(CONF_PARENT) or None
            if parent is not None and (
                error := _validate_parent(
                    _circuit_configs(entry),
                    circuit_id,
                    CIRCUIT_PHASES[self._data[CONF_PHASES]],
                    parent,
                )
            ):
                errors[CONF_PARENT] = error
            if not errors:
                self._data |= {
                    CONF_PARENT: parent,
                    CONF_MEMBERS: [],
                    CONF_METER: user_input[CONF_METER],
                }
                if user_input[CONF_METER] == METER_NONE:
                    return self._async_finish()
                return await self.async_step_meter()
        fields: dict[vol.Marker, Any] = {}
        if options := _circuit_options(entry, physical=True, exclude=circuit_id):
            fields[vol.Optional(CONF_PARENT)] = SelectSelector(
                SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
            )
        fields[vol.Required(CONF_METER, default=METER_NONE)] = _METER_SELECTOR
        suggested = user_input
        if suggested is None:
            suggested = self._suggested()
            if suggested.get(CONF_PARENT) not in {o["value"] for o in options}:
                suggested.pop(CONF_PARENT, None)  # removed meanwhile
        return self.async_show_form(
            step_id="physical",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), suggested),
            errors=errors,
            description_placeholders={"name": self._data[CONF_NAME]},
        )

    async def async_step_virtual(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask which chargers a virtual circuit limits together."""
        errors: dict[str, str] = {}
        if user_input is not None:
            members = list(dict.fromkeys(user_input.get(CONF_MEMBERS) or []))
            if not members:
                errors[CONF_MEMBERS] = "members_required"
            else:
                self._data |= {CONF_PARENT: None, CONF_MEMBERS: members, CONF_METER: METER_NONE}
                return self._async_finish()
        options = _charger_options(self._get_entry())
        schema = vol.Schema(
            {
                vol.Optional(CONF_MEMBERS): SelectSelector(
                    SelectSelectorConfig(
                        options=options, multiple=True, mode=SelectSelectorMode.DROPDOWN
                    )
                )
            }
        )
        suggested = user_input
        if suggested is None:
            suggested = self._suggested()
            known = {o["value"] for o in options}
            # Chargers removed meanwhile drop out of the suggestion.
            suggested[CONF_MEMBERS] = [m for m in suggested.get(CONF_MEMBERS, []) if m in known]
        return self.async_show_form(
            step_id="virtual",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders={"name": self._data[CONF_NAME]},
        )

    async def async_step_meter(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the sensors of the circuit's meter."""
        meter = self._data[CONF_METER]
        phases = CIRCUIT_PHASES[self._data[CONF_PHASES]]
        errors: dict[str, str] = {}
        if user_input is not None:
            power_sensor: str | None = None
            current_sensors: list[str] = []
            if meter == METER_POWER:
                power_sensor = user_input[CONF_POWER_SENSOR]
                if error := _sensor_error(self.hass, power_sensor, POWER_UNITS):
                    errors[CONF_POWER_SENSOR] = error
            else:
                current_sensors = list(user_input.get(CONF_CURRENT_SENSORS) or [])
                if len(set(current_sensors)) != len(current_sensors) or len(current_sensors) != len(
                    phases
                ):
                    errors[CONF_CURRENT_SENSORS] = "current_sensor_count"
                else:
                    for entity_id in current_sensors:
                        if error := _sensor_error(self.hass, entity_id, CURRENT_UNITS):
                            errors[CONF_CURRENT_SENSORS] = error
                            break
            if not errors:
                self._data |= {
                    CONF_POWER_SENSOR: power_sensor,
                    CONF_CURRENT_SENSORS: current_sensors,
                    CONF_METER_INCLUDES_CHARGERS: bool(user_input[CONF_METER_INCLUDES_CHARGERS]),
                }
                return self._async_finish()
        fields: dict[vol.Marker, Any] = {}
        if meter == METER_POWER:
            fields[vol.Required(CONF_POWER_SENSOR)] = _POWER_SENSOR_SELECTOR
        else:
            fields[vol.Required(CONF_CURRENT_SENSORS)] = _CURRENT_SENSORS_SELECTOR
        fields[vol.Required(CONF_METER_INCLUDES_CHARGERS, default=True)] = BooleanSelector()
        suggested = user_input
        if suggested is None and self._previous.get(CONF_METER) == meter:
            suggested = self._suggested()
        return self.async_show_form(
            step_id="meter",
            data_schema=self.add_suggested_values_to_schema(vol.Schema(fields), suggested),
            errors=errors,
            description_placeholders={
                "name": self._data[CONF_NAME],
                "phases": ", ".join(phases),
                "count": str(len(phases)),
            },
        )

    def _suggested(self) -> dict[str, Any]:
        """Return the stored values of the circuit being reconfigured (empty when adding)."""
        return {key: value for key, value in self._previous.items() if value not in (None, [])}

    @callback
    def _async_finish(self) -> SubentryFlowResult:
        """Store the circuit: a new subentry, or the changed one."""
        data = self._data
        meter = data[CONF_METER]
        stored: dict[str, Any] = {
            CONF_CIRCUIT_ID: data[CONF_CIRCUIT_ID],
            CONF_KIND: data[CONF_KIND],
            CONF_PARENT: data[CONF_PARENT],
            CONF_MEMBERS: data[CONF_MEMBERS],
            CONF_MAX_CURRENT: data[CONF_MAX_CURRENT],
            CONF_MAX_POWER_KW: data[CONF_MAX_POWER_KW],
            CONF_PHASES: data[CONF_PHASES],
            CONF_VOLTAGE: data[CONF_VOLTAGE],
            CONF_SAFETY_MARGIN: data[CONF_SAFETY_MARGIN],
            CONF_METER: meter,
            CONF_POWER_SENSOR: data.get(CONF_POWER_SENSOR) if meter == METER_POWER else None,
            CONF_CURRENT_SENSORS: data.get(CONF_CURRENT_SENSORS, [])
            if meter == METER_CURRENT
            else [],
            CONF_METER_INCLUDES_CHARGERS: data.get(CONF_METER_INCLUDES_CHARGERS, True),
        }
        if self.source == SOURCE_USER:
            return self.async_create_entry(
                title=data[CONF_NAME], data=stored, unique_id=data[CONF_CIRCUIT_ID]
            )
        return self.async_update_and_abort(
            self._get_entry(), self._get_reconfigure_subentry(), title=data[CONF_NAME], data=stored
        )
