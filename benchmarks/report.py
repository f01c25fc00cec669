"""What the runs add up to: the targets, the medians, the ratios to each peer, the table
and the JSON file."""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .common import CONCURRENCY, KIB, LIMIT_RATE, MIB, ONE_WAY_DELAY
from .data import Sizes
from .measure import Run
from .scenarios import Scenario


@dataclass(frozen=True)
class Target:
    metric: str  # "wall", "cpu" or "rss"
    peer: str | None  # the peer the ratio is taken to; None for an absolute bound
    bound: float  # a ratio, or bytes for "rss"
    subject: str = "adownload"  # whose figure it is (the library driver by default)

    def describe(self) -> str:
        if self.peer is None:
            return f"{self.subject} peak RSS <= {self.bound / MIB:.0f} MiB"
        return f"{self.subject} {self.metric} <= {self.bound:g} x {self.peer}"


TARGETS: dict[str, tuple[Target, ...]] = {
    "small": (
        Target("wall", "curl", 1.0),
        Target("wall", "parfive", 0.5),
        # The command costs no more than the library, which costs little over a bare loop.
        Target("wall", "adownload", 1.1, subject="adownload-cli"),
        Target("wall", "aiohttp-loop", 1.15),
    ),
    "many": (
        Target("wall", "aria2c", 1.0, subject="adownload-cli"),
        Target("wall", "curl", 1.0, subject="adownload-cli-workers"),
    ),
    "large": (
        Target("wall", "curl", 0.8),
        Target("wall", "wget2", 0.8),
        Target("wall", "aria2c", 0.8),
        Target("cpu", "curl", 1.0),
        Target("rss", None, 64 * MIB),
    ),
    "throttled": (
        Target("wall", "aria2c", 1.0),
        Target("cpu", "aria2c", 1.0),
        Target("rss", None, 48 * MIB),
    ),
    "latency": (Target("wall", "curl", 0.8),),
    "ftp-large": (Target("wall", "curl", 1.0),),
    "ftp-small": (Target("wall", "curl", 1.0),),
    "ftp-throttled": (Target("wall", "aria2c", 1.0),),
    "metalink": (Target("wall", "aria2c", 1.0),),
    "metalink-corrupt": (Target("wall", "aria2c", 1.0),),
}


@dataclass
class ToolSummary:
    tool: str
    status: str  # "ok", "missing: ...", "not available yet: ...", "FAILED"
    command: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def ok_runs(self) -> list[Run]:
        return [run for run in self.runs if run.ok]

    def median_wall(self) -> float | None:
        walls = [run.wall_s for run in self.ok_runs() if run.wall_s is not None]
        return statistics.median(walls) if walls else None

    def median_cpu(self) -> float | None:
        cpus = [run.cpu_s for run in self.ok_runs() if run.cpu_s is not None]
        return statistics.median(cpus) if cpus else None

    def max_rss_kib(self) -> int | None:
        rss = [run.max_rss_kib for run in self.ok_runs() if run.max_rss_kib is not None]
        return max(rss) if rss else None


@dataclass
class ScenarioResult:
    scenario: Scenario
    tools: dict[str, ToolSummary]

    def target_checks(self) -> list[tuple[Target, float | None, str]]:
        """(target, measured value, verdict) for each of this scenario's targets."""
        checks: list[tuple[Target, float | None, str]] = []
        for target in TARGETS.get(self.scenario.name, ()):
            value = _target_value(target, self.tools.get(target.subject), self.tools)
            if value is None:
                checks.append((target, None, "n/a"))
            else:
                checks.append((target, value, "MET" if value <= target.bound else "MISSED"))
        return checks


def _target_value(
    target: Target, mine: ToolSummary | None, tools: dict[str, ToolSummary]
) -> float | None:
    if mine is None:
        return None
    if target.peer is None:
        rss = mine.max_rss_kib()
        return None if rss is None else rss * KIB
    peer = tools.get(target.peer)
    if peer is None:
        return None
    if target.metric == "wall":
        return _ratio(mine.median_wall(), peer.median_wall())
    return _ratio(mine.median_cpu(), peer.median_cpu())


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _fmt_rss(kib: int | None, floor_kib: int) -> str:
    if kib is None:
        return "-"
    mark = "<=" if kib <= floor_kib * 1.05 else ""
    return f"{mark}{kib / KIB:.1f} MiB"


