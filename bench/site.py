"""Site outcome: a simulated day (or week) of EV sessions on one panel, three strategies.

Simulates a site faster than real time with the project's own models: cars are
`simulator.ev.EV` (with its taper above 80 % SoC) and dynamic management is the real
power engine (`Controller` / `allocate` of `custom_components.ocpp_power.power`). No Home
Assistant. On the same sessions it compares

- none:    no management, every car takes what it can (charger max 16 A);
- fixed:   fixed hardware limiting, every charger statically capped at
           floor(EV capacity / N) A, 0 below the 6 A minimum (IEC 61851); EV capacity =
           panel limit - the building's peak load (what an installer sizes against);
- dynamic: the engine at every meter sample (10 s), the panel meter's non-EV load, the
           integration's controller settings (deadband, 15 s hold before raise, meter
           smoothing), energy needed and departure of every car (least-laxity-first).

Then it sweeps the number of chargers on the same panel and reports the largest number
that keeps >= 95 % of sessions fully served with 0 s over the limit, for fixed and for
dynamic management, and their ratio.

Time model: 10 s physics step; "seconds over limit" is counted at that resolution (a step
with any phase above the limit counts 10 s). The controller runs on every meter sample
(every 10 s, as the manager runs a pass on every meter update); a charger applies a
command one step (10 s) after it was computed (IEC 61851-1 gives the car 5 s to follow a
PWM change; OCPP round trip and charger firmware add the rest).

Session model: one car per charger per day (the design day: every charger is used;
workplace weekends: 15 % of chargers). Arrival time, dwell time and energy per session
are drawn from the distributions below; they are approximations of published
distributions, read off the figures and summary tables of:

- workplace: Caltech ACN-Data (Z. J. Lee, T. Li, S. H. Low, "ACN-Data: Analysis and
  Applications of an Open EV Charging Dataset", ACM e-Energy 2019), JPL/Caltech sites:
  arrivals peak 7-10 h, full-day stays, ~10 kWh per session; consistent with the EV Project
  workplace results (Idaho National Laboratory, 2013-2015) and the ElaadNL open data
  (2019) for Dutch semi-public sessions.
      arrival ~ Normal(8:45, 1.1 h), truncated to 6:00-13:00
      dwell   ~ lognormal, median 7.5 h, sigma(ln) 0.35, clipped to 0.5-12 h
      energy  ~ lognormal, median 10 kWh, sigma(ln) 0.6, clipped to 1-60 kWh
- home / MDU: UK Electric Chargepoint Analysis 2017: Domestics (Department for Transport,
  2018): plug-in peak 17-19 h, overnight stays, ~8 kWh per event; EV Project residential
  charging (INL, 2013-2015) reports similar evening arrivals and energies.
      arrival ~ Normal(18:00, 2.2 h), truncated to 12:00-24:00
      dwell   ~ lognormal, median 11 h, sigma(ln) 0.45, clipped to 1-20 h
      energy  ~ lognormal, median 8 kWh, sigma(ln) 0.6, clipped to 1-60 kWh

The published energies are energies *delivered* in unmanaged sessions, so a drawn energy
that the car could not take alone at its full rate in its dwell time is reduced until it
could (the cap is the physics of the car, not a management effect). Car mix (assumed,
roughly the European fleet around 2022): 70 % 3-phase, 5 % 2-phase, 25 % 1-phase (PHEVs,
older BEVs), all 16 A on the 11 kW chargers; batteries 40/60/80 kWh (25/45/30 %); half of
the drivers charge to 80 %, half to 100 % (taper above 80 %). Chargers: 11 kW (3 x 16 A),
whole-amp setpoints, wired with phase rotation L1-L2-L3 / L2-L3-L1 / L3-L1-L2.

Sites (400/230 V, per-phase limits):

- workplace: an office building on a 3 x 250 A main (173 kVA). Office load shaped after
  the weekday profile of the US DOE commercial reference building "medium office" (Deru et
  al., NREL 2011): night base ~35 % of peak, plateau 9-17 h; peak ~150 A per phase, plus
  3-phase HVAC compressor steps (6-12 A, ~12 min) and slow noise (4 %, 10 min).
- home: a 40-flat apartment building (MDU) on a 3 x 200 A main. Residential load shaped
  after Elexon profile class 1 (UK domestic unrestricted): evening peak ~19 h; peak
  ~110 A per phase, plus 1-phase appliance steps (kettle, oven, hob: 6-13 A, ~8 min).

Dynamic management keeps a safety margin below the limit (ControllerConfig.margin_a):
the integration's default 1 A plus the largest rise of the building load within one
reaction time (meter interval + charger delay = 20 s), which an installer reads off the
meter history, as the fixed strategy's capacity uses the building's peak. The strategy
"dynamic_1A" shows the same engine with the bare 1 A default margin.

Usage: python bench/site.py [--site workplace|home] [--days 1|7] [--seed 1] [--json]
                            [--plots DIR | --no-plots] [--quick] [--chargers N]
                            [--max-chargers N]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
import json
import math
from pathlib import Path
import sys
import time
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from custom_components.ocpp_power.power import (  # noqa: E402
    Charger,
    Circuit,
    Controller,
    ControllerConfig,
    Scenario,
)
from simulator.ev import EV  # noqa: E402

DT = 10  # physics step and meter interval, seconds
CONTROL_EVERY = 1  # controller pass every this many steps (every meter sample)
VOLTAGE = 230.0
CHARGER_MAX_A = 16.0
MIN_A = 6.0
SERVED_SHARE = 0.99  # a session is fully served at 99 % of its requested energy
TARGET_SERVED_PCT = 95.0
DRAW_EPS = 1e-6
WIRINGS = (("L1", "L2", "L3"), ("L2", "L3", "L1"), ("L3", "L1", "L2"))
PHASE_IDX = {"L1": 0, "L2": 1, "L3": 2}
# Integration defaults (const.py / manager.py): rotation, minimum on-time, hold, smoothing.
ROTATION_S = 900.0
MIN_ON_TIME_S = 300.0
HOLD_S = 15.0
SMOOTHING_TAU_S = 10.0
DEFAULT_MARGIN_A = 1.0

CAR_PHASES = ((3, 0.70), (2, 0.05), (1, 0.25))
BATTERIES_KWH = ((40.0, 0.25), (60.0, 0.45), (80.0, 0.30))
TARGET_SOCS = ((0.8, 0.5), (1.0, 0.5))


@dataclass(frozen=True, slots=True)
class Dist:
    """Session statistics: arrival (h of day), dwell (h), energy (kWh)."""

    arrival_mean_h: float
    arrival_sd_h: float
    arrival_range_h: tuple[float, float]
    dwell_median_h: float
    dwell_sigma: float
    dwell_range_h: tuple[float, float]
    energy_median_kwh: float
    energy_sigma: float
    energy_range_kwh: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Site:
    """A panel, its building load model and its session statistics."""

    name: str
    description: str
    limit_a: float
    weekday_shape: tuple[float, ...]  # 24 hourly values, share of base_peak_a
    weekend_shape: tuple[float, ...]
    base_peak_a: float
    phase_factors: tuple[float, float, float]
    noise_sd: float
    noise_tau_s: float
    step_rate_per_h: float  # at shape 1.0
    step_a: tuple[float, float]
    step_mean_s: float
    step_three_phase: bool
    sessions: Dist
    weekend_occupancy: float


SITES: dict[str, Site] = {
    "workplace": Site(
        name="workplace",
        description="office building, 3 x 250 A main, 11 kW chargers, workplace sessions",
        limit_a=250.0,
        # After the DOE/NREL "medium office" reference building (weekday / weekend).
        weekday_shape=(
            *(0.35, 0.34, 0.34, 0.34, 0.35, 0.38, 0.48, 0.65, 0.85, 0.95, 0.98, 1.0),
            *(0.97, 0.98, 1.0, 0.98, 0.92, 0.80, 0.62, 0.50, 0.44, 0.40, 0.38, 0.36),
        ),
        weekend_shape=(
            *(0.34, 0.33, 0.33, 0.33, 0.33, 0.34, 0.36, 0.38, 0.40, 0.42, 0.42, 0.42),
            *(0.42, 0.42, 0.42, 0.41, 0.40, 0.39, 0.38, 0.37, 0.36, 0.35, 0.35, 0.34),
        ),
        base_peak_a=130.0,
        phase_factors=(1.0, 0.95, 0.9),
        noise_sd=0.04,
        noise_tau_s=600.0,
        step_rate_per_h=6.0,
        step_a=(6.0, 12.0),
        step_mean_s=720.0,
        step_three_phase=True,
        sessions=Dist(8.75, 1.1, (6.0, 13.0), 7.5, 0.35, (0.5, 12.0), 10.0, 0.6, (1.0, 60.0)),
        weekend_occupancy=0.15,
    ),
    "home": Site(
        name="home",
        description="40-flat apartment building (MDU), 3 x 200 A main, 11 kW chargers",
        limit_a=200.0,
        # After Elexon profile class 1 (domestic unrestricted), every day of the week.
        weekday_shape=(
            *(0.35, 0.30, 0.27, 0.26, 0.26, 0.30, 0.45, 0.62, 0.60, 0.52, 0.50, 0.50),
            *(0.52, 0.50, 0.48, 0.52, 0.62, 0.80, 0.95, 1.0, 0.92, 0.80, 0.62, 0.45),
        ),
        weekend_shape=(
            *(0.38, 0.32, 0.28, 0.27, 0.26, 0.28, 0.35, 0.48, 0.62, 0.68, 0.70, 0.70),
            *(0.72, 0.68, 0.62, 0.62, 0.68, 0.82, 0.95, 1.0, 0.92, 0.80, 0.64, 0.48),
        ),
        base_peak_a=85.0,
        phase_factors=(1.0, 0.92, 0.96),
        noise_sd=0.05,
        noise_tau_s=600.0,
        step_rate_per_h=30.0,
        step_a=(6.0, 13.0),
        step_mean_s=480.0,
        step_three_phase=False,
        sessions=Dist(18.0, 2.2, (12.0, 24.0), 11.0, 0.45, (1.0, 20.0), 8.0, 0.6, (1.0, 60.0)),
        weekend_occupancy=1.0,
    ),
}


# ---------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Session:
    """One car's visit to one charger; times in seconds from day 0, 00:00 (a Monday)."""

    charger: int
    arrival: float
    departure: float
    phases: int
    battery_kwh: float
    soc: float
    target_soc: float

    @property
    def energy_wh(self) -> float:
        """Energy the driver asked for."""
        return (self.target_soc - self.soc) * self.battery_kwh * 1000.0

    def ev(self) -> EV:
        """Return a fresh car for this session."""
        return EV(
            battery_kwh=self.battery_kwh,
            soc=self.soc,
            max_current_a=CHARGER_MAX_A,
            phases=self.phases,
            target_soc=self.target_soc,
        )


