"""What a mirror finds upstream: the files below an index page (walked level by level), below
an FTP directory (its listings), or in a list of URLs, each with where it goes below DEST, and
the scope (include, exclude, depth) that decides which ones count.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote

from yarl import URL

from .._disk import files as _files
from .._disk.files import INDEX_NAME, safe_filename
from .._disk.sinks import MemorySink
from .._model.errors import DownloadError, InvalidRequestError, SizeLimitError, UnsafePathError
from .._model.names import plain_name
from .._model.request import Outcome, Request
from .._model.util import each, redact
from .autoindex import below, directory_url, listing_kind, parse_listing

if TYPE_CHECKING:
    from .._client.downloader import Downloader
    from .._engine.settings import Settings
    from .seen import Seen

#: An index page larger than this is not an index page.
_MAX_INDEX_BYTES = 32 << 20


class NotAListing(DownloadError):
    """A page whose first bytes show it is no listing: its download stops there."""


class PageSink(MemorySink):
    """A listing page in memory, which stops the download at the first bytes that show the
    page is no listing (a zip, a text file): a mirror of a file reads none of it into memory."""

    __slots__ = ("_sniffed",)

    def __init__(self) -> None:
        super().__init__()
        self._sniffed = False

    async def write_at(self, offset: int, data: bytes) -> None:
        await super().write_at(offset, data)
        if self._sniffed:
            return
        start = self.getvalue()[:1024]
        if not start.strip(b"\xef\xbb\xbf \t\r\n") and len(start) < 1024:
            return  # only blanks so far
        self._sniffed = True
        if listing_kind(start) is None:
            raise NotAListing("no listing", url=None)


#: Objects of a store's listing fetched per batch (see `Lister.walk_store`).
STORE_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Listed:
    """What a listing says of a file, which decides whether it changed: FTP's size and
    modification time (an HTTP date), an object store's size, time and ETag."""

    size: int | None
    modified: str | None
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    """One file upstream: where it comes from and where it goes below DEST."""

    request: Request
    parts: tuple[str, ...]
    #: From an FTP or object store listing; None for HTTP, where a conditional request decides.
    listed: Listed | None = None

    @property
    def rel(self) -> str:
        return "/".join(self.parts)


def _remote_name(file: Upstream) -> str:
    """The last part of a file's URL path, as the server names it."""
    return file.request.parsed_url.path.rstrip("/").rsplit("/", 1)[-1]


def _match(pattern: str, parts: tuple[str, ...]) -> bool:
    if "/" in pattern:
        return fnmatchcase("/".join(parts), pattern)
    return fnmatchcase(parts[-1], pattern)


