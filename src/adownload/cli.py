"""The `adownload` command: download URLs given as arguments or listed in input files.

    adownload -d docs/ https://www.python.org/ftp/python/doc/3.13.2/python-3.13.2-docs-html.zip
    adownload -i urls.txt -j 16 -x 4 --json

`adownload --help` lists the options. The exit status is 0 when every file is in place
(skipped ones count), 1 when some failed, 2 for bad usage and 130 when interrupted.

The pieces: `_cli.args` (flags and their checks), `_cli.input` (input files, streamed),
`_cli.report` (lines, JSON Lines, the summary) and `_cli.progress` (bars on a terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from . import metalink
from ._cli.args import Options, downloader_keywords, parse_options
from ._cli.dask import ClusterError
from ._cli.input import KNOWN_KEYS, InputReader, RejectedEntry, request_for
from ._cli.json_lines import JsonReporter
from ._cli.network import load_cookies_into, save_cookies_of
from ._cli.report import (
    LibraryLog,
    LinesReporter,
    Reporter,
    Stream,
    format_size,
    is_terminal,
    standard_streams,
)
from ._cli.shared import PROG, STDIN, UsageError
from ._client import loop as _loop
from ._client.downloader import Downloader
from ._disk.files import part_path
from ._disk.state import bytes_held
from ._model.config import Existing
from ._model.errors import DownloadError, InvalidRequestError
from ._model.events import Finished, Queued
from ._model.request import Outcome, Request
from ._model.util import redact
from ._protocols.opening import import_http

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class InputError(Exception):
    """An input file could not be read to its end."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    _CLOSED_AT_START.update(_reopen_closed_standard_fds())
    # Subcommands dispatch here, before the download flags are parsed.
    if args and args[0] == "mirror":
        # Imported here: the mirror's modules (sqlite3, the index parser) cost a download
        # run about 30 ms of start-up.
        from ._cli.mirror import main as mirror_main

        return mirror_main(args[1:])
    if args and args[0] == "cache":
        from ._cli.cache import main as cache_main

        return cache_main(args[1:])
    return _download(args)


#: Which of the standard descriptors (0, 1, 2) were closed when the command started.
_CLOSED_AT_START: set[int] = set()


