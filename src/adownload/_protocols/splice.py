"""The kernel copy: a large plain body (a whole file or one segment) moved from the socket to
the file by splice(2).

Why: on one fast connection, the read path costs two copies per byte (socket to a Python
bytes object, then that object to the page cache), a Python object per chunk and aiohttp's
parser on top. `splice` moves the socket's pages into a pipe without copying them and the pipe
into the page cache with one copy, none of it through Python. Measured on loopback, a 1 GiB
body this way takes about 0.6 of the CPU time of the read path, and less than curl's.

How: aiohttp sends the request and parses the headers as usual. Then, for a body that is
plain (no TLS, no Content-Encoding, no chunked framing) with a known length and large enough,
`take_socket` stops aiohttp reading from the connection, takes the body bytes it had buffered
already, and duplicates the socket's file descriptor. `SpliceCopy` runs in a thread of its own
(a long copy must not hold a thread of the shared executor, which FileSink's writes use; it
sleeps in poll(2) or splice(2), without the GIL), moves the bytes up to the cursor's end, and
advances the cursor as the file is written: a segment's split reads it as it does the read
path's. The connection is closed afterwards, never reused: aiohttp's parser did not see the
body's end.

Linux only (`os.splice` exists nowhere else); everywhere else, and for TLS, compressed, chunked
or small bodies, the read path does the job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "PIPE_SIZE",
    "SPLICE_MIN",
    "Cursor",
    "SpliceCopy",
    "SpliceReceiveError",
    "available",
    "take_socket",
]

#: The smallest body worth a thread and a connection that cannot be reused afterwards. Below
#: this the read path is as fast: the copies it saves are a few milliseconds.
SPLICE_MIN = 4 << 20
#: Bytes moved per splice call; the pipe is enlarged to hold them (1 MiB fits the default
#: /proc/sys/fs/pipe-max-size). The default 64 KiB pipe costs 16 times the system calls. It is
#: also the most a copy has taken from the socket and not yet written.
PIPE_SIZE = 1 << 20

available = hasattr(os, "splice") and hasattr(os, "eventfd")


class SpliceReceiveError(Exception):
    """The socket side of a splice failed (reset, unreachable): the transfer's fault, not the
    file's. The `OSError` is the cause."""


def take_socket(response: aiohttp.ClientResponse) -> tuple[int, bytes] | None:
    """Take the body of `response` away from aiohttp: a duplicate of the socket's descriptor and
    the body bytes aiohttp had received already, or None when the connection is not a plain
    TCP socket (TLS, a test transport).

    Afterwards aiohttp reads nothing more from the connection, and the caller must close the
    response (not release it) once done.
    """
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if transport is None or transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    content = response.content
    # Draining aiohttp's buffer may resume reading (flow control), but no data can arrive before
    # the next await: the pause below, in the same step, holds.
    head = [content.read_nowait()]
    transport.pause_reading()
    while more := content.read_nowait():
        head.append(more)
    transport.pause_reading()
    return os.dup(sock.fileno()), b"".join(head)


class Cursor(Protocol):
    """Where the copy writes next (`position`, which the copy advances) and where it stops
    (`end`, which a segment's split may move closer while the copy runs)."""

    position: int
    end: int


class SpliceCopy:
    """Moves bytes from a socket to a file, from `cursor.position` to `cursor.end`, in a thread
    of its own.

    `position` (the cursor's) says how far the file is written; every byte before it is in the file
    (the pipe may hold more, which a stop discards). The copy takes at most `PIPE_SIZE` bytes from
    the socket at a time, never past the `end` it reads just before: so an `end` moved to at least
    `PIPE_SIZE` past the position (see `_engine.segments.Segment.reserve`) is never overrun. The
    copy ends early, short of `end`, when the peer closes the connection; it raises
    `SpliceReceiveError` when the socket fails, `OSError` when the file does, and `InterruptedError`
    once `stop()` was called.
    """

    __slots__ = ("_cursor", "_file_fd", "_sock_fd", "_stop_fd", "_stopping")

    def __init__(self, sock_fd: int, file_fd: int, cursor: Cursor) -> None:
        self._sock_fd = sock_fd
        self._file_fd = file_fd
        self._cursor = cursor
        self._stopping = False
        self._stop_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)

    @property
    def position(self) -> int:
        return self._cursor.position

    def start(self, done: Callable[[int | BaseException], object]) -> None:
        """Run the copy in a new thread and call `done` there with the end position or the
        error."""

        def run() -> None:
            try:
                result: int | BaseException = self._copy()
            except BaseException as exc:  # handed over to the event loop, raised there
                result = exc
            done(result)

        threading.Thread(target=run, name="adownload-splice", daemon=True).start()

    def stop(self) -> None:
        """Ask the copy to end soon; safe to call from the event loop at any time."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.eventfd_write(self._stop_fd, 1)

    def close(self) -> None:
        """Release the stop descriptor; only once the copy has ended."""
        os.close(self._stop_fd)

    def _copy(self) -> int:
        cursor = self._cursor
        pipe_out, pipe_in = os.pipe2(os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # a smaller pipe only costs more calls
                import fcntl

                fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            poller = select.poll()
            poller.register(self._sock_fd, select.POLLIN)
            poller.register(self._stop_fd, select.POLLIN)
            position = cursor.position
            while (want := min(cursor.end - position, PIPE_SIZE)) > 0:
                if self._stopping:
                    raise InterruptedError("splice copy stopped")
                try:
                    moved = os.splice(
                        self._sock_fd, pipe_in, want, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
                    )
                except BlockingIOError:
                    poller.poll()  # data, a closed connection, an error, or stop()
                    continue
                except OSError as exc:
                    raise SpliceReceiveError(str(exc)) from exc
                if moved == 0:  # the peer closed the connection: the body is short
                    break
                # The pipe was empty before, so it holds exactly `moved` bytes now; the read end
                # blocks, and the kernel copies them into the page cache.
                while moved:
                    written = os.splice(
                        pipe_out, self._file_fd, moved, offset_dst=position,
                        flags=os.SPLICE_F_MOVE,
                    )  # fmt: skip
                    moved -= written
                    position += written
                    cursor.position = position  # one store: the event loop reads it any time
            return position
        finally:
            os.close(pipe_out)
            os.close(pipe_in)


def more_bytes_waiting(sock_fd: int) -> bool:
    """Whether the peer sent bytes past the end of the body, readable right now."""
    try:
        with socket.socket(fileno=os.dup(sock_fd)) as sock:
            sock.setblocking(False)
            return bool(sock.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.ENOTCONN):
            return False
        raise
