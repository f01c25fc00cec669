"""Running the real `adownload` command in a subprocess, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

#: The command as a user runs it, through `python -m`, with ResourceWarnings shown.
COMMAND = [sys.executable, "-W", "always::ResourceWarning", "-m", "adownload"]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a run: no proxy (the command honours *_proxy), a fixed width."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"COLUMNS": "100", "PYTHONUNBUFFERED": "1"}, **extra)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def run_cli(
    *args: str | os.PathLike[str],
    cwd: Path,
    stdin: str | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `adownload ARGS` to its end; check it printed no traceback and no warning."""
    result = subprocess.run(
        [*COMMAND, *(os.fspath(arg) for arg in args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**(env or {})),
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    return result


def no_parts(directory: Path) -> list[str]:
    """The .part files (and their state files) below `directory`: none, after a clean run."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*.part*"))


def has_control_characters(text: str, allowed: Sequence[str] = ("\n",)) -> bool:
    return any((ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0) and c not in allowed for c in text)


def read_all(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.read()
