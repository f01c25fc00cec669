"""Configuration objects: small, frozen, validated, and safe to share between downloaders."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = ["Existing", "Limits", "Timeout"]


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
    - `total`: the whole download, from the first request to the file's commit. Default None:
      a large file on a slow link may legitimately take hours.

    Each limit that runs out raises a `DownloadTimeout` subclass, which is also a `TimeoutError`.

    >>> Timeout(read=10)
    Timeout(connect=30.0, read=10, total=None)
    """

    connect: float | None = 30.0
    read: float | None = 60.0
    total: float | None = None

    def __post_init__(self) -> None:
        _check_seconds("Timeout.connect", self.connect)
        _check_seconds("Timeout.read", self.read)
        _check_seconds("Timeout.total", self.total)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a downloader does at once.

    - `max_transfers`: files in flight at once, across all hosts. Default 10.
    - `max_per_host`: connections open at once to one host (scheme, host and port), so that a
      long list of URLs on one mirror does not hammer it. Default 6, as browsers do.

    >>> Limits(max_transfers=16, max_per_host=16)
    Limits(max_transfers=16, max_per_host=16)
    """

    max_transfers: int = 10
    max_per_host: int = 6

    def __post_init__(self) -> None:
        _check_count("Limits.max_transfers", self.max_transfers)
        _check_count("Limits.max_per_host", self.max_per_host)


class Existing(enum.Enum):
    """What to do when the target file already exists.

    - `SKIP` (the default): leave it alone and report the download as skipped, so that a rerun
      of a script does not fetch finished files again. Nothing is requested from the server
      unless the name can only be known from the response (Content-Disposition).
    - `OVERWRITE`: replace it, atomically, once the new file is complete.
    - `RENAME`: keep it and save the new file under a free name, ``name (1).ext``.
    - `ERROR`: fail with `DestinationExistsError`.

    A file that appears while a download runs is never overwritten unless the policy is OVERWRITE.
    """

    SKIP = "skip"
    OVERWRITE = "overwrite"
    RENAME = "rename"
    ERROR = "error"
