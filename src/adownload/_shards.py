"""Cutting a stream of requests into shards for a cluster: pure logic, no Dask, no socket.

A shard holds requests of one origin (scheme, host, port) only. The cluster runs at most
`per_origin` shards of an origin at once, and each shard's downloader opens at most
`max_per_host // per_origin` connections to it, so the downloader's per-host limit holds for
the whole cluster without a lock on the scheduler: a shard never asks anyone before it
connects. `Shards` buffers requests by origin, hands out full shards first, and flushes a
partial one only when asked (the input is slow, or has ended).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from dataclasses import dataclass, field

from ._models import Item, Request, request_for
from ._util import origin_of

__all__ = ["Shard", "Shards", "absolute", "request_of", "share_of"]


def share_of(max_per_host: int, workers: int) -> tuple[int, int]:
    """How an origin's connection limit is split: (shards of it at once, connections each).

    >>> share_of(6, 2)
    (2, 3)
    >>> share_of(1, 4)
    (1, 1)
    >>> share_of(7, 2)
    (2, 3)
    """
    shards = max(1, min(max_per_host, workers))
    return shards, max(1, max_per_host // shards)


@dataclass(slots=True)
class Shard:
    """Requests of one origin, run as one task: `entries` are (index in the input, request)."""

    number: int
    origin: str
    entries: list[tuple[int, Request]]
    #: Indexes whose outcome the caller has had: a rerun's repeats are dropped.
    done: set[int] = field(default_factory=set)

    def request(self, index: int) -> Request | None:
        for number, request in self.entries:
            if number == index:
                return request
        return None


class Shards:
    """Requests in, shards out: full ones as soon as they fill, partial ones on `flush`."""

    def __init__(self, size: int, per_origin: int) -> None:
        if size < 1:
            raise ValueError(f"a shard holds at least 1 request, not {size}")
        self.size = size
        self.per_origin = per_origin
        self._buffers: dict[str, list[tuple[int, Request]]] = {}
        self._ready: collections.deque[Shard] = collections.deque()
        self._running: collections.Counter[str] = collections.Counter()
        self._numbers = 0
        self.buffered = 0  # requests held, in buffers and ready shards

    def add(self, index: int, request: Request) -> None:
        origin = origin_of(request.parsed_url)
        buffer = self._buffers.setdefault(origin, [])
        buffer.append((index, request))
        self.buffered += 1
        if len(buffer) >= self.size:
            self._ready.append(self._shard(origin))

    def flush(self) -> None:
        """Make every partial buffer a shard (the input ended, or is slow)."""
        for origin in list(self._buffers):
            self._ready.append(self._shard(origin))

    def take(self) -> Shard | None:
        """The next shard whose origin has room to run one more, or None; it then counts
        as running until `finished`."""
        for _ in range(len(self._ready)):
            shard = self._ready.popleft()
            if self._running[shard.origin] < self.per_origin:
                self._running[shard.origin] += 1
                self.buffered -= len(shard.entries)
                return shard
            self._ready.append(shard)
        return None

    def finished(self, shard: Shard) -> None:
        self._running[shard.origin] -= 1
        if not self._running[shard.origin]:
            del self._running[shard.origin]

    @property
    def waiting(self) -> bool:
        """Whether requests wait in buffers or ready shards."""
        return bool(self._buffers or self._ready)

    @property
    def partial(self) -> bool:
        """Whether some requests wait in a buffer that is not a shard yet."""
        return bool(self._buffers)

    def _shard(self, origin: str) -> Shard:
        self._numbers += 1
        return Shard(self._numbers, origin, self._buffers.pop(origin))


def request_of(item: Item) -> Request:
    """The `Request` of a URL or a `(url, path)` item, as a worker gets it (no caller's sink)."""
    return request_for(
        item, dest=None, headers=None, existing=None, timeout=None, sink=None, checksum=None,
        max_size=None,
    )  # fmt: skip


def absolute(request: Request) -> Request:
    """`request` with its `path` and `dest` as absolute paths, which mean the same to a worker
    (another process, another machine with the same shared directory)."""
    changes = {
        name: os.path.abspath(value)
        for name in ("path", "dest")
        if (value := getattr(request, name)) is not None and not os.path.isabs(value)
    }
    return dataclasses.replace(request, **changes) if changes else request
