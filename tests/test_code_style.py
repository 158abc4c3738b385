"""The code stays linted and formatted (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
RUFF = [sys.executable, "-m", "ruff"]


def test_ruff_finds_nothing():
    result = subprocess.run(
        [*RUFF, "check", "src", "tests", "bench", "scripts"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_code_is_formatted():
    result = subprocess.run(
        [*RUFF, "format", "--check", "src", "tests", "bench", "scripts"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
