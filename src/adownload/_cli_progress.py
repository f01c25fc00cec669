"""Progress bars on a terminal, drawn with rich from the downloader's public events.

One overall bar (files done of the total when known, bytes, speed, time left) over one bar per
active transfer; failures and retries are printed above the bars as they happen. Only the
command line imports this module, so `import adownload` never loads rich.

Why rich and not tqdm: tqdm draws one bar per object and stacks several only through fixed
`position=` slots, which leave holes and garbled lines when bars come and go out of order, as
concurrent transfers do; lines printed meanwhile need `tqdm.write` and each bar redraws itself
on every update (or from a monitor thread). rich's `Live` owns one region of the screen: it
redraws the whole group of bars in one write, prints messages above it without tearing, keeps
to the terminal's width, and can be refreshed from our own task with `auto_refresh=False`, so
every bit of drawing stays on the event loop. It is also a pure-Python wheel with no compiled
parts, and it is imported only when the output is a terminal.

All drawing happens on the event loop: the events update plain counters, and a task redraws
the screen ten times a second (rich's own refresh thread would read those counters while the
loop changes them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column
from rich.text import Text

from ._cli_report import (
    Reporter,
    Stream,
    describe_error,
    format_seconds,
    format_size,
    visible,
)
from ._events import Progress as ProgressEvent
from ._events import Retrying, Started
from ._models import Outcome
from ._util import cancel_and_wait

__all__ = ["BarsReporter"]

_REFRESH_INTERVAL = 0.1
#: Seconds of history behind the overall speed.
_SPEED_WINDOW = 5.0
_NAME_WIDTH = 24
_BAR_WIDTH = 30


class _Transfer:
    __slots__ = ("received", "task", "total")

    def __init__(self, task: TaskID, received: int, total: int | None) -> None:
        self.task = task
        self.received = received
        self.total = total


class BarsReporter(Reporter):
    """The terminal display: live bars on standard error, then the summary."""

    def __init__(self, out: Stream, err: Stream, *, file: TextIO) -> None:
        super().__init__(out, err)
        self.console = Console(file=file, highlight=False)
        self._overall = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(width=_NAME_WIDTH)),
            BarColumn(bar_width=_BAR_WIDTH),
            TextColumn("{task.fields[stats]}"),
            console=self.console,
            auto_refresh=False,
        )
        self._overall_task = self._overall.add_task("0 files", total=None, stats="")
        self._files = Progress(
            TextColumn(
                "  {task.description}",
                markup=False,
                table_column=Column(width=_NAME_WIDTH, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=_BAR_WIDTH),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            auto_refresh=False,
        )
        self._more = Text("", style="dim")
        # Keep the screen for the overall bar, the "more" line and the lines printed above.
        self._max_bars = max(1, min(10, self.console.height - 6))
        self._active: dict[int, _Transfer] = {}
        self._hidden: collections.deque[int] = collections.deque()
        self._received = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._downloaded_bytes = 0
        self._live = Live(
            console=self.console,
            auto_refresh=False,
            transient=True,
            get_renderable=self._renderable,
        )

    @contextlib.asynccontextmanager
    async def showing(self) -> AsyncIterator[None]:
        self._live.start()
        refresher = asyncio.create_task(self._refresh_forever())
        try:
            yield
        finally:
            await cancel_and_wait(refresher)
            self._live.stop()

    async def _refresh_forever(self) -> None:
        while True:
            self._update_overall()
            self._live.refresh()
            await asyncio.sleep(_REFRESH_INTERVAL)

    def _renderable(self) -> RenderableType:
        hidden = len(self._hidden)
        self._more.plain = f"  ... and {hidden} more" if hidden else ""
        return (
            Group(self._overall, self._files, self._more)
            if hidden
            else Group(self._overall, self._files)
        )

    # --- events -----------------------------------------------------------------------------

    def started(self, event: Started) -> None:
        key = id(event.request)
        self._forget(key)  # a retry starts the file's bar again
        name = event.path.name if event.path is not None else event.url.rsplit("/", 1)[-1]
        shown = len(self._active) - len(self._hidden) < self._max_bars
        task = self._files.add_task(
            visible(name or event.url), total=event.total, completed=event.offset, visible=shown
        )
        self._active[key] = _Transfer(task, event.offset, event.total)
        if not shown:
            self._hidden.append(key)

    def progress(self, event: ProgressEvent) -> None:
        transfer = self._active.get(id(event.request))
        if transfer is None:
            return
        self._received += max(0, event.received - transfer.received)
        transfer.received = event.received
        self._files.update(transfer.task, completed=event.received)

    def retrying(self, event: Retrying) -> None:
        self._say(
            f"retrying {event.url} in {event.delay:.1f} s"
            f" (attempt {event.attempt} failed: {describe_error(event.error, event.url)})",
            "yellow",
        )

    def warn(self, text: str) -> None:
        self._say(f"adownload: warning: {text}", "yellow")

    def finished(self, outcome: Outcome) -> None:
        if outcome.request is not None:
            self._forget(id(outcome.request))
        if outcome.error is not None:
            self._say(f"failed {outcome.url}: {describe_error(outcome.error, outcome.url)}", "red")
        elif not outcome.skipped:
            self._downloaded_bytes += outcome.size

    def finish(self, *, interrupted: bool) -> None:
        first, *rest = self.tally.summary()
        self._say(first, "bold")
        for line in rest:
            self._say(line, "red")

    def _say(self, text: str, style: str) -> None:
        """A line above the bars. rich drops some control characters but not ESC: a URL could
        still recolour the terminal or move its cursor, so they are all made visible."""
        self.console.print(Text(visible(text), style=style))

    def _forget(self, key: int) -> None:
        transfer = self._active.pop(key, None)
        if transfer is None:
            return
        self._files.remove_task(transfer.task)
        if key in self._hidden:
            self._hidden.remove(key)
        elif self._hidden:
            shown = self._hidden.popleft()
            self._files.update(self._active[shown].task, visible=True)

    # --- the overall bar --------------------------------------------------------------------

    def _update_overall(self) -> None:
        now = time.monotonic()
        samples = self._samples
        samples.append((now, self._received))
        while now - samples[0][0] > _SPEED_WINDOW:
            samples.popleft()
        span = now - samples[0][0]
        speed = (self._received - samples[0][1]) / span if span >= 0.5 else None

        done = self.tally.done
        stats = [format_size(self._received)]
        if speed is not None:
            stats.append(f"{format_size(speed)}/s")
        total = self.total
        if total is None:
            self._overall.update(self._overall_task, description=f"{done} files")
        else:
            partial = sum(t.received / t.total for t in self._active.values() if t.total)
            fraction = min(1.0, (done + partial) / total) if total else 1.0
            self._overall.update(
                self._overall_task,
                description=f"{done}/{total} files",
                total=1000,
                completed=round(fraction * 1000),
            )
            left = self._seconds_left(total - done, speed)
            if left is not None:
                stats.append(f"{format_seconds(left)} left")
        self._overall.update(self._overall_task, stats="  ".join(stats))

    def _seconds_left(self, remaining: int, speed: float | None) -> float | None:
        """A guess: the bytes left of active files, plus the files not started yet at the
        average size of those seen, at the current speed."""
        if not speed:
            return None
        active = self._active.values()
        if any(t.total is None for t in active):
            return None
        left: float = sum(t.total - t.received for t in active if t.total is not None)
        unstarted = remaining - len(self._active)
        if unstarted > 0:
            sizes = [t.total for t in active if t.total is not None]
            seen = self.tally.downloaded + len(sizes)
            if not seen:
                return None
            average = (self._downloaded_bytes + sum(sizes)) / seen
            left += unstarted * average
        return left / speed
