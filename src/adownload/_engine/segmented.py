"""A segmented download while its connections run: the first body, the helpers that take the
other segments, and the monitor (progress, the resume state saved now and then, the minimum
speed, the piece hashes). `_segments.Layout` decides which bytes each connection fetches and
`_sources.Sources` from which URL (the file's and its mirrors, at once, when a checksum or
piece hashes can prove the result); this module does the I/O, through the protocol seam
(`Exchange`, `Answer`, `Body`), so it serves every protocol that serves ranges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

from yarl import URL

from .._disk.sinks import FileSink, SinkOpener
from .._disk.state import PartState
from .._disk.target import Target
from .._model.config import Retry, Segments, Timeout
from .._model.errors import (
    DownloadError,
    FileMismatchError,
    HTTPStatusError,
    IncompleteBodyError,
    RemoteProtocolError,
    StorageError,
)
from .._model.events import PROGRESS_INTERVAL, SourceDropped
from .._model.pieces import PieceCheck, pieces_failed
from .._model.request import Request
from .._model.util import IdleTimeout, describe_error, redact, same_origin
from .._protocols import splice as _splice
from .._protocols.base import Answer, Body, Exchange, Plan, Verdict
from .limits import Limiter
from .plan import layout_for
from .retry import FATAL, StartOver, with_retries
from .segments import Layout, Segment
from .settings import Settings
from .sources import Source, Sources
from .stream import Meter, kernel_pump, pump

log = logging.getLogger("adownload")

#: Seconds an idle connection waits before it asks again for a segment to take over.
_YOUNG_WAIT = 0.05
#: With several sources, the pieces of the layout at first: this many `min_size` each.
_SHARE = 4


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

    url: URL  # where the first answer's segments go: its final URL
    origin: URL  # the URL the attempt started from, resolved again if `url` expires
    validators: PartState
    layout: Layout
    length: int
    done_before: int  # bytes done by an earlier attempt or run
    #: Where segments come from: the attempt's URL first, then the mirrors that may serve
    #: segments at once (none without a checksum or piece hashes to prove their bytes).
    sources: Sources
    pieces: PieceCheck | None = None
    #: (start, end, source) of each request that ended: who sent which bytes.
    served: list[tuple[int, int, Source]] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    pieces_checked: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def primary(self) -> Source:
        return self.sources.all[0]

    @property
    def several(self) -> bool:
        return len(self.sources.all) > 1


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
        settings: Settings,
        retry: Retry,
    ) -> None:
        self._engine = engine
        self._job = job
        self._limiter: Limiter = settings.limiter
        self._writer: SinkOpener = settings.writer
        self._emit = settings.emit
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
        mirrors: list[URL],
        settings: Settings,
        retry: Retry,
    ) -> Segmented:
        """Lay out the segments of a body at `offset` of a file of `length` bytes: the holes of
        a resumed segmented part, else everything from `offset`; the part's state says so
        from now on. `mirrors`: further URLs that serve segments beside the answer's."""
        state = engine.target.state
        resumed = state is not None and state.sparse and answer.verdict is Verdict.PARTIAL
        missing, done_before = layout_for(state, resumed, offset, length, segments)
        pieces = engine.request.pieces
        align = 1 if pieces is None else pieces.length
        sources = Sources([plan.url, *(url for url in mirrors if url != plan.url)])
        sources.all[0].url = answer.final_url
        cuts = segments.count
        if len(sources.all) > 1:
            # Pieces of a few min_size each: every connection picks its source again soon, so
            # connections move to the fast mirrors within seconds, not after a 1/count share.
            total = sum(end - start for start, end in missing)
            cuts = max(cuts, -(-total // (_SHARE * segments.min_size)))
        layout = Layout(missing, cuts, segments.min_size, align)
        if resumed and state is not None:
            layout.done.extend(state.ranges)
        if state is not None:
            state.sparse = True
            state.ranges = layout.ranges()
            engine.target.save_state()
        log.debug("%s: %d bytes in up to %d segments", redact(engine.url), length, segments.count)
        job = Job(
            answer.final_url, plan.url, validators, layout, length, done_before, sources,
            None if pieces is None else PieceCheck(pieces, length),
        )  # fmt: skip
        return cls(engine, job, settings=settings, retry=retry)

    @property
    def layout(self) -> Layout:
        return self._job.layout

    @property
    def done_before(self) -> int:
        return self._job.done_before

    def shares(self) -> list[tuple[str, int]]:
        """(URL, bytes) of each source that delivered bytes."""
        for segment in self._job.layout.active:
            self._credit(segment)
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
                await self._check_pieces()  # a bad piece is pending again
                if layout.finished:
                    self._job.finished.set()
            segment = None

    async def _with_retries(self, segment: Segment, body: Body | None, held: Source | None) -> None:
        """Fetch `segment`; a retryable failure continues it from its last written byte, on
        another source when there are several."""
        engine, job = self._engine, self._job
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
                    f"no source of the file is left ({reasons})", url=engine.url
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
                    self._drop(source, describe_error(exc, redact(str(source.url))))
                raise

        await with_retries(
            attempt,
            policy=self._retry,
            sources=len(job.sources.all),
            started=engine.started,
            final=lambda _: job.origin in engine.no_ranges or job.origin in engine.no_segments,
            on_retry=lambda error, delay: engine.note_retry(
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

    def _drop(self, source: Source, why: str) -> None:
        """Use `source` no more for this file, unless it is the last one left."""
        job = self._job
        if source.dropped is not None or len(job.sources.usable) < 2:
            return
        job.sources.drop(source, why)
        shown = redact(str(source.origin))
        log.info("%s: not using %s any more: %s", redact(self._engine.url), shown, why)
        if self._emit is not None:
            self._emit(SourceDropped(self._engine.url, self._engine.request, shown, why))

    async def _fetch(self, segment: Segment, body: Body | None, source: Source) -> None:
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
            bucket=self._limiter.bucket, gauge=self._limiter.gate(source.url),
        )  # fmt: skip
        grace = 0.0 if body else timeout.connect or 0.0
        segment.source, segment.credited, segment.credited_at = (
            source, segment.position, time.monotonic()
        )  # fmt: skip
        try:
            async with engine.watchdog(grace=grace) as idle:
                with engine.exchange_for(source.url).errors(engine.url, read=timeout.read):
                    if body is None:
                        body = await self._request(segment, idle, source)
                    try:
                        stopped = await self._copy(body, sink, segment, meter, idle)
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
            self._credit(segment)
            segment.source = None
            job.served.append((segment.since_position, segment.position, source))

    async def _copy(
        self, body: Body, sink: FileSink, segment: Segment, meter: Meter, idle: IdleTimeout
    ) -> bool:
        """The body into the file until the segment's end (True) or the body's (False): in the
        kernel when it can take the body and nothing needs its bytes, else through `pump`."""
        storage_error = self._engine.target.storage_error
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

    def _credit(self, segment: Segment) -> None:
        """Give the source of `segment`'s request the bytes that arrived since last time."""
        source = segment.source
        if source is None:
            return
        now = time.monotonic()
        self._job.sources.credit(
            source, segment.position - segment.credited, now - segment.credited_at
        )
        segment.credited, segment.credited_at = segment.position, now

    async def _request(self, segment: Segment, idle: IdleTimeout, source: Source) -> Body:
        """A ranged request for the rest of `segment`, checked before a byte of it is used."""
        engine, job = self._engine, self._job
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
            answer, body = await engine.exchange_for(plan.url).open(plan, idle, url=engine.url)
        except HTTPStatusError as exc:
            if exc.status not in (403, 410) or source.url == source.origin:
                raise
            # A redirect target that stopped working is often an expired signed URL: ask the
            # URL we were given for a fresh one.
            log.info(
                "%s: %d from %s; resolving %s again",
                redact(engine.url), exc.status, redact(source.url), redact(source.origin),
            )  # fmt: skip
            plan.url = source.origin
            plan.foreign = not same_origin(source.origin, job.origin)
            answer, body = await engine.exchange_for(plan.url).open(plan, idle, url=engine.url)
        try:
            if primary:
                self._check(answer, plan)
            else:
                self._check_mirror(answer, plan, source)
        except BaseException:
            await body.close(reuse=False)
            raise
        source.url = answer.final_url
        if primary:
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

    def _check_mirror(self, answer: Answer, plan: Plan, source: Source) -> None:
        """A mirror's answer to a segment: the range asked for, of a file of the same length,
        and of the same version as its earlier answers; otherwise it is dropped for this file
        (the file's own URL and validators are not in question)."""
        job = self._job
        if answer.verdict is Verdict.PARTIAL and answer.length == job.length:
            if source.validators is None:
                mine = PartState.of(source.origin, job.length, answer.etag, answer.last_modified)
                source.validators = mine if mine.resumable else None
                return
            if source.validators.matches(answer.etag, answer.last_modified):
                return
            why = "its copy changed during the download"
        elif answer.verdict is Verdict.WHOLE:
            why = "it answers a range with the whole file"
        elif answer.length is not None and answer.length != job.length:
            why = f"it says the file is {answer.length} bytes, not {job.length}"
        else:
            why = answer.problem or f"its answer does not fit bytes={plan.offset}-{plan.stop}"
        self._drop(source, why)
        raise FileMismatchError(f"mirror {redact(plan.url)}: {why}", url=self._engine.url)

    async def _check_pieces(self) -> None:
        """Hash the pieces the file now holds whole; a bad one is fetched again, first, and
        the source that sent it (when one source did) gets a strike."""
        job, engine = self._job, self._engine
        checks, pieces = job.pieces, engine.request.pieces
        part = engine.target.part
        if checks is None or pieces is None or part is None:
            return
        async with job.pieces_checked:
            try:
                bad = await checks.check(part, checks.ready(job.layout.ranges()))
            except OSError as exc:
                raise engine.target.storage_error(exc, part) from exc
            for index in bad:
                start, end = checks.span(index)
                senders = self._senders(start, end)
                log.info(
                    "%s: piece %d (bytes %d-%d) is bad; fetching it again",
                    redact(engine.url), index, start, end - 1,
                )  # fmt: skip
                if len(senders) == 1:
                    (sender,) = senders
                    if job.sources.strike(sender):
                        self._drop(sender, "it sent two bad pieces")
                if checks.failures > 3 + 2 * len(job.sources.all):
                    why = f"{checks.failures} pieces failed their hashes, piece {index} last"
                    raise pieces_failed(engine.url, pieces, index, why)
                checks.invalidate(start, end)
                job.layout.redo(start, end)

    def _senders(self, start: int, end: int) -> set[Source]:
        """The sources whose requests delivered bytes of `[start, end)`."""
        job = self._job
        senders = {source for a, b, source in job.served if a < end and start < b}
        for segment in job.layout.active:
            if (
                segment.source is not None
                and segment.since_position < end
                and start < segment.position
            ):
                senders.add(segment.source)
        return senders

    async def _monitor(self) -> None:
        """Progress events, the resume state saved now and then, and the minimum speed."""
        job, meter, target = self._job, self.meter, self._engine.target
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            now = time.monotonic()
            for segment in job.layout.active:
                self._credit(segment)
            meter.reached(job.done_before + job.layout.received(), now)
            await self._check_pieces()
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
