"""One `DaskRunner` call on the caller's side: the input read into shards, the shards
submitted to Dask, and what comes back turned into outcomes and events.

A reader task pulls the input (lazily, at most `buffer` requests held) into
`_runners.shards.Shards`; the loop submits a shard as one Dask task
(`_runners.dask_worker.run_shard`) when fewer than two per worker run and its origin has room; the
workers' messages (from the run's bounded `distributed.Queue`) and the tasks' results come into one
inbox. Indexes are mapped back to the caller's own `Request` objects, a rerun's repeats are dropped,
and a shard Dask gave up on has its missing outcomes made failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from pathlib import Path
from typing import Any

import distributed

from .._disk.existing import taken_error
from .._model.config import Existing, Limits
from .._model.errors import DownloadError, InvalidRequestError
from .._model.events import Event, Finished, Queued
from .._model.request import Item, Outcome, Request
from .._model.util import each, redact
from . import wire as _wire
from .dask_worker import run_shard
from .shards import Shard, Shards, absolute, final_path, request_of, share_of

__all__ = ["Run"]

#: Seconds without a new request after which partial shards are sent anyway (a slow input).
_FLUSH_AFTER = 0.5
#: Messages the scheduler holds for the caller at most; the shards wait when it is full.
_QUEUE_SIZE = 256
#: Seconds between two looks at an empty queue.
_POLL_INTERVAL = 0.1

#: The policies under which a second request of a file this run saved may still run.
_REPLACING = (Existing.OVERWRITE, Existing.RENAME)


class Run:
    """One call's input, its shards in flight, and the messages coming back.

    `options` are the downloader's (with `limits`, whose `max_per_host` is the cluster's),
    `emit` the caller's wrapped hook, `buffer` the most requests held (None: two shards
    queued per worker).
    """

    def __init__(
        self,
        client: distributed.Client,
        *,
        workers: int,
        dest: str,
        options: dict[str, Any],
        shard_size: int,
        buffer: int | None,
        emit: Callable[[Event], None] | None,
    ) -> None:
        self._client: Any = client  # asynchronous: its methods return coroutines
        self._emit = emit
        self._dest = dest
        limits: Limits = options.get("limits", Limits())
        per_origin, connections = share_of(limits.max_per_host, workers)
        self._options = {
            **options,
            "limits": dataclasses.replace(limits, max_per_host=connections),
        }
        self._shards = Shards(shard_size, per_origin, dest)
        self._max_running = 2 * workers
        self._room = asyncio.Semaphore(buffer or 2 * workers * shard_size)
        self._name = f"adownload-{uuid.uuid4().hex}"
        self._events = emit is not None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._running: dict[int, Shard] = {}
        self._futures: dict[int, distributed.Future[Any]] = {}
        self._waiters: set[asyncio.Task[None]] = set()
        self._queue: Any = None  # the run's distributed.Queue, once made
        #: Held while messages move from the queue to the inbox (see `_wait`).
        self._moving = asyncio.Lock()
        self.shards = 0
        self.lost = 0
        #: The files this run saved, by absolute path: the URL each came from.
        self._saved: dict[str, str] = {}

    async def outcomes(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        queues: Any = distributed.Queue  # untyped
        queue = self._queue = await queues(self._name, client=self._client, maxsize=_QUEUE_SIZE)
        listener = asyncio.create_task(self._listen(queue))
        reader = asyncio.create_task(self._read(items))
        reading = True
        try:
            while reading or self._running or self._shards.waiting:
                self._submit()
                try:
                    kind, value = await asyncio.wait_for(self._inbox.get(), _FLUSH_AFTER)
                except TimeoutError:
                    if self._shards.partial:
                        self._shards.flush()  # a slow input: send what there is
                    continue
                match kind:
                    case "request":
                        index, request = value
                        self._shards.add(index, request)
                    case "rejected":
                        yield self._finished(value[0], value[1], None)
                    case "end":
                        reading = False
                        self._shards.flush()
                    case "failed":
                        raise value
                    case "message":
                        for pair in self._message(value):
                            yield pair
                    case "shard":
                        for pair in self._shard_ended(*value):
                            yield pair
        finally:
            for task in (reader, listener):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._stop(queue)

    # --- the input --------------------------------------------------------------------------

    async def _read(self, items: Iterable[Item] | AsyncIterable[Item]) -> None:
        index = 0
        try:
            async for item in each(items):
                await self._room.acquire()
                try:
                    # The caller's own Request object: outcomes carry it back.
                    request = item if isinstance(item, Request) else request_of(item)
                except InvalidRequestError as exc:
                    url = redact(str(item)) if isinstance(item, str) else ""
                    self._inbox.put_nowait(("rejected", (index, Outcome(url, None, error=exc))))
                else:
                    if request.sink is not None:
                        error = InvalidRequestError(
                            "a cluster writes files: a Request with a sink cannot go there",
                            url=redact(str(request.url)),
                        )
                        outcome = Outcome(redact(str(request.url)), request, error=error)
                        self._inbox.put_nowait(("rejected", (index, outcome)))
                    else:
                        self._inbox.put_nowait(("request", (index, request)))
                index += 1
        except Exception as exc:  # the caller's iterable failed: the run fails with it
            self._inbox.put_nowait(("failed", exc))
            return
        self._inbox.put_nowait(("end", None))

    # --- shards -----------------------------------------------------------------------------

    def _submit(self) -> None:
        while len(self._running) < self._max_running:
            shard = self._shards.take()
            if shard is None:
                return
            self.shards += 1
            for _, request in shard.entries:
                self._emit_event(Queued(redact(str(request.url)), request))
            future = self._client.submit(
                run_shard,
                self._name,
                shard.number,
                # The caller keeps its own objects (outcomes and events carry them back).
                [(index, absolute(request)) for index, request in shard.entries],
                self._dest,
                self._options,
                self._events,
                key=f"{self._name}-shard-{shard.number}",
                pure=False,
            )
            self._running[shard.number] = shard
            self._futures[shard.number] = future
            waiter = asyncio.create_task(self._wait(shard, future))
            self._waiters.add(waiter)
            waiter.add_done_callback(self._waiters.discard)

    async def _wait(self, shard: Shard, future: distributed.Future[Any]) -> None:
        try:
            result = await future
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # KilledWorker, or the task failed: the shard is lost
            self._inbox.put_nowait(("shard", (shard, None, exc)))
            return
        # The shard sent its last events before it returned: they go to the inbox before its
        # result, or they would come after the shard is settled and be dropped as late.
        with contextlib.suppress(Exception):  # without them, the result is still whole
            await self._move(self._queue)
        self._inbox.put_nowait(("shard", (shard, result, None)))

    def _shard_ended(
        self, shard: Shard, result: list[tuple[int, bytes]] | None, error: BaseException | None
    ) -> list[tuple[int, Outcome]]:
        self._running.pop(shard.number, None)
        self._futures.pop(shard.number, None)
        released = self._shards.finished(shard)
        ended = []
        if result is not None:
            for index, packed in result:
                if index not in shard.done:
                    ended.append(self._finished(index, _wire.unpack(packed, None), shard))
        if error is not None:
            self.lost += 1
        for index, request in shard.entries:
            if index not in shard.done:
                failure = DownloadError(
                    f"the cluster could not run this download: {type(error).__name__}: {error}"
                    if error is not None
                    else "the cluster's task ended without this download",
                    url=redact(str(request.url)),
                )
                ended.append(
                    self._finished(
                        index, Outcome(redact(str(request.url)), None, error=failure), shard
                    )
                )
        ended.extend(self._release(released))
        return ended

    def _release(self, released: list[tuple[int, Request]]) -> list[tuple[int, Outcome]]:
        """Requests that waited for a file another request of this run was writing: those
        whose file the other one saved fail as in one process (the file is not theirs, and
        a worker's downloader, which never saw the other, would take it for theirs); the
        rest run now."""
        failed, run = [], []
        for index, request in released:
            path = final_path(request, self._dest)
            url = redact(str(request.url))
            saved_from = self._saved.get(path)
            existing = request.existing
            if not isinstance(existing, Existing):
                existing = self._options.get("existing") or Existing.SKIP
            if saved_from is None or saved_from == url or existing in _REPLACING:
                run.append((index, request))
                continue
            error = taken_error(Path(path), saved_from, url)
            failed.append(self._finished(index, Outcome(url, request, error=error), None))
        self._shards.settled(len(failed))
        self._shards.put_back(run)
        return failed

    def _finished(self, index: int, outcome: Outcome, shard: Shard | None) -> tuple[int, Outcome]:
        if outcome.ok and not outcome.skipped and outcome.path is not None:
            self._saved[os.path.abspath(outcome.path)] = outcome.url
        if shard is not None:
            shard.done.add(index)
            request = shard.request(index)
            if request is not None:
                outcome = dataclasses.replace(outcome, request=request)
        self._emit_event(Finished(outcome))
        self._room.release()
        return index, outcome

    # --- messages from the workers ----------------------------------------------------------

    async def _listen(self, queue: Any) -> None:
        """Move the workers' messages from the scheduler's queue to the inbox.

        A short poll, not a waiting get: a get left waiting when the run ends would leave
        the scheduler a request that times out for nobody (and, with the scheduler in this
        process, a task whose exception nobody retrieves).
        """
        while True:
            if not await self._move(queue):
                await asyncio.sleep(_POLL_INTERVAL)

    async def _move(self, queue: Any) -> int:
        """Move what the queue holds now to the inbox, in order; how many messages it held."""
        async with self._moving:
            messages = await queue.get(batch=True)
            for message in messages:
                self._inbox.put_nowait(("message", message))
        return len(messages)

    def _message(self, message: dict[str, Any]) -> list[tuple[int, Outcome]]:
        shard = self._running.get(message["shard"])
        if shard is None:
            return []  # a shard already settled: its rerun's repeats, or a late batch
        ended = []
        for wire in message["events"]:
            index = wire[1]
            if index in shard.done:
                continue
            request = shard.request(index)
            if request is None:
                continue
            if wire[0] == "finished":
                ended.append(self._finished(index, _wire.unpack(wire[2], None), shard))
            else:
                self._emit_event(_wire.decode(wire, request))
        return ended

    def _emit_event(self, event: Event) -> None:
        if self._emit is not None:
            self._emit(event)

    async def _stop(self, queue: Any) -> None:
        """Cancel what still runs on the cluster, and let the scheduler drop the queue."""
        futures = list(self._futures.values())
        if futures:
            await self._client.cancel(futures, force=True)
        for waiter in list(self._waiters):
            waiter.cancel()
        if self._waiters:
            await asyncio.gather(*self._waiters, return_exceptions=True)
        with contextlib.suppress(Exception):  # a closed client holds no queue any more
            queue.close()
