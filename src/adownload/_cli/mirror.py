"""`adownload mirror SOURCE DEST`: the command line of `adownload.mirror`.

SOURCE is the URL of a directory index (walked below that URL), or an input file of URLs in the
format of `adownload -i` (`-` for standard input). Prints a line per changed file (not for the
unchanged ones) and a summary; the exit status is 0 when every file is in place, 1 when some
failed, 2 for bad usage and 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import ssl
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .._client import loop as _loop
from .._client.downloader import Downloader
from .._disk.files import name_from_url
from .._engine.adaptive import HostLimit
from .._mirror.run import MirrorChange, MirrorReport, mirror
from .._model.config import Limits, Timeout
from .._model.errors import InvalidRequestError
from .._model.events import Event, HostLimitChanged
from .._model.options import DEFAULTS
from .._model.options import Options as DownloadOptions
from .._model.request import Request, parse_url
from .._model.util import describe_error, redact
from .dask import ClusterError
from .input import InputReader, _inside
from .network import (
    NetworkOptions,
    add_network_flags,
    load_cookies_into,
    network_options,
    save_cookies_of,
)
from .report import (
    LibraryLog,
    Stream,
    format_seconds,
    format_size,
    host_change_line,
    host_lines,
    is_terminal,
    standard_streams,
)
from .shared import (
    PROG,
    STDIN,
    Parser,
    UsageError,
    add_retry_flags,
    add_shared_option,
    check_directory,
    retry_of,
    tls_context,
    unique_headers,
)

if TYPE_CHECKING:
    from .progress import MirrorBars

__all__ = ["main"]

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


def main(argv: Sequence[str]) -> int:
    """Run `adownload mirror` with `argv` (the arguments after `mirror`); the exit status."""
    out, err = standard_streams()
    _log_to(err)  # the options' files too (a cookies.txt's skipped lines)
    try:
        options = parse_options(argv)
        reader = None if "://" in options.source else _open_list(options.source)
    except UsageError as exc:
        err.line(f"{COMMAND}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    bars = None
    if not options.quiet and not options.json and is_terminal(err):
        from .progress import MirrorBars  # rich loads only for a terminal

        bars = MirrorBars(out, err, file=err.file)
    printer = _Printer(out, err, quiet=options.quiet, json=options.json, bars=bars)
    try:
        report = _loop.run(_run(options, reader, printer))
    except KeyboardInterrupt:
        err.line(f"{COMMAND}: interrupted. Run the same command again to continue.")
        return EXIT_INTERRUPTED
    except UsageError as exc:
        err.line(f"{COMMAND}: error: {exc}")
        return EXIT_USAGE
    except ClusterError as exc:
        err.line(f"{COMMAND}: error: {exc}")
        return EXIT_FAILED
    printer.summary(report)
    return EXIT_FAILED if report.failed or printer.rejected else EXIT_OK


def _open_list(name: str) -> InputReader:
    if name == STDIN:
        if sys.stdin is None:
            raise UsageError("there is no standard input to read URLs from")
        return InputReader(sys.stdin.buffer, "<stdin>", close=False)
    try:
        return InputReader.open(name)
    except OSError as exc:
        raise UsageError(f"cannot read the list of URLs {name}: {exc.strerror or exc}") from None


async def _run(
    options: MirrorOptions, reader: InputReader | None, printer: _Printer
) -> MirrorReport:
    source: str | list[Request] = options.source
    delete = options.delete
    if reader is not None:
        source = await _read_list(reader, printer)
        if printer.rejected and delete:
            printer.err.line(f"{COMMAND}: not deleting anything: the list has errors")
            delete = False
    # As the main command's: the proxy variables and ~/.netrc are read, as curl and wget do.
    keywords: dict[str, Any] = {
        **options.download.keywords(),
        "limits": options.limits,
        "headers": options.headers,
        "verify": options.tls,
        **options.network.keywords(),
    }
    async with (
        Downloader(on_event=printer.event, **keywords) as dl,
        _runner(options, keywords, printer) as runner,
    ):
        load_cookies_into(dl, options.network)
        live = printer.bars.showing() if printer.bars is not None else contextlib.nullcontext()
        try:
            async with live:
                report = await mirror(
                    source,
                    options.dest,
                    include=options.include,
                    exclude=options.exclude,
                    delete=delete,
                    dry_run=options.dry_run,
                    max_depth=options.depth,
                    downloader=dl,
                    on_change=printer,
                    runner=runner,
                )
            printer.hosts = dl.host_limits()
        finally:
            save_cookies_of(dl, options.network, printer.err.line)
        return report


@contextlib.asynccontextmanager
async def _runner(
    options: MirrorOptions, keywords: dict[str, Any], printer: _Printer
) -> AsyncIterator[Any]:
    """With --scheduler, the cluster that fetches the files; else None (the downloader)."""
    if options.scheduler is None:
        yield None
        return
    from .dask import cluster_runner

    async with cluster_runner(options.scheduler, on_event=printer.event, **keywords) as runner:
        yield runner


async def _read_list(reader: InputReader, printer: _Printer) -> list[Request]:
    """The list's entries as Requests; an entry that cannot be used is reported and left out.

    `dir=` and `out=` under a URL give its path below DEST; several URLs on a line are mirrors
    of one file, and `checksum=` is checked.
    """
    requests = []
    try:
        async for entry in reader.entries():
            where = f"{reader.name}:{entry.line}"
            try:
                if entry.problem is not None:
                    raise ValueError(entry.problem)
                url, *mirrors = entry.urls
                path = None
                if entry.dir is not None or entry.out is not None:
                    name = entry.out or name_from_url(parse_url(url))
                    directory = _inside("dir", entry.dir) if entry.dir else PurePosixPath()
                    path = directory / _inside("out", name)
                requests.append(Request(url, path, mirrors=mirrors, checksum=entry.checksum))
            except (ValueError, InvalidRequestError) as exc:
                printer.reject(redact(f"{where}: {exc}"))
    except OSError as exc:
        raise UsageError(f"cannot read {reader.name}: {exc.strerror or exc}") from exc
    return requests


class _Printer:
    """A line per changed file on standard output, failures on standard error, a summary."""

    def __init__(
        self,
        out: Stream,
        err: Stream,
        *,
        quiet: bool,
        json: bool = False,
        bars: MirrorBars | None = None,
    ) -> None:
        self.out = out
        self.err = err
        self.quiet = quiet
        self.json = json
        #: On a terminal: the transfers under way, live; the lines then print above them.
        self.bars = bars
        self.rejected = 0
        self.started = time.monotonic()
        self.hosts: dict[str, HostLimit] = {}  # with --adaptive: what each host reached

    def _out_line(self, text: str) -> None:
        if self.bars is not None and is_terminal(self.out):
            self.bars.say(text)
        else:
            self.out.line(text)

    def _err_line(self, text: str) -> None:
        if self.bars is not None:
            self.bars.say(text)
        else:
            self.err.line(text)

    def event(self, event: Event) -> None:
        """The downloader's events: the live display's, and with --adaptive each change of a
        host's limit."""
        if self.bars is not None:
            self.bars(event)
        if isinstance(event, HostLimitChanged) and not self.quiet:
            self._err_line(host_change_line(event))

    def reject(self, why: str) -> None:
        self.rejected += 1
        if self.json:
            self._emit({"type": "failed", "path": None, "url": None, "error": why})
            return
        self._err_line(f"failed {why}")

    def __call__(self, change: MirrorChange) -> None:
        if self.json:
            self._emit(
                {
                    "type": change.kind,
                    "path": None if change.path is None else str(change.path),
                    "url": change.url,
                    "bytes": change.size,
                    "error": None if change.error is None else describe_error(change.error),
                    "dry_run": change.dry_run,
                }
            )
            return
        if change.kind == "failed":
            self._err_line(f"failed {change.url or change.path}: {describe_error(change.error)}")
            return
        if self.quiet or change.kind == "unchanged":
            return
        if change.dry_run:
            verb = {"new": "would fetch", "updated": "would update", "deleted": "would delete"}
            self._out_line(f"{verb[change.kind]} {change.path}")
        elif change.kind == "deleted":
            self._out_line(f"deleted {change.path}")
        else:
            self._out_line(f"{change.kind} {change.path} ({format_size(change.size)})")

    def _emit(self, record: dict[str, Any]) -> None:
        self._out_line(json.dumps(record, ensure_ascii=False))

    def summary(self, report: MirrorReport) -> None:
        failed = report.failed + self.rejected
        if self.json:
            self._emit(
                {
                    "type": "summary",
                    "new": report.new,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "deleted": report.deleted,
                    "failed": failed,
                    "bytes": report.bytes,
                    "complete": report.complete,
                    "dry_run": report.dry_run,
                    "elapsed": round(time.monotonic() - self.started, 3),
                }
            )
            return
        if self.quiet:
            if failed:
                self._err_line(f"{COMMAND}: {failed} failed")
            return
        elapsed = time.monotonic() - self.started
        prefix = "dry run, nothing changed: " if report.dry_run else ""
        self._err_line(
            f"{prefix}{report.new} new, {report.updated} updated, {report.unchanged} unchanged,"
            f" {report.deleted} deleted, {failed} failed:"
            f" {format_size(report.bytes)} transferred in {format_seconds(elapsed)}"
        )
        for line in host_lines(self.hosts):
            self._err_line(line)


def _log_to(err: Stream) -> None:
    """The library's warnings (an incomplete listing, so nothing deleted) as our own lines."""

    logger = logging.getLogger("adownload")
    logger.setLevel(logging.WARNING)
    logger.addHandler(LibraryLog(err, COMMAND))
    logger.propagate = False
