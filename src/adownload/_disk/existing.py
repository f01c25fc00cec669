"""The existing-file policy: what a download does about a file already at its target.

`resolve` reads the target once (`lstat`: a link, a directory or a special file there is
refused, never followed), then applies the policy (`Existing`) with the downloader's ledger of
the files it saved in this run, so that two URLs mapping to one name never pass one file off
as both. What is at a `.part` name (`part_size`, `make_room_for_part`) and the errors for a
path that cannot be used are decided here too, for `_disk/target.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from .._model.config import Existing
from .._model.errors import (
    DestinationExistsError,
    InvalidRequestError,
    StorageError,
    UnsafePathError,
)
from .._model.verify import Hashes
from . import files as _files

if TYPE_CHECKING:
    from .files import Ledger

log = logging.getLogger("adownload")


class Skipped(Exception):
    """Internal: the target exists and the policy says to leave it."""

    def __init__(self, path: Path) -> None:
        self.path = path


async def resolve(
    target: Path,
    existing: Existing,
    *,
    saved: Ledger,
    wanted: tuple[str, str] | None,
    url: str,
) -> tuple[Path, bool]:
    """Apply `existing` to `target`: the path to write, and whether the download replaces a
    file; raise `Skipped` when the policy leaves the file alone. `wanted` is the request's
    expected digest (algorithm, hex), which a skipped file must match; `url` is redacted."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target, False
    except OSError as exc:
        raise storage_error(exc, target, url) from exc
    if stat.S_ISLNK(mode):
        raise UnsafePathError(
            f"refusing to write through the symbolic link at {target}", url=url, path=target
        )
    if stat.S_ISDIR(mode):
        raise InvalidRequestError(f"the target {target} is a directory", url=url)
    if not stat.S_ISREG(mode):
        raise special(_files.kind_of(mode), target, url)
    key = os.path.abspath(target)  # noqa: ASYNC240  (no I/O for the absolute paths we build)
    # OVERWRITE replaces whatever is there, as asked (a long-lived downloader refreshing a
    # file); every other policy must not take a file this run saved for its own.
    saved_from = None if existing is Existing.OVERWRITE else saved.saved_from(key)
    if saved_from is not None:
        # This run saved the file: from this URL (one download is enough), or from another,
        # which must not be reported as this one's file.
        if saved_from == hash(url):
            raise Skipped(target)
        if existing is Existing.RENAME:
            return _files.free_name(target), False
        raise taken_error(target, saved.name(key), url)
    if existing is Existing.SKIP:
        if wanted is None or await _matches(target, wanted, url):
            log.debug("skipped %s: %s exists", url, target)
            raise Skipped(target)
        # A file whose checksum is known and wrong is no reason to skip: replace it,
        # atomically, with a verified download.
        log.info("%s does not match the checksum of %s; replacing it", target, url)
        return target, True
    if existing is Existing.ERROR:
        raise DestinationExistsError(f"{target} exists", url=url, path=target)
    if existing is Existing.RENAME:
        return _files.free_name(target), False
    return target, True


def special(kind: str, path: Path, url: str) -> UnsafePathError:
    """The error for a FIFO, socket or device (`kind`) where a regular file must be."""
    return UnsafePathError(
        f"refusing to use {path}: it is {kind}, not a regular file", url=url, path=path
    )


def storage_error(exc: OSError, path: Path, url: str) -> StorageError:
    return StorageError(
        f"cannot write {path}: {exc.strerror or exc}", url=url, path=path, errno=exc.errno
    )


def read_into(path: Path, hashes: Hashes, length: int | None) -> None:
    """Feed the first `length` bytes of the regular file `path` (all of it for None) to
    `hashes`; blocking, for a worker thread."""
    with os.fdopen(_files.open_regular(path, os.O_RDONLY), "rb") as file:
        remaining = length
        while remaining is None or remaining > 0:
            block = file.read(1 << 20 if remaining is None else min(remaining, 1 << 20))
            if not block:
                if remaining:
                    raise OSError(f"{path} is shorter than {length} bytes")
                return
            hashes.update(block)
            if remaining is not None:
                remaining -= len(block)


def taken_error(target: Path, other: str | None, url: str) -> DestinationExistsError:
    """The error of a download whose file another URL saved earlier in this run."""
    return DestinationExistsError(
        f"{target} was saved from {other or 'another URL'} earlier in this run; "
        f"{url} maps to the same name",
        url=url,
        path=target,
        taken_by=other,
    )


async def _matches(target: Path, wanted: tuple[str, str], url: str) -> bool:
    hashes = Hashes([wanted[0]])
    try:
        await asyncio.to_thread(read_into, target, hashes, None)
    except _files.SpecialFileError as exc:
        raise special(exc.kind, target, url) from None
    except OSError as exc:
        raise storage_error(exc, target, url) from exc
    return hashes.digest(wanted[0]).hex() == wanted[1]


def part_size(part: Path, url: str) -> int | None:
    """The size of the regular file at `part`; None when there is none (or a link, which is
    removed when the body starts). A FIFO, socket or device there is refused."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, part, url) from exc
    if stat.S_ISREG(info.st_mode):
        return info.st_size
    if stat.S_ISLNK(info.st_mode):
        return None
    raise special(_files.kind_of(info.st_mode), part, url)


def make_room_for_part(part: Path, final: Path, ours: bool, url: str) -> None:
    """A fresh body meets something at the `.part` name of `final`: remove it if it is ours
    (`ours`, or marked as ours: a leftover of a killed run) or a planted link; refuse anything
    else, which is not ours to delete."""
    try:
        info = os.lstat(part)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error(exc, part, url) from exc
    if stat.S_ISLNK(info.st_mode) or (
        stat.S_ISREG(info.st_mode) and (ours or _files.is_marked(part))
    ):
        # Removing a link removes the link, not its target.
        _files.remove_quietly(part)
        return
    if not stat.S_ISREG(info.st_mode):
        raise special(_files.kind_of(info.st_mode), part, url)
    raise DestinationExistsError(
        f"{part} is in the way: adownload did not make it and will not replace it "
        f"(move it away to download {final})",
        url=url,
        path=part,
    )
