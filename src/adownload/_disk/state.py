"""The resume state kept beside a `.part` file: what it is a part of, and how much is done.

`<name>.part.state` is a small JSON file: the URL (without userinfo, query or fragment), a
SHA-256 of its query (so `?f=a` and `?f=b` are different files, and a signed URL's token is
not written down in clear), the length, the validators (ETag, Last-Modified) and the byte
ranges known to be written. It holds no header values of the request. A `.part` file is only
continued when its state file matches the new request, the part on disk agrees with it, and its
validators are sent back with `If-Range`, so a changed file is never spliced onto old bytes.

Anything unusable (another JSON type, a wrong field type, an impossible number) loads as None:
the caller discards it, so one bad state never fails a file forever.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarl import URL

from .files import SpecialFileError, open_regular, remove_quietly

_VERSION = 2
#: Version 1 had no query digest: still read, for URLs without a query.
_READABLE = frozenset({1, _VERSION})
_MAX_STATE_BYTES = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def state_path(part: Path) -> Path:
    return part.with_name(part.name + ".state")


def identity(url: URL) -> tuple[str, str | None]:
    """What a `.part` file is matched against: the URL without credentials, query or fragment,
    and a SHA-256 of the query (None without one), so that the query counts but is not stored."""
    query = url.raw_query_string
    if url.raw_user is None and url.raw_password is None and not query and not url.raw_fragment:
        return str(url), None  # the common URL: nothing to take off (three URL copies saved)
    plain = str(url.with_user(None).with_query(None).with_fragment(None))
    return plain, (hashlib.sha256(query.encode()).hexdigest() if query else None)


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
    #: The SHA-256 of the URL's query, None when it has none (see `identity`).
    query: str | None = None
    #: A part copied from a file at the final name (`Existing.CONTINUE`): no validator guards
    #: it, the request's checksum does. Never saved: such a state does not outlive the run.
    vouched: bool = False

    @classmethod
    def of(
        cls, url: URL, length: int | None, etag: str | None, last_modified: str | None
    ) -> PartState:
        plain, query = identity(url)
        return cls(plain, length, etag, last_modified, query=query)

    def belongs_to(self, url: URL) -> bool:
        return (self.url, self.query) == identity(url)

    def agrees_with(self, part_size: int) -> bool:
        """Whether a `.part` of `part_size` bytes can hold what this state says it holds: a
        stream's part no longer than the file, a segmented part holding every range it claims."""
        if self.length is not None and part_size > self.length:
            return False
        if self.sparse:
            return all(end <= part_size for _, end in self.ranges)
        return True

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
        if self.vouched:
            return True  # the checksum decides, at the end
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
    """The state at `path`, or None if it is unreadable, foreign, a link or of the wrong shape.

    Raises FileNotFoundError when there is no state at all (the caller then knows that there is
    nothing to remove either), and `_disk.files.SpecialFileError` for a FIFO, socket or device at
    `path`, which is never opened in a way that could block.
    """
    try:
        fd = open_regular(path, os.O_RDONLY)
    except (FileNotFoundError, SpecialFileError):
        raise
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            raw = file.read(_MAX_STATE_BYTES + 1)
        if len(raw) > _MAX_STATE_BYTES:
            return None
        return _parse(json.loads(raw))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _parse(data: Any) -> PartState | None:
    """A state from its JSON, checking every field's type; None for anything else."""
    if not isinstance(data, dict) or data.get("version") not in _READABLE:
        return None
    url, length = data.get("url"), data.get("length")
    etag, modified = data.get("etag"), data.get("last_modified")
    query, sparse, ranges = data.get("query"), data.get("sparse", False), data.get("ranges", [])
    if not isinstance(url, str) or not _optional(etag, str) or not _optional(modified, str):
        return None
    if not _optional(query, str) or not isinstance(sparse, bool) or not isinstance(ranges, list):
        return None
    if length is not None and not _count(length):
        return None
    pairs = []
    for pair in ranges:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_count(n) for n in pair)):
            return None
        start, end = pair
        if start >= end or (length is not None and end > length):
            return None
        pairs.append((start, end))
    if sparse and length is None:
        return None
    return PartState(url, length, etag, modified, pairs, sparse, query)


def _optional(value: object, kind: type) -> bool:
    return value is None or isinstance(value, kind)


def _count(value: object) -> bool:
    # bool is an int in Python; a float (1e999 is inf) is no byte count.
    return type(value) is int and 0 <= value < 1 << 63


def bytes_held(part: Path) -> int:
    """The bytes a kept `.part` holds for the next run: what its state says is done for a part
    written by segments (its size on disk is the whole file's, holes and all), else its size;
    0 for no part."""
    try:
        state = load(state_path(part))
    except OSError:  # no state, or a FIFO or device in its place
        state = None
    if state is not None and state.sparse:
        return sum(end - start for start, end in merge(state.ranges))
    try:
        return os.lstat(part).st_size
    except OSError:
        return 0


def save(path: Path, state: PartState) -> None:
    """Write `state` to `path` atomically: a temporary file, then `os.replace`. A failure (a
    full disk) leaves no temporary file behind.

    A few hundred bytes: written on the event loop, cheaper than a thread hop.
    """
    data = {
        "version": _VERSION,
        "url": state.url,
        "query": state.query,
        "length": state.length,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "ranges": merge(state.ranges),
        "sparse": state.sparse,
    }
    tmp = path.with_name(path.name + ".tmp")
    remove_quietly(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(data, file)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