def _pick(rng: np.random.Generator, table: Sequence[tuple[Any, float]]) -> Any:
    r = rng.random()
    for value, share in table:
        r -= share
        if r < 0:
            return value
    return table[-1][0]


def _alone_wh(s: Session) -> float:
    """Energy the car takes alone at full rate between arrival and departure (60 s steps)."""
    ev = s.ev()
    got = 0.0
    t = s.arrival
    while t < s.departure and not ev.full:
        dt = min(60.0, s.departure - t)
        got += ev.charge(ev.acceptance_a(), ev.phases, VOLTAGE, dt)
        t += dt
    return got


def draw_sessions(site: Site, chargers: int, days: int, seed: int) -> list[Session]:
    """Return the sessions of `chargers` chargers; charger i's sessions do not depend on N."""
    d = site.sessions
    out: list[Session] = []
    for i, seq in enumerate(np.random.SeedSequence([seed, 1]).spawn(chargers)):
        rng = np.random.default_rng(seq)
        free_at = -1e9
        for day in range(days):
            weekend = day % 7 >= 5
            if weekend and rng.random() >= site.weekend_occupancy:
                continue
            while True:
                hour = rng.normal(d.arrival_mean_h, d.arrival_sd_h)
                if d.arrival_range_h[0] <= hour <= d.arrival_range_h[1]:
                    break
            dwell_h = float(
                np.clip(rng.lognormal(math.log(d.dwell_median_h), d.dwell_sigma), *d.dwell_range_h)
            )
            kwh = float(
                np.clip(
                    rng.lognormal(math.log(d.energy_median_kwh), d.energy_sigma),
                    *d.energy_range_kwh,
                )
            )
            phases = _pick(rng, CAR_PHASES)
            battery = _pick(rng, BATTERIES_KWH)
            target = _pick(rng, TARGET_SOCS)
            arrival = _grid(day * 86400.0 + hour * 3600.0)
            # The charger is still taken: the car plugs in a quarter of an hour after.
            arrival = max(arrival, _grid(free_at + 900.0))
            departure = arrival + max(DT, _grid(dwell_h * 3600.0))
            kwh = min(kwh, (target - 0.05) * battery)
            s = Session(i, arrival, departure, phases, battery, target - kwh / battery, target)
            while _alone_wh(s) < s.energy_wh - 1.0:
                kwh *= 0.95
                s = Session(i, arrival, departure, phases, battery, target - kwh / battery, target)
            out.append(s)
            free_at = departure
    out.sort(key=lambda s: (s.arrival, s.charger))
    return out


