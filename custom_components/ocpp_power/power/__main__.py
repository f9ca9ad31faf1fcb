"""Run one allocation: `python -m custom_components.ocpp_power.power [FILE]` (stdin without)."""

from __future__ import annotations

import argparse
import json
import sys

from .allocator import allocate
from .model import ScenarioError, parse_scenario


def main(argv: list[str] | None = None) -> int:
    """Read scenario JSON, print setpoints and reasons; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m custom_components.ocpp_power.power",
        description="Allocate charger setpoints for a scenario (DESIGN.md 'Scenario JSON').",
    )
    parser.add_argument("file", nargs="?", help="scenario JSON file (default: stdin)")
    parser.add_argument("--circuits", action="store_true", help="also print per-circuit figures")
    args = parser.parse_args(argv)
    try:
        if args.file:
            with open(args.file, encoding="utf-8") as fh:
                text = fh.read()
        else:
            text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: input: cannot read {args.file or 'stdin'}: {err}", file=sys.stderr)
        return 2
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        print(f"error: input: not valid JSON: {err}", file=sys.stderr)
        return 2
    try:
        allocation = allocate(parse_scenario(data))
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = allocation.as_dict()
    if args.circuits:
        out["circuits"] = {
            cid: {
                "ev_current": list(c.ev_current),
                "non_ev_current": list(c.non_ev_current),
                "headroom_current": None
                if c.headroom_current is None
                else list(c.headroom_current),
                "headroom_power_w": c.headroom_power_w,
                "utilisation": c.utilisation,
            }
            for cid, c in allocation.circuits.items()
        }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
