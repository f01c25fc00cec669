"""Many downloads at once: a fixed pool of workers taking the caller's items one at a time.

`run_all` runs `workers` workers over the items (sync or async, consumed lazily, so a
generator of millions of URLs is never held in memory) and hands each outcome to `emit` with
the item's index. `perform` runs one download to its outcome. Every failure of a download
becomes an outcome; only the items' own iterator failing, or a cancellation, raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from yarl import URL

from .._engine.transfer import Transfer
from .._model.errors import DownloadError
from .._model.events import Finished, Queued
from .._model.request import Item, Outcome, Request
from .._model.util import cancel_and_wait, redact

if TYPE_CHECKING:
    from .._engine.settings import Settings

log = logging.getLogger("adownload")


async def run_all(
    settings: Settings,
    items: Iterable[Item] | AsyncIterable[Item],
    dest: Path | None,
    emit: Callable[[int, Outcome], Awaitable[None]],
    *,
    workers: int,
) -> None:
    """Download every item over `workers` workers, handing each outcome to `emit`."""
    source = _Source(items)

    async def worker() -> None:
        while (entry := await source.next()) is not None:
            index, item = entry
            await emit(index, await outcome_of(settings, item, dest))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        # Workers only fail when the caller's iterable does: raise its error as it was.
        first = group_error.exceptions[0]
        if isinstance(first, _SourceError):
            raise first.error from None
        raise


class _SourceError(Exception):
    def __init__(self, error: Exception) -> None:
        self.error = error


class _Source:
    """The caller's items, sync or async, handed out one at a time to the workers."""

    def __init__(self, items: Iterable[Item] | AsyncIterable[Item]) -> None:
        if isinstance(items, str | URL | Request | bytes):
            raise TypeError(
                "download_many() and as_completed() take an iterable of URLs or Requests, "
                f"not a single {type(items).__name__}; use download() for one file"
            )
        self._sync = None if isinstance(items, AsyncIterable) else iter(items)
        self._async = aiter(items) if isinstance(items, AsyncIterable) else None
        # An async generator cannot be advanced by two workers at once.
        self._lock = asyncio.Lock()
        self._index = 0
        self._exhausted = False

    async def next(self) -> tuple[int, Item] | None:
        if self._exhausted:
            return None
        try:
            if self._sync is not None:
                item = next(self._sync)
            else:
                assert self._async is not None
                async with self._lock:
                    if self._exhausted:
                        return None
                    item = await anext(self._async)
        except (StopIteration, StopAsyncIteration):
            self._exhausted = True
            return None
        except Exception as exc:
            self._exhausted = True
            raise _SourceError(exc) from exc
        index = self._index
        self._index += 1
        return index, item


async def completed(
    run: Callable[[Callable[[int, Outcome], Awaitable[None]]], Awaitable[None]],
    *,
    window: int,
    tasks: set[asyncio.Task[None]],
) -> AsyncGenerator[Outcome, None]:
    """The outcomes of `run(emit)` as they finish (`as_completed`): `run` goes in a task of its
    own, kept in `tasks` (so that closing the downloader can stop it), and hands each outcome
    over through a queue of `window` (workers wait for a slow consumer instead of piling
    outcomes up). Leaving early cancels the task."""
    ready: asyncio.Queue[Outcome] = asyncio.Queue(maxsize=window)

    async def publish(_index: int, outcome: Outcome) -> None:
        await ready.put(outcome)

    runner = asyncio.ensure_future(run(publish))
    tasks.add(runner)
    runner.add_done_callback(tasks.discard)
    try:
        while True:
            if not ready.empty():
                yield ready.get_nowait()
                continue
            if runner.done():
                if runner.cancelled():  # only closing the downloader cancels it meanwhile
                    raise RuntimeError("the Downloader was closed during as_completed()")
                runner.result()  # the error of the items' iterator, if any
                if ready.empty():
                    return
                continue
            getter = asyncio.ensure_future(ready.get())
            try:
                await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    await cancel_and_wait(getter)
            if not getter.cancelled():
                yield getter.result()
    finally:
        if not runner.done():
            await cancel_and_wait(runner)


async def outcome_of(settings: Settings, item: Item, dest: Path | None) -> Outcome:
    """Run one item of a batch; every failure becomes an outcome, never an exception."""
    try:
        request = item if isinstance(item, Request) else Request(item)
    except DownloadError as exc:
        outcome = Outcome(url=redact(str(item)), request=None, error=exc)
        if settings.emit is not None:
            settings.emit(Queued(outcome.url, None))
            settings.emit(Finished(outcome))
        return outcome
    return await perform(settings, request, dest)


async def perform(settings: Settings, request: Request, dest: Path | None) -> Outcome:
    """Run one download to its outcome, telling the event hook; raise only a cancellation."""
    emit = settings.emit
    transfer = Transfer(settings, request, dest)
    if emit is not None:
        emit(Queued(transfer.url, request))
    try:
        outcome = await transfer.run()
    except DownloadError as exc:
        log.info("failed: %s: %s", transfer.url, exc)
        outcome = transfer.outcome(exc)
    except Exception as exc:
        # A bug of ours must not take the rest of a batch down with it; say so loudly.
        log.exception("unexpected error downloading %s", transfer.url)
        error = DownloadError(f"unexpected error: {exc!r}", url=transfer.url)
        error.__cause__ = exc
        outcome = transfer.outcome(error)
    if emit is not None:
        emit(Finished(outcome))
    return outcome
