"""Controller: headroom margin, smoothing, deadband and hold, stale and missing meters."""

from __future__ import annotations

import itertools

import pytest

from custom_components.ocpp_power.power import (
    Charger,
    Circuit,
    Controller,
    ControllerConfig,
    MeterSmoother,
    Scenario,
    apply_margin,
    offline_safe_shares,
)

THREE = ("L1", "L2", "L3")
PANEL = Circuit("panel", max_current=(32.0, 32.0, 32.0))


def scenario(draw: float = 0.0, n: int = 1) -> Scenario:
    xs = tuple(
        Charger(f"cp{i}", "panel", phases=THREE, max_current=32.0, measured_current=(draw,) * 3)
        for i in range(n)
    )
    return Scenario((PANEL,), xs)


def sent(step) -> dict[str, tuple[float, str]]:
    return {c.charger_id: (c.limit_a, c.kind) for c in step.commands}


def test_margin_reduces_every_limit() -> None:
    c = apply_margin(Circuit("c", max_current=(32.0, 0.5, 10.0), max_power_w=11000.0), 1.0, 230.0)
    assert c.max_current == (31.0, 0.0, 9.0)
    assert c.max_power_w == pytest.approx(11000.0 - 690.0)
    ctl = Controller(ControllerConfig(margin_a=2.0))
    step = ctl.step(scenario(), now=0.0)
    assert step.allocation.setpoints == {"cp0": 30.0}
    assert sent(step) == {"cp0": (30.0, "first")}


def test_cut_at_once_raise_after_hold_and_deadband() -> None:
    cfg = ControllerConfig(margin_a=0.0, smoothing_tau_s=0.0, hold_before_raise_s=30.0)
    ctl = Controller(cfg)
    house = 10.0
    ctl.update_meter("panel", 0.0, current=(house,) * 3)
    step = ctl.step(scenario(0.0), now=0.0)
    assert sent(step) == {"cp0": (22.0, "first")}
    # House load rises to 20 A: the charger (drawing 22 A) is cut at once.
    ctl.update_meter("panel", 10.0, current=(20.0 + 22.0,) * 3)
    step = ctl.step(scenario(22.0), now=10.0)
    assert sent(step) == {"cp0": (12.0, "cut")}
    assert step.applied == {"cp0": 12.0}
    # House load falls back: the raise waits for the hold.
    for t in (20.0, 35.0, 49.0):
        ctl.update_meter("panel", t, current=(10.0 + 12.0,) * 3)
        step = ctl.step(scenario(12.0), now=t)
        assert step.allocation.setpoints == {"cp0": 22.0}
        assert step.commands == ()
        assert step.applied == {"cp0": 12.0}
    ctl.update_meter("panel", 50.0, current=(22.0,) * 3)
    step = ctl.step(scenario(12.0), now=50.0)
    assert sent(step) == {"cp0": (22.0, "raise")}
    # A raise inside the deadband waits until it has lasted a minute; a cut never waits.
    for t in (60.0, 100.0, 119.0):
        ctl.update_meter("panel", t, current=(9.5 + 22.0,) * 3)
        step = ctl.step(scenario(22.0), now=t)
        assert step.allocation.setpoints == {"cp0": 22.5}
        assert step.commands == ()
    ctl.update_meter("panel", 120.0, current=(9.5 + 22.0,) * 3)
    assert sent(ctl.step(scenario(22.0), now=120.0)) == {"cp0": (22.5, "raise")}
    ctl.update_meter("panel", 210.0, current=(10.2 + 22.5,) * 3)
    step = ctl.step(scenario(22.5), now=210.0)
    assert sent(step) == {"cp0": (21.8, "cut")}


