"""Progress bars on a terminal, drawn with rich from the downloader's public events.

One overall line over one line per active transfer; failures and retries are printed above
them as they happen. The overall line counts bytes once every file's size is known (all have
started, each with a length), files otherwise; its text says both, with a percentage, the
speed and the time left. A transfer that receives nothing for a few seconds says it is
stalled, and for how long. Only the command line imports this module, so `import adownload`
never loads rich.

Why rich and not tqdm: tqdm draws one bar per object and stacks several only through fixed
`position=` slots, which leave holes and garbled lines when bars come and go out of order, as
concurrent transfers do; lines printed meanwhile need `tqdm.write` and each bar redraws itself
on every update (or from a monitor thread). rich's `Live` owns one region of the screen: it
redraws the whole group of lines in one write, prints messages above it without tearing, and
can be refreshed from our own task with `auto_refresh=False`, so every bit of drawing stays on
the event loop. It is also a pure-Python wheel with no compiled parts, and it is imported only
when the output is a terminal.

Each line is laid out here for the terminal's width (`layout`, pure and unit-tested): the
name and the bar give way first, then the time left, the speed and the sizes, so that no line
is ever longer than the terminal is wide. A longer line would wrap, and the live display,
which moves the cursor up by the lines it drew, would then leave torn copies behind.

All drawing happens on the event loop: the events update plain counters, and a task redraws
the screen ten times a second; the speeds and stalls are sampled there too, so they move on
when no event comes (a stalled transfer sends none).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from .._model.util import cancel_and_wait, describe_error
from .report import Reporter, Stream, format_size, size_unit, visible

if TYPE_CHECKING:
    from .._model.events import Progress as ProgressEvent
    from .._model.events import Retrying, Started
    from .._model.request import Outcome

__all__ = ["BarsReporter", "Line", "format_left", "layout"]

_REFRESH_INTERVAL = 0.1
#: Seconds of history behind each speed.
_SPEED_WINDOW = 3.0
#: Seconds without a byte after which a transfer shows as stalled.
STALL_AFTER = 3.0
_NAME_WIDTH = 24
_BAR_WIDTH = 30
_MIN_BAR = 6


def format_left(seconds: float) -> str:
    """The time left, one format for every line: `8 s left`, `4 min 2 s left` (below ten
    minutes), `12 min left`, `1 h 3 min left`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s left"
    minutes, secs = divmod(whole, 60)
    if minutes < 10:
        return f"{minutes} min {secs} s left"
    if minutes < 60:
        return f"{minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min left"


@dataclass(frozen=True, slots=True)
class Line:
    """What one line shows, before it is fitted to a width."""

    name: str
    fraction: float | None  # of the bar; None: no bar (the size is not known)
    sizes: str  # "1.0/8.0 MiB", "193.0 MiB/1.1 GiB", or what is known
    speed: str = ""
    left: str = ""  # the time left, or for how long it is stalled
    stalled: bool = False
    indent: str = ""