def _reopen_closed_standard_fds() -> set[int]:
    """Open /dev/null on each of the descriptors 0, 1 and 2 that is closed (`cmd >&-`), so
    that no socket or file of ours takes its number (output meant for the terminal would go
    into it, and uvloop aborts on closing one); the ones that were closed."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        opened = os.open(os.devnull, os.O_RDWR)
        if opened != fd:  # a lower one was free: it took that number instead
            os.dup2(opened, fd)
            os.close(opened)
    return closed


def _download(argv: list[str]) -> int:
    out, err = standard_streams()
    with _library_log_to(err):  # the options' files too (a cookies.txt's skipped lines)
        return _download_with(argv, out, err)


def _download_with(argv: list[str], out: Stream, err: Stream) -> int:
    try:
        options = parse_options(argv)
        if options.stdout and (1 in _CLOSED_AT_START or sys.stdout is None):
            raise UsageError("-O -: standard output is closed, so the file has nowhere to go")
        readers = _open_inputs(options.inputs)
    except UsageError as exc:
        err.line(f"{PROG}: error: {_one_line(str(exc))}")
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print, then exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    # With -O -, standard output carries the file: every message goes to standard error.
    reporter = _reporter(options, err if options.stdout else out, err)
    try:
        if options.workers == 1 and options.scheduler is None:
            import_http()  # a downloader opens in this process; see import_http
        _loop.run(_run(options, readers, reporter))
    except KeyboardInterrupt:
        err.line(f"{PROG}: interrupted. {_how_to_continue(options, reporter.unfinished())}")
        return EXIT_INTERRUPTED
    except InputError as exc:
        err.line(f"{PROG}: error: {exc}")
        return EXIT_USAGE
    except ClusterError as exc:
        err.line(f"{PROG}: error: {exc}")
        return EXIT_FAILED
    return EXIT_FAILED if reporter.tally.failed else EXIT_OK


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _open_inputs(names: Sequence[str]) -> list[InputReader]:
    readers = []
    for name in names:
        if name == STDIN:
            if sys.stdin is None:
                raise UsageError("-i -: there is no standard input to read")
            readers.append(InputReader(sys.stdin.buffer, "<stdin>", close=False))
            continue
        try:
            readers.append(InputReader.open(name))
        except OSError as exc:
            raise UsageError(f"cannot read the input file {name}: {exc.strerror or exc}") from None
    return readers


def _reporter(options: Options, out: Stream, err: Stream) -> Reporter:
    reporter = _display(options, out, err)
    reporter.tally.spider = options.spider
    return reporter


def _display(options: Options, out: Stream, err: Stream) -> Reporter:
    if options.json:
        return JsonReporter(out, err)
    if options.bars and not options.quiet and is_terminal(err):
        from ._cli.progress import BarsReporter  # rich loads only for a terminal

        return BarsReporter(out, err, file=err.file)
    return LinesReporter(out, err, quiet=options.quiet)


@contextlib.contextmanager
def _library_log_to(err: Stream) -> Iterator[None]:
    """Show the library's warnings and errors (a bug it caught) as the command's own lines."""

    logger = logging.getLogger("adownload")
    handler = LibraryLog(err, PROG)
    saved = logger.level, logger.propagate
    logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _how_to_continue(options: Options, unfinished: list[Path]) -> str:
    """What an interrupted run left behind, and what running it again does: a promise to
    continue only for the `.part` files kept (the library keeps one only when its server
    gave validators and ranges), and "starts over" for the rest."""
    kept = [part for part in map(part_path, unfinished) if part.is_file()]
    lost = len(unfinished) - len(kept)
    said = []
    if kept:
        names = ", ".join(str(p) for p in kept[:3]) + (" ..." if len(kept) > 3 else "")
        size = format_size(sum(bytes_held(part) for part in kept))
        said.append(f"Kept {_count(len(kept), 'partial download')} ({names}; {size}).")
    if lost and not options.download.resume:
        said.append(f"{_count(lost, 'download')} cut short kept nothing (--no-continue).")
    elif lost:
        said.append(
            f"{_count(lost, 'download')} cut short kept nothing: "
            f"{'its server does' if lost == 1 else 'their servers do'} not allow resuming"
            " (no ranges, or no ETag or Last-Modified), so the next run starts "
            f"{'it' if lost == 1 else 'them'} over."
        )
    existing = options.download.existing
    if existing in (Existing.OVERWRITE, Existing.RENAME, Existing.ERROR):
        flag = {
            Existing.OVERWRITE: "--overwrite",
            Existing.RENAME: "--rename",
            Existing.ERROR: "--fail-if-exists",
        }[existing]
        said.append(
            f"To go on, run the same command with --skip-existing in place of {flag}:"
            " files already complete are then skipped"
            + (", and the partial downloads continued." if kept else ".")
        )
    elif kept:
        said.append(
            f"Run the same command again to continue {'it' if len(kept) == 1 else 'them'}:"
            " files already complete are skipped."
        )
    else:
        said.append("Run the same command again to go on: files already complete are skipped.")
    if not options.download.resume:
        said.append("Without --no-continue, partial downloads are kept and continued.")
    return " ".join(said)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class StdoutSink:
    """`-O -`: the body, in order, to standard output (the sink of the one request)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._position = 0

    async def write_at(self, offset: int, data: bytes) -> None:
        if offset != self._position:
            raise OSError(errno.ESPIPE, "standard output cannot go back to rewrite a byte")
        await asyncio.to_thread(self._write, data)
        self._position += len(data)

    async def close(self) -> None:
        await asyncio.to_thread(self._write, b"")

    def _write(self, data: bytes) -> None:
        try:
            if data:
                self._file.write(data)
            self._file.flush()
        except BrokenPipeError:
            # `adownload -O - URL | head`: nothing more goes there, the interpreter's flush
            # at exit included.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._file.fileno())
                os.close(devnull)
            raise


