"""What a mirror run finds for each upstream file before it asks for it: where the file goes
(below DEST, one checked component at a time), what is on disk there and in the state, and
the conditions that make an unchanged file cost one 304 (or, for a listed FTP file, nothing).

Pure decisions over paths, `os.lstat` results and state rows; `_mirror/run.py` does the asking.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .._disk.files import RefusedPath, descend
from .._model.errors import StorageError, UnsafePathError
from .._model.util import redact
from .listing import Upstream
from .state import STATE_NAME, Record

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class Pending:
    """A file about to be asked for, and what was on disk and in the state for it."""

    file: Upstream
    url: str
    target: Path
    existed: bool
    record: Record | None
    size: int | None  # of the file on disk
    conditions: dict[str, str]


def plan(
    dest: Path, files: list[Upstream], records: dict[str, Record]
) -> list[Pending | UnsafePathError | StorageError]:
    """Where each file goes and what is there now. Runs in a worker thread."""
    jobs: list[Pending | UnsafePathError | StorageError] = []
    for file in files:
        url = str(file.request.parsed_url)
        try:
            target = target_path(dest, file.parts, url)
            info: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            info = None
        except UnsafePathError as exc:
            jobs.append(exc)
            continue
        except OSError as exc:
            jobs.append(storage_error(exc, target, url))
            continue
        existed = info is not None and stat.S_ISREG(info.st_mode)
        record = records.get(file.rel)
        jobs.append(
            Pending(
                file,
                url,
                target,
                existed,
                record,
                info.st_size if info is not None and existed else None,
                conditions(record, info if existed else None, url),
            )
        )
    return jobs


def target_path(dest: Path, parts: tuple[str, ...], url: str | None) -> Path:
    """DEST joined with `parts`, one checked component at a time, through no link."""
    try:
        path = descend(dest, parts)
    except RefusedPath as exc:
        raise UnsafePathError(str(exc), url=url, path=exc.path) from None
    if path.name == STATE_NAME and path.parent == dest:
        raise UnsafePathError(f"{path} is the mirror's own state file", url=url, path=path)
    return path


def conditions(record: Record | None, info: os.stat_result | None, url: str) -> dict[str, str]:
    """The conditional headers for a file on hand (`info`), given what the state says of it."""
    if info is None:
        return {}
    if record is not None and record.done and record.url == redact(url):
        if record.length is not None and record.length != info.st_size:
            return {}  # not the file the mirror wrote: fetch it again
        headers = {}
        if record.etag:
            headers["If-None-Match"] = record.etag
        if record.last_modified:
            headers["If-Modified-Since"] = record.last_modified
        if headers:
            return headers
    # A file with no finished row (a run killed right after its commit, or a file put there by
    # hand): newer than the upstream copy means current, as wget's --timestamping has it.
    return {"If-Modified-Since": formatdate(info.st_mtime, usegmt=True)}


def listed_current(job: Pending) -> bool:
    """For a listed (FTP, object store) file on disk: whether the listing shows the version
    on disk. With a finished row: the same size and modification time (ETag, for a store) as
    recorded; without one (a file put
    there by hand, a run killed after the commit): the same size and not older upstream."""
    listed = job.file.listed
    assert listed is not None
    size, modified = listed.size, listed.modified
    record = job.record
    if not job.existed or size is None or job.size != size:
        return False
    if record is not None and record.done and record.url == redact(job.url):
        if listed.etag is not None:  # an object store's: the ETag says it all
            return record.length == size and record.etag == listed.etag
        return record.length == size and modified is not None and record.last_modified == modified
    if modified is None:
        return False
    try:
        upstream = parsedate_to_datetime(modified).timestamp()
        return os.lstat(job.target).st_mtime >= upstream
    except (OSError, ValueError, TypeError):
        return False


def storage_error(exc: OSError, path: Path, url: str | None) -> StorageError:
    return StorageError(
        f"cannot use {path}: {exc.strerror or exc}", url=url, path=path, errno=exc.errno
    )
