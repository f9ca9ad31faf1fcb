"""Tests for the charger simulator."""
