"""Scale: one Home Assistant with 100, 500 and 1,000 simulated chargers connected.

Each size runs in a fresh Home Assistant process (a child of this script, so that CPU and
RSS belong to that size alone): a real HA core with the component (bench/_harness.py),
a site circuit (per-phase current meter as three HA sensors, house load only, reported
every second) over 10 panels that bind (10 A per charger; the cars take 16 A), so
allocation passes run. The simulated chargers run in a separate process
(`python bench/_harness.py fleet`) so that Home Assistant's event loop is measured alone,
booted at a steady pace (at most 50 at once, starts spread over at least 10 s, so that
their MeterValues do not arrive in bursts). Every charger sends MeterValues every 10 s
(the hub sets MeterValueSampleInterval at boot) and a heartbeat every 60 s (the boot
interval), its car charging.

After all chargers are booted and charging (or the boot time budget is spent; `ready`
says how many were), and a settle time, a fixed window measures: event-loop lag (a task
sleeping 50 ms records its overshoot), CPU % of the HA process (100 % = one core), its
RSS, OCPP frames received by the central system per second (calls and call results,
counted by wrapping the websocket adapter in this process only), allocation passes per
second (manager.passes) and their duration. The whole run keeps within 10 minutes.

Usage: python bench/scale.py [--json] [--sizes 100,500,1000] [--window 60] [--settle 15]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
import contextlib
import json
import logging
from pathlib import Path
import sys
import time
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench._harness import (
    PHASE_SENSORS,
    GcPauses,
    LoopLagProbe,
    PhaseMeter,
    charger_subentry,
    circuit_subentry,
    count_messages,
    home_assistant,
    hub_url,
    loop_factory,
    make_sims,
    percentile,
    quiet_logging,
    raise_nofile,
    remove_hub,
    setup_hub,
    start_sims,
    stop_sims,
    time_passes,
    wait_until,
)
from custom_components.ocpp_power.charge_point.state import LimitPurpose

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

HARNESS = Path(__file__).resolve().parent / "_harness.py"
PANELS = 10
CHARGER_MAX_A = 16.0
PANEL_SHARE_A = 10.0  # per charger on a panel: below what the cars take, so panels bind
HOUSE_A = 20.0
TARGET_N = 1000
TARGET_LAG_P99_MS = 50.0
TIME_BUDGET_S = 600.0


class _ProcessFleet:
    """The simulated chargers in a separate Python process."""

    def __init__(self, url: str, ids: list[str], log: Callable[[str], None] | None) -> None:
        self._url = url
        self._ids = ids
        self._log = log
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HARNESS),
            "fleet",
            "--url",
            self._url,
            "--ids",
            ",".join(self._ids),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            if self._log is not None:
                self._log(f"  fleet: {line.decode().strip()}")

    def cpu_seconds(self) -> float:
        if self.proc is None:
            return 0.0
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.proc.pid).cpu_times()
            return times.user + times.system
        return 0.0

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class _InlineFleet:
    """The simulated chargers in this process (smoke tests; CPU then includes them)."""

    def __init__(self, url: str, ids: list[str], log: Callable[[str], None] | None) -> None:
        self.sims = make_sims(
            url, ids, max_current_a=CHARGER_MAX_A, reaction_delay_s=1.0, step_s=2.0
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(start_sims(self.sims))

    def cpu_seconds(self) -> float:
        return 0.0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await stop_sims(self.sims)


def _subentries(ids: list[str]) -> list[Any]:
    """Site with a meter over PANELS panels; chargers spread round-robin over the panels."""
    panels = min(PANELS, len(ids))
    counts = [len(ids[p::panels]) for p in range(panels)]
    panel_limits = [max(count * PANEL_SHARE_A, 16.0) for count in counts]
    return [
        circuit_subentry(
            "site",
            kind="site",
            max_current=sum(panel_limits) + HOUSE_A + 50.0,
            meter="current",
            current_sensors=list(PHASE_SENSORS),
            meter_includes_chargers=False,
        ),
        *(
            circuit_subentry(f"panel{p}", parent="site", max_current=panel_limits[p])
            for p in range(panels)
        ),
        *(charger_subentry(cid, f"panel{i % panels}", CHARGER_MAX_A) for i, cid in enumerate(ids)),
    ]


async def measure_size(
    hass: HomeAssistant,
    n: int,
    *,
    window_s: float = 60.0,
    settle_s: float = 15.0,
    boot_timeout_s: float | None = None,
    meter_interval_s: float = 1.0,
    fleet: str = "process",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Connect n chargers, let them settle, measure for window_s; return the result row.

    If not every charger is booted and charging within boot_timeout_s, the window is
    measured anyway and `ready` tells how many were.
    """
    me = psutil.Process()
    rss_base = me.memory_info().rss
    ids = [f"sc{i:04d}" for i in range(1, n + 1)]
    meter = PhaseMeter(hass, (HOUSE_A, HOUSE_A, HOUSE_A), meter_interval_s)
    meter.start()
    probe = LoopLagProbe()
    gc_pauses = GcPauses()
    if boot_timeout_s is None:
        boot_timeout_s = 60 + n * 0.15
    with count_messages() as counter, time_passes() as pass_ms:
        entry = await setup_hub(hass, _subentries(ids))
        hub = entry.runtime_data
        manager = hub.manager
        fleet_cls = _ProcessFleet if fleet == "process" else _InlineFleet
        sims = fleet_cls(hub_url(entry), ids, log)

        def ready(charger_id: str) -> bool:
            conn = hub.connection(charger_id)
            state = hub.state(charger_id)
            return (
                conn is not None
                and getattr(conn, "booted", False)
                and state.active_transaction is not None
                and state.installed_limits_a.get(LimitPurpose.DYNAMIC) is not None
            )

        try:
            probe.start()
            started = time.monotonic()
            await sims.start()
            with contextlib.suppress(TimeoutError):
                await wait_until(lambda: all(ready(cid) for cid in ids), boot_timeout_s, "boot")
            connect_s = time.monotonic() - started
            connect_lag = list(probe.samples)
            booted = sum(1 for cid in ids if ready(cid))
            if log is not None:
                log(f"  N={n}: {booted} connected and charging after {connect_s:.1f} s")
            await asyncio.sleep(settle_s)
            ready_at_start = sum(1 for cid in ids if ready(cid))
            probe.start()
            gc_pauses.start()
            messages0, passes0, timed0 = counter.count, manager.passes, len(pass_ms)
            kinds0 = counter.kinds.copy()
            cpu0, fleet_cpu0 = me.cpu_times(), sims.cpu_seconds()
            t0 = time.monotonic()
            await asyncio.sleep(window_s)
            elapsed = time.monotonic() - t0
            cpu1, fleet_cpu1 = me.cpu_times(), sims.cpu_seconds()
            messages, passes = counter.count - messages0, manager.passes - passes0
            window_passes = pass_ms[timed0:]
            kinds = counter.kinds - kinds0
            lag = list(probe.samples)
            gc_pauses.stop()
            rss = me.memory_info().rss
            ready_at_end = sum(1 for cid in ids if ready(cid))
        finally:
            await probe.stop()
            # Teardown noise (sends to chargers that are going away) is not the result.
            quiet = logging.getLogger("custom_components.ocpp_power")
            level = quiet.level
            quiet.setLevel(logging.CRITICAL)
            try:
                await sims.stop()
                await remove_hub(hass, entry)
            finally:
                quiet.setLevel(level)
            await meter.stop()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {
        "chargers": n,
        "loop_lag_p50_ms": round(percentile(lag, 50), 2),
        "loop_lag_p99_ms": round(percentile(lag, 99), 2),
        "loop_lag_max_ms": round(max(lag), 2),
        "loop_lag_over_50ms": sum(1 for ms in lag if ms > 50.0),
        "loop_lag_samples": len(lag),
        "cpu_percent": round(cpu / elapsed * 100, 1),
        "rss_mb": round(rss / 2**20, 1),
        "rss_base_mb": round(rss_base / 2**20, 1),
        "messages_per_s": round(messages / elapsed, 1),
        "passes_per_s": round(passes / elapsed, 2),
        "pass_ms_p50": round(percentile(window_passes, 50), 1),
        "pass_ms_max": round(max(window_passes, default=float("nan")), 1),
        "messages_by_kind": {k: round(v / elapsed, 2) for k, v in kinds.most_common()},
        "fleet_cpu_percent": round((fleet_cpu1 - fleet_cpu0) / elapsed * 100, 1),
        # Garbage collection in Home Assistant's process: a full collection of a large
        # heap stops the event loop like any other long callback.
        "gc_ms_per_s": round(sum(ms for _, ms in gc_pauses.pauses) / elapsed, 2),
        "gc_max_ms": round(max((ms for _, ms in gc_pauses.pauses), default=0.0), 1),
        "gc_full_collections": sum(1 for gen, _ in gc_pauses.pauses if gen == 2),
        "ready": min(ready_at_start, ready_at_end),
        "connect_s": round(connect_s, 1),
        "booted_in_time": booted,
        "connect_lag_p99_ms": round(percentile(connect_lag, 99), 1),
        "connect_lag_max_ms": round(max(connect_lag, default=0.0), 1),
        "window_s": round(elapsed, 1),
    }


