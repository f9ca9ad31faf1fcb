"""Allocation: share circuit capacity among chargers (DESIGN.md "Allocation semantics").

Every circuit limit becomes linear constraints over the setpoints (amps per phase):
one per limited phase (coefficient 1 for each charger drawing on that phase) and one per
power limit (coefficient = number of drawn phases, capacity in A·phase = W / V). The
capacity of a constraint is its limit minus the non-EV load. Constraints that cannot bind
(the maxima of all their chargers fit) are dropped up front.

Per priority class, highest first:

1. admission: cars held by their minimum on-time (all classes, first), then, by least
   laxity, cars with a deadline get the rate they need, then the others in rotation order
   get their minimum where it fits (greedy: nobody left out could still get a minimum);
2. progressive filling from those floors: all rising chargers go up together; when a
   constraint saturates, its chargers freeze (rounded down to their current step); when a
   charger reaches its max, it freezes. Events come from heaps and every freeze updates
   only the constraints of the frozen charger, so a class costs O(M log K) for M
   charger-constraint memberships.

Finally a greedy pass gives the slack left by rounding, one step at a time, to the lowest
setpoint of the highest class first, so that no charger could be raised by a step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from heapq import heapify, heappop, heappush
import math
from typing import Final

from .model import DRAW_THRESHOLD_A, PHASE_INDEX, PhaseCurrents, Scenario, build_topology

EPS: Final = 1e-9
_FUDGE: Final = 1e-7  # in units of a current step, absorbs float noise when rounding
_INF: Final = math.inf
_MASK_PHASES: Final = tuple(tuple(p for p in range(3) if m >> p & 1) for m in range(8))


class Reason(StrEnum):
    """Why a charger got its setpoint; a small fixed set (an enum sensor in HA)."""

    CIRCUIT = "circuit"  # held down by a circuit limit (see `circuit`)
    CHARGER_MAX = "charger_max"  # at its own max (hardware, user cap, what the car takes)
    PAUSED_CAPACITY = "paused_capacity"  # its minimum does not fit
    PAUSED_ROTATION = "paused_rotation"  # its minimum would fit alone; others have the turn
    INACTIVE = "inactive"  # no car or not charging


@dataclass(frozen=True, slots=True)
class ChargerResult:
    """Setpoint of one charger (A per phase) with its reason and limiting circuit."""

    setpoint: float
    reason: Reason
    circuit: str | None = None
    phases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Return the reason as one string: `circuit:<id>` or the reason value."""
        if self.reason is Reason.CIRCUIT and self.circuit is not None:
            return f"circuit:{self.circuit}"
        return self.reason.value


@dataclass(frozen=True, slots=True)
class CircuitResult:
    """Figures of one circuit after allocation (for UI sensors); currents per phase."""

    id: str
    limit_current: PhaseCurrents | None
    limit_power_w: float | None
    non_ev_current: PhaseCurrents
    non_ev_power_w: float
    measured_ev_current: PhaseCurrents
    ev_current: PhaseCurrents
    ev_power_w: float
    headroom_current: PhaseCurrents | None
    headroom_power_w: float | None
    utilisation: float | None


