"""Hand-made allocation cases with known answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from custom_components.ocpp_power.power import (
    Charger,
    Circuit,
    Reason,
    RotationState,
    Scenario,
    ScenarioError,
    allocate,
)

from . import checker

NOW = 1_733_306_400.0
THREE = ("L1", "L2", "L3")


def three_phase(cid: str, circuit: str, **kw) -> Charger:
    return Charger(cid, circuit, phases=THREE, **kw)


def test_one_32a_panel_five_chargers() -> None:
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0))
    xs = tuple(three_phase(f"cp{i}", "panel", max_current=16.0) for i in range(5))
    sc = Scenario((panel,), xs, now=NOW)
    alloc = allocate(sc)
    assert alloc.setpoints == {f"cp{i}": 6.4 for i in range(5)}
    assert set(alloc.reasons.values()) == {"circuit:panel"}
    checker.check_basic(sc, alloc)
    fig = alloc.circuits["panel"]
    assert fig.ev_current == pytest.approx((32.0, 32.0, 32.0))
    assert fig.headroom_current == pytest.approx((0.0, 0.0, 0.0))
    assert fig.utilisation == pytest.approx(1.0)


def test_whole_amp_chargers_share_the_rounding_slack() -> None:
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0))
    xs = tuple(three_phase(f"cp{i}", "panel", max_current=16.0, current_step=1.0) for i in range(5))
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert sorted(alloc.setpoints.values()) == [6.0, 6.0, 6.0, 7.0, 7.0]
    assert sum(alloc.setpoints.values()) == 32.0


def test_sixth_charger_waits_for_its_turn() -> None:
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0))
    xs = tuple(three_phase(f"cp{i}", "panel", max_current=16.0) for i in range(6))
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints["cp5"] == 0.0
    assert alloc.reasons["cp5"] == "paused_rotation"
    assert alloc.chargers["cp5"].circuit == "panel"
    assert [alloc.setpoints[f"cp{i}"] for i in range(5)] == [6.4] * 5
    # The one that has waited longest goes first.
    xs = (*xs[:5], replace(xs[5], waiting_s=600.0))
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints["cp5"] == 6.4
    assert alloc.reasons["cp4"] == "paused_rotation"


def test_single_phase_cars_on_unbalanced_three_phase_panel() -> None:
    # House load: L1 20 A, L2 5 A (13 A measured minus the 8 A of car b), L3 12 A.
    panel = Circuit("panel", max_current=(25.0, 25.0, 25.0), measured_current=(20.0, 13.0, 12.0))
    xs = (
        Charger("a", "panel", phases=("L1",), max_current=32.0),
        Charger("b", "panel", phases=("L2",), max_current=32.0, measured_current=(8.0,)),
        Charger("c", "panel", phases=("L3",), max_current=16.0),
        Charger("d", "panel", phases=("L2",), max_current=32.0),
    )
    sc = Scenario((panel,), xs, now=NOW)
    alloc = allocate(sc)
    assert alloc.setpoints == {"a": 0.0, "b": 10.0, "c": 13.0, "d": 10.0}
    assert alloc.reasons["a"] == "paused_capacity"
    assert alloc.reasons["b"] == alloc.reasons["c"] == "circuit:panel"
    assert alloc.circuits["panel"].non_ev_current == pytest.approx((20.0, 5.0, 12.0))
    checker.check_basic(sc, alloc)


def test_three_phase_car_drawing_on_one_phase_counts_there_only() -> None:
    panel = Circuit("panel", max_current=(16.0, 16.0, 16.0))
    xs = (
        # Wired L2, L3, L1; the car draws on the charger's own L1 = panel L2.
        Charger("x", "panel", phases=("L2", "L3", "L1"), measured_current=(10.0, 0.2, 0.0)),
        Charger("y", "panel", phases=("L1",), max_current=32.0),
        Charger("z", "panel", phases=("L2",), max_current=32.0),
    )
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.chargers["x"].phases == ("L2",)
    assert alloc.setpoints == {"x": 8.0, "y": 16.0, "z": 8.0}


def test_eleven_kw_virtual_cap_across_two_panels() -> None:
    circuits = (
        Circuit("main", max_current=(63.0, 63.0, 63.0)),
        Circuit("north", parent="main", max_current=(32.0, 32.0, 32.0)),
        Circuit("south", parent="main", max_current=(32.0, 32.0, 32.0)),
        Circuit("fleet", members=("n1", "n2", "s1", "s2"), max_power_w=11000.0),
    )
    xs = (
        three_phase("n1", "north", max_current=16.0),
        Charger("n2", "north", phases=("L1",), max_current=32.0),
        three_phase("s1", "south", max_current=16.0),
        Charger("s2", "south", phases=("L3",), max_current=32.0),
        three_phase("other", "south", max_current=16.0),
    )
    sc = Scenario(circuits, xs, now=NOW)
    alloc = allocate(sc)
    fleet = ["n1", "n2", "s1", "s2"]
    power = sum(230.0 * alloc.setpoints[x] * len(alloc.chargers[x].phases) for x in fleet)
    assert power <= 11000.0 + 1e-6
    assert power > 11000.0 - 230.0 * 0.3  # nothing wasted beyond one step of a 3-phase car
    # 11 kW / 230 V = 47.8 A·phase over 8 phase-slots: 5.97 A each, under the minimum.
    # Admission in turn order: n1, n2, s1 fit their minimums (42 A·phase), s2 waits.
    assert [alloc.setpoints[x] for x in fleet] == [6.8, 7.0, 6.8, 0.0]
    assert alloc.reasons["s2"] == "paused_rotation"
    assert alloc.reasons["n1"] == "circuit:fleet"
    assert alloc.setpoints["other"] == 16.0  # outside the cap: up to the south panel
    assert alloc.circuits["fleet"].ev_power_w == pytest.approx(power)
    checker.check_basic(sc, alloc)


def test_non_ev_load_above_the_limit_stops_its_chargers() -> None:
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0), measured_current=(40.0, 10.0, 10.0))
    xs = (
        three_phase("tri", "panel", max_current=16.0),
        Charger("l1", "panel", phases=("L1",), max_current=16.0),
        Charger("l2", "panel", phases=("L2",), max_current=16.0),
    )
    sc = Scenario((panel,), xs, now=NOW)
    alloc = allocate(sc)
    assert alloc.setpoints == {"tri": 0.0, "l1": 0.0, "l2": 16.0}
    assert alloc.reasons["tri"] == alloc.reasons["l1"] == "paused_capacity"
    assert alloc.chargers["tri"].circuit == "panel"
    assert alloc.circuits["panel"].headroom_current[0] == pytest.approx(-8.0)
    checker.check_basic(sc, alloc)


def test_power_metered_panel_counts_non_ev_power_on_every_phase() -> None:
    # 4600 W non-EV (= 20 A at 230 V) counted on every phase of a 32 A panel.
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0), measured_power_w=4600.0 + 230 * 10)
    xs = (Charger("a", "panel", phases=("L1",), max_current=32.0, measured_current=(10.0,)),)
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints == {"a": 12.0}
    assert alloc.circuits["panel"].non_ev_current == pytest.approx((20.0, 20.0, 20.0))


def test_higher_priority_first() -> None:
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0))
    xs = (
        three_phase("low1", "panel", max_current=32.0),
        three_phase("vip", "panel", max_current=20.0, priority=2),
        three_phase("low2", "panel", max_current=32.0),
    )
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints == {"vip": 20.0, "low1": 6.0, "low2": 6.0}
    assert alloc.reasons["vip"] == "charger_max"
    xs = (*xs[:1], replace(xs[1], max_current=32.0), *xs[2:])
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints == {"vip": 32.0, "low1": 0.0, "low2": 0.0}
    assert alloc.reasons["low1"] == "paused_capacity"


def test_deadline_is_served_before_plain_fairness() -> None:
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0))
    urgent = three_phase(
        "urgent", "panel", max_current=32.0, energy_needed_wh=20000.0, departure=NOW + 7200
    )
    xs = (
        three_phase("a", "panel", max_current=32.0),
        urgent,
        three_phase("b", "panel", max_current=32.0),
    )
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    # 20 kWh in 2 h on 3 x 230 V needs 14.49 A -> 14.5 A; the others share the rest.
    assert alloc.setpoints["urgent"] == 14.5
    assert sorted([alloc.setpoints["a"], alloc.setpoints["b"]]) == [8.7, 8.8]
    # Without the deadline it is plain max-min fairness.
    plain = replace(urgent, energy_needed_wh=None, departure=None)
    alloc = allocate(Scenario((panel,), (xs[0], plain, xs[2]), now=NOW))
    assert sorted(alloc.setpoints.values()) == [10.6, 10.7, 10.7]


def test_least_laxity_first_when_not_all_deadlines_fit() -> None:
    panel = Circuit("panel", max_current=(20.0, 20.0, 20.0))
    xs = (
        # Needs 10 A for 4 h (27.6 kWh at 3 x 230 V); laxity 1.5 h at 16 A.
        Charger("later", "panel", energy_needed_wh=27600.0, departure=NOW + 4 * 3600),
        # Needs 12 A for 2 h (16.56 kWh); laxity 0.5 h: served first.
        Charger("sooner", "panel", energy_needed_wh=16560.0, departure=NOW + 2 * 3600),
    )
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints == {"sooner": 12.0, "later": 8.0}
    # Plain fairness would split 10/10; a car whose minimum no longer fits waits.
    tight = Charger("tight", "panel", energy_needed_wh=20000.0, departure=NOW + 2 * 3600)
    relaxed = Charger("relaxed", "panel", energy_needed_wh=10000.0, departure=NOW + 4 * 3600)
    alloc = allocate(Scenario((panel,), (relaxed, tight), now=NOW))
    assert alloc.setpoints == {"tight": 20.0, "relaxed": 0.0}
    assert alloc.reasons["relaxed"] == "paused_rotation"


def test_reasons_charger_max_and_inactive() -> None:
    panel = Circuit("panel", max_current=(63.0, 63.0, 63.0))
    xs = (
        three_phase("car10", "panel", max_current=32.0, ev_max_current=10.0),
        three_phase("user", "panel", max_current=32.0, user_max_current=13.0),
        three_phase("idle", "panel", active=False, measured_current=(0.0, 0.0, 0.0)),
        three_phase("tiny", "panel", max_current=32.0, ev_max_current=4.0),
    )
    alloc = allocate(Scenario((panel,), xs, now=NOW))
    assert alloc.setpoints == {"car10": 10.0, "user": 13.0, "idle": 0.0, "tiny": 0.0}
    assert alloc.reasons == {
        "car10": "charger_max",
        "user": "charger_max",
        "idle": "inactive",
        "tiny": "charger_max",
    }
    assert alloc.chargers["idle"].reason is Reason.INACTIVE


def test_four_level_tree_binds_at_the_transformer() -> None:
    circuits = (
        Circuit("site", max_current=(400.0, 400.0, 400.0)),
        Circuit("trafo", parent="site", max_current=(40.0, 40.0, 40.0)),
        Circuit("panel", parent="trafo", max_current=(63.0, 63.0, 63.0)),
        Circuit("sub", parent="panel", max_current=(32.0, 32.0, 32.0)),
    )
    xs = (
        three_phase("a", "sub", max_current=32.0),
        three_phase("b", "sub", max_current=32.0),
        three_phase("c", "panel", max_current=32.0),
    )
    alloc = allocate(Scenario(circuits, xs, now=NOW))
    assert sorted(alloc.setpoints.values()) == [13.3, 13.3, 13.4]
    assert set(alloc.reasons.values()) == {"circuit:trafo"}


def test_rotation_over_simulated_hours() -> None:
    """Six cars, room for five minimums: every car charges, nobody waits forever."""
    panel = Circuit("panel", max_current=(32.0, 32.0, 32.0))
    xs = tuple(three_phase(f"cp{i}", "panel", max_current=16.0) for i in range(6))
    period, min_on, dt = 900.0, 300.0, 60.0
    state = RotationState()
    energy = dict.fromkeys((x.id for x in xs), 0.0)
    waited = dict.fromkeys(energy, 0.0)
    longest_wait = dict.fromkeys(energy, 0.0)
    on_since: dict[str, float] = {}
    switches = 0
    prev: dict[str, float] = {}
    t = NOW
    for _ in range(int(8 * 3600 / dt)):
        sc = Scenario((panel,), xs, now=t, rotation_period_s=period, min_on_time_s=min_on)
        alloc = allocate(sc, state)
        checker.check_basic(sc, alloc)
        state = alloc.state
        for cid, v in alloc.setpoints.items():
            energy[cid] += 230.0 * 3 * v * dt / 3600.0
            if v > 0:
                waited[cid] = 0.0
                if prev.get(cid, 0.0) == 0.0:
                    on_since[cid] = t
            else:
                waited[cid] += dt
                longest_wait[cid] = max(longest_wait[cid], waited[cid])
                if prev.get(cid, 0.0) > 0:
                    switches += 1
                    assert t - on_since[cid] >= min_on  # contactors spared
        prev = dict(alloc.setpoints)
        assert sum(v > 0 for v in alloc.setpoints.values()) == 5
        t += dt
    assert all(e > 0 for e in energy.values())
    assert max(longest_wait.values()) <= period + dt
    # Fair over time: each car got about 5/6 of the time.
    assert max(energy.values()) - min(energy.values()) < 0.1 * max(energy.values())
    assert switches <= 8 * 3600 / period + 1


def test_min_on_time_holds_against_a_new_higher_priority_car() -> None:
    panel = Circuit("panel", max_current=(16.0, 16.0, 16.0))
    low = three_phase("low", "panel", max_current=16.0)
    vip = three_phase("vip", "panel", max_current=16.0, priority=5)
    sc = Scenario((panel,), (low,), now=NOW, min_on_time_s=300.0)
    state = allocate(sc).state
    sc = Scenario((panel,), (low, vip), now=NOW + 60, min_on_time_s=300.0)
    alloc = allocate(sc, state)
    assert alloc.setpoints == {"low": 6.0, "vip": 10.0}
    sc = replace(sc, now=NOW + 301)
    alloc = allocate(sc, alloc.state)
    assert alloc.setpoints == {"low": 0.0, "vip": 16.0}


def test_unknown_virtual_members_are_ignored() -> None:
    circuits = (Circuit("a"), Circuit("v", members=("x", "gone"), max_current=(10.0,) * 3))
    alloc = allocate(Scenario(circuits, (Charger("x", "a"),)))
    assert alloc.setpoints == {"x": 10.0}
    assert alloc.reasons == {"x": "circuit:v"}


def test_state_round_trip() -> None:
    state = RotationState({"a": 1.0}, {"b": 2.0})
    assert RotationState.from_dict(state.as_dict()) == state


@pytest.mark.parametrize(
    ("circuits", "chargers", "field"),
    [
        ([Circuit("a", parent="nope")], [], "circuits[0].parent"),
        ([Circuit("a", parent="b"), Circuit("b", parent="a")], [], "circuits[0].parent"),
        ([Circuit("a")], [Charger("x", "b")], "chargers[0].circuit"),
        ([Circuit("a"), Circuit("a")], [], "circuits[1].id"),
        ([Circuit("a")], [Charger("x", "a"), Charger("x", "a")], "chargers[1].id"),
        ([Circuit("v", members=()), Circuit("a", parent="v")], [], "circuits[1].parent"),
        ([Circuit("v", members=())], [Charger("x", "v")], "chargers[0].circuit"),
    ],
)
def test_structural_errors_name_the_field(circuits, chargers, field) -> None:
    with pytest.raises(ScenarioError) as err:
        allocate(Scenario(tuple(circuits), tuple(chargers)))
    assert field in err.value.field


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Circuit("a", max_current=(-1.0, 2.0, 3.0)), "max_current[0]"),
        (lambda: Circuit("a", max_power_w=float("nan")), "max_power_w"),
        (lambda: Charger("x", "a", min_current=-1.0), "min_current"),
        (lambda: Charger("x", "a", max_current="16"), "max_current"),
        (lambda: Charger("x", "a", phases=("L4",)), "phases[0]"),
        (lambda: Charger("x", "a", current_step=0.0), "current_step"),
        (lambda: Charger("x", "a", measured_current=(1.0, "2")), "measured_current[1]"),
        (lambda: Charger("x", "a", priority=1.5), "priority"),
    ],
)
def test_bad_numbers_are_rejected_at_construction(make, field) -> None:
    with pytest.raises(ScenarioError) as err:
        make()
    assert err.value.field == field
