"""One worker process of `adownload.workers.ProcessRunner`, run as
`python -m adownload._runners.process_worker`.

It reads frames (`_runners.wire`) on standard input: first its settings (the directory, the
downloader's options, which events to send), then batches of `(index, Request)` and finally None,
the end. It runs one `Downloader` over all of them with `as_completed`, and writes on standard
output batches of wire events (`_runners.wire.encode`), each outcome among them as a "finished" one,
every `_SEND_INTERVAL` or as soon as `_BATCH` are waiting. Standard output carries nothing else; log
records go to standard error, as the command's would.

A SIGINT (Ctrl-C at a terminal reaches every process of the group; the runner sends one when
its caller cancels) cancels the downloads as an interruption does: `.part` files are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from yarl import URL

from .._client import loop as _loop
from .._client.downloader import Downloader, settings_of
from .._engine.adaptive import RELAYED
from .._model.events import Event, Finished, HostLimitChanged
from .._protocols.opening import import_http
from . import wire as _wire

if TYPE_CHECKING:
    from .._engine.limits import Limiter
    from .._model.request import Request

#: Seconds between two batches of events.
_SEND_INTERVAL = 0.05
#: Events that make a batch go at once.
_BATCH = 256


class _Worker:
    def __init__(self, writer: asyncio.StreamWriter, events: bool, every_event: bool) -> None:
        self._writer = writer
        self._events = events
        self._every_event = every_event
        self._name = f"process {os.getpid()}"
        self._index: dict[int, int] = {}  # id(request) -> index in the caller's input
        self._pending: list[list[Any]] = []
        self._limiter: Limiter | None = None  # the downloader's, once it is open

    async def run(self, reader: asyncio.StreamReader, dest: str, options: dict[str, Any]) -> None:
        queue: asyncio.Queue[tuple[int, Request] | None] = asyncio.Queue()
        feeder = asyncio.create_task(self._feed(reader, queue))
        sender = asyncio.create_task(self._send_forever())
        try:
            async with (
                Downloader(dest=dest, on_event=self._event, **options) as dl,
                contextlib.aclosing(dl.as_completed(self._requests(queue))) as outcomes,
            ):
                self._limiter = settings_of(dl).limiter
                async for outcome in outcomes:
                    assert outcome.request is not None
                    index = self._index.pop(id(outcome.request))
                    self._pending.append(["finished", index, _wire.pack(outcome, self._name)])
                    if len(self._pending) >= _BATCH:
                        await self._send()
        finally:
            for task in (feeder, sender):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._send()

    async def _requests(
        self, queue: asyncio.Queue[tuple[int, Request] | None]
    ) -> AsyncIterator[Request]:
        while (entry := await queue.get()) is not None:
            index, request = entry
            self._index[id(request)] = index
            yield request

    async def _feed(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[int, Request] | None]
    ) -> None:
        try:
            while (batch := await _wire.read_frame(reader)) is not None:
                if isinstance(batch, dict):  # a cut another worker heard: its host is ours too
                    if self._limiter is not None:
                        self._limiter.heard(*batch["cut"])
                    continue
                for entry in batch:
                    queue.put_nowait(entry)
        except EOFError:
            pass  # the caller went away: finish what is here
        queue.put_nowait(None)

    def _event(self, event: Event) -> None:
        if isinstance(event, HostLimitChanged):
            self._tell_cut(event)
            return  # the limit of a share is this process's own
        if not self._events or isinstance(event, Finished):
            return  # outcomes go with as_completed
        index = None if event.request is None else self._index.get(id(event.request))
        if index is None:
            return
        wire = _wire.encode(event, index, self._name)
        if wire is not None:
            self._pending.append(wire)

    def _tell_cut(self, event: HostLimitChanged) -> None:
        """A cut this process heard itself goes to the caller, which tells the other workers:
        they share the host, and it must see the run slow down as one client would."""
        if event.limit >= event.previous or event.reason.endswith(RELAYED):
            return
        gate = None if self._limiter is None else self._limiter.gate(URL(event.url))
        pause = 0.0 if gate is None else gate.pause_left()
        self._pending.append(["cut", None, event.url, event.reason, pause])

    async def _send_forever(self) -> None:
        while True:
            await asyncio.sleep(_SEND_INTERVAL)
            await self._send()

    async def _send(self) -> None:
        if not self._pending:
            return
        batch = _wire.latest_progress(self._pending, finished_only=not self._every_event)
        self._pending = []
        self._writer.write(_wire.frame(batch))
        await self._writer.drain()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    stdin = os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    stdout = os.fdopen(sys.stdout.fileno(), "wb", buffering=0, closefd=False)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    try:
        settings = await _wire.read_frame(reader)
        worker = _Worker(writer, settings["events"], settings["every_event"])
        await worker.run(reader, settings["dest"], settings["options"])
    finally:
        writer.close()


def main() -> int:
    try:
        import_http()  # this process opens a downloader; see import_http
        _loop.run(_main())
    except KeyboardInterrupt:
        return 130
    except EOFError:
        return 0  # the caller went away before it said what to do
    return 0


if __name__ == "__main__":
    sys.exit(main())
