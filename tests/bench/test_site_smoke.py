"""Smoke test of bench/site.py on a tiny setup: structure and invariants."""

from __future__ import annotations

from itertools import pairwise
import json
from pathlib import Path
from typing import Any

import pytest

from bench import site as bench_site

CHARGERS = 9
SWEEP = (2, 4, 9)


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    return bench_site.run("workplace", 1, 1, chargers=CHARGERS, sweep=SWEEP, quick=True)


def test_structure(result: dict[str, Any]) -> None:
    out = json.loads(json.dumps(bench_site.public(result)))
    assert set(out) >= {"strategies", "sweep", "chargers_ratio", "setup", "max_chargers"}
    assert [s["strategy"] for s in out["strategies"]] == ["none", "fixed", "dynamic", "dynamic_1A"]
    for s in out["strategies"]:
        assert s["chargers"] == CHARGERS
        assert s["sessions"] == CHARGERS  # one car per charger on the design day
        for key in (
            "energy_delivered_pct",
            "sessions_served_pct",
            "peak_load_a",
            "peak_vs_limit_pct",
            "seconds_over_limit",
        ):
            assert isinstance(s[key], int | float)
    assert [r["chargers"] for r in out["sweep"]] == list(SWEEP)
    mc = out["max_chargers"]
    if mc["fixed"]:
        assert out["chargers_ratio"] == pytest.approx(mc["dynamic"] / mc["fixed"], abs=0.01)
    assert "chargers_ratio" in bench_site.format_table(result)


def _all_outcomes(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = [(s["strategy"], s) for s in result["strategies"]]
    for r in result["sweep"]:
        rows += [(name, r[name]) for name in ("none", "fixed", "dynamic")]
    return rows


def test_invariants(result: dict[str, Any]) -> None:
    limit = result["setup"]["limit_a"]
    for name, o in _all_outcomes(result):
        assert 0.0 <= o["energy_delivered_pct"] <= 100.0 + 1e-9, name
        assert 0.0 <= o["sessions_served_pct"] <= 100.0, name
        if name in ("fixed", "dynamic"):
            # Fixed caps fit the EV capacity; dynamic keeps its margin below the limit.
            assert o["seconds_over_limit"] == 0, name
            assert o["peak_load_a"] <= limit, name
    by_name = dict(_all_outcomes(result)[:4])
    assert by_name["none"]["energy_delivered_pct"] == pytest.approx(100.0, abs=0.5)
    # 9 chargers at 16 A on an EV capacity of about 4 chargers: unmanaged goes over.
    assert result["setup"]["unmanaged_chargers"] * 2 < CHARGERS
    assert by_name["none"]["peak_load_a"] > limit
    assert by_name["none"]["seconds_over_limit"] > 0
    assert by_name["dynamic"]["energy_delivered_pct"] >= by_name["fixed"]["energy_delivered_pct"]


def test_sessions_reproducible_and_nested() -> None:
    spec = bench_site.SITES["home"]
    a = bench_site.draw_sessions(spec, 6, 2, seed=3)
    b = bench_site.draw_sessions(spec, 6, 2, seed=3)
    c = bench_site.draw_sessions(spec, 3, 2, seed=3)
    assert a == b
    assert [s for s in a if s.charger < 3] == c
    for s in a:
        assert s.departure > s.arrival
        assert 0.0 < s.energy_wh <= bench_site._alone_wh(s) + 1.0
    by_charger: dict[int, list[bench_site.Session]] = {}
    for s in a:
        by_charger.setdefault(s.charger, []).append(s)
    for visits in by_charger.values():
        for first, second in pairwise(visits):
            assert second.arrival >= first.departure  # one car at a time per charger


def test_cli_json_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quick", "--json", "--chargers", "3", "--max-chargers", "4"]
    assert bench_site.main([*argv, "--plots", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"strategies", "sweep", "chargers_ratio"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "site_workplace_load.png",
        "site_workplace_sweep.png",
    ]
