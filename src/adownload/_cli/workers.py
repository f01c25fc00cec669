"""`--workers N|auto`: the download command's downloads in N processes on this machine,
through `adownload.workers.ProcessRunner`, and how many `auto` takes."""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Sequence

from .network import NetworkOptions, refuse_untravelling
from .shared import UsageError

__all__ = ["AUTO_MIN_URLS", "auto_workers", "check_worker_options", "usable_cores"]

#: `--workers auto` runs worker processes from this many URLs on. Measured with the benchmark's
#: 64 KiB files from nginx on loopback (2 cores): two workers cost about 0.5 s more than one
#: process for 1000 files (their start-up) and save about 0.4 ms a file, so they pay from about
#: 2000 files.
AUTO_MIN_URLS = 2000


def check_worker_options(
    tls: ssl.SSLContext | bool,
    network: NetworkOptions,
    *,
    stdout: bool,
    scheduler: str | None,
    content_disposition: bool,
) -> None:
    """Refuse, before anything runs, what worker processes cannot do."""
    if scheduler is not None:
        raise UsageError("--workers and --scheduler both say where the downloads run: give one")
    if stdout:
        raise UsageError("-O - writes here, so it cannot run in worker processes (--workers)")
    if content_disposition:
        # Names that come with the answers could meet in two processes at once.
        raise UsageError(
            "--content-disposition names files only once their answers come, so two worker"
            " processes could write one file: leave out --workers"
        )
    refuse_untravelling(
        tls, network, "worker processes", "leave out --workers to use it", "--workers"
    )


def auto_workers(
    known: int, inputs: Sequence[str], *, cores: int, limit: int, allowed: bool
) -> int:
    """How many processes `--workers auto` runs: one per core (at most `limit`, the connections
    one host may have) when `allowed` and at least `AUTO_MIN_URLS` URLs are known to come:
    `known` from the command line, and the lines of the `inputs` (a `-` is standard input,
    which cannot be counted before it is read: one process then)."""
    workers = min(cores, limit)
    if not allowed or workers < 2:
        return 1
    if known >= AUTO_MIN_URLS:
        return workers
    if "-" in inputs or not all(map(_is_regular, inputs)):
        return 1  # a pipe (-i <(producer)) cannot be read twice: never counted
    for path in inputs:
        known += _count_lines(path, AUTO_MIN_URLS - known)
        if known >= AUTO_MIN_URLS:
            return workers
    return 1


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _is_regular(path: str) -> bool:
    """Whether `path` is a regular file (or missing: reading it for the downloads says so),
    which can be read once to count and again to download."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def _count_lines(path: str, enough: int) -> int:
    """The non-empty lines of the file at `path`, counting no further than `enough`; 0 for a
    file that cannot be read (reading it for the downloads then says why)."""
    count = 0
    try:
        with open(path, "rb") as file:
            for line in file:
                if line.strip():
                    count += 1
                    if count >= enough:
                        break
    except OSError:
        return 0
    return count
