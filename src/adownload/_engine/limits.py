"""Admission control: how many transfers and connections run at once, how fast they read, and
how slow they may get (`SpeedFloor`, `Timeout.min_speed`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar

from yarl import URL

from .._model.errors import StallError
from .._model.events import Event, HostLimitChanged
from .adaptive import KEEP, HostGate, HostLimit

if TYPE_CHECKING:
    from .._model.config import Limits

log = logging.getLogger("adownload")

_K = TypeVar("_K")
_P = TypeVar("_P", bound=AbstractAsyncContextManager[object])


class KeyedPrimitives(Generic[_K, _P]):
    """One lock or semaphore per key, made on first use and dropped when nobody holds or waits
    for it, so that a million distinct hosts or paths do not pile up in memory."""

    __slots__ = ("_entries", "_factory")

    def __init__(self, factory: Callable[[], _P]) -> None:
        self._factory = factory
        self._entries: dict[_K, tuple[_P, list[int]]] = {}

    def hold(self, key: _K) -> _Hold[_K, _P]:
        """Hold `key`'s primitive for an `async with` block."""
        return _Hold(self, key)


class _Hold(Generic[_K, _P]):
    """`KeyedPrimitives.hold`: a class rather than a generator, as every file enters two (its
    path's lock, its host's permits). The entry is looked up on entering, never before: one
    found earlier may have been dropped by its last holder meanwhile."""

    __slots__ = ("_entry", "_key", "_owner")

    def __init__(self, owner: KeyedPrimitives[_K, _P], key: _K) -> None:
        self._owner = owner
        self._key = key

    async def __aenter__(self) -> None:
        owner = self._owner
        entry = owner._entries.get(self._key)
        if entry is None:
            entry = owner._entries[self._key] = (owner._factory(), [0])
        entry[1][0] += 1
        self._entry = entry
        try:
            await entry[0].__aenter__()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._entry[0].__aexit__(exc_type, exc, tb)
        finally:
            self._leave()

    def _leave(self) -> None:
        users = self._entry[1]
        users[0] -= 1
        if not users[0]:
            del self._owner._entries[self._key]


class _Slot:
    """`Limiter.slot` without adaptive limits: a permit of the host's, then a global one."""

    __slots__ = ("_host", "_transfers")

    def __init__(self, host: _Hold[_Host, asyncio.Semaphore], transfers: asyncio.Semaphore) -> None:
        self._host = host
        self._transfers = transfers

    async def __aenter__(self) -> None:
        await self._host.__aenter__()
        try:
            await self._transfers.acquire()
        except BaseException:
            await self._host.__aexit__(None, None, None)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._transfers.release()
        await self._host.__aexit__(exc_type, exc, tb)


class TokenBucket:
    """An overall byte rate shared by many streams: each takes tokens for the bytes it read.

    A stream that takes more than the bucket holds goes into debt and sleeps it off; the next
    taker inherits the debt, so concurrent streams share the rate instead of each getting it.
    The bucket holds `burst` seconds of the rate: a short burst after an idle spell, and a
    long-run rate within about `burst / duration` of the target.
    """

    __slots__ = ("_capacity", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, *, burst: float = 0.05) -> None:
        self._rate = float(rate)
        self._capacity = self._rate * burst
        self._tokens = self._capacity
        self._last = time.monotonic()

    async def take(self, size: int) -> None:
        """Account for `size` bytes received; sleep if the rate is exceeded."""
        now = time.monotonic()
        tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate) - size
        self._tokens = tokens
        self._last = now
        if tokens < 0:
            await asyncio.sleep(-tokens / self._rate)


