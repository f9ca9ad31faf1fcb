"""Pure tests of the EV model."""

from __future__ import annotations

import pytest

from simulator.ev import EV


def test_full_current_below_taper() -> None:
    ev = EV(soc=0.5, max_current_a=16)
    assert ev.acceptance_a() == 16
    assert ev.acceptance_a(now=123.0) == 16


def test_taper_above_eighty_percent() -> None:
    values = [EV(soc=soc, max_current_a=16).acceptance_a() for soc in (0.8, 0.85, 0.9, 0.95, 0.99)]
    assert values[0] == 16
    assert values == sorted(values, reverse=True)
    assert values[2] == pytest.approx(8)
    assert 0 < values[-1] < 1.0
    assert EV(soc=1.0).acceptance_a() == 0


def test_charge_integrates_energy_and_soc() -> None:
    ev = EV(battery_kwh=50, soc=0.2)
    energy = ev.charge(16, 3, 230, 3600)
    assert energy == pytest.approx(16 * 3 * 230)
    assert ev.soc == pytest.approx(0.2 + 11.04 / 50)
    assert ev.charge(0, 3, 230, 60) == 0


def test_charge_stops_at_target() -> None:
    ev = EV(battery_kwh=10, soc=0.79, target_soc=0.8)
    energy = ev.charge(32, 3, 230, 3600)
    assert energy == pytest.approx(100)
    assert ev.full
    assert ev.acceptance_a() == 0
    assert ev.charge(16, 3, 230, 60) == 0


def test_charges_to_full_in_finite_time() -> None:
    ev = EV(battery_kwh=10, soc=0.95, max_current_a=16)
    for _ in range(3600):
        ev.charge(ev.acceptance_a(), 3, 230, 10)
    assert ev.full


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        EV(phases=4)
    with pytest.raises(ValueError):
        EV(battery_kwh=0)
