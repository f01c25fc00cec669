"""One download's data, handed down from the `Transfer` to its `Receiver` and its segments.

`Download` says what the download is (the request, its URL as shown, its target on disk, the
timeouts, when it started), how it talks (its `Exchanges`) and where its events go. `Facts`
holds what its attempts count and learn: the receiver and the segments add to it, the
transfer reads it for the next attempt's plan and for the outcome. Nothing below the transfer
holds the transfer itself or calls back into it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from yarl import URL

from .._disk.target import Target
from .._model.config import Timeout
from .._model.events import Event, Retrying
from .._model.request import Request
from .exchanges import Exchanges
from .watchdog import read_watchdog

if TYPE_CHECKING:
    from .._model.errors import DownloadError
    from .._model.util import IdleTimeout

log = logging.getLogger("adownload")


@dataclass(slots=True)
class Facts:
    """What the attempts of one download counted and learnt."""

    #: Requests made, segments' included: the outcome's `attempts`.
    attempts: int = 0
    #: Bytes on hand when the body that finished the file started.
    resumed_from: int = 0
    #: URLs whose range answers cannot be trusted (a whole body to a range of the same file).
    no_ranges: set[URL] = field(default_factory=set)
    #: URLs whose bounded ranges (segments) fail: the next attempt is one stream.
    no_segments: set[URL] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Download:
    """One download as its parts see it."""

    url: str  # for messages, events and outcomes: without userinfo
    request: Request
    target: Target
    timeout: Timeout
    started: float
    exchanges: Exchanges
    emit: Callable[[Event], None] | None
    facts: Facts = field(default_factory=Facts)

    def watchdog(self, *, grace: float) -> contextlib.AbstractAsyncContextManager[IdleTimeout]:
        """An `IdleTimeout` for one exchange, whose expiry the caller sees as `ReadTimeout`."""
        return read_watchdog(self.timeout.read, grace=grace, url=self.url)

    def retrying(self, what: str, error: DownloadError, delay: float, *, new: bool) -> None:
        """Another request follows after `delay`; `new`: one that no attempt counted yet."""
        facts = self.facts
        if new:
            facts.attempts += 1
        log.info("%s %d for %s failed: %s", what, facts.attempts, self.url, error)
        if self.emit is not None:
            self.emit(Retrying(self.url, self.request, facts.attempts, delay, error))
