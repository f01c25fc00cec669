"""The sink side of a body: the one read loop (`pump`), the one `Meter`, and the kernel copy.

Every body, of any protocol, a whole file or one segment, goes through `pump`: read a chunk,
claim its bytes on the cursor, write them at their offset, and let the meter count them (the
byte rate, the digests, the size cap, the minimum speed, the progress events). A large plain
body, whole (`splice_body`) or one segment (`kernel_pump`), can go socket to file inside the
kernel instead (`_protocols/splice.py`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._disk.sinks import FileSink, Sink
from .._model.errors import (
    ContentDecodingError,
    IncompleteBodyError,
    RemoteProtocolError,
    SizeLimitError,
    StorageError,
)
from .._model.events import PROGRESS_INTERVAL, Event, Progress
from .._model.util import redact, wait_through_cancellation
from .._model.verify import NO_HASHES, Hashes
from .._protocols import splice as _splice
from .limits import SpeedFloor, TokenBucket

if TYPE_CHECKING:
    from .._model.request import Request
    from .._protocols.base import Answer, Body
    from .adaptive import HostGate

#: The end of a cursor that runs to the end of the body.
UNBOUNDED = sys.maxsize


Cursor = _splice.Cursor  # where the next byte goes, and where the bytes asked for end


class Span:
    """A cursor of its own: a body from `position`, to `end` or its own end."""

    __slots__ = ("end", "position")

    def __init__(self, position: int, end: int = UNBOUNDED) -> None:
        self.position = position
        self.end = end


class Meter:
    """Counts one body's bytes: the rate bucket and the digests per chunk, then the size cap,
    the minimum speed and the progress events for the position reached."""

    __slots__ = (
        "_bucket",
        "_emit",
        "_floor",
        "_full",
        "_gauge",
        "_gauged",
        "_length",
        "_max_size",
        "_next_progress",
        "_on_limit",
        "_partial",
        "_request",
        "_start",
        "_told",
        "_url",
        "position",
    )

    def __init__(
        self,
        *,
        url: str,
        request: Request,
        position: int,
        length: int | None = None,
        emit: Callable[[Event], None] | None = None,
        bucket: TokenBucket | None = None,
        full: Hashes = NO_HASHES,
        partial: Hashes = NO_HASHES,
        max_size: int | None = None,
        min_speed: tuple[float, float] | None = None,
        on_limit: Callable[[], None] = lambda: None,
        gauge: HostGate | None = None,
    ) -> None:
        self._url = url
        self._request = request
        self._start = self.position = position
        self._length = length
        self._emit = emit
        self._bucket = bucket
        self._full = full
        self._partial = partial
        self._max_size = max_size
        self._floor = None
        if min_speed is not None:
            self._floor = SpeedFloor(min_speed[0], min_speed[1], 0, redact(url))
        self._on_limit = on_limit
        # The first bytes are told at once: a body that stalls right after them must not
        # look as if nothing came.
        self._next_progress = 0.0
        self._told = -1  # the position the last Progress event said
        # Adaptive concurrency: the host's gate, told of the bytes as they arrive.
        self._gauge = gauge
        self._gauged = position

    @property
    def passive(self) -> bool:
        """Whether nothing needs the bytes themselves (so the kernel may copy them)."""
        return not (self._full or self._partial or self._bucket or self._floor)

    async def add(self, chunk: bytes, position: int) -> None:
        """`chunk` was written and the body is now at `position`."""
        if self._bucket is not None:
            await self._bucket.take(len(chunk))
        if self._full:
            self._full.update(chunk)
        if self._partial:
            self._partial.update(chunk)
        self.reached(position)

    def reached(self, position: int, now: float | None = None) -> None:
        """The body is at `position`: check the size cap and the speed, and tell listeners."""
        self.position = position
        if self._gauge is not None:
            self._gauge.received(position - self._gauged)
            self._gauged = position
        if self._max_size is not None and position > self._max_size:
            self._on_limit()
            raise SizeLimitError(
                f"{redact(self._url)} grew over the limit of {self._max_size} bytes",
                url=self._url,
                limit=self._max_size,
            )
        if self._floor is not None:
            self._floor.check(position - self._start, now)
        if self._emit is not None:
            now = time.monotonic() if now is None else now
            if now >= self._next_progress:
                self._emit(Progress(self._url, self._request, position, self._length))
                self._next_progress = now + PROGRESS_INTERVAL
                self._told = position

    def finished(self, position: int) -> None:
        """The last progress event of a body, whatever the interval."""
        self.position = position
        if self._gauge is not None:
            self._gauge.received(position - self._gauged)
            self._gauged = position
        if self._emit is not None and position != self._told:  # told once, not twice
            self._emit(Progress(self._url, self._request, position, self._length))
            self._told = position


async def pump(
    body: Body,
    sink: Sink,
    cursor: Cursor,
    meter: Meter,
    touch: Callable[[], None],
    storage_error: Callable[[OSError], StorageError],
) -> bool:
    """Copy `body` into `sink` from `cursor.position` until the body ends (False) or reaches
    `cursor.end` (True). The one read loop, for whole files and segments.

    The bytes of a chunk are claimed (`cursor.position` advanced) before they are written, so a
    split computed during the write never hands out bytes in flight.
    """
    read = body.read
    write = sink.write_at
    add = meter.add
    while True:
        chunk = await read()
        touch()
        if not chunk:
            return False
        position = cursor.position
        room = cursor.end - position
        stop = len(chunk) >= room
        if stop:
            chunk = chunk[:room] if len(chunk) > room else chunk
            cursor.position = cursor.end
        else:
            cursor.position = position + len(chunk)
        try:
            await write(position, chunk)
        except OSError as exc:
            raise storage_error(exc) from exc
        await add(chunk, position + len(chunk))
        if stop:
            return True


async def stream_body(
    answer: Answer,
    body: Body,
    sink: Sink,
    cursor: Span,
    meter: Meter,
    *,
    length: int | None,
    touch: Callable[[], None],
    storage_error: Callable[[OSError], StorageError],
    url: str,
    kernel: bool,
    on_excess: Callable[[], None],
) -> None:
    """One whole body into `sink` from `cursor.position`: through the kernel copy when it can
    take it (`kernel`: the sink is the download's own file), else `pump`. Raises
    `IncompleteBodyError` unless the body ends where the answer said it would."""
    offset = cursor.position
    announced = answer.announced
    if (
        kernel
        and isinstance(sink, FileSink)
        and meter.passive
        and announced is not None
        and (taken := body.kernel_copy()) is not None
    ):
        try:
            position = await splice_body(
                taken, sink, offset, announced, meter, touch, storage_error, url
            )
        except RemoteProtocolError:
            on_excess()  # more bytes than announced: nothing of it is kept
            raise
        try:
            await body.after_copy(position - offset == announced)
        except RemoteProtocolError as exc:
            raise incomplete(url, position, length, offset, announced) from exc
    else:
        try:
            await pump(body, sink, cursor, meter, touch, storage_error)
        except ContentDecodingError:
            raise
        except RemoteProtocolError as exc:
            # The body broke off: say how much of the file is here, which is what a retry or
            # a later run continues from.
            raise incomplete(url, meter.position, length, offset, announced) from exc.__cause__
        position = meter.position
        broken = body.broken()
        if broken is not None:
            raise incomplete(url, position, length, offset, announced) from broken
    meter.finished(position)
    if (announced is not None and position - offset != announced) or (
        length is not None and position != length
    ):
        raise incomplete(url, position, length, offset, announced)


def incomplete(
    url: str, position: int, length: int | None, offset: int, announced: int | None
) -> IncompleteBodyError:
    """The error for a body that ended early (or late): counted in bytes of the whole file."""
    expected = length if length is not None else (None if announced is None else offset + announced)
    if expected is not None and position > expected:
        said = f"received {position} bytes of {redact(url)}, more than the {expected} announced"
    else:
        shown = expected if expected is not None else "unknown"
        said = f"received {position} of {shown} bytes of {redact(url)}"
    return IncompleteBodyError(
        said + (f" (this response started at byte {offset})" if offset else ""),
        url=url,
        expected=expected,
        received=position,
    )


async def splice_body(
    taken: tuple[int, bytes],
    sink: FileSink,
    offset: int,
    announced: int,
    meter: Meter,
    touch: Callable[[], None],
    storage_error: Callable[[OSError], StorageError],
    url: str,
) -> int:
    """Copy a whole body of `announced` bytes from the socket `taken` to the file in the
    kernel; the position it ended at. The descriptor is closed here."""
    sock_fd = taken[0]
    cursor = Span(offset, offset + announced)
    try:
        position = await kernel_pump(taken, sink, cursor, meter, touch, storage_error)
        if position == cursor.end and _splice.more_bytes_waiting(sock_fd):
            raise RemoteProtocolError(
                f"{redact(url)} sent more bytes than its Content-Length", url=url
            )
    finally:
        os.close(sock_fd)
    return position


async def kernel_pump(
    taken: tuple[int, bytes],
    sink: FileSink,
    cursor: Cursor,
    meter: Meter,
    touch: Callable[[], None],
    storage_error: Callable[[OSError], StorageError],
) -> int:
    """`pump` through the kernel: the bytes of the socket `taken` into the file from
    `cursor.position` until `cursor.end` (which a split may move closer meanwhile, never to less
    than `_protocols.splice.PIPE_SIZE` past the position) or until the peer closes; the position
    reached. The descriptor stays open: it is the caller's."""
    sock_fd, head = taken
    if head:
        position = cursor.position
        head = head[: max(0, cursor.end - position)]
        cursor.position = position + len(head)  # claimed before it is written, as in `pump`
        try:
            await sink.write_at(position, head)
            await sink.drain()
        except OSError as exc:
            raise storage_error(exc) from exc
        meter.position = cursor.position
        touch()
    else:
        await sink.drain()  # bytes a sink holds go before the copy's, which go around it
    if cursor.position < cursor.end:
        copy = _splice.SpliceCopy(sock_fd, sink.fileno(), cursor)
        await _run_copy(copy, meter, touch, storage_error)
    return cursor.position


async def _run_copy(
    copy: _splice.SpliceCopy,
    meter: Meter,
    touch: Callable[[], None],
    storage_error: Callable[[OSError], StorageError],
) -> int:
    """Run `copy` in its thread; meanwhile keep the idle timer and the progress events going."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def settle(result: int | BaseException) -> None:
        if done.done():
            return
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)

    copy.start(lambda result: loop.call_soon_threadsafe(settle, result))
    last = copy.position
    try:
        while not done.done():
            await asyncio.wait({done}, timeout=PROGRESS_INTERVAL)
            if copy.position != last:
                last = copy.position
                touch()
                meter.reached(last)
    except BaseException:  # cancelled (a timeout, the caller): stop the thread first
        copy.stop()
        await wait_through_cancellation(done)
        done.exception()  # InterruptedError, or whatever ended the copy first: superseded
        meter.position = copy.position
        raise
    finally:
        if done.done():
            copy.close()
    meter.position = copy.position
    try:
        return done.result()
    except _splice.SpliceReceiveError:
        return copy.position  # the peer closed or broke early: the caller sees it is short
    except OSError as exc:
        raise storage_error(exc) from exc
