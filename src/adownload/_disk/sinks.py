"""Sinks: where a download's bytes go.

A sink takes writes at an offset and is closed once. Offsets make one code path serve a plain
download (offsets grow from 0), a resumed one (offsets start where the `.part` file ends) and a
segmented one (several streams, each with its own offsets).

Which file sink a `Downloader` uses is a `SinkOpener`: an async callable that opens a sink on
the `.part` file of a download, e.g. `FileSink.open` (the default) or `AiofilesSink.open`. A sink
that is not a file (`MemorySink`, `GeneratorSink` around your own generator) is given per
request with `Request(url, sink=...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from .._model.sink import Sink, SinkOpener
from .._model.util import wait_through_cancellation
from .files import CREATE_FLAGS, open_regular

__all__ = [
    "AiofilesSink",
    "FileSink",
    "GeneratorSink",
    "MemorySink",
    "Sink",
    "SinkOpener",
    "file_writer",
]


_CONTINUE_FLAGS = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def open_fd(path: Path, *, existing: bool = False) -> int:
    """Open `path` for writing without following a symlink; create it exclusively unless
    `existing`, which must then be a regular file (a FIFO would block the open, or take the
    bytes: `_disk.files.SpecialFileError`)."""
    if existing:
        return open_regular(path, _CONTINUE_FLAGS)
    return os.open(path, CREATE_FLAGS, 0o666)  # exclusive, through no link: see _files


# At most this many buffers go to one pwritev() call (POSIX guarantees 16; Linux takes 1024).
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


def _pwrite_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write `chunks` one after the other at `offset`, as few system calls as it takes.

    pwritev gathers the chunks in the kernel: no joined copy of them is made in Python.
    """
    views = [memoryview(chunk) for chunk in chunks]
    while views:
        batch = views[:_IOV_MAX]
        written = os.pwritev(fd, batch, offset)
        offset += written
        # Drop what was written; a short write leaves part of one buffer.
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


