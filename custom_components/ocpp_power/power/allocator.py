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
import gc
from heapq import heapify, heappop, heappush
import math
from typing import Final, NamedTuple

from .model import DRAW_THRESHOLD_A, PHASE_INDEX, PhaseCurrents, Scenario, build_topology

EPS: Final = 1e-9
_FUDGE: Final = 1e-7  # in units of a current step, absorbs float noise when rounding
_INF: Final = math.inf
_MASK_PHASES: Final = tuple(tuple(p for p in range(3) if m >> p & 1) for m in range(8))
_MASK_NAMES: Final = tuple(tuple(f"L{p + 1}" for p in ph) for ph in _MASK_PHASES)


class Reason(StrEnum):
    """Why a charger got its setpoint; a small fixed set (an enum sensor in HA)."""

    CIRCUIT = "circuit"  # held down by a circuit limit (see `circuit`)
    CHARGER_MAX = "charger_max"  # at its own max (hardware, user cap, what the car takes)
    PAUSED_CAPACITY = "paused_capacity"  # its minimum does not fit
    PAUSED_ROTATION = "paused_rotation"  # its minimum would fit alone; others have the turn
    INACTIVE = "inactive"  # no car or not charging


class ChargerResult(NamedTuple):
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


class CircuitResult(NamedTuple):
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
    # The allocation creates many short-lived objects and no cycles; pausing the cyclic
    # garbage collector keeps full collections of a large heap out of the middle of it.
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _allocate(scenario, state)
    finally:
        if paused:
            gc.enable()


