"""`python -m benchmarks`: the options, the work directory, and one whole run."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

from .common import GIB, KIB, LIMIT_RATE_BYTES, LOOPBACK, MIB, SMALL_FILE_SIZE
from .data import FULL_SIZES, QUICK_SIZES, Sizes
from .disk import PROBE_FILES, PROBE_SIZE, Outputs, creation_speed
from .ftp_server import FtpServer
from .machine import machine_info
from .measure import driver_baseline, launcher_rss_floor
from .peers import (
    TOOL_NAMES,
    TOOLS,
    first_line,
    install_missing_peers,
    precompile_package,
    tool_versions,
)
from .processes import free_port, parent_death_signal, stop_process, wait_for_port
from .report import ScenarioResult, format_table, save_json
from .runner import Bench
from .scenarios import (
    DASK_SCENARIOS,
    FTP_SCENARIOS,
    METALINK_SCENARIOS,
    PROXY_SCENARIOS,
    SCENARIO_NAMES,
    SCENARIO_TOOLS,
    build_scenarios,
)
from .servers import PROXY_PACKAGES, Nginx, ProxyProcess, RealProxy, ThrottleServer, ensure_nginx


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark adownload against curl, wget, wget2, aria2c and parfive.",
    )
    parser.add_argument("--quick", action="store_true", help="small data and 1 repetition")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_NAMES,
        help="run only this scenario (may be repeated; default: all; memory runs memory.py)",
    )
    parser.add_argument(
        "--tool",
        action="append",
        choices=TOOL_NAMES,
        help="run only this tool (may be repeated; default: all)",
    )
    parser.add_argument("--repeat", type=int, help="repetitions per tool (default 3, --quick 1)")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for the parfive and adownload drivers (default: this one)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the random data")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="install nothing (by default, as root, apt-get installs what is missing: nginx,"
        " vsftpd, curl, wget, wget2, aria2)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


@contextlib.contextmanager
def work_dir(parent: Path | None, keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="adownload-bench-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept the work dir {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def needed_disk(names: Sequence[str], sizes: Sizes, tools: Sequence[str], repeat: int) -> int:
    """Bytes the run needs on disk at most: the sources, the outputs of many files (kept until
    the end, see `disk.Outputs`: each scenario's own tools, of `tools`) and the largest single
    output."""
    chosen = set(names)
    small_names = {"small", "latency", "ftp-small", "adaptive-429"} & chosen
    many_names = {"many", *DASK_SCENARIOS} & chosen
    small = sizes.small_count * SMALL_FILE_SIZE if small_names else 0
    many = sizes.many_count * SMALL_FILE_SIZE if many_names else 0
    large = sizes.large_size if {"large", "ftp-large", *PROXY_SCENARIOS} & chosen else 0
    throttled_names = {"throttled", "ftp-throttled", "adaptive-capped"}
    throttled = sizes.throttled_size if throttled_names & chosen else 0
    memory = 2 * max(sizes.memory_file_sizes) if "memory" in chosen else 0
    metalink = 2 * sizes.metalink_size if set(METALINK_SCENARIOS) & chosen else 0
    sources = max(small, many) + large + throttled + metalink

    def runs(name: str) -> int:
        return len(set(SCENARIO_TOOLS[name]) & set(tools)) * repeat

    kept = sum(small * runs(name) for name in small_names)
    kept += sum(many * runs(name) for name in many_names)
    biggest = max(large, throttled, memory, metalink)
    return sources + kept + biggest + 256 * MIB


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name for name in SCENARIO_NAMES if not args.scenario or name in args.scenario]
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    tools = tuple(tool for tool in TOOLS if not args.tool or tool.name in args.tool)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)

    nginx_binary = ensure_nginx(install=not args.no_install)
    if not args.no_install:
        install_missing_peers([tool.name for tool in tools])
    info = machine_info()
    for package in ("adownload", "parfive"):
        why = precompile_package(args.python, package)
        if why is not None:
            print(f"warning: could not byte-compile {package}: {why}")
    versions, missing = tool_versions(args.python)
    versions["nginx"] = first_line([nginx_binary, "-v"]) or "unknown version"
    driver_python = first_line([args.python, "--version"]) or args.python
    info["driver_python"] = f"{driver_python} ({args.python})"

    print("== machine ==")
    print(
        f"nproc {info['nproc']}, {info['cpu_model']}, {info['memory_gib']} GiB RAM, "
        f"Linux {info['kernel']}, load average at start {info['loadavg_at_start']}"
    )
    print(f"python: bench {info['bench_python']}; drivers {info['driver_python']}")
    for name in (*TOOL_NAMES, "nginx"):
        print(f"  {name:<10} {versions.get(name) or missing.get(name, '-')}")
    print(
        f"settings: {'--quick, ' if args.quick else ''}{args.repeat} repetition(s), "
        f"tools alternate run by run; scenarios: {', '.join(names)}"
    )

    results: list[ScenarioResult] = []
    with work_dir(args.workdir, args.keep) as work:
        free = shutil.disk_usage(work).free
        if free < needed_disk(names, sizes, [tool.name for tool in tools], args.repeat):
            raise SystemExit(f"{work} has {free / GIB:.1f} GiB free, too little for the data")
        rss_floor = launcher_rss_floor(work)
        info["rss_floor_kib"] = rss_floor
        print(
            f"peak RSS floor of the measuring launcher: {rss_floor / KIB:.1f} MiB "
            "(a tool shown at or under it used no more than that)"
        )
        for module in ("aiohttp", "parfive", "adownload"):
            if module in missing:
                continue
            base = driver_baseline(args.python, module, work)
            if base.exit_code == 0:
                info[f"startup_{module}"] = {"wall_s": base.wall_s, "cpu_s": base.cpu_s}
                print(
                    f"start-up of `{Path(args.python).name} -c 'import {module}'` (median of 3): "
                    f"{base.wall_s:.3f} s wall, {base.cpu_s:.3f} s CPU, "
                    f"{base.max_rss_kib / KIB:.1f} MiB peak RSS"
                )
        print("(the parfive and adownload numbers include their driver's start-up)")
        creation = creation_speed(work / "probes")
        info["creation_per_s_at_start"] = creation
        print(
            f"file creation at start: {creation:.0f} files/s ({PROBE_FILES} files of "
            f"{PROBE_SIZE} bytes in a fresh directory; measured again before every run)"
        )
        docroot = work / "data"
        docroot.mkdir()
        started = time.perf_counter()
        scenarios = build_scenarios(names, docroot, sizes, args.seed)
        print(f"made the data in {docroot} in {time.perf_counter() - started:.1f} s")

        nginx = Nginx(nginx_binary, work / "nginx", docroot)
        proxy: ProxyProcess | None = None
        throttle: ThrottleServer | None = None
        ftp: FtpServer | None = None
        slow_ftp: FtpServer | None = None
        real_proxies: list[RealProxy] = []
        outputs: Outputs | None = None
        try:
            nginx.start()
            base_urls = {
                "plain": f"http://{LOOPBACK}:{nginx.plain_port}/",
                "throttled": f"http://{LOOPBACK}:{nginx.throttled_port}/",
                **{
                    f"mirror-{name}": f"http://{LOOPBACK}:{port}/"
                    for name, port in nginx.mirror_ports.items()
                },
            }
            if "latency" in names:
                proxy = ProxyProcess(nginx.plain_port, work / "proxy.log")
                proxy.start()
                base_urls["proxy"] = f"http://{LOOPBACK}:{proxy.port}/"
            if "adaptive-429" in names:
                throttle = ThrottleServer(docroot, work / "throttle.log")
                throttle.start()
                base_urls["throttling"] = f"http://{LOOPBACK}:{throttle.port}/"
            if set(FTP_SCENARIOS) & set(names):
                ftp = FtpServer(
                    work / "ftp", docroot, LOOPBACK, free_port(), 40000,
                    install=not args.no_install,
                )  # fmt: skip
                ftp.start(parent_death_signal(), wait_for_port)
                base_urls["ftp"] = f"ftp://{LOOPBACK}:{ftp.port}/"
                print(f"ftp server: {ftp.version()}")
            if "ftp-throttled" in names:
                slow_ftp = FtpServer(
                    work / "ftp-throttled", docroot, LOOPBACK, free_port(), 40400,
                    LIMIT_RATE_BYTES, install=not args.no_install,
                )  # fmt: skip
                slow_ftp.start(parent_death_signal(), wait_for_port)
                base_urls["ftp-throttled"] = f"ftp://{LOOPBACK}:{slow_ftp.port}/"
            proxies: dict[str, str] = {}
            for name in PROXY_SCENARIOS:
                kind = name.removeprefix("proxy-")
                if name in names and shutil.which(PROXY_PACKAGES[kind]):
                    real = RealProxy(kind, work)
                    real.start()
                    real_proxies.append(real)
                    proxies[kind] = real.url
                elif name in names:
                    print(f"{name}: {PROXY_PACKAGES[kind]} is not installed (apt-get it)")
                    scenarios = [s for s in scenarios if s.name != name]
            print(f"servers: {', '.join(f'{k} {v}' for k, v in base_urls.items())}")
            if proxies:
                print(f"proxies: {', '.join(proxies.values())}")
            outputs = Outputs(work / "out")
            bench = Bench(
                work, args.python, args.repeat, args.timeout, tools, missing, base_urls, proxy,
                throttle, proxies, outputs,
            )  # fmt: skip
            for scenario in scenarios:
                print(f"\n-- {scenario.name}: {scenario.title}")
                result = bench.run_scenario(scenario)
                results.append(result)
                print()
                startup = info.get("startup_adownload", {}).get("wall_s")
                print(format_table(result, args.repeat, rss_floor, startup))
            if "memory" in names and "adownload" in (t.name for t in tools):
                print()
                if "adownload" in missing:
                    print(f"-- memory: adownload {missing['adownload']}")
                else:
                    from .memory import run_memory

                    memory_report = run_memory(
                        args.python,
                        base_urls["plain"],
                        docroot,
                        work / "memory",
                        sizes.memory_file_sizes,
                        sizes.memory_url_counts,
                        seed=args.seed,
                    )
                    info["memory"] = asdict(memory_report)
        finally:
            if outputs is not None:
                outputs.clear()  # outside every timed run: deletions slow later creations
            for real in real_proxies:
                real.stop()
            if proxy is not None:
                proxy.stop()
            if throttle is not None:
                throttle.stop()
            for server in (ftp, slow_ftp):
                if server is not None and server.proc is not None:
                    stop_process(server.proc, signal.SIGTERM)
            nginx.stop()

        print("\n== commands (WORK is the temp dir) ==")
        for result in results:
            print(f"{result.scenario.name}:")
            for summary in result.tools.values():
                if summary.command:
                    shown = " ".join(summary.command).replace(str(work), "WORK")
                    print(f"  {summary.tool:<18} {shown}")

    if args.json:
        save_json(args.json, info, versions, missing, args, sizes, results)
        print(f"saved the results to {args.json}")
    return 0
