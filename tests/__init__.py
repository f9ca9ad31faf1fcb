"""Tests for OCPP Power Manager."""
