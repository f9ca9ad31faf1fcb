"""Independent invariant checker for allocations (does not reuse the allocator's accounting)."""

from __future__ import annotations

from dataclasses import dataclass
import math

from custom_components.ocpp_power.power import Charger, Circuit, Scenario

EPS = 1e-6
PH = {"L1": 0, "L2": 1, "L3": 2}


def drawn(x: Charger) -> set[int]:
    """Panel phases a charger counts on (DESIGN.md phase conventions)."""
    wired = [PH[p] for p in x.phases]
    meas = list(x.measured_current or ())
    got = {wired[j] for j in range(min(len(wired), len(meas))) if meas[j] > 1.0}
    return got or set(wired)


def measured_draw(x: Charger) -> list[float]:
    """Measured current per panel phase."""
    out = [0.0, 0.0, 0.0]
    for j, p in enumerate(x.phases):
        if x.measured_current and j < len(x.measured_current) and x.measured_current[j] > 0:
            out[PH[p]] += x.measured_current[j]
    return out


def eff_max(x: Charger) -> float:
    """Smallest of hardware limit, user cap, car max."""
    return min(v for v in (x.max_current, x.user_max_current, x.ev_max_current) if v is not None)


def step_floor(v: float, step: float) -> float:
    return math.floor(v / step + 1e-7) * step


def step_ceil(v: float, step: float) -> float:
    return math.ceil(v / step - 1e-7) * step


def start_value(x: Charger) -> float:
    """Smallest non-zero setpoint: the minimum on the step grid, at least one step."""
    return max(step_ceil(x.min_current, x.current_step), x.current_step)


def can_charge(x: Charger) -> bool:
    """Whether a charger could get any valid non-zero setpoint."""
    top = step_floor(eff_max(x), x.current_step)
    return x.active and top > 0 and step_ceil(x.min_current, x.current_step) <= top + EPS


@dataclass
class Limit:
    """One linear limit: sum(coef_i * s_i) <= cap (cap already net of non-EV load)."""

    circuit: str
    kind: str  # "L1".."L3" or "W"
    coef: dict[str, float]
    cap: float
    over: bool  # non-EV load alone is over the limit

    def load(self, s: dict[str, float]) -> float:
        return sum(a * s[i] for i, a in self.coef.items())


def members(sc: Scenario, c: Circuit) -> list[Charger]:
    """Chargers under a circuit: subtree by walking parents, or member list."""
    by_id = {k.id: k for k in sc.circuits}
    if c.members is not None:
        ids = set(c.members)
        return [x for x in sc.chargers if x.id in ids]
    out = []
    for x in sc.chargers:
        cur: str | None = x.circuit
        while cur is not None:
            if cur == c.id:
                out.append(x)
                break
            cur = by_id[cur].parent
    return out


def non_ev(sc: Scenario, c: Circuit, xs: list[Charger]) -> tuple[list[float], float]:
    """Non-EV load per phase and in W."""
    v = c.voltage or sc.voltage
    draw = [0.0, 0.0, 0.0]
    for x in xs:
        d = measured_draw(x)
        for p in range(3):
            draw[p] += d[p]
    if c.non_ev_current is not None or c.non_ev_power_w is not None:
        if c.non_ev_current is not None:
            ne = [max(0.0, a) for a in c.non_ev_current]
            w = v * sum(ne)
            if c.non_ev_power_w is not None:
                w = max(w, c.non_ev_power_w)
            return ne, w
        w = max(0.0, c.non_ev_power_w or 0.0)
        return [w / v] * 3, w
    if c.measured_current is not None:
        ne = [max(0.0, c.measured_current[p] - draw[p]) for p in range(3)]
        w = v * sum(ne)
        if c.measured_power_w is not None:
            w = max(w, c.measured_power_w - v * sum(draw))
        return ne, w
    if c.measured_power_w is not None:
        w = max(0.0, c.measured_power_w - v * sum(draw))
        return [w / v] * 3, w
    return [0.0, 0.0, 0.0], 0.0


def limits(sc: Scenario) -> list[Limit]:
    """All limits of a scenario, in amps (power limits divided by the circuit voltage)."""
    out = []
    for c in sc.circuits:
        xs = members(sc, c)
        ne, ne_w = non_ev(sc, c, xs)
        v = c.voltage or sc.voltage
        if c.max_current is not None:
            for p in range(3):
                coef = {x.id: 1.0 for x in xs if p in drawn(x)}
                cap = c.max_current[p] - ne[p]
                out.append(Limit(c.id, f"L{p + 1}", coef, cap, cap < -EPS))
        if c.max_power_w is not None:
            coef = {x.id: float(len(drawn(x))) for x in xs}
            cap = (c.max_power_w - ne_w) / v
            out.append(Limit(c.id, "W", coef, cap, cap < -EPS))
    return out


def fits(lims: list[Limit], s: dict[str, float]) -> bool:
    """Whether setpoints respect every limit."""
    for lim in lims:
        load = lim.load(s)
        if lim.over:
            if load > EPS:
                return False
        elif load > lim.cap + EPS:
            return False
    return True


