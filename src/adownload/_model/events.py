"""Events: what a downloader tells an embedding application (and the CLI) while it works.

Pass a callback as `Downloader(on_event=...)`; it is called on the event loop, synchronously,
with one of the event classes below. It must be quick (update a progress bar, put the event in
a queue); an exception it raises is logged and otherwise ignored, so a broken display never
breaks a download.

```pycon
>>> def show(event: adownload.Event) -> None:
...     match event:
...         case adownload.Progress(received=n, total=total):
...             print(f"{event.url}: {n}/{total}")
...         case adownload.Finished(outcome=outcome):
...             print(outcome)
```
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from .errors import DownloadError
from .request import Outcome, Request

if TYPE_CHECKING:
    pass

__all__ = [
    "Event",
    "EventHook",
    "Finished",
    "HostLimitChanged",
    "Progress",
    "Queued",
    "Retrying",
    "SourceDropped",
    "Started",
]

log = logging.getLogger("adownload")

#: Seconds between two `Progress` events of one download (the last one always comes).
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class Queued:
    """A download was taken from the caller's items and waits for a transfer slot."""

    url: str
    request: Request | None


@dataclass(frozen=True, slots=True)
class Started:
    """The server answered and the body is about to stream into `path` (None for a sink).

    `total` is the size in bytes when the server announced it; `offset` the bytes already there
    when a download continues, 0 otherwise.
    """

    url: str
    request: Request
    path: Path | None
    total: int | None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """`received` bytes of `total` (None if unknown) are written, counting bytes from earlier
    attempts. Sent at most every `PROGRESS_INTERVAL` seconds per download, and at the end."""

    url: str
    request: Request
    received: int
    total: int | None


@dataclass(frozen=True, slots=True)
class Retrying:
    """Attempt `attempt` failed with `error`; the next one starts in `delay` seconds."""

    url: str
    request: Request
    attempt: int
    delay: float
    error: DownloadError


@dataclass(frozen=True, slots=True)
class SourceDropped:
    """A download from several sources at once stopped using one of them (`source`, the URL
    or a mirror, without its userinfo) for this file, for `reason` ("cannot connect: ...",
    "it sent two bad pieces", "it says the file is 10 bytes, not 20"). The others go on."""

    url: str
    request: Request
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The download ended: downloaded, skipped, or failed, as `outcome` says."""

    outcome: Outcome

    @property
    def url(self) -> str:
        return self.outcome.url


@dataclass(frozen=True, slots=True)
class HostLimitChanged:
    """With `Limits(adaptive=True)`: the connections allowed to one host went from `previous`
    to `limit`, for `reason` ("HTTP 429", "timeout", "more throughput", ...). `url` is the
    host's origin (`http://host:port`)."""

    url: str
    previous: int
    limit: int
    reason: str


Event: TypeAlias = (
    Queued | Started | Progress | Retrying | SourceDropped | Finished | HostLimitChanged
)
EventHook: TypeAlias = Callable[[Event], object]


def emitter(hook: EventHook | None) -> Callable[[Event], None] | None:
    """Wrap a caller's hook so that its exceptions are logged, not raised into a download."""
    if hook is None:
        return None

    def emit(event: Event) -> None:
        try:
            hook(event)
        except Exception:
            # The event's type and URL, not its repr: a request's headers may hold credentials.
            log.exception("the on_event hook raised on %s for %s", type(event).__name__, event.url)

    return emit
