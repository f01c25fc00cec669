"""The resume state kept beside a `.part` file: what it is a part of, and how much is done.

`<name>.part.state` is a small JSON file: the URL (without userinfo, query or fragment, so it
holds no credentials and survives re-signed URLs), the length, the validators (ETag,
Last-Modified) and the byte ranges known to be written. It holds no header values of the
request. A `.part` file is only continued when its state file matches the new request and its
validators are sent back with `If-Range`, so a changed file is never spliced onto old bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL

_VERSION = 1
_MAX_STATE_BYTES = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def state_path(part: Path) -> Path:
    return part.with_name(part.name + ".state")


def identity(url: URL) -> str:
    """What a `.part` file is matched against: the URL without credentials, query or fragment."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


@dataclass(slots=True)
class PartState:
    url: str
    length: int | None
    etag: str | None
    last_modified: str | None
    ranges: list[tuple[int, int]] = field(default_factory=list)
    #: Written by several segments: the part may have holes, and only `ranges` are done. A
    #: part of one stream is done up to its size, whatever `ranges` says.
    sparse: bool = False

    @property
    def resumable(self) -> bool:
        """A strong ETag or a Last-Modified date lets If-Range protect a resumed download."""
        return bool((self.etag and not self.etag.startswith("W/")) or self.last_modified)

    def if_range(self) -> str | None:
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def matches(self, etag: str | None, last_modified: str | None) -> bool:
        """Whether a response's validators describe the same file as this state."""
        if self.etag and etag:
            return self.etag == etag
        if self.last_modified and last_modified:
            return self.last_modified == last_modified
        return False

    def missing(self) -> list[tuple[int, int]]:
        """The byte ranges of the file not done yet, in order (the length must be known)."""
        assert self.length is not None
        holes = []
        end = 0
        for start, stop in merge(self.ranges):
            if start > end:
                holes.append((end, min(start, self.length)))
            end = max(end, stop)
        if end < self.length:
            holes.append((end, self.length))
        return [(a, b) for a, b in holes if a < b]

    def done_prefix(self) -> int:
        """Bytes done from offset 0 without a gap."""
        end = 0
        for start, stop in sorted(self.ranges):
            if start > end:
                break
            end = max(end, stop)
        return end


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`ranges` sorted, with overlapping and touching ones joined."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(ranges):
        if start >= stop:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def load(path: Path) -> PartState | None:
    """The state at `path`, or None if it is unreadable, foreign or a link.

    Raises FileNotFoundError when there is no state at all (the caller then knows that there is
    nothing to remove either).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            raw = file.read(_MAX_STATE_BYTES + 1)
        data = json.loads(raw)
        if len(raw) > _MAX_STATE_BYTES or data.get("version") != _VERSION:
            return None
        ranges = [(int(a), int(b)) for a, b in data.get("ranges", [])]
        length = data.get("length")
        state = PartState(
            url=str(data["url"]),
            length=None if length is None else int(length),
            etag=data.get("etag"),
            last_modified=data.get("last_modified"),
            ranges=[(a, b) for a, b in ranges if 0 <= a < b],
            sparse=data.get("sparse") is True,
        )
        if state.sparse and state.length is None:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def save(path: Path, state: PartState) -> None:
    """Write `state` to `path` atomically: a temporary file, then `os.replace`.

    A few hundred bytes: written on the event loop, cheaper than a thread hop.
    """
    data = {
        "version": _VERSION,
        "url": state.url,
        "length": state.length,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "ranges": merge(state.ranges),
        "sparse": state.sparse,
    }
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file)
    os.replace(tmp, path)
