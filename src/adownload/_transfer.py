"""One file's way from URL to disk: plan the target, request, stream into a sink, verify, commit.

Only a complete, verified file ever reaches its final name: bytes go to `<name>.part`, which is
moved into place by `_files.commit` once the body is complete. Any failure or cancellation
removes the `.part` file and leaves whatever was at the final name untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import aiohttp
from multidict import CIMultiDict

from . import _files
from ._config import Existing, Limits, Timeout
from ._events import PROGRESS_INTERVAL, Event, Progress, Started
from ._exceptions import (
    DestinationExistsError,
    HTTPStatusError,
    IncompleteBodyError,
    InvalidRequestError,
    RemoteProtocolError,
    StorageError,
    TotalTimeout,
    UnsafePathError,
    translate_client_errors,
)
from ._models import Outcome, Request
from ._sinks import Sink, SinkOpener

log = logging.getLogger("adownload")

_K = TypeVar("_K")
_P = TypeVar("_P", bound=AbstractAsyncContextManager[object])


class KeyedPrimitives(Generic[_K, _P]):
    """One lock or semaphore per key, made on first use and dropped when nobody holds or waits
    for it, so that a million distinct hosts or paths do not pile up in memory."""

    __slots__ = ("_entries", "_factory")

    def __init__(self, factory: Callable[[], _P]) -> None:
        self._factory = factory
        self._entries: dict[_K, tuple[_P, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: _K) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (self._factory(), [0])
        primitive, users = entry
        users[0] += 1
        try:
            async with primitive:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._entries[key]


class Limiter:
    """Admission of transfers: at most `max_per_host` per host and `max_transfers` in all.

    The host's permit is taken first, so a transfer waiting for a busy host does not hold one
    of the global permits that a transfer to another host could use.
    """

    __slots__ = ("_hosts", "_transfers")

    def __init__(self, limits: Limits) -> None:
        self._transfers = asyncio.Semaphore(limits.max_transfers)
        per_host = limits.max_per_host
        self._hosts: KeyedPrimitives[tuple[str, str | None, int | None], asyncio.Semaphore] = (
            KeyedPrimitives(lambda: asyncio.Semaphore(per_host))
        )

    @asynccontextmanager
    async def slot(self, request: Request) -> AsyncIterator[None]:
        url = request.parsed_url
        async with self._hosts.hold((url.scheme, url.host, url.port)), self._transfers:
            yield


@dataclass(frozen=True, slots=True)
class Settings:
    """A downloader's defaults and shared machinery, handed to each of its transfers."""

    session: aiohttp.ClientSession
    dest: Path
    timeout: Timeout
    existing: Existing
    headers: CIMultiDict[str]
    content_disposition: bool
    writer: SinkOpener
    max_redirects: int
    read_bufsize: int
    limiter: Limiter
    path_locks: KeyedPrimitives[str, asyncio.Lock]
    emit: Callable[[Event], None] | None


class _Skipped(Exception):
    """Internal: the target exists and the policy says to leave it."""

    def __init__(self, path: Path) -> None:
        self.path = path


