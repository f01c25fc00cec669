"""The one retry loop, for whole files and for the segments of one: which errors are worth
another try, how long to wait before it, and the one `Retry.budget` check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .._model.errors import (
    ChecksumMismatchError,
    ContentDecodingError,
    DestinationExistsError,
    DownloadError,
    DownloadTimeout,
    FileMismatchError,
    FTPReplyError,
    HTTPStatusError,
    InvalidRequestError,
    ProxyError,
    RedirectError,
    SizeLimitError,
    StorageError,
    TransportError,
    UnsafePathError,
)

if TYPE_CHECKING:
    from .._model.config import Retry

# Errors after which trying again cannot help: the next attempt would meet the same wall.
FATAL = (
    StorageError,
    UnsafePathError,
    DestinationExistsError,
    InvalidRequestError,
    SizeLimitError,
)


class StartOver(Exception):
    """The bytes kept so far cannot be continued (the file changed, or its part was found
    unusable): the next request starts at byte zero, at once and without counting as a retry."""


def retryable(error: DownloadError, policy: Retry) -> bool:
    """Whether another attempt could succeed where `error` failed."""
    if isinstance(error, HTTPStatusError):
        return error.status in policy.statuses
    if isinstance(error, FTPReplyError):
        return error.transient
    if isinstance(
        error, ChecksumMismatchError | RedirectError | ContentDecodingError | FileMismatchError
    ):
        return False
    if isinstance(error, ProxyError) and error.authentication:
        return False  # the next try would bring the same credentials
    return isinstance(error, TransportError | DownloadTimeout)


def retry_wait(policy: Retry, error: DownloadError, retry_number: int, started: float) -> float:
    """Seconds to wait before retry `retry_number` after `error` (0: another source, no wait);
    raise `error` when the wait would end past `Retry.budget`, counted from `started`."""
    delay = 0.0
    if retry_number:
        retry_after = error.retry_after if isinstance(error, HTTPStatusError) else None
        delay = policy.delay(retry_number, retry_after=retry_after)
    if policy.budget is not None and time.monotonic() - started + delay > policy.budget:
        raise error
    return delay


async def with_retries(
    attempt: Callable[[int], Awaitable[None]],
    *,
    policy: Retry,
    sources: int,
    started: float,
    final: Callable[[DownloadError], bool] = lambda error: False,
    on_retry: Callable[[DownloadError, float], None] = lambda error, delay: None,
) -> None:
    """Run `attempt(source)` until it succeeds, going round the `sources` (a URL and its
    mirrors; 1 for a segment) as `policy` says, and raise the last error when none is left.

    A source leaves the round when its error is not retryable or it had `policy.attempts`
    tries; a fresh one is tried at once, and each round back to the sources that failed
    already backs off once, before its first try: a dead mirror costs a connection attempt,
    not a step of the file's backoff (64 dead mirrors once made each wait the longest).
    `final(error)` ends everything at once; `on_retry(error, delay)` is told before each wait.
    """
    tries = [0] * sources
    alive = list(range(sources))
    position = 0
    waited = 0  # the last round backed off for
    while True:
        index = alive[position % len(alive)]
        tries[index] += 1
        try:
            await attempt(index)
            return
        except DownloadError as exc:
            error = exc
        if isinstance(error, FATAL) or final(error):
            raise error
        if not retryable(error, policy) or tries[index] >= policy.attempts:
            alive.remove(index)  # this source is done; the next mirror takes over
            if not alive:
                raise error
        else:
            position += 1
        next_index = alive[position % len(alive)]
        again = tries[next_index]
        if again > waited:  # a new round back to sources that failed: back off once
            waited = again
            delay = retry_wait(policy, error, again, started)
        else:
            delay = retry_wait(policy, error, 0, started)
        on_retry(error, delay)
        await asyncio.sleep(delay)
