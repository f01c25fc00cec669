"""The download cache's store on disk: files by content, what each URL gave, and the locks.

```
ROOT/objects/abcdef.../data.csv      the file, in a directory named by its SHA-256
ROOT/urls/<key>.json                 what a URL gave last: the digest, name, validators, size
ROOT/incoming/<key>-<name>           a download under way (its .part resumes a killed run)
ROOT/locks/<key>.lock                one fetch of a URL at a time, across processes
```

`<key>` is the SHA-256 of the URL without its userinfo and fragment. The same bytes reached
by two URLs are stored once. Locks are `flock`s on open files, which the kernel releases when
their process dies, so a killed fetch never leaves one held. A file's modification time is
its last use (written at most once an hour, `USE_GRANULARITY`), which least-recently-used
eviction goes by.

The fetching itself, through a `Downloader`, is `_cache/fetch.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from yarl import URL

from .._disk import files as _files
from .._disk.existing import read_into
from .._model.errors import StorageError
from .._model.verify import Hashes

__all__ = ["Cache", "CacheEntry"]

#: How often a fetch waiting for another one's lock looks again.
_LOCK_POLL = 0.05
#: A file's last use is written (its mtime) only when the one on record is older than this:
#: least-recently-used eviction needs no finer clock, and a fetch from the cache then writes
#: nothing.
USE_GRANULARITY = 3600.0


def default_root() -> Path:
    """`$ADOWNLOAD_CACHE`, else the platform's user cache directory for adownload."""
    configured = os.environ.get("ADOWNLOAD_CACHE")
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # only when a cache is used

    return Path(platformdirs.user_cache_dir("adownload", appauthor=False))


class CacheNotWritable(StorageError):
    """The cache's lock cannot be taken: the cache is read-only, or another user's."""


