"""Allocation: share circuit capacity among chargers (DESIGN.md "Allocation semantics").

Every circuit limit becomes linear constraints over the setpoints (amps per phase):
one per limited phase (coefficient 1 for each charger drawing on that phase) and one per
power limit (coefficient = number of drawn phases, capacity in A·phase = W / V). The
capacity of a constraint is its limit minus the non-EV load. Constraints that cannot bind
are dropped up front: a circuit passes up to its parent at most the lesser of its
chargers' maxima and its own capacity, and a limit that this demand fits is implied.

Per priority class, highest first:

1. admission: cars held by their minimum on-time (all classes, first), then, by least
   laxity, cars with a deadline get the rate they need, then the others in rotation order
   get their minimum where it fits (greedy: nobody left out could still get a minimum);
2. progressive filling from those floors: all rising chargers go up together; when a
   constraint saturates, its chargers freeze (rounded down to their current step); when a
   charger reaches its max, it freezes. Events come from heaps; a freeze updates only the
   constraints of the frozen charger (saturation levels only move later then, so heap
   entries are refreshed lazily when they reach the top), so a class costs about
   O(M log K) for M charger-constraint memberships and K constraints. The chargers of a
   saturated constraint are found as one slice of an order sorted by (class, position of
   their circuit in a depth-first walk of the tree).

After each class, a greedy pass gives the slack left by rounding, one step at a time, to
its lowest setpoints, so that none of them could be raised by a step; only then does the
next class start.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
import gc
from heapq import heapify, heappop, heappush, heapreplace
import math
from typing import Final, NamedTuple

from .model import DRAW_THRESHOLD_A, PHASE_INDEX, PhaseCurrents, Scenario, build_topology

EPS: Final = 1e-9
# Hot loops call zip() without strict=: the keyword makes each call ~20% slower, and the
# paired tuples have equal lengths by construction.
_FUDGE: Final = 1e-9  # in units of a current step, absorbs float noise when rounding
_INF: Final = math.inf
_NO_ROW: Final = (-1, -1, -1, -1)
_LAST: Final = 1 << 62
_ZERO3: Final = [0.0, 0.0, 0.0]  # shared, never written
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


class Allocation:
    """Result of one allocation.

    `setpoints`, `reasons` and `state` are computed by `allocate`; `chargers` and
    `circuits` (details and per-circuit figures for UI sensors) on first access.
    """

    __slots__ = ("_chargers", "_circuits", "_detail", "reasons", "setpoints", "state")

    def __init__(
        self,
        setpoints: dict[str, float],
        reasons: dict[str, str],
        state: RotationState,
        detail: _Detail | None = None,
    ) -> None:
        """Store the results; `detail` holds what the lazy views need."""
        self.setpoints = setpoints
        self.reasons = reasons
        self.state = state
        self._detail = detail
        self._chargers: dict[str, ChargerResult] | None = None
        self._circuits: dict[str, CircuitResult] | None = None

    @property
    def chargers(self) -> dict[str, ChargerResult]:
        """Return per-charger results: setpoint, reason, limiting circuit, drawn phases."""
        if self._chargers is None:
            self._chargers = {} if self._detail is None else self._detail.charger_results()
        return self._chargers

    @property
    def circuits(self) -> dict[str, CircuitResult]:
        """Return per-circuit figures: limits, EV and non-EV load, headroom, utilisation."""
        if self._circuits is None:
            self._circuits = {} if self._detail is None else self._detail.circuit_results()
        return self._circuits

    def as_dict(self) -> dict[str, object]:
        """Return the CLI output: setpoints and reasons."""
        return {"setpoints": dict(self.setpoints), "reasons": dict(self.reasons)}

    def __repr__(self) -> str:
        """Return a short representation."""
        return f"Allocation(setpoints={self.setpoints!r}, reasons={self.reasons!r})"


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
        return _allocate(scenario, state if state is not None else RotationState())
    finally:
        if paused:
            gc.enable()


def _allocate(scenario: Scenario, state: RotationState) -> Allocation:
    topo = build_topology(scenario)
    now = scenario.now
    circuits = scenario.circuits
    chargers = scenario.chargers
    nc = len(circuits)
    nx = len(chargers)
    vdef = scenario.voltage
    volt = [c.voltage or vdef for c in circuits]
    parent, leaf, order, vbits = topo.parent, topo.leaf, topo.order, topo.vbits
    vmembers = topo.vmembers
    mask_phases = _MASK_PHASES
    floor_ = math.floor
    ceil_ = math.ceil

    # --- per charger: drawn phases, measured draw, effective range ----------------------
    pidx = PHASE_INDEX
    thr = DRAW_THRESHOLD_A
    wired_cache: dict[tuple[str, ...], tuple[tuple[int, ...], int]] = {}
    ev_meas = [[0.0, 0.0, 0.0] for _ in range(nc)]  # measured EV draw (physical circuits)
    dkey: dict[int, float] = {}  # leaf * 8 + drawn mask -> sum of maxima
    dmask = [0] * nx
    lo = [0.0] * nx
    hi = [0.0] * nx
    step = [0.1] * nx
    prio = [0] * nx
    ok = [False] * nx  # active and able to charge
    ranges: dict[tuple[float, float, float], tuple[float, float, bool]] = {}
    # Sort key: chargers of one class under one physical circuit become one slice.
    tpos = topo.pos
    ckey = [_LAST] * nx
    classes: dict[int, list[int]] = {}  # priority -> chargers able to charge
    urgent_of: dict[int, list[int]] = {}  # priority -> those with a deadline
    for i, x in enumerate(chargers):
        ph = x.phases
        w = wired_cache.get(ph)
        if w is None:
            wi = tuple(pidx[p] for p in ph)
            w = wired_cache[ph] = (wi, sum(1 << p for p in wi))
        meas = x.measured_current
        if meas:
            mask = 0
            em = ev_meas[leaf[i]]
            for p, a in zip(w[0], meas):  # noqa: B905
                if a > 0:
                    em[p] += a
                    if a > thr:
                        mask |= 1 << p
            if not mask:
                mask = w[1]
        else:
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
        # Shared float objects for equal ranges (most chargers have the same few).
        rkey = (m, x.min_current, stp)
        rng = ranges.get(rkey)
        if rng is None:
            top = floor_(m / stp + _FUDGE) * stp
            bottom = ceil_(x.min_current / stp - _FUDGE) * stp
            rng = ranges[rkey] = (top, bottom, top > 0 and top >= bottom - EPS)
        top, bottom, can = rng
        if not can:
            continue
        ok[i] = True
        step[i] = stp
        pr = prio[i] = x.priority
        lo[i] = bottom
        hi[i] = top
        cl = classes.get(pr)
        if cl is None:
            classes[pr] = [i]
        else:
            cl.append(i)
        if x.energy_needed_wh and x.departure is not None:
            urgent_of.setdefault(pr, []).append(i)
        li = leaf[i]
        ckey[i] = tpos[li] - pr * nc
        key = li * 8 + mask
        dkey[key] = dkey.get(key, 0.0) + top
    # Demand at max reaching each circuit per phase and in A·phase (index 3), where every
    # circuit passes up at most its own capacity: a limit that its sub-circuits already
    # guarantee can never bind and is left out. Children come before parents.
    dem = [[0.0, 0.0, 0.0, 0.0] for _ in range(nc)]
    for key, v in dkey.items():
        d = dem[key >> 3]
        dp = mask_phases[key & 7]
        for p in dp:
            d[p] += v
        d[3] += v * len(dp)
    ne_all: list[list[float]] = [_ZERO3] * nc
    ne_w_all: list[float] = [0.0] * nc
    cap: list[float] = []
    cons_c: list[int] = []
    cons_p: list[int] = []
    ck = [_NO_ROW] * nc

    def limits_of(ci: int, d: list[float]) -> list[float]:
        """Keep the limits of circuit ci that can bind; return what it passes up."""
        c = circuits[ci]
        ne, ne_w = ne_all[ci], ne_w_all[ci]
        e = d[:]
        row = [-1, -1, -1, -1]
        if c.max_current is not None:
            for p in range(3):
                cv = c.max_current[p] - ne[p]
                if d[p] > cv + EPS:
                    row[p] = len(cap)
                    cap.append(cv)
                    cons_c.append(ci)
                    cons_p.append(p)
                    e[p] = max(cv, 0.0)
        if c.max_power_w is not None:
            cv = (c.max_power_w - ne_w) / volt[ci]
            if d[3] > cv + EPS:
                row[3] = len(cap)
                cap.append(cv)
                cons_c.append(ci)
                cons_p.append(3)
                e[3] = max(cv, 0.0)
        if row != [-1, -1, -1, -1]:
            ck[ci] = (row[0], row[1], row[2], row[3])
        # A phase carries at most the A·phase total and the total at most the phases.
        e[3] = min(e[3], e[0] + e[1] + e[2])
        e[0] = min(e[0], e[3])
        e[1] = min(e[1], e[3])
        e[2] = min(e[2], e[3])
        return e

    for ci in reversed(order):
        c = circuits[ci]
        if c.has_meter or c.non_ev_current is not None or c.non_ev_power_w is not None:
            ne_all[ci], ne_w_all[ci] = _non_ev(c, ev_meas[ci], volt[ci])
        e = dem[ci]
        if (c.max_current is not None or c.max_power_w is not None) and e[3] > 0:
            e = limits_of(ci, e)
        p = parent[ci]
        if p >= 0:
            a, b = ev_meas[p], ev_meas[ci]
            a[0] += b[0]
            a[1] += b[1]
            a[2] += b[2]
            a = dem[p]
            a[0] += e[0]
            a[1] += e[1]
            a[2] += e[2]
            a[3] += e[3]
    for ci, c in enumerate(circuits):
        vm = vmembers[ci]
        if not topo.virtual[ci]:
            continue
        if c.has_meter:
            ev_meas[ci] = _measured_sum(chargers, vm)
        ne_all[ci], ne_w_all[ci] = _non_ev(c, ev_meas[ci], volt[ci])
        if c.max_current is not None or c.max_power_w is not None:
            acc = [0.0] * 8
            for i in vm:
                if ok[i]:
                    acc[dmask[i]] += hi[i]
            d = dem[ci]
            for mk in range(1, 8):
                if acc[mk]:
                    dp = mask_phases[mk]
                    for p in dp:
                        d[p] += acc[mk]
                    d[3] += acc[mk] * len(dp)
            limits_of(ci, d)
    nk = len(cap)

    # --- memberships: constraint indices and coefficients, shared where equal --------------
    mk: list[tuple[int, ...]] = [()] * nx
    ma: list[tuple[int, ...]] = [()] * nx
    if nk:
        # phys[ci * 8 + mask]: kept limits of a circuit and its ancestors for a charger
        # drawing on `mask`; virt[(virtual circuits, mask)]: the same for virtual ones.
        phys: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        virt: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        vlist = topo.vlist
        vown: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        none: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
        for i in range(nx):
            if not ok[i]:
                continue
            mask = dmask[i]
            pm = phys.get(leaf[i] * 8 + mask)
            if pm is None:
                # The circuit's own limits plus those above it (cached per parent circuit).
                c = leaf[i]
                up = parent[c]
                above = phys.get(up * 8 + mask) if up >= 0 else none
                if above is not None:
                    row = ck[c]
                    pm = above
                    if row is not _NO_ROW:
                        o = _members_of(row, mask)
                        if o[0]:
                            pm = (o[0] + above[0], o[1] + above[1])
                    phys[c * 8 + mask] = pm
            if pm is None:
                chain = []
                c = leaf[i]
                while c >= 0:
                    pm = phys.get(c * 8 + mask)
                    if pm is not None:
                        break
                    chain.append(c)
                    c = parent[c]
                else:
                    pm = none
                for c in reversed(chain):
                    row = ck[c]
                    if row is not _NO_ROW:
                        o = _members_of(row, mask)
                        if o[0]:
                            pm = (o[0] + pm[0], o[1] + pm[1])
                    phys[c * 8 + mask] = pm
            vb = vbits[i]
            if vb:
                vkey = vb << 3 | mask
                vmm = virt.get(vkey)
                if vmm is None:
                    ks: tuple[int, ...] = ()
                    coef: tuple[int, ...] = ()
                    b = 0
                    while vb:
                        if vb & 1:
                            o = vown.get(b * 8 + mask)
                            if o is None:
                                o = vown[b * 8 + mask] = _members_of(ck[vlist[b]], mask)
                            ks += o[0]
                            coef += o[1]
                        vb >>= 1
                        b += 1
                    vmm = virt[vkey] = (ks, coef)
                if vmm[0]:
                    mk[i] = pm[0] + vmm[0]
                    ma[i] = pm[1] + vmm[1]
                    continue
            mk[i], ma[i] = pm

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
        ks = mk[i]
        for k, a in zip(ks, ma[i]):  # noqa: B905
            if base[k] + rate[k] * t0 + a * f > cap[k] + EPS:
                return k
        for k, a in zip(ks, ma[i]):  # noqa: B905
            base[k] += a * f
        st[i] = 1
        flo[i] = f
        return -1

    # Chargers sorted by (class, preorder position of their circuit): the chargers of one
    # class under one physical circuit form one slice, found by bisection.
    ranks = sorted(classes, reverse=True)
    tpos = topo.pos
    corder = sorted(range(nx), key=ckey.__getitem__)
    skeys = sorted(ckey)
    # Members of a virtual circuit in the same order, with their keys.
    vm_cls: list[tuple[list[int], list[int]] | None] = [None] * nc
    for ci in set(cons_c):
        if topo.virtual[ci]:
            vs = sorted(vmembers[ci], key=ckey.__getitem__)
            vm_cls[ci] = (vs, list(map(ckey.__getitem__, vs)))
    seqs = (cons_c, cons_bit_of(cons_p), vm_cls, corder, skeys, tpos, topo.end, nc)

    # Cars inside their minimum on-time keep their minimum first, across classes.
    held = []
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

    satf: list[int] = []  # chargers frozen by a saturated limit
    for p_cls in ranks:
        cls = classes[p_cls]
        if held:
            for i in cls:
                if st[i] == 4:
                    st[i] = 1
        base_start = base[:]
        t0 = min(map(lo.__getitem__, cls))
        # Deadlines: least laxity first, each gets the rate it needs (within the limits).
        urgent = []
        for i in urgent_of.get(p_cls, ()):
            x = chargers[i]
            e_as = x.energy_needed_wh * 3600.0 / (volt[leaf[i]] * len(mask_phases[dmask[i]]))
            left = x.departure - now
            need = e_as / left if left > 0 else hi[i]
            urgent.append((left - e_as / hi[i], i, need))
        if urgent:
            urgent.sort()
            # (Nothing rises yet in this class: rate is 0 everywhere.)
            for _, i, need in urgent:
                stp = step[i]
                target = min(hi[i], max(lo[i], ceil_(need / stp - _FUDGE) * stp))
                cur = flo[i] if st[i] else 0.0
                room = _INF
                ks = mk[i]
                as_ = ma[i]
                for k, a in zip(ks, as_):  # noqa: B905
                    r = (cap[k] + EPS - base[k]) / a
                    room = min(room, r)
                avail = cur + room
                if not st[i] and avail < lo[i]:
                    continue  # its minimum does not fit; admission will pause it
                f = target if avail >= target else floor_(avail / stp + _FUDGE) * stp
                f = max(f, lo[i])
                if f > cur:
                    d = f - cur
                    for k, a in zip(ks, as_):  # noqa: B905
                        base[k] += a * d
                    flo[i] = f
                    st[i] = st[i] or 1
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
            queue = [i for i in cls if not st[i]] if held or urgent else cls
            waits = [chargers[i].waiting_s for i in queue]
            if any(waits):
                order_w = sorted(range(len(queue)), key=lambda j: -waits[j])
                queue = [queue[j] for j in order_w]
        # Admission at the minimum; chargers whose floor is the class level rise at once.
        # `full`: limits that cannot take even the smallest demand (1 x t0) any more.
        maxd: dict[float, list[int]] = {}
        full: set[int] = set()
        full_start: set[int] | None = None
        for i in queue:
            f = lo[i]
            ks = mk[i]
            as_ = ma[i]
            if full and not full.isdisjoint(ks):
                for fail in ks:
                    if fail in full:
                        break
            elif f == t0 and hi[i] > t0:
                fail = -1
                for k, a in zip(ks, as_):  # noqa: B905
                    r = rate[k] + a
                    if base[k] + r * t0 > cap[k] + EPS:
                        fail = k
                        break
                    rate[k] = r
                if fail < 0:
                    st[i] = 2
                    flo[i] = t0
                    lst = maxd.get(hi[i])
                    if lst is None:
                        maxd[hi[i]] = [i]
                    else:
                        lst.append(i)
                    continue
                for k, a in zip(ks, as_):  # noqa: B905
                    if k == fail:
                        break
                    rate[k] -= a
            else:
                fail = admit_floor(i, f, t0)
                if fail < 0:
                    continue
            if base[fail] + (rate[fail] + 1) * t0 > cap[fail] + EPS:
                full.add(fail)
            # Paused: for capacity if its minimum does not fit even alone, else its turn.
            if full_start is None:
                full_start = {k for k in range(nk) if base_start[k] + t0 > cap[k] + EPS}
            paused_k[i] = fail
            if not full_start.isdisjoint(ks):
                for k in ks:
                    if k in full_start:
                        paused_k[i] = k
                        break
                continue
            for k, a in zip(ks, as_):  # noqa: B905
                if base_start[k] + a * f > cap[k] + EPS:
                    paused_k[i] = k
                    break
            else:
                paused_rot[i] = True
        _fill(
            cls,
            -p_cls * nc,
            maxd,
            flo,
            hi,
            step,
            dmask,
            mk,
            ma,
            cap,
            base,
            seqs,
            (rate, st, s, limk, satf),
        )
        # The slack left by rounding goes to this class before any lower one.
        if satf:
            _spend_slack(satf, st, s, step, hi, limk, mk, ma, cap, base)
            satf.clear()

    # --- results ----------------------------------------------------------------------------
    ids = list(topo.charger_index)
    sout = [0.0] * nx
    lab = ["inactive"] * nx
    labels: list[str | None] = [None] * nk
    on_list: list[int] = []
    wait_list: list[int] = []
    for i in range(nx):
        if not ok[i]:
            if chargers[i].active:
                lab[i] = "charger_max"
        elif st[i] == 3 and s[i] > 0:
            v = s[i] = sout[i] = round(s[i], 6)
            on_list.append(i)
            k = limk[i]
            if v >= hi[i] - EPS or k < 0:
                limk[i] = -1
                lab[i] = "charger_max"
            else:
                label = labels[k]
                if label is None:
                    label = labels[k] = f"circuit:{circuits[cons_c[k]].id}"
                lab[i] = label
        else:
            s[i] = 0.0
            if st[i] == 3:
                paused_k[i] = limk[i]
            lab[i] = "paused_rotation" if paused_rot[i] else "paused_capacity"
            wait_list.append(i)
    setpoints = dict(zip(ids, sout))  # noqa: B905
    reasons = dict(zip(ids, lab))  # noqa: B905
    if on_since:
        new_on = {ids[i]: on_since.get(ids[i], now) for i in on_list}
    else:
        new_on = dict.fromkeys([ids[i] for i in on_list], now)
    new_wait = {ids[i]: waiting_since.get(ids[i], now - chargers[i].waiting_s) for i in wait_list}
    detail = _Detail(
        scenario, topo, s, dmask, volt, ev_meas, ne_all, ne_w_all, reasons, limk, paused_k,
        cons_c,
    )  # fmt: skip
    return Allocation(setpoints, reasons, RotationState(new_on, new_wait), detail)


def cons_bit_of(cons_p: list[int]) -> list[int]:
    """Return the drawn-phase bit mask each constraint applies to (7 for power limits)."""
    return [7 if p == 3 else 1 << p for p in cons_p]


def _members_of(row, mask: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (constraint indices, coefficients) of one circuit's kept limits."""
    return _MEMBER_FNS[mask](row)


