"""Which bytes each connection of a segmented download fetches next.

A `Layout` holds the ranges of one file still to fetch. At the start they are cut into up to
`Segments.count` pieces of at least `Segments.min_size` bytes; each connection takes a piece,
and a connection that runs out of pieces takes over the second half of the segment that would
otherwise finish last (the slowest, by its remaining bytes over its speed), as aria2 does, as
long as both halves keep at least `min_size` bytes. The I/O lives in `_transfer.py`; this module
only does the bookkeeping, and every method is synchronous, so a split can never land between a
segment's check of its end and its claim of the bytes it is about to write.
"""

from __future__ import annotations

import time
from collections import deque

from ._sinks import FileSink
from ._state import merge


class Segment:
    """One range `[start, end)` that one connection fetches; `end` shrinks when split."""

    __slots__ = ("end", "position", "since", "since_position", "sink", "start", "written")

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
        sink = self.sink
        if sink is not None and sink.written_to is not None:
            return max(self.written, min(sink.written_to, self.end))
        return self.written

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

    __slots__ = ("active", "done", "min_size", "pending")

    def __init__(self, missing: list[tuple[int, int]], count: int, min_size: int) -> None:
        self.min_size = min_size
        self.pending: deque[tuple[int, int]] = deque(split(missing, count, min_size))
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

    def next(self) -> Segment | None:
        """Work for an idle connection: a pending piece, else half of the slowest segment."""
        if self.pending:
            segment = Segment(*self.pending.popleft())
            self.active.append(segment)
            return segment
        now = time.monotonic()
        candidates = [s for s in self.active if s.remaining >= 2 * self.min_size]
        if not candidates:
            return None
        slowest = max(candidates, key=lambda s: (s.seconds_left(now), s.remaining))
        middle = slowest.position + slowest.remaining // 2
        segment = Segment(middle, slowest.end)
        slowest.end = middle
        self.active.append(segment)
        return segment

    def finish(self, segment: Segment) -> None:
        """`segment` is complete and its bytes are written."""
        self.active.remove(segment)
        self.done.append((segment.start, segment.end))

    def ranges(self) -> list[tuple[int, int]]:
        """The byte ranges known to be in the file, merged."""
        parts = list(self.done)
        parts.extend((s.start, s.durable()) for s in self.active)
        return merge(parts)

    def received(self) -> int:
        """Bytes claimed so far by the segments of this layout (done ones in full)."""
        done = sum(end - start for start, end in self.done)
        return done + sum(s.position - s.start for s in self.active)


def split(missing: list[tuple[int, int]], count: int, min_size: int) -> list[tuple[int, int]]:
    """Cut `missing` into about `count` pieces, none below `min_size` unless a range is."""
    total = sum(end - start for start, end in missing)
    piece = max(min_size, -(-total // max(1, count)))
    pieces: list[tuple[int, int]] = []
    for start, end in missing:
        cut = start
        while end - cut >= piece + min_size:
            pieces.append((cut, cut + piece))
            cut += piece
        pieces.append((cut, end))
    return pieces
