"""The read timeout of one exchange: an `IdleTimeout` whose expiry the caller sees as
`ReadTimeout`, entered around every request and its body (and every FTP listing)."""

from __future__ import annotations

from types import TracebackType

from .._model.errors import ReadTimeout
from .._model.util import IdleTimeout, redact

__all__ = ["ReadWatchdog", "read_watchdog"]


def read_watchdog(seconds: float | None, *, grace: float, url: str) -> ReadWatchdog:
    """An `IdleTimeout` for one exchange, whose expiry the caller sees as `ReadTimeout`."""
    return ReadWatchdog(seconds, grace=grace, url=url)


class ReadWatchdog(IdleTimeout):
    """`read_watchdog`'s timeout: an `IdleTimeout` that raises `ReadTimeout` when it expires
    (a class rather than a generator: every exchange enters one)."""

    __slots__ = ("_url",)

    def __init__(self, seconds: float | None, *, grace: float, url: str) -> None:
        super().__init__(seconds, grace=grace)
        self._url = url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        except TimeoutError as error:
            self._raise_expired(error)
            raise
        if isinstance(exc, TimeoutError):
            self._raise_expired(exc)

    def _raise_expired(self, error: TimeoutError) -> None:
        if self.expired():
            seconds = self._seconds
            raise ReadTimeout(
                f"no data received for {seconds}s from {redact(self._url)}",
                url=self._url,
                phase="read",
                seconds=seconds,
            ) from error
