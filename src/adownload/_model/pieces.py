"""Piece hashes: the digest of each fixed-size piece of a file, as a Metalink lists them, so a
bad piece is fetched again on its own instead of the whole file.

`Pieces` is what a caller gives (`Request(pieces=...)`); `PieceCheck` is one download's
bookkeeping: which pieces are verified, which ones the bytes on hand now cover, and reading
them back from the `.part` to hash them. A piece is checked against the bytes in the file, not
the bytes as they streamed by, so a write that went wrong is caught as well as a bad mirror.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ChecksumMismatchError
from .util import redact
from .verify import hash_name

__all__ = ["PieceCheck", "Pieces", "pieces_failed"]

#: Bytes read at once when a piece is hashed.
_READ = 1 << 20


@dataclass(frozen=True, slots=True)
class Pieces:
    """The hashes of a file's consecutive pieces of `length` bytes (the last one may be
    shorter), each a hex digest of `algorithm` (any name hashlib knows; `sha-1`, `sha-256` as
    Metalink spells them are accepted).

    ```pycon
    >>> Pieces(4, "sha-256", (hashlib.sha256(b"abcd").hexdigest(),)).algorithm
    'sha256'
    ```
    """

    length: int
    algorithm: str
    hashes: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 1:
            raise ValueError(
                f"Pieces.length must be a positive number of bytes, not {self.length!r}"
            )
        if isinstance(self.hashes, str) or not self.hashes:
            raise ValueError("Pieces.hashes must be a non-empty sequence of hex digests")
        hashes = tuple(str(digest).strip().lower() for digest in self.hashes)
        name = hash_name(self.algorithm) if isinstance(self.algorithm, str) else None
        if name is None:
            raise ValueError(f"unknown piece hash algorithm {self.algorithm!r}")
        size = hashlib.new(name).digest_size
        if not size:
            raise ValueError(f"{name} has no fixed digest size: it cannot hash pieces")
        for index, digest in enumerate(hashes):
            if len(digest) != 2 * size or not re.fullmatch(r"[0-9a-f]+", digest):
                raise ValueError(
                    f"piece {index}: a {name} hash is {2 * size} hex digits, not {digest[:80]!r}"
                )
        object.__setattr__(self, "algorithm", name)
        object.__setattr__(self, "hashes", hashes)

    def problem_with(self, size: int) -> str | None:
        """Why these pieces cannot be of a file of `size` bytes, or None when they fit."""
        count = -(-size // self.length)
        if count != len(self.hashes):
            return (
                f"{len(self.hashes)} piece hashes of {self.length} bytes do not fit a file of"
                f" {size} bytes ({count} pieces)"
            )
        return None


def pieces_failed(url: str, pieces: Pieces, index: int, why: str) -> ChecksumMismatchError:
    """The error of a file whose pieces failed: `why` says how many, `index` is one of them."""
    return ChecksumMismatchError(
        f"{redact(url)}: {why}", url=url, algorithm=pieces.algorithm,
        expected=pieces.hashes[index], actual="", source="pieces",
    )  # fmt: skip


class PieceCheck:
    """One download's pieces: which are verified, and hashing those the file now holds."""

    __slots__ = ("_pieces", "_size", "failures", "verified")

    def __init__(self, pieces: Pieces, size: int) -> None:
        self._pieces = pieces
        self._size = size
        self.verified = bytearray(len(pieces.hashes))
        self.failures = 0  # bad pieces met so far

    @property
    def complete(self) -> bool:
        return all(self.verified)

    def span(self, index: int) -> tuple[int, int]:
        start = index * self._pieces.length
        return start, min(start + self._pieces.length, self._size)

    def ready(self, ranges: list[tuple[int, int]]) -> list[int]:
        """Unverified pieces that `ranges` (merged, sorted byte ranges on hand) cover whole."""
        length, found = self._pieces.length, []
        for start, end in ranges:
            first = -(-start // length)
            for index in range(first, len(self.verified)):
                piece_start, piece_end = self.span(index)
                if piece_end > end:
                    break
                if piece_start >= start and not self.verified[index]:
                    found.append(index)
        return found

    def invalidate(self, start: int, end: int) -> None:
        """Bytes `[start, end)` are fetched again: the pieces they touch are unverified."""
        length = self._pieces.length
        for index in range(start // length, min(len(self.verified), -(-end // length))):
            self.verified[index] = 0

    async def check(self, path: Path, indexes: list[int]) -> list[int]:
        """Hash the pieces `indexes` as they are in the file at `path`; mark the good ones
        verified and return the bad ones (OSError if the file cannot be read)."""
        if not indexes:
            return []
        bad = await asyncio.to_thread(self._check, path, indexes)
        for index in indexes:
            if index not in bad:
                self.verified[index] = 1
        self.failures += len(bad)
        return bad

    def _check(self, path: Path, indexes: list[int]) -> list[int]:
        bad = []
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            for index in indexes:
                start, end = self.span(index)
                digest = hashlib.new(self._pieces.algorithm)
                while start < end:
                    chunk = os.pread(fd, min(_READ, end - start), start)
                    if not chunk:
                        break
                    digest.update(chunk)
                    start += len(chunk)
                if start < end or digest.hexdigest() != self._pieces.hashes[index]:
                    bad.append(index)
        finally:
            os.close(fd)
        return bad