def _member_fn(mask: int):
    """Build the function listing a circuit's kept limits for one drawn-phase mask."""
    dp = _MASK_PHASES[mask]
    n = len(dp)

    def members(row) -> tuple[tuple[int, ...], tuple[int, ...]]:
        ks = [row[p] for p in dp if row[p] >= 0]
        coef = [1] * len(ks)
        if row[3] >= 0:
            ks.append(row[3])
            coef.append(n)
        return tuple(ks), tuple(coef)

    return members


_MEMBER_FNS: Final = tuple(_member_fn(m) for m in range(8))


def _measured_sum(chargers, idx) -> list[float]:
    """Return the measured draw per panel phase of some chargers."""
    out = [0.0, 0.0, 0.0]
    pidx = PHASE_INDEX
    for i in idx:
        x = chargers[i]
        if x.measured_current:
            for ph, a in zip(x.phases, x.measured_current, strict=False):
                if a > 0:
                    out[pidx[ph]] += a
    return out


def _spend_slack(cands, st, s, step, hi, limk, mk, ma, cap, base) -> None:
    """Give the slack left by rounding, one step at a time, to the lowest setpoints.

    Afterwards no candidate can be raised by one step without breaking a limit.
    """
    h = []
    for i in cands:
        k = limk[i]
        if (
            k >= 0
            and st[i] == 3
            and s[i] + step[i] <= hi[i] + EPS
            and cap[k] - base[k] >= step[i] - EPS
        ):
            h.append((s[i], i))
    if not h:
        return
    heapify(h)
    while h:
        v, i = heappop(h)
        stp = step[i]
        room = _INF
        kk = -1
        for k, a in zip(mk[i], ma[i]):  # noqa: B905
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
        for k, a in zip(mk[i], ma[i]):  # noqa: B905
            base[k] += a * d
        s[i] = nv
        heappush(h, (nv, i))