@dataclass(frozen=True, slots=True)
class RotationState:
    """Who is charging since when and who is waiting since when; carried between calls."""

    on_since: Mapping[str, float] = field(default_factory=dict)
    waiting_since: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Return a JSON-friendly copy (for persistence)."""
        return {"on_since": dict(self.on_since), "waiting_since": dict(self.waiting_since)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float]]) -> RotationState:
        """Build from `as_dict` output."""
        return cls(
            {str(k): float(v) for k, v in data.get("on_since", {}).items()},
            {str(k): float(v) for k, v in data.get("waiting_since", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Allocation:
    """Result of one allocation."""

    setpoints: dict[str, float]
    reasons: dict[str, str]
    chargers: dict[str, ChargerResult]
    circuits: dict[str, CircuitResult]
    state: RotationState

    def as_dict(self) -> dict[str, object]:
        """Return the CLI output: setpoints and reasons."""
        return {"setpoints": dict(self.setpoints), "reasons": dict(self.reasons)}


@dataclass(frozen=True, slots=True)
class NonEvLoad:
    """Non-EV load of a circuit: per phase (A) and as power (W); never negative."""

    current: PhaseCurrents
    power_w: float


def non_ev_loads(scenario: Scenario) -> dict[str, NonEvLoad]:
    """Return the non-EV load of every circuit (measured load minus measured EV draw)."""
    topo = build_topology(scenario)
    ev_meas, _ = _measured_draws(scenario, topo.leaf, topo.order, topo.parent, topo.virtual_of)
    out = {}
    for ci, c in enumerate(scenario.circuits):
        ne, ne_w = _non_ev(c, ev_meas[ci], c.voltage or scenario.voltage)
        out[c.id] = NonEvLoad((ne[0], ne[1], ne[2]), ne_w)
    return out


def _measured_draws(scenario, leaf, order, parent, virtual_of):
    """Return the measured EV draw per circuit and phase, and per charger."""
    circuits = scenario.circuits
    ev_meas = [[0.0, 0.0, 0.0] for _ in circuits]
    per_charger: list[tuple[float, float, float] | None] = []
    pidx = PHASE_INDEX
    for i, x in enumerate(scenario.chargers):
        meas = x.measured_current
        if not meas:
            per_charger.append(None)
            continue
        v = [0.0, 0.0, 0.0]
        for ph, a in zip(x.phases, meas, strict=False):
            if a > 0:
                v[pidx[ph]] += a
        per_charger.append((v[0], v[1], v[2]))
        em = ev_meas[leaf[i]]
        em[0] += v[0]
        em[1] += v[1]
        em[2] += v[2]
    for ci in reversed(order):
        p = parent[ci]
        if p >= 0:
            a, b = ev_meas[p], ev_meas[ci]
            a[0] += b[0]
            a[1] += b[1]
            a[2] += b[2]
    for i, vs in enumerate(virtual_of):
        v = per_charger[i]
        if vs and v is not None:
            for ci in vs:
                em = ev_meas[ci]
                em[0] += v[0]
                em[1] += v[1]
                em[2] += v[2]
    return ev_meas, per_charger


def _non_ev(c, ev, volt) -> tuple[list[float], float]:
    """Return the non-EV load per phase (A) and as power (W) of one circuit."""
    if c.non_ev_current is not None or c.non_ev_power_w is not None:
        if c.non_ev_current is not None:
            ne = [max(0.0, v) for v in c.non_ev_current]
            ne_w = volt * (ne[0] + ne[1] + ne[2])
            if c.non_ev_power_w is not None:
                ne_w = max(ne_w, c.non_ev_power_w)
        else:
            ne_w = max(0.0, c.non_ev_power_w)
            ne = [ne_w / volt] * 3
        return ne, ne_w
    if c.measured_current is not None:
        m = c.measured_current
        ne = [max(0.0, m[0] - ev[0]), max(0.0, m[1] - ev[1]), max(0.0, m[2] - ev[2])]
        ne_w = volt * (ne[0] + ne[1] + ne[2])
        if c.measured_power_w is not None:
            ne_w = max(ne_w, c.measured_power_w - volt * (ev[0] + ev[1] + ev[2]))
        return ne, ne_w
    if c.measured_power_w is not None:
        # Metered by power only: the whole non-EV power counts on every phase (safe side).
        ne_w = max(0.0, c.measured_power_w - volt * (ev[0] + ev[1] + ev[2]))
        return [ne_w / volt] * 3, ne_w
    return [0.0, 0.0, 0.0], 0.0


def allocate(scenario: Scenario, state: RotationState | None = None) -> Allocation:
    """Allocate setpoints (A per phase) to every charger; raise ScenarioError if invalid."""
    topo = build_topology(scenario)
    if state is None:
        state = RotationState()
    now = scenario.now
    circuits = scenario.circuits
    chargers = scenario.chargers
    nc = len(circuits)
    nx = len(chargers)
    vdef = scenario.voltage
    volt = [c.voltage or vdef for c in circuits]
    parent, leaf, order, virtual_of = topo.parent, topo.leaf, topo.order, topo.virtual_of

    ev_meas, _ = _measured_draws(scenario, leaf, order, parent, virtual_of)

    # --- per charger: drawn phases, effective range -------------------------------------
    pidx = PHASE_INDEX
    thr = DRAW_THRESHOLD_A
    wired_cache: dict[tuple[str, ...], tuple[tuple[int, ...], int]] = {}
    dmask = [0] * nx
    lo = [0.0] * nx
    hi = [0.0] * nx
    step = [0.1] * nx
    prio = [0] * nx
    ok = [False] * nx  # active and able to charge
    dem = [[0.0, 0.0, 0.0, 0.0] for _ in range(nc)]  # demand at max: per phase, A·phase
    floor_ = math.floor
    ceil_ = math.ceil
    for i, x in enumerate(chargers):
        ph = x.phases
        w = wired_cache.get(ph)
        if w is None:
            wi = tuple(pidx[p] for p in ph)
            w = wired_cache[ph] = (wi, sum(1 << p for p in wi))
        mask = 0
        meas = x.measured_current
        if meas:
            for p, a in zip(w[0], meas, strict=False):
                if a > thr:
                    mask |= 1 << p
        if not mask:
            mask = w[1]
        dmask[i] = mask
        if not x.active:
            continue
        stp = x.current_step
        m = x.max_current
        if x.user_max_current is not None and x.user_max_current < m:
            m = x.user_max_current
        if x.ev_max_current is not None and x.ev_max_current < m:
            m = x.ev_max_current
        top = floor_(m / stp + _FUDGE) * stp
        bottom = ceil_(x.min_current / stp - _FUDGE) * stp
        step[i] = stp
        prio[i] = x.priority
        if top <= 0 or top < bottom - EPS:
            continue
        ok[i] = True
        lo[i] = bottom
        hi[i] = top
        d = dem[leaf[i]]
        for p in _MASK_PHASES[mask]:
            d[p] += top
        d[3] += top * len(_MASK_PHASES[mask])
    for ci in reversed(order):
        p = parent[ci]
        if p >= 0:
            a, b = dem[p], dem[ci]
            a[0] += b[0]
            a[1] += b[1]
            a[2] += b[2]
            a[3] += b[3]
    for i, vs in enumerate(virtual_of):
        if vs and ok[i]:
            top = hi[i]
            dp = _MASK_PHASES[dmask[i]]
            for ci in vs:
                d = dem[ci]
                for p in dp:
                    d[p] += top
                d[3] += top * len(dp)

    # --- constraints -------------------------------------------------------------------
    ne_all: list[list[float]] = []
    ne_w_all: list[float] = []
    cap: list[float] = []
    cons_c: list[int] = []
    ck = [(-1, -1, -1, -1)] * nc
    for ci, c in enumerate(circuits):
        ne, ne_w = _non_ev(c, ev_meas[ci], volt[ci])
        ne_all.append(ne)
        ne_w_all.append(ne_w)
        if c.max_current is None and c.max_power_w is None:
            continue
        d = dem[ci]
        row = [-1, -1, -1, -1]
        if c.max_current is not None:
            for p in range(3):
                cv = c.max_current[p] - ne[p]
                if d[p] > cv + EPS:
                    row[p] = len(cap)
                    cap.append(cv)
                    cons_c.append(ci)
        if c.max_power_w is not None:
            cv = (c.max_power_w - ne_w) / volt[ci]
            if d[3] > cv + EPS:
                row[3] = len(cap)
                cap.append(cv)
                cons_c.append(ci)
        ck[ci] = (row[0], row[1], row[2], row[3])
    nk = len(cap)

    # --- memberships: (constraint, coefficient) per charger -----------------------------
    sig: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
    mem: list[tuple[tuple[int, int], ...]] = [()] * nx
    members: list[list[int]] = [[] for _ in range(nk)]
    if nk:
        for i in range(nx):
            if not ok[i]:
                continue
            key = (leaf[i], dmask[i])
            ml = sig.get(key)
            if ml is None:
                dp = _MASK_PHASES[dmask[i]]
                n = len(dp)
                acc: list[tuple[int, int]] = []
                ci = leaf[i]
                while ci >= 0:
                    row = ck[ci]
                    for p in dp:
                        if row[p] >= 0:
                            acc.append((row[p], 1))
                    if row[3] >= 0:
                        acc.append((row[3], n))
                    ci = parent[ci]
                ml = sig[key] = tuple(acc)
            if virtual_of[i]:
                dp = _MASK_PHASES[dmask[i]]
                n = len(dp)
                extra = []
                for ci in virtual_of[i]:
                    row = ck[ci]
                    for p in dp:
                        if row[p] >= 0:
                            extra.append((row[p], 1))
                    if row[3] >= 0:
                        extra.append((row[3], n))
                if extra:
                    ml = ml + tuple(extra)
            mem[i] = ml
            for k, _a in ml:
                members[k].append(i)

    # --- admission and filling, class by class --------------------------------------------
    base = [0.0] * nk  # load of non-rising chargers per constraint
    rate = [0] * nk  # sum of coefficients of rising chargers
    st = [0] * nx  # 0 out, 1 admitted (at floor), 2 rising, 3 frozen
    flo = [0.0] * nx
    s = [0.0] * nx
    limk = [-1] * nx  # limiting constraint, -1 for none / own max
    paused_k = [-1] * nx
    paused_rot = [False] * nx
    on_since = state.on_since
    waiting_since = state.waiting_since
    rot_period = scenario.rotation_period_s
    min_on = scenario.min_on_time_s

    def admit(i: int, f: float) -> int:
        ml = mem[i]
        for k, a in ml:
            if base[k] + a * f > cap[k] + EPS:
                return k
        for k, a in ml:
            base[k] += a * f
        st[i] = 1
        flo[i] = f
        return -1

    classes: dict[int, list[int]] = {}
    for i in range(nx):
        if ok[i]:
            classes.setdefault(prio[i], []).append(i)

    # Cars inside their minimum on-time keep their minimum first, across classes.
    if on_since and min_on > 0:
        held = []
        for i in range(nx):
            if ok[i]:
                t_on = on_since.get(chargers[i].id)
                if t_on is not None and now - t_on < min_on:
                    held.append((-prio[i], t_on, i))
        held.sort()
        for _, _, i in held:
            admit(i, lo[i])

    for p_cls in sorted(classes, reverse=True):
        cls = classes[p_cls]
        base_start = base[:]
        # Deadlines: least laxity first, each gets the rate it needs (within the limits).
        urgent = []
        for i in cls:
            x = chargers[i]
            if x.energy_needed_wh and x.departure is not None:
                n = len(_MASK_PHASES[dmask[i]])
                v = volt[leaf[i]] * n
                left = x.departure - now
                e_as = x.energy_needed_wh * 3600.0 / v  # A·s needed
                lax = left - e_as / hi[i]
                need = e_as / left if left > 0 else hi[i]
                urgent.append((lax, i, need))
        if urgent:
            urgent.sort()
            for _, i, need in urgent:
                stp = step[i]
                target = min(hi[i], max(lo[i], ceil_(need / stp - _FUDGE) * stp))
                if st[i] == 0 and admit(i, lo[i]) >= 0:
                    continue
                cur = flo[i]
                room = _INF
                for k, a in mem[i]:
                    r = (cap[k] - base[k]) / a
                    room = min(room, r)
                f = min(target, floor_((cur + room) / stp + _FUDGE) * stp)
                if f > cur:
                    for k, a in mem[i]:
                        base[k] += a * (f - cur)
                    flo[i] = f
        # Rotation order: cars within their turn, then the longest waiting, then the others
        # (those on the shortest first).
        keys: dict[int, tuple[int, float]] = {}
        for i in cls:
            if st[i]:
                continue
            cid = chargers[i].id
            t_on = on_since.get(cid)
            if t_on is not None:
                keys[i] = (0, t_on) if now - t_on < rot_period else (2, -t_on)
            else:
                t_w = waiting_since.get(cid)
                keys[i] = (1, t_w if t_w is not None else now - chargers[i].waiting_s)
        for i in sorted(keys, key=keys.__getitem__):
            k = admit(i, lo[i])
            if k >= 0:
                paused_k[i] = k
                f = lo[i]
                for k2, a in mem[i]:
                    if base_start[k2] + a * f > cap[k2] + EPS:
                        paused_k[i] = k2
                        break
                else:
                    paused_rot[i] = True
        _fill(cls, flo, hi, step, mem, members, cap, base, rate, st, s, limk)

    # --- greedy pass over rounding slack --------------------------------------------------
    h = []
    for i in range(nx):
        k = limk[i]
        if (
            k >= 0
            and st[i] == 3
            and s[i] + step[i] <= hi[i] + EPS
            and cap[k] - base[k] >= step[i] - EPS
        ):
            h.append((-prio[i], s[i], i))
    if h:
        heapify(h)
        while h:
            np_, v, i = heappop(h)
            stp = step[i]
            room = _INF
            kk = -1
            for k, a in mem[i]:
                r = (cap[k] - base[k]) / a
                if r < room:
                    room = r
                    kk = k
            nv = (round(v / stp) + 1) * stp
            if nv > hi[i] + EPS:
                limk[i] = -1
                continue
            if room < stp - EPS:
                limk[i] = kk
                continue
            nv = min(nv, hi[i])
            d = nv - v
            for k, a in mem[i]:
                base[k] += a * d
            s[i] = nv
            heappush(h, (np_, nv, i))

    # --- results --------------------------------------------------------------------------
    setpoints: dict[str, float] = {}
    reasons: dict[str, str] = {}
    results: dict[str, ChargerResult] = {}
    new_on: dict[str, float] = {}
    new_wait: dict[str, float] = {}
    phase_names = ("L1", "L2", "L3")
    for i, x in enumerate(chargers):
        cid = x.id
        dp = tuple(phase_names[p] for p in _MASK_PHASES[dmask[i]])
        v = round(s[i], 6) if st[i] == 3 else 0.0
        s[i] = v
        if not x.active:
            res = ChargerResult(0.0, Reason.INACTIVE, None, dp)
        elif not ok[i]:
            res = ChargerResult(0.0, Reason.CHARGER_MAX, None, dp)
        elif v <= 0:
            k = paused_k[i]
            name = circuits[cons_c[k]].id if k >= 0 else None
            why = Reason.PAUSED_ROTATION if paused_rot[i] else Reason.PAUSED_CAPACITY
            res = ChargerResult(0.0, why, name, dp)
            t_w = waiting_since.get(cid)
            new_wait[cid] = t_w if t_w is not None else now - x.waiting_s
        else:
            if v >= hi[i] - EPS or limk[i] < 0:
                res = ChargerResult(v, Reason.CHARGER_MAX, None, dp)
            else:
                res = ChargerResult(v, Reason.CIRCUIT, circuits[cons_c[limk[i]]].id, dp)
            t_on = on_since.get(cid)
            new_on[cid] = t_on if t_on is not None else now
        setpoints[cid] = res.setpoint
        reasons[cid] = res.label
        results[cid] = res

    circuit_results = _circuit_figures(scenario, topo, s, dmask, volt, ev_meas, ne_all, ne_w_all)
    return Allocation(setpoints, reasons, results, circuit_results, RotationState(new_on, new_wait))


def _fill(cls, flo, hi, step, mem, members, cap, base, rate, st, s, limk) -> None:
    """Progressive filling of one admitted class from its floors (see module docstring)."""
    joins = sorted((i for i in cls if st[i] == 1), key=flo.__getitem__)
    nj = len(joins)
    j = 0
    heap: list[tuple[float, int]] = []
    maxh: list[tuple[float, int]] = []
    tk: dict[int, float] = {}
    floor_ = math.floor
    while True:
        while j < nj and st[joins[j]] != 1:
            j += 1
        tj = flo[joins[j]] if j < nj else _INF
        while heap:
            t, k = heap[0]
            if rate[k] > 0 and tk.get(k) == t:
                break
            heappop(heap)
        tc = heap[0][0] if heap else _INF
        tm = maxh[0][0] if maxh else _INF
        touched: set[int] = set()
        if tc <= tj and tc <= tm:
            if tc == _INF:
                break
            _, k0 = heappop(heap)
            for i in members[k0]:
                si = st[i]
                if si == 2:
                    stp = step[i]
                    v = floor_(tc / stp + _FUDGE) * stp
                    if v < flo[i]:
                        v = flo[i]
                    elif v > hi[i]:
                        v = hi[i]
                    st[i] = 3
                    s[i] = v
                    limk[i] = k0
                    for k, a in mem[i]:
                        base[k] += a * v
                        rate[k] -= a
                        touched.add(k)
                elif si == 1:
                    st[i] = 3
                    s[i] = flo[i]
                    limk[i] = k0
        elif tm <= tj:
            while maxh and maxh[0][0] == tm:
                _, i = heappop(maxh)
                if st[i] != 2:
                    continue
                v = hi[i]
                st[i] = 3
                s[i] = v
                limk[i] = -1
                for k, a in mem[i]:
                    base[k] += a * v
                    rate[k] -= a
                    touched.add(k)
        else:
            while j < nj and flo[joins[j]] == tj:
                i = joins[j]
                j += 1
                if st[i] != 1:
                    continue
                if tj >= hi[i]:
                    st[i] = 3
                    s[i] = tj
                    limk[i] = -1
                    continue
                st[i] = 2
                for k, a in mem[i]:
                    base[k] -= a * tj
                    rate[k] += a
                    touched.add(k)
                heappush(maxh, (hi[i], i))
        for k in touched:
            r = rate[k]
            if r > 0:
                t = (cap[k] - base[k]) / r
                tk[k] = t
                heappush(heap, (t, k))


def _circuit_figures(scenario, topo, s, dmask, volt, ev_meas, ne_all, ne_w_all):
    """Return per-circuit figures: EV and non-EV load, headroom and utilisation."""
    circuits = scenario.circuits
    ev = [[0.0, 0.0, 0.0, 0.0] for _ in circuits]  # per phase and A·phase
    leaf = topo.leaf
    for i, v in enumerate(s):
        if v > 0:
            dp = _MASK_PHASES[dmask[i]]
            e = ev[leaf[i]]
            for p in dp:
                e[p] += v
            e[3] += v * len(dp)
    for ci in reversed(topo.order):
        p = topo.parent[ci]
        if p >= 0:
            a, b = ev[p], ev[ci]
            a[0] += b[0]
            a[1] += b[1]
            a[2] += b[2]
            a[3] += b[3]
    for i, vs in enumerate(topo.virtual_of):
        if vs and s[i] > 0:
            dp = _MASK_PHASES[dmask[i]]
            for ci in vs:
                e = ev[ci]
                for p in dp:
                    e[p] += s[i]
                e[3] += s[i] * len(dp)
    out = {}
    for ci, c in enumerate(circuits):
        e = ev[ci]
        ne = ne_all[ci]
        ne_w = ne_w_all[ci]
        ev_w = e[3] * volt[ci]
        util = None
        head = None
        head_w = None
        if c.max_current is not None:
            lim = c.max_current
            head = (lim[0] - ne[0] - e[0], lim[1] - ne[1] - e[1], lim[2] - ne[2] - e[2])
            util = max(_ratio(ne[p] + e[p], lim[p]) for p in range(3))
        if c.max_power_w is not None:
            head_w = c.max_power_w - ne_w - ev_w
            u = _ratio(ne_w + ev_w, c.max_power_w)
            util = u if util is None else max(util, u)
        m = ev_meas[ci]
        out[c.id] = CircuitResult(
            id=c.id,
            limit_current=c.max_current,
            limit_power_w=c.max_power_w,
            non_ev_current=(ne[0], ne[1], ne[2]),
            non_ev_power_w=ne_w,
            measured_ev_current=(m[0], m[1], m[2]),
            ev_current=(e[0], e[1], e[2]),
            ev_power_w=ev_w,
            headroom_current=head,
            headroom_power_w=head_w,
            utilisation=util,
        )
    return out


def _ratio(load: float, limit: float) -> float:
    if limit > 0:
        return load / limit
    return 0.0 if load <= EPS else _INF
