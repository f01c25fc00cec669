"""The child of benchmarks/memory.py: one process calling `Downloader.as_completed` on a
generator of URLs, each body checked against the expected bytes by a `CheckingSink` (or saved
into real files with `--into`), its RSS sampled along the way; it prints one RESULT line.

A script of its own, importing nothing of the benchmark package, so that what the parent
measures is adownload's memory and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KIB = 1024
JOBS = 16  # as memory.py's

# --------------------------------------------------------------------------- the child


class CheckingSink:
    """A `Sink` that checks each byte against ``expected`` and then discards it."""

    __slots__ = ("closed", "expected", "received")

    def __init__(self, expected: bytes) -> None:
        self.expected = expected
        self.received = 0
        self.closed = False

    async def write_at(self, offset: int, data: bytes) -> None:
        if self.expected[offset : offset + len(data)] != data:
            raise ValueError(f"bytes at offset {offset} differ from the source")
        self.received = max(self.received, offset + len(data))

    async def close(self) -> None:
        self.closed = True


def rss_kib() -> int:
    """This process's resident set size now, in KiB (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // KIB


async def many_urls(
    base_url: str, count: int, expected: bytes, trace: bool, into: Path | None = None
) -> dict[str, Any]:
    """Feed ``count`` URLs from a generator to ``as_completed``; check every outcome.

    With ``into``, each URL is downloaded into a file of that directory (the default
    `FileSink`, `.part` and commit path), which is read back, compared and deleted.
    """
    import adownload  # type: ignore[import-not-found,unused-ignore]

    sinks_made = 0

    def requests() -> Iterator[Any]:
        nonlocal sinks_made
        for index in range(count):
            sinks_made += 1
            url = f"{base_url}?i={index}"
            if into is None:
                yield adownload.Request(url, sink=CheckingSink(expected))
            else:
                yield adownload.Request(url, path=into / f"{index}.bin")

    limits = adownload.Limits(max_transfers=JOBS, max_per_host=JOBS)
    samples: list[tuple[int, int]] = []
    checkpoints = {max(1, count * tenth // 10) for tenth in range(1, 11)}
    done = failed = 0
    first_error = ""
    snapshot_start: tracemalloc.Snapshot | None = None
    growth: list[str] = []
    started = time.perf_counter()
    async with adownload.Downloader(limits=limits) as dl:
        async for outcome in dl.as_completed(requests()):
            done += 1
            if not _outcome_ok(outcome, expected):
                failed += 1
                first_error = first_error or f"{outcome.url}: {outcome.error!r}"
            if done in checkpoints:
                samples.append((done, rss_kib()))
                if trace and done == min(checkpoints):
                    tracemalloc.start(6)
                    snapshot_start = tracemalloc.take_snapshot()
        if trace and snapshot_start is not None:
            snapshot_end = tracemalloc.take_snapshot()
            stats = snapshot_end.compare_to(snapshot_start, "traceback")
            total = sum(stat.size_diff for stat in stats) / KIB
            growth.append(f"{total:+9.1f} KiB in all, in {len(stats)} allocation sites")
            for stat in stats[:12]:
                where = " <- ".join(
                    f"{Path(frame.filename).name}:{frame.lineno}"
                    for frame in list(stat.traceback)[::-1][:4]  # the newest frame first
                )
                growth.append(
                    f"{stat.size_diff / KIB:+9.1f} KiB {stat.count_diff:+7d} blocks  {where}"
                )
            tracemalloc.stop()
    return {
        "count": count,
        "done": done,
        "failed": failed,
        "generated": sinks_made,
        "first_error": first_error,
        "seconds": time.perf_counter() - started,
        "rss_samples_kib": samples,
        "tracemalloc_growth": growth,
    }


def _outcome_ok(outcome: Any, expected: bytes) -> bool:
    if not outcome.ok or outcome.request is None:
        return False
    sink = outcome.request.sink
    if sink is not None:
        return bool(sink.closed and sink.received == len(expected))
    path = Path(outcome.path)
    same = path.read_bytes() == expected
    path.unlink()  # keeps the disk use flat too
    return same


def child_main(args: argparse.Namespace) -> int:
    expected = Path(args.expected).read_bytes()
    into = Path(args.into) if args.into else None
    if into is not None:
        into.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(many_urls(args.url, args.count, expected, args.tracemalloc, into))
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                result["vmhwm_kib"] = int(line.split()[1])
    print("RESULT " + json.dumps(result), flush=True)
    ok = result["failed"] == 0 and result["done"] == args.count
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="one as_completed run of benchmarks/memory.py")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--expected", required=True)
    parser.add_argument("--into")
    parser.add_argument("--tracemalloc", action="store_true")
    return child_main(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
