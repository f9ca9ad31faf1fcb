"""Property tests: every invariant of DESIGN.md "Allocation semantics" on random scenarios."""

from __future__ import annotations

from dataclasses import replace
import math

from hypothesis import HealthCheck, given, settings, strategies as st

from custom_components.ocpp_power.power import (
    Charger,
    Circuit,
    MeterSmoother,
    RotationState,
    Scenario,
    SetpointFilter,
    allocate,
    offline_safe_shares,
    parse_scenario,
    scenario_to_dict,
)

from . import checker
from .strategies import NOW, rotation_states, scenarios

PROPERTY = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(scenarios(overrides=True))
def test_limits_ranges_waste_reasons(sc: Scenario) -> None:
    """Limits hold, setpoints are 0 or in [min, max], nothing is wasted, reasons fit."""
    alloc = allocate(sc)
    checker.check_basic(sc, alloc)


@PROPERTY
@given(scenarios(overrides=True))
def test_deterministic_and_json_round_trip(sc: Scenario) -> None:
    """Same input, same output; scenario JSON round trip changes nothing."""
    a = allocate(sc)
    b = allocate(sc)
    c = allocate(parse_scenario(scenario_to_dict(sc)))
    assert a.setpoints == b.setpoints == c.setpoints
    assert a.reasons == b.reasons == c.reasons
    assert a.state == b.state


@PROPERTY
@given(scenarios(deadlines=False))
def test_priority_and_max_min_fairness(sc: Scenario) -> None:
    """Higher priority first (strictly); max-min fair among equals (up to steps)."""
    alloc = allocate(sc)
    lims = checker.limits(sc)
    checker.check_basic(sc, alloc, lims=lims)
    checker.check_priority(sc, alloc, lims)
    checker.check_fairness(sc, alloc, lims)


@PROPERTY
@given(st.data())
def test_invariants_with_rotation_state(data: st.DataObject) -> None:
    """With rotation state (holds, turns) every safety and waste invariant still holds."""
    sc = data.draw(scenarios())
    state = data.draw(rotation_states(sc))
    sc = replace(
        sc,
        rotation_period_s=data.draw(st.sampled_from([0.0, 600.0, 900.0])),
        min_on_time_s=data.draw(st.sampled_from([0.0, 300.0, 2000.0])),
    )
    alloc = allocate(sc, state)
    checker.check_basic(sc, alloc)
    on = {x for x, v in alloc.setpoints.items() if v > 0}
    assert set(alloc.state.on_since) == on
    for cid, t in alloc.state.on_since.items():
        assert t == state.on_since.get(cid, sc.now)
    for cid in alloc.state.waiting_since:
        assert alloc.reasons[cid].startswith("paused")


@PROPERTY
@given(st.data())
def test_offline_safe_shares_fit_every_circuit(data: st.DataObject) -> None:
    """Offline shares of all chargers together fit every circuit (with its reserve)."""
    sc = data.draw(scenarios())
    reserve = {
        c.id: (data.draw(checker_amps), data.draw(checker_amps), data.draw(checker_amps))
        for c in sc.circuits
        if data.draw(st.booleans())
    }
    shares = offline_safe_shares(sc, reserve)
    static = replace(
        sc,
        circuits=tuple(
            replace(
                c,
                measured_current=None,
                measured_power_w=None,
                non_ev_current=reserve.get(c.id),
                non_ev_power_w=None,
            )
            for c in sc.circuits
        ),
        chargers=tuple(
            replace(x, active=True, measured_current=None, ev_max_current=None) for x in sc.chargers
        ),
    )
    lims = checker.limits(static)
    assert checker.fits(lims, shares)
    for x in static.chargers:
        v = shares[x.id]
        assert v == 0 or x.min_current - 1e-6 <= v <= checker.eff_max(x) + 1e-6


checker_amps = st.sampled_from([0.0, 2.0, 10.0, 30.0, 100.0])