def _fill(cls, kbase, maxd, flo, hi, step, dmask, mk, ma, cap, base, seqs, work) -> None:
    """Progressive filling of one admitted class from its floors (see module docstring).

    The heap holds, for each constraint with rising chargers, an entry no later than the
    level at which it saturates. Freezing a charger only moves that level later, so
    entries are refreshed when they reach the top; a join moves it earlier and pushes.
    """
    cons_c, cons_bit, vm_cls, corder, skeys, tpos, tend, nc = seqs
    rate, st, s, limk, satf = work
    joins = sorted((i for i in cls if st[i] == 1), key=flo.__getitem__)
    nj = len(joins)
    j = 0
    heap = [((cap[k] - base[k]) / r, k) for k, r in enumerate(rate) if r > 0]
    heapify(heap)
    maxh = list(maxd)
    heapify(maxh)
    floor_ = math.floor
    while True:
        while j < nj and st[joins[j]] != 1:
            j += 1
        tj = flo[joins[j]] if j < nj else _INF
        tc = _INF
        while heap:
            t, k = heap[0]
            r = rate[k]
            if r <= 0:
                heappop(heap)
                continue
            cur = (cap[k] - base[k]) / r
            if cur > t:
                heapreplace(heap, (cur, k))
                continue
            tc = cur
            break
        tm = maxh[0] if maxh else _INF
        if tc <= tj and tc <= tm:
            if tc == _INF:
                break
            k0 = heappop(heap)[1]
            bit = cons_bit[k0]
            c = cons_c[k0]
            vm = vm_cls[c]
            if vm is None:
                seq = corder[
                    bisect_left(skeys, kbase + tpos[c]) : bisect_left(skeys, kbase + tend[c])
                ]
            else:
                vs, vkeys = vm
                seq = vs[bisect_left(vkeys, kbase) : bisect_left(vkeys, kbase + nc)]
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
                    satf.append(i)
                    for k, a in zip(mk[i], ma[i]):  # noqa: B905
                        base[k] += a * v
                        rate[k] -= a
                elif si == 1 and dmask[i] & bit:
                    st[i] = 3
                    s[i] = flo[i]
                    limk[i] = k0
                    satf.append(i)
        elif tm <= tj:
            heappop(maxh)
            for i in maxd.pop(tm):
                if st[i] != 2:
                    continue
                st[i] = 3
                s[i] = tm
                limk[i] = -1
                for k, a in zip(mk[i], ma[i]):  # noqa: B905
                    base[k] += a * tm
                    rate[k] -= a
        else:
            touched: set[int] = set()
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
                ks = mk[i]
                for k, a in zip(ks, ma[i]):  # noqa: B905
                    base[k] -= a * tj
                    rate[k] += a
                touched.update(ks)
                lst = maxd.get(hi[i])
                if lst is None:
                    maxd[hi[i]] = [i]
                    heappush(maxh, hi[i])
                else:
                    lst.append(i)
            for k in touched:
                heappush(heap, ((cap[k] - base[k]) / rate[k], k))


