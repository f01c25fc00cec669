"""The flags of `adownload mirror`, parsed and checked into `MirrorOptions`: every check that can
fail on the user's input happens here, before anything is fetched, with one `UsageError` line."""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._model.config import Limits, Timeout
from .._model.errors import InvalidRequestError
from .._model.options import DEFAULTS
from .._model.options import Options as DownloadOptions
from .._model.request import parse_url
from .network import (
    NetworkOptions,
    add_network_flags,
    network_options,
)
from .shared import (
    PROG,
    Parser,
    UsageError,
    check_directory,
    tls_context,
    unique_headers,
)
from .shared_flags import (
    add_retry_flags,
    add_shared_option,
    retry_of,
)

if TYPE_CHECKING:
    pass


COMMAND = f"{PROG} mirror"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_DEPTH = 10

_EXAMPLES = f"""\
examples:
  {COMMAND} https://www.python.org/ftp/python/doc/ docs/ --include '*.zip' --depth 1
  {COMMAND} http://127.0.0.1:8000/ copy/ --delete      also remove files gone upstream
  {COMMAND} urls.txt archive/ --dry-run               show what would change, change nothing

A rerun asks only for what changed (If-None-Match / If-Modified-Since): an unchanged file
costs one request and no body. An interrupted run continues where it stopped when started
again. State is kept in DEST/.adownload-mirror.sqlite; --delete removes only files that the
mirror itself created.

exit status: 0 every file is in place, 1 some failed, 2 bad usage, 130 interrupted.
"""


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    source: str  # a URL, a file name, or "-"
    dest: Path
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    delete: bool
    dry_run: bool
    depth: int | None
    quiet: bool
    limits: Limits
    headers: dict[str, str]
    #: The library's per-download options the flags set (timeouts, retries).
    download: DownloadOptions = DEFAULTS
    json: bool = False
    tls: ssl.SSLContext | bool = True
    network: NetworkOptions = NetworkOptions()  # noqa: RUF009 (frozen)
    #: `--scheduler`: fetch the files on this Dask cluster (the listing stays here).
    scheduler: str | None = None


def _depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=COMMAND,
        description="Make DEST a copy of a directory index or a list of URLs; rerun to update.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="the URL of a directory index, or a file of URLs ('-' for standard input)",
    )
    parser.add_argument("dest", metavar="DEST", help="the directory to keep up to date")
    what = parser.add_argument_group("what to mirror")
    what.add_argument(
        "--include",
        "--accept",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files whose name (or path, if GLOB has a /) matches; may be repeated",
    )
    what.add_argument(
        "--exclude",
        "-R",
        "--reject",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out files and directories that match; may be repeated",
    )
    what.add_argument(
        "--depth",
        "-l",
        "--level",
        type=_depth,
        default=DEFAULT_DEPTH,
        metavar="N",
        help="walk N levels of subdirectories below SOURCE (default: %(default)s)",
    )
    what.add_argument(
        "--delete",
        action="store_true",
        help="remove files the mirror created that are gone upstream",
    )
    what.add_argument(
        "-n",
        "--dry-run",
        action="store_true",
        help="print what would change; write nothing",
    )
    what.add_argument(
        "-np",
        "--no-parent",
        action="store_true",
        help="wget's: never go above SOURCE (the mirror never does)",
    )
    what.add_argument(
        "-nH",
        "--no-host-directories",
        action="store_true",
        help="wget's: no directory per host (the mirror makes none: DEST is SOURCE's copy)",
    )
    network = parser.add_argument_group("connections and time limits")
    for name in (
        "jobs",
        "per_host",
        "adaptive",
        "rate",
        "scheduler",
        "connect_timeout",
        "read_timeout",
        "user_agent",
        "headers",
        "insecure",
        "cafile",
    ):
        add_shared_option(network, name)
    add_retry_flags(parser)
    add_network_flags(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (exit status says)"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per change and a summary on standard output (JSON Lines)",
    )
    return parser


def parse_options(argv: Sequence[str]) -> MirrorOptions:
    args = build_parser().parse_args(argv)
    source: str = args.source
    if "://" in source:
        try:
            parse_url(source)
        except InvalidRequestError as exc:
            raise UsageError(str(exc)) from None
    dest = Path(args.dest)
    check_directory(dest)
    network = network_options(args)
    pairs: list[tuple[str, str]] = args.headers
    if args.user_agent is not None:
        pairs = [*pairs, args.user_agent]
    if network.cookie_header is not None:
        pairs = [*pairs, ("Cookie", network.cookie_header)]
    tls = tls_context(args.insecure, args.cafile)
    if args.scheduler is not None:
        from .dask import check_cluster_options

        check_cluster_options(tls, network)
    return MirrorOptions(
        source=source,
        dest=dest,
        include=tuple(args.include),
        exclude=tuple(args.exclude),
        delete=args.delete,
        dry_run=args.dry_run,
        depth=args.depth,
        quiet=args.quiet,
        limits=Limits(
            max_transfers=args.jobs,
            max_per_host=args.per_host,
            rate=args.rate,
            adaptive=args.adaptive,
        ),
        headers=unique_headers(pairs),
        download=DownloadOptions(
            timeout=Timeout(connect=args.connect_timeout, read=args.read_timeout),
            retry=retry_of(args),
        ),
        json=args.json,
        tls=tls,
        network=network,
        scheduler=args.scheduler,
    )
