"""One file's way from URL to disk: plan, exchange, sink, verify, commit, outcome.

Only a complete, verified file ever reaches its final name. Bytes go to `<name>.part`; when
the server gave validators (a strong ETag or Last-Modified), `<name>.part.state` records what
the part belongs to, so a later attempt, or a later run, continues it instead of starting over.
The part is moved into place (`Target.commit`) once the body is complete and every digest
matches. A failure keeps a resumable part and removes anything else; the final name is never
touched before the commit.

`Transfer` is the engine for one file and knows no protocol: each attempt asks its `Exchange`
(`_http.py`, `_ftp.py`) for an `Answer` and a `Body` (`_answer.py`) and decides from the
verdict what to keep, discard or retry. Everything on disk is the `Target`'s (`_target.py`),
bytes go through `_stream.pump`, segments through `_segmented.Segmented`, retries through
`_retry.with_retries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from yarl import URL

from . import _files, _protocols
from ._answer import Answer, Body, Exchange, Plan, Verdict
from ._config import Segments
from ._events import Retrying, Started
from ._exceptions import (
    ChecksumMismatchError,
    DownloadError,
    FTPReplyError,
    HTTPStatusError,
    RemoteProtocolError,
    SizeLimitError,
    TotalTimeout,
)
from ._models import Outcome, Request, check_credentials
from ._plan import Next, judge, plan_for, segments_for
from ._retry import StartOver, with_retries
from ._segmented import Segmented
from ._segments import Layout
from ._settings import Settings
from ._sinks import FileSink, Sink
from ._state import PartState
from ._stream import Meter, Span, read_watchdog, stream_body
from ._target import Skipped, Target
from ._util import IdleTimeout, redact
from ._verify import NO_HASHES, Expected, Hashes, check_all, expected_digests

log = logging.getLogger("adownload")


class Transfer:
    """The state of one download while it runs; `run()` does it and returns its `Outcome`."""

    def __init__(self, settings: Settings, request: Request, dest: Path | None) -> None:
        self._settings = settings
        self.request = request
        # What outcomes, events, errors and logs name: the URL without its userinfo. Only the
        # request itself (the caller's own object) holds the URL as given.
        self.url = redact(str(request.url))
        self.options = options = settings.options.for_request(request)
        self.timeout = options.timeout
        self.existing = options.existing
        self.max_size = options.max_size
        self._dest = dest
        self._resume = options.resume and not options.decode_content
        # The final path, the .part and its state: everything this download does on disk.
        self.target = Target(settings, request, self.url, self.existing, resume=self._resume)
        self.started = time.monotonic()
        # What the outcome reports.
        self.status: int | None = None
        self.final_url: str | None = None
        self.attempts = 0
        self.resumed_from = 0
        self.etag: str | None = None  # validators of the answer that produced the file
        self.last_modified: str | None = None
        self._size = 0
        self._meter: Meter | None = None  # while a body runs, it counts the size
        # What earlier attempts learnt about the URLs.
        self.no_ranges: set[URL] = set()  # URLs whose range answers cannot be trusted
        self.no_segments: set[URL] = set()  # URLs whose bounded ranges (segments) fail
        self._exchanges: dict[str, Exchange] = {}
        self._sink_size = 0  # bytes in a caller's sink
        self._sink_touched = False  # whether a caller's sink has been written to
        self._stack: contextlib.AsyncExitStack | None = None
        self._idle: IdleTimeout  # the read watchdog of the attempt under way
        self._layout: Layout | None = None  # the segments of a segmented attempt

    @property
    def size(self) -> int:
        """Bytes of the file on hand (what the outcome reports as its size)."""
        return self._meter.position if self._meter is not None else self._size

    @size.setter
    def size(self, value: int) -> None:
        self._meter = None
        self._size = value

    def outcome(self, error: DownloadError | None = None, *, skipped: bool = False) -> Outcome:
        return Outcome(
            url=self.url,
            request=self.request,
            path=self.target.path,
            error=error,
            status=self.status,
            size=self.size,
            skipped=skipped,
            final_url=self.final_url,
            elapsed=time.monotonic() - self.started,
            attempts=self.attempts,
            resumed_from=self.resumed_from,
            etag=self.etag,
            last_modified=self.last_modified,
            replaced=self.target.replaced and error is None and not skipped,
        )

    # --- what the segments and the protocols use --------------------------------------------

    def exchange_for(self, url: URL) -> Exchange:
        """The exchange of `url`'s protocol, made once per transfer."""
        kind = _protocols.kind(url)
        exchange = self._exchanges.get(kind)
        if exchange is None:
            exchange = _protocols.exchange(kind, self._settings, self.request, self.options)
            self._exchanges[kind] = exchange
        return exchange

    def watchdog(self, *, grace: float) -> contextlib.AbstractAsyncContextManager[IdleTimeout]:
        """An `IdleTimeout` for one exchange, whose expiry the caller sees as `ReadTimeout`."""
        return read_watchdog(self.timeout.read, grace=grace, url=self.url)

    def discard(self) -> None:
        """Forget the bytes on hand: in a caller's sink, or the `.part` (if ours) and its state."""
        self._sink_size = 0
        self.target.discard()

    def note_retry(self, what: str, error: DownloadError, delay: float, *, new: bool) -> None:
        """Another request follows after `delay`; `new`: one that no attempt counted yet."""
        if new:
            self.attempts += 1
        log.info("%s %d for %s failed: %s", what, self.attempts, self.url, error)
        if self._settings.emit is not None:
            self._settings.emit(Retrying(self.url, self.request, self.attempts, delay, error))

    # --- the whole download ---------------------------------------------------------------

    async def run(self) -> Outcome:
        """Download the file; raise a `DownloadError` when it fails for good."""
        request = self.request
        check_credentials(request, self._settings.headers, self.url)
        try:
            async with contextlib.AsyncExitStack() as stack:
                self._stack = stack
                if request.sink is None:
                    if request.path is not None:
                        target = Path(request.path)
                        self.target.ensure_directory(target.parent)
                        await self.target.claim(stack, target)
                    elif not self.options.content_disposition:
                        name = _files.name_from_url(request.parsed_url)
                        directory = self.target.directory(self._dest)
                        await self.target.claim(stack, self.target.join(directory, name))
                    # else: the name comes with the first answer, see _receive.
                await self._with_total_timeout()
        except Skipped as skip:
            self.target.path = skip.path
            self.size = 0
            return self.outcome(skipped=True)
        return self.outcome()

    async def _with_total_timeout(self) -> None:
        limit = self.timeout.total
        total = asyncio.timeout(limit)
        sink = self.request.sink
        try:
            async with total:
                await self._attempt_all()
            if sink is not None:
                await self._close(sink)
        except TimeoutError as exc:
            if sink is not None:
                await _close_quietly(sink)
            if total.expired():
                raise TotalTimeout(
                    f"download took longer than {limit}s: {self.url}",
                    url=self.url,
                    phase="total",
                    seconds=limit,
                ) from exc
            raise
        except BaseException:
            if sink is not None:
                await _close_quietly(sink)
            raise

    async def _attempt_all(self) -> None:
        """Try the URL and its mirrors, retrying as the `Retry` policy says."""
        urls = [self.request.parsed_url, *self.request.parsed_mirrors]

        async def attempt(index: int) -> None:
            while True:
                self.attempts += 1
                try:
                    await self._attempt(urls[index])
                    return
                except StartOver:
                    log.info("starting %s over from the first byte", self.url)

        await with_retries(
            attempt,
            policy=self.options.retry,
            sources=len(urls),
            started=self.started,
            on_retry=lambda error, delay: self.note_retry("attempt", error, delay, new=False),
        )

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, url: URL) -> None:
        plan = self._plan(url)
        exchange = self.exchange_for(url)
        timeout = self.timeout
        async with (
            self._settings.limiter.slot(url),
            self.watchdog(grace=timeout.connect or 0.0) as idle,
        ):
            self._idle = idle
            with exchange.errors(self.url, read=timeout.read):
                try:
                    answer, body = await exchange.open(plan, idle, url=self.url)
                except HTTPStatusError as exc:
                    self.status = exc.status
                    raise
                except FTPReplyError as exc:
                    self.status = exc.code
                    raise
                try:
                    await self._receive(answer, body, plan)
                except BaseException:
                    await body.close(reuse=False)
                    raise
                await body.close(reuse=body.at_eof())

    def _plan(self, url: URL) -> Plan:
        state = self.target.state
        ranges = self._resume and url not in self.no_ranges
        if ranges and state is not None and state.sparse and state.length:
            if url not in self.no_segments:
                return plan_for(url, state, have=0, ranges=True)
            start = self.target.to_prefix()  # now a prefix, continued in one stream
            log.info("%s: continuing from byte %d in one stream", self.url, start)
        have = self._bytes_on_hand() if ranges and state is not None else 0
        return plan_for(url, state, have=have, ranges=ranges)

    async def _receive(self, answer: Answer, body: Body, plan: Plan) -> None:
        self.status = answer.status
        self.final_url = redact(str(answer.final_url))
        self.etag, self.last_modified = answer.etag, answer.last_modified
        self._layout = None
        offset, length = self._judge(answer, plan)
        if offset is None:
            await self._finish_complete()
            return
        # A whole body, not the continuation of bytes on hand (a partial answer may start at
        # 0: the first hole of a segmented part).
        fresh = answer.verdict is Verdict.WHOLE
        if self.request.sink is None and self.target.part is None:
            # Content-Disposition naming: the target is known only now.
            name = answer.name or _files.name_from_url(self.request.parsed_url)
            assert self._stack is not None
            directory = self.target.directory(self._dest)
            await self.target.claim(self._stack, self.target.join(directory, name), resume=False)
        if self.max_size is not None and length is not None and length > self.max_size:
            self.discard()
            raise SizeLimitError(
                f"{self.url} is {length} bytes, over the limit of {self.max_size}",
                url=self.url,
                limit=self.max_size,
            )
        if fresh:
            # A fresh body starts: remember its validators when it can be resumed later.
            state = self._validators(answer, length)
            self._sink_size = 0
            self.target.start_fresh(state if self._resume and state.resumable else None, length)
        # A probe re-reads the last byte of a part that is already whole.
        self.resumed_from = offset + 1 if plan.probe else offset
        sink = self.request.sink
        if sink is not None:
            if fresh and self._sink_touched:
                await _truncate(sink, self.url)
            self._sink_touched = True
            await self._stream(answer, body, sink, offset, length)
            return
        segments = self._segmenting(answer, plan, offset, length, fresh)
        file_sink = await self.target.open_part(fresh)
        try:
            if segments is not None and length is not None:
                assert isinstance(file_sink, FileSink)
                await self._segmented(answer, body, file_sink, plan, offset, length, segments)
            else:
                await self._stream(answer, body, file_sink, offset, length)
        except BaseException as exc:
            await _close_quietly(file_sink)
            self.target.keep_or_discard(
                exc, None if self._layout is None else self._layout.ranges()
            )
            raise
        await self._close(file_sink)
        self.target.commit()
        log.debug("saved %s (%d bytes)", self.target.path, self.size)

    def _judge(self, answer: Answer, plan: Plan) -> tuple[int | None, int | None]:
        """Carry out `_plan.judge`: (where the body goes, the whole file's length); offset
        None when the bytes on hand are the whole, current file."""
        judgement = judge(answer, plan, self.target.state)
        match judgement.next:
            case Next.REFUSE:
                self.no_ranges.add(plan.url)
                raise RemoteProtocolError(answer.problem, url=self.url)
            case Next.START_OVER:
                self.discard()
                raise StartOver
            case Next.COMPLETE:
                return None, None
        if judgement.discard:
            log.info("%s: the server sent the whole file; starting over", self.url)
            self.discard()
        return judgement.offset, judgement.length

    async def _finish_complete(self) -> None:
        """The bytes on hand are the whole current file: verify the checksum and commit."""
        self.size = self.resumed_from = self._bytes_on_hand()
        full, partial, expected = expected_digests(self.request.expected_digest, ())
        if expected:
            await self._hash_prefix(full, self.size)
            self._verify(expected, full, partial)
        if self.request.sink is None:
            self.target.commit()

    def _validators(self, answer: Answer, length: int | None) -> PartState:
        return PartState.of(self.request.parsed_url, length, answer.etag, answer.last_modified)

    # --- one stream -------------------------------------------------------------------------

    def _new_meter(self, position: int, length: int | None, full: Hashes, partial: Hashes) -> Meter:
        settings, timeout = self._settings, self.timeout
        min_speed = timeout.min_speed
        return Meter(
            url=self.url,
            request=self.request,
            position=position,
            length=length,
            emit=settings.emit,
            bucket=settings.limiter.bucket,
            full=full,
            partial=partial,
            max_size=self.max_size,
            min_speed=None if min_speed is None else (min_speed, timeout.min_speed_window),
            on_limit=self.discard,
        )

    async def _stream(
        self, answer: Answer, body: Body, sink: Sink, offset: int, length: int | None
    ) -> None:
        """Copy the body into `sink` from `offset`, hashing, counting and checking as it goes."""
        settings = self._settings
        full, partial, expected = self._expected_digests(answer)
        if full and offset:
            await self._hash_prefix(full, offset)
        if settings.emit is not None:
            settings.emit(Started(self.url, self.request, self.target.path, length, offset))
        meter = self._meter = self._new_meter(offset, length, full, partial)
        try:
            await stream_body(
                answer, body, sink, Span(offset), meter,
                length=length, touch=self._idle.touch, storage_error=self.target.storage_error,
                url=self.url, kernel=self.request.sink is None, on_excess=self.discard,
            )  # fmt: skip
        finally:
            if self.request.sink is not None:
                self._sink_size = meter.position
        self._verify(expected, full, partial)

    def _verify(self, expected: list[Expected], full: Hashes, partial: Hashes = NO_HASHES) -> None:
        """Check every expected digest; a mismatch discards the bytes on hand, so nothing of a
        wrong file is kept for resuming."""
        try:
            check_all(expected, full, partial, url=self.url)
        except ChecksumMismatchError:
            self.discard()
            raise

    def _expected_digests(self, answer: Answer) -> tuple[Hashes, Hashes, list[Expected]]:
        return expected_digests(self.request.expected_digest, answer.digests)

    async def _hash_prefix(self, hashes: Hashes, length: int) -> None:
        """Feed the bytes already on hand to `hashes`: a resumed file is hashed whole."""
        if self.request.sink is not None:
            raise RemoteProtocolError(
                "cannot verify a digest of a resumed download into a custom sink", url=self.url
            )
        await self.target.hash_part(hashes, length)

    # --- segments ---------------------------------------------------------------------------

    def _segmenting(
        self, answer: Answer, plan: Plan, offset: int, length: int | None, fresh: bool
    ) -> Segments | None:
        settings, state = self._settings, self.target.state
        splittable = not (
            self.options.decode_content
            # Each segment opens its own FileSink on the part; other writers may not take
            # writes out of order (a generator cannot).
            or settings.writer != FileSink.open
            or plan.url in self.no_ranges
            or plan.url in self.no_segments
        )
        return segments_for(
            self.options.segments, answer, plan,
            offset=offset, length=length, fresh=fresh, state=state,
            validators=state or self._validators(answer, length), splittable=splittable,
        )  # fmt: skip

    async def _segmented(
        self,
        answer: Answer,
        body: Body,
        sink: FileSink,
        plan: Plan,
        offset: int,
        length: int,
        segments: Segments,
    ) -> None:
        """Fetch the body over up to `segments.count` connections (see `_segmented.py`), then
        check the digests of the whole file."""
        settings = self._settings
        validators = self.target.state or self._validators(answer, length)
        runner = Segmented.prepare(
            self, answer, plan, offset, length, segments, validators=validators,
            limiter=settings.limiter, writer=settings.writer, retry=self.options.retry,
        )  # fmt: skip
        self._layout = runner.layout
        self.resumed_from = done_before = runner.done_before
        self._idle.disarm()  # from here on each connection watches its own silence
        full, _, expected = self._expected_digests(answer)
        if settings.emit is not None:
            settings.emit(Started(self.url, self.request, self.target.path, length, done_before))
        self._meter = runner.meter = self._new_meter(done_before, length, NO_HASHES, NO_HASHES)
        await runner.run(body, sink, offset, segments.count)
        # Bytes arrived out of order, so a digest of the whole file cannot be computed while
        # streaming: read the finished part once. A Content-Digest of one partial answer
        # covers only its own part and is not checked here.
        checks = [entry for entry in expected if entry[2] == "full"]
        if checks:
            await self._hash_prefix(full, length)
            self._verify(checks, full)

    # --- the bytes on hand ----------------------------------------------------------------------

    def _bytes_on_hand(self) -> int:
        if self.request.sink is not None:
            return self._sink_size
        return self.target.bytes_on_hand()

    async def _close(self, sink: Sink) -> None:
        try:
            await sink.close()
        except OSError as exc:
            raise self.target.storage_error(exc) from exc


async def _truncate(sink: Sink, url: str) -> None:
    """Empty a caller's sink before a download starts over, if the sink can be emptied."""
    truncate = getattr(sink, "truncate", None)
    if truncate is None:
        raise DownloadError(
            f"{redact(url)} must start over, but its sink cannot be emptied (it has no truncate())",
            url=url,
        )
    await truncate(0)


async def _close_quietly(sink: Sink) -> None:
    # The error that got us here matters more than one from closing.
    with contextlib.suppress(Exception):
        await sink.close()
