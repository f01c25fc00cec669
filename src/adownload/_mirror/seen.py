"""`Seen`: the files a streamed listing has put in place so far, kept on disk, not in memory.

An object store's prefix may hold millions of keys. The mirror of one is fetched a batch at a
time (`_Mirror.run`), and what it must remember across batches, which local path each key
claimed (two keys may come to one safe name) and which paths are upstream (for `--delete`),
goes to a private temporary SQLite database on disk (`sqlite3.connect("")`), whose page cache
is bounded: the caller's memory stays flat however many keys there are.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable

__all__ = ["Seen"]


class Seen:
    """Local paths claimed by upstream URLs, in a temporary database of this run."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute("CREATE TABLE seen (path TEXT PRIMARY KEY, url TEXT NOT NULL)")
        self._lock = asyncio.Lock()  # one call at a time on the connection

    async def claim(self, pairs: Iterable[tuple[str, str]]) -> list[str | None]:
        """Claim each (path, url); for each, None when it is the url's (new, or claimed by
        the same url before), else the url that claimed the path first."""
        pairs = list(pairs)

        def claim() -> list[str | None]:
            owners: list[str | None] = []
            with self._db:
                self._db.execute("BEGIN")
                for path, url in pairs:
                    self._db.execute(
                        "INSERT OR IGNORE INTO seen (path, url) VALUES (?, ?)", (path, url)
                    )
                    (owner,) = self._db.execute(
                        "SELECT url FROM seen WHERE path = ?", (path,)
                    ).fetchone()
                    owners.append(None if owner == url else owner)
            return owners

        async with self._lock:
            return await asyncio.to_thread(claim)

    async def which(self, paths: Iterable[str]) -> set[str]:
        """Those of `paths` that were claimed."""
        paths = list(paths)

        def which() -> set[str]:
            found: set[str] = set()
            for start in range(0, len(paths), 500):
                chunk = paths[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT path FROM seen WHERE path IN ({marks})", chunk)
                found.update(path for (path,) in rows)
            return found

        async with self._lock:
            return await asyncio.to_thread(which)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._db.close)
