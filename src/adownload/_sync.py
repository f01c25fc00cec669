"""Blocking wrappers for scripts: they run an event loop for the caller."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Unpack

from . import _loop
from ._cache import Cache
from ._downloader import Downloader, DownloaderOptions
from ._models import Item, Outcome
from ._registry import Registry

__all__ = ["download", "download_many", "fetch", "fetch_many"]


def _refuse_inside_event_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"adownload.{name}() blocks, so it cannot be called from a running event loop; "
        f"use 'async with adownload.Downloader() as dl: await dl.{name}(...)' instead"
    )


def download(
    item: Item,
    *,
    dest: str | os.PathLike[str] | None = None,
    **options: Unpack[DownloaderOptions],
) -> Outcome:
    """Download one file and return its `Outcome`; raise a `DownloadError` if it fails.

    The blocking twin of `Downloader.download`, for scripts; it takes every keyword of
    `Downloader` (but `session`):

    >>> adownload.download(url, dest="dl/", retry=adownload.Retry(attempts=8))  # doctest: +SKIP
    """
    _refuse_inside_event_loop("download")

    async def main() -> Outcome:
        async with Downloader(**options) as dl:
            return await dl.download(item, dest=dest)

    return _loop.run(main())


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
    _refuse_inside_event_loop("download_many")

    async def main() -> list[Outcome]:
        async with Downloader(**options) as dl:
            return await dl.download_many(items, dest=dest)

    return _loop.run(main())


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

    >>> adownload.fetch("https://example.org/iris.csv", checksum="sha256:...")  # doctest: +SKIP
    """
    _refuse_inside_event_loop("fetch")

    async def main() -> Path:
        async with Downloader(**options) as dl:
            return await dl.fetch(url, checksum=checksum, cache=cache)

    return _loop.run(main())


def fetch_many(
    items: Iterable[str | tuple[str, str | None]] | Registry,
    *,
    cache: Cache | str | os.PathLike[str] | None = None,
    **options: Unpack[DownloaderOptions],
) -> list[Path]:
    """`fetch` every item at once; the paths, in order (the blocking `Downloader.fetch_many`)."""
    _refuse_inside_event_loop("fetch_many")

    async def main() -> list[Path]:
        async with Downloader(**options) as dl:
            return await dl.fetch_many(items, cache=cache)

    return _loop.run(main())
