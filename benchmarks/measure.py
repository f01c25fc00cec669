"""One tool run measured as a whole process: wall time, CPU time and peak RSS through
`rusage_launcher.py`, and the start-up baselines."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import HERE


@dataclass
class Run:
    tool: str
    repetition: int
    ok: bool
    wall_s: float | None = None
    cpu_s: float | None = None
    user_s: float | None = None
    sys_s: float | None = None
    max_rss_kib: int | None = None
    exit_code: int | None = None
    error: str | None = None
    connections: int | None = None  # new connections through the delaying proxy
    refused: int | None = None  # 429 answers of the throttling server
    creation_per_s: float | None = None  # files a second the file system created just before
    steal: float | None = None  # share of the machine's CPU time its host took during the run


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True)
class Measurement:
    exit_code: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kib: int
    timed_out: bool

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def measured_process(argv: Sequence[str], log_path: Path, timeout: float) -> Measurement:
    """Run ``argv`` under rusage_launcher.py; its output and errors go to ``log_path``.

    The launcher forks, execs ``argv`` and reaps it with os.wait4, so wall time, CPU
    time (user + sys, with the children it waited for) and peak RSS are the tool's own
    (see rusage_launcher.py for why bench.py does not spawn the tools itself).
    """
    result_path = log_path.with_suffix(".rusage")
    result_path.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-I", str(HERE / "rusage_launcher.py"), str(result_path)]
    timed_out = threading.Event()

    def on_timeout(pgid: int) -> None:
        timed_out.set()
        _kill_group(pgid)

    with log_path.open("wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*launcher, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills it all
        )
        timer = threading.Timer(timeout, on_timeout, (proc.pid,))
        timer.start()
        try:
            code = proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        outer_wall = time.perf_counter() - start
    try:
        fields = result_path.read_text().split()
        return Measurement(
            exit_code=int(fields[0]),
            wall_s=float(fields[1]),
            user_s=float(fields[2]),
            sys_s=float(fields[3]),
            max_rss_kib=int(fields[4]),
            timed_out=timed_out.is_set(),
        )
    except (OSError, ValueError, IndexError):  # killed before it could write its line
        return Measurement(code, outer_wall, 0.0, 0.0, 0, timed_out.is_set())


def driver_baseline(python: str, module: str, work: Path, times: int = 3) -> Measurement:
    """Cost of starting the driver interpreter and importing ``module``, downloading nothing.

    The run with the median wall time of ``times`` runs: one run is at the mercy of noise.
    """
    runs = [
        measured_process([python, "-c", f"import {module}"], work / f"baseline-{module}.log", 120)
        for _ in range(times)
    ]
    if any(run.exit_code for run in runs):
        return next(run for run in runs if run.exit_code)
    return sorted(runs, key=lambda run: run.wall_s)[len(runs) // 2]


def launcher_rss_floor(work: Path) -> int:
    """Peak RSS (KiB) the launcher reports for a command that uses almost none."""
    true = shutil.which("true") or "/bin/true"
    return measured_process([true], work / "rss-floor.log", 60.0).max_rss_kib


def log_tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip()
    return " | ".join(text.splitlines()[-lines:])[-400:]
