"""`mirror`: keep a directory tree in step with a directory index or a list of URLs.

A run lists what is upstream (walking autoindex pages below the start URL, or reading the list),
then asks for each file with the validators remembered from the last run (`If-None-Match`,
`If-Modified-Since`): an unchanged file costs one 304 and no body. Files go through the
`Downloader` like any other download (`.part`, verified, committed atomically), each to the
path of its URL below the base, made safe one component at a time. What the mirror fetched is
recorded in `_mirror.state` right after each commit; `delete` removes only such files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from pathlib import Path
from typing import Protocol, TypeAlias

from yarl import URL

from .._client.downloader import Downloader, settings_of
from .._disk.sinks import MemorySink
from .._model.config import Existing
from .._model.errors import (
    DownloadError,
    HTTPStatusError,
    SizeLimitError,
    StorageError,
    UnsafePathError,
)
from .._model.request import Outcome, Request, parse_url
from .._model.stores import STORE_SCHEMES
from .._model.util import redact
from .deleting import Deleter
from .listing import Lister, Upstream
from .plan import Pending, listed_current, plan
from .report import ChangeKind, MirrorChange, MirrorReport
from .seen import Seen
from .state import MirrorState, Record

__all__ = ["ChangeKind", "MirrorChange", "MirrorReport", "MirrorSource", "mirror"]

log = logging.getLogger("adownload")

#: What `mirror` takes as its source: the URL of a directory index, or URLs (or `Request`s
#: with a relative `path` under the destination) in any iterable.
MirrorSource: TypeAlias = (
    "str | URL | Iterable[str | URL | Request] | AsyncIterable[str | URL | Request]"
)


async def mirror(
    source: MirrorSource,
    dest: str | os.PathLike[str],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    delete: bool = False,
    dry_run: bool = False,
    max_depth: int | None = 10,
    downloader: Downloader | None = None,
    on_change: Callable[[MirrorChange], None] | None = None,
    runner: Runner | None = None,
) -> MirrorReport:
    """Bring the directory `dest` up to date with `source`; return what changed.

    - `source`: the URL of a directory index (nginx, Apache or `python -m http.server`
      autoindex pages), walked recursively below that URL only; or an iterable (sync or async)
      of URLs. A listed URL goes to its path below the host (`https://h/a/b.zip` to
      `dest/a/b.zip`), or to the relative `path` of a `Request`.
    - `include`, `exclude`: glob patterns (`fnmatch`, case-sensitive). A pattern with a `/`
      matches the path below the base (`3.13/*.zip`), one without matches the name. With
      `include`, only matching files are mirrored; `exclude` drops files, and directories of
      the index whose name or path matches are not walked.
    - `delete`: remove local files that are no longer upstream, but only files this mirror
      created (as its state store records), and only after a complete listing.
    - `dry_run`: change nothing, create nothing (not even `dest`): report what would happen.
      Files on disk are still asked about, conditionally and without taking their body.
    - `max_depth`: levels of subdirectories walked below the start page (0: its files only;
      None: no limit, which a server with looping links can make endless).
    - `downloader`: an open `Downloader` whose session, limits, timeouts and retries to use
      (its `dest` and `existing` do not apply); by default one with the default settings.
    - `on_change`: called with each `MirrorChange` as it happens (a 304 is "unchanged").
    - `runner`: what fetches the files instead of the downloader, such as an
      `adownload.distributed.DaskRunner` (anything with the `as_completed` of a `Downloader`);
      the listing and the state stay here.

    State lives in `dest/.adownload-mirror.sqlite`. Killing a run at any moment and starting it
    again finishes the job without fetching completed files again. Raises `InvalidRequestError`
    for a malformed source URL; per-file and per-page failures are in the report instead.

    ```pycon
    >>> report = await adownload.mirror("https://www.python.org/ftp/python/doc/", "docs",
    ...                                 include=["*.zip"], max_depth=1)
    ```
    """
    for name, patterns in (("include", include), ("exclude", exclude)):
        if isinstance(patterns, str):
            raise TypeError(f"{name} takes a list of glob patterns, not one string: [{patterns!r}]")
    if max_depth is not None and (
        isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0
    ):
        raise ValueError(f"max_depth must be 0 or more, or None, not {max_depth!r}")
    run = _Mirror(
        Path(dest),
        include=tuple(include),
        exclude=tuple(exclude),
        delete=delete,
        dry_run=dry_run,
        max_depth=max_depth,
        on_change=on_change,
        runner=runner,
    )
    if downloader is not None:
        return await run.run(source, downloader)
    async with Downloader() as dl:
        return await run.run(source, dl)


class Runner(Protocol):
    """What fetches a mirror's files: a `Downloader`, or a `DaskRunner`."""

    def as_completed(self, items: Iterable[Request]) -> AsyncGenerator[Outcome, None]: ...


