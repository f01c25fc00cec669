"""What the command line prints: lines for logs and pipes, JSON Lines, and the summary.

Every reporter is an `on_event` hook: it sees the downloader's public events and nothing else.
The progress bars for a terminal live in `_cli.progress`, which imports rich; nothing here does,
so a run in a pipe or a cron job starts without it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._disk.files import part_path
from .._disk.state import bytes_held
from .._engine.adaptive import HostLimit
from .._model.events import (
    Event,
    Finished,
    HostLimitChanged,
    Progress,
    Queued,
    Retrying,
    SourceDropped,
    Started,
)
from .._model.util import describe_error
from .output import LibraryLog as LibraryLog
from .output import Stream as Stream
from .output import format_seconds as format_seconds
from .output import format_size as format_size
from .output import is_terminal as is_terminal
from .output import size_unit as size_unit
from .output import standard_streams as standard_streams
from .output import visible as visible

if TYPE_CHECKING:
    from .._model.request import Outcome

__all__ = ["LinesReporter", "Reporter", "Stream", "Tally", "visible"]

#: Failures kept for the summary; the rest are counted (and were printed as they happened).
MAX_LISTED_FAILURES = 20


@dataclass
class Tally:
    """What happened so far, for the summary and the exit status."""

    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: With --adaptive: what the downloader learnt of each host, told at the end.
    hosts: dict[str, HostLimit] = field(default_factory=dict)
    #: --spider: files are checked, not downloaded.
    spider: bool = False
    #: Downloads cut short by an interruption, and the bytes they had fetched in this run.
    cut_short: int = 0
    cut_short_bytes: int = 0

    @property
    def done(self) -> int:
        return self.downloaded + self.skipped + self.failed

    def add(self, outcome: Outcome) -> None:
        # What this run fetched: a continued file's earlier bytes would inflate the speed.
        if not self.spider:
            self.bytes += max(0, outcome.size - outcome.resumed_from)
        if outcome.error is not None:
            self.failed += 1
            if len(self.failures) < MAX_LISTED_FAILURES:
                self.failures.append((outcome.url, describe_error(outcome.error, outcome.url)))
        elif outcome.skipped:
            self.skipped += 1
        else:
            self.downloaded += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> list[str]:
        """The closing lines: counts, bytes, time and speed, then which files failed and why."""
        elapsed = self.elapsed()
        if self.spider:
            lines = [
                f"{self.downloaded} found, {self.failed} failed (checked, nothing downloaded)"
                f" in {format_seconds(elapsed)}"
            ]
        else:
            fetched = self.bytes + self.cut_short_bytes
            speed = fetched / elapsed if elapsed > 0 else 0.0
            short = f", {self.cut_short} cut short" if self.cut_short else ""
            lines = [
                f"{self.downloaded} downloaded, {self.skipped} skipped, {self.failed} failed"
                f"{short}: {format_size(fetched)} in {format_seconds(elapsed)}"
                f" ({format_size(speed)}/s)"
            ]
        lines.extend(host_lines(self.hosts))
        if self.failed:
            lines.append("failed:")
            lines.extend(f"  {url}: {why}" for url, why in self.failures)
            if self.failed > len(self.failures):
                lines.append(f"  ... and {self.failed - len(self.failures)} more, shown above")
        return lines


class Reporter:
    """The base of every display: dispatches events and keeps the `Tally`.

    Call it with each event (it is the downloader's `on_event` hook); `set_total` says how many
    files there are once that is known, and `finish` prints the end of the story.
    """

    def __init__(self, out: Stream, err: Stream) -> None:
        self.out = out
        self.err = err
        self.tally = Tally()
        self.total: int | None = None
        # The target of each download under way, to say which .part files an interrupted run
        # leaves behind; keyed by the Request, as every event of a download carries it.
        self._targets: dict[int, Path] = {}
        # Bytes each download under way fetched in this run: (its offset, received so far).
        self._fetching: dict[int, tuple[int, int]] = {}

    def __call__(self, event: Event) -> None:
        match event:
            case Queued():
                self.queued(event)
            case Started(request=request, path=path, offset=offset):
                if path is not None:
                    self._targets[id(request)] = path
                self._fetching[id(request)] = (offset, offset)
                self.started(event)
            case Progress(request=request, received=received):
                key = id(request)
                if key in self._fetching:
                    self._fetching[key] = (self._fetching[key][0], received)
                self.progress(event)
            case Retrying():
                self.retrying(event)
            case HostLimitChanged():
                self.host_limit(event)
            case SourceDropped():
                self.source_dropped(event)
            case Finished(outcome=outcome):
                if outcome.request is not None:
                    self._targets.pop(id(outcome.request), None)
                    self._fetching.pop(id(outcome.request), None)
                self.tally.add(outcome)
                self.finished(outcome)

    def set_total(self, total: int) -> None:
        self.total = total

    def unfinished(self) -> list[Path]:
        """The targets of the downloads that started and never finished (an interrupted run)."""
        return list(self._targets.values())

    def count_cut_short(self) -> None:
        """An interruption: the downloads under way count in the summary, with the bytes they
        fetched in this run (what their `.part` holds past its start, once it is closed)."""
        fetched = 0
        for key, (offset, received) in self._fetching.items():
            target = self._targets.get(key)
            kept = bytes_held(part_path(target)) if target is not None else 0
            fetched += max(0, max(kept, received) - offset)
        self.tally.cut_short = len(self._fetching)
        self.tally.cut_short_bytes = fetched

    def warn(self, text: str) -> None:
        """A problem that does not stop a download (an option ignored in an input file)."""
        self.err.line(f"adownload: warning: {text}")

    @contextlib.asynccontextmanager
    async def showing(self) -> AsyncIterator[None]:
        """Around the downloads: a live display runs while this is open."""
        yield

    def queued(self, event: Queued) -> None:
        pass

    def started(self, event: Started) -> None:
        pass

    def progress(self, event: Progress) -> None:
        pass

    def retrying(self, event: Retrying) -> None:
        self.err.line(
            f"retrying {event.url} in {event.delay:.1f} s"
            f" (attempt {event.attempt} failed: {describe_error(event.error, event.url)})"
        )

    def host_limit(self, event: HostLimitChanged) -> None:
        pass

    def source_dropped(self, event: SourceDropped) -> None:
        self.err.line(f"not using {event.source} for {event.url} any more: {event.reason}")

    def finished(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            self.err.line(f"failed {outcome.url}: {describe_error(outcome.error, outcome.url)}")

    def finish(self, *, interrupted: bool) -> None:
        for line in self.tally.summary():
            self.err.line(line)


class LinesReporter(Reporter):
    """For pipes and logs: one line per finished file, no control characters.

    Files in place go to standard output, failures to standard error as they happen; the
    summary follows on standard error. `quiet` keeps only the failures.
    """

    def __init__(self, out: Stream, err: Stream, *, quiet: bool) -> None:
        super().__init__(out, err)
        self.quiet = quiet

    def retrying(self, event: Retrying) -> None:
        if not self.quiet:
            super().retrying(event)

    def warn(self, text: str) -> None:
        if not self.quiet:
            super().warn(text)

    def host_limit(self, event: HostLimitChanged) -> None:
        if not self.quiet:
            self.err.line(host_change_line(event))

    def source_dropped(self, event: SourceDropped) -> None:
        if not self.quiet:
            super().source_dropped(event)

    def finished(self, outcome: Outcome) -> None:
        super().finished(outcome)
        if self.quiet or outcome.error is not None:
            return
        if self.tally.spider:
            self.out.line(f"found {outcome.url} ({found(outcome)})")
        elif outcome.skipped:
            # A skip after an answer: 304, or a 200 whose copy is not newer (-N).
            why = "not modified" if outcome.status in (200, 304) else "already there"
            self.out.line(f"skipped {outcome.path} ({why})")
        elif outcome.path is None:
            self.out.line(
                f"wrote {outcome.url} to standard output ({format_size(outcome.size)}"
                f" in {format_seconds(outcome.elapsed)})"
            )
        else:
            self.out.line(
                f"saved {outcome.path} ({format_size(outcome.size)}"
                f" in {format_seconds(outcome.elapsed)}{_from_sources(outcome)})"
            )

    def finish(self, *, interrupted: bool) -> None:
        if not self.quiet:
            super().finish(interrupted=interrupted)
        elif self.tally.failed:
            self.err.line(f"{self.tally.failed} of {self.tally.done} downloads failed")


def _from_sources(outcome: Outcome) -> str:
    """ ", from 3 mirrors" for a file that came from several URLs at once, else nothing."""
    count = len(outcome.sources)
    return f", from {count} mirrors" if count > 1 else ""


def found(outcome: Outcome) -> str:
    """What --spider says of a file that exists: its status, and its size when announced."""
    said = [f"HTTP {outcome.status}" if outcome.status is not None else "exists"]
    if outcome.size:
        said.append(format_size(outcome.size))
    return ", ".join(said)


def host_change_line(event: HostLimitChanged) -> str:
    """The line for a change of a host's adaptive limit."""
    return (
        f"{event.url}: {event.limit} connections at most now (was {event.previous}): {event.reason}"
    )


def host_lines(hosts: dict[str, HostLimit]) -> list[str]:
    """The summary's lines for what adaptive limits learnt, a host a line."""
    return [
        f"{origin}: {host.limit} connections at the end (between {host.lowest} and"
        f" {host.highest}; cut {host.cuts} times, {host.throttled} answers 429 or 503)"
        for origin, host in hosts.items()
    ]
