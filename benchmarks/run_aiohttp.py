"""Benchmark driver: the floor a library on aiohttp stands on, a bare aiohttp loop.

Usage: python run_aiohttp.py URLS_FILE DEST [-j N] [--loop asyncio|uvloop]

One `aiohttp.ClientSession`, N workers taking URLs from one list, each body read whole and
written with one `write` to its final name: no `.part`, no resume state, no checks beyond the
status, no events. It is what the issue's "library vs a bare aiohttp loop" row compares
adownload's `download_many` with, so it is kept as small as such a script is; it is not a
downloader anyone should use (a failed or interrupted run leaves truncated files).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp


async def download(urls: list[str], dest: Path, jobs: int) -> int:
    todo = iter(urls)
    failed: list[str] = []
    connector = aiohttp.TCPConnector(limit=jobs)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for url in todo:
                async with session.get(url) as response:
                    if response.status != 200:
                        failed.append(f"{url}: HTTP {response.status}")
                        continue
                    body = await response.read()
                with open(dest / os.path.basename(response.url.path), "wb") as file:
                    file.write(body)

        await asyncio.gather(*(worker() for _ in range(jobs)))
    for line in failed[:10]:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="a bare aiohttp download loop")
    parser.add_argument("urls_file", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop"
    )
    parser.add_argument("-j", "--jobs", type=int, default=16)
    args = parser.parse_args()
    urls = args.urls_file.read_text().split()
    args.dest.mkdir(parents=True, exist_ok=True)
    if args.loop == "uvloop":
        import uvloop

        return uvloop.run(download(urls, args.dest, args.jobs))
    return asyncio.run(download(urls, args.dest, args.jobs))


if __name__ == "__main__":
    sys.exit(main())
