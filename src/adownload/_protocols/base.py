"""The protocol seam: what one request asks (`Plan`), what the server said (`Answer`), and the body
that follows (`Body`). Protocols (`_protocols/http/exchange.py`, `_protocols/ftp/exchange.py`) turn
their replies into these; the engine (`_engine/transfer.py`, `_engine/segmented.py`,
`_engine/stream.py`) sees nothing else.

Protocols return verdicts, the engine decides: a protocol says "the whole file", "bytes from
this offset", "nothing at or past this offset", "a range I cannot vouch for"; whether that means
keeping the part, discarding it or starting over is the engine's call, which knows the part.
Everything here is pure (no I/O), so it is unit-tested without a socket.
"""

from __future__ import annotations

import enum
import re
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

from yarl import URL

from .._model.util import IdleTimeout, whole_number
from .._model.verify import Expected

if TYPE_CHECKING:
    pass

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(slots=True)
class Plan:
    """What one request asks for."""

    url: URL
    offset: int  # the first byte asked for
    probe: bool = False  # only the last byte, to confirm that a complete part is still current
    stop: int | None = None  # the last byte asked for (inclusive); None: to the end
    if_range: str | None = None  # the validator that guards the range
    foreign: bool = False  # a segment sent to another origin than the URL's: no credentials
    length: int | None = None  # the file's length as far as it is known, to check answers by
    #: `Existing.NEWER`: the local file's time (an HTTP date); the whole file only if newer.
    if_modified_since: str | None = None

    @property
    def ranged(self) -> bool:
        return bool(self.offset or self.stop is not None)


class Verdict(enum.Enum):
    """What the server's answer means for the bytes asked for."""

    #: The body is the whole file from byte 0 (a ranged request was ignored, or not ranged).
    WHOLE = "whole"
    #: The body is the file from `Answer.offset`, as asked.
    PARTIAL = "partial"
    #: Nothing at or past the offset asked: the file is `Answer.length` bytes (HTTP 416).
    END = "end"
    #: A partial answer that does not fit what was asked (`Answer.problem` says how).
    BAD_RANGE = "bad range"


@dataclass(slots=True)
class Answer:
    """What the server said, in the engine's terms."""

    verdict: Verdict
    final_url: URL
    offset: int = 0  # the first byte of the file that the body holds
    length: int | None = None  # the whole file's length, when known
    announced: int | None = None  # the body's own length, when known (none while decoding)
    etag: str | None = None
    last_modified: str | None = None
    status: int | None = None  # the HTTP status; None for other protocols
    name: str | None = None  # a safe file name the server proposes (Content-Disposition)
    digests: list[Expected] = field(default_factory=list)  # digests the server announces
    ranges: bool = False  # whether the server serves byte ranges of this file
    problem: str = ""  # for BAD_RANGE: what did not fit
    #: Mirrors the server names for this file (RFC 6249 `Link: rel=duplicate`), best first.
    duplicates: tuple[URL, ...] = ()


class Body(Protocol):
    """The body of an answer: chunks until `b""`, then `close`."""

    async def read(self) -> bytes:
        """The next chunk; `b""` at the end. Raises `RemoteProtocolError` (or a subclass) when
        the body broke off, and `DownloadError`s for other failures."""
        ...

    def at_eof(self) -> bool:
        """Whether the body was read to its end."""
        ...

    def broken(self) -> BaseException | None:
        """Why a body that ended at a close is incomplete (a reset, an error reply), or None."""
        ...

    def kernel_copy(self) -> tuple[int, bytes] | None:
        """Hand the connection's socket over for a copy in the kernel: (a duplicated
        descriptor, the bytes already buffered), or None when this body cannot be."""
        ...

    async def after_copy(self, whole: bool) -> None:
        """The kernel copy ended, with every announced byte (`whole`) or not: finish what the
        protocol says after a body (FTP's closing reply). Raises `RemoteProtocolError` when
        the server says the body is not whole."""
        ...

    async def close(self, *, reuse: bool) -> None:
        """Finish with the body: `reuse` keeps the connection for another request (only when
        the body was read to its end), otherwise it is closed."""
        ...


class Exchange(Protocol):
    """One protocol: opening a request, and the translation of its errors."""

    async def open(self, plan: Plan, idle: IdleTimeout, *, url: str) -> tuple[Answer, Body]:
        """Send `plan`; the answer and its body. Errors of the server (a 404, a 550) raise
        their `DownloadError`; `url` is what those errors name."""
        ...

    def errors(self, url: str, *, read: float | None = None) -> AbstractContextManager[None]:
        """Translate the protocol library's exceptions to adownload's, naming `url`."""
        ...


def range_answer(
    value: str | None, announced: int | None, offset: int, stop: int | None, length: int | None
) -> tuple[int, int, int | None] | None:
    """The (first, last, total) bytes of a 206's `Content-Range` when it answers the range
    asked (`offset` to `stop` inclusive; None: to the end) of a file of `length` (None:
    unknown), else None. The one range validator, for whole-file requests and segments.

    The answer must start where asked and cover at least what was asked: an open-ended answer
    to a bounded range (`bytes a-END/TOTAL`, which some servers send) holds what was asked, and
    the reader stops at `stop`. Its Content-Length, when given, must be the range's size.

    >>> range_answer("bytes 100-199/1000", 100, 100, 199, 1000)
    (100, 199, 1000)
    >>> range_answer("bytes 100-999/1000", 900, 100, 199, 1000)  # open-ended: it holds 100-199
    (100, 999, 1000)
    >>> range_answer("bytes 101-199/1000", 99, 100, 199, 1000) is None
    True
    """
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if first != offset or last < first or (announced is not None and announced != last - first + 1):
        return None
    if total is None:
        if length is not None:  # "*": the server does not know the length we were told
            return None
    elif last >= total or (length is not None and total != length):
        return None
    if stop is not None and last < stop:
        return None
    if stop is None and total is not None and last != total - 1:
        return None
    return first, last, total


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    seconds = whole_number(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
