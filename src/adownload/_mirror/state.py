"""What a mirror remembers between runs: one SQLite file under the destination.

`DEST/.adownload-mirror.sqlite` holds a row per file the mirror has fetched or is fetching: its
path below DEST, URL, validators (ETag, Last-Modified) and length, whether the mirror created
the file (`owned`: only those may be deleted), and whether the file at that path is complete
(`done`). A row is written as pending *before* a new file's download starts (remembering
whether something was already at that path), and marked done right after the file's commit, so
a process killed between the two leaves a row that says the file is the mirror's own.

SQLite calls block, so every one runs in a single worker thread of the store (one connection,
used by one thread, in order); the event loop only awaits them. Each change is its own
transaction. WAL with `synchronous=NORMAL`: a commit survives the process being killed (only a
power cut can lose the last ones, which the next run revalidates), and costs no fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .._model.util import redact

__all__ = ["STATE_NAME", "MirrorState", "Record"]

#: The state file's name in the destination directory.
STATE_NAME = ".adownload-mirror.sqlite"

_T = TypeVar("_T")
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    length INTEGER,
    owned INTEGER NOT NULL,
    done INTEGER NOT NULL,
    updated REAL NOT NULL
)
"""
_COLUMNS = "path, url, etag, last_modified, length, owned, done"


@dataclass(frozen=True, slots=True)
class Record:
    """One file of the mirror. `path` is relative to DEST, with `/` between components."""

    path: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None
    owned: bool = False
    done: bool = False

    def __post_init__(self) -> None:
        # Stored on disk: the URL without userinfo (compare with `redact(url)`).
        object.__setattr__(self, "url", redact(self.url))


def _record(row: tuple[object, ...]) -> Record:
    path, url, etag, modified, length, owned, done = row
    assert isinstance(path, str)
    assert isinstance(url, str)
    return Record(
        path,
        url,
        etag if isinstance(etag, str) else None,
        modified if isinstance(modified, str) else None,
        length if isinstance(length, int) else None,
        bool(owned),
        bool(done),
    )


class MirrorState:
    """The state store of one destination directory; open it with `MirrorState.open`."""

    def __init__(self, file: Path, *, read_only: bool) -> None:
        self.file = file
        self._read_only = read_only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adownload-state")
        self._db: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, dest: Path, *, read_only: bool = False) -> MirrorState:
        """The store in `dest`, created if needed. `read_only` (a dry run) creates and changes
        nothing: a destination without a store reads as empty."""
        state = cls(dest / STATE_NAME, read_only=read_only)
        try:
            await state._call(state._connect)
        except BaseException:
            await state.close()
            raise
        return state

    def _connect(self) -> None:
        if self._read_only:
            if not self.file.is_file():
                return
            # Opening a WAL database, even read-only, creates its -wal and -shm files; a dry run
            # must not. So a copy (with its WAL, if a killed run left one) is read elsewhere.
            with tempfile.TemporaryDirectory(prefix="adownload-mirror-") as scratch:
                copy = Path(scratch) / STATE_NAME
                shutil.copyfile(self.file, copy)
                wal = self.file.with_name(self.file.name + "-wal")
                with contextlib.suppress(FileNotFoundError):
                    shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
                source = sqlite3.connect(copy)
                try:
                    self._db = sqlite3.connect(":memory:")
                    source.backup(self._db)
                finally:
                    source.close()
            return
        db = sqlite3.connect(self.file, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(
                    f"{self.file} is a mirror state of version {version}, not {_SCHEMA_VERSION}"
                )
            with db:
                db.execute("BEGIN")
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        self._db = db

    async def _call(self, function: Callable[[], _T]) -> _T:
        # One thread, one connection: calls run in the order they were made. A cancelled caller
        # does not interrupt a call under way; the next call waits for it.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

    async def get(self, path: str) -> Record | None:
        def get() -> Record | None:
            if self._db is None:
                return None
            row = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE path = ?", (path,))
            found = row.fetchone()
            return None if found is None else _record(found)

        return await self._call(get)

    async def records(self) -> list[Record]:
        """Every row, sorted by path."""

        def records() -> list[Record]:
            if self._db is None:
                return []
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM files ORDER BY path")
            return [_record(row) for row in rows]

        return await self._call(records)

    async def records_for(self, paths: Iterable[str]) -> list[Record]:
        """The rows of `paths` that exist."""
        paths = list(paths)

        def records_for() -> list[Record]:
            if self._db is None:
                return []
            found: list[Record] = []
            for start in range(0, len(paths), 500):
                chunk = paths[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM files WHERE path IN ({marks})", chunk
                )
                found.extend(_record(row) for row in rows)
            return found

        return await self._call(records_for)

    async def pages(self, size: int = 1000) -> AsyncIterator[list[Record]]:
        """Every row, sorted by path, `size` at a time (a large mirror is never read whole)."""
        after = ""
        while True:

            def page(after: str = after) -> list[Record]:
                if self._db is None:
                    return []
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM files WHERE path > ? ORDER BY path LIMIT ?",
                    (after, size),
                )
                return [_record(row) for row in rows]

            found = await self._call(page)
            if not found:
                return
            yield found
            after = found[-1].path

    async def put(self, record: Record) -> None:
        """Insert or replace the row of `record.path`, in a transaction of its own."""
        await self.put_many([record])

    async def put_many(self, records: Iterable[Record]) -> None:
        """Insert or replace the rows of `records`, all in one transaction."""
        now = time.time()
        rows = [
            (
                record.path,
                record.url,
                record.etag,
                record.last_modified,
                record.length,
                int(record.owned),
                int(record.done),
                now,
            )
            for record in records
        ]
        if not rows:
            return

        def put() -> None:
            db = self._writable()
            with db:
                db.execute("BEGIN")
                db.executemany(
                    f"INSERT OR REPLACE INTO files ({_COLUMNS}, updated)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )

        await self._call(put)

    async def forget(self, path: str) -> None:
        def forget() -> None:
            db = self._writable()
            with db:
                db.execute("DELETE FROM files WHERE path = ?", (path,))

        await self._call(forget)

    def _writable(self) -> sqlite3.Connection:
        if self._read_only or self._db is None:
            raise RuntimeError("the mirror state is open read-only (a dry run)")
        return self._db

    async def close(self) -> None:
        """Close the connection (after any call still under way) and end the worker thread."""

        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await asyncio.shield(self._call(close))
        finally:
            self._executor.shutdown(wait=False)