class _Detail:
    """What the lazy views of an Allocation need."""

    __slots__ = (
        "cons_c", "dmask", "ev_meas", "limk", "ne_all", "ne_w_all", "paused_k", "reasons",
        "s", "scenario", "topo", "volt",
    )  # fmt: skip

    def __init__(
        self, scenario, topo, s, dmask, volt, ev_meas, ne_all, ne_w_all, reasons, limk,
        paused_k, cons_c,
    ) -> None:  # fmt: skip
        self.scenario = scenario
        self.topo = topo
        self.s = s
        self.dmask = dmask
        self.volt = volt
        self.ev_meas = ev_meas
        self.ne_all = ne_all
        self.ne_w_all = ne_w_all
        self.reasons = reasons
        self.limk = limk
        self.paused_k = paused_k
        self.cons_c = cons_c

    def charger_results(self) -> dict[str, ChargerResult]:
        """Return the per-charger results."""
        names = [c.id for c in self.scenario.circuits]
        out = {}
        for i, x in enumerate(self.scenario.chargers):
            label = self.reasons[x.id]
            why = Reason.CIRCUIT if label.startswith("circuit:") else Reason(label)
            k = self.limk[i] if why is Reason.CIRCUIT else -1
            if why in (Reason.PAUSED_CAPACITY, Reason.PAUSED_ROTATION):
                k = self.paused_k[i]
            circuit = names[self.cons_c[k]] if k >= 0 else None
            out[x.id] = ChargerResult(self.s[i], why, circuit, _MASK_NAMES[self.dmask[i]])
        return out

    def circuit_results(self) -> dict[str, CircuitResult]:
        """Return the per-circuit figures."""
        scenario = self.scenario
        topo = self.topo
        ev_meas = [list(m) for m in self.ev_meas]
        for ci, vm in enumerate(topo.vmembers):
            if vm and not scenario.circuits[ci].has_meter:
                ev_meas[ci] = _measured_sum(scenario.chargers, vm)
        return _circuit_figures(
            scenario, topo, self.s, self.dmask, self.volt, ev_meas, self.ne_all, self.ne_w_all
        )


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
