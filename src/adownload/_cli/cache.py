"""`adownload cache`: what the download cache holds (`list`) and trimming it (`prune`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .._cache.store import Cache
from .report import format_size, standard_streams
from .shared import PROG, Parser, UsageError, parse_size

COMMAND = f"{PROG} cache"
EXIT_OK = 0
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=COMMAND,
        description="Show or trim the download cache that adownload.fetch() fills.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,prune}")
    for name, text in (
        ("list", "the cached files, least recently used first"),
        ("prune", "remove the least recently used files"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.error = parser.error  # type: ignore[method-assign]
        sub.add_argument(
            "--cache",
            metavar="DIR",
            help="the cache directory (default: $ADOWNLOAD_CACHE, else the user cache directory)",
        )
        if name == "prune":
            size = sub.add_mutually_exclusive_group(required=True)
            size.add_argument(
                "--max-size", metavar="SIZE", help="keep at most SIZE bytes (such as 500M)"
            )
            size.add_argument("--all", action="store_true", help="empty the cache")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run `adownload cache` with `argv` (the arguments after `cache`); the exit status."""
    out, err = standard_streams()
    try:
        args = build_parser().parse_args(argv)
        limit = None
        if args.command == "prune" and not args.all:
            try:
                limit = parse_size(args.max_size)
            except ValueError as exc:
                raise UsageError(f"--max-size: {exc}") from None
    except UsageError as exc:
        err.line(f"{COMMAND}: error: {exc}")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    cache = Cache(args.cache)
    if args.command == "list":
        entries = cache.entries()
        for entry in entries:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
            urls = ", ".join(entry.urls) or "-"
            out.line(f"{entry.path}  {format_size(entry.size)}  used {used}  from {urls}")
        total = sum(entry.size for entry in entries)
        err.line(f"{len(entries)} files, {format_size(total)} in {cache.root}")
        return EXIT_OK
    removed = cache.prune(0 if args.all else limit)
    for path in removed:
        out.line(f"removed {path}")
    err.line(f"removed {len(removed)} files; {format_size(cache.size())} left in {cache.root}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
