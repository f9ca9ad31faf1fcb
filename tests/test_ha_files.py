"""Run the HA metadata checker (the project's stand-in for hassfest and HACS)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).parents[1]
CHECKER = pathlib.Path(__file__).parents[2] / "shared/tools/check_ha_files.py"


@pytest.mark.skipif(not CHECKER.is_file(), reason=f"metadata checker not found at {CHECKER}")
def test_ha_files_clean() -> None:
    proc = subprocess.run(
        [sys.executable, str(CHECKER)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert "ha-files problems=0" in proc.stdout, output
    assert proc.returncode == 0, output
