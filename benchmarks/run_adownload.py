"""Benchmark driver: download every URL of URLS_FILE into DEST with adownload.

Usage: python run_adownload.py URLS_FILE DEST [-j N] [--segments N] [--retries N] [--adaptive]
                              [--proxy URL] [--scheduler ADDRESS] [--metalink FILE]
                              [--loop asyncio|uvloop]
       python run_adownload.py --check [--segments N]

URLS_FILE holds one URL a line.  The exit status tells the harness what happened:
0 every file downloaded, 1 some failed (listed on stderr), 3 a requested feature is
not available in this adownload yet (e.g. ``--segments``), 4 adownload is not
importable.  ``--check`` only imports adownload and builds the ``Limits`` and
``Segments`` (exit 0, 3 or 4) without downloading anything.

``--segments N`` (N > 1) splits each large file over up to N connections with
``Segments(count=N, min_size=1 MiB)`` (aria2c's ``-sN -k1M``), and lets N connections
per host through.  Without it, one connection per file (``Segments(count=1)``), like the
single-connection peers it is compared with; ``--segments 0`` keeps the library's default
``Segments()``.  ``--retries N`` allows N further tries per file (``Retry(attempts=N+1)``, the
default backoff), ``--adaptive`` sets ``Limits(adaptive=True)``, ``--proxy URL`` sends every
request through that proxy (``Downloader(proxy=URL)``), ``--scheduler ADDRESS`` runs the
downloads on that Dask cluster (``adownload.distributed.DaskRunner``): this process is then
the caller, whose time and memory the harness measures. ``--metalink FILE`` downloads the
files that Metalink lists instead (each ``MetalinkFile.request(DEST)``: its mirrors, size,
checksum and piece hashes), and URLS_FILE is then not read for them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_NOT_AVAILABLE = 3
EXIT_MISSING = 4


#: The smallest segment, as aria2c's ``-k1M`` in the harness.
MIN_SEGMENT = 1 << 20


def build_config(
    adownload: Any, jobs: int, segments: int, *, adaptive: bool = False
) -> tuple[Any, Any]:
    """``Limits`` and ``Segments`` for the run: N connections per host when segmenting."""
    per_host = max(jobs, segments)
    if adaptive:
        limits = adownload.Limits(max_transfers=jobs, max_per_host=per_host, adaptive=True)
    else:
        limits = adownload.Limits(max_transfers=jobs, max_per_host=per_host)
    if segments == 0:
        return limits, adownload.Segments()
    split = adownload.Segments(count=max(1, segments), min_size=MIN_SEGMENT)
    return limits, split


async def download(
    adownload: Any,
    limits: Any,
    segments: Any,
    urls: list[str],
    dest: Path,
    retries: int,
    proxy: str | None = None,
) -> int:
    keywords: dict[str, Any] = {"retry": adownload.Retry(attempts=retries + 1)} if retries else {}
    if proxy:
        keywords["proxy"] = proxy
    async with adownload.Downloader(limits=limits, segments=segments, **keywords) as dl:
        outcomes = await dl.download_many(urls, dest=dest)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    for outcome in failed[:10]:
        print(f"FAILED {outcome.url}: {outcome.error!r}", file=sys.stderr)
    if len(outcomes) != len(urls):
        print(f"got {len(outcomes)} outcomes for {len(urls)} URLs", file=sys.stderr)
        return EXIT_FAILED
    if failed:
        print(f"{len(failed)} of {len(urls)} downloads failed", file=sys.stderr)
        return EXIT_FAILED
    return 0


async def download_on_cluster(
    adownload: Any, limits: Any, segments: Any, urls: list[str], dest: Path, scheduler: str
) -> int:
    from distributed import Client

    from adownload.distributed import DaskRunner

    async with Client(scheduler, asynchronous=True) as client:
        runner = DaskRunner(client, dest=dest, limits=limits, segments=segments)
        failed = 0
        async for outcome in runner.as_completed(urls):
            if not outcome.ok:
                failed += 1
                if failed <= 10:
                    print(f"FAILED {outcome.url}: {outcome.error!r}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(urls)} downloads failed", file=sys.stderr)
        return EXIT_FAILED
    return 0


def run_on(loop: str, main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on asyncio's loop or on uvloop's (``--loop``)."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="adownload benchmark driver")
    parser.add_argument("urls_file", nargs="?", type=Path, help="one URL a line")
    parser.add_argument("dest", nargs="?", type=Path, help="directory to download into")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop"
    )
    parser.add_argument("-j", "--jobs", type=int, default=16, help="concurrent transfers")
    parser.add_argument("--segments", type=int, default=1, help="ranged segments per file")
    parser.add_argument("--retries", type=int, default=0, help="further tries per file")
    parser.add_argument("--adaptive", action="store_true", help="Limits(adaptive=True)")
    parser.add_argument("--proxy", help="Downloader(proxy=URL)")
    parser.add_argument("--scheduler", help="run on this Dask cluster (DaskRunner)")
    parser.add_argument("--metalink", type=Path, help="download the files of this Metalink")
    parser.add_argument("--check", action="store_true", help="only check availability")
    args = parser.parse_args(argv)
    if not args.check and (args.urls_file is None or args.dest is None):
        parser.error("URLS_FILE and DEST are required unless --check is given")

    try:
        import adownload  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        print(f"MISSING: adownload is not importable: {exc}", file=sys.stderr)
        return EXIT_MISSING
    try:
        limits, segments = build_config(adownload, args.jobs, args.segments, adaptive=args.adaptive)
    except (AttributeError, TypeError) as exc:
        print(f"NOT AVAILABLE: Segments(count=...) rejected: {exc}", file=sys.stderr)
        return EXIT_NOT_AVAILABLE
    if args.check:
        return 0

    urls: list[Any] = [
        line.strip() for line in args.urls_file.read_text().splitlines() if line.strip()
    ]
    args.dest.mkdir(parents=True, exist_ok=True)
    if args.metalink is not None:
        try:
            from adownload import metalink
        except ImportError as exc:
            print(f"NOT AVAILABLE: adownload.metalink: {exc}", file=sys.stderr)
            return EXIT_NOT_AVAILABLE
        urls = [file.request(args.dest) for file in metalink.parse(args.metalink)]
    if args.scheduler:
        return asyncio.run(
            download_on_cluster(adownload, limits, segments, urls, args.dest, args.scheduler)
        )
    return run_on(
        args.loop, download(adownload, limits, segments, urls, args.dest, args.retries, args.proxy)
    )


if __name__ == "__main__":
    sys.exit(main())
