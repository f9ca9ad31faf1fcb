"""Shared fixtures for OCPP Power Manager tests."""

from __future__ import annotations

import pytest

# Import our component first so the plugin's own testing_config package does not
# shadow custom_components (TOOLCHAIN.md).
from custom_components.ocpp_power.const import DOMAIN  # noqa: F401


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Enable loading custom integrations in every test."""
