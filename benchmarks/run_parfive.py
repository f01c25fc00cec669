"""Benchmark driver: download every URL of URLS_FILE into DEST with parfive.

Usage: python run_parfive.py URLS_FILE DEST [-j N] [--splits N] [--retries N]

Runs ``parfive.Downloader(max_conn=N, max_splits=S, progress=False, overwrite=True)``
with parfive's other settings at their defaults (``max_splits`` too without ``--splits``).
``--retries N`` calls ``Downloader.retry(results)`` up to N times while files failed.
Exit status 0 when every file downloaded, 1 when some failed (listed on stderr), 4 when
parfive is not importable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_FAILED = 1
EXIT_MISSING = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="parfive benchmark driver")
    parser.add_argument("urls_file", type=Path, help="one URL a line")
    parser.add_argument("dest", type=Path, help="directory to download into")
    parser.add_argument("-j", "--jobs", type=int, default=16, help="max_conn")
    parser.add_argument("--splits", type=int, default=None, help="max_splits")
    parser.add_argument("--retries", type=int, default=0, help="retry() rounds")
    args = parser.parse_args(argv)

    try:
        import parfive  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        print(f"MISSING: parfive is not importable: {exc}", file=sys.stderr)
        return EXIT_MISSING

    urls = [line.strip() for line in args.urls_file.read_text().splitlines() if line.strip()]
    args.dest.mkdir(parents=True, exist_ok=True)
    splits = {} if args.splits is None else {"max_splits": args.splits}
    downloader = parfive.Downloader(max_conn=args.jobs, progress=False, overwrite=True, **splits)
    for url in urls:
        downloader.enqueue_file(url, path=args.dest)
    results = downloader.download()
    for _ in range(args.retries):
        if not results.errors:
            break
        results = downloader.retry(results)
    for error in list(results.errors)[:10]:
        print(f"FAILED {error.url}: {error.exception!r}", file=sys.stderr)
    if results.errors or len(results) != len(urls):
        print(f"{len(results.errors)} of {len(urls)} downloads failed", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