class FileSink:
    """The default sink: buffered positional writes, the large ones in a worker thread.

    Chunks that continue the previous write are gathered in memory up to `block_size` bytes, then
    handed to a worker thread in one `pwritev` (no joined copy) while the event loop goes on
    receiving the next block (one block in flight at most, so memory per download stays under two
    blocks). A block smaller than `inline_max` is written on the loop: copying it into the page
    cache costs less than the thread hop.

    Why: a `pwrite` of 1 MiB into the page cache takes a fraction of a millisecond, but a
    congested disk can stall it for much longer, and the event loop must never stall. Paying a
    thread hop per network chunk (often 16-64 KiB) would cost more than the writing itself.
    """

    #: Bytes gathered before a write is issued.
    block_size = 1 << 20
    #: Writes up to this size are done on the event loop.
    inline_max = 64 << 10

    __slots__ = (
        "_buffer",
        "_buffer_size",
        "_buffer_start",
        "_closed",
        "_fd",
        "_inflight",
        "path",
        "written_to",
    )

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path
        self._buffer: list[bytes] = []
        self._buffer_start = 0
        self._buffer_size = 0
        self._inflight: asyncio.Future[None] | None = None
        self._closed = False
        #: The end offset of the last block that reached the file (None before the first). For
        #: a sink written front to back, as each segment of a segmented download is, every byte
        #: before it is written: the resume state records no byte that is still in a buffer.
        self.written_to: int | None = None

    @classmethod
    async def open(cls, path: Path, *, existing: bool = False) -> FileSink:
        """Open a sink on `path`, created exclusively (or continued if `existing`), never through
        a symbolic link."""
        # open(2) with O_CREAT on a local disk takes microseconds: cheaper inline than a thread hop.
        return cls(open_fd(path, existing=existing), path)

    async def write_at(self, offset: int, data: bytes) -> None:
        if self._closed:
            raise ValueError("write to a closed sink")
        if self._buffer_size and offset != self._buffer_start + self._buffer_size:
            await self._flush()
        if not self._buffer_size:
            self._buffer_start = offset
        self._buffer.append(data)
        self._buffer_size += len(data)
        if self._buffer_size >= self.block_size:
            await self._flush()

    def fileno(self) -> int:
        """The file's descriptor, for a writer that goes around the sink (the kernel copy);
        `drain()` first."""
        return self._fd

    async def drain(self) -> None:
        """Write what is buffered and wait until it is in the file."""
        await self._flush()
        await self._wait_inflight()

    async def _flush(self) -> None:
        size = self._buffer_size
        if not size:
            return
        chunks = self._buffer
        offset = self._buffer_start
        self._buffer = []
        self._buffer_size = 0
        await self._wait_inflight()
        end = offset + size
        if size <= self.inline_max:
            _pwrite_all(self._fd, chunks, offset)
            self.written_to = end
        else:
            loop = asyncio.get_running_loop()
            # Not awaited here: the next block is received while this one is written. Its error,
            # if any, is raised by the next flush or by close.
            inflight = loop.run_in_executor(None, _pwrite_all, self._fd, chunks, offset)

            def written(future: asyncio.Future[None]) -> None:
                if not future.cancelled() and future.exception() is None:
                    self.written_to = end

            inflight.add_done_callback(written)
            self._inflight = inflight

    async def _wait_inflight(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await wait_through_cancellation(inflight)
            inflight.result()

    async def close(self) -> None:
        """Write what is buffered, wait for the write in flight, and close the file.

        The file descriptor is closed even when writing fails or the task is cancelled: a
        worker thread may still be writing to it, so closing waits for that write first.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self._flush()
        finally:
            try:
                await self._wait_inflight()
            finally:
                os.close(self._fd)


class AiofilesSink:
    """A sink that writes through aiofiles: every write is one hop to aiofiles' thread pool.

    Simpler than `FileSink` and just as safe for the event loop, but slower for many small
    chunks. Use it as `Downloader(writer=AiofilesSink.open)`.
    """

    __slots__ = ("_file", "path")

    def __init__(self, file: Any, path: Path) -> None:
        self._file = file
        self.path = path

    @classmethod
    async def open(cls, path: Path, *, existing: bool = False) -> AiofilesSink:
        """Open a sink on `path`, created exclusively (or continued if `existing`), never through
        a symbolic link."""
        import aiofiles  # here, not at the top: only this sink needs it (4 ms of start-up)

        file = await aiofiles.open(
            path,
            "r+b" if existing else "wb",
            opener=lambda p, _flags: open_fd(Path(p), existing=existing),
        )
        return cls(file, path)

    async def write_at(self, offset: int, data: bytes) -> None:
        await self._file.seek(offset)
        await self._file.write(data)

    async def close(self) -> None:
        await self._file.close()


def file_writer(path: Path, *, existing: bool = False) -> Generator[None, bytes | None, None]:
    """The seed tutorial's writer: a generator that writes each chunk sent to it to `path`.

    Prime it with `next()`, feed it with `send(chunk)`, end it with `send(None)` or `close()`.
    Its writes are blocking and run on the event loop: fine for small files and scripts; the
    default `FileSink` keeps large writes off the loop.
    """
    with os.fdopen(open_fd(path, existing=existing), "r+b" if existing else "wb") as file:
        if existing:
            file.seek(0, os.SEEK_END)
        while True:
            chunk = yield
            if chunk is None:
                return
            file.write(chunk)


class GeneratorSink:
    """Feeds a download's chunks into a generator through `send()`, as the seed tutorial did.

    The generator must already be started (primed with `next()`) or be fresh; it is primed if
    needed. Writes must be sequential: a generator has no offsets. `close()` sends None and then
    closes the generator, so a `with open(...)` inside it is closed too.

    ```pycon
    >>> sink = GeneratorSink(my_writer())
    >>> await dl.download(url, sink=sink)
    ```
    """

    __slots__ = ("_gen", "_position", "path")

    def __init__(self, gen: Generator[Any, bytes | None, Any], path: Path | None = None) -> None:
        self._gen = gen
        self._position = 0
        self.path = path
        if inspect.getgeneratorstate(gen) == inspect.GEN_CREATED:
            next(gen)

    @classmethod
    async def open(cls, path: Path, *, existing: bool = False) -> GeneratorSink:
        """A sink on `path` written by `file_writer`.

        Use as `Downloader(writer=GeneratorSink.open)`.
        """
        sink = cls(file_writer(path, existing=existing), path)
        if existing:
            sink._position = os.stat(path).st_size
        return sink

    async def write_at(self, offset: int, data: bytes) -> None:
        if offset != self._position:
            raise ValueError(
                f"GeneratorSink takes sequential writes only: expected offset {self._position}, "
                f"got {offset}"
            )
        try:
            self._gen.send(data)
        except StopIteration:
            raise ValueError("the writer generator stopped before the download ended") from None
        self._position += len(data)

    async def close(self) -> None:
        try:
            self._gen.send(None)
        except StopIteration:
            pass
        finally:
            self._gen.close()


class MemorySink:
    """Collects a download in memory, for embedding applications and tests.

    The whole body lives in memory: use it for small resources only, or set a size limit.

    ```pycon
    >>> sink = MemorySink()
    >>> outcome = await dl.download(url, sink=sink)
    >>> sink.getvalue()[:4]
    b'PK\\x03\\x04'
    ```
    """

    __slots__ = ("_data", "closed")

    def __init__(self) -> None:
        self._data = bytearray()
        self.closed = False

    async def write_at(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset > len(self._data):
            self._data.extend(bytes(offset - len(self._data)))
        self._data[offset:end] = data

    async def close(self) -> None:
        self.closed = True

    async def truncate(self, size: int) -> None:
        """Drop everything after the first `size` bytes (a download that starts over)."""
        del self._data[size:]

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._data)

    def __len__(self) -> int:
        return len(self._data)


async def close_quietly(sink: Sink) -> None:
    """Close `sink` after a failure: the error that got us here matters more than one from
    closing."""
    with contextlib.suppress(Exception):
        await sink.close()
