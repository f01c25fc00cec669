"""The machine a run measured on: CPU, memory, kernel, load."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

from .common import MIB


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_total_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_kib = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_total_kib / MIB, 1),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "bench_python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def steal_ticks() -> int:
    """CPU time stolen from this (virtual) machine by its host so far, in clock ticks (the
    steal column of /proc/stat; 0 where there is none)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0
    return int(fields[8]) if len(fields) > 8 and fields[0] == "cpu" else 0


def steal_share(ticks: int, wall_s: float) -> float:
    """`ticks` stolen during `wall_s` seconds, as a share of every CPU's time then."""
    capacity = wall_s * os.sysconf("SC_CLK_TCK") * len(os.sched_getaffinity(0))
    return ticks / capacity if capacity > 0 else 0.0
