"""`fetch`: the path of a verified local copy of a URL, downloaded only when the cache lacks it.

With a checksum, a cached file that has it is returned without a request. Without one, the
cached file is revalidated with a conditional request (`If-None-Match`, `If-Modified-Since`):
a 304 costs no body. A new or changed file goes through the `Downloader` like any download
(`.part` in `incoming/`, so a killed fetch continues where it stopped; verified; committed),
then into the store (`_cache/store.py`). One fetch of a URL runs at a time across processes; the
others wait for its lock and then find the file. With the network unreachable, a cached copy
is returned with a `StaleCacheWarning`, unless a checksum rules it out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .._disk import files as _files
from .._disk.existing import read_into
from .._model.config import Existing
from .._model.errors import (
    ConnectError,
    ConnectTimeout,
    DownloadError,
    HTTPStatusError,
)
from .._model.request import Request
from .._model.util import redact, warn_caller
from .._model.verify import Hashes
from .store import Cache, CacheNotWritable, Record

if TYPE_CHECKING:
    import os

    from .._client.downloader import Downloader

log = logging.getLogger("adownload")


class StaleCacheWarning(UserWarning):
    """The server could not be reached, and `fetch` returned the cached copy it had, which may
    be out of date."""


def as_cache(cache: Cache | str | os.PathLike[str] | None) -> Cache:
    return cache if isinstance(cache, Cache) else Cache(cache)


async def stored_copy(store: Cache, request: Request) -> Path | None:
    """The stored copy of `request` that its checksum vouches for, found without the lock and
    without a request (so without a session); None without a checksum or such a copy."""
    wanted = request.expected_digest
    if wanted is None:
        return None
    # A stored file never changes, so a checksum can vouch for it without the lock.
    key = store.key(request.parsed_url)
    cached = await asyncio.to_thread(store.cached, store.record(key), wanted)
    if cached is None and wanted[0] == "sha256":
        # The same bytes reached by another URL are the file asked for.
        cached = await asyncio.to_thread(store.by_digest, wanted[1])
    return cached


async def fetch(
    dl: Downloader,
    url: str,
    *,
    checksum: str | None = None,
    cache: Cache | str | os.PathLike[str] | None = None,
) -> Path:
    """The path of a verified local copy of `url` in `cache` (see `Downloader.fetch`)."""
    store = as_cache(cache)
    request = Request(url, checksum=checksum)  # checks the URL and the checksum's form
    shown = redact(str(request.parsed_url))
    wanted = request.expected_digest
    key = store.key(request.parsed_url)
    cached = await stored_copy(store, request)
    if cached is not None:
        return cached  # no request at all
    try:
        async with store.lock(key):
            final = await _fetch_locked(dl, store, key, request, shown)
    except CacheNotWritable as exc:
        # A read-only cache (a shared one, prepared for this): its copy, not revalidated.
        cached = await asyncio.to_thread(store.cached, store.record(key), wanted)
        if cached is None:
            raise
        warn_caller(
            f"{exc}; using the cached copy {cached} of {shown} without asking the server",
            StaleCacheWarning,
        )
        return cached
    if store.max_size is not None:
        async with store.lock("_evict"):
            removed = await asyncio.to_thread(store.prune, keep=final)
        if removed:
            log.info("evicted %d files from the cache %s", len(removed), store.root)
    return final


async def _fetch_locked(
    dl: Downloader, store: Cache, key: str, request: Request, shown: str
) -> Path:
    """The fetch itself, under the lock of `key`: the cached copy if it holds, else a
    download into the store."""
    url, checksum, wanted = request.url, request.checksum, request.expected_digest
    record = store.record(key)
    cached = await asyncio.to_thread(store.cached, record, wanted)
    if cached is not None and wanted is not None:
        return cached  # another process fetched it while we waited
    name = record.name if record is not None else _files.name_from_url(request.parsed_url)
    target = store.incoming(key, name)
    headers: dict[str, str] = {}
    if cached is not None and record is not None:
        if record.etag:
            headers["If-None-Match"] = record.etag
        if record.last_modified:
            headers["If-Modified-Since"] = record.last_modified
    try:
        outcome = await dl.download(
            Request(url, path=target, checksum=checksum, headers=headers or None),
            existing=Existing.OVERWRITE,
        )
    except HTTPStatusError as exc:
        if exc.status == 304 and cached is not None:
            return cached
        raise
    except (ConnectError, ConnectTimeout) as exc:
        if cached is None:
            raise DownloadError(
                f"no cached copy of {shown}, and the server cannot be reached: {exc}",
                url=shown,
            ) from exc
        warn_caller(
            f"{shown} cannot be reached ({exc}); using the cached copy {cached}",
            StaleCacheWarning,
        )
        return cached
    path = outcome.path
    assert path is not None
    sha256 = await asyncio.to_thread(_sha256, path, wanted)
    final = store.store(path, sha256, name)
    store.save_record(
        key,
        # The stored file's name: the same bytes may be there already under another one.
        Record(shown, sha256, final.name, outcome.size, outcome.etag, outcome.last_modified),
    )
    store.touch(final)
    return final


class Entry(Protocol):
    """A file a `Listed` names: its URL and the checksum it must have."""

    @property
    def url(self) -> str: ...
    @property
    def checksum(self) -> str | None: ...


@runtime_checkable
class Listed(Protocol):
    """What `fetch_many` reads of a `Registry` (which lives with the clients above the cache)."""

    def entries(self) -> Sequence[Entry]: ...


async def fetch_many(
    dl: Downloader,
    items: Iterable[str | tuple[str, str | None]] | Listed,
    *,
    cache: Cache | str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Fetch every item at once (within the downloader's limits); the paths, in order. The
    first failure is raised after the others finished."""
    store = as_cache(cache)
    if isinstance(items, Listed):
        pairs = [(entry.url, entry.checksum) for entry in items.entries()]
    else:
        pairs = [(item, None) if isinstance(item, str) else item for item in items]
    results = await asyncio.gather(
        *(fetch(dl, url, checksum=checksum, cache=store) for url, checksum in pairs),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if isinstance(result, Path)]


def _sha256(path: Path, wanted: tuple[str, str] | None) -> str:
    if wanted is not None and wanted[0] == "sha256":
        return wanted[1]  # verified while it was downloaded
    hashes = Hashes(["sha256"])
    read_into(path, hashes, None)
    return hashes.digest("sha256").hex()