def test_small_raises_can_be_turned_off() -> None:
    cfg = ControllerConfig(margin_a=0.0, smoothing_tau_s=0.0, small_raise_after_s=0.0)
    ctl = Controller(cfg)
    ctl.update_meter("panel", 0.0, current=(10.0,) * 3)
    assert sent(ctl.step(scenario(0.0), now=0.0)) == {"cp0": (22.0, "first")}
    for t in (100.0, 1000.0, 5000.0):
        ctl.update_meter("panel", t, current=(9.5 + 22.0,) * 3)
        step = ctl.step(scenario(22.0), now=t)
        assert step.allocation.setpoints == {"cp0": 22.5}
        assert step.commands == () or sent(step) == {"cp0": (22.0, "renew")}


def test_lease_is_renewed() -> None:
    ctl = Controller(ControllerConfig(renew_after_s=600.0))
    assert sent(ctl.step(scenario(), now=0.0)) == {"cp0": (31.0, "first")}
    assert ctl.step(scenario(), now=300.0).commands == ()
    assert sent(ctl.step(scenario(), now=600.0)) == {"cp0": (31.0, "renew")}


def test_smoothing_passes_rises_and_releases_slowly() -> None:
    sm = MeterSmoother(tau_s=30.0)
    assert sm.update(0.0, (10.0,)) == (10.0,)
    assert sm.update(10.0, (25.0,)) == (25.0,)  # a rise passes at once
    falling = [sm.update(t, (5.0,))[0] for t in (20.0, 30.0, 40.0, 100.0, 400.0)]
    assert all(a > b for a, b in itertools.pairwise(falling))
    assert falling[0] == pytest.approx(5.0 + 20.0 * 2.718281828 ** (-1 / 3))
    assert falling[-1] == pytest.approx(5.0, abs=1e-3)


def test_controller_smooths_a_falling_non_ev_load() -> None:
    cfg = ControllerConfig(margin_a=0.0, smoothing_tau_s=60.0, hold_before_raise_s=0.0)
    ctl = Controller(cfg)
    ctl.update_meter("panel", 0.0, current=(20.0,) * 3)
    assert ctl.step(scenario(), now=0.0).allocation.setpoints == {"cp0": 12.0}
    ctl.update_meter("panel", 10.0, current=(2.0 + 12.0,) * 3)
    step = ctl.step(scenario(12.0), now=10.0)
    # Non-EV load fell from 20 A to 2 A; the smoothed value is still well above 2 A.
    assert 12.0 < step.allocation.setpoints["cp0"] < 16.0
    ctl.update_meter("panel", 600.0, current=(2.0 + 12.0,) * 3)
    assert ctl.step(scenario(12.0), now=600.0).allocation.setpoints == {"cp0": 30.0}


def test_stale_meter_falls_back_to_last_known_load_plus_margin() -> None:
    cfg = ControllerConfig(
        margin_a=1.0, smoothing_tau_s=0.0, stale_after_s=60.0, stale_margin_a=3.0,
        hold_before_raise_s=0.0,
    )  # fmt: skip
    ctl = Controller(cfg)
    ctl.update_meter("panel", 0.0, current=(10.0,) * 3)
    step = ctl.step(scenario(), now=0.0)
    assert step.allocation.setpoints == {"cp0": 21.0}
    assert step.stale == ()
    step = ctl.step(scenario(21.0), now=60.0)
    assert step.allocation.setpoints == {"cp0": 21.0}
    # No data for more than 60 s: last known non-EV load (10 A) + 3 A.
    step = ctl.step(scenario(21.0), now=61.0)
    assert step.stale == ("panel",)
    assert step.allocation.setpoints == {"cp0": 18.0}
    assert sent(step) == {"cp0": (18.0, "cut")}
    assert step.scenario.circuits[0].non_ev_current == (13.0, 13.0, 13.0)
    # Fresh data ends the fallback.
    ctl.update_meter("panel", 70.0, current=(5.0 + 18.0,) * 3)
    step = ctl.step(scenario(18.0), now=70.0)
    assert step.stale == ()
    assert step.allocation.setpoints == {"cp0": 26.0}