class Transfer:
    """The state of one download while it runs; `run()` does it and returns its `Outcome`."""

    def __init__(self, settings: Settings, request: Request, dest: Path | None) -> None:
        self._settings = settings
        self.request = request
        self.url = str(request.url)
        self.timeout = request.timeout or settings.timeout
        self.existing = request.existing or settings.existing
        self._dest = dest
        self.path: Path | None = None
        self.status: int | None = None
        self.final_url: str | None = None
        self.size = 0
        self.started = time.monotonic()

    def outcome(self, error: Exception | None = None, *, skipped: bool = False) -> Outcome:
        return Outcome(
            url=self.url,
            request=self.request,
            path=self.path,
            error=error,  # type: ignore[arg-type]  # always a DownloadError by the caller
            status=self.status,
            size=self.size,
            skipped=skipped,
            final_url=self.final_url,
            elapsed=time.monotonic() - self.started,
        )

    async def run(self) -> Outcome:
        """Download the file; raise a `DownloadError` on failure."""
        request = self.request
        try:
            if request.sink is not None:
                async with self._exchange() as response:
                    await self._stream(response, request.sink)
                return self.outcome()
            if request.path is not None:
                target = Path(request.path)
                self._ensure_directory(target.parent)
                return await self._save_to(target)
            if not self._settings.content_disposition:
                name = _files.name_from_url(request.parsed_url)
                return await self._save_to(self._join(self._directory(), name))
            # The name may come from the response, so the request goes first.
            async with self._exchange() as response:
                name = _name_from_response(response) or _files.name_from_url(request.parsed_url)
                target = self._join(self._directory(), name)
                async with self._lock(target):
                    await self._save(response, self._resolve_existing(target))
            return self.outcome()
        except _Skipped as skip:
            self.path = skip.path
            self.size = 0
            return self.outcome(skipped=True)

    async def _save_to(self, target: Path) -> Outcome:
        async with self._lock(target):
            target = self._resolve_existing(target)
            async with self._exchange() as response:
                await self._save(response, target)
        return self.outcome()

    # --- the exchange with the server -----------------------------------------------------

    @asynccontextmanager
    async def _exchange(self) -> AsyncIterator[aiohttp.ClientResponse]:
        """Take a slot, send the request and yield a successful response whose body is unread.

        The total time limit covers the request and everything done with the response inside
        the `async with` block; aiohttp's errors raised anywhere inside it are translated.
        """
        settings = self._settings
        timeout = self.timeout
        headers = settings.headers
        if self.request.headers:
            headers = headers.copy()
            headers.update(self.request.headers)
        async with settings.limiter.slot(self.request):
            total = asyncio.timeout(timeout.total)
            try:
                async with total:
                    with translate_client_errors(self.url, read_timeout=timeout.read):
                        async with settings.session.get(
                            self.request.parsed_url,
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(
                                total=None, connect=timeout.connect, sock_read=timeout.read
                            ),
                            allow_redirects=True,
                            max_redirects=settings.max_redirects,
                            auto_decompress=False,
                            raise_for_status=False,
                            read_bufsize=settings.read_bufsize,
                        ) as response:
                            self.status = response.status
                            self.final_url = str(response.url)
                            log.debug("%s %s <- %s", response.status, response.reason, self.url)
                            self._check_status(response)
                            yield response
            except TimeoutError as exc:
                if total.expired():
                    raise TotalTimeout(
                        f"download took longer than {timeout.total}s: {self.url}",
                        url=self.url,
                        phase="total",
                        seconds=timeout.total,
                    ) from exc
                raise

    def _check_status(self, response: aiohttp.ClientResponse) -> None:
        status = response.status
        if status == 206:
            raise RemoteProtocolError(
                f"206 Partial Content to a request without Range: {self.url}", url=self.url
            )
        if not 200 <= status < 300:
            raise HTTPStatusError(
                f"HTTP {status} {response.reason or ''}".rstrip() + f" for {self.url}",
                url=self.url,
                status=status,
                reason=response.reason or "",
            )

    async def _stream(self, response: aiohttp.ClientResponse, sink: Sink) -> None:
        """Copy the body into `sink` chunk by chunk and close it; check the length."""
        emit = self._settings.emit
        expected = response.content_length
        if emit is not None:
            emit(Started(self.url, self.request, self.path, expected))
            next_progress = time.monotonic() + PROGRESS_INTERVAL
        try:
            offset = 0
            async for chunk in response.content.iter_any():
                try:
                    await sink.write_at(offset, chunk)
                except OSError as exc:
                    raise self._storage_error(exc) from exc
                offset += len(chunk)
                self.size = offset
                if emit is not None and time.monotonic() >= next_progress:
                    emit(Progress(self.url, self.request, offset, expected))
                    next_progress = time.monotonic() + PROGRESS_INTERVAL
            if emit is not None:
                emit(Progress(self.url, self.request, offset, expected))
            if expected is not None and offset != expected:
                raise IncompleteBodyError(
                    f"received {offset} of {expected} bytes from {self.url}",
                    url=self.url,
                    expected=expected,
                    received=offset,
                )
        except BaseException:
            # The error that got us here matters more than one from closing.
            with contextlib.suppress(Exception):
                await sink.close()
            raise
        try:
            await sink.close()
        except OSError as exc:
            raise self._storage_error(exc) from exc

    # --- files ------------------------------------------------------------------------------

    async def _save(self, response: aiohttp.ClientResponse, target: Path) -> None:
        """Stream the body into `target`'s `.part` file and move it into place."""
        self.path = target
        part = _files.part_path(target)
        # A .part left by an earlier run (or planted) is replaced: removing a planted link
        # removes the link, not its target, and the exclusive open below creates a fresh file.
        _files.remove_quietly(part)
        try:
            sink = await self._settings.writer(part)
        except OSError as exc:
            raise self._storage_error(exc, part) from exc
        try:
            await self._stream(response, sink)
            self.path = self._commit(part, target)
        except BaseException:
            _files.remove_quietly(part)
            raise

    def _commit(self, part: Path, target: Path) -> Path:
        while True:
            if _files.is_symlink(target):
                raise UnsafePathError(
                    f"refusing to replace the symbolic link at {target}", url=self.url, path=target
                )
            try:
                _files.commit(part, target, overwrite=self.existing is Existing.OVERWRITE)
            except FileExistsError:
                # The file appeared while we were downloading.
                if self.existing is Existing.RENAME:
                    target = _files.free_name(target)
                    continue
                _files.remove_quietly(part)
                if self.existing is Existing.SKIP:
                    raise _Skipped(target) from None
                raise DestinationExistsError(
                    f"{target} appeared during the download", url=self.url, path=target
                ) from None
            except OSError as exc:
                raise self._storage_error(exc, target) from exc
            log.debug("saved %s (%d bytes)", target, self.size)
            return target

    def _resolve_existing(self, target: Path) -> Path:
        """Apply the existing-file policy to `target`; the path to write, or raise `_Skipped`."""
        self.path = target
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            return target
        except OSError as exc:
            raise self._storage_error(exc, target) from exc
        if stat.S_ISLNK(mode):
            raise UnsafePathError(
                f"refusing to write through the symbolic link at {target}",
                url=self.url,
                path=target,
            )
        if stat.S_ISDIR(mode):
            raise InvalidRequestError(f"the target {target} is a directory", url=self.url)
        existing = self.existing
        if existing is Existing.SKIP:
            log.debug("skipped %s: %s exists", self.url, target)
            raise _Skipped(target)
        if existing is Existing.ERROR:
            raise DestinationExistsError(f"{target} exists", url=self.url, path=target)
        if existing is Existing.RENAME:
            return _files.free_name(target)
        return target

    def _directory(self) -> Path:
        directory = Path(self.request.dest or self._dest or self._settings.dest)
        self._ensure_directory(directory)
        return directory

    def _ensure_directory(self, directory: Path) -> None:
        # mkdir is one quick syscall when the directory exists: cheaper inline than a thread hop.
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise InvalidRequestError(
                f"the destination {directory} exists and is not a directory", url=self.url
            ) from None
        except OSError as exc:
            raise self._storage_error(exc, directory) from exc

    def _join(self, directory: Path, name: str) -> Path:
        try:
            return _files.join_safely(directory, name)
        except ValueError as exc:
            raise UnsafePathError(str(exc), url=self.url, path=directory) from None

    def _lock(self, target: Path) -> AbstractAsyncContextManager[None]:
        # Two downloads to one file in this downloader run one after the other; the second then
        # meets the first one's file and applies its existing-file policy to it.
        return self._settings.path_locks.hold(os.path.abspath(target))

    def _storage_error(self, exc: OSError, path: Path | None = None) -> StorageError:
        path = path or self.path or Path(".")
        return StorageError(
            f"cannot write {path}: {exc.strerror or exc}", url=self.url, path=path, errno=exc.errno
        )


def _name_from_response(response: aiohttp.ClientResponse) -> str | None:
    """The safe file name a Content-Disposition header proposes, if any."""
    with warnings.catch_warnings():
        # aiohttp warns about malformed headers; a stranger's header is no reason to warn.
        warnings.simplefilter("ignore")
        disposition = response.content_disposition
    if disposition is None or not disposition.filename:
        return None
    return _files.safe_filename(disposition.filename)


def merge_headers(*layers: Mapping[str, str] | None) -> CIMultiDict[str]:
    merged: CIMultiDict[str] = CIMultiDict()
    for layer in layers:
        if layer:
            merged.update(layer)
    return merged