async def _run(options: Options, readers: list[InputReader], reporter: Reporter) -> None:
    interrupted = started = False
    try:
        # The engine first: a cluster that cannot be reached is an error, with no summary.
        async with _engine(options, reporter) as as_completed, reporter.showing():
            started = True
            items = _items(options, readers, reporter)
            async with (
                contextlib.aclosing(items),
                contextlib.aclosing(as_completed(items)) as outcomes,
            ):
                async for _ in outcomes:
                    pass  # the reporter hears of each outcome through its Finished event
    except asyncio.CancelledError:
        interrupted = True  # Ctrl-C: the loop's runner turns SIGINT into a cancellation
        reporter.count_cut_short()
        raise
    finally:
        # The display is down by now, and the tally is final.
        if started:
            reporter.finish(interrupted=interrupted)


AsCompleted = Callable[[AsyncIterator[Request]], AsyncGenerator[Outcome, None]]


@contextlib.asynccontextmanager
async def _engine(options: Options, reporter: Reporter) -> AsyncGenerator[AsCompleted, None]:
    """What runs the downloads: a `Downloader` here, a `ProcessRunner` with --workers, or a
    `DaskRunner` with --scheduler."""
    keywords = downloader_keywords(options)
    if options.workers > 1:
        from .workers import ProcessRunner

        # --json prints every event; a display needs only those of downloads under way.
        runner = ProcessRunner(
            options.workers, on_event=reporter, every_event=options.json, **keywords
        )
        yield runner.as_completed
        return
    if options.scheduler is not None:
        from ._cli.dask import cluster_runner

        async with cluster_runner(options.scheduler, on_event=reporter, **keywords) as runner:
            yield runner.as_completed
        return
    async with Downloader(**keywords, on_event=reporter) as dl:
        load_cookies_into(dl, options.network)
        try:
            yield dl.as_completed
            reporter.tally.hosts = dl.host_limits()
        finally:
            # Also after Ctrl-C: the cookies the servers set are as good then.
            save_cookies_of(dl, options.network, reporter.warn)


async def _fetch_metalink(options: Options, url: str) -> list[metalink.MetalinkFile]:
    """The files of the Metalink at `url`, fetched with the command's own settings."""
    async with Downloader(**downloader_keywords(options)) as dl:
        load_cookies_into(dl, options.network)
        return await metalink.fetch(url, dl)


async def _items(
    options: Options, readers: list[InputReader], reporter: Reporter
) -> AsyncGenerator[Request, None]:
    """The requests of the command line, then those of each input file, read as needed.

    An entry of an input file that cannot be downloaded is reported as a failed file here;
    the total is told to the reporter once the last input ends.
    """
    count = len(options.requests)
    if not readers and not options.metalink_urls:
        reporter.set_total(count)
    for request in options.requests:
        if options.stdout:
            request = dataclasses.replace(request, sink=StdoutSink(sys.stdout.buffer))
        yield request
    for url in options.metalink_urls:
        try:
            files = await _fetch_metalink(options, url)
        except DownloadError as exc:
            count += 1
            shown = redact(url)
            reporter(Queued(shown, None))
            reporter(Finished(Outcome(url=shown, request=None, error=exc)))
            continue
        count += len(files)
        for file in files:
            yield file.request(options.dest, check_only=options.spider)
    for reader in readers:
        warned: set[str] = set()
        try:
            async for entry in reader.entries():
                count += 1
                for key in entry.ignored:
                    if key not in warned:
                        warned.add(key)
                        reporter.warn(
                            f"{reader.name}:{entry.line}: ignoring the option {key}="
                            f" here and below (known: {', '.join(KNOWN_KEYS)})"
                        )
                try:
                    request = request_for(
                        entry,
                        options.dest,
                        source=reader.name,
                        segments=options.download.segments,
                        check_only=options.spider,
                    )
                except RejectedEntry as exc:
                    url = redact(entry.urls[0]) if entry.urls else ""
                    error = InvalidRequestError(str(exc), url=url)
                    reporter(Queued(url, None))
                    reporter(Finished(Outcome(url=url, request=None, error=error)))
                    continue
                yield request
        except OSError as exc:
            raise InputError(f"cannot read {reader.name}: {exc.strerror or exc}") from exc
    reporter.set_total(count)
