"""Deleting what is gone upstream (`mirror(delete=True)`): only files this mirror made (its state
says so), only within the run's scope, and the directories those deletions leave empty."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .._disk.files import is_regular_file
from .._model.errors import DownloadError, UnsafePathError
from .plan import storage_error, target_path
from .report import MirrorChange

if TYPE_CHECKING:
    from .seen import Seen
    from .state import MirrorState, Record

__all__ = ["Deleter", "remove_empty_directories"]


class Deleter:
    """Deletes the mirror's files whose rows the listing did not see, telling each change."""

    def __init__(
        self,
        dest: Path,
        state: MirrorState,
        *,
        dry_run: bool,
        in_scope: Callable[[Record], bool],
        tell: Callable[[MirrorChange], None],
        fail: Callable[..., None],
    ) -> None:
        self._dest = dest
        self._state = state
        self._dry_run = dry_run
        self._in_scope = in_scope
        self._tell = tell
        self._fail = fail
        self._emptied: set[Path] = set()

    async def all_but(self, upstream: set[str]) -> None:
        """Delete every recorded file whose path is not in `upstream`."""
        for record in await self._state.records():
            if record.path not in upstream:
                await self._one(record)
        await self._tidy()

    async def unseen(self, seen: Seen) -> None:
        """The same for a streamed listing: the rows a page at a time, checked against the
        paths the listing claimed (`seen`)."""
        async for page in self._state.pages():
            present = await seen.which(record.path for record in page)
            for record in page:
                if record.path not in present:
                    await self._one(record)
        await self._tidy()

    async def _one(self, record: Record) -> None:
        """Delete the file of `record` (gone upstream) if this mirror made it, and its row."""
        if not self._in_scope(record):
            return
        try:
            target = target_path(self._dest, tuple(record.path.split("/")), record.url)
        except UnsafePathError:
            return  # never ours to touch
        ours = record.owned and await asyncio.to_thread(is_regular_file, target)
        if self._dry_run:
            if ours:
                self._tell(MirrorChange("deleted", target, record.url, dry_run=True))
            return
        if ours:
            try:
                await asyncio.to_thread(os.unlink, target)
            except FileNotFoundError:
                ours = False
            except OSError as exc:
                error: DownloadError = storage_error(exc, target, record.url)
                self._fail(error, path=target)
                return
        await self._state.forget(record.path)
        if ours:
            self._tell(MirrorChange("deleted", target, record.url))
            self._emptied.add(target.parent)

    async def _tidy(self) -> None:
        await asyncio.to_thread(remove_empty_directories, self._emptied, self._dest)


def remove_empty_directories(directories: set[Path], dest: Path) -> None:
    """Remove each of `directories` that a deletion left empty, and each parent it leaves
    empty in turn, up to `dest` (kept). `rmdir` removes only an empty directory, so nothing a
    user put there is lost; a link is never followed (`rmdir` of a link fails)."""
    top = os.path.abspath(dest)
    for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
        current = os.path.abspath(directory)
        while current != top and current.startswith(top + os.sep):
            try:
                os.rmdir(current)
            except OSError:
                break  # not empty (or not ours to remove): neither are its parents
            current = os.path.dirname(current)
