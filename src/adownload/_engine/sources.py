"""The sources of one segmented download: the URL and the mirrors that serve its segments at
once, ranked by the throughput each one shows while the file downloads.

Bookkeeping only, and synchronous (as `_engine.segments.Layout`): `_engine.segmented` asks `pick()`
for the source of each request, `credit()`s it with the bytes it brings, and `drop()`s a source that
failed or disagreed about the file. A source that sent a bad piece gets a strike: it is picked only
when no clean source is left, and a second strike drops it. The choice (aria2c's adaptive selector,
in spirit): a source nobody has measured yet first, so each is tried once; then the one with the
best speed per connection so far; the caller's order (a Metalink's priorities) breaks ties.
`_engine.segmented` credits each source with its bytes as they arrive, so the ranking follows the
download as it goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yarl import URL

from .._model.util import redact

if TYPE_CHECKING:
    from .._disk.state import PartState

__all__ = ["Source", "Sources"]


class Source:
    """One URL of the file and what this download learnt of it."""

    __slots__ = (
        "active",
        "busy",
        "dropped",
        "origin",
        "rank",
        "received",
        "strikes",
        "url",
        "validators",
    )

    def __init__(self, url: URL, rank: int) -> None:
        self.origin = url  # as given: asked again when a redirect target expires
        self.url = url  # where requests go: the final URL of its last answer
        self.rank = rank  # 0 for the URL itself, then the mirrors in the caller's order
        self.active = 0  # requests of this download on it now
        self.received = 0  # bytes it delivered to this download
        self.busy = 0.0  # seconds its requests ran, summed over connections
        self.strikes = 0  # bad pieces it sent
        self.dropped: str | None = None  # why it serves this download no more
        #: Its own validators (from its first answer), for If-Range to it; None: not met yet.
        self.validators: PartState | None = None

    def speed(self) -> float | None:
        """Bytes per second per connection so far; None before a request of it ended."""
        if self.busy <= 0:
            return None
        return self.received / self.busy

    def __repr__(self) -> str:
        return f"Source({self.url!s}, rank={self.rank})"


class Sources:
    """The sources of one file, best first when asked."""

    __slots__ = ("all",)

    def __init__(self, urls: list[URL]) -> None:
        self.all = [Source(url, rank) for rank, url in enumerate(urls)]

    @property
    def usable(self) -> list[Source]:
        return [source for source in self.all if source.dropped is None]

    def pick(self, room: int) -> Source | None:
        """The source for the next request: among those with fewer than `room` requests of
        this download (any usable one when all are full), the best; None when none is left."""
        usable = self.usable
        if not usable:
            return None
        free = [source for source in usable if source.active < room] or usable
        return min(free, key=_preference)

    def credit(self, source: Source, received: int, seconds: float) -> None:
        """`source` delivered `received` more bytes over `seconds` of one connection's time."""
        source.received += received
        source.busy += seconds

    def drop(self, source: Source, why: str) -> bool:
        """`source` serves this download no more; whether another one still does."""
        if source.dropped is None:
            source.dropped = why
        return bool(self.usable)

    def strike(self, source: Source) -> bool:
        """`source` sent a bad piece; True when that was its second, and it should be
        dropped (the caller drops it, unless it is the last one left, and says so)."""
        source.strikes += 1
        return source.strikes >= 2

    def shares(self) -> list[tuple[str, int]]:
        """(URL without userinfo, bytes) of every source that delivered bytes, in the
        caller's order."""
        return [(redact(str(s.origin)), s.received) for s in self.all if s.received]


def _preference(source: Source) -> tuple[bool, int, float, int]:
    speed = source.speed()
    # Unmeasured: tried first, the least busy first. Measured: the best speed per connection.
    # A server that caps its total shows it here, since each connection it has gets less, so
    # connections move on to another; one that caps each connection keeps its speed and gets
    # them all (up to the host's connections).
    expected = float("inf") if speed is None else speed
    return (source.strikes > 0, source.active if speed is None else 0, -expected, source.rank)
