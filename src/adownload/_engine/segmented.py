"""A segmented download while its connections run: the first body, the helpers that take the
other segments, and the monitor (progress, the resume state saved now and then, the minimum
speed, the piece hashes). `segments.Layout` decides which bytes each connection fetches,
`sources.Sources` from which URL (the file's and its mirrors, at once, when a checksum or
piece hashes can prove the result), and `segment_job` what each answer means; this module does
the I/O, through the protocol seam (`Exchange`, `Answer`, `Body`), so it serves every protocol
that serves ranges. It is handed the download's data (`Download`) and adds what it learns to
its `Facts`; it never sees the transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from .._disk.sinks import FileSink, SinkOpener
from .._model.errors import (
    DownloadError,
    FileMismatchError,
    HTTPStatusError,
    IncompleteBodyError,
    StorageError,
)
from .._model.events import PROGRESS_INTERVAL
from .._model.util import IdleTimeout, describe_error, redact, same_origin
from .._protocols import splice as _splice
from .._protocols.base import Body, Plan
from .retry import FATAL, StartOver, with_retries
from .segment_job import Job, check_answer, check_mirror, check_pieces, credit, drop
from .stream import Meter, kernel_pump, pump

if TYPE_CHECKING:
    from .._model.config import Retry
    from .download import Download
    from .limits import Limiter
    from .segments import Layout, Segment
    from .settings import Settings
    from .sources import Source

log = logging.getLogger("adownload")

#: Seconds an idle connection waits before it asks again for a segment to take over.
_YOUNG_WAIT = 0.05


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
        download: Download,
        job: Job,
        *,
        settings: Settings,
        retry: Retry,
    ) -> None:
        self._download = download
        self._job = job
        self._limiter: Limiter = settings.limiter
        self._writer: SinkOpener = settings.writer
        self._emit = settings.emit
        self._retry = retry
        #: Progress, minimum speed: the engine's meter for the whole file.
        self.meter = Meter(url=download.url, request=download.request, position=job.done_before)

    @property
    def layout(self) -> Layout:
        return self._job.layout

    @property
    def done_before(self) -> int:
        return self._job.done_before

    def shares(self) -> list[tuple[str, int]]:
        """(URL, bytes) of each source that delivered bytes."""
        for segment in self._job.layout.active:
            credit(self._job, segment)
        return self._job.sources.shares()

    async def run(self, first: Body, sink: FileSink, offset: int, count: int) -> None:
        job = self._job
        segment = job.layout.take(offset)
        segment.sink = sink
        try:
            async with asyncio.TaskGroup() as group:
                helpers = [group.create_task(self._helper()) for _ in range(count - 1)]
                monitor = group.create_task(self._monitor())
                # The first connection runs here, in the permit the attempt holds.
                await self._loop(segment, first, held=job.primary)
                await job.finished.wait()
                # Helpers still waiting for a host permit have nothing left to do.
                for task in helpers:
                    task.cancel()
                monitor.cancel()
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from None
        self.meter.finished(job.length)

    async def _helper(self) -> None:
        """A further connection: segments until none are left. With one source it holds a
        permit of its host throughout; with several, each request takes one of its source's."""
        job = self._job
        if job.several:
            await self._loop(None, None, held=None, helper=True)
            return
        async with self._limiter.connection(job.url):
            await self._loop(None, None, held=job.primary, helper=True)

    async def _loop(
        self,
        segment: Segment | None,
        body: Body | None,
        *,
        held: Source | None,
        helper: bool = False,
    ) -> None:
        """Segments for one connection; `held`: the source whose host permit it holds."""
        layout = self._job.layout
        while True:
            if segment is None:
                gate = self._limiter.gate(self._job.url) if helper and held else None
                if gate is not None and gate.over:
                    return  # the host's adaptive limit was cut: give this connection back
                segment = layout.next(self._next_rate())
                if segment is None:
                    if layout.young():
                        await asyncio.sleep(_YOUNG_WAIT)  # its speed is known soon
                        continue
                    return
            await self._with_retries(segment, body, held)
            body = None
            layout.finish(segment)
            if layout.finished:
                await check_pieces(self._download, self._job)  # a bad piece is pending again
                if layout.finished:
                    self._job.finished.set()
            segment = None

    async def _with_retries(self, segment: Segment, body: Body | None, held: Source | None) -> None:
        """Fetch `segment`; a retryable failure continues it from its last written byte, on
        another source when there are several."""
        download, job = self._download, self._job
        first = [body]
        failed: list[DownloadError] = []

        async def attempt(_: int) -> None:
            taken, first[0] = first[0], None
            if taken is None:
                segment.restart()
            source = job.primary if taken is not None else job.sources.pick(self._room())
            if source is None:  # every source is dropped: the last error says why
                if failed:
                    raise failed[-1]
                reasons = "; ".join(
                    f"{redact(str(s.origin))}: {s.dropped}" for s in job.sources.all
                )
                raise FileMismatchError(
                    f"no source of the file is left ({reasons})", url=download.url
                )
            permit = (
                contextlib.nullcontext() if source is held else self._limiter.connection(source.url)
            )
            source.active += 1  # from the pick on, so that the next pick knows of it
            try:
                async with permit:
                    await on(source, taken)
            finally:
                source.active -= 1

        async def on(source: Source, taken: Body | None) -> None:
            gate = self._limiter.gate(source.url)
            started = 0.0 if gate is None else gate.now()
            try:
                await self._fetch(segment, taken, source)
            except DownloadError as exc:
                if gate is not None:
                    gate.failed(exc, started)  # adaptive concurrency learns of every failure
                failed.append(exc)
                if job.several and not isinstance(exc, FATAL):
                    drop(
                        self._download,
                        self._job,
                        source,
                        describe_error(exc, redact(str(source.url))),
                    )
                raise

        facts = download.facts
        await with_retries(
            attempt,
            policy=self._retry,
            sources=len(job.sources.all),
            started=download.started,
            final=lambda _: job.origin in facts.no_ranges or job.origin in facts.no_segments,
            on_retry=lambda error, delay: download.retrying(
                f"segment {segment!r}", error, delay, new=True
            ),
        )

    def _next_rate(self) -> float | None:
        """With several sources: the speed per connection of the one the next request will
        likely go to, so that a split gives a fast mirror its share of a slow one's rest."""
        job = self._job
        if not job.several:
            return None  # one server: every connection alike, halves
        source = job.sources.pick(self._room())
        return None if source is None else source.speed()

    def _room(self) -> int:
        """Requests of this file one source may have at once: the host's connections."""
        return self._limiter.per_host

    async def _fetch(self, segment: Segment, body: Body | None, source: Source) -> None:
        download, job = self._download, self._job
        timeout = download.timeout
        target = download.target
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
            url=download.url, request=download.request, position=segment.position,
            bucket=self._limiter.bucket, gauge=self._limiter.gate(source.url),
        )  # fmt: skip
        grace = 0.0 if body else timeout.connect or 0.0
        segment.source, segment.credited, segment.credited_at = (
            source, segment.position, time.monotonic()
        )  # fmt: skip
        try:
            async with download.watchdog(grace=grace) as idle:
                with download.exchanges(source.url).errors(download.url, read=timeout.read):
                    if body is None:
                        body = await self._request(segment, idle, source)
                    try:
                        stopped = await self._copy(body, sink, segment, meter, idle)
                        if not stopped:
                            raise IncompleteBodyError(
                                f"a segment of {redact(download.url)} ended at byte "
                                f"{segment.position}, before {segment.end}",
                                url=download.url,
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
            credit(self._job, segment)
            segment.source = None
            job.served.append((segment.since_position, segment.position, source))

    async def _copy(
        self, body: Body, sink: FileSink, segment: Segment, meter: Meter, idle: IdleTimeout
    ) -> bool:
        """The body into the file until the segment's end (True) or the body's (False): in the
        kernel when it can take the body and nothing needs its bytes, else through `pump`."""
        storage_error = self._download.target.storage_error
        taken = body.kernel_copy() if meter.passive else None
        if taken is None:
            return await pump(body, sink, segment, meter, idle.touch, storage_error)
        segment.reserve = _splice.PIPE_SIZE  # a split leaves the copy what its pipe may hold
        try:
            position = await kernel_pump(taken, sink, segment, meter, idle.touch, storage_error)
        finally:
            os.close(taken[0])
            segment.written = segment.durable()
            segment.reserve = 0
        # FTP sends to the end of the file: at its end, the closing reply is read.
        await body.after_copy(position == self._job.length)
        return position >= segment.end

    async def _request(self, segment: Segment, idle: IdleTimeout, source: Source) -> Body:
        """A ranged request for the rest of `segment`, checked before a byte of it is used."""
        download, job = self._download, self._job
        primary = source is job.primary
        theirs = job.validators if primary else source.validators
        plan = Plan(
            source.url,
            segment.position,
            stop=segment.end - 1,
            if_range=None if theirs is None else theirs.if_range(),
            foreign=not same_origin(source.url, job.origin),
            # A mirror's answer is checked against the file's length here, by `_check_mirror`.
            length=job.length if primary else None,
        )
        try:
            answer, body = await download.exchanges(plan.url).open(plan, idle, url=download.url)
        except HTTPStatusError as exc:
            if exc.status not in (403, 410) or source.url == source.origin:
                raise
            # A redirect target that stopped working is often an expired signed URL: ask the
            # URL we were given for a fresh one.
            log.info(
                "%s: %d from %s; resolving %s again",
                redact(download.url), exc.status, redact(source.url), redact(source.origin),
            )  # fmt: skip
            plan.url = source.origin
            plan.foreign = not same_origin(source.origin, job.origin)
            answer, body = await download.exchanges(plan.url).open(plan, idle, url=download.url)
        try:
            if primary:
                check_answer(self._download, self._job, answer, plan)
            else:
                check_mirror(self._download, self._job, answer, plan, source)
        except BaseException:
            await body.close(reuse=False)
            raise
        source.url = answer.final_url
        if primary:
            job.url = answer.final_url
        return body

    async def _monitor(self) -> None:
        """Progress events, the resume state saved now and then, and the minimum speed."""
        job, meter, target = self._job, self.meter, self._download.target
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            now = time.monotonic()
            for segment in job.layout.active:
                credit(self._job, segment)
            meter.reached(job.done_before + job.layout.received(), now)
            await check_pieces(self._download, self._job)
            if now - last_save >= 1.0:
                # A killed process resumes from what was written by then.
                with contextlib.suppress(StorageError):
                    target.note_ranges(job.layout.ranges())
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
