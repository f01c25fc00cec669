"""Small asyncio helpers shared by the package."""

from __future__ import annotations

import asyncio
import re
import sys
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import FrameType, TracebackType
from typing import Any, TypeVar

from yarl import URL


async def wait_through_cancellation(fut: asyncio.Future[Any]) -> None:
    """Wait until `fut` is done, even if this task is cancelled meanwhile.

    For cleanup that must not be cut short: a worker thread still writing to a file descriptor
    that is about to be closed, a child task that was told to stop. A cancellation that arrives
    meanwhile is re-raised once `fut` is done. `fut`'s own result or error is left to the caller.
    """
    cancelled = False
    while not fut.done():
        try:
            # asyncio.wait never cancels what it waits for, unlike a plain await.
            await asyncio.wait({fut})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


# A URL's userinfo: from the `//` of the authority to its last `@`, wherever it stands in a text.
_USERINFO = re.compile(r"//[^/?#\s]*@")


def whole_number(text: str, *, digits: int = 20) -> int | None:
    """`text`, spaces around it aside, as a whole number of at most `digits` ASCII digits;
    None for anything else. (`str.isdigit` alone takes "²", which `int` refuses, and "٣",
    which it reads as 3: a stranger's header must be neither a crash nor another number.)

    ```pycon
    >>> whole_number(" 42 "), whole_number("\u00b2"), whole_number("-1"), whole_number("1e3")
    (42, None, None, None)
    ```
    """
    text = text.strip()
    if not text or len(text) > digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


#: Packages whose frames stand between a caller and the line that warns: ours, and the event
#: loop that runs our coroutines for a blocking function.
_BETWEEN = frozenset({"adownload", "asyncio", "uvloop"})


def warn_caller(message: str, category: type[Warning]) -> None:
    """`warnings.warn` naming the caller's line: the first frame outside adownload (and the
    event loop a blocking function runs), however deep the warning was found."""
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in _BETWEEN:
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def redact(text: str | URL) -> str:
    """`text` (a URL, or a message that holds URLs) without userinfo, which may hold a password.

    Works on the text itself, so a URL too malformed to parse is cut as well.

    ```pycon
    >>> redact("ftp://user:secret@example.org/a.zip")
    'ftp://example.org/a.zip'
    ```
    """
    text = str(text)
    if "@" not in text:  # the common case costs one scan
        return text
    return _USERINFO.sub("//", text)


def origin_of(url: URL) -> str:
    """`scheme://host:port`, the key of per-host limits and of a cluster's shards."""
    return f"{url.scheme}://{url.host}:{url.port}"


def same_origin(a: URL, b: URL) -> bool:
    """Whether two URLs have one origin (scheme, host, port): the scope of a credential."""
    return a.scheme == b.scheme and a.host == b.host and a.port == b.port


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end, re-raising only a cancellation of our own."""
    task.cancel()
    await wait_through_cancellation(task)


class IdleTimeout:
    """An `asyncio.timeout` that expires after `seconds` without a call to `touch()`.

    aiohttp's own read timeout cancels and re-creates a timer for every chunk received, a
    measurable share of the CPU time of a fast download. Here a chunk costs one clock read;
    the single timer, when it fires, re-arms itself at the last touch plus `seconds`.
    `grace` is added to the first deadline (time to connect, before the first byte is due); the
    first `touch()` ends it, so silence after that is caught `seconds` later, not `grace` later.
    """

    __slots__ = ("_handle", "_in_grace", "_last", "_loop", "_seconds", "_timeout")

    def __init__(self, seconds: float | None, *, grace: float = 0.0) -> None:
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time() + grace
        self._in_grace = grace > 0
        self._timeout = asyncio.timeout(None)
        self._handle: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> IdleTimeout:
        await self._timeout.__aenter__()
        if self._seconds is not None:
            self._handle = self._loop.call_at(self._last + self._seconds, self._check)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
        await self._timeout.__aexit__(exc_type, exc, tb)

    def touch(self) -> None:
        self._last = self._loop.time()
        if self._in_grace:
            # The timer was set for the end of the grace; bring it forward, once.
            self._in_grace = False
            if self._handle is not None and self._seconds is not None:
                self._handle.cancel()
                self._handle = self._loop.call_at(self._last + self._seconds, self._check)

    def disarm(self) -> None:
        """Stop watching: the work under this timeout is watched by timeouts of its own now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def expired(self) -> bool:
        return self._timeout.expired()

    def _check(self) -> None:
        assert self._seconds is not None
        deadline = self._last + self._seconds
        if self._loop.time() >= deadline:
            self._handle = None
            self._timeout.reschedule(self._loop.time())
        else:
            self._handle = self._loop.call_at(deadline, self._check)


T = TypeVar("T")


async def each(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """The items of a sync or an async iterable; a sync one yields to the loop between items,
    so that a long list does not hold it."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
            await asyncio.sleep(0)


def describe_error(error: BaseException | None, url: str | None = None) -> str:
    """The error's message, for a line that names `url` already: the URL is not said again
    ("cannot connect for URL: refused" reads "cannot connect: refused")."""
    text = str(error) or type(error).__name__
    if url:
        for joint in (" for ", " from ", " of "):
            text = text.replace(f"{joint}{url}", "")
        if text.startswith(f"{url} "):
            text = "the file " + text[len(url) + 1 :]
        text = text.replace(f": {url}", "")
    return text
