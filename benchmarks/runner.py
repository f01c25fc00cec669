"""`Bench`: the runs of each scenario, tool by tool in alternation, each in a fresh
output directory, checked byte for byte."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .common import EXIT_NOT_AVAILABLE, KIB, MIB
from .data import verify_download, write_metalink
from .disk import Outputs, creation_speed
from .machine import steal_share, steal_ticks
from .measure import Run, log_tail, measured_process
from .peers import Job, Tool, adownload_support
from .report import ScenarioResult, ToolSummary
from .scenarios import (
    DASK_SCENARIOS,
    Scenario,
)
from .servers import DaskCluster, ProxyProcess, ThrottleServer


@dataclass
class Bench:
    """Everything one benchmark invocation shares across scenarios."""

    work: Path
    python: str
    repeat: int
    timeout: float
    tools: tuple[Tool, ...]
    missing: dict[str, str]
    base_urls: dict[str, str]
    proxy: ProxyProcess | None = None
    throttle: ThrottleServer | None = None
    #: The proxies by kind ("http", "socks5"), as URLs.
    proxies: dict[str, str] = field(default_factory=dict)
    #: Each run's output directory, and when it is deleted.
    outputs: Outputs = field(default_factory=lambda: Outputs(Path("out")))
    out: TextIO = sys.stdout

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        summaries: dict[str, ToolSummary] = {}
        runnable: list[Tool] = []
        for tool in self.tools:
            if tool.name not in scenario.tools:
                continue
            why = self.missing.get(tool.name)
            if why is None and tool.name.startswith("adownload"):
                why = adownload_support(self.python, scenario.segments)
            summaries[tool.name] = ToolSummary(tool.name, why or "ok")
            if why is None:
                runnable.append(tool)
            else:
                self.say(f"  {tool.name}: {why}")

        with contextlib.ExitStack() as stack:
            scheduler = None
            if scenario.name in DASK_SCENARIOS and runnable:
                cluster = DaskCluster(self.python, DASK_SCENARIOS[scenario.name], self.work)
                scheduler = stack.enter_context(cluster.running())
            return self._run_tools(scenario, runnable, summaries, scheduler)

    def _run_tools(
        self,
        scenario: Scenario,
        runnable: list[Tool],
        summaries: dict[str, ToolSummary],
        scheduler: str | None,
    ) -> ScenarioResult:
        base = self.base_urls[scenario.server]
        urls = tuple(base + data.name for data in scenario.files)
        jobs: dict[str, Job] = {}
        for tool in runnable:
            scratch = self.work / "scratch" / scenario.name / tool.name
            scratch.mkdir(parents=True, exist_ok=True)
            document = None
            if scenario.mirrors:
                mirror_urls = [self.base_urls[f"mirror-{name}"] + scenario.files[0].name
                               for name in scenario.mirrors]  # fmt: skip
                document = write_metalink(
                    scratch / "file.meta4", self.work / "data", scenario.files[0], mirror_urls
                )
            jobs[tool.name] = Job(
                urls,
                scenario.files,
                self.outputs.root / scenario.name / f"{tool.name}-N",  # each run's own: below
                scratch,
                scenario.concurrency,
                scenario.segments,
                self.python,
                scenario.retries,
                self.proxies.get(scenario.proxy) if scenario.proxy else None,
                scheduler,
                document,
            )
            summaries[tool.name].command = tool.command(jobs[tool.name])

        for repetition in range(1, self.repeat + 1):
            for tool in runnable:
                summary = summaries[tool.name]
                if summary.status != "ok":
                    continue  # e.g. found to be not available on its first run
                dest = self.outputs.fresh(scenario.name, tool.name, repetition)
                job = dataclasses.replace(jobs[tool.name], dest=dest)
                run = self._one_run(scenario, tool, job, tool.command(job), repetition)
                summary.runs.append(run)
                if run.exit_code == EXIT_NOT_AVAILABLE and tool.name.startswith("adownload"):
                    summary.status = f"not available yet: {run.error}"
        for summary in summaries.values():
            if summary.status == "ok" and summary.runs and not summary.ok_runs():
                summary.status = f"FAILED: {summary.runs[-1].error}"
        return ScenarioResult(scenario, summaries)

    def _one_run(
        self, scenario: Scenario, tool: Tool, job: Job, argv: list[str], repetition: int
    ) -> Run:
        log_path = job.scratch / f"run{repetition}.log"
        os.sync()  # flush the previous run's writes so they do not land in this run's time
        creation = creation_speed(self.work / "probes")
        counting = self.proxy is not None and scenario.server == "proxy"
        before = self.proxy.connections() if counting and self.proxy else 0
        throttle = self.throttle if scenario.server == "throttling" else None
        refused_before = throttle.refused() if throttle is not None else 0
        stolen = steal_ticks()
        measured = measured_process(argv, log_path, self.timeout)
        steal = steal_share(steal_ticks() - stolen, measured.wall_s)
        connections = self.proxy.connections() - before if counting and self.proxy else None
        refused = throttle.refused() - refused_before if throttle is not None else None
        run = Run(
            tool.name,
            repetition,
            ok=False,
            wall_s=measured.wall_s,
            cpu_s=measured.cpu_s,
            user_s=measured.user_s,
            sys_s=measured.sys_s,
            max_rss_kib=measured.max_rss_kib,
            exit_code=measured.exit_code,
            connections=connections,
            refused=refused,
            creation_per_s=creation,
            steal=steal,
        )
        if measured.timed_out:
            run.error = f"timed out after {self.timeout:g} s"
        elif measured.exit_code != 0:
            run.error = f"exit {measured.exit_code}: {log_tail(log_path)}"
        else:
            run.error = verify_download(job.dest, job.files)
            run.ok = run.error is None
        self.outputs.done(job.dest, len(job.files))
        conditions = f"{creation:7.0f} files/s before, {100 * steal:4.1f} % stolen"
        if run.ok:
            wall, cpu, rss = measured.wall_s, measured.cpu_s, measured.max_rss_kib / KIB
            rate = scenario.total_bytes / MIB / wall
            detail = f"{wall:8.3f} s wall {cpu:8.3f} s CPU {rss:7.1f} MiB"
            if connections is not None:
                rate_text = f"{rate:9.1f} MiB/s {connections:5d} connections"
            elif refused is not None:
                rate_text = f"{rate:9.1f} MiB/s {refused:5d} answers 429"
            else:
                rate_text = f"{rate:9.1f} MiB/s"
            self.say(
                f"  [{repetition}/{self.repeat}] {tool.name:<21} {detail} {rate_text}"
                f"  ({conditions})"
            )
        else:
            self.say(f"  [{repetition}/{self.repeat}] {tool.name:<21} FAILED: {run.error}")
            run.wall_s = run.cpu_s = run.user_s = run.sys_s = None
            run.max_rss_kib = None
        return run
