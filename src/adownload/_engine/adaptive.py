"""Adaptive per-host concurrency (`Limits(adaptive=True)`): a host's limit found by asking.

A `HostGate` is one host's permits. Its `limit` starts at `INITIAL` and moves within
`[1, max_per_host]`, the way TCP moves its window:

- **Cut** (multiplicatively, to `CUT` of it, rounded, at least 1): a 429 or 503, a refused or reset
  connection, a connect, read or speed timeout. Only a request that started after the last cut
  can cut again, so one burst of failures is one cut. A segment connection above a cut limit
  gives its permit back after its segment. A `Retry-After` also pauses the whole
  host: no request to it starts before then (capped at `Retry.max_delay`).
- **Raise**, judged once per `WINDOW` of traffic: when requests waited for a permit during the
  window (the limit was what held them back) and the host's bytes per second grew by at least
  `GROWTH` since the last raise, the limit doubles (before the first cut or stall: slow start)
  or grows by one. The window right after a change is not judged (new connections need a
  moment to start). A raise that bought less than `GROWTH` is taken back, and the limit stays
  there for `HOLD` seconds before it probes again: more connections to a server that is
  already as fast as it gets only load it.

Files and the segments of large files take permits of the same gate, so both share the
budget. `Limiter` (`_engine/limits.py`) makes the gates and keeps what they learnt while a host is
idle (up to `KEEP` hosts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .._model.errors import (
    ConnectError,
    ConnectTimeout,
    FTPReplyError,
    HTTPStatusError,
    IncompleteBodyError,
    ReadTimeout,
    StallError,
)

#: The limit of a host not seen before: two connections find out quickly whether a third
#: helps, and a server that serves one at a time is not met with six.
INITIAL = 2
#: Seconds of traffic over which a host's throughput is measured.
WINDOW = 0.25
#: How much more throughput (a factor) a raise must bring to be kept.
GROWTH = 1.1
#: The factor of a cut (TCP CUBIC's 0.7: a cut by half overshoots for a server whose limit
#: is a fixed number of requests, and the limit then takes twice as long to come back).
CUT = 0.7
#: Seconds a limit stays below a raise that did not pay, before it probes again.
HOLD = 10.0
#: Idle hosts whose learnt limits are kept.
KEEP = 4096

#: The end of the reason of a cut heard from another process (never passed on again).
RELAYED = ", in another process"
#: HTTP statuses that say "fewer requests, please" (for FTP: the reply 421).
THROTTLING = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class HostLimit:
    """What adaptive concurrency learnt about one host (`Downloader.host_limits()`).

    `limit` is the host's limit now; `highest` and `lowest` the extremes it reached; `cuts` how
    often a failure cut it; `throttled` the 429 and 503 answers it got; `paused` the seconds
    its `Retry-After` answers paused it for, in all.
    """

    limit: int
    highest: int
    lowest: int
    cuts: int
    throttled: int
    paused: float


def congestion(error: BaseException) -> tuple[str, float | None] | None:
    """Whether `error` says the host has too much to do: (the reason, a `Retry-After` in
    seconds or None), or None for an error that says nothing about load (a 404, a checksum)."""
    if isinstance(error, HTTPStatusError):
        if error.status in THROTTLING:
            return f"HTTP {error.status}", error.retry_after
        return None
    if isinstance(error, FTPReplyError):
        # 421: too many users or connections, FTP's way of saying 503.
        return ("FTP 421", None) if error.code == 421 else None
    if isinstance(error, ConnectTimeout | ReadTimeout | StallError):
        return "timeout", None
    if isinstance(error, ConnectError):
        return "connection refused", None
    if isinstance(error, IncompleteBodyError):
        return "connection broken", None
    return None


class HostGate:
    """One host's permits, with a limit that adapts (see the module's text).

    `on_change(previous, limit, reason)` is called whenever the limit moves. `clock` is for the
    unit tests.
    """

    __slots__ = (
        "_bytes",
        "_clock",
        "_cut_at",
        "_held_until",
        "_last_failure",
        "_level_before",
        "_max",
        "_max_pause",
        "_on_change",
        "_pressed",
        "_rate_before",
        "_slow_start",
        "_timer",
        "_waiters",
        "_warm",
        "_window_start",
        "active",
        "cuts",
        "highest",
        "limit",
        "lowest",
        "paused",
        "paused_until",
        "throttled",
    )

    def __init__(
        self,
        maximum: int,
        *,
        max_pause: float,
        on_change: Callable[[int, int, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = maximum
        self._max_pause = max_pause
        self._on_change = on_change
        self._clock = clock
        self.limit = self.highest = self.lowest = min(INITIAL, maximum)
        self.active = 0
        self.cuts = self.throttled = 0
        self.paused = 0.0
        self.paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._cut_at = float("-inf")  # requests that started before the last cut cut no more
        self._slow_start = True
        self._held_until = 0.0  # no raise above `_level_before` until then
        # A segment's failure reaches the gate twice when it ends the download: from the
        # segment, then through the slot. It counts once.
        self._last_failure: BaseException | None = None
        self._window_start = clock()
        self._bytes = 0
        self._pressed = False  # a request waited for a permit in this window
        self._warm = False  # this window follows a change: not judged
        self._rate_before: float | None = None  # bytes/s at the level before the last raise
        self._level_before = self.limit

    @property
    def idle(self) -> bool:
        return not self.active and not self._waiters

    def report(self) -> HostLimit:
        return HostLimit(
            self.limit, self.highest, self.lowest, self.cuts, self.throttled, self.paused
        )

    # --- permits ----------------------------------------------------------------------------

    @property
    def over(self) -> bool:
        """Whether more permits are out than the limit allows (after a cut)."""
        return self.active > self.limit

    async def acquire(self) -> None:
        """Wait for a permit."""
        if self.active < self.limit and not self._waiters and self._clock() >= self.paused_until:
            self.active += 1
            return
        self._pressed = True
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.active -= 1  # handed a permit just as we were cancelled: give it back
                self._wake()
            else:
                # Still waiting, unless a `_wake` between the cancel and now dropped it.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self, error: BaseException | None, started: float) -> None:
        """Give a permit back, with what happened to the request that held it (which started
        at `started`, on this gate's clock)."""
        self.active -= 1
        if error is None or not self.failed(error, started):
            self._tick(self._clock())
        self._wake()

    def failed(self, error: BaseException, started: float) -> bool:
        """A request that started at `started` failed with `error`: cut the limit (and pause
        the host for a `Retry-After`) if the error says the host is overloaded. Whether it did."""
        signal = congestion(error)
        if signal is None:
            return False
        if error is self._last_failure:
            return True
        self._last_failure = error
        reason, retry_after = signal
        if reason.startswith(("HTTP", "FTP")):
            self.throttled += 1
        if retry_after is not None and retry_after > 0:
            self._pause(self._clock(), min(retry_after, self._max_pause))
        if started >= self._cut_at:
            self._cut(reason)
        self._wake()
        return True

    def heard(self, reason: str, pause: float) -> None:
        """Another process with a share of this host's budget (a worker of the same run) was
        told to slow down (`reason`, and a `Retry-After` of `pause` seconds): cut and pause as
        if told here, so the host sees the run as one client. One cut per burst, whichever
        process heard it first."""
        now = self._clock()
        if pause > 0:
            self._pause(now, min(pause, self._max_pause))
        if now - self._cut_at >= WINDOW:
            self._cut(f"{reason}{RELAYED}")
        self._wake()

    def pause_left(self) -> float:
        """Seconds until no `Retry-After` pause holds this host."""
        return max(0.0, self.paused_until - self._clock())

    def now(self) -> float:
        return self._clock()

    def received(self, size: int) -> None:
        """`size` more bytes arrived from this host."""
        self._bytes += size
        self._tick(self._clock())

    # --- inside -------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        now = self._clock()
        if now < self.paused_until:
            if self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.paused_until - now, self._resume)
            return
        while waiters and self.active < self.limit:
            waiter = waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    def _resume(self) -> None:
        self._timer = None
        self._wake()

    def _pause(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until > self.paused_until:
            self.paused += until - max(now, self.paused_until)
            self.paused_until = until

    def _cut(self, reason: str) -> None:
        self._cut_at = self._clock()
        self.cuts += 1
        self._slow_start = False
        self._rate_before = None  # the next raise is a fresh probe
        # Rounded: 4 becomes 3 (not 2), so a limit one over the server's loses one step.
        self._set(max(1, int(self.limit * CUT + 0.5)), reason)

    def _tick(self, now: float) -> None:
        elapsed = now - self._window_start
        if elapsed < WINDOW:
            return
        rate = self._bytes / elapsed
        pressed = self._pressed
        self._window_start, self._bytes, self._pressed = now, 0, bool(self._waiters)
        if self._warm:
            self._warm = False
            return
        if not pressed or now < self.paused_until:
            return  # the limit held nothing back: nothing to learn
        if self._rate_before is not None and rate < self._rate_before * GROWTH:
            # The last raise bought (almost) nothing: take it back and stay there a while.
            self._slow_start = False
            self._held_until = now + HOLD
            self._rate_before = None
            if self.limit > self._level_before:
                self._set(self._level_before, "no more throughput")
            return
        ceiling = self._level_before if now < self._held_until else self._max
        if self.limit >= ceiling:
            return
        self._level_before, self._rate_before = self.limit, rate
        raised = self.limit * 2 if self._slow_start else self.limit + 1
        self._set(min(ceiling, raised), "more throughput")

    def _set(self, limit: int, reason: str) -> None:
        previous = self.limit
        self._warm = True
        self._window_start, self._bytes = self._clock(), 0
        if limit == previous:
            return
        self.limit = limit
        self.highest = max(self.highest, limit)
        self.lowest = min(self.lowest, limit)
        if self._on_change is not None:
            self._on_change(previous, limit, reason)
        if limit > previous:
            self._wake()
