"""Command line: `python -m custom_components.ocpp_power.power [FILE]`."""

from __future__ import annotations

import io
import json
from pathlib import Path
import subprocess
import sys

import pytest

from custom_components.ocpp_power.power.__main__ import main

ROOT = Path(__file__).resolve().parents[2]

DESIGN_EXAMPLE = {
    "voltage": 230,
    "circuits": [
        {"id": "main", "max_current": [63, 63, 63], "measured_current": [40, 35, 20]},
        {"id": "garage", "parent": "main", "max_current": [32, 32, 32]},
        {"id": "fleet_cap", "members": ["cp1", "cp3"], "max_power_w": 11000},
    ],
    "chargers": [
        {
            "id": "cp1",
            "circuit": "garage",
            "phases": ["L1", "L2", "L3"],
            "min_current": 6,
            "max_current": 16,
            "active": True,
            "priority": 0,
            "measured_current": [10, 10, 10],
            "energy_needed_wh": 12000,
            "departure": 1733335200,
            "waiting_s": 0,
        }
    ],
    "now": 1733306400,
}


def run(stdin: str | None = None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "custom_components.ocpp_power.power", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def run_inline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_design_example_from_stdin() -> None:
    proc = run(json.dumps(DESIGN_EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # Main has room (63 A, 30 A non-EV on L1), but the 11 kW cap allows 3 x 15.94 A.
    assert out == {"setpoints": {"cp1": 15.9}, "reasons": {"cp1": "circuit:fleet_cap"}}


def test_bad_input_end_to_end() -> None:
    proc = run('{"circuits": [{"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}]}')
    assert proc.returncode == 2
    assert proc.stderr == "error: circuits[0].parent: cycle through circuit 'a'\n"


def test_file_argument_and_circuit_figures(capsys, monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    data = dict(DESIGN_EXAMPLE)
    data["chargers"] = [
        *DESIGN_EXAMPLE["chargers"],
        {"id": "cp2", "circuit": "garage", "phases": ["L2"], "max_current": 32},
        {"id": "cp3", "circuit": "main", "phases": ["L3", "L1", "L2"], "unknown": 1},
    ]
    path.write_text(json.dumps(data))
    code, stdout, err = run_inline(capsys, monkeypatch, "", str(path), "--circuits")
    assert code == 0, err
    out = json.loads(stdout)
    assert set(out["setpoints"]) == {"cp1", "cp2", "cp3"}
    assert out["reasons"]["cp2"].startswith("circuit:")
    assert set(out["circuits"]) == {"main", "garage", "fleet_cap"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"circuits": [{"id": "a", "parent": "nope"}]}, "circuits[0].parent"),
        (
            {"circuits": [{"id": "a", "parent": "b"}, {"id": "b", "parent": "a"}]},
            "circuits[0].parent",
        ),
        (
            {"circuits": [{"id": "a"}], "chargers": [{"id": "x", "circuit": "b"}]},
            "chargers[0].circuit",
        ),
        ({"circuits": [{"id": "a"}], "chargers": [{"id": "x"}]}, "chargers[0].circuit"),
        ({"circuits": [{"id": "a", "max_current": [32, -1, 32]}]}, "circuits[0].max_current[1]"),
        ({"circuits": [{"id": "a", "max_power_w": -5}]}, "circuits[0].max_power_w"),
        (
            {
                "circuits": [{"id": "a"}],
                "chargers": [{"id": "x", "circuit": "a", "max_current": "16"}],
            },
            "chargers[0].max_current",
        ),
        (
            {"circuits": [{"id": "a"}], "chargers": [{"id": "x", "circuit": "a", "phases": "L1"}]},
            "chargers[0].phases",
        ),
        (
            {"circuits": [{"id": "a"}], "chargers": [{"id": "x", "circuit": "a", "active": "yes"}]},
            "chargers[0].active",
        ),
        ({"circuits": [{"id": "v", "members": ["ghost", 3]}]}, "circuits[0].members[1]"),
        ({"circuits": {"id": "a"}}, "circuits"),
        ({"voltage": "230"}, "voltage"),
        ([1, 2], "scenario"),
    ],
)
def test_invalid_input_one_line_exit_2(capsys, monkeypatch, data, field: str) -> None:
    code, out, err = run_inline(capsys, monkeypatch, json.dumps(data))
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {field}:"), lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("text", ["{", "", "nan", '{"chargers": [' * 5000])
def test_not_json(capsys, monkeypatch, text: str) -> None:
    code, _, err = run_inline(capsys, monkeypatch, text)
    assert code == 2
    assert err.startswith("error: input:")
    assert len(err.strip().splitlines()) == 1


def test_missing_file(capsys, monkeypatch) -> None:
    code, _, err = run_inline(capsys, monkeypatch, "", "/nonexistent/scenario.json")
    assert code == 2
    assert err.startswith("error: input: cannot read")