async def run_one(n: int, **kwargs: Any) -> dict[str, Any]:
    """Measure one size in a Home Assistant built here (the child-process mode)."""
    async with home_assistant() as hass:
        return await measure_size(hass, n, **kwargs)


def format_table(report: dict[str, Any]) -> str:
    """Render the results as a text table with the target line."""
    lines = [
        f"{'chargers':>8} {'ready':>5} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'cpu %':>6}"
        f" {'rss MB':>7} {'msg/s':>7} {'passes/s':>8} {'pass ms':>8} {'fleet cpu':>9}"
        f" {'boot s':>6}"
    ]
    for row in report["results"]:
        lines.append(
            f"{row['chargers']:>8} {row['ready']:>5} {row['loop_lag_p50_ms']:>8.2f}"
            f" {row['loop_lag_p99_ms']:>8.2f} {row['loop_lag_max_ms']:>8.1f}"
            f" {row['cpu_percent']:>6.1f} {row['rss_mb']:>7.1f} {row['messages_per_s']:>7.1f}"
            f" {row['passes_per_s']:>8.2f} {row['pass_ms_p50']:>8.1f}"
            f" {row['fleet_cpu_percent']:>9.1f} {row['connect_s']:>6.1f}"
        )
    for row in report["results"]:
        if row["chargers"] == TARGET_N:
            met = row["loop_lag_p99_ms"] < TARGET_LAG_P99_MS and row["ready"] == TARGET_N
            lines.append(
                f"target: event-loop lag p99 < {TARGET_LAG_P99_MS:.0f} ms at N = {TARGET_N}:"
                f" {'met' if met else 'MISSED'} ({row['loop_lag_p99_ms']:.2f} ms,"
                f" {row['ready']} of {TARGET_N} chargers booted and charging)"
            )
    return "\n".join(lines)


