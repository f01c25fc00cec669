"""Configuration objects: small, frozen, validated, and safe to share between downloaders."""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

__all__ = ["Existing", "Limits", "Retry", "Segments", "Timeout"]

#: Statuses that say "try again later" rather than "no".
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def _check_seconds(name: str, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive, finite number of seconds, not {value!r}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")


@dataclass(frozen=True, slots=True)
class Timeout:
    """Time limits of one download, in seconds; None switches a limit off.

    - `connect`: to get a connection (including DNS and TLS). Default 30.
    - `read`: the longest silence while waiting for the response or its next byte. Default 60.
    - `total`: the whole download, every attempt and the waits between them included, from the
      first request to the file's commit. Default None: a large file on a slow link may
      legitimately take hours.
    - `min_speed`: bytes per second; a transfer slower than that, averaged over
      `min_speed_window` seconds, is abandoned as stalled (and retried, like aria2's
      `--lowest-speed-limit`). Default None: no minimum.

    Each limit that runs out raises a `DownloadTimeout` subclass, which is also a `TimeoutError`.

    ```pycon
    >>> Timeout(read=10)
    Timeout(connect=30.0, read=10, total=None, min_speed=None, min_speed_window=10.0)
    ```
    """

    connect: float | None = 30.0
    read: float | None = 60.0
    total: float | None = None
    min_speed: float | None = None
    min_speed_window: float = 10.0

    def __post_init__(self) -> None:
        _check_seconds("Timeout.connect", self.connect)
        _check_seconds("Timeout.read", self.read)
        _check_seconds("Timeout.total", self.total)
        _check_seconds("Timeout.min_speed", self.min_speed)
        _check_seconds("Timeout.min_speed_window", self.min_speed_window)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a downloader does at once.

    - `max_transfers`: files in flight at once, across all hosts. Default 10.
    - `max_per_host`: connections open at once to one host (scheme, host and port), so that a
      long list of URLs on one mirror does not hammer it. Default 6, as browsers do.
    - `rate`: bytes per second for all transfers of the downloader together (a token bucket);
      None, the default, sets no limit.
    - `adaptive`: find each host's limit by itself, within `[1, max_per_host]`: start at 2,
      cut it when the host answers 429 or 503, refuses, resets or times out, pause the host for
      a `Retry-After`, and raise it while another connection still brings more throughput
      (see `Downloader.host_limits()` and the `HostLimitChanged` event). A large file may then
      be split over up to `max_per_host` connections, more than `Segments.count`. False by
      default: `max_per_host` is then a fixed number.

    ```pycon
    >>> Limits(max_transfers=16, max_per_host=16)
    Limits(max_transfers=16, max_per_host=16, rate=None, adaptive=False)
    ```
    """

    max_transfers: int = 10
    max_per_host: int = 6
    rate: float | None = None
    adaptive: bool = False

    def __post_init__(self) -> None:
        _check_count("Limits.max_transfers", self.max_transfers)
        _check_count("Limits.max_per_host", self.max_per_host)
        if not isinstance(self.adaptive, bool):
            raise TypeError(f"Limits.adaptive must be True or False, not {self.adaptive!r}")
        if self.rate is not None:
            if isinstance(self.rate, bool) or not isinstance(self.rate, int | float):
                raise TypeError(f"Limits.rate must be bytes per second or None, not {self.rate!r}")
            if not (self.rate > 0 and math.isfinite(self.rate)):
                raise ValueError(f"Limits.rate must be positive and finite, not {self.rate!r}")


@dataclass(frozen=True, slots=True)
class Segments:
    """How one large file is split over several connections (as aria2c's `-s` and `-k` do).

    - `count`: connections for one file at most. 1 switches segmented downloads off.
    - `min_size`: no segment is smaller than this many bytes, so a small file is one stream.

    A file is split only when the server answers ranges with validators; each segment writes at
    its offset through the same sink, and `Limits.max_per_host` still caps the connections.

    ```pycon
    >>> Segments(count=16)
    Segments(count=16, min_size=4194304)
    ```
    """

    count: int = 4
    min_size: int = 4 << 20

    def __post_init__(self) -> None:
        _check_count("Segments.count", self.count)
        _check_count("Segments.min_size", self.min_size)


@dataclass(frozen=True, slots=True)
class Retry:
    """When and how often a failed download is tried again. Frozen: safe to share.

    - `attempts`: tries in all, the first included, per URL (`Retry(attempts=1)`: no retries).
    - `backoff`, `multiplier`, `max_delay`: the wait before retry k is
      `min(max_delay, backoff * multiplier ** (k - 1))`, plus up to `jitter` of it at random.
    - `statuses`: HTTP statuses worth another try (408, 429, 500, 502, 503, 504). A
      `Retry-After` header (seconds or an HTTP date) replaces the computed wait, capped at
      `max_delay`.
    - `budget`: seconds for all attempts together; no retry starts that would end its wait
      after it. None: no budget beyond `attempts`.

    Connection errors, timeouts (connect, read, stalled), and bodies that break off are retried;
    a retry continues from the last byte written when the server supports ranges and the file's
    validators still match. Other 4xx statuses, checksum mismatches, size limits and refused
    redirects are not retried.

    ```pycon
    >>> Retry(attempts=6, max_delay=60).delay(1)
    0.52
    ```
    """

    attempts: int = 4
    backoff: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    statuses: frozenset[int] = RETRY_STATUSES
    budget: float | None = None

    def __post_init__(self) -> None:
        _check_count("Retry.attempts", self.attempts)
        for name in ("backoff", "max_delay", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Retry.{name} must be a number, not {value!r}")
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Retry.{name} must be 0 or more and finite, not {value!r}")
        if not (isinstance(self.multiplier, int | float) and self.multiplier >= 1):
            raise ValueError(f"Retry.multiplier must be at least 1, not {self.multiplier!r}")
        _check_seconds("Retry.budget", self.budget)
        statuses = frozenset(self.statuses)
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
            raise ValueError(f"Retry.statuses must be HTTP status codes, not {self.statuses!r}")
        object.__setattr__(self, "statuses", statuses)

    def delay(self, retry: int, *, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        if retry_after is not None:
            return min(self.max_delay, max(0.0, retry_after))
        base = min(self.max_delay, self.backoff * self.multiplier ** (retry - 1))
        return base + random.uniform(0, base * self.jitter)


class Existing(enum.Enum):
    """What to do when the target file already exists.

    - `SKIP` (the default): leave it alone and report the download as skipped, so that a rerun
      of a script does not fetch finished files again. Nothing is requested from the server
      unless the name can only be known from the response (Content-Disposition).
    - `OVERWRITE`: replace it, atomically, once the new file is complete.
    - `RENAME`: keep it and save the new file under a free name, ``name (1).ext``.
    - `ERROR`: fail with `DestinationExistsError`.
    - `NEWER`: download it only when the server's copy is newer (wget's `-N`): the request
      carries `If-Modified-Since` with the file's modification time; an unchanged file (304) is
      skipped, a newer one replaces it once complete. A file saved this way takes the server's
      Last-Modified as its modification time, so the next run compares like with like.
    - `CONTINUE`: continue it from its end, as wget's `-c` does with a file another tool left
      short: the file is copied to its `.part` and the rest asked for with a range. It is
      continued only when the server sends that range and the request's `checksum` vouches
      for the result (nothing else shows that the bytes there are the start of this file); a
      file of the server's length is skipped; anything else fails with
      `DestinationExistsError`, saying why, and leaves the file as it was.

    A file that appears while a download runs is never overwritten unless the policy is OVERWRITE.
    """

    SKIP = "skip"
    OVERWRITE = "overwrite"
    RENAME = "rename"
    ERROR = "error"
    NEWER = "newer"
    CONTINUE = "continue"