class Limiter:
    """Admission of transfers and their connections, and the downloader's byte rate.

    A file takes one of `max_transfers` global permits and, for each connection it opens (one,
    or one per segment), one of the permits of the connection's host: `max_per_host` of them,
    or, with `Limits(adaptive=True)`, as many as the host's `HostGate` allows now.

    The host's permit is taken first, so a transfer waiting for a busy host does not hold one
    of the global permits that a transfer to another host could use.

    `bucket` is the shared `TokenBucket` when `Limits.rate` is set, else None: the read loops
    test it once per chunk, so an unlimited downloader pays nothing for the feature.
    """

    __slots__ = ("_emit", "_gates", "_hosts", "_max_pause", "_per_host", "_transfers", "bucket")

    def __init__(
        self,
        limits: Limits,
        *,
        max_pause: float = 60.0,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self._transfers = asyncio.Semaphore(limits.max_transfers)
        per_host = self._per_host = limits.max_per_host
        self._hosts: KeyedPrimitives[_Host, asyncio.Semaphore] = KeyedPrimitives(
            lambda: asyncio.Semaphore(per_host)
        )
        # Adaptive: one gate per host, kept (up to KEEP idle ones) with what it learnt.
        self._gates: OrderedDict[_Host, HostGate] | None = (
            OrderedDict() if limits.adaptive else None
        )
        self._max_pause = max_pause
        self._emit = emit
        self.bucket = None if limits.rate is None else TokenBucket(limits.rate)

    def slot(self, url: URL) -> AbstractAsyncContextManager[None]:
        """A transfer's first connection: a permit of `url`'s host, then a global one."""
        if self._gates is None:
            return _Slot(self._hosts.hold((url.scheme, url.host, url.port)), self._transfers)
        return self._adaptive_slot(url)

    @asynccontextmanager
    async def _adaptive_slot(self, url: URL) -> AsyncIterator[None]:
        async with self.connection(url), self._transfers:
            yield

    @asynccontextmanager
    async def connection(self, url: URL) -> AsyncIterator[None]:
        """A further connection of a transfer that holds a slot already: a host permit only."""
        key = (url.scheme, url.host, url.port)
        if self._gates is None:
            async with self._hosts.hold(key):
                yield
            return
        gate = self._gate(key)
        await gate.acquire()
        started = gate.now()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            gate.release(error, started)
            self._keep(key, gate)

    @property
    def per_host(self) -> int:
        """Connections to one host at most (`Limits.max_per_host`)."""
        return self._per_host

    def segment_count(self, count: int) -> int:
        """How many connections one file may be split over: `count` (`Segments.count`), or,
        with adaptive limits, up to `max_per_host` if that is more, the host's gate deciding
        how many run at once. So a server that caps each connection gets more of them without
        a hand-set `Segments.count`."""
        return count if self._gates is None else max(count, self._per_host)

    def gate(self, url: URL) -> HostGate | None:
        """The adaptive gate of `url`'s host (None without `Limits(adaptive=True)`)."""
        if self._gates is None:
            return None
        return self._gate((url.scheme, url.host, url.port))

    def heard(self, origin: str, reason: str, pause: float) -> None:
        """Another process sharing the host `origin` (`http://host:port`) was told to slow
        down: its gate here cuts too (see `HostGate.heard`). Nothing without adaptive limits."""
        if self._gates is None:
            return
        url = URL(origin)
        self._gate((url.scheme, url.host, url.port)).heard(reason, pause)

    def host_limits(self) -> dict[str, HostLimit]:
        """What adaptive concurrency learnt per host, by origin (`http://host:port`)."""
        if self._gates is None:
            return {}
        return {_origin(key): gate.report() for key, gate in self._gates.items()}

    def _gate(self, key: _Host) -> HostGate:
        gates = self._gates
        assert gates is not None
        gate = gates.get(key)
        if gate is None:
            gate = gates[key] = HostGate(
                self._per_host, max_pause=self._max_pause, on_change=self._teller(key)
            )
        return gate

    def _keep(self, key: _Host, gate: HostGate) -> None:
        """A gate fell idle: keep it, and forget the longest-idle ones beyond KEEP."""
        gates = self._gates
        if gates is None or not gate.idle:
            return
        gates.move_to_end(key)
        if len(gates) > KEEP:
            for old in [k for k, g in gates.items() if g.idle][: len(gates) - KEEP]:
                del gates[old]

    def _teller(self, key: _Host) -> Callable[[int, int, str], None]:
        origin = _origin(key)
        emit = self._emit

        def tell(previous: int, limit: int, reason: str) -> None:
            log.info("%s: %d connections at most now (was %d): %s", origin, limit, previous, reason)
            if emit is not None:
                emit(HostLimitChanged(origin, previous, limit, reason))

        return tell


_Host: TypeAlias = tuple[str, str | None, int | None]


def _origin(key: _Host) -> str:
    scheme, host, port = key
    return str(URL.build(scheme=scheme, host=host or "", port=port))


class SpeedFloor:
    """`Timeout.min_speed` over `Timeout.min_speed_window`: `check(received)` raises
    `StallError` when the bytes received in the last window fell below the floor. One for every
    read loop: a single stream checks it per chunk, a segmented download's monitor per tick."""

    __slots__ = ("_bytes", "_floor", "_start", "_url", "_window")

    def __init__(self, floor: float, window: float, received: int, url: str) -> None:
        self._floor = floor
        self._window = window
        self._url = url
        self._start = time.monotonic()
        self._bytes = received

    def check(self, received: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        elapsed = now - self._start
        if elapsed < self._window:
            return
        if (received - self._bytes) / elapsed < self._floor:
            raise StallError(
                f"slower than {self._floor:.0f} bytes/s for {self._window}s: {self._url}",
                url=self._url,
                phase="speed",
                seconds=self._window,
            )
        self._start, self._bytes = now, received
