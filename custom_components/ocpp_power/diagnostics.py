"""Diagnostics: configuration (secrets redacted), charger states and the live allocation."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_ID_TAGS, CONF_PASSWORD, CONF_SSL_KEYFILE
from .hub import OcppPowerConfigEntry

TO_REDACT = {CONF_PASSWORD, CONF_ID_TAGS, CONF_SSL_KEYFILE, "id_tag", "serial"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: OcppPowerConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for the hub entry."""
    hub = entry.runtime_data
    chargers = {}
    for charger_id in hub.chargers:
        state = asdict(hub.state(charger_id))
        state["capabilities"]["feature_profiles"] = sorted(
            state["capabilities"]["feature_profiles"]
        )
        state["capabilities"]["rate_units"] = sorted(state["capabilities"]["rate_units"])
        chargers[charger_id] = state
    return async_redact_data(
        {
            "entry": {
                "data": dict(entry.data),
                "subentries": [
                    {"type": sub.subentry_type, "title": sub.title, "data": dict(sub.data)}
                    for sub in entry.subentries.values()
                ],
            },
            "port": hub.port,
            "connected": sorted(hub.central_system.connections) if hub.central_system else [],
            "chargers": chargers,
            "allocation": hub.manager.allocation_report(),
            "passes": hub.manager.passes,
        },
        TO_REDACT,
    )
