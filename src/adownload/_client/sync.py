"""Blocking wrappers for scripts: they run an event loop for the caller."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar, Unpack

from .._cache import fetch as _fetch

# Imported at runtime, not for type checkers only: the public functions' annotations resolve
# (typing.get_type_hints), as tests/test_api.py checks.
from .._cache.fetch import Listed  # noqa: TC001
from .._cache.store import Cache  # noqa: TC001
from .._model.request import Item, Outcome, Request
from . import loop as _loop
from .downloader import Downloader
from .keywords import DownloaderOptions  # noqa: TC001

__all__ = ["download", "download_many", "fetch", "fetch_many"]

T = TypeVar("T")


def _run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` to its end and return its result, blocking: on an event loop of its own,
    in this thread; or, when this thread runs a loop already (a Jupyter cell runs inside the
    kernel's), in a worker thread, while this one waits (as parfive does). That blocks the
    running loop for as long: a coroutine should `await` the `Downloader`'s methods instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _loop.run(main())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="adownload") as pool:
        return pool.submit(lambda: _loop.run(main())).result()


def download(
    item: Item,
    *,
    dest: str | os.PathLike[str] | None = None,
    **options: Unpack[DownloaderOptions],
) -> Outcome:
    """Download one file and return its `Outcome`; raise a `DownloadError` if it fails.

    The blocking twin of `Downloader.download`, for scripts; it takes every keyword of
    `Downloader` (but `session`):

    ```pycon
    >>> adownload.download(url, dest="dl/", retry=adownload.Retry(attempts=8))
    ```
    """

    async def main() -> Outcome:
        async with Downloader(**options) as dl:
            return await dl.download(item, dest=dest)

    return _run(main)


def download_many(
    items: Iterable[Item],
    *,
    dest: str | os.PathLike[str] | None = None,
    **options: Unpack[DownloaderOptions],
) -> list[Outcome]:
    """Download every item concurrently; return one `Outcome` per item, in order.

    The blocking twin of `Downloader.download_many`, with every keyword of `Downloader` (but
    `session`); failures are outcomes, not exceptions.
    """

    async def main() -> list[Outcome]:
        async with Downloader(**options) as dl:
            return await dl.download_many(items, dest=dest)

    return _run(main)


def fetch(
    url: str,
    *,
    checksum: str | None = None,
    cache: Cache | str | os.PathLike[str] | None = None,
    **options: Unpack[DownloaderOptions],
) -> Path:
    """The path of a verified local copy of `url` in the download cache; the blocking twin of
    `Downloader.fetch`, for scripts and notebooks (with every keyword of `Downloader` but
    `session`):

    ```pycon
    >>> adownload.fetch("https://example.org/iris.csv", checksum="sha256:...")
    ```
    """

    dl = Downloader(**options)  # the options checked, nothing opened
    store = _fetch.as_cache(cache)

    async def main() -> Path:
        # A copy its checksum vouches for is returned before any session (or aiohttp) exists.
        copy = await _fetch.stored_copy(store, Request(url, checksum=checksum))
        if copy is not None:
            return copy
        async with dl:
            return await dl.fetch(url, checksum=checksum, cache=store)

    return _run(main)


def fetch_many(
    items: Iterable[str | tuple[str, str | None]] | Listed,
    *,
    cache: Cache | str | os.PathLike[str] | None = None,
    **options: Unpack[DownloaderOptions],
) -> list[Path]:
    """`fetch` every item at once; the paths, in order (the blocking `Downloader.fetch_many`)."""

    async def main() -> list[Path]:
        async with Downloader(**options) as dl:
            return await dl.fetch_many(items, cache=cache)

    return _run(main)
