"""ruff, mypy --strict and the import contract between the layers (import-linter, configured in
pyproject.toml) are part of the test run, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "src", "tests", "examples", "benchmarks"],
        ["ruff", "format", "--check", "src", "tests", "examples", "benchmarks"],
        ["mypy"],
        ["importlinter.cli", "--no-cache"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict", "import-contract"],
)
@pytest.mark.timeout(300)
def test_static_check_passes(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, result.stdout + result.stderr
