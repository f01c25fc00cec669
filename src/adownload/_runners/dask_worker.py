"""One shard on a Dask worker: a `Downloader` of its own, its events streamed to the caller.

`run_shard` is the Dask task. It runs an event loop in the worker's task thread, downloads
the shard's requests with `Downloader.as_completed`, and sends what happens to the caller as
Dask structured events (`Worker.log_event` under the run's topic, a batch every
`_SEND_INTERVAL`): started, progress, retrying and finished, each with the request's index in
the caller's input. Messages must be msgpack data, so outcomes and errors travel pickled (the
caller and the cluster trust each other: they run one code). They go through a
`distributed.Queue` of the run's, which the scheduler holds until the caller takes them (and
which has a bound, so a caller that falls behind slows the shards instead of filling the
scheduler's memory). Without an `on_event` hook on the caller's side only the outcomes are
sent. The task's result is every outcome again, so that nothing is lost if a message is.

When the caller cancels, Dask marks the running task cancelled but cannot stop its thread;
the shard watches for that and cancels its own downloads, which keep their `.part` files as
an interruption does. A rerun of the shard (its worker died) finds completed files and skips
them, and continues the `.part` files it finds.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import distributed

from .._client import loop as _loop
from .._client.downloader import Downloader
from .._model.events import Event, Finished, HostLimitChanged
from .._model.request import Outcome, Request
from .._model.util import cancel_and_wait
from . import wire as _wire

#: Seconds between two batches of events sent to the caller.
_SEND_INTERVAL = 0.2
#: Seconds between two looks at whether the caller cancelled the shard.
_WATCH_INTERVAL = 0.2

Entry = tuple[int, Request]


def run_shard(
    queue: str,
    number: int,
    entries: list[Entry],
    dest: str,
    options: dict[str, Any],
    events: bool,
) -> list[tuple[int, bytes]]:
    """The Dask task: download `entries` into `dest` with `options`, telling the queue named
    `queue` of each outcome (and, with `events`, of every event); every outcome, pickled, by
    index."""
    worker = distributed.get_worker()
    key = worker.get_current_task()
    queues: Any = distributed.Queue  # untyped
    shard = _Shard(worker, key, queues(queue), number, events)
    return _loop.run(shard.run(entries, dest, options))


class _Shard:
    def __init__(
        self, worker: distributed.Worker, key: Any, queue: Any, number: int, events: bool
    ) -> None:
        self._worker = worker
        self._key = key
        self._queue = queue
        self._number = number
        self._events = events
        self._address: str = worker.address
        self._index: dict[int, int] = {}  # id(request) -> index in the caller's input
        self._pending: list[list[Any]] = []
        self._stop = asyncio.Event()  # every download ended: the sender sends what is left

    async def run(
        self, entries: list[Entry], dest: str, options: dict[str, Any]
    ) -> list[tuple[int, bytes]]:
        requests = []
        for index, request in entries:
            self._index[id(request)] = index
            requests.append(request)
        results: list[tuple[int, bytes]] = []
        sender = asyncio.create_task(self._send_forever())
        main = asyncio.current_task()
        assert main is not None
        watcher = asyncio.create_task(self._watch(main))
        try:
            async with (
                Downloader(dest=dest, on_event=self._event, **options) as dl,
                contextlib.aclosing(dl.as_completed(requests)) as outcomes,
            ):
                async for outcome in outcomes:
                    assert outcome.request is not None
                    results.append((self._index[id(outcome.request)], self._pack(outcome)))
            # A message on its way to the queue (a put in a thread) arrives before the task
            # returns: the caller moves the queue's messages to its inbox before the result,
            # and drops as late an event that comes after the shard is settled.
            self._stop.set()
            await sender
        finally:
            await cancel_and_wait(watcher)
            await cancel_and_wait(sender)
            self._send()
        return results

    def _pack(self, outcome: Outcome) -> bytes:
        return _wire.pack(outcome, self._address)

    def _event(self, event: Event) -> None:
        if isinstance(event, HostLimitChanged):
            return  # the shard's own limit of its share: nothing the caller's display shows
        request = event.outcome.request if isinstance(event, Finished) else event.request
        index = None if request is None else self._index.get(id(request))
        if index is None:
            return
        if not self._events and not isinstance(event, Finished):
            return
        wire = _wire.encode(event, index, self._address)
        if wire is not None:
            self._pending.append(wire)

    async def _send_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SEND_INTERVAL):
                    await self._stop.wait()
            message = self._message()
            if message is not None:
                # A round trip to the scheduler, which waits while the queue is full.
                await asyncio.to_thread(self._queue.put, message)

    def _send(self) -> None:
        message = self._message()
        if message is not None:
            self._queue.put(message)

    def _message(self) -> dict[str, Any] | None:
        if not self._pending:
            return None
        events, self._pending = _wire.latest_progress(self._pending), []
        return {"shard": self._number, "worker": self._address, "events": events}

    async def _watch(self, main: asyncio.Task[Any]) -> None:
        """Cancel `main` once Dask no longer wants the task: the caller cancelled it, or the
        worker is closing."""
        while True:
            await asyncio.sleep(_WATCH_INTERVAL)
            state = self._worker.state.tasks.get(self._key)
            if state is None or state.state in ("cancelled", "released", "forgotten"):
                main.cancel()
                return