class _Mirror:
    def __init__(
        self,
        dest: Path,
        *,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        delete: bool,
        dry_run: bool,
        max_depth: int | None,
        on_change: Callable[[MirrorChange], None] | None,
        runner: Runner | None = None,
    ) -> None:
        self.dest = dest
        self.runner = runner
        self.include = include
        self.exclude = exclude
        self.delete = delete
        self.dry_run = dry_run
        self.max_depth = max_depth
        self.on_change = on_change
        self.report = MirrorReport(dry_run=dry_run)
        self.lister = Lister(
            include=include, exclude=exclude, max_depth=max_depth, dest=dest, fail=self._fail
        )

    def _tell(self, change: MirrorChange) -> None:
        self.report.add(change)
        if self.on_change is not None:
            self.on_change(change)

    def _fail(self, error: DownloadError, *, path: Path | None = None) -> None:
        self._tell(
            MirrorChange("failed", path, error.url, error=error, dry_run=self.dry_run),
        )

    async def run(self, source: MirrorSource, dl: Downloader) -> MirrorReport:
        index = source if isinstance(source, str | URL) else None
        start = parse_url(index) if index is not None else None
        if not self.dry_run:
            try:
                self.dest.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create {self.dest}: {exc.strerror or exc}",
                    url=None if start is None else str(start),
                    path=self.dest,
                    errno=exc.errno,
                ) from exc
        lister = self.lister
        if start is not None and start.scheme in STORE_SCHEMES:
            await self._run_store(start, dl)
            return self.report
        if start is not None and start.scheme == "ftp":
            files = await lister.walk_ftp(start, settings_of(dl))
        elif start is not None:
            files = await lister.walk(start, dl)
        else:
            assert not isinstance(source, str | URL)
            files = await lister.read_list(source)
        if not lister.complete:
            self.report.complete = False
        state = await MirrorState.open(self.dest, read_only=self.dry_run)
        try:
            await self._fetch(files, state, dl)
            if self._may_delete():
                await self._deleter(state).all_but({f.rel for f in files})
        finally:
            await state.close()
        return self.report

    async def _run_store(self, start: URL, dl: Downloader) -> None:
        """An object store's prefix, fetched a batch of the listing at a time: what must
        outlive a batch (the paths claimed, for collisions and `--delete`) is on disk, so the
        memory is flat whatever the number of keys."""
        seen = Seen()
        state = await MirrorState.open(self.dest, read_only=self.dry_run)
        try:
            async for files in self.lister.walk_store(start, settings_of(dl), seen):
                records = await state.records_for(file.rel for file in files)
                await self._fetch(files, state, dl, {record.path: record for record in records})
            if not self.lister.complete:
                self.report.complete = False
            if self._may_delete():
                await self._deleter(state).unseen(seen)
        finally:
            await state.close()
            await seen.close()

    def _may_delete(self) -> bool:
        """Whether to delete what is gone upstream: asked, and only after a complete listing."""
        if self.delete and not self.report.complete:
            log.warning("not deleting anything: the listing of the source is incomplete")
        return self.delete and self.report.complete

    def _deleter(self, state: MirrorState) -> Deleter:
        return Deleter(
            self.dest,
            state,
            dry_run=self.dry_run,
            in_scope=self._in_scope,
            tell=self._tell,
            fail=self._fail,
        )

    def _in_scope(self, record: Record) -> bool:
        """Whether this run would have seen `record`'s file if it were still upstream."""
        parts = tuple(record.path.split("/"))
        if not self.lister.wanted(parts):
            return False
        if self.lister.base is None:
            return True
        if self.max_depth is not None and len(parts) - 1 > self.max_depth:
            return False
        return record.url.startswith(redact(self.lister.base))

    # --- fetching ---------------------------------------------------------------------------

    async def _fetch(
        self,
        files: list[Upstream],
        state: MirrorState,
        dl: Downloader,
        records: dict[str, Record] | None = None,
    ) -> None:
        if records is None:
            records = {record.path: record for record in await state.records()}
        # One pass over the disk in a thread: a stat per file, thousands of them.
        jobs = await asyncio.to_thread(plan, self.dest, files, records)
        for job in jobs:
            if isinstance(job, UnsafePathError | StorageError):
                self._fail(job, path=job.path)
        if not self.dry_run:
            # Before the downloads: from here on a file at a new path is the mirror's own,
            # unless something was there already.
            await state.put_many(
                Record(job.file.rel, job.url, owned=not job.existed)
                for job in jobs
                if isinstance(job, Pending) and job.record is None
            )
        pending: dict[int, Pending] = {}

        def requests() -> Iterator[Request]:
            for job in jobs:
                if not isinstance(job, Pending):
                    continue
                if job.file.listed is not None and listed_current(job):
                    # The listing says it did not change: nothing to ask.
                    row = self._unchanged(job)
                    if row is not None:
                        done.put_nowait(row)
                elif (request := self._request(job)) is not None:
                    pending[id(request)] = job
                    yield request

        # Rows are written by one task, as many at once as have piled up (a group commit), so
        # a file's row follows its commit as soon as the store's thread is free.
        done: asyncio.Queue[Record | None] = asyncio.Queue()

        async def write() -> None:
            while True:
                batch = [await done.get()]
                while not done.empty():
                    batch.append(done.get_nowait())
                rows = [row for row in batch if row is not None]
                if rows:
                    await state.put_many(rows)
                if len(rows) < len(batch):
                    return

        async with asyncio.TaskGroup() as group:
            group.create_task(write())
            try:
                fetcher = dl if self.runner is None else self.runner
                async with contextlib.aclosing(fetcher.as_completed(requests())) as outcomes:
                    async for outcome in outcomes:
                        assert outcome.request is not None
                        row = self._settle(pending.pop(id(outcome.request)), outcome)
                        if row is not None:
                            done.put_nowait(row)
            finally:
                done.put_nowait(None)

    def _request(self, job: Pending) -> Request | None:
        """The request for a file, conditional when there is a file to keep; None when there
        is nothing to ask (a dry run's new file)."""
        headers = {**(job.file.request.headers or {}), **job.conditions}
        if not self.dry_run:
            return dataclasses.replace(
                job.file.request,
                path=job.target,
                dest=None,
                headers=headers,
                existing=Existing.OVERWRITE,
            )
        if not job.existed:
            self._tell(MirrorChange("new", job.target, job.url, dry_run=True))
            return None
        if job.file.listed is not None:
            self._tell(MirrorChange("updated", job.target, job.url, dry_run=True))
            return None
        # Only the answer's status matters: a limit of 0 bytes stops before any body byte.
        return dataclasses.replace(
            job.file.request, path=None, sink=MemorySink(), headers=headers, max_size=0
        )

    def _settle(self, job: Pending, outcome: Outcome) -> Record | None:
        """Tell what happened to a file; the row to record for it, if any."""
        url = job.url
        error = outcome.error
        dry = self.dry_run
        row = None
        if error is None or (dry and isinstance(error, SizeLimitError)):
            kind: ChangeKind = "updated" if job.existed else "new"
            size = 0 if dry else outcome.size - outcome.resumed_from
            if not dry:
                listed = job.file.listed
                row = Record(
                    job.file.rel,
                    url,
                    # For a listed object, the listing's ETag, which the next listing is
                    # compared with (Azure's listing and GET spell it differently).
                    listed.etag if listed is not None and listed.etag else outcome.etag,
                    # For a listed file, the listing's own time: the next listing is compared
                    # with it (LIST gives minutes where MDTM gives seconds).
                    outcome.last_modified if listed is None else listed.modified,
                    outcome.size,
                    owned=True,
                    done=True,
                )
            self._tell(MirrorChange(kind, job.target, url, size, dry_run=dry))
        elif isinstance(error, HTTPStatusError) and error.status == 304:
            row = self._unchanged(job)
        else:
            self._tell(MirrorChange("failed", job.target, url, error=error, dry_run=dry))
        return row

    def _unchanged(self, job: Pending) -> Record | None:
        """Tell that a file is current; the row to record for it, if it had no finished one."""
        record, url, dry = job.record, job.url, self.dry_run
        row = None
        if not dry and (record is None or not record.done or record.url != redact(url)):
            # A file that was there without a finished row: revalidated, so now it is known.
            listed = job.file.listed
            row = Record(
                job.file.rel,
                url,
                etag=None if listed is None else listed.etag,
                last_modified=None if listed is None else listed.modified,
                length=job.size,
                owned=record is not None and record.owned,
                done=True,
            )
        self._tell(MirrorChange("unchanged", job.target, url, dry_run=dry))
        return row
