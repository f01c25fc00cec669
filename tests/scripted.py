"""An in-memory exchange of scripted answers and bodies, for the engine's unit tests (as httpx's
`MockTransport`): no socket, no aiohttp. The engine sees the protocol seam only (`Exchange`,
`Answer`, `Body`), so a script stands in for any server; what a real server says is the
integration tests' business.

`engine(tmp_path, reply)` makes the `Settings` of a downloader whose every request is answered
by `reply(plan) -> Reply`; `perform` of `adownload._client.batch` then runs one download on
them, to disk, through the real target, receiver, segments, verify and commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from multidict import CIMultiDict
from yarl import URL

from adownload import Limits, Request
from adownload._client.batch import perform
from adownload._disk.sinks import FileSink
from adownload._engine.limits import KeyedPrimitives, Limiter
from adownload._engine.settings import Settings
from adownload._model.errors import DownloadError, HTTPStatusError, IncompleteBodyError
from adownload._model.options import Options
from adownload._model.request import Outcome
from adownload._model.util import IdleTimeout
from adownload._protocols.base import Answer, Exchange, Plan, Verdict


@dataclass
class Reply:
    """One scripted answer: what the server says (`answer`), the chunks of its body, and
    whether the body breaks off after them (`broken`), or a status that fails the request."""

    answer: Answer | None = None
    chunks: list[bytes] = field(default_factory=list)
    broken: bool = False
    status: int | None = None  # an HTTP error instead of an answer


def whole(url: URL, data: bytes, *, etag: str | None = '"v1"', ranges: bool = True) -> Reply:
    """The whole file, as a 200 says it."""
    answer = Answer(Verdict.WHOLE, url, 0, len(data), len(data), etag=etag, ranges=ranges)
    return Reply(answer, [data])


def part(url: URL, data: bytes, start: int, stop: int | None, *, etag: str = '"v1"') -> Reply:
    """Bytes `start` to `stop` (inclusive; None: the end) of `data`, as a 206 says them."""
    end = len(data) if stop is None else stop + 1
    answer = Answer(Verdict.PARTIAL, url, start, len(data), end - start, etag=etag, ranges=True)
    return Reply(answer, [data[start:end]])


class ScriptedBody:
    def __init__(self, reply: Reply, url: str) -> None:
        self._announced = reply.answer.announced if reply.answer is not None else None
        self._received = 0
        self._chunks = list(reply.chunks)
        self._broken = reply.broken
        self._url = url
        self._done = False

    async def read(self) -> bytes:
        if self._chunks:
            chunk = self._chunks.pop(0)
            self._received += len(chunk)
            return chunk
        if self._broken:
            raise IncompleteBodyError(
                f"{self._url}: the body broke off",
                url=self._url,
                expected=self._announced,
                received=self._received,
            )
        self._done = True
        return b""

    def at_eof(self) -> bool:
        return self._done

    def broken(self) -> BaseException | None:
        return None

    def kernel_copy(self) -> tuple[int, bytes] | None:
        return None  # no socket to hand over

    async def after_copy(self, whole: bool) -> None:  # pragma: no cover - never copied
        return None

    async def close(self, *, reuse: bool) -> None:
        self._chunks = []


class ScriptedExchange:
    """Answers every `Plan` with `reply(plan)`; `plans` keeps what was asked, in order."""

    def __init__(self, reply: Callable[[Plan], Reply]) -> None:
        self._reply = reply
        self.plans: list[Plan] = []

    async def open(self, plan: Plan, idle: IdleTimeout, *, url: str) -> tuple[Answer, Any]:
        self.plans.append(plan)
        await asyncio.sleep(0)  # an exchange yields to the loop, as a real one does
        reply = self._reply(plan)
        if reply.status is not None:
            raise HTTPStatusError(f"{url}: {reply.status}", url=url, status=reply.status)
        assert reply.answer is not None
        return reply.answer, ScriptedBody(reply, url)

    def errors(
        self, url: str, *, read: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@dataclass
class Engine:
    """A downloader's machinery with a scripted exchange: `run` downloads one request."""

    settings: Settings
    exchange: ScriptedExchange

    async def run(self, request: Request) -> Outcome:
        return await perform(self.settings, request, None)


@contextlib.contextmanager
def engine(
    dest: Path, reply: Callable[[Plan], Reply], *, limits: Limits | None = None, **options: Any
) -> Iterator[Engine]:
    """The `Settings` of a downloader into `dest` whose requests `reply` answers."""
    exchange = ScriptedExchange(reply)

    def make(kind: str, settings: Settings, request: Request, opts: Options) -> Exchange:
        return cast(Exchange, exchange)

    download_options = Options(**options)
    settings = Settings(
        network=cast(Any, None),  # never used: the scripted exchange stands for the network
        dest=dest,
        options=download_options,
        headers=CIMultiDict(),
        writer=FileSink.open,
        read_bufsize=1 << 16,
        limiter=Limiter(limits or Limits(), max_pause=1.0, emit=None),
        path_locks=KeyedPrimitives(asyncio.Lock),
        emit=None,
        exchange=make,
    )
    yield Engine(settings, exchange)


__all__ = ["DownloadError", "Engine", "Reply", "ScriptedExchange", "engine", "part", "whole"]
