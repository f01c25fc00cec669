"""The exceptions adownload raises, all rooted at `DownloadError`.

The classes below are the one statement of the tree: the documentation's exception page
(`docs/reference/errors.md`) is generated from them, each with its docstring's first line.

aiohttp's exceptions are translated to these in exactly one place,
`adownload._protocols.http.errors.translate_client_errors`;
nothing else in the package catches `aiohttp.ClientError`. Every exception keeps its context as
attributes (not only in the message) and survives pickling, so outcomes can cross process
boundaries.
"""

from __future__ import annotations

import errno as _errno
from pathlib import Path
from typing import Any

from .util import redact

__all__ = [
    "ChecksumMismatchError",
    "ConnectError",
    "ConnectTimeout",
    "ContentDecodingError",
    "DestinationExistsError",
    "DownloadError",
    "DownloadTimeout",
    "HTTPStatusError",
    "IncompleteBodyError",
    "InvalidRequestError",
    "ProxyError",
    "ReadTimeout",
    "RedirectError",
    "RemoteProtocolError",
    "SizeLimitError",
    "StallError",
    "StorageError",
    "TotalTimeout",
    "TransportError",
    "UnsafePathError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls)
    exc.args = args
    for name, value in state.items():
        setattr(exc, name, value)
    return exc


class DownloadError(Exception):
    """Base class of every error a download can end with.

    `url` is the URL the caller asked for (a string, without its userinfo), or None when the
    failure has no URL. Neither `url` nor the message ever holds a URL's user name or password:
    both are cut here, at the root, whoever raises.
    """

    url: str | None

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(redact(message))
        self.url = None if url is None else redact(url)

    def __str__(self) -> str:
        # Our message, also for the OSError subclasses, whose str() would show errno instead.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors break Exception's default pickling; rebuild from state.
        state = dict(self.__dict__)
        if isinstance(self, OSError):  # errno and filename live in OSError's slots
            state.update(errno=self.errno, filename=self.filename)
        return (_rebuild, (type(self), self.args, state))


class InvalidRequestError(DownloadError, ValueError):
    """The request cannot be made as given: a malformed URL, a scheme other than http(s), a bad
    option value."""


class UnsafePathError(DownloadError, ValueError):
    """The destination would escape its directory or write through a symbolic link."""

    path: Path | None

    def __init__(self, message: str, *, url: str | None = None, path: Path | None = None) -> None:
        super().__init__(message, url=url)
        self.path = path


class DestinationExistsError(DownloadError, FileExistsError):
    """The target file exists and may not be replaced: the existing-file policy is
    `Existing.ERROR`, another URL of the same run was saved there (`taken_by` names it), or a
    file adownload did not make stands where its `.part` must go (`path` names it)."""

    path: Path
    taken_by: str | None

    def __init__(
        self, message: str, *, url: str | None = None, path: Path, taken_by: str | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.path = path
        self.taken_by = taken_by
        self.filename = str(path)
        self.errno = _errno.EEXIST


class HTTPStatusError(DownloadError):
    """The server answered with a status that is not a success (404, 500, ...).

    `retry_after` is the wait in seconds the server asked for with `Retry-After`, if any.
    """

    status: int
    reason: str
    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        url: str | None,
        status: int,
        reason: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class FTPReplyError(DownloadError):
    """An FTP server answered a command with an error reply: 550 (no such file), 530 (login
    refused), 421 or 450 (try later), ...

    `code` is the reply code and `text` its text. `transient` is True for the 4xx replies,
    which are retried; 5xx replies are final (RFC 959, section 4.2).
    """

    code: int
    text: str

    def __init__(self, message: str, *, url: str | None, code: int, text: str = "") -> None:
        super().__init__(message, url=url)
        self.code = code
        self.text = text

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes do not have the digest that was expected.

    `algorithm` is hashlib's name for it, `expected` and `actual` are hex digests; `source` says
    where the expected one came from ("checksum", "Content-Digest", "Repr-Digest", "Digest").
    """

    algorithm: str
    expected: str
    actual: str
    source: str

    def __init__(
        self,
        message: str,
        *,
        url: str | None,
        algorithm: str,
        expected: str,
        actual: str,
        source: str = "checksum",
    ) -> None:
        super().__init__(message, url=url)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual
        self.source = source


class SizeLimitError(DownloadError):
    """The file is larger than the size limit (`limit`, in bytes); nothing of it is kept."""

    limit: int

    def __init__(self, message: str, *, url: str | None, limit: int) -> None:
        super().__init__(message, url=url)
        self.limit = limit


class TransportError(DownloadError):
    """The exchange with the server failed below the HTTP status level."""


class ConnectError(TransportError):
    """No connection to the server could be made (refused, DNS failure, TLS failure)."""


class ProxyError(TransportError):
    """The proxy failed the request before the server was reached: it could not be reached,
    broke its handshake (CONNECT or SOCKS), refused the target, or wants credentials it was not
    given or refused them.

    `proxy` names it (scheme, host and port, never its credentials); `status` is an HTTP
    proxy's answer (407, 502, ...), None for the others; `authentication` is True when the
    proxy wants credentials or refused them, which no retry changes.
    """

    proxy: str
    status: int | None
    authentication: bool

    def __init__(
        self,
        message: str,
        *,
        url: str | None,
        proxy: str,
        status: int | None = None,
        authentication: bool = False,
    ) -> None:
        super().__init__(message, url=url)
        self.proxy = redact(proxy)
        self.status = status
        self.authentication = authentication


class RedirectError(TransportError):
    """Too many redirects, or a redirect to a location that is not followed (not http/https)."""


class RemoteProtocolError(TransportError):
    """The server broke the HTTP protocol: a malformed, reset or cut-short response."""


class ContentDecodingError(RemoteProtocolError):
    """The body could not be decoded (`decode_content=True`): an encoding that cannot be
    decoded here, or corrupt compressed data. Final: asking again brings the same bytes."""


class FileMismatchError(RemoteProtocolError):
    """The server's file is not the one asked for: another length than the request's `size`
    or `pieces` say, or (a mirror) another length or version than the file's first answer.
    Final for that URL: asking it again brings the same file; the next mirror may serve it."""


class IncompleteBodyError(RemoteProtocolError):
    """The body ended before the length the server announced.

    `expected` is the announced length (None if unknown), `received` the bytes that arrived.
    """

    expected: int | None
    received: int

    def __init__(
        self, message: str, *, url: str | None, expected: int | None, received: int
    ) -> None:
        super().__init__(message, url=url)
        self.expected = expected
        self.received = received


class DownloadTimeout(DownloadError, TimeoutError):
    """A time limit ran out. `phase` is "connect", "read" or "total"; `seconds` the limit."""

    phase: str
    seconds: float | None

    def __init__(
        self, message: str, *, url: str | None, phase: str, seconds: float | None = None
    ) -> None:
        super().__init__(message, url=url)
        self.phase = phase
        self.seconds = seconds


class ConnectTimeout(DownloadTimeout):
    """Connecting to the server took longer than `Timeout.connect`."""


class ReadTimeout(DownloadTimeout):
    """No byte arrived for `Timeout.read` seconds."""


class StallError(DownloadTimeout):
    """The transfer ran slower than `Timeout.min_speed` for `Timeout.min_speed_window` seconds."""


class TotalTimeout(DownloadTimeout):
    """The download took longer than `Timeout.total`."""


class StorageError(DownloadError, OSError):
    """The local file system refused an operation; `path` names the file, `errno` says why."""

    path: Path

    def __init__(self, message: str, *, url: str | None, path: Path, errno: int | None) -> None:
        super().__init__(message, url=url)
        self.path = path
        self.filename = str(path)
        self.errno = errno
