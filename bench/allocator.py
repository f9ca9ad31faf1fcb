"""Benchmark one full allocation for 10 to 10,000 chargers.

Scenarios: 4-level trees (site -> transformers -> panels -> sub-panels) with per-phase
limits and meters, chargers on sub-panels and panels with mixed wiring (1-phase on
L1/L2/L3, 3-phase straight and rotated, 3-phase cars drawing on one phase), three
priority levels, some deadlines, and 10 overlapping virtual circuits (power caps and
per-phase caps). Every level is smaller than the sum of the level below, so every level
can bind.

Usage: python bench/allocator.py [--json] [--sizes 10,100,1000,10000] [--repeat N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path
import random
import statistics
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from custom_components.ocpp_power.power import (
    Charger,
    Circuit,
    Scenario,
    allocate,
)

WIRINGS = [
    ("L1",),
    ("L2",),
    ("L3",),
    ("L1", "L2", "L3"),
    ("L2", "L3", "L1"),
    ("L3", "L1", "L2"),
]
NOW = 1_733_306_400.0


def make_scenario(n: int, seed: int = 1) -> Scenario:
    """Return a reproducible benchmark scenario with n chargers."""
    rng = random.Random(seed)
    per_sub = 8
    subs = max(1, -(-n // per_sub))
    panels = max(1, -(-subs // 4))
    transformers = max(1, -(-panels // 4))
    circuits: list[Circuit] = []

    def house() -> tuple[float, float, float]:
        return (rng.uniform(0, 30), rng.uniform(0, 30), rng.uniform(0, 30))

    # Each level is smaller than the sum below it, so that every level can bind.
    panels_of = [len(range(t, panels, transformers)) for t in range(transformers)]
    t_limits = [rng.uniform(0.6, 0.95) * 105.0 * k for k in panels_of]
    circuits.append(Circuit("site", max_current=(0.8 * sum(t_limits),) * 3))
    for t in range(transformers):
        circuits.append(Circuit(f"t{t}", parent="site", max_current=(t_limits[t],) * 3))
    for p in range(panels):
        circuits.append(
            Circuit(
                f"p{p}",
                parent=f"t{p % transformers}",
                max_current=(rng.choice([80.0, 100.0, 125.0]),) * 3,
                measured_current=house() if rng.random() < 0.5 else None,
            )
        )
    for s in range(subs):
        circuits.append(
            Circuit(
                f"s{s}",
                parent=f"p{s % panels}",
                max_current=(rng.choice([32.0, 40.0, 50.0, 63.0]),) * 3,
                measured_current=house() if rng.random() < 0.3 else None,
            )
        )
    chargers: list[Charger] = []
    for i in range(n):
        wiring = rng.choice(WIRINGS)
        where = f"s{i % subs}" if rng.random() < 0.9 else f"p{i % panels}"
        measured: tuple[float, ...] | None = None
        r = rng.random()
        if r < 0.4:
            measured = tuple(rng.uniform(5, 16) for _ in wiring)
        elif r < 0.5 and len(wiring) == 3:
            measured = (rng.uniform(5, 16), 0.0, 0.0)  # car on one phase only
        deadline = rng.random() < 0.2
        chargers.append(
            Charger(
                id=f"cp{i}",
                circuit=where,
                phases=wiring,
                min_current=6.0,
                max_current=rng.choice([16.0, 32.0]),
                ev_max_current=rng.choice([None, 16.0, 32.0, 10.0]),
                priority=rng.choice([0, 0, 0, 1, 2]),
                active=rng.random() < 0.9,
                measured_current=measured,
                energy_needed_wh=rng.uniform(5000, 40000) if deadline else None,
                departure=NOW + rng.uniform(3600, 36000) if deadline else None,
                waiting_s=rng.choice([0.0, 0.0, 300.0, 1200.0]),
                current_step=rng.choice([0.1, 1.0]),
            )
        )
    ids = [x.id for x in chargers]
    for v in range(10):
        members = tuple(rng.sample(ids, max(1, n // 5)))
        if v % 2:
            circuits.append(Circuit(f"v{v}", members=members, max_power_w=n * 900.0 / 5 + 3000))
        else:
            circuits.append(
                Circuit(f"v{v}", members=members, max_current=(max(20.0, n * 2.0 / 5),) * 3)
            )
    return Scenario(tuple(circuits), tuple(chargers), now=NOW)


def run(sizes: list[int], repeat: int | None) -> list[dict[str, float]]:
    """Time allocate() for each size; rows of chargers, ms_median and ms_max (wall clock).

    Also returns cpu_ms_median (thread CPU time, robust to a busy shared machine) and
    figures_ms (building the lazy per-circuit figures once, not part of the allocation).
    """
    rows = []
    for n in sizes:
        scenario = make_scenario(n)
        reps = repeat or (30 if n <= 1000 else 15)
        allocate(scenario)  # warm-up
        wall, cpu, figures = [], [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            c0 = time.thread_time()
            alloc = allocate(scenario)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - t0) * 1000)
            t1 = time.perf_counter()
            _ = alloc.circuits, alloc.chargers
            figures.append((time.perf_counter() - t1) * 1000)
        rows.append(
            {
                "chargers": n,
                "ms_median": round(statistics.median(wall), 3),
                "ms_max": round(max(wall), 3),
                "cpu_ms_median": round(statistics.median(cpu), 3),
                "figures_ms": round(statistics.median(figures), 3),
            }
        )
    return rows


def growth(rows: list[dict[str, float]]) -> list[tuple[int, int, float]]:
    """Return the log-log slope of the median time between consecutive sizes."""
    out = []
    for a, b in itertools.pairwise(rows):
        slope = math.log(b["ms_median"] / a["ms_median"]) / math.log(b["chargers"] / a["chargers"])
        out.append((a["chargers"], b["chargers"], slope))
    return out


def main() -> None:
    """Print the benchmark table (or JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = run(sizes, args.repeat)
    if args.json:
        keys = ("chargers", "ms_median", "ms_max")
        print(json.dumps({"results": [{k: r[k] for k in keys} for r in rows]}))
        return
    print(
        f"{'chargers':>9} {'ms_median':>10} {'ms_max':>9} {'cpu_ms':>8} {'us/charger':>11}"
        f" {'+figures_ms':>12}"
    )
    for r in rows:
        per = r["ms_median"] * 1000 / r["chargers"]
        print(
            f"{r['chargers']:>9} {r['ms_median']:>10.2f} {r['ms_max']:>9.2f}"
            f" {r['cpu_ms_median']:>8.2f} {per:>11.2f} {r['figures_ms']:>12.2f}"
        )
    for a, b, slope in growth(rows):
        print(f"growth {a:>6} -> {b:>6} chargers: time ~ N^{slope:.2f}")


if __name__ == "__main__":
    main()