def _child(args: argparse.Namespace) -> int:
    """Measure one size in this process and print its row as one JSON line."""
    raise_nofile(args.one * 2 + 256)
    row = asyncio.run(
        run_one(
            args.one,
            window_s=args.window,
            settle_s=args.settle,
            boot_timeout_s=args.boot_timeout,
            meter_interval_s=args.meter_interval,
            fleet=args.fleet,
            log=_log if args.verbose else None,
        ),
        loop_factory=loop_factory,
    )
    print(json.dumps(row), flush=True)
    return 0


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one child process per size, results gathered here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated charger counts")
    parser.add_argument("--window", type=float, default=60.0, help="measurement window, s")
    parser.add_argument("--settle", type=float, default=15.0, help="wait after boot, s")
    parser.add_argument("--meter-interval", type=float, default=1.0, help="meter report, s")
    parser.add_argument("--fleet", choices=("process", "inline"), default="process")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--verbose", action="store_true", help="progress on stderr")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--boot-timeout", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_logging()
    if args.one is not None:
        return _child(args)
    import subprocess

    deadline = time.monotonic() + TIME_BUDGET_S
    results = []
    for n in (int(s) for s in args.sizes.split(",") if s.strip()):
        remaining = deadline - time.monotonic()
        # HA start, teardown and margins take about 45 s; booting gets what is left.
        boot_timeout = min(60 + n * 0.15, remaining - args.settle - args.window - 45)
        if boot_timeout < 10:
            _log(f"N={n}: skipped, not enough of the {TIME_BUDGET_S:.0f} s budget left")
            break
        command = [
            sys.executable,
            __file__,
            "--one",
            str(n),
            "--window",
            str(args.window),
            "--settle",
            str(args.settle),
            "--boot-timeout",
            str(boot_timeout),
            "--meter-interval",
            str(args.meter_interval),
            "--fleet",
            args.fleet,
        ] + (["--verbose"] if args.verbose else [])
        try:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, text=True, timeout=remaining, check=True
            )
        except subprocess.TimeoutExpired:
            _log(f"N={n}: out of the {TIME_BUDGET_S:.0f} s budget; stopped")
            break
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report = {"results": results}
    print(json.dumps(report) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