def test_missing_meter_uses_the_static_safe_share() -> None:
    cfg = ControllerConfig(margin_a=1.0, offline_reserve_fraction=0.5)
    ctl = Controller(cfg, metered={"panel"})
    step = ctl.step(scenario(n=2), now=0.0)
    assert step.stale == ("panel",)
    # (32 - 1 margin - 16 reserved) / 2 chargers = 7.5 A each.
    assert step.allocation.setpoints == {"cp0": 7.5, "cp1": 7.5}
    ctl.update_meter("panel", 5.0, current=(4.0, 4.0, 4.0))
    step = ctl.step(scenario(n=2), now=5.0)
    assert step.stale == ()
    assert step.allocation.setpoints == {"cp0": 13.5, "cp1": 13.5}


def test_offline_shares_reserve_the_peak_non_ev_load() -> None:
    ctl = Controller(ControllerConfig(margin_a=1.0, smoothing_tau_s=0.0))
    for t, house in ((0.0, 6.0), (10.0, 12.0), (20.0, 3.0)):
        ctl.update_meter("panel", t, current=(house,) * 3)
        ctl.step(scenario(n=2), now=t)
    assert ctl.offline_shares(scenario(n=2)) == {"cp0": 9.5, "cp1": 9.5}


def test_offline_safe_shares_fit_nested_and_virtual_circuits() -> None:
    circuits = (
        Circuit("main", max_current=(40.0, 40.0, 40.0)),
        Circuit("a", parent="main", max_current=(32.0, 32.0, 32.0)),
        Circuit("b", parent="main", max_current=(32.0, 32.0, 32.0)),
        Circuit("cap", members=("a1", "b1"), max_power_w=7360.0),
    )
    xs = (
        Charger("a1", "a", phases=("L1",), max_current=32.0, measured_current=(0.0,)),
        Charger("a2", "a", phases=THREE, max_current=16.0, active=False),
        Charger("b1", "b", phases=("L2", "L3", "L1"), max_current=32.0),
    )
    shares = offline_safe_shares(Scenario(circuits, xs))
    # Every charger counts as active on all its wired phases.
    assert shares["a1"] + shares["a2"] + shares["b1"] <= 40.0 + 1e-9
    assert 230 * (shares["a1"] + 3 * shares["b1"]) <= 7360.0 + 1e-6
    assert all(v == 0 or v >= 6.0 for v in shares.values())
    assert shares["a2"] > 0


def test_rotation_state_is_carried_between_steps() -> None:
    ctl = Controller(ControllerConfig(margin_a=0.0))
    sc = Scenario((PANEL,), tuple(Charger(f"cp{i}", "panel", max_current=16.0) for i in range(6)))
    step = ctl.step(sc, now=0.0)
    assert step.allocation.setpoints["cp5"] == 0.0
    assert ctl.rotation.waiting_since == {"cp5": 0.0}
    step = ctl.step(sc, now=960.0)
    assert step.allocation.setpoints["cp5"] == 6.4


def test_offline_shares_follow_limits_and_chargers_not_measurements() -> None:
    ctl = Controller(ControllerConfig(margin_a=0.0))
    assert ctl.offline_shares(scenario(draw=0.0, n=2)) == {"cp0": 16.0, "cp1": 16.0}
    # What the cars draw does not change what they may draw without Home Assistant.
    assert ctl.offline_shares(scenario(draw=12.0, n=2)) == {"cp0": 16.0, "cp1": 16.0}
    # Another charger on the panel, a lower limit, a lower charger cap: new shares.
    assert ctl.offline_shares(scenario(n=4)) == {f"cp{i}": 8.0 for i in range(4)}
    lower = Scenario((Circuit("panel", max_current=(24.0,) * 3),), scenario(n=4).chargers)
    assert ctl.offline_shares(lower) == {f"cp{i}": 6.0 for i in range(4)}
    capped = Scenario(
        (PANEL,),
        (
            Charger("cp0", "panel", phases=THREE, max_current=10.0),
            Charger("cp1", "panel", phases=THREE, max_current=32.0),
        ),
    )
    assert ctl.offline_shares(capped) == {"cp0": 10.0, "cp1": 22.0}
