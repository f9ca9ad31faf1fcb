"""Hypothesis strategies: random circuit trees, overlapping virtual circuits, chargers."""

from __future__ import annotations

from hypothesis import strategies as st

from custom_components.ocpp_power.power import Charger, Circuit, RotationState, Scenario

NOW = 1_733_306_400.0
WIRINGS = [
    ("L1",),
    ("L2",),
    ("L3",),
    ("L1", "L2", "L3"),
    ("L2", "L3", "L1"),
    ("L3", "L1", "L2"),
    ("L1", "L2"),
]

amps = st.one_of(
    st.integers(0, 80).map(float),
    st.floats(0, 80, allow_nan=False).map(lambda v: round(v, 2)),
)
small_amps = st.sampled_from([0.0, 0.4, 1.0, 3.0, 6.0, 10.0, 16.0, 25.0, 40.0])


@st.composite
def phase_limit(draw) -> tuple[float, float, float] | None:
    if draw(st.booleans()):
        v = draw(amps)
        return (v, v, v)
    return (draw(amps), draw(amps), draw(amps))


@st.composite
def scenarios(
    draw,
    *,
    max_chargers: int = 10,
    max_circuits: int = 6,
    deadlines: bool = True,
    overrides: bool = False,
) -> Scenario:
    """A random scenario: tree of up to max_circuits, 0-3 virtual circuits, chargers."""
    voltage = draw(st.sampled_from([230.0, 230.0, 120.0, 240.0]))
    n_phys = draw(st.integers(1, max_circuits))
    n_chargers = draw(st.integers(1, max_chargers))
    circuits: list[Circuit] = []
    for ci in range(n_phys):
        parent = None
        if ci and draw(st.integers(0, 4)):
            parent = f"c{draw(st.integers(0, ci - 1))}"
        circuits.append(_circuit(draw, f"c{ci}", parent, overrides))
    chargers: list[Charger] = []
    for i in range(n_chargers):
        wiring = draw(st.sampled_from(WIRINGS))
        meas = None
        if draw(st.integers(0, 2)):
            meas = tuple(draw(small_amps) for _ in wiring)
            if draw(st.booleans()):
                meas = meas[: draw(st.integers(1, len(meas)))]
        deadline = deadlines and draw(st.integers(0, 3)) == 0
        hw = draw(st.sampled_from([6.0, 10.0, 16.0, 20.0, 32.0, 40.0, 13.7]))
        chargers.append(
            Charger(
                id=f"x{i}",
                circuit=f"c{draw(st.integers(0, n_phys - 1))}",
                phases=wiring,
                min_current=draw(st.sampled_from([6.0, 6.0, 6.0, 0.0, 8.0, 6.5, 10.0])),
                max_current=hw,
                user_max_current=draw(st.sampled_from([None, None, 12.0, 25.0, 5.0])),
                ev_max_current=draw(st.sampled_from([None, None, 16.0, 32.0, 7.3])),
                priority=draw(st.sampled_from([0, 0, 1, 2])),
                active=draw(st.integers(0, 7)) > 0,
                measured_current=meas,
                energy_needed_wh=draw(st.floats(0, 60000)) if deadline else None,
                departure=NOW + draw(st.floats(-600, 40000)) if deadline else None,
                waiting_s=draw(st.sampled_from([0.0, 0.0, 60.0, 900.0])),
                current_step=draw(st.sampled_from([0.1, 0.1, 0.5, 1.0])),
            )
        )
    ids = [x.id for x in chargers]
    for v in range(draw(st.integers(0, 3))):
        mem = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=len(ids), unique=True))
        kind = draw(st.integers(0, 2))
        circuits.append(
            Circuit(
                f"v{v}",
                members=tuple(mem),
                max_current=draw(phase_limit()) if kind != 1 else None,
                max_power_w=draw(st.floats(0, 40000).map(round)) if kind != 0 else None,
                measured_power_w=draw(st.floats(0, 20000))
                if draw(st.integers(0, 4)) == 0
                else None,
            )
        )
    return Scenario(tuple(circuits), tuple(chargers), now=NOW, voltage=voltage)


def _circuit(draw, cid: str, parent: str | None, overrides: bool) -> Circuit:
    kind = draw(st.integers(0, 4))  # 0 none, 1-2 current, 3 power, 4 both
    max_current = draw(phase_limit()) if kind in (1, 2, 4) else None
    max_power = float(draw(st.integers(0, 60000))) if kind >= 3 else None
    meter = draw(st.integers(0, 3))  # 0 none, 1 current, 2 power, 3 both
    mc = draw(phase_limit()) if meter in (1, 3) else None
    mp = draw(st.floats(-3000, 50000)) if meter >= 2 else None
    nc = nw = None
    if overrides and draw(st.integers(0, 3)) == 0:
        nc = draw(phase_limit())
        nw = draw(st.sampled_from([None, 1000.0]))
    return Circuit(
        cid,
        parent=parent,
        max_current=max_current,
        max_power_w=max_power,
        measured_current=mc,
        measured_power_w=mp,
        non_ev_current=nc,
        non_ev_power_w=nw,
        voltage=draw(st.sampled_from([None, None, 230.0, 400.0])),
    )


@st.composite
def rotation_states(draw, scenario: Scenario) -> RotationState:
    """A random rotation state over the scenario's chargers."""
    on: dict[str, float] = {}
    wait: dict[str, float] = {}
    for x in scenario.chargers:
        k = draw(st.integers(0, 2))
        if k == 1:
            on[x.id] = scenario.now - draw(st.sampled_from([0.0, 100.0, 400.0, 1000.0, 5000.0]))
        elif k == 2:
            wait[x.id] = scenario.now - draw(st.sampled_from([0.0, 50.0, 1000.0]))
    return RotationState(on, wait)
