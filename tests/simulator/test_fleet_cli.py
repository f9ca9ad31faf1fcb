"""Tests of the fleet and the command line."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import signal
import sys

import pytest

from simulator.__main__ import format_table, parse_args, run
from simulator.ev import EV
from simulator.fleet import SimFleet

from .conftest import FakeCentralSystem

REPO = Path(__file__).resolve().parents[2]


async def test_fleet_starts_charges_and_stops(csms: FakeCentralSystem) -> None:
    fleet = SimFleet(
        csms.url,
        3,
        prefix="fl",
        ev_factory=lambda i: EV(max_current_a=6 + i),
        reaction_delay_s=0.1,
        meter_interval_s=0.5,
        step_s=0.1,
    )
    before = asyncio.all_tasks()
    async with fleet:
        await asyncio.gather(*(c.wait_for(lambda c: c.boot_status == "Accepted") for c in fleet))
        assert sorted(csms.charge_points) == ["fl1", "fl2", "fl3"]
        transactions = await fleet.plug_in_all()
        assert len(set(transactions)) == 3
        rows = fleet.snapshot()
        assert [r["id"] for r in rows] == ["fl1", "fl2", "fl3"]
        assert [r["current_a"][0] for r in rows] == [7, 8, 9]
        assert rows[0]["status"] == "Charging"
        assert fleet.total_power_w == pytest.approx((7 + 8 + 9) * 3 * 230)
        assert fleet["fl2"] is fleet[1]
        table = format_table(rows)
        assert "fl3" in table
        assert "Charging" in table
        await fleet.unplug_all()
        assert len(csms.of("StopTransaction")) == 3
    assert asyncio.all_tasks() - before == set()


def test_parse_args() -> None:
    args = parse_args(
        ["--url", "ws://h:1", "--chargers", "5", "--phases", "1", "--reaction-delay", "2.5"]
    )
    assert (args.url, args.chargers, args.phases, args.reaction_delay) == ("ws://h:1", 5, 1, 2.5)
    assert args.meter_interval == 10
    assert not args.plug_in
    with pytest.raises(SystemExit):
        parse_args(["--chargers", "0"])


async def test_cli_run_for_a_duration(
    csms: FakeCentralSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse_args(
        [
            "--url",
            csms.url,
            "--chargers",
            "2",
            "--plug-in",
            "--duration",
            "0.6",
            "--print-interval",
            "0.25",
            "--reaction-delay",
            "0.1",
        ]
    )
    await run(args)
    out = capsys.readouterr().out
    assert "sim1" in out
    assert "sim2" in out
    assert len(csms.of("StartTransaction")) == 2
    assert len(csms.of("StopTransaction")) == 0  # stopping the simulator is not unplugging
    assert csms.charge_points == {}


async def test_cli_stops_on_sigint(csms: FakeCentralSystem) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--url",
        csms.url,
        "--chargers",
        "1",
        "--print-interval",
        "60",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await csms.wait_for(lambda: "sim1" in csms.charge_points, within=15)
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "sim1" in out.decode()
    assert "Traceback" not in err.decode()
