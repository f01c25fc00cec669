"""Admission control: how many transfers run at once, in all and per host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Generic, TypeVar

from yarl import URL

from ._config import Limits

_K = TypeVar("_K")
_P = TypeVar("_P", bound=AbstractAsyncContextManager[object])


class KeyedPrimitives(Generic[_K, _P]):
    """One lock or semaphore per key, made on first use and dropped when nobody holds or waits
    for it, so that a million distinct hosts or paths do not pile up in memory."""

    __slots__ = ("_entries", "_factory")

    def __init__(self, factory: Callable[[], _P]) -> None:
        self._factory = factory
        self._entries: dict[_K, tuple[_P, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: _K) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (self._factory(), [0])
        primitive, users = entry
        users[0] += 1
        try:
            async with primitive:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._entries[key]


class Limiter:
    """Admission of transfers: at most `max_per_host` per host and `max_transfers` in all.

    The host's permit is taken first, so a transfer waiting for a busy host does not hold one
    of the global permits that a transfer to another host could use.
    """

    __slots__ = ("_hosts", "_transfers")

    def __init__(self, limits: Limits) -> None:
        self._transfers = asyncio.Semaphore(limits.max_transfers)
        per_host = limits.max_per_host
        self._hosts: KeyedPrimitives[tuple[str, str | None, int | None], asyncio.Semaphore] = (
            KeyedPrimitives(lambda: asyncio.Semaphore(per_host))
        )

    @asynccontextmanager
    async def slot(self, url: URL) -> AsyncIterator[None]:
        async with self._hosts.hold((url.scheme, url.host, url.port)), self._transfers:
            yield
