"""Which bytes each connection of a segmented download fetches next.

A `Layout` holds the ranges of one file still to fetch. At the start they are cut into up to
`Segments.count` pieces of at least `Segments.min_size` bytes; each connection takes a piece,
and a connection that runs out of pieces takes over the second half of the segment that would
otherwise finish last (the slowest, by its remaining bytes over its speed), as aria2 does, as
long as both halves keep at least `min_size` bytes. With piece hashes every cut falls on a
piece boundary (`align`), so each piece comes from one request, and a bad piece can be fetched
again on its own (`redo`). The I/O lives in `_engine/segmented.py`; this module
only does the bookkeeping, and every method is synchronous, so a split can never land between a
segment's check of its end and its claim of the bytes it is about to write.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from .._disk.state import merge

if TYPE_CHECKING:
    from .._disk.sinks import FileSink
    from .sources import Source


#: Seconds of a segment's own speed that no cut takes from it: those bytes may be on their way
#: already (in socket buffers), and a cut would fetch them twice.
_IN_FLIGHT = 0.5


class Segment:
    """One range `[start, end)` that one connection fetches; `end` shrinks when split."""

    __slots__ = (
        "credited",
        "credited_at",
        "end",
        "position",
        "reserve",
        "since",
        "since_position",
        "sink",
        "source",
        "start",
        "written",
    )

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        #: The next byte to receive: bytes before it are claimed (handed to the sink).
        self.position = start
        #: Bytes before this offset are in the file (not only in a sink's buffer).
        self.written = start
        self.sink: FileSink | None = None
        # Where and when the current request began, for the speed estimate.
        self.since = time.monotonic()
        self.since_position = start
        #: The source of the current request, and the bytes of it credited to the source.
        self.source: Source | None = None
        self.credited = start
        self.credited_at = self.since
        #: Bytes past `position` no split may take: what a kernel copy may hold in its pipe,
        #: while one runs (it writes straight to the file: `position` is then in the file).
        self.reserve = 0

    @property
    def remaining(self) -> int:
        return self.end - self.position

    def restart(self) -> None:
        """A new request continues the segment from its last written byte."""
        self.position = self.written
        self.since = time.monotonic()
        self.since_position = self.position

    def durable(self) -> int:
        """The end of the bytes of this segment known to be in the file."""
        if self.reserve:
            return max(self.written, self.position)  # the kernel copy writes as it claims
        sink = self.sink
        if sink is not None and sink.written_to is not None:
            return max(self.written, min(sink.written_to, self.end))
        return self.written

    def rate(self, now: float) -> float | None:
        """Bytes per second of its current request; None before there is a measure."""
        elapsed = now - self.since
        received = self.position - self.since_position
        if received <= 0 or elapsed < 0.05:
            return None
        return received / elapsed

    def seconds_left(self, now: float) -> float:
        elapsed = now - self.since
        received = self.position - self.since_position
        if received <= 0 or elapsed <= 0:
            return float("inf")
        return self.remaining / (received / elapsed)

    def __repr__(self) -> str:
        return f"Segment({self.start}, {self.position}, {self.end})"


class Layout:
    """The ranges of one file still to fetch, and the segments at work on them."""

    __slots__ = ("active", "align", "done", "min_size", "pending")

    def __init__(
        self, missing: list[tuple[int, int]], count: int, min_size: int, align: int = 1
    ) -> None:
        self.min_size = min_size
        self.align = align
        self.pending: deque[tuple[int, int]] = deque(split(missing, count, min_size, align))
        self.active: list[Segment] = []
        self.done: list[tuple[int, int]] = []

    @property
    def finished(self) -> bool:
        return not self.pending and not self.active

    def take(self, start: int) -> Segment:
        """Make the pending piece that begins at `start` a segment (the first response's)."""
        for index, (begin, end) in enumerate(self.pending):
            if begin == start:
                del self.pending[index]
                segment = Segment(begin, end)
                self.active.append(segment)
                return segment
        raise ValueError(f"no pending range starts at {start}")

    def next(self, rate: float | None = None) -> Segment | None:
        """Work for an idle connection: a pending piece, else the end of the segment that
        would finish last (of those whose speed is known, and which would not end within
        `_IN_FLIGHT` seconds anyway). Without `rate` it takes half of that segment (both
        halves at least `min_size`); with the idle connection's expected `rate` (bytes per
        second), the share that lets both end at once, so a fast mirror takes most of a slow
        one's rest (its own share at least `min_size`: a new request must be worth it)."""
        if self.pending:
            segment = Segment(*self.pending.popleft())
            self.active.append(segment)
            return segment
        now = time.monotonic()
        best: tuple[float, int, Segment, int] | None = None
        for candidate in self.active:
            own = candidate.rate(now)
            if own is None:
                continue  # too young to tell: `young()` says to ask again soon
            if candidate.remaining < own * _IN_FLIGHT:
                continue  # it ends soon anyway, and its rest may be on its way already
            if rate:
                # At least what it brings in half a second: the bytes already on their way
                # (in socket buffers) past the cut would be lost.
                keep = max(int(candidate.remaining * own / (own + rate)), int(own * _IN_FLIGHT))
            elif candidate.remaining >= 2 * self.min_size:
                keep = max(candidate.remaining // 2, int(own * _IN_FLIGHT))
            else:
                continue
            cut = _round_up(candidate.position + max(keep, candidate.reserve), self.align)
            if candidate.end - cut < self.min_size:
                continue
            key = (candidate.seconds_left(now), candidate.remaining)
            if best is None or key > best[:2]:
                best = (*key, candidate, cut)
        if best is None:
            return None
        _, _, slowest, cut = best
        segment = Segment(cut, slowest.end)
        slowest.end = cut
        self.active.append(segment)
        return segment

    def young(self) -> bool:
        """Whether a segment big enough to cut is too young for its speed to be known: a
        connection without work waits for it rather than cut it blind."""
        now = time.monotonic()
        return any(s.remaining >= 2 * self.min_size and s.rate(now) is None for s in self.active)

    def finish(self, segment: Segment) -> None:
        """`segment` is complete and its bytes are written."""
        self.active.remove(segment)
        self.done.append((segment.start, segment.end))

    def redo(self, start: int, end: int) -> None:
        """Bytes `[start, end)`, written already, are bad: fetch them again, first."""
        self.done = [
            (a, b)
            for done_start, done_end in self.done
            for a, b in ((done_start, min(done_end, start)), (max(done_start, end), done_end))
            if a < b
        ]
        for segment in self.active:
            if segment.start < end and start < segment.position:
                # Its bytes before the bad ones are done; it goes on after them.
                if segment.start < start:
                    self.done.append((segment.start, start))
                segment.start = max(segment.start, min(end, segment.position))
        self.pending.appendleft((start, end))

    def ranges(self) -> list[tuple[int, int]]:
        """The byte ranges known to be in the file, merged."""
        parts = list(self.done)
        parts.extend((s.start, s.durable()) for s in self.active if s.durable() > s.start)
        return merge(parts)

    def received(self) -> int:
        """Bytes claimed so far by the segments of this layout (done ones in full)."""
        done = sum(end - start for start, end in self.done)
        return done + sum(s.position - s.start for s in self.active)


def split(
    missing: list[tuple[int, int]], count: int, min_size: int, align: int = 1
) -> list[tuple[int, int]]:
    """Cut `missing` into about `count` pieces, none below `min_size` unless a range is,
    each cut on a multiple of `align`."""
    total = sum(end - start for start, end in missing)
    piece = max(min_size, -(-total // max(1, count)))
    pieces: list[tuple[int, int]] = []
    for start, end in missing:
        cut = start
        while end - cut >= piece + min_size:
            next_cut = _round_up(cut + piece, align)
            if next_cut >= end:
                break
            pieces.append((cut, next_cut))
            cut = next_cut
        pieces.append((cut, end))
    return pieces


def _round_up(offset: int, align: int) -> int:
    return -(-offset // align) * align