def _allocate(scenario: Scenario, state: RotationState | None) -> Allocation:
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
    mask_phases = _MASK_PHASES
    floor_ = math.floor
    ceil_ = math.ceil

    # --- per charger: drawn phases, measured draw, effective range, demand at max -------
    pidx = PHASE_INDEX
    thr = DRAW_THRESHOLD_A
    wired_cache: dict[tuple[str, ...], tuple[tuple[int, ...], int]] = {}
    ev_meas = [[0.0, 0.0, 0.0] for _ in range(nc)]
    dem = [[0.0, 0.0, 0.0, 0.0] for _ in range(nc)]  # per phase, and in A·phase
    dmask = [0] * nx
    lo = [0.0] * nx
    hi = [0.0] * nx
    step = [0.1] * nx
    prio = [0] * nx
    ok = [False] * nx  # active and able to charge
    for i, x in enumerate(chargers):
        ph = x.phases
        w = wired_cache.get(ph)
        if w is None:
            wi = tuple(pidx[p] for p in ph)
            w = wired_cache[ph] = (wi, sum(1 << p for p in wi))
        mask = 0
        meas = x.measured_current
        vs = virtual_of[i]
        if meas:
            em = ev_meas[leaf[i]]
            for p, a in zip(w[0], meas, strict=False):
                if a > 0:
                    em[p] += a
                    for ci in vs:
                        ev_meas[ci][p] += a
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
        dp = mask_phases[mask]
        tn = top * len(dp)
        d = dem[leaf[i]]
        for p in dp:
            d[p] += top
        d[3] += tn
        for ci in vs:
            d = dem[ci]
            for p in dp:
                d[p] += top
            d[3] += tn
    for ci in reversed(order):
        p = parent[ci]
        if p >= 0:
            a, b = ev_meas[p], ev_meas[ci]
            a[0] += b[0]
            a[1] += b[1]
            a[2] += b[2]
            a, b = dem[p], dem[ci]
            a[0] += b[0]
            a[1] += b[1]
            a[2] += b[2]
            a[3] += b[3]

    # --- constraints that can bind: capacity = limit - non-EV load ------------------------
    ne_all: list[list[float]] = []
    ne_w_all: list[float] = []
    cap: list[float] = []
    cons_c: list[int] = []
    cons_p: list[int] = []
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
                    cons_p.append(p)
        if c.max_power_w is not None:
            cv = (c.max_power_w - ne_w) / volt[ci]
            if d[3] > cv + EPS:
                row[3] = len(cap)
                cap.append(cv)
                cons_c.append(ci)
                cons_p.append(3)
        ck[ci] = (row[0], row[1], row[2], row[3])
    nk = len(cap)
    # Chargers of a constraint: a slice of the subtree order, or the virtual member list.
    span = topo.span
    corder = topo.charger_order
    vmembers = topo.vmembers
    cons_seq = [vmembers[ci] if topo.virtual[ci] else span[ci] for ci in cons_c]
    cons_bit = [7 if p == 3 else 1 << p for p in cons_p]
    seqs = (cons_seq, corder, cons_bit)

    # --- memberships (constraint, coefficient), shared by chargers of equal signature -------
    sig: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
    mem: list[tuple[tuple[int, int], ...]] = [()] * nx
    if nk:
        for i in range(nx):
            if not ok[i]:
                continue
            key = (leaf[i], dmask[i])
            ml = sig.get(key)
            if ml is None:
                dp = mask_phases[dmask[i]]
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
            vs = virtual_of[i]
            if vs:
                dp = mask_phases[dmask[i]]
                n = len(dp)
                extra = []
                for ci in vs:
                    row = ck[ci]
                    for p in dp:
                        if row[p] >= 0:
                            extra.append((row[p], 1))
                    if row[3] >= 0:
                        extra.append((row[3], n))
                if extra:
                    ml = ml + tuple(extra)
            mem[i] = ml

    # --- admission and filling, class by class --------------------------------------------
    # Load of constraint k at fill level t: base[k] + rate[k] * t.
    base = [0.0] * nk
    rate = [0] * nk
    st = [0] * nx  # 0 out, 1 admitted at its floor, 2 rising, 3 frozen, 4 held (later class)
    flo = [0.0] * nx
    s = [0.0] * nx
    limk = [-1] * nx  # limiting constraint, -1 for none or own max
    paused_k = [-1] * nx
    paused_rot = [False] * nx
    on_since = state.on_since
    waiting_since = state.waiting_since
    rot_period = scenario.rotation_period_s
    min_on = scenario.min_on_time_s

    def admit_floor(i: int, f: float, t0: float) -> int:
        """Admit charger i at floor f (not rising); return the blocking constraint or -1."""
        ml = mem[i]
        for k, a in ml:
            if base[k] + rate[k] * t0 + a * f > cap[k] + EPS:
                return k
        for k, a in ml:
            base[k] += a * f
        st[i] = 1
        flo[i] = f
        return -1

    classes: dict[int, list[int]] = {}
    for i in range(nx):
        if ok[i]:
            cl = classes.get(prio[i])
            if cl is None:
                classes[prio[i]] = [i]
            else:
                cl.append(i)

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
            if admit_floor(i, lo[i], 0.0) < 0:
                st[i] = 4  # fixed load until its own class is filled

    for p_cls in sorted(classes, reverse=True):
        cls = classes[p_cls]
        for i in cls:
            if st[i] == 4:
                st[i] = 1
        base_start = base[:]
        t0 = min(lo[i] for i in cls)
        # Deadlines: least laxity first, each gets the rate it needs (within the limits).
        urgent = []
        for i in cls:
            x = chargers[i]
            if x.energy_needed_wh and x.departure is not None:
                e_as = x.energy_needed_wh * 3600.0 / (volt[leaf[i]] * len(mask_phases[dmask[i]]))
                left = x.departure - now
                need = e_as / left if left > 0 else hi[i]
                urgent.append((left - e_as / hi[i], i, need))
        if urgent:
            urgent.sort()
            for _, i, need in urgent:
                stp = step[i]
                target = min(hi[i], max(lo[i], ceil_(need / stp - _FUDGE) * stp))
                if st[i] == 0 and admit_floor(i, lo[i], t0) >= 0:
                    continue
                cur = flo[i]
                room = _INF
                for k, a in mem[i]:
                    r = (cap[k] - base[k] - rate[k] * t0) / a
                    room = min(room, r)
                avail = cur + room
                f = target if avail >= target else floor_(avail / stp + _FUDGE) * stp
                if f > cur:
                    for k, a in mem[i]:
                        base[k] += a * (f - cur)
                    flo[i] = f
        # Rotation order: cars on within their turn; cars that have waited a full turn
        # (longest first); cars on past their turn (the most recently started first);
        # the other waiting cars (longest first). Ties keep input order. A period of 0
        # turns rotation off: cars on keep their place.
        if on_since or waiting_since:
            keys: dict[int, float] = {}
            for i in cls:
                if st[i]:
                    continue
                cid = chargers[i].id
                t_on = on_since.get(cid)
                if t_on is not None:
                    turn_over = rot_period > 0 and now - t_on >= rot_period
                    keys[i] = 2e13 - t_on if turn_over else t_on
                else:
                    t_w = waiting_since.get(cid)
                    if t_w is None:
                        t_w = now - chargers[i].waiting_s
                    keys[i] = (1e13 if now - t_w >= rot_period else 3e13) + t_w
            queue = sorted(keys, key=keys.__getitem__)
        else:
            queue = sorted((i for i in cls if not st[i]), key=lambda i: -chargers[i].waiting_s)
        # Admission at the minimum; chargers whose floor is the class level rise at once.
        maxl = []
        for i in queue:
            f = lo[i]
            ml = mem[i]
            if f == t0 and hi[i] > t0:
                fail = -1
                for k, a in ml:
                    r = rate[k] + a
                    if base[k] + r * t0 > cap[k] + EPS:
                        fail = k
                        break
                    rate[k] = r
                if fail < 0:
                    st[i] = 2
                    flo[i] = t0
                    maxl.append((hi[i], i))
                    continue
                for k, a in ml:
                    if k == fail:
                        break
                    rate[k] -= a
            else:
                fail = admit_floor(i, f, t0)
                if fail < 0:
                    continue
            paused_k[i] = fail
            for k, a in ml:
                if base_start[k] + a * f > cap[k] + EPS:
                    paused_k[i] = k
                    break
            else:
                paused_rot[i] = True
        _fill(cls, maxl, flo, hi, step, dmask, mem, cap, base, seqs, (rate, st, s, limk))

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

    # --- results ----------------------------------------------------------------------------
    setpoints: dict[str, float] = {}
    reasons: dict[str, str] = {}
    results: dict[str, ChargerResult] = {}
    new_on: dict[str, float] = {}
    new_wait: dict[str, float] = {}
    names = [c.id for c in circuits]
    labels = [f"circuit:{names[ci]}" for ci in cons_c]
    phase_names = _MASK_NAMES
    r_inactive = Reason.INACTIVE
    r_max = Reason.CHARGER_MAX
    r_circuit = Reason.CIRCUIT
    for i, x in enumerate(chargers):
        cid = x.id
        dp = phase_names[dmask[i]]
        if not x.active:
            res = ChargerResult(0.0, r_inactive, None, dp)
            label = "inactive"
        elif not ok[i]:
            res = ChargerResult(0.0, r_max, None, dp)
            label = "charger_max"
        elif st[i] != 3 or s[i] <= 0:
            s[i] = 0.0
            k = paused_k[i] if st[i] != 3 else limk[i]
            why = Reason.PAUSED_ROTATION if paused_rot[i] else Reason.PAUSED_CAPACITY
            res = ChargerResult(0.0, why, names[cons_c[k]] if k >= 0 else None, dp)
            label = why.value
            t_w = waiting_since.get(cid)
            new_wait[cid] = t_w if t_w is not None else now - x.waiting_s
        else:
            v = s[i] = round(s[i], 6)
            k = limk[i]
            if v >= hi[i] - EPS or k < 0:
                res = ChargerResult(v, r_max, None, dp)
                label = "charger_max"
            else:
                res = ChargerResult(v, r_circuit, names[cons_c[k]], dp)
                label = labels[k]
            t_on = on_since.get(cid)
            new_on[cid] = t_on if t_on is not None else now
        setpoints[cid] = res.setpoint
        reasons[cid] = label
        results[cid] = res

    circuit_results = _circuit_figures(scenario, topo, s, dmask, volt, ev_meas, ne_all, ne_w_all)
    return Allocation(setpoints, reasons, results, circuit_results, RotationState(new_on, new_wait))


