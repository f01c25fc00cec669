"""One `ProcessRunner` call on the caller's side: worker processes started, the input dealt
out to them, and their events and outcomes turned back into the caller's.

Each worker (`_runners.process_worker`, a `python -m` child with a pipe each way) runs one
`Downloader` with its share of the limits (`_runners.shards.share_of` splits each host's
connections, as for a Dask cluster). A request goes to the worker its final name hashes to: two
requests that would write one file always meet in one process, whose lock orders them, and never
race each other's `.part` from two processes. Each worker holds at most `window` requests it has not
finished; the input is read no faster than they finish, so memory stays flat however long it is. A
worker that dies has its unfinished requests failed (their `.part` files are kept for a rerun) and
gets no more; when none is left, the rest fails too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import signal
import sys
import zlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from typing import Any

from .._model.config import Limits
from .._model.errors import DownloadError, InvalidRequestError
from .._model.events import Event, Finished, Queued
from .._model.request import Item, Outcome, Request
from .._model.util import each, redact
from . import wire as _wire
from .shards import absolute, final_path, request_of, share_of

__all__ = ["Run", "shares"]

#: Requests sent to a worker in one frame at most.
_BATCH = 64
#: Seconds a worker has to end after its input ends or a SIGINT, before it is killed.
_STOP_WAIT = 10.0


def shares(limits: Limits, workers: int) -> tuple[int, Limits]:
    """How many workers the limits allow (each host's connections must split among them), and
    each worker's `Limits`: its share of the transfers, of each host's connections and of the
    rate."""
    per_host = max(1, limits.max_per_host)
    workers = max(1, min(workers, per_host))
    _, connections = share_of(per_host, workers)
    rate = None if limits.rate is None else limits.rate / workers
    transfers = max(1, math.ceil(limits.max_transfers / workers))
    share = dataclasses.replace(
        limits, max_transfers=transfers, max_per_host=connections, rate=rate
    )
    return workers, share


def route(request: Request, workers: int, dest: str) -> int:
    """The worker of `request`: by the file it writes, however it was spelled (`final_path`),
    so that two requests of one file go to one worker, whose path lock runs them in turn."""
    return zlib.crc32(os.fsencode(final_path(request, dest))) % workers


@dataclasses.dataclass(eq=False)
class _Process:
    number: int
    process: asyncio.subprocess.Process
    room: asyncio.Semaphore
    #: Requests sent or about to be, not finished: index -> the caller's request.
    in_hand: dict[int, Request] = dataclasses.field(default_factory=dict)
    batch: list[tuple[int, Request]] = dataclasses.field(default_factory=list)
    alive: bool = True
    ended: str = ""  # why it stopped, once it did

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self.process.stdin is not None
        return self.process.stdin


class Run:
    """One call's worker processes, the input dealt out to them, and what comes back."""

    def __init__(
        self,
        *,
        workers: int,
        dest: str,
        options: dict[str, Any],
        window: int | None,
        emit: Callable[[Event], None] | None,
        every_event: bool = True,
    ) -> None:
        limits: Limits = options.get("limits", Limits())
        self.workers, share = shares(limits, workers)
        self._options = {**options, "limits": share}
        self._dest = dest
        # Requests in hand per worker: four times its share of the transfers, at least 64.
        self._window = window or max(64, 4 * share.max_transfers)
        self._emit = emit
        self._every_event = every_event
        self._inbox: asyncio.Queue[tuple[int, Outcome] | None] = asyncio.Queue()
        self._processes: list[_Process] = []
        self._pending = 0  # requests read and not finished
        self._reading = True

    async def outcomes(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        listeners: list[asyncio.Task[None]] = []
        reader: asyncio.Task[None] | None = None
        try:
            await self._start()
            listeners = [asyncio.create_task(self._listen(p)) for p in self._processes]
            reader = asyncio.create_task(self._read(items))
            while self._reading or self._pending or not self._inbox.empty():
                pair = await self._inbox.get()
                if pair is not None:
                    yield pair
            reader.result()  # the caller's iterable failed: so does the run
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
            await self._stop()
            for task in listeners:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    def pids(self) -> list[int]:
        """The process ids of the workers still alive, in the order requests are routed to."""
        return [worker.process.pid for worker in self._processes if worker.alive]

    # --- the processes ----------------------------------------------------------------------

    async def _start(self) -> None:
        settings = {
            "dest": self._dest,
            "options": self._options,
            "events": self._emit is not None,
            "every_event": self._every_event,
        }
        for number in range(self.workers):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "adownload._runners.process_worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            worker = _Process(number, process, asyncio.Semaphore(self._window))
            self._processes.append(worker)
            worker.stdin.write(_wire.frame(settings))

    async def _listen(self, worker: _Process) -> None:
        """The worker's batches of events, until its output ends."""
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                for wire in await _wire.read_frame(stdout):
                    self._wire_event(worker, wire)
        except EOFError:
            pass
        code = await worker.process.wait()
        worker.alive = False
        worker.ended = f"the worker process ended (exit status {code})"
        for index, request in list(worker.in_hand.items()):
            error = DownloadError(
                f"{worker.ended} before this download did; run again to continue it",
                url=redact(str(request.url)),
            )
            self._finished(worker, index, Outcome(redact(str(request.url)), request, error=error))
        self._inbox.put_nowait(None)  # wake the loop: it may be waiting for nothing now

    def _wire_event(self, worker: _Process, wire: list[Any]) -> None:
        if wire[0] == "cut":  # one worker was told to slow down: so are the others
            message = _wire.frame({"cut": tuple(wire[2:])})
            for other in self._processes:
                if other is not worker and other.alive:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        other.stdin.write(message)
            return
        index = wire[1]
        request = worker.in_hand.get(index)
        if request is None:
            return  # settled already
        if wire[0] == "finished":
            self._finished(worker, index, _wire.unpack(wire[2], request))
        elif self._emit is not None:
            self._emit(_wire.decode(wire, request))

    def _finished(self, worker: _Process | None, index: int, outcome: Outcome) -> None:
        if worker is not None:
            del worker.in_hand[index]
            worker.room.release()
        self._pending -= 1
        if self._emit is not None:
            self._emit(Finished(outcome))
        self._inbox.put_nowait((index, outcome))

    async def _stop(self) -> None:
        """Tell every worker its input ended (or, when requests remain, that it is cut short),
        and wait for it to end; kill one that does not in time."""
        cut_short = self._pending > 0
        for worker in self._processes:
            if worker.process.returncode is not None:
                continue
            if cut_short:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGINT)
            with contextlib.suppress(Exception):
                worker.stdin.write(_wire.frame(None))
                worker.stdin.close()
        for worker in self._processes:
            try:
                await asyncio.wait_for(worker.process.wait(), _STOP_WAIT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()

    # --- the input --------------------------------------------------------------------------

    async def _read(self, items: Iterable[Item] | AsyncIterable[Item]) -> None:
        index = 0
        try:
            async for item in each(items):
                self._pending += 1
                await self._take(index, item)
                index += 1
        finally:
            for worker in self._processes:
                await self._flush(worker)
            self._reading = False
            self._inbox.put_nowait(None)

    async def _take(self, index: int, item: Item) -> None:
        try:
            request = item if isinstance(item, Request) else request_of(item)
            if request.sink is not None:
                raise InvalidRequestError(
                    "worker processes write files: a Request with a sink cannot go there",
                    url=redact(str(request.url)),
                )
        except InvalidRequestError as exc:
            url = redact(str(item.url if isinstance(item, Request) else item))
            request_or_none = item if isinstance(item, Request) else None
            if self._emit is not None:
                self._emit(Queued(url, request_or_none))
            self._finished(None, index, Outcome(url, request_or_none, error=exc))
            return
        while True:
            live = [worker for worker in self._processes if worker.alive]
            if not live:
                error = DownloadError(
                    f"no worker process is left ({self._processes[0].ended})",
                    url=redact(str(request.url)),
                )
                outcome = Outcome(redact(str(request.url)), request, error=error)
                self._finished(None, index, outcome)
                return
            worker = live[route(request, len(live), self._dest)]
            if worker.room.locked():
                # Waiting for room: what is batched must go first, or nothing frees it.
                for other in self._processes:
                    await self._flush(other)
            await worker.room.acquire()
            if worker.alive:
                break
            worker.room.release()  # it died meanwhile: another one takes the request
        if self._emit is not None:
            self._emit(Queued(redact(str(request.url)), request))
        worker.in_hand[index] = request
        worker.batch.append((index, absolute(request)))
        transfers = self._options["limits"].max_transfers
        if len(worker.batch) >= _BATCH or len(worker.in_hand) - len(worker.batch) < transfers:
            await self._flush(worker)

    async def _flush(self, worker: _Process) -> None:
        batch, worker.batch = worker.batch, []
        if not batch or not worker.alive:
            return
        try:
            worker.stdin.write(_wire.frame(batch))
            await worker.stdin.drain()
        except (ConnectionError, RuntimeError):
            pass  # it died: its listener fails what it had