def layout(line: Line, width: int) -> Text:
    """`line` as text of at most `width` columns. The fields after the bar have columns of
    their own, so that the bars of every line start and end together; what does not fit gives
    way, the least useful first: the bar shrinks to `_MIN_BAR`, then the time left goes, then
    the speed, the sizes and the bar; the name is cut last."""
    percent = ""
    if line.fraction is not None:
        percent = "100%" if line.fraction >= 1 else f"{min(99, int(line.fraction * 100)):>3}%"
    fields = [percent, line.sizes, line.speed, line.left]
    column = min(_NAME_WIDTH, max(10, width // 5 + 2))  # names line up in a column
    kept = len(fields)
    while True:
        room = sum(_FIELD_WIDTHS[:kept]) + 2 * (kept - 1)
        bar = min(_BAR_WIDTH, width - column - room - 2)
        if bar >= _MIN_BAR or kept == 1:
            break
        kept -= 1
    if bar < _MIN_BAR or line.fraction is None:
        bar = 0 if bar < _MIN_BAR else -bar  # no size known: the bar's room stays empty
    shown = [
        field[:size].ljust(size) for field, size in zip(fields[:kept], _FIELD_WIDTHS, strict=False)
    ]
    if line.stalled and kept < 3:
        # Too narrow for the speed's column: a stall still says so, in the last one shown.
        shown[-1] = "stalled"
        bar = max(0, bar - max(0, len("stalled") - _FIELD_WIDTHS[kept - 1]))
    tail = "  ".join(shown).rstrip()
    label = line.indent + line.name
    label_width = max(0, min(column, width - len(tail) - 1 - (abs(bar) + 1 if bar else 0)))
    if len(label) > label_width:
        label = label[: label_width - 1] + "…" if label_width > 1 else ""
    text = Text(no_wrap=True, overflow="crop")
    text.append(label.ljust(label_width), style="" if line.indent else "bold")
    if bar > 0:
        text.append(" ")
        _bar(text, bar, line.fraction or 0.0, line.stalled)
    elif bar < 0:
        text.append(" " * (1 - bar))
    if tail:
        text.append(" ")
        text.append(tail, style="yellow" if line.stalled else "")
    text.truncate(width)
    return text


#: The columns of the fields after the bar: percentage, sizes, speed, time left.
_FIELD_WIDTHS = (4, 16, 11, 15)


def _bar(text: Text, width: int, fraction: float, stalled: bool) -> None:
    halves = round(max(0.0, min(1.0, fraction)) * width * 2)
    full, half = divmod(halves, 2)
    style = "yellow" if stalled else ("green" if full == width else "magenta")
    text.append("━" * full, style=style)
    if half:
        text.append("╸", style=style)
    rest = width - full - half
    if rest:
        text.append("━" * rest, style="grey23")


class _Speed:
    """Bytes per second over the last few seconds, from samples taken at each redraw."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def sample(self, now: float, received: int) -> float | None:
        samples = self._samples
        samples.append((now, received))
        while now - samples[0][0] > _SPEED_WINDOW:
            samples.popleft()
        span = now - samples[0][0]
        return (received - samples[0][1]) / span if span >= 0.5 else None


class _Transfer:
    __slots__ = ("changed", "name", "offset", "received", "shown", "speed", "total")

    def __init__(self, name: str, offset: int, total: int | None, now: float) -> None:
        self.name = name
        self.offset = offset
        self.received = offset
        self.total = total
        self.changed = now  # when the last byte came
        self.speed = _Speed()
        self.shown = True


class BarsReporter(Reporter):
    """The terminal display: live lines on standard error, then the summary."""

    def __init__(self, out: Stream, err: Stream, *, file: TextIO) -> None:
        super().__init__(out, err)
        self.console = Console(file=file, highlight=False)
        # Keep the screen for the overall line, the "more" line and the lines printed above.
        self._max_bars = max(1, min(10, self.console.height - 6))
        self._active: dict[int, _Transfer] = {}
        self._hidden: collections.deque[int] = collections.deque()
        self._received = 0  # bytes received in this run, by every transfer
        self._overall_speed = _Speed()
        self._done_bytes = 0  # the sizes of the files downloaded
        self._started = 0  # files that started or ended without starting
        self._lines: list[Text] = []
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
            self._lines = self.screen(time.monotonic(), self.console.width)
            self._live.refresh()
            await asyncio.sleep(_REFRESH_INTERVAL)

    def _renderable(self) -> RenderableType:
        return Group(*self._lines)

    # --- events -----------------------------------------------------------------------------

    def started(self, event: Started) -> None:
        key = id(event.request)
        if not self._forget(key):
            self._started += 1  # a retry starts the file's line again, not another file
        name = event.path.name if event.path is not None else event.url.rsplit("/", 1)[-1]
        transfer = _Transfer(
            visible(name or event.url), event.offset, event.total, time.monotonic()
        )
        transfer.shown = len(self._active) - len(self._hidden) < self._max_bars
        self._active[key] = transfer
        if not transfer.shown:
            self._hidden.append(key)

    def progress(self, event: ProgressEvent) -> None:
        transfer = self._active.get(id(event.request))
        if transfer is None:
            return
        if event.received > transfer.received:
            self._received += event.received - transfer.received
            transfer.changed = time.monotonic()
        transfer.received = event.received

    def retrying(self, event: Retrying) -> None:
        self._say(
            f"retrying {event.url} in {event.delay:.1f} s"
            f" (attempt {event.attempt} failed: {describe_error(event.error, event.url)})",
            "yellow",
        )

    def warn(self, text: str) -> None:
        self._say(f"adownload: warning: {text}", "yellow")

    def finished(self, outcome: Outcome) -> None:
        key = None if outcome.request is None else id(outcome.request)
        if key is None or not self._forget(key):
            self._started += 1  # ended without starting: skipped, or failed before a body
        if outcome.error is not None:
            self._say(f"failed {outcome.url}: {describe_error(outcome.error, outcome.url)}", "red")
        elif not outcome.skipped:
            self._done_bytes += outcome.size

    def finish(self, *, interrupted: bool) -> None:
        first, *rest = self.tally.summary()
        self._say(first, "bold")
        for line in rest:
            self._say(line, "red")

    def _say(self, text: str, style: str) -> None:
        """A line above the bars, left for the terminal to wrap (a URL stays one piece to copy).
        rich drops some control characters but not ESC: a URL could still recolour the
        terminal or move its cursor, so they are all made visible."""
        self.console.print(Text(visible(text), style=style), soft_wrap=True)

    def _forget(self, key: int) -> bool:
        transfer = self._active.pop(key, None)
        if transfer is None:
            return False
        if key in self._hidden:
            self._hidden.remove(key)
        elif self._hidden:
            self._active[self._hidden.popleft()].shown = True
        return True

    # --- the screen -------------------------------------------------------------------------

    def screen(self, now: float, width: int) -> list[Text]:
        """The live lines at `now`, each fitted to `width` columns."""
        lines = [layout(self._overall_line(now), width)]
        for transfer in self._active.values():
            speed = transfer.speed.sample(now, transfer.received)
            if transfer.shown:
                lines.append(layout(_transfer_line(transfer, speed, now), width))
        if self._hidden:
            lines.append(Text(f"  ... and {len(self._hidden)} more", style="dim"))
        return lines

    def _overall_line(self, now: float) -> Line:
        speed = self._overall_speed.sample(now, self._received)
        done, total = self.tally.done, self.total
        active = list(self._active.values())
        name = f"{done} files" if total is None else f"{done}/{total} files"
        done_bytes = self._done_bytes + sum(t.received for t in active)
        known = (
            total is not None
            and self._started >= total
            and all(t.total is not None for t in active)
        )
        fraction: float | None = None
        left = None
        if known:
            whole = self._done_bytes + sum(t.total or 0 for t in active)
            sizes = _sizes(done_bytes, whole)
            fraction = done_bytes / whole if whole else 1.0
            if speed:
                left = (whole - done_bytes) / speed
        else:
            sizes = format_size(done_bytes)
            if total is not None:
                partial = sum(t.received / t.total for t in active if t.total)
                fraction = min(1.0, (done + partial) / total) if total else 1.0
                left = self._guess_left(total - done, speed)
        if bool(active) and all(now - t.changed >= STALL_AFTER for t in active):
            quiet = now - max(t.changed for t in active)
            return Line(name, fraction, sizes, "stalled", f"for {round(quiet)} s", stalled=True)
        return Line(
            name,
            fraction,
            sizes,
            speed=f"{format_size(speed)}/s" if speed is not None else "",
            left=format_left(left) if left is not None else "",
        )

    def _guess_left(self, remaining: int, speed: float | None) -> float | None:
        """The bytes left of active files, plus the files not started yet at the average size
        of those seen, at the current speed; None while nothing says."""
        if not speed:
            return None
        active = self._active.values()
        if any(t.total is None for t in active):
            return None
        left: float = sum((t.total or 0) - t.received for t in active)
        unstarted = remaining - len(self._active)
        if unstarted > 0:
            sizes = [t.total or 0 for t in active]
            seen = self.tally.downloaded + len(sizes)
            if not seen:
                return None
            left += unstarted * (self._done_bytes + sum(sizes)) / seen
        return left / speed


class MirrorBars(BarsReporter):
    """The live lines for `adownload mirror` on a terminal: the transfers under way, while the
    mirror's own lines (a change, a failure, its summary) print above them through `say`."""

    def finished(self, outcome: Outcome) -> None:
        key = None if outcome.request is None else id(outcome.request)
        if key is None or not self._forget(key):
            self._started += 1
        if outcome.error is None and not outcome.skipped:
            self._done_bytes += outcome.size

    def finish(self, *, interrupted: bool) -> None:
        pass  # the mirror says its own summary

    def say(self, text: str, style: str = "") -> None:
        self._say(text, style)


def _transfer_line(transfer: _Transfer, speed: float | None, now: float) -> Line:
    quiet = now - transfer.changed
    total = transfer.total
    if total:
        sizes = _sizes(transfer.received, total)
        fraction: float | None = transfer.received / total
    else:
        sizes, fraction = format_size(transfer.received), None
    if quiet >= STALL_AFTER:
        # In the speed's column, which stays longer than the time left's on a narrow screen.
        since = f"for {round(quiet)} s"
        return Line(transfer.name, fraction, sizes, "stalled", since, stalled=True, indent="  ")
    left = ""
    if speed and total:
        left = format_left((total - transfer.received) / speed)
    shown = f"{format_size(speed)}/s" if speed is not None else ""
    return Line(transfer.name, fraction, sizes, speed=shown, left=left, indent="  ")


def _sizes(received: float, total: float) -> str:
    """Both in the unit of the whole, which fits the column: `1.0/8.0 MiB`, `0.9/1.2 MiB`."""
    scale, unit = size_unit(total)
    if scale == 1:
        return f"{received:.0f}/{total:.0f} B"
    return f"{received / scale:.1f}/{total / scale:.1f} {unit}"
