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
from collections.abc import AsyncIterator
from pathlib import Path

from yarl import URL

from . import _files, _protocols
from ._answer import Answer, Body, Exchange, Expected, Plan, Verdict
from ._config import Segments
from ._events import Retrying, Started
from ._exceptions import (
    ChecksumMismatchError,
    ContentDecodingError,
    DownloadError,
    FTPReplyError,
    HTTPStatusError,
    InvalidRequestError,
    ReadTimeout,
    RemoteProtocolError,
    SizeLimitError,
    TotalTimeout,
)
from ._models import Outcome, Request
from ._retry import StartOver, with_retries
from ._segmented import Job, Segmented
from ._segments import Layout
from ._settings import Settings
from ._sinks import FileSink, Sink
from ._state import PartState
from ._stream import NO_HASHES, Meter, Span, incomplete, pump, splice_body
from ._target import Skipped, Target
from ._util import IdleTimeout, redact
from ._verify import Hashes, check

log = logging.getLogger("adownload")


class Transfer:
    """The state of one download while it runs; `run()` does it and returns its `Outcome`."""

    def __init__(self, settings: Settings, request: Request, dest: Path | None) -> None:
        self._settings = settings
        self.request = request
        # What outcomes, events, errors and logs name: the URL without its userinfo. Only the
        # request itself (the caller's own object) holds the URL as given.
        self.url = redact(str(request.url))
        self.timeout = request.timeout or settings.timeout
        self.existing = request.existing or settings.existing
        self.max_size = request.max_size if request.max_size is not None else settings.max_size
        self._dest = dest
        self._resume = settings.resume and not settings.decode_content
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
            exchange = _protocols.exchange(kind, self._settings, self.request, self.timeout)
            self._exchanges[kind] = exchange
        return exchange

    @contextlib.asynccontextmanager
    async def watchdog(self, *, grace: float) -> AsyncIterator[IdleTimeout]:
        """An `IdleTimeout` for one exchange, whose expiry the caller sees as `ReadTimeout`."""
        seconds = self.timeout.read
        idle = IdleTimeout(seconds, grace=grace)
        try:
            async with idle:
                yield idle
        except TimeoutError as exc:
            if idle.expired():
                raise ReadTimeout(
                    f"no data received for {seconds}s from {self.url}",
                    url=self.url,
                    phase="read",
                    seconds=seconds,
                ) from exc
            raise

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
        self._check_credentials()
        try:
            async with contextlib.AsyncExitStack() as stack:
                self._stack = stack
                if request.sink is None:
                    if request.path is not None:
                        target = Path(request.path)
                        self.target.ensure_directory(target.parent)
                        await self.target.claim(stack, target)
                    elif not self._settings.content_disposition:
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

    def _check_credentials(self) -> None:
        """A URL's userinfo and an Authorization header are two credentials for one request:
        refuse the pair before anything is sent, rather than guess which one counts."""
        if "Authorization" not in self._settings.headers and not (
            self.request.headers and "authorization" in (k.lower() for k in self.request.headers)
        ):
            return
        for url in (self.request.parsed_url, *self.request.parsed_mirrors):
            if url.raw_user is not None or url.raw_password is not None:
                raise InvalidRequestError(
                    f"{redact(url)} has a user name or password in the URL and an Authorization "
                    "header: give one of them",
                    url=self.url,
                )

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
            policy=self._settings.retry,
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
        if state is None or not self._resume or url in self.no_ranges:
            return Plan(url, 0)
        if_range = state.if_range()
        length = state.length
        if state.sparse and length and url in self.no_segments:
            start = self.target.to_prefix()
            log.info("%s: continuing from byte %d in one stream", self.url, start)
        if state.sparse and length:
            # A segmented part: ask for its first hole; the segments then fill the others.
            missing = state.missing()
            if missing and missing[0] != (0, length):
                start, end = missing[0]
                stop = None if end == length else end - 1
                return Plan(url, start, stop=stop, if_range=if_range, length=length)
            have = 0 if missing else length
        else:
            have = self._bytes_on_hand()
        if length is not None and have >= length > 0:
            # Complete already: ask for the last byte only, to learn whether it is still current.
            return Plan(
                url, length - 1, probe=True, stop=length - 1, if_range=if_range, length=length
            )
        return Plan(url, have, if_range=if_range, length=length)

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
        """The engine's verdict on an answer: (where its body goes, the whole file's length);
        offset None: the bytes on hand are the whole, current file. Raises `StartOver` when
        they cannot be continued."""
        verdict = answer.verdict
        state = self.target.state
        if verdict is Verdict.BAD_RANGE:
            self.no_ranges.add(plan.url)
            raise RemoteProtocolError(answer.problem, url=self.url)
        if verdict is Verdict.WHOLE:
            if plan.ranged:
                # The whole file: the server ignores ranges, or the file changed (If-Range).
                log.info("%s: the server sent the whole file; starting over", self.url)
                self.discard()
            return 0, answer.length
        assert state is not None  # only a part's state makes a ranged plan
        same = state.matches(answer.etag, answer.last_modified)
        if verdict is Verdict.END:
            end = plan.offset + 1 if plan.probe else plan.offset
            if answer.length == end and same:
                return None, None
            self.discard()
            raise StartOver
        if (answer.etag or answer.last_modified) and not same:
            # If-Range should have prevented this: never splice another version on.
            self.discard()
            raise StartOver
        return plan.offset, answer.length

    async def _finish_complete(self) -> None:
        """The bytes on hand are the whole current file: verify the checksum and commit."""
        self.size = self.resumed_from = self._bytes_on_hand()
        wanted = self.request.expected_digest
        if wanted is not None:
            hashes = Hashes([wanted[0]])
            await self._hash_prefix(hashes, self.size)
            self._verify([("checksum", {wanted[0]: bytes.fromhex(wanted[1])}, "full")], hashes)
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
        announced = answer.announced
        try:
            if (
                self.request.sink is None
                and isinstance(sink, FileSink)
                and meter.passive
                and announced is not None
                and (taken := body.kernel_copy()) is not None
            ):
                try:
                    position = await splice_body(
                        taken, sink, offset, announced, meter, self._idle.touch,
                        self.target.storage_error, self.url,
                    )  # fmt: skip
                except RemoteProtocolError:
                    self.discard()  # more bytes than announced: nothing of it is kept
                    raise
                finally:
                    # aiohttp did not see the body end: the connection is not reusable.
                    await body.close(reuse=False)
            else:
                cursor = Span(offset)
                try:
                    await pump(
                        body, sink, cursor, meter, self._idle.touch, self.target.storage_error
                    )
                except ContentDecodingError:
                    raise
                except RemoteProtocolError as exc:
                    # The body broke off: say how much of the file is here, which is what a
                    # retry or a later run continues from.
                    raise incomplete(
                        self.url, meter.position, length, offset, announced
                    ) from exc.__cause__
                position = meter.position
                broken = body.broken()
                if broken is not None:
                    raise incomplete(self.url, position, length, offset, announced) from broken
        finally:
            if self.request.sink is not None:
                self._sink_size = meter.position
        meter.finished(position)
        if (announced is not None and position - offset != announced) or (
            length is not None and position != length
        ):
            raise incomplete(self.url, position, length, offset, announced)
        self._verify(expected, full, partial)

    def _verify(self, expected: list[Expected], full: Hashes, partial: Hashes = NO_HASHES) -> None:
        """Check every expected digest (`full` for the file, `partial` for this body); a
        mismatch discards the bytes on hand, so nothing of a wrong file is kept for resuming."""
        try:
            for source, digests, scope in expected:
                check(full if scope == "full" else partial, digests, source=source, url=self.url)
        except ChecksumMismatchError:
            self.discard()
            raise

    def _expected_digests(self, answer: Answer) -> tuple[Hashes, Hashes, list[Expected]]:
        """The digests to check: the caller's checksum and those the server announces."""
        expected: list[Expected] = []
        wanted = self.request.expected_digest
        if wanted is not None:
            expected.append(("checksum", {wanted[0]: bytes.fromhex(wanted[1])}, "full"))
        expected.extend(answer.digests)
        if not expected:  # the common case: nothing to hash
            return NO_HASHES, NO_HASHES, expected
        full = Hashes(a for _, d, scope in expected if scope == "full" for a in d)
        partial = Hashes(a for _, d, scope in expected if scope == "partial" for a in d)
        return full, partial, expected

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
        """How to split this body over several connections, or None for one stream."""
        settings = self._settings
        if (
            length is None
            or plan.probe  # one byte to confirm a complete part: nothing to split
            or settings.decode_content
            # Each segment opens its own FileSink on the part; other writers may not take
            # writes out of order (a generator cannot).
            or settings.writer != FileSink.open
            or plan.url in self.no_ranges
            or plan.url in self.no_segments
        ):
            return None
        segments = self.request.segments or settings.segments
        state = self.target.state
        if state is not None and state.sparse and not fresh:
            return segments  # the holes of a segmented part: only segments can fill them
        if segments.count < 2 or length - offset < 2 * segments.min_size or not answer.ranges:
            return None
        validators = state or self._validators(answer, length)
        # Without a strong ETag or a date, If-Range cannot keep a changed file from being
        # spliced together from two versions.
        return segments if validators.resumable else None

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
        state = self.target.state
        validators = state or self._validators(answer, length)
        resumed = state is not None and state.sparse and answer.verdict is Verdict.PARTIAL
        missing = state.missing() if state is not None and resumed else [(offset, length)]
        layout = Layout(missing, segments.count, segments.min_size)
        done_before = length - sum(end - start for start, end in missing)
        if resumed and state is not None:
            layout.done.extend(state.ranges)
        self._layout = layout
        if state is not None:
            state.sparse = True
            state.ranges = layout.ranges()
            self.target.save_state()
        self.resumed_from = done_before
        # From here on each connection watches its own silence.
        self._idle.disarm()
        job = Job(answer.final_url, plan.url, validators, layout, length, done_before)
        full, _, expected = self._expected_digests(answer)
        if settings.emit is not None:
            settings.emit(Started(self.url, self.request, self.target.path, length, done_before))
        log.debug("%s: %d bytes in up to %d segments", self.url, length, segments.count)
        self._meter = meter = self._new_meter(done_before, length, NO_HASHES, NO_HASHES)
        runner = Segmented(
            self, job, limiter=settings.limiter, writer=settings.writer, retry=settings.retry,
            meter=meter,
        )  # fmt: skip
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