def _fill(cls, maxl, flo, hi, step, dmask, mem, cap, base, seqs, work) -> None:
    """Progressive filling of one admitted class from its floors (see module docstring)."""
    cons_seq, corder, cons_bit = seqs
    rate, st, s, limk = work
    joins = sorted((i for i in cls if st[i] == 1), key=flo.__getitem__)
    nj = len(joins)
    j = 0
    tk = [_INF] * len(cap)
    heap: list[tuple[float, int]] = []
    for k, r in enumerate(rate):
        if r > 0:
            t = tk[k] = (cap[k] - base[k]) / r
            heap.append((t, k))
    heapify(heap)
    maxh = maxl
    heapify(maxh)
    floor_ = math.floor
    while True:
        while j < nj and st[joins[j]] != 1:
            j += 1
        tj = flo[joins[j]] if j < nj else _INF
        while heap:
            t, k = heap[0]
            if rate[k] > 0 and tk[k] == t:
                break
            heappop(heap)
        tc = heap[0][0] if heap else _INF
        tm = maxh[0][0] if maxh else _INF
        touched: set[int] = set()
        if tc <= tj and tc <= tm:
            if tc == _INF:
                break
            _, k0 = heappop(heap)
            bit = cons_bit[k0]
            seq = cons_seq[k0]
            if type(seq) is tuple:
                seq = corder[seq[0] : seq[1]]
            for i in seq:
                si = st[i]
                if si == 2:
                    if not dmask[i] & bit:
                        continue
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
                elif si == 1 and dmask[i] & bit:
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
                t = tk[k] = (cap[k] - base[k]) / r
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
