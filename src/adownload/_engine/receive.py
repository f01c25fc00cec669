"""The sink and verify steps of a file's way: where one answer's body goes, and what it must
match before `Transfer` commits it.

A `Receiver` copies a body into a caller's sink, or into the `.part` in one stream or in
segments over several connections (`_engine/segmented.py`), with the one `Meter` counting, capping
and timing it, then checks every expected digest. A mismatch or a body over the size limit
discards the bytes on hand; any other failure keeps a resumable part (`Target.keep_or_discard`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from yarl import URL

from .._disk.sinks import FileSink, Sink, close_quietly
from .._disk.state import PartState
from .._model.errors import ChecksumMismatchError, DownloadError, RemoteProtocolError
from .._model.events import Started
from .._model.pieces import PieceCheck, pieces_failed
from .._model.util import IdleTimeout, redact
from .._model.verify import NO_HASHES, Expected, Hashes, check_all, expected_digests
from .plan import segments_for
from .segment_job import plan_job
from .segmented import Segmented
from .stream import Meter, Span, stream_body

if TYPE_CHECKING:
    from .._model.config import Segments
    from .._model.options import Options
    from .._model.request import Request
    from .._protocols.base import Answer, Body, Plan
    from .adaptive import HostGate
    from .download import Download
    from .segments import Layout
    from .settings import Settings


class Receiver:
    """The bytes of one download as they arrive: `meter` counts them while a body runs,
    `layout` holds the segments of a segmented one."""

    def __init__(self, download: Download, settings: Settings, options: Options) -> None:
        self._download = download
        self._settings = settings
        self._options = options
        self.meter: Meter | None = None
        self.layout: Layout | None = None
        self.sink_size = 0  # bytes in a caller's sink
        #: Bytes each URL delivered in this download (the outcome's `sources`).
        self.served: dict[str, int] = {}
        self._gauge: HostGate | None = None
        self._sink_touched = False  # whether a caller's sink has been written to

    def bytes_on_hand(self) -> int:
        download = self._download
        if download.request.sink is not None:
            return self.sink_size
        return download.target.bytes_on_hand()

    def discard(self) -> None:
        """Forget the bytes on hand: in a caller's sink, or the `.part` (if ours) and its state."""
        self.sink_size = 0
        self._download.target.discard()

    async def receive(
        self,
        answer: Answer,
        body: Body,
        plan: Plan,
        offset: int,
        length: int | None,
        *,
        fresh: bool,
        idle: IdleTimeout,
    ) -> None:
        """Copy `body` to `offset` of the caller's sink, or of the part, which is then complete
        and verified (its commit is the caller's). `fresh`: a whole body, not a continuation."""
        download = self._download
        self.layout = None
        # Adaptive concurrency learns from the bytes of the host whose permit the attempt holds.
        self._gauge = self._settings.limiter.gate(plan.url)
        sink = download.request.sink
        if sink is not None:
            if fresh and self._sink_touched:
                await _truncate(sink, download.url)
            self._sink_touched = True
            await self._stream(answer, body, sink, plan, offset, length, idle)
            return
        segments = self._segmenting(answer, plan, offset, length, fresh)
        target = download.target
        file_sink = await target.open_part(fresh)
        try:
            if segments is not None and length is not None:
                assert isinstance(file_sink, FileSink)
                await self._segmented(answer, body, file_sink, plan, offset, length, segments, idle)
            else:
                await self._stream(answer, body, file_sink, plan, offset, length, idle)
            # Inside: the last writes land only now, and a full disk may refuse them too.
            await self.close(file_sink)
        except BaseException as exc:
            await close_quietly(file_sink)
            target.keep_or_discard(exc, None if self.layout is None else self.layout.ranges())
            raise
        if segments is None and download.request.pieces is not None and length is not None:
            await self._check_every_piece(length)

    async def verify_on_hand(self, size: int) -> None:
        """The bytes on hand are the whole file: check the caller's checksum against them."""
        full, partial, expected = expected_digests(self._download.request.expected_digest, ())
        if expected:
            await self._hash_prefix(full, size)
            self._verify(expected, full, partial)

    async def close(self, sink: Sink) -> None:
        try:
            await sink.close()
        except OSError as exc:
            raise self._download.target.storage_error(exc) from exc

    # --- one stream -------------------------------------------------------------------------

    def _new_meter(
        self,
        position: int,
        length: int | None,
        full: Hashes,
        partial: Hashes,
        gauge: HostGate | None = None,
    ) -> Meter:
        download, settings = self._download, self._settings
        timeout = download.timeout
        min_speed = timeout.min_speed
        return Meter(
            url=download.url,
            request=download.request,
            position=position,
            length=length,
            emit=settings.emit,
            bucket=settings.limiter.bucket,
            full=full,
            partial=partial,
            max_size=self._options.max_size,
            min_speed=None if min_speed is None else (min_speed, timeout.min_speed_window),
            on_limit=self.discard,
            gauge=gauge,
        )

    async def _stream(
        self,
        answer: Answer,
        body: Body,
        sink: Sink,
        plan: Plan,
        offset: int,
        length: int | None,
        idle: IdleTimeout,
    ) -> None:
        """Copy the body into `sink` from `offset`, hashing, counting and checking as it goes."""
        download, emit = self._download, self._settings.emit
        full, partial, expected = expected_digests(download.request.expected_digest, answer.digests)
        if full and offset:
            await self._hash_prefix(full, offset)
        if emit is not None:
            emit(Started(download.url, download.request, download.target.path, length, offset))
        meter = self.meter = self._new_meter(offset, length, full, partial, self._gauge)
        own_sink = download.request.sink is None
        try:
            await stream_body(
                answer, body, sink, Span(offset), meter,
                length=length, touch=idle.touch, storage_error=download.target.storage_error,
                url=download.url, kernel=own_sink, on_excess=self.discard,
            )  # fmt: skip
        finally:
            if not own_sink:
                self.sink_size = meter.position
            shown = redact(str(plan.url))
            self.served[shown] = self.served.get(shown, 0) + meter.position - offset
        self._verify(expected, full, partial)

    async def _check_every_piece(self, length: int) -> None:
        """A file that came in one stream: its piece hashes must hold too."""
        download = self._download
        pieces, part = download.request.pieces, download.target.part
        assert pieces is not None
        assert part is not None
        checks = PieceCheck(pieces, length)
        try:
            bad = await checks.check(part, list(range(len(pieces.hashes))))
        except OSError as exc:
            raise download.target.storage_error(exc, part) from exc
        if bad:
            self.discard()
            count = f"{len(bad)} of {len(pieces.hashes)}"
            why = f"{count} pieces failed their hashes, piece {bad[0]} first"
            raise pieces_failed(download.url, pieces, bad[0], why)

    def _verify(self, expected: list[Expected], full: Hashes, partial: Hashes = NO_HASHES) -> None:
        """Check every expected digest; a mismatch discards the bytes on hand, so nothing of a
        wrong file is kept for resuming."""
        try:
            check_all(expected, full, partial, url=self._download.url)
        except ChecksumMismatchError:
            self.discard()
            raise

    async def _hash_prefix(self, hashes: Hashes, length: int) -> None:
        """Feed the bytes already on hand to `hashes`: a resumed file is hashed whole."""
        download = self._download
        if download.request.sink is not None:
            raise RemoteProtocolError(
                "cannot verify a digest of a resumed download into a custom sink", url=download.url
            )
        await download.target.hash_part(hashes, length)

    # --- segments ---------------------------------------------------------------------------

    def _segmenting(
        self, answer: Answer, plan: Plan, offset: int, length: int | None, fresh: bool
    ) -> Segments | None:
        download = self._download
        state = download.target.state
        splittable = not (
            self._options.decode_content
            # Each segment opens its own FileSink on the part; other writers may not take
            # writes out of order (a generator cannot).
            or self._settings.writer != FileSink.open
            or plan.url in download.facts.no_ranges
            or plan.url in download.facts.no_segments
        )
        validators = state or validators_of(download.request, answer, length)
        return segments_for(
            self._options.segments, answer, plan,
            offset=offset, length=length, fresh=fresh, state=state,
            validators=validators, splittable=splittable,
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
        idle: IdleTimeout,
    ) -> None:
        """Fetch the body over up to `segments.count` connections (more with adaptive limits,
        see `Limiter.segment_count`; the I/O is `_engine/segmented.py`'s), then check the digests of
        the whole file."""
        download, settings = self._download, self._settings
        validators = download.target.state or validators_of(download.request, answer, length)
        count = settings.limiter.segment_count(segments.count)
        segments = dataclasses.replace(segments, count=count)
        full, _, expected = expected_digests(download.request.expected_digest, answer.digests)
        job = plan_job(
            download, answer, plan, offset, length, segments, validators=validators,
            mirrors=self._mirrors(answer, expected),
        )  # fmt: skip
        runner = Segmented(download, job, settings=settings, retry=self._options.retry)
        self.layout = runner.layout
        download.facts.resumed_from = done_before = runner.done_before
        idle.disarm()  # from here on each connection watches its own silence
        if settings.emit is not None:
            settings.emit(
                Started(download.url, download.request, download.target.path, length, done_before)
            )
        self.meter = runner.meter = self._new_meter(done_before, length, NO_HASHES, NO_HASHES)
        try:
            await runner.run(body, sink, offset, segments.count)
        finally:
            for url, count in runner.shares():
                self.served[url] = self.served.get(url, 0) + count
        # Bytes arrived out of order, so a digest of the whole file cannot be computed while
        # streaming: read the finished part once. A Content-Digest of one partial answer
        # covers only its own part and is not checked here.
        checks = [entry for entry in expected if entry[2] == "full"]
        if checks:
            await self._hash_prefix(full, length)
            self._verify(checks, full)

    def _mirrors(self, answer: Answer, expected: list[Expected]) -> list[URL]:
        """The URLs that may serve segments beside the answer's: the request's mirrors and
        the server's `Link: rel=duplicate` ones, only when something proves the bytes of the
        whole file (piece hashes, a checksum, a digest the first server announced): copies
        that differ would otherwise be spliced into one file nobody could tell is wrong."""
        request = self._download.request
        proven = request.pieces is not None or any(scope == "full" for *_, scope in expected)
        if not proven:
            return []
        return list(
            dict.fromkeys([request.parsed_url, *request.parsed_mirrors, *answer.duplicates])
        )


def validators_of(request: Request, answer: Answer, length: int | None) -> PartState:
    """What a part of `answer`'s body belongs to, for resuming it later."""
    return PartState.of(request.parsed_url, length, answer.etag, answer.last_modified)


async def _truncate(sink: Sink, url: str) -> None:
    """Empty a caller's sink before a download starts over, if the sink can be emptied."""
    truncate = getattr(sink, "truncate", None)
    if truncate is None:
        raise DownloadError(
            f"{redact(url)} must start over, but its sink cannot be emptied (it has no truncate())",
            url=url,
        )
    await truncate(0)
