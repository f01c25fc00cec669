"""Cutting a stream of requests into shards for a cluster: pure logic, no Dask, no socket.

A shard holds requests of one origin (scheme, host, port) only. The cluster runs at most
`per_origin` shards of an origin at once, and each shard's downloader opens at most
`max_per_host // per_origin` connections to it, so the downloader's per-host limit holds for
the whole cluster without a lock on the scheduler: a shard never asks anyone before it
connects. `Shards` buffers requests by origin, hands out full shards first, and flushes a
partial one only when asked (the input is slow, or has ended).

Two requests that write one file (by whatever spelling: a `path`, or a URL's name in a
directory) never run at once in two shards, where they would race on one `.part`: the second
waits until the shard of the first has finished and is handed back to the caller
(`finished`), which refuses it as one process would when the first saved the file, or puts
it back to run (`put_back`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from .._disk.files import name_from_url
from .._model.request import Item, Request, request_for
from .._model.util import origin_of

__all__ = ["Shard", "Shards", "absolute", "final_path", "request_of", "share_of"]


def share_of(max_per_host: int, workers: int) -> tuple[int, int]:
    """How an origin's connection limit is split: (shards of it at once, connections each).

    ```pycon
    >>> share_of(6, 2)
    (2, 3)
    >>> share_of(1, 4)
    (1, 1)
    >>> share_of(7, 2)
    (2, 3)
    ```
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
    """Requests in, shards out: full ones as soon as they fill, partial ones on `flush`.
    `dest` is the workers' directory for requests that name none (see `final_path`)."""

    def __init__(self, size: int, per_origin: int, dest: str | os.PathLike[str] = ".") -> None:
        if size < 1:
            raise ValueError(f"a shard holds at least 1 request, not {size}")
        self.size = size
        self.per_origin = per_origin
        self._dest = dest
        self._buffers: dict[str, list[tuple[int, Request]]] = {}
        self._ready: collections.deque[Shard] = collections.deque()
        self._running: collections.Counter[str] = collections.Counter()
        self._numbers = 0
        self.buffered = 0  # requests held, in buffers, ready shards and waiting for a file
        #: The file each held or running request writes: who holds it (an origin's buffer,
        #: or a shard's number) and how many of its requests.
        self._claims: dict[str, list[Any]] = {}
        #: Requests whose file another buffer or shard holds, by that file.
        self._deferred: dict[str, list[tuple[int, Request]]] = {}

    def add(self, index: int, request: Request) -> None:
        self.buffered += 1
        self._add(index, request)

    def _add(self, index: int, request: Request) -> None:
        origin = origin_of(request.parsed_url)
        path = final_path(request, self._dest)
        claim = self._claims.get(path)
        if claim is not None and claim[0] != origin:
            self._deferred.setdefault(path, []).append((index, request))
            return
        if claim is None:
            self._claims[path] = [origin, 1]
        else:
            claim[1] += 1
        buffer = self._buffers.setdefault(origin, [])
        buffer.append((index, request))
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

    def finished(self, shard: Shard) -> list[tuple[int, Request]]:
        """`shard` ended: its origin has room again, and its files are free. The requests
        that waited for those files, which the caller runs with `put_back` (or settles itself
        and counts off with `settled`)."""
        self._running[shard.origin] -= 1
        if not self._running[shard.origin]:
            del self._running[shard.origin]
        released: list[tuple[int, Request]] = []
        for _, request in shard.entries:
            path = final_path(request, self._dest)
            claim = self._claims[path]
            claim[1] -= 1
            if not claim[1]:
                del self._claims[path]
                released.extend(self._deferred.pop(path, ()))
        return released

    def put_back(self, entries: list[tuple[int, Request]]) -> None:
        """Requests `finished` released, as shards at once (they waited long enough)."""
        origins = set()
        for index, request in entries:
            self._add(index, request)
            origins.add(origin_of(request.parsed_url))
        for origin in origins:
            if origin in self._buffers:
                self._ready.append(self._shard(origin))

    def settled(self, count: int) -> None:
        """`count` released requests were settled by the caller, not put back."""
        self.buffered -= count

    @property
    def waiting(self) -> bool:
        """Whether requests wait in buffers, ready shards, or for a file another holds."""
        return bool(self._buffers or self._ready or self._deferred)

    @property
    def partial(self) -> bool:
        """Whether some requests wait in a buffer that is not a shard yet."""
        return bool(self._buffers)

    def _shard(self, origin: str) -> Shard:
        self._numbers += 1
        entries = self._buffers.pop(origin)
        for _, request in entries:
            self._claims[final_path(request, self._dest)][0] = self._numbers
        return Shard(self._numbers, origin, entries)


def final_path(request: Request, dest: str | os.PathLike[str]) -> str:
    """The absolute path `request` writes, whatever spelled it: its `path`, else its URL's
    name in its `dest`, else in `dest` (the runner's). Two requests of one file have one.

    ```pycon
    >>> final_path(Request("http://h/a/f.zip", dest="/d"), "/x")
    '/d/f.zip'
    >>> final_path(Request("http://h/g.zip", "/d/./f.zip"), "/x")
    '/d/f.zip'
    ```
    """
    path = request.path
    if path is None:
        path = os.path.join(request.dest or dest, name_from_url(request.parsed_url))
    return os.path.abspath(path)


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
