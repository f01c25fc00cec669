"""A segmented download while its connections run: the first body, the helpers that take the
other segments, and the monitor (progress, the resume state saved now and then, the minimum
speed). `_segments.Layout` decides which bytes each connection fetches; this module does the
I/O, through the protocol seam (`Exchange`, `Answer`, `Body`), so it serves every protocol that
serves ranges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from yarl import URL

from ._answer import Answer, Body, Exchange, Plan, Verdict
from ._config import Retry, Segments, Timeout
from ._events import PROGRESS_INTERVAL
from ._exceptions import (
    DownloadError,
    HTTPStatusError,
    IncompleteBodyError,
    RemoteProtocolError,
    StorageError,
)
from ._limits import Limiter
from ._models import Request
from ._plan import layout_for
from ._retry import StartOver, with_retries
from ._segments import Layout, Segment
from ._sinks import FileSink, SinkOpener
from ._state import PartState
from ._stream import Meter, pump
from ._target import Target
from ._util import IdleTimeout, redact, same_origin

log = logging.getLogger("adownload")


class Engine(Protocol):
    """What a segmented download needs of the transfer that runs it."""

    url: str
    request: Request
    target: Target
    timeout: Timeout
    started: float
    no_ranges: set[URL]
    no_segments: set[URL]

    def exchange_for(self, url: URL) -> Exchange: ...

    def watchdog(self, *, grace: float) -> contextlib.AbstractAsyncContextManager[IdleTimeout]: ...

    def discard(self) -> None: ...

    def note_retry(self, what: str, error: DownloadError, delay: float, *, new: bool) -> None: ...


@dataclass(slots=True, eq=False)
class Job:
    """A segmented download while its connections run."""

    url: URL  # where segments go: the final URL of the first answer
    origin: URL  # the URL the attempt started from, resolved again if `url` expires
    validators: PartState
    layout: Layout
    length: int
    done_before: int  # bytes done by an earlier attempt or run
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class Segmented:
    """Fetch one body over up to `count` connections, each writing at its own offsets.

    The first answer is the first segment; the others are ranged requests with If-Range to
    the first answer's final URL, each on a connection of its own that takes a permit of the
    host (the attempt's global permit covers them all). A segment whose connection breaks
    continues from its last written byte, within the one retry loop; a segment that fails for
    good fails the download, and the resume state keeps every range that was written.
    """

    def __init__(
        self,
        engine: Engine,
        job: Job,
        *,
        limiter: Limiter,
        writer: SinkOpener,
        retry: Retry,
    ) -> None:
        self._engine = engine
        self._job = job
        self._limiter = limiter
        self._writer = writer
        self._retry = retry
        #: Progress, minimum speed: the engine's meter for the whole file.
        self.meter = Meter(url=engine.url, request=engine.request, position=job.done_before)

    @classmethod
    def prepare(
        cls,
        engine: Engine,
        answer: Answer,
        plan: Plan,
        offset: int,
        length: int,
        segments: Segments,
        *,
        validators: PartState,
        limiter: Limiter,
        writer: SinkOpener,
        retry: Retry,
    ) -> Segmented:
        """Lay out the segments of a body at `offset` of a file of `length` bytes: the holes of
        a resumed segmented part, else everything from `offset`; the part's state says so
        from now on."""
        state = engine.target.state
        resumed = state is not None and state.sparse and answer.verdict is Verdict.PARTIAL
        missing, done_before = layout_for(state, resumed, offset, length, segments)
        layout = Layout(missing, segments.count, segments.min_size)
        if resumed and state is not None:
            layout.done.extend(state.ranges)
        if state is not None:
            state.sparse = True
            state.ranges = layout.ranges()
            engine.target.save_state()
        log.debug("%s: %d bytes in up to %d segments", redact(engine.url), length, segments.count)
        job = Job(answer.final_url, plan.url, validators, layout, length, done_before)
        return cls(engine, job, limiter=limiter, writer=writer, retry=retry)

    @property
    def layout(self) -> Layout:
        return self._job.layout

    @property
    def done_before(self) -> int:
        return self._job.done_before

    async def run(self, first: Body, sink: FileSink, offset: int, count: int) -> None:
        job = self._job
        segment = job.layout.take(offset)
        segment.sink = sink
        try:
            async with asyncio.TaskGroup() as group:
                helpers = [group.create_task(self._helper()) for _ in range(count - 1)]
                monitor = group.create_task(self._monitor())
                # The first connection runs here, in the permit the attempt holds.
                await self._loop(segment, first)
                await job.finished.wait()
                # Helpers still waiting for a host permit have nothing left to do.
                for task in helpers:
                    task.cancel()
                monitor.cancel()
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from None
        self.meter.finished(job.length)

    async def _helper(self) -> None:
        """A further connection: takes a host permit, then segments until none are left."""
        async with self._limiter.connection(self._job.url):
            await self._loop(None, None, helper=True)

    async def _loop(self, segment: Segment | None, body: Body | None, helper: bool = False) -> None:
        layout = self._job.layout
        while True:
            if segment is None:
                gate = self._limiter.gate(self._job.url) if helper else None
                if gate is not None and gate.over:
                    return  # the host's adaptive limit was cut: give this connection back
                segment = layout.next()
                if segment is None:
                    return
            await self._with_retries(segment, body)
            body = None
            layout.finish(segment)
            if layout.finished:
                self._job.finished.set()
            segment = None

    async def _with_retries(self, segment: Segment, body: Body | None) -> None:
        """Fetch `segment`; a retryable failure continues it from its last written byte."""
        engine, job = self._engine, self._job
        first = [body]

        async def attempt(_: int) -> None:
            taken, first[0] = first[0], None
            if taken is None:
                segment.restart()
            gate = self._limiter.gate(job.url)
            started = 0.0 if gate is None else gate.now()
            try:
                await self._fetch(segment, taken)
            except DownloadError as exc:
                if gate is not None:
                    gate.failed(exc, started)  # adaptive concurrency learns of every failure
                raise

        await with_retries(
            attempt,
            policy=self._retry,
            sources=1,
            started=engine.started,
            final=lambda _: job.origin in engine.no_ranges or job.origin in engine.no_segments,
            on_retry=lambda error, delay: engine.note_retry(
                f"segment {segment!r}", error, delay, new=True
            ),
        )

    async def _fetch(self, segment: Segment, body: Body | None) -> None:
        engine, job = self._engine, self._job
        timeout = engine.timeout
        target = engine.target
        if segment.sink is None:
            part = target.part
            assert part is not None
            try:
                opened = await self._writer(part, existing=True)
            except OSError as exc:
                raise target.storage_error(exc, part) from exc
            assert isinstance(opened, FileSink)
            segment.sink = opened
        sink = segment.sink
        meter = Meter(
            url=engine.url, request=engine.request, position=segment.position,
            bucket=self._limiter.bucket, gauge=self._limiter.gate(job.url),
        )  # fmt: skip
        grace = 0.0 if body else timeout.connect or 0.0
        try:
            async with engine.watchdog(grace=grace) as idle:
                with engine.exchange_for(job.url).errors(engine.url, read=timeout.read):
                    if body is None:
                        body = await self._request(segment, idle)
                    try:
                        stopped = await pump(
                            body, sink, segment, meter, idle.touch, target.storage_error
                        )
                        if not stopped:
                            raise IncompleteBodyError(
                                f"a segment of {redact(engine.url)} ended at byte "
                                f"{segment.position}, before {segment.end}",
                                url=engine.url,
                                expected=segment.end,
                                received=segment.position,
                            )
                    except BaseException:
                        await body.close(reuse=False)
                        raise
                    # Read to its end: the connection can serve another request. Otherwise the
                    # rest of its range is another segment's, and the connection is closed.
                    await body.close(reuse=body.at_eof())
        except BaseException:
            with contextlib.suppress(Exception):
                await sink.close()
            raise
        else:
            try:
                await sink.close()
            except OSError as exc:
                raise target.storage_error(exc) from exc
        finally:
            segment.written = segment.durable()
            segment.sink = None

    async def _request(self, segment: Segment, idle: IdleTimeout) -> Body:
        """A ranged request for the rest of `segment`, checked before a byte of it is used."""
        engine, job = self._engine, self._job
        plan = Plan(
            job.url,
            segment.position,
            stop=segment.end - 1,
            if_range=job.validators.if_range(),
            foreign=not same_origin(job.url, job.origin),
            length=job.length,
        )
        try:
            answer, body = await engine.exchange_for(plan.url).open(plan, idle, url=engine.url)
        except HTTPStatusError as exc:
            if exc.status not in (403, 410) or job.url == job.origin:
                raise
            # A redirect target that stopped working is often an expired signed URL: ask the
            # URL we were given for a fresh one.
            log.info(
                "%s: %d from %s; resolving %s again",
                redact(engine.url), exc.status, redact(job.url), redact(job.origin),
            )  # fmt: skip
            plan.url, plan.foreign = job.origin, False
            answer, body = await engine.exchange_for(plan.url).open(plan, idle, url=engine.url)
        try:
            self._check(answer, plan)
        except BaseException:
            await body.close(reuse=False)
            raise
        job.url = answer.final_url
        return body

    def _check(self, answer: Answer, plan: Plan) -> None:
        """The engine's verdict on a segment's answer."""
        engine, job = self._engine, self._job
        same = (not answer.etag and not answer.last_modified) or job.validators.matches(
            answer.etag, answer.last_modified
        )
        verdict = answer.verdict
        if verdict is Verdict.PARTIAL and answer.length is not None:
            if not same:
                engine.discard()
                raise StartOver
            return
        if verdict is Verdict.WHOLE:
            if same:
                # The same file, whole: this server ignores ranges after all.
                engine.no_ranges.add(job.origin)
                raise RemoteProtocolError(
                    f"{redact(answer.final_url)} answered a range with the whole file",
                    url=engine.url,
                )
            # If-Range did its job: the file changed, and its bytes on hand are worthless.
            log.info("%s changed during the download; starting over", redact(engine.url))
            engine.discard()
            raise StartOver
        # Never spliced in: the next attempt is one stream from the first hole.
        engine.no_segments.add(job.origin)
        raise RemoteProtocolError(
            answer.problem
            or f"{redact(answer.final_url)} says the file ends before bytes={plan.offset}-"
            f"{plan.stop}",
            url=engine.url,
        )

    async def _monitor(self) -> None:
        """Progress events, the resume state saved now and then, and the minimum speed."""
        job, meter, target = self._job, self.meter, self._engine.target
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            now = time.monotonic()
            meter.reached(job.done_before + job.layout.received(), now)
            if target.state is not None and now - last_save >= 1.0:
                # A killed process resumes from what was written by then.
                target.state.ranges = job.layout.ranges()
                with contextlib.suppress(StorageError):
                    target.save_state()
                last_save = now


def _most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error of a segmented download that says most about it: a start-over first (the
    file changed), then the first download error, then anything else."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    for kind in (StartOver, DownloadError, Exception):
        for error in leaves:
            if isinstance(error, kind):
                return error
    return leaves[0] if leaves else group