def blocking(lims: list[Limit], s: dict[str, float], cid: str, value: float) -> list[Limit]:
    """Limits that would break (or come within EPS of breaking) if cid took `value`.

    The safety check allows EPS over a limit and this one counts EPS under it as full,
    so that a load a hair's breadth from the limit (a meter reading 1e-5 W, say) is
    judged the same way by both and the allocator may round either way.
    """
    t = dict(s)
    t[cid] = value
    out = []
    for lim in lims:
        if cid not in lim.coef:
            continue
        load = lim.load(t)
        if (lim.over and load > EPS) or (not lim.over and load > lim.cap - EPS):
            out.append(lim)
    return out


def check_basic(sc: Scenario, alloc, *, lims: list[Limit] | None = None) -> None:
    """Limits, ranges, steps, non-wastefulness and reasons."""
    lims = limits(sc) if lims is None else lims
    s = alloc.setpoints
    assert set(s) == {x.id for x in sc.chargers}
    # Limits: setpoints + non-EV load within every limit; non-EV over the limit -> 0.
    for lim in lims:
        load = lim.load(s)
        if lim.over:
            assert load <= EPS, f"non-EV over {lim.circuit}/{lim.kind} but EV load {load}"
        else:
            assert load <= lim.cap + EPS, f"{lim.circuit}/{lim.kind}: {load} > {lim.cap}"
    for x in sc.chargers:
        v = s[x.id]
        reason = alloc.reasons[x.id]
        top = step_floor(eff_max(x), x.current_step)
        # Range: 0 or within [min, max], on the step grid.
        if v != 0:
            assert x.active, f"{x.id} inactive but {v}"
            assert v >= x.min_current - EPS, f"{x.id}: {v} below min {x.min_current}"
            assert v <= eff_max(x) + EPS, f"{x.id}: {v} above max {eff_max(x)}"
            k = v / x.current_step
            assert abs(k - round(k)) < 1e-6, f"{x.id}: {v} not a multiple of {x.current_step}"
        # Reasons.
        if not x.active:
            assert reason == "inactive" and v == 0
            continue
        if not can_charge(x):
            assert v == 0 and reason == "charger_max", (x.id, v, reason)
            continue
        if v == 0:
            assert reason in ("paused_capacity", "paused_rotation"), (x.id, reason)
            # Non-waste: the minimum must not fit.
            lo = start_value(x)
            assert blocking(lims, s, x.id, lo), f"{x.id} paused but its minimum {lo} fits"
            continue
        if v >= top - EPS:
            assert reason == "charger_max", (x.id, v, top, reason)
            continue
        # Not at max: raising by one step must break a limit, and the reason names one.
        broken = blocking(lims, s, x.id, v + x.current_step)
        assert broken, f"{x.id} at {v} could be raised by {x.current_step} (max {top})"
        assert reason.startswith("circuit:"), (x.id, reason)
        assert reason[len("circuit:") :] in {lim.circuit for lim in broken}, (x.id, reason)


def check_priority(sc: Scenario, alloc, lims: list[Limit]) -> None:
    """Strict priority: dropping every lower-priority charger frees nothing for a higher one."""
    s = alloc.setpoints
    for x in sc.chargers:
        if not can_charge(x):
            continue
        v = s[x.id]
        top = step_floor(eff_max(x), x.current_step)
        if v >= top - EPS:
            continue
        t = {y.id: (0.0 if y.priority < x.priority else s[y.id]) for y in sc.chargers}
        want = v + x.current_step if v > 0 else start_value(x)
        assert blocking(lims, t, x.id, want), (
            f"{x.id} (priority {x.priority}) at {v} is held down by lower priorities"
        )


def check_fairness(sc: Scenario, alloc, lims: list[Limit]) -> None:
    """Max-min fairness among equals, up to rounding to the current steps.

    Every charger that is on and below its max has a nearly saturated limit in which no
    charger of its priority has more than it (or than its own minimum), within a few steps.
    A step of x left unused by rounding down is worth coef_x / coef_y steps to y (a 3-phase
    whole-amp charger under a power limit frees 3 A for a 1-phase one), so the tolerance
    grows with that ratio.
    """
    s = alloc.setpoints
    by_id = {x.id: x for x in sc.chargers}
    for x in sc.chargers:
        v = s[x.id]
        if v <= 0 or not can_charge(x):
            continue
        if v >= step_floor(eff_max(x), x.current_step) - EPS:
            continue
        ok = False
        for lim in lims:
            if x.id not in lim.coef:
                continue
            slack = (0.0 if lim.over else lim.cap) - lim.load(s)
            near = sum(a * by_id[j].current_step for j, a in lim.coef.items()) + EPS
            if slack > near:
                continue
            fair = True
            for j in lim.coef:
                y = by_id[j]
                if j == x.id or y.priority != x.priority or s[j] <= 0:
                    continue
                ratio = max(1.0, lim.coef[x.id] / lim.coef[j])
                tol = (2 + ratio) * max(x.current_step, y.current_step) + EPS
                if s[j] > max(v, step_ceil(y.min_current, y.current_step)) + tol:
                    fair = False
                    break
            if fair:
                ok = True
                break
        assert ok, f"{x.id} at {v} has no bottleneck where it is among the highest"


def total_load(sc: Scenario, s: dict[str, float]) -> float:
    return sum(s.values())