@dataclass(frozen=True, slots=True)
class Record:
    """What one URL gave when it was last fetched."""

    url: str
    sha256: str
    name: str
    size: int
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One file in the cache: where it is, its size and digest, when it was last used (a Unix
    time), and the URLs known to give it."""

    path: Path
    size: int
    sha256: str
    last_used: float
    urls: tuple[str, ...]


class Cache:
    """A download cache in the directory `root` (default: `$ADOWNLOAD_CACHE`, else the user
    cache directory, such as `~/.cache/adownload`). With `max_size` (bytes), each fetch that
    adds a file then removes the least recently used others until the cache fits.

    Pass it as `fetch(url, cache=...)`; `entries()` and `prune()` inspect and trim it.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, max_size: int | None = None):
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0
        ):
            raise ValueError(f"max_size must be a number of bytes or None, not {max_size!r}")
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.max_size = max_size
        # Directories known to exist: a mkdir costs as much as the rest of a small fetch.
        self._known: set[Path] = set()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r}, max_size={self.max_size!r})"

    # --- what a URL gave ----------------------------------------------------------------------

    @staticmethod
    def key(url: URL) -> str:
        plain = url.with_user(None).with_password(None).with_fragment(None)
        return hashlib.sha256(str(plain).encode()).hexdigest()

    def record(self, key: str) -> Record | None:
        """What the URL `key` gave; None when there is no record, or a damaged one (as if
        never fetched)."""
        try:
            data = json.loads((self.root / "urls" / f"{key}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return record_from(data)

    def save_record(self, key: str, record: Record) -> None:
        """Write the record of `key`, which the caller holds the lock of. Written in place, not
        through a temporary file (a file created costs as much as a small fetch): a reader
        without the lock (`entries`, `prune`) may see it half written, and skips it."""
        path = self._dir("urls") / f"{key}.json"
        path.write_text(json.dumps(asdict(record)))

    def object_path(self, sha256: str, name: str) -> Path:
        return self.root / "objects" / sha256 / name

    def incoming(self, key: str, name: str) -> Path:
        """Where a download of the URL `key` goes until it is complete and verified."""
        return self._dir("incoming") / f"{key}-{name}"

    def cached(self, record: Record | None, wanted: tuple[str, str] | None) -> Path | None:
        """The file `record` names, if it is there whole: the size it had, and, with `wanted`
        (algorithm, hex), that digest, read from the file. A damaged file is removed. A file
        returned counts as used now."""
        if record is None:
            return None
        path = self.object_path(record.sha256, record.name)
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if not (stat.S_ISREG(info.st_mode) and info.st_size == record.size):
            self._drop(path)
            return None
        if wanted is not None:
            algorithm, digest = wanted
            hashes = Hashes([algorithm, "sha256"] if algorithm != "sha256" else ["sha256"])
            read_into(path, hashes, None)
            if hashes.digest("sha256").hex() != record.sha256:
                self._drop(path)  # damaged in place: fetched again
                return None
            if hashes.digest(algorithm).hex() != digest:
                return None  # another file than the one asked for: fetched again
        if time.time() - info.st_mtime > USE_GRANULARITY:
            self.touch(path)
        return path

    def by_digest(self, sha256: str) -> Path | None:
        """A stored file with this SHA-256 (reached by any URL), read to confirm it."""
        path = self._existing_object(sha256)
        if path is None:
            return None
        try:
            size = os.lstat(path).st_size
        except OSError:
            return None  # evicted meanwhile by another process
        return self.cached(Record("", sha256, path.name, size), ("sha256", sha256))

    def store(self, incoming: Path, sha256: str, name: str) -> Path:
        """Move the complete, verified file `incoming` into the store; its path there (the one
        that was there already, if the same bytes came before)."""
        final = self.object_path(sha256, name)
        existing = self._existing_object(sha256)
        if existing is not None:
            _files.remove_quietly(incoming)
            return existing
        final.parent.mkdir(parents=True, exist_ok=True)  # one directory per stored file
        os.replace(incoming, final)
        return final

    def touch(self, path: Path) -> None:
        """`path` was used now (for least-recently-used eviction)."""
        with contextlib.suppress(OSError):
            os.utime(path)

    # --- locks --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock of `key` against every other fetch of it, in any process. A cache
        that cannot be written (read-only, another user's) is a `StorageError`."""
        path = self.root / "locks" / f"{key}.lock"
        try:
            # 0o666 less the umask, as every other file here: a group's shared cache stays
            # usable by each of its users.
            fd = os.open(self._dir("locks") / path.name, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise CacheNotWritable(
                f"the cache {self.root} cannot be written: {exc.strerror or exc}",
                url=None,
                path=path,
                errno=exc.errno,
            ) from None
        try:
            while not _try_lock(fd):  # noqa: ASYNC110 (another process holds it: no event)
                await asyncio.sleep(_LOCK_POLL)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- inspecting and trimming --------------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Every file in the cache, least recently used first."""
        urls: dict[str, list[str]] = {}
        records = self.root / "urls"
        for record_path in sorted(records.glob("*.json")) if _files.is_real_dir(records) else ():
            record = self.record(record_path.stem)
            if record is not None:
                urls.setdefault(record.sha256, []).append(record.url)
        entries = []
        for path in self._objects():
            try:
                info = os.lstat(path)
            except OSError:
                continue
            sha = path.parent.name
            entries.append(
                CacheEntry(path, info.st_size, sha, info.st_mtime, tuple(urls.get(sha, ())))
            )
        entries.sort(key=lambda entry: entry.last_used)
        return entries

    def size(self) -> int:
        return sum(entry.size for entry in self.entries())

    def prune(self, max_size: int | None = None, *, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used files until the cache holds at most `max_size`
        bytes (default: the cache's `max_size`; 0 empties it), never `keep`, and the records
        of files that are gone. The files removed."""
        limit = self.max_size if max_size is None else max_size
        removed: list[Path] = []
        if limit is not None:
            entries = self.entries()
            total = sum(entry.size for entry in entries)
            for entry in entries:
                if total <= limit:
                    break
                if keep is not None and entry.path == keep:
                    continue
                self._drop(entry.path)
                removed.append(entry.path)
                total -= entry.size
        urls = self.root / "urls"
        for record_path in urls.glob("*.json") if _files.is_real_dir(urls) else ():
            record = self.record(record_path.stem)
            if record is None or not self.object_path(record.sha256, record.name).exists():
                _files.remove_quietly(record_path)
        return removed

    # --- inside -------------------------------------------------------------------------------

    def _dir(self, *parts: str) -> Path:
        directory = self.root.joinpath(*parts)
        if directory not in self._known:
            directory.mkdir(parents=True, exist_ok=True)
            self._known.add(directory)
        return directory

    def _objects(self) -> Iterator[Path]:
        """The stored files: regular files in real directories of `objects/`; a link (or
        anything else) placed there is never followed, so never listed or removed."""
        objects = self.root / "objects"
        if not _files.is_real_dir(objects):
            return
        for digest in objects.iterdir():
            if _SHA256.fullmatch(digest.name) and _files.is_real_dir(digest):
                yield from (path for path in digest.iterdir() if _files.is_regular_file(path))

    def _existing_object(self, sha256: str) -> Path | None:
        directory = self.root / "objects" / sha256
        if not _files.is_real_dir(directory):
            return None
        with contextlib.suppress(OSError):
            for path in directory.iterdir():
                if _files.is_regular_file(path):
                    return path
        return None

    def _drop(self, path: Path) -> None:
        """Remove the stored file `path` and its digest's directory: only a file of the
        store's own shape (`objects/<sha256>/<name>`, a real directory), never through a link
        and never anything outside the cache."""
        directory = path.parent
        if directory.parent != self.root / "objects" or not _files.is_real_dir(directory):
            return
        if not _SHA256.fullmatch(directory.name) or not _files.is_real_dir(directory.parent):
            return
        _files.remove_quietly(path)  # a link there is removed itself, never what it names
        unpacked = path.with_name(path.name + ".unpacked")  # what `unpack` made of it
        if _files.is_real_dir(unpacked):
            shutil.rmtree(unpacked, ignore_errors=True)  # never through a link (3.11's rmtree)
        with contextlib.suppress(OSError):
            directory.rmdir()


_SHA256 = re.compile(r"[0-9a-f]{64}")


def record_from(data: object) -> Record | None:
    """The `Record` a URL's JSON file holds, or None for anything damaged: wrong types, a
    digest that is no SHA-256, a name that is not one plain file name (a record could
    otherwise name `../../x` and have it removed as a damaged copy)."""
    if not isinstance(data, dict) or set(data) - set(Record.__dataclass_fields__):
        return None
    url, sha256, name, size = (data.get(field) for field in ("url", "sha256", "name", "size"))
    etag, last_modified = data.get("etag"), data.get("last_modified")
    if not (isinstance(url, str) and isinstance(sha256, str) and isinstance(name, str)):
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None
    if not all(value is None or isinstance(value, str) for value in (etag, last_modified)):
        return None
    if not _SHA256.fullmatch(sha256) or _files.safe_filename(name, fallback="") != name:
        return None
    return Record(url, sha256, name, size, etag, last_modified)


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process at a time is the caller's
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
