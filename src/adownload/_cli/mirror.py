"""`adownload mirror SOURCE DEST`: the command line of `adownload.mirror`.

SOURCE is the URL of a directory index (walked below that URL), or an input file of URLs in the
format of `adownload -i` (`-` for standard input). Prints a line per changed file (not for the
unchanged ones) and a summary; the exit status is 0 when every file is in place, 1 when some
failed, 2 for bad usage and 130 when interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from .._client import loop as _loop
from .._client.downloader import Downloader
from .._disk.files import name_from_url
from .._mirror.run import MirrorChange, MirrorReport, mirror
from .._model.errors import InvalidRequestError
from .._model.events import Event, HostLimitChanged
from .._model.request import Request, parse_url
from .._model.util import describe_error, redact
from .._protocols.opening import import_http
from .dask import ClusterError
from .input import InputReader, _inside
from .network import (
    load_cookies_into,
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
    STDIN,
    UsageError,
)

if TYPE_CHECKING:
    from .._engine.adaptive import HostLimit
    from .progress import MirrorBars

from .mirror_flags import (
    COMMAND,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    MirrorOptions,
    parse_options,
)

__all__ = ["main"]


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
        if options.scheduler is None:
            import_http()  # a downloader opens in this process; see import_http
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