@PROPERTY
@given(
    st.lists(
        st.tuples(st.floats(0.1, 120), st.floats(0, 100), st.floats(0, 100)),
        min_size=1,
        max_size=30,
    ),
    st.floats(0, 120),
)
def test_smoothing_never_hides_a_rising_load(samples, tau) -> None:
    """The smoothed load is never below the raw load, and a rise passes at once."""
    sm = MeterSmoother(tau)
    now = 0.0
    prev = None
    for dt, a, b in samples:
        now += dt
        out = sm.update(now, (a, b))
        assert out[0] >= a - 1e-9 and out[1] >= b - 1e-9
        if prev is not None:
            for raw, old, new in zip((a, b), prev, out, strict=True):
                if raw >= old:
                    assert new == raw
                else:
                    assert raw - 1e-9 <= new <= old + 1e-9
        prev = out


@PROPERTY
@given(
    st.lists(
        st.tuples(st.floats(0.5, 60), st.sampled_from([0.0, 6.0, 6.5, 7.0, 10.0, 16.0, 32.0])),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.sampled_from([0.0, 10.0, 30.0]),
    st.sampled_from([0.0, 20.0, 60.0]),
)
def test_setpoint_filter_never_above_target(steps, deadband, hold, small) -> None:
    """Commands never exceed the allocation: cuts go at once, raises wait for the hold.

    A raise inside the deadband goes out only once the target has stayed above the
    sent limit for `small` seconds (never when `small` is 0).
    """
    f = SetpointFilter(deadband, hold, renew_s=300.0, small_raise_s=small)
    now = 0.0
    raised_since: float | None = None
    above_since: float | None = None
    for dt, target in steps:
        now += dt
        before = f.applied
        if f.sent is not None and target > before and (target - before >= deadband or before == 0):
            raised_since = now if raised_since is None else raised_since
        else:
            raised_since = None
        if f.sent is not None and target > before:
            above_since = now if above_since is None else above_since
        else:
            above_since = None
        cmd = f.update(target, now)
        assert f.applied <= target + 1e-9, "charger held above its allocation"
        if cmd is None:
            assert f.applied == before
            continue
        if cmd.kind == "cut":
            assert cmd.limit_a == target < before
        elif cmd.kind == "raise":
            held = raised_since is not None and now - raised_since >= hold - 1e-9
            small_due = small > 0 and above_since is not None and now - above_since >= small
            assert held or small_due
            assert cmd.limit_a == target > before
        elif cmd.kind == "renew":
            assert cmd.limit_a == before
        else:
            assert cmd.kind == "first" and before == 0
        if cmd.kind != "renew":
            raised_since = above_since = None


@PROPERTY
@given(
    st.integers(2, 7),
    st.integers(1, 4),
    st.sampled_from([0.1, 1.0]),
    st.lists(st.sampled_from([0.0, 60.0, 600.0]), min_size=7, max_size=7),
)
def test_rotation_every_car_gets_its_turn(k, slots, step, waits) -> None:
    """Cars that do not all fit take turns: nobody waits much longer than its share."""
    period, dt = 900.0, 225.0
    panel = Circuit("panel", max_current=(slots * 6.0 + 0.5, 100.0, 100.0))
    xs = tuple(
        Charger(f"x{i}", "panel", phases=("L1",), max_current=16.0, current_step=step,
                waiting_s=waits[i])
        for i in range(k)
    )  # fmt: skip
    state = RotationState()
    waited = dict.fromkeys((x.id for x in xs), 0.0)
    longest = dict.fromkeys(waited, 0.0)
    charged = dict.fromkeys(waited, False)
    on = min(k, slots)
    bound = (math.ceil((k - on) / on) + 1) * period + dt
    now = NOW
    for _ in range(int((k + 2) * period / dt)):
        sc = Scenario((panel,), xs, now=now, rotation_period_s=period, min_on_time_s=300.0)
        alloc = allocate(sc, state)
        state = alloc.state
        assert sum(v > 0 for v in alloc.setpoints.values()) == on
        for cid, v in alloc.setpoints.items():
            if v > 0:
                charged[cid] = True
                waited[cid] = 0.0
            else:
                waited[cid] += dt
                longest[cid] = max(longest[cid], waited[cid])
        now += dt
    assert all(charged.values())
    assert max(longest.values()) <= bound