def _list_parts(request: Request) -> tuple[str, ...]:
    """Where a listed URL goes below DEST: its relative `path`, or the URL's path."""
    url = str(request.url)
    if request.sink is not None:
        raise InvalidRequestError("a mirror writes files; a Request with a sink", url=url)
    if request.path is not None:
        relative = PurePosixPath(os.fspath(request.path).replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise UnsafePathError(
                f"the path of a mirrored file must be relative, inside the destination:"
                f" {request.path!r}",
                url=url,
            )
        parts = tuple(safe_filename(p) for p in relative.parts if p != ".")
        if parts:
            return parts
    parsed = request.parsed_url.with_query(None)
    root = parsed.with_path("/")
    try:
        found = below(root, parsed)
    except UnicodeDecodeError:
        found = None
    if parsed.raw_path.endswith("/"):
        return (*(found or ()), INDEX_NAME)
    if found is None:
        raise UnsafePathError(f"no safe local path for {url}", url=url)
    return found


class Lister:
    """Lists what is upstream, within a scope; failures go to `fail` and make it incomplete."""

    def __init__(
        self,
        *,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        max_depth: int | None,
        dest: Path,
        fail: Callable[[DownloadError], None],
    ) -> None:
        self._dest = dest  # where the files go: only named in errors
        self.include = include
        self.exclude = exclude
        self.max_depth = max_depth
        self._fail = fail
        self.base: URL | None = None  # the index's base, or None for a list
        self.complete = True  # every page or listing was read

    async def walk(self, start: URL, dl: Downloader) -> list[Upstream]:
        """The files below the index at `start`, level by level, each level's pages at once."""
        files: list[Upstream] = []
        seen: set[str] = set()
        visited: set[URL] = set()
        level: list[URL] = [start]
        depth = 0
        while level:
            # Pages are parsed as they arrive and dropped: a wide level is never held whole.
            pages = (Request(url, sink=PageSink(), max_size=_MAX_INDEX_BYTES) for url in level)
            next_level: list[URL] = []
            async with contextlib.aclosing(dl.as_completed(pages)) as outcomes:
                async for outcome in outcomes:
                    self._read_page(outcome, depth, files, seen, visited, next_level)
            level = next_level
            depth += 1
        return self._one_url_per_file(files)

    async def walk_ftp(self, start: URL, settings: Settings) -> list[Upstream]:
        """The files below the FTP directory `start`, from its listings (MLSD, else LIST)."""
        from .ftp_list import list_directory

        self.base = base = start if start.path.endswith("/") else start.with_path(start.path + "/")
        files: list[Upstream] = []
        level: list[tuple[URL, tuple[str, ...]]] = [(base, ())]
        depth = 0
        while level:
            listings = await asyncio.gather(
                *(list_directory(settings, url) for url, _ in level), return_exceptions=True
            )
            next_level: list[tuple[URL, tuple[str, ...]]] = []
            for (url, parts), listing in zip(level, listings, strict=True):
                if isinstance(listing, BaseException):
                    if not isinstance(listing, DownloadError):
                        raise listing
                    self.complete = False
                    self._fail(listing)
                    continue
                for entry in listing:
                    here = (*parts, safe_filename(entry.name))
                    if entry.directory:
                        deeper = self.max_depth is None or depth < self.max_depth
                        if deeper and not self.pruned(here):
                            next_level.append((url.with_path(url.path + entry.name + "/"), here))
                    elif self.wanted(here):
                        file_url = url.with_path(url.path + entry.name)
                        files.append(
                            Upstream(Request(file_url), here, Listed(entry.size, entry.modified))
                        )
            level = next_level
            depth += 1
        return self._one_url_per_file(files)

    async def walk_store(
        self, start: URL, settings: Settings, seen: Seen
    ) -> AsyncIterator[list[Upstream]]:
        """The objects below the prefix `start` (`s3://bucket/docs/`), from the store's
        paginated listing, `STORE_BATCH` at a time: a prefix of millions of keys is never held
        whole. A key's `/` are folders, as aws-cli's sync sees them. Two keys that come to one
        local path never share it: within a batch the one whose name needs no change keeps it,
        across batches the first (`seen` remembers the paths claimed, on disk)."""
        from .store_list import BadKey, list_prefix

        self.base = start if start.path.endswith("/") else start.with_path(start.path + "/")
        files: list[Upstream] = []
        listing = list_prefix(settings, self.base)
        while True:
            try:
                found = await anext(listing)
            except StopAsyncIteration:
                break
            except DownloadError as exc:  # the listing itself failed: what came is kept
                self.complete = False
                self._fail(exc)
                break
            if len(files) >= STORE_BATCH:
                yield await self._claimed(files, seen)
                files = []
            if isinstance(found, BadKey):
                self.complete = False  # keys were skipped: nothing is deleted
                self._fail(
                    UnsafePathError(
                        f"the key {found.key!r} has no safe local path (an empty, '.' or '..'"
                        " component, or a control character): not mirrored, and the keys"
                        " listed in its page before it may be missing too (the store's client"
                        " cannot read the page): the mirror is incomplete",
                        url=redact(f"{start.scheme}://{start.raw_host}/{found.key}"),
                    )
                )
                continue
            rest, size, modified, etag = found
            parts = tuple(rest.split("/"))
            if any(not plain_name(part) for part in parts):
                url = str(self.base) + quote(rest, safe="/")
                self._fail(
                    UnsafePathError(
                        f"the key {rest!r} has no safe local path (an empty, '.', '..' or"
                        " control-character component): not mirrored",
                        url=redact(url),
                    )
                )
                continue
            here = tuple(safe_filename(part) for part in parts)
            if self.max_depth is not None and len(parts) - 1 > self.max_depth:
                continue
            if any(self.pruned(here[:n]) for n in range(1, len(here))) or not self.wanted(here):
                continue
            file_url = self.base.with_path(self.base.path + rest)
            files.append(Upstream(Request(file_url), here, Listed(size, modified, etag)))
        if files:
            yield await self._claimed(files, seen)

    async def _claimed(self, files: list[Upstream], seen: Seen) -> list[Upstream]:
        """The files of a batch whose local paths no other URL claimed before."""
        files = self._one_url_per_file(files)
        owners = await seen.claim((file.rel, str(file.request.url)) for file in files)
        kept = []
        for file, owner in zip(files, owners, strict=True):
            if owner is None:
                kept.append(file)
                continue
            url = str(file.request.url)
            self._fail(
                UnsafePathError(
                    f"{url} would be saved as {file.rel}, which {owner} is saved as: not mirrored",
                    url=url,
                    path=self._dest / file.rel,
                )
            )
        return kept

    def _one_url_per_file(self, files: list[Upstream]) -> list[Upstream]:
        """Two remote names that come to one local one (`.notes.txt` and `notes.txt`: a name
        loses its leading dots) never share it: the one whose name needs no change keeps it,
        else the first listed; each other one fails, saying so."""
        by_rel: dict[str, list[Upstream]] = {}
        for file in files:
            by_rel.setdefault(file.rel, []).append(file)
        kept = []
        for rel, claimants in by_rel.items():
            urls = list(dict.fromkeys(file.request.url for file in claimants))
            if len(urls) == 1:
                kept.append(claimants[0])
                continue
            exact = [file for file in claimants if _remote_name(file) == file.parts[-1]]
            winner = (exact or claimants)[0]
            kept.append(winner)
            for file in claimants:
                if file.request.url != winner.request.url:
                    url = str(file.request.url)
                    self._fail(
                        UnsafePathError(
                            f"{url} would be saved as {rel}, which {winner.request.url} is"
                            " saved as: not mirrored",
                            url=url,
                            path=self._dest / rel,
                        )
                    )
        return kept

    def _read_page(
        self,
        outcome: Outcome,
        depth: int,
        files: list[Upstream],
        seen: set[str],
        visited: set[URL],
        next_level: list[URL],
    ) -> None:
        assert outcome.request is not None
        sink = outcome.request.sink
        assert isinstance(sink, PageSink)
        page = URL(outcome.final_url or outcome.url)
        listing = None
        if outcome.error is None:
            base = self.base or directory_url(page)
            listing = parse_listing(sink.getvalue(), page, base)
        elif not isinstance(outcome.error, NotAListing | SizeLimitError):
            # (A page larger than any listing is none: the start URL is then a file.)
            self.complete = False
            self._fail(outcome.error)
            return
        if listing is None:
            self._no_listing(outcome, depth, files)
            return
        if self.base is None:
            # A start URL without its slash is usually redirected to it; the page's own URL,
            # once there, is the base.
            self.base = directory_url(page)
        for url, parts in listing.files:
            # A file linked from two pages once; two URLs of one name go on to
            # `_one_url_per_file`, which keeps one and says so of the other.
            key = f"{'/'.join(parts)}\0{url}"
            if key not in seen and self.wanted(parts):
                seen.add(key)
                files.append(Upstream(Request(url), parts))
        if self.max_depth is not None and depth >= self.max_depth:
            return
        for url, parts in listing.directories:
            if url not in visited and not self.pruned(parts):
                visited.add(url)
                next_level.append(url)

    def _no_listing(self, outcome: Outcome, depth: int, files: list[Upstream]) -> None:
        """A page that is no listing. The start URL naming a file (no trailing slash) is
        mirrored as that one file, as wget -m saves it; anything else is a clear failure,
        after at most the bytes that showed it (the listing is then incomplete)."""
        assert outcome.request is not None
        start = outcome.request.parsed_url
        if depth == 0 and not start.raw_path.endswith("/"):
            name = _files.name_from_url(start)
            self.base = start  # the scope of --delete: this one file
            if self.wanted((name,)):
                files.append(Upstream(Request(start), (name,)))
            return
        self.complete = False
        self._fail(
            InvalidRequestError(
                f"{outcome.url} is no directory listing (an HTML index, or nginx's JSON or"
                " XML one): nothing to mirror there",
                url=outcome.url,
            )
        )

    async def read_list(
        self, source: Iterable[str | URL | Request] | AsyncIterable[str | URL | Request]
    ) -> list[Upstream]:
        files: list[Upstream] = []
        seen: set[str] = set()
        async for item in each(source):
            try:
                request = item if isinstance(item, Request) else Request(item)
                parts = _list_parts(request)
            except DownloadError as exc:
                self.complete = False
                self._fail(exc)
                continue
            rel = "/".join(parts)
            if rel in seen:
                self._fail(
                    UnsafePathError(
                        f"{request.url} goes to {rel}, where an earlier URL of the list goes",
                        url=str(request.url),
                        path=self._dest / rel,
                    )
                )
                continue
            seen.add(rel)
            if self.wanted(parts):
                files.append(Upstream(request, parts))
        return files

    def wanted(self, parts: tuple[str, ...]) -> bool:
        if self.include and not any(_match(p, parts) for p in self.include):
            return False
        return not any(_match(p, parts) for p in self.exclude)

    def pruned(self, parts: tuple[str, ...]) -> bool:
        return any(_match(p.rstrip("/"), parts) for p in self.exclude)