def _grid(t: float) -> float:
    return round(t / DT) * DT


def building_load(site: Site, steps: int, seed: int) -> np.ndarray:
    """Return the building's per-phase load (A) at every step, shape (steps, 3)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    t = np.arange(steps, dtype=float) * DT
    day = (t // 86400).astype(int)
    hour = (t % 86400) / 3600.0
    shape = np.empty(steps)
    for name, days_mask in (
        ("weekday_shape", day % 7 < 5),
        ("weekend_shape", day % 7 >= 5),
    ):
        prof = np.array((*getattr(site, name), getattr(site, name)[0]))
        shape[days_mask] = np.interp(hour[days_mask], np.arange(25), prof)
    # Slow noise: AR(1) on a 60 s grid, 70 % common to all phases.
    n60 = steps * DT // 60 + 2
    phi = math.exp(-60.0 / site.noise_tau_s)
    eps = rng.standard_normal((n60, 4)) * math.sqrt(1 - phi * phi)
    ar = np.empty((n60, 4))
    ar[0] = rng.standard_normal(4)
    for k in range(1, n60):
        ar[k] = phi * ar[k - 1] + eps[k]
    t60 = np.arange(n60) * 60.0
    load = np.empty((steps, 3))
    for p in range(3):
        noise = 0.7 * ar[:, 3] + math.sqrt(1 - 0.49) * ar[:, p]
        mult = 1.0 + site.noise_sd * np.interp(t, t60, noise)
        load[:, p] = site.base_peak_a * site.phase_factors[p] * shape * mult
    # Step loads: Poisson starts (thinned by the shape), fixed size, exponential length.
    horizon = steps * DT
    n = rng.poisson(site.step_rate_per_h * horizon / 3600.0)
    starts = np.sort(rng.uniform(0, horizon, n))
    keep = rng.random(n) < np.interp(starts, t, shape)
    delta = np.zeros((steps + 1, 3))
    for start in starts[keep]:
        size = rng.uniform(*site.step_a)
        length = max(60.0, rng.exponential(site.step_mean_s))
        k0 = int(start // DT)
        k1 = min(steps, int((start + length) // DT))
        cols = [0, 1, 2] if site.step_three_phase else [int(rng.integers(3))]
        delta[k0, cols] += size
        delta[k1, cols] -= size
    load += np.cumsum(delta[:-1], axis=0)
    return np.maximum(load, 0.0)


# ---------------------------------------------------------------------- simulation


@dataclass(slots=True)
class _Plug:
    """A car at a charger."""

    session: Session
    ev: EV
    phases: tuple[int, ...]  # panel phase indices the car draws on
    delivered: float = 0.0
    draw: float = 0.0
    ev_max: float | None = None


@dataclass(slots=True)
class Outcome:
    """One strategy on one set of sessions."""

    strategy: str
    chargers: int
    sessions: int
    demand_kwh: float
    delivered_kwh: float
    served: int
    peak_a: float
    over_s: int
    max_over_a: float
    margin_a: float | None = None
    trace: np.ndarray | None = field(default=None, repr=False)  # max phase load per step
    short: list[tuple[Session, float]] = field(default_factory=list, repr=False)  # unserved

    @property
    def delivered_pct(self) -> float:
        """Share of the demanded energy delivered by departure."""
        return 100.0 * self.delivered_kwh / self.demand_kwh if self.demand_kwh else 100.0

    @property
    def served_pct(self) -> float:
        """Share of sessions fully served."""
        return 100.0 * self.served / self.sessions if self.sessions else 100.0

    def as_dict(self, limit_a: float) -> dict[str, Any]:
        """Return the JSON figures."""
        out = {
            "strategy": self.strategy,
            "chargers": self.chargers,
            "sessions": self.sessions,
            "energy_demand_kwh": round(self.demand_kwh, 1),
            "energy_delivered_kwh": round(self.delivered_kwh, 1),
            "energy_delivered_pct": round(self.delivered_pct, 2),
            "sessions_served_pct": round(self.served_pct, 2),
            "peak_load_a": round(self.peak_a, 1),
            "limit_a": limit_a,
            "peak_vs_limit_pct": round(100.0 * self.peak_a / limit_a, 1),
            "seconds_over_limit": self.over_s,
            "max_over_limit_a": round(self.max_over_a, 1),
        }
        if self.margin_a is not None:
            out["safety_margin_a"] = self.margin_a
        return out


def simulate(
    strategy: str,
    sessions: Sequence[Session],
    chargers: int,
    building: np.ndarray,
    limit_a: float,
    *,
    ev_capacity_a: float = 0.0,
    margin_a: float = DEFAULT_MARGIN_A,
    trace: bool = False,
) -> Outcome:
    """Run one strategy ("none", "fixed", "dynamic") over the sessions of chargers 0..N-1."""
    todo = [s for s in sessions if s.charger < chargers]
    steps = building.shape[0]
    b1, b2, b3 = (building[:, p].tolist() for p in range(3))
    limits = [0.0] * chargers
    if strategy == "none":
        limits = [CHARGER_MAX_A] * chargers
    elif strategy == "fixed":
        cap = math.floor(ev_capacity_a / chargers) if chargers else 0.0
        cap = min(CHARGER_MAX_A, float(cap)) if cap >= MIN_A else 0.0
        limits = [cap] * chargers
    dynamic = strategy.startswith("dynamic")
    ctl: Controller | None = None
    idle: list[Charger] = []
    if dynamic:
        ctl = Controller(
            ControllerConfig(
                margin_a=margin_a,
                smoothing_tau_s=SMOOTHING_TAU_S,
                hold_before_raise_s=HOLD_S,
                renew_after_s=300.0,
            )
        )
        idle = [
            Charger(
                f"cp{i}",
                "main",
                phases=WIRINGS[i % 3],
                min_current=MIN_A,
                max_current=CHARGER_MAX_A,
                active=False,
                current_step=1.0,
            )
            for i in range(chargers)
        ]
    circuits = (Circuit("main", max_current=(limit_a, limit_a, limit_a)),)
    pending: dict[int, float] = {}
    plugged: dict[int, _Plug] = {}
    nxt = 0
    peak = 0.0
    over_s = 0
    max_over = 0.0
    served = 0
    short: list[tuple[Session, float]] = []
    delivered_total = 0.0
    tr = np.empty(steps) if trace else None
    charge_v = VOLTAGE
    for k in range(steps):
        t = float(k * DT)
        if pending:
            for i, v in pending.items():
                limits[i] = v
            pending = {}
        # Departures, then arrivals.
        if plugged:
            for i in [i for i, p in plugged.items() if p.session.departure <= t]:
                p = plugged.pop(i)
                delivered_total += p.delivered
                if p.delivered >= SERVED_SHARE * p.session.energy_wh or p.ev.full:
                    served += 1
                else:
                    short.append((p.session, p.delivered))
        while nxt < len(todo) and todo[nxt].arrival <= t:
            s = todo[nxt]
            nxt += 1
            wiring = WIRINGS[s.charger % 3]
            plugged[s.charger] = _Plug(s, s.ev(), tuple(PHASE_IDX[w] for w in wiring[: s.phases]))
        l1, l2, l3 = b1[k], b2[k], b3[k]
        for i, p in plugged.items():
            lim = limits[i]
            d = 0.0
            if lim >= MIN_A:
                acc = p.ev.acceptance_a()
                d = lim if lim < acc else acc
            p.draw = d
            if d:
                for ph in p.phases:
                    if ph == 0:
                        l1 += d
                    elif ph == 1:
                        l2 += d
                    else:
                        l3 += d
        top = l1 if l1 > l2 else l2
        if l3 > top:  # noqa: PLR1730 (max() is slower in this loop)
            top = l3
        if top > peak:  # noqa: PLR1730
            peak = top
        if top > limit_a + DRAW_EPS:
            over_s += DT
            max_over = max(max_over, top - limit_a)
        if tr is not None:
            tr[k] = top
        if ctl is not None and k % CONTROL_EVERY == 0 and (plugged or any(limits)):
            ctl.update_meter("main", t, current=(l1, l2, l3))
            xs = list(idle)
            for i, p in plugged.items():
                ev = p.ev
                lim = limits[i]
                if ev.full:
                    p.ev_max = 0.0
                elif lim >= MIN_A and p.draw < lim - 0.5:
                    # The car takes less than offered (taper): tell the engine, keep the lowest.
                    seen = max(MIN_A, p.draw + 1.0)
                    p.ev_max = seen if p.ev_max is None else min(p.ev_max, seen)
                meas = (p.draw,) * p.session.phases + (0.0,) * (3 - p.session.phases)
                xs[i] = Charger(
                    f"cp{i}",
                    "main",
                    phases=WIRINGS[i % 3],
                    min_current=MIN_A,
                    max_current=CHARGER_MAX_A,
                    ev_max_current=p.ev_max,
                    measured_current=meas,
                    energy_needed_wh=ev.energy_needed_wh,
                    departure=p.session.departure,
                    current_step=1.0,
                )
            scenario = Scenario(
                circuits,
                tuple(xs),
                now=t,
                voltage=VOLTAGE,
                rotation_period_s=ROTATION_S,
                min_on_time_s=MIN_ON_TIME_S,
            )
            for cmd in ctl.step(scenario, t).commands:
                pending[int(cmd.charger_id[2:])] = cmd.limit_a
        for p in plugged.values():
            if p.draw:
                p.delivered += p.ev.charge(p.draw, p.session.phases, charge_v, DT)
    for p in plugged.values():  # still plugged at the end of the horizon
        delivered_total += p.delivered
        if p.delivered >= SERVED_SHARE * p.session.energy_wh or p.ev.full:
            served += 1
        else:
            short.append((p.session, p.delivered))
    return Outcome(
        strategy=strategy,
        chargers=chargers,
        sessions=len(todo),
        demand_kwh=sum(s.energy_wh for s in todo) / 1000.0,
        delivered_kwh=delivered_total / 1000.0,
        served=served,
        peak_a=peak,
        over_s=over_s,
        max_over_a=max_over,
        margin_a=margin_a if dynamic else None,
        trace=tr,
        short=short,
    )


# ---------------------------------------------------------------------- the benchmark


@dataclass(slots=True)
class Setup:
    """Everything a run shares: the site, its sessions and its building load."""

    site: Site
    days: int
    seed: int
    chargers: int  # in the strategy comparison
    unmanaged: int  # chargers the panel takes at full rate, statically
    sessions: list[Session]
    building: np.ndarray
    ev_capacity_a: float  # for fixed limiting: limit - building peak
    margin_a: float  # for dynamic management
    max_rise_a: float

    def as_dict(self) -> dict[str, Any]:
        """Return the setup as JSON figures."""
        peak = float(self.building.max())
        return {
            "site": self.site.name,
            "description": self.site.description,
            "days": self.days,
            "seed": self.seed,
            "chargers": self.chargers,
            "unmanaged_chargers": self.unmanaged,
            "limit_a": self.site.limit_a,
            "building_peak_a": round(peak, 1),
            "building_mean_a": round(float(self.building.mean()), 1),
            "ev_capacity_a": self.ev_capacity_a,
            "building_max_rise_20s_a": round(self.max_rise_a, 1),
            "dynamic_safety_margin_a": self.margin_a,
            "step_s": DT,
            "control_interval_s": DT * CONTROL_EVERY,
            "charger_delay_s": DT,
        }


def make_setup(site: Site, days: int, seed: int, chargers: int | None, pool: int) -> Setup:
    """Draw the building load and the sessions of max(pool, chargers) chargers.

    The building load is drawn over days + 1 (overnight stays) and cut after the last
    departure; `chargers` None means three times what the panel takes unmanaged.
    """
    building = building_load(site, (days + 1) * 86400 // DT, seed)
    ev_capacity = float(math.floor(site.limit_a - building.max()))
    unmanaged = int(ev_capacity // CHARGER_MAX_A)
    if chargers is None:
        # As in DESIGN.md: three times what the panel could take unmanaged.
        chargers = max(2, 3 * unmanaged)
    sessions = draw_sessions(site, max(pool, chargers), days, seed)
    end = max([days * 86400.0, *(s.departure for s in sessions)])
    building = building[: min(len(building), int(end // DT) + 1)]
    reaction = 2  # steps: meter interval + charger delay
    rise = float((building[reaction:] - building[:-reaction]).max())
    margin = DEFAULT_MARGIN_A + math.ceil(rise)
    return Setup(
        site, days, seed, chargers, unmanaged, sessions, building, ev_capacity, margin, rise
    )


def qualifies(o: Outcome) -> bool:
    """Whether a sweep point keeps >= 95 % of sessions fully served and 0 s over limit."""
    return o.served_pct >= TARGET_SERVED_PCT and o.over_s == 0


def run(
    site: str = "workplace",
    days: int = 1,
    seed: int = 1,
    *,
    chargers: int | None = None,
    sweep: Sequence[int] | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Run the comparison and the sweep; return the JSON result (traces kept aside)."""
    spec = SITES[site]
    if sweep is None:
        sweep = range(2, 25, 2) if quick else range(2, 61)
    sweep = list(sweep)
    setup = make_setup(spec, days, seed, chargers, max(sweep))
    chargers = setup.chargers
    limit = spec.limit_a
    t0 = time.perf_counter()
    common = {"ev_capacity_a": setup.ev_capacity_a}
    strategies = [
        simulate("none", setup.sessions, chargers, setup.building, limit, trace=True, **common),
        simulate("fixed", setup.sessions, chargers, setup.building, limit, trace=True, **common),
        simulate(
            "dynamic",
            setup.sessions,
            chargers,
            setup.building,
            limit,
            margin_a=setup.margin_a,
            trace=True,
            **common,
        ),
        simulate(
            "dynamic_1A", setup.sessions, chargers, setup.building, limit, trace=True, **common
        ),
    ]
    rows = []
    best = {"fixed": 0, "dynamic": 0}
    for n in sweep:
        row: dict[str, Any] = {"chargers": n}
        for name in ("none", "fixed", "dynamic"):
            o = simulate(
                name,
                setup.sessions,
                n,
                setup.building,
                limit,
                margin_a=setup.margin_a,
                **common,
            )
            row[name] = {
                "sessions": o.sessions,
                "sessions_served_pct": round(o.served_pct, 2),
                "energy_delivered_pct": round(o.delivered_pct, 2),
                "peak_load_a": round(o.peak_a, 1),
                "seconds_over_limit": o.over_s,
            }
            if name in best and qualifies(o):
                best[name] = max(best[name], n)
        rows.append(row)
    ratio = best["dynamic"] / best["fixed"] if best["fixed"] else None
    return {
        "setup": setup.as_dict(),
        "strategies": [o.as_dict(limit) for o in strategies],
        "sweep": rows,
        "max_chargers": {
            "fixed": best["fixed"],
            "dynamic": best["dynamic"],
            "criterion": f">= {TARGET_SERVED_PCT:g} % sessions fully served, 0 s over limit",
            "sweep_top": max(sweep),
        },
        "chargers_ratio": None if ratio is None else round(ratio, 2),
        "run_time_s": round(time.perf_counter() - t0, 1),
        "_traces": {o.strategy: o.trace for o in strategies},
        "_building": setup.building,
    }


