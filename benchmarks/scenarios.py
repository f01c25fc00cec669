"""What is measured: each scenario's data, server, concurrency and the tools it
compares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import (
    CONCURRENCY,
    GIB,
    KIB,
    LIMIT_RATE,
    LIMIT_RATE_BYTES,
    METALINK_CONNECTIONS,
    METALINK_PIECE,
    MIB,
    MIRRORS,
    ONE_WAY_DELAY,
    SERVICE_S,
    SMALL_FILE_SIZE,
    THROTTLE_LIMIT,
    THROTTLE_RETRIES,
)
from .data import DataFile, Sizes, make_metalink_file, make_one_file, make_small_files


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    server: str  # "plain", "throttled" or "proxy"
    files: tuple[DataFile, ...]
    concurrency: int
    segments: int
    retries: int = 0
    proxy: str = ""  # "http" or "socks5": through that kind of proxy (PROXIES)
    mirrors: tuple[str, ...] = ()  # a metalink scenario's mirrors (MIRRORS names), best first
    #: The tools compared here (of those asked for with --tool).
    tools: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(data.size for data in self.files)


#: The tools of most scenarios: adownload's library driver and the peers.
GENERAL_TOOLS = ("adownload", "curl", "wget", "wget2", "aria2c", "parfive")
#: small also compares the command with the library, and the library with a bare aiohttp loop.
SMALL_TOOLS = (
    *GENERAL_TOOLS, "adownload-cli", "adownload-cli-workers", "adownload-cli-asyncio",
    "aiohttp-loop",
)  # fmt: skip
#: many: a long list of URLs, for the tools that read one from a file (-i) at their best.
MANY_TOOLS = (
    "adownload", "adownload-cli", "adownload-cli-workers", "adownload-cli-asyncio", "curl",
    "aria2c",
)  # fmt: skip

SCENARIO_NAMES = (
    "small",
    "many",
    "large",
    "throttled",
    "latency",
    "memory",
    "ftp-large",
    "ftp-small",
    "ftp-throttled",
    "adaptive-429",
    "adaptive-capped",
    "proxy-http",
    "proxy-socks5",
    "dask-1",
    "dask-2",
    "metalink",
    "metalink-corrupt",
)
#: Scenarios served by the FTP server; their peers are the tools that speak FTP.
FTP_SCENARIOS = ("ftp-large", "ftp-small", "ftp-throttled")
FTP_TOOLS = ("adownload", "curl", "wget", "aria2c")
#: Scenarios of adaptive concurrency: adownload fixed and adaptive against the peers that
#: run many requests at once. adownload-adaptive runs only here.
ADAPTIVE_SCENARIOS = ("adaptive-429", "adaptive-capped")
ADAPTIVE_TOOLS = ("adownload", "adownload-adaptive", "curl", "aria2c", "parfive")
#: Scenarios through a real proxy (tinyproxy, microsocks), and the tools that take one there.
PROXY_SCENARIOS = ("proxy-http", "proxy-socks5")
PROXY_TOOLS = ("adownload", "curl")
#: Scenarios on a Dask cluster of that many worker processes; adownload-dask runs only here,
#: next to adownload in one process.
DASK_SCENARIOS = {"dask-1": 1, "dask-2": 2}
DASK_TOOLS = ("adownload", "adownload-dask")
#: Scenarios of one file from a Metalink of three mirrors, and the tools that read one.
METALINK_SCENARIOS = {
    "metalink": ("slow", "medium", "fast"),
    "metalink-corrupt": ("slow", "corrupting", "fast"),
}
METALINK_TOOLS = ("adownload", "aria2c")


#: The tools each scenario compares (of those asked for with --tool).
SCENARIO_TOOLS: dict[str, tuple[str, ...]] = {
    "small": SMALL_TOOLS,
    "many": MANY_TOOLS,
    "large": GENERAL_TOOLS,
    "throttled": GENERAL_TOOLS,
    "latency": GENERAL_TOOLS,
    "memory": (),  # memory.py's own runs
    **dict.fromkeys(FTP_SCENARIOS, FTP_TOOLS),
    **dict.fromkeys(ADAPTIVE_SCENARIOS, ADAPTIVE_TOOLS),
    **dict.fromkeys(PROXY_SCENARIOS, PROXY_TOOLS),
    **dict.fromkeys(DASK_SCENARIOS, DASK_TOOLS),
    **dict.fromkeys(METALINK_SCENARIOS, METALINK_TOOLS),
}


def build_scenarios(names: Sequence[str], docroot: Path, sizes: Sizes, seed: int) -> list[Scenario]:
    scenarios: list[Scenario] = []
    small: tuple[DataFile, ...] = ()
    if {"small", "latency", "ftp-small", "adaptive-429"} & set(names):
        small = make_small_files(docroot, sizes.small_count, seed)
    throttled: tuple[DataFile, ...] = ()
    large: tuple[DataFile, ...] = ()
    if {"large", "ftp-large", *PROXY_SCENARIOS} & set(names):
        large = make_one_file(docroot, "large.bin", sizes.large_size, seed)
    count = f"{sizes.small_count} x {SMALL_FILE_SIZE // KIB} KiB"
    metalink_file: tuple[DataFile, ...] = ()
    many: tuple[DataFile, ...] = ()
    for name in names:
        if name == "many":
            many = many or make_small_files(docroot, sizes.many_count, seed)
            title = (
                f"{sizes.many_count} x {SMALL_FILE_SIZE // KIB} KiB from one list of URLs (-i),"
                f" {CONCURRENCY} at a time, plain nginx"
            )
            scenarios.append(
                Scenario(name, title, "plain", many, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
        elif name == "small":
            title = f"{count}, {CONCURRENCY} at a time, plain nginx"
            scenarios.append(
                Scenario(name, title, "plain", small, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
        elif name == "large":
            title = f"one {_size(sizes.large_size)} file, one connection, plain nginx"
            scenarios.append(
                Scenario(name, title, "plain", large, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
        elif name == "ftp-large":
            title = f"one {_size(sizes.large_size)} file, one connection, FTP (vsftpd)"
            scenarios.append(
                Scenario(name, title, "ftp", large, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
        elif name == "ftp-small":
            title = f"{count}, {CONCURRENCY} at a time, FTP (vsftpd)"
            scenarios.append(
                Scenario(name, title, "ftp", small, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
        elif name == "ftp-throttled":
            files = throttled or make_one_file(docroot, "throttled.bin", sizes.throttled_size, seed)
            throttled = files
            title = (
                f"one {_size(sizes.throttled_size)} file, FTP (vsftpd anon_max_rate "
                f"{LIMIT_RATE_BYTES / 1e6:.1f} MB/s per connection), {CONCURRENCY} segments"
            )
            scenarios.append(
                Scenario(
                    name,
                    title,
                    "ftp-throttled",
                    files,
                    CONCURRENCY,
                    CONCURRENCY,
                    tools=SCENARIO_TOOLS[name],
                )
            )
        elif name == "throttled":
            files = throttled or make_one_file(docroot, "throttled.bin", sizes.throttled_size, seed)
            throttled = files
            title = (
                f"one {_size(sizes.throttled_size)} file, nginx limit_rate {LIMIT_RATE} "
                f"({LIMIT_RATE_BYTES / 1e6:.1f} MB/s) per connection, {CONCURRENCY} segments"
            )
            scenarios.append(
                Scenario(
                    name,
                    title,
                    "throttled",
                    files,
                    CONCURRENCY,
                    CONCURRENCY,
                    tools=SCENARIO_TOOLS[name],
                )
            )
        elif name == "adaptive-429":
            title = (
                f"{count}, {CONCURRENCY} at a time, from a server that answers 429 above "
                f"{THROTTLE_LIMIT} requests in hand ({SERVICE_S * 1000:g} ms each); "
                f"{THROTTLE_RETRIES} retries per file for every tool"
            )
            scenarios.append(
                Scenario(
                    name,
                    title,
                    "throttling",
                    small,
                    CONCURRENCY,
                    1,
                    THROTTLE_RETRIES,
                    tools=SCENARIO_TOOLS[name],
                )
            )
        elif name == "adaptive-capped":
            files = throttled or make_one_file(docroot, "throttled.bin", sizes.throttled_size, seed)
            throttled = files
            title = (
                f"one {_size(sizes.throttled_size)} file, nginx limit_rate {LIMIT_RATE} per "
                f"connection, every tool with its own splitting defaults (no -s)"
            )
            scenarios.append(
                Scenario(
                    name, title, "throttled", files, CONCURRENCY, 0, tools=SCENARIO_TOOLS[name]
                )
            )
        elif name in PROXY_SCENARIOS:
            kind = name.removeprefix("proxy-")
            peer = {"http": "tinyproxy", "socks5": "microsocks"}[kind]
            title = f"one {_size(sizes.large_size)} file, one connection, through {peer}"
            scenarios.append(
                Scenario(
                    name,
                    title,
                    "plain",
                    large,
                    CONCURRENCY,
                    1,
                    proxy=kind,
                    tools=SCENARIO_TOOLS[name],
                )
            )
        elif name in DASK_SCENARIOS:
            many = many or make_small_files(docroot, sizes.many_count, seed)
            workers = DASK_SCENARIOS[name]
            title = (
                f"{sizes.many_count} x {SMALL_FILE_SIZE // KIB} KiB, {CONCURRENCY} at a time,"
                f" plain nginx; adownload-dask on {workers} worker process"
                f"{'es' if workers > 1 else ''}"
            )
            scenarios.append(
                Scenario(name, title, "plain", many, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
        elif name in METALINK_SCENARIOS:
            if not metalink_file:
                metalink_file = make_metalink_file(docroot, sizes.metalink_size, seed)
            mirrors = METALINK_SCENARIOS[name]
            rates = ", ".join(
                f"{rate}{' (one byte wrong in every piece)' if corrupt else ''}"
                for mirror in mirrors
                for other, rate, corrupt in MIRRORS
                if other == mirror
            )
            title = (
                f"one {_size(sizes.metalink_size)} file from a Metalink of 3 nginx mirrors"
                f" (limit_rate {rates} per connection; {METALINK_PIECE // MIB} MiB piece"
                f" hashes), {METALINK_CONNECTIONS} connections"
            )
            scenarios.append(
                Scenario(
                    name, title, "plain", metalink_file, CONCURRENCY, METALINK_CONNECTIONS,
                    mirrors=mirrors, tools=SCENARIO_TOOLS[name],
                )
            )  # fmt: skip
        elif name == "latency":
            rtt_ms = 2 * ONE_WAY_DELAY * 1000
            title = f"{count}, {CONCURRENCY} at a time, behind a {rtt_ms:.0f} ms round-trip proxy"
            scenarios.append(
                Scenario(name, title, "proxy", small, CONCURRENCY, 1, tools=SCENARIO_TOOLS[name])
            )
    return scenarios


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:g} GiB" if nbytes >= GIB else f"{nbytes / MIB:g} MiB"