def format_table(
    result: ScenarioResult, repeat: int, rss_floor_kib: int, startup_s: float | None = None
) -> str:
    scenario = result.scenario
    mine = result.tools.get("adownload")
    my_wall = mine.median_wall() if mine else None
    my_cpu = mine.median_cpu() if mine else None
    header = (
        f"{'tool':<21} {'ok runs':>7} {'wall s':>9} {'CPU s':>9} {'peak RSS':>12} "
        f"{'MiB/s':>9} {'adl/tool wall':>14} {'adl/tool CPU':>13}"
    )
    lines = [f"== {scenario.name}: {scenario.title} ==", header, "-" * len(header)]
    for summary in result.tools.values():
        if summary.status != "ok" and not summary.ok_runs():
            lines.append(f"{summary.tool:<21} {summary.status}")
            continue
        wall, cpu, rss = summary.median_wall(), summary.median_cpu(), summary.max_rss_kib()
        rate = scenario.total_bytes / MIB / wall if wall else None
        if summary.tool == "adownload":
            wall_ratio = cpu_ratio = "-"
        else:
            wall_ratio = _fmt(_ratio(my_wall, wall), ".2f")
            cpu_ratio = _fmt(_ratio(my_cpu, cpu), ".2f")
        lines.append(
            f"{summary.tool:<21} {len(summary.ok_runs()):>3}/{repeat:<3} {_fmt(wall, '9.3f')} "
            f"{_fmt(cpu, '9.3f')} {_fmt_rss(rss, rss_floor_kib):>12} "
            f"{_fmt(rate, '9.1f')} {wall_ratio:>14} {cpu_ratio:>13}"
        )
    for target, value, verdict in result.target_checks():
        if target.peer is None:
            shown = "-" if value is None else f"{value / MIB:.1f} MiB"
        else:
            shown = _fmt(value, ".2f")
        lines.append(f"target: {target.describe():<42} measured {shown:<10} {verdict}")
    counts = {
        summary.tool: statistics.median(runs)
        for summary in result.tools.values()
        if (runs := [r.connections for r in summary.ok_runs() if r.connections is not None])
    }
    if counts:
        shown = ", ".join(f"{tool} {count:g}" for tool, count in counts.items())
        lines.append(f"new connections per run through the proxy (median): {shown}")
    # Every run's refusals, a failed one's too: a tool that gives up still loaded the server.
    refusals = {
        summary.tool: (statistics.median(runs), bool(summary.ok_runs()))
        for summary in result.tools.values()
        if (runs := [r.refused for r in summary.runs if r.refused is not None])
    }
    if refusals:
        shown = ", ".join(
            f"{tool} {count:g}{'' if ok else ' (failed)'}" for tool, (count, ok) in refusals.items()
        )
        lines.append(f"429 answers per run (median): {shown}")
    creations = [
        r.creation_per_s for s in result.tools.values() for r in s.runs if r.creation_per_s
    ]
    steals = [r.steal for s in result.tools.values() for r in s.runs if r.steal is not None]
    if creations and steals:
        lines.append(
            f"conditions: file creation before the runs {min(creations):.0f}-{max(creations):.0f}"
            f" files/s (median {statistics.median(creations):.0f}); CPU stolen by the host"
            f" during them {100 * min(steals):.1f}-{100 * max(steals):.1f} %"
        )
    if startup_s is not None and my_wall is not None:
        # Informational only: the targets above use the full wall time.
        lines.append(
            f"note: adownload's {my_wall:.3f} s wall includes ~{startup_s:.3f} s of interpreter "
            f"start-up and imports (`python -c 'import adownload'`); the targets count it"
        )
    return "\n".join(lines)


def save_json(
    path: Path,
    info: dict[str, Any],
    versions: dict[str, str],
    missing: dict[str, str],
    args: argparse.Namespace,
    sizes: Sizes,
    results: list[ScenarioResult],
) -> None:
    info = dict(info)
    memory = info.pop("memory", None)
    document: dict[str, Any] = {
        "machine": info,
        "memory": memory,
        "versions": versions,
        "missing": missing,
        "settings": {
            "quick": args.quick,
            "repeat": args.repeat,
            "sizes": asdict(sizes),
            "concurrency": CONCURRENCY,
            "limit_rate": LIMIT_RATE,
            "one_way_delay_s": ONE_WAY_DELAY,
        },
        "scenarios": {},
    }
    for result in results:
        scenario = result.scenario
        document["scenarios"][scenario.name] = {
            "title": scenario.title,
            "files": len(scenario.files),
            "total_bytes": scenario.total_bytes,
            "tools": {
                name: {
                    "status": summary.status,
                    "command": summary.command,
                    "median_wall_s": summary.median_wall(),
                    "median_cpu_s": summary.median_cpu(),
                    "max_rss_kib": summary.max_rss_kib(),
                    "runs": [asdict(run) for run in summary.runs],
                }
                for name, summary in result.tools.items()
            },
            "targets": [
                {"target": target.describe(), "value": value, "verdict": verdict}
                for target, value, verdict in result.target_checks()
            ],
        }
    path.write_text(json.dumps(document, indent=2) + "\n")