# ---------------------------------------------------------------------- output


def format_table(result: dict[str, Any]) -> str:
    """Return the human-readable report."""
    s = result["setup"]
    lines = [
        f"Site: {s['description']}; {s['days']} day(s), seed {s['seed']}",
        f"Panel limit {s['limit_a']:g} A/phase; building peak {s['building_peak_a']:g} A, "
        f"mean {s['building_mean_a']:g} A; EV capacity for fixed limiting "
        f"{s['ev_capacity_a']:g} A; dynamic safety margin {s['dynamic_safety_margin_a']:g} A "
        f"(1 A + building rise in 20 s {s['building_max_rise_20s_a']:g} A)",
        f"Step {s['step_s']} s (seconds over limit at that resolution), control every "
        f"{s['control_interval_s']} s, charger delay {s['charger_delay_s']} s",
        "",
        f"{s['chargers']} chargers ({s['unmanaged_chargers']} fit unmanaged), "
        f"{result['strategies'][0]['sessions']} sessions:",
        f"{'strategy':<11} {'energy %':>8} {'served %':>8} {'peak A':>7} {'peak/lim':>8} "
        f"{'s over':>7} {'max over A':>10}",
    ]
    for o in result["strategies"]:
        lines.append(
            f"{o['strategy']:<11} {o['energy_delivered_pct']:>8.1f} "
            f"{o['sessions_served_pct']:>8.1f} {o['peak_load_a']:>7.1f} "
            f"{o['peak_vs_limit_pct']:>7.1f}% {o['seconds_over_limit']:>7} "
            f"{o['max_over_limit_a']:>10.1f}"
        )
    lines += [
        "",
        "Sweep (same panel, same sessions per charger): served % / s over limit",
        f"{'N':>3} {'none':>14} {'fixed':>14} {'dynamic':>14}",
    ]
    rows = result["sweep"]
    mc = result["max_chargers"]
    stride = max(1, len(rows) // 15)
    marks = {mc["fixed"], mc["fixed"] + 1, mc["dynamic"], mc["dynamic"] + 1}
    for j, row in enumerate(rows):
        if j % stride and row["chargers"] not in marks and j != len(rows) - 1:
            continue
        cells = [
            f"{row[n]['sessions_served_pct']:6.1f}/{row[n]['seconds_over_limit']:<7}"
            for n in ("none", "fixed", "dynamic")
        ]
        lines.append(f"{row['chargers']:>3} " + " ".join(f"{c:>14}" for c in cells))
    ratio = result["chargers_ratio"]
    top = mc["dynamic"] >= mc["sweep_top"]
    lines += [
        "",
        f"Largest N with {mc['criterion']}: fixed {mc['fixed']}, dynamic "
        f"{mc['dynamic']}{' (top of the sweep)' if top else ''}",
        "chargers_ratio (dynamic / fixed): "
        + ("n/a" if ratio is None else f"{'>= ' if top else ''}{ratio:.2f}"),
    ]
    return "\n".join(lines)


def write_plots(result: dict[str, Any], out_dir: Path, prefix: str) -> list[Path]:
    """Write the load plot and the sweep plot; return their paths."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    s = result["setup"]
    limit = s["limit_a"]
    building = result["_building"].max(axis=1)
    hours = np.arange(len(building)) * DT / 3600.0
    names = ["none", "fixed", "dynamic"]
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 8), sharex=True, sharey=True)
    by_name = {o["strategy"]: o for o in result["strategies"]}
    for ax, name in zip(axes, names, strict=True):
        o = by_name[name]
        ax.fill_between(hours, 0, building, color="0.8", label="building (highest phase)")
        ax.plot(hours, result["_traces"][name], lw=0.7, color="C0", label="panel load")
        ax.axhline(limit, color="C3", lw=1.2, label=f"limit {limit:g} A")
        ax.set_title(
            f"{name}: {o['energy_delivered_pct']:.1f} % energy, "
            f"{o['sessions_served_pct']:.1f} % sessions served, peak {o['peak_load_a']:.0f} A, "
            f"{o['seconds_over_limit']} s over limit",
            fontsize=9,
        )
        ax.set_ylabel("A (highest phase)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("hours from day 0, 00:00")
    fig.suptitle(f"{s['description']}: {s['chargers']} chargers, seed {s['seed']}", fontsize=10)
    fig.tight_layout()
    load_png = out_dir / f"{prefix}_load.png"
    fig.savefig(load_png, dpi=90)
    plt.close(fig)

    rows = result["sweep"]
    ns = [r["chargers"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, color in (("none", "0.5"), ("fixed", "C1"), ("dynamic", "C0")):
        served = [r[name]["sessions_served_pct"] for r in rows]
        over = [r[name]["seconds_over_limit"] > 0 for r in rows]
        ax.plot(ns, served, color=color, lw=1.2, label=name)
        ax.scatter(
            [n for n, o in zip(ns, over, strict=True) if o],
            [v for v, o in zip(served, over, strict=True) if o],
            facecolors="none",
            edgecolors=color,
            s=18,
        )
    mc = result["max_chargers"]
    for name, color in (("fixed", "C1"), ("dynamic", "C0")):
        if mc[name]:
            ax.axvline(mc[name], color=color, ls="--", lw=0.8)
    ax.axhline(TARGET_SERVED_PCT, color="C3", lw=0.8, ls=":")
    ax.set_xlabel("number of chargers on the panel")
    ax.set_ylabel("% sessions fully served")
    ax.set_ylim(0, 102)
    ratio = result["chargers_ratio"]
    ax.set_title(
        f"{s['description']}\nlargest N (>= 95 % served, 0 s over): fixed {mc['fixed']}, "
        f"dynamic {mc['dynamic']}, ratio {'n/a' if ratio is None else f'{ratio:.2f}'}  "
        "(hollow: over the limit)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    sweep_png = out_dir / f"{prefix}_sweep.png"
    fig.savefig(sweep_png, dpi=90)
    plt.close(fig)
    return [load_png, sweep_png]


def public(result: dict[str, Any]) -> dict[str, Any]:
    """Return the result without the arrays."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", choices=sorted(SITES), default="workplace")
    ap.add_argument("--days", type=int, choices=(1, 7), default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print only JSON")
    ap.add_argument(
        "--plots", type=Path, help="plot directory (default docs/img, quick: bench/out)"
    )
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--quick", action="store_true", help="small sweep (2..24 step 2)")
    ap.add_argument(
        "--chargers", type=int, help="chargers in the comparison (default 3x unmanaged)"
    )
    ap.add_argument("--max-chargers", type=int, help="top of the sweep (default 60, quick 24)")
    args = ap.parse_args(argv)
    sweep = None
    if args.max_chargers:
        sweep = range(2, args.max_chargers + 1, 2 if args.quick else 1)
    result = run(
        args.site, args.days, args.seed, chargers=args.chargers, sweep=sweep, quick=args.quick
    )
    plots: list[Path] = []
    if not args.no_plots:
        out = args.plots or (ROOT / ("bench/out" if args.quick else "docs/img"))
        prefix = f"site_{args.site}" + ("_week" if args.days == 7 else "")
        plots = write_plots(result, out, prefix)
    if args.json:
        print(json.dumps(public(result), indent=1))
    else:
        print(format_table(result))
        for p in plots:
            print(f"plot: {p}")
        print(f"run time {result['run_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
