"""OCPP 1.6J charge-point, EV and fleet simulator for tests, demos and benchmarks."""

from __future__ import annotations

from .charger import SimCharger
from .ev import EV
from .fleet import SimFleet
from .profiles import ProfileStore

__all__ = ["EV", "ProfileStore", "SimCharger", "SimFleet"]
