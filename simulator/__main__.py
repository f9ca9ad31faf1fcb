"""Command line: run a fleet of simulated OCPP 1.6J chargers against a central system."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from typing import Any

from .ev import EV
from .fleet import SimFleet


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Simulated OCPP 1.6J chargers with EVs."
    )
    parser.add_argument("--url", default="ws://127.0.0.1:9000", help="central system URL")
    parser.add_argument("--chargers", type=int, default=1, help="number of chargers")
    parser.add_argument("--prefix", default="sim", help="charger id prefix (ids prefix1..N)")
    parser.add_argument("--password", help="HTTP Basic auth password (user = charger id)")
    parser.add_argument("--phases", type=int, choices=(1, 3), default=3)
    parser.add_argument("--max-current", type=float, default=32.0, help="hardware limit, A")
    parser.add_argument("--voltage", type=float, default=230.0)
    parser.add_argument("--reaction-delay", type=float, default=5.0, help="seconds")
    parser.add_argument("--meter-interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--battery-kwh", type=float, default=60.0)
    parser.add_argument("--soc", type=float, default=0.3, help="EV start SoC, 0..1")
    parser.add_argument("--ev-max-current", type=float, default=16.0, help="A per phase")
    parser.add_argument("--ev-phases", type=int, choices=(1, 3), default=3)
    parser.add_argument("--plug-in", action="store_true", help="plug every EV in at start")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--print-interval", type=float, default=5.0, help="table every N s")
    parser.add_argument("--verbose", action="store_true", help="log every OCPP message")
    args = parser.parse_args(argv)
    if args.chargers < 1:
        parser.error("--chargers must be at least 1")
    return args


def format_table(rows: list[dict[str, Any]]) -> str:
    """Render a fleet snapshot as a text table."""
    lines = [
        f"{'id':<12} {'conn':<5} {'status':<14} {'L1/L2/L3 A':<17} {'kW':>6} "
        f"{'kWh':>8} {'limit A':>8} {'SoC':>5}"
    ]
    for row in rows:
        currents = "/".join(f"{a:.1f}" for a in row["current_a"])
        limit = "-" if row["limit_a"] is None else f"{row['limit_a']:.1f}"
        soc = "-" if row["soc"] is None else f"{row['soc'] * 100:.0f}%"
        lines.append(
            f"{row['id']:<12} {'yes' if row['connected'] else 'no':<5} {row['status']:<14} "
            f"{currents:<17} {row['power_w'] / 1000:>6.2f} {row['energy_wh'] / 1000:>8.3f} "
            f"{limit:>8} {soc:>5}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    """Run the fleet until SIGINT/SIGTERM or --duration."""
    fleet = SimFleet(
        args.url,
        args.chargers,
        prefix=args.prefix,
        ev_factory=lambda _: EV(
            battery_kwh=args.battery_kwh,
            soc=args.soc,
            max_current_a=args.ev_max_current,
            phases=args.ev_phases,
        ),
        password=args.password,
        phases=args.phases,
        max_current_a=args.max_current,
        voltage=args.voltage,
        reaction_delay_s=args.reaction_delay,
        meter_interval_s=args.meter_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on every platform (Windows); Ctrl-C then ends via KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    await fleet.start(wait=False)
    try:
        if args.plug_in:
            # Plugging in before the boot is fine: the session starts once the boot is accepted.
            await fleet.plug_in_all()
        while not stop.is_set():
            wait = args.print_interval
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            print(format_table(fleet.snapshot()), end="\n\n", flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        await fleet.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The ocpp library logs every frame at INFO.
        logging.getLogger("ocpp").setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
