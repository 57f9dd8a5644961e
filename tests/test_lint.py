"""`ruff check` as part of the test suite: the lint rules in pyproject.toml hold for src, tests and benchmarks."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    command = [sys.executable, "-m", "ruff", "check", str(REPO / "src"), str(REPO / "tests"), str(REPO / "benchmarks")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"
