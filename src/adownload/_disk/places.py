"""Where a download's file goes, before any file is touched: what a target reads of its
downloader (`Place`), the directory of a destination (one `Path` per destination, made once per
downloader), and a name joined inside it."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .._model.errors import InvalidRequestError, UnsafePathError
from . import existing as _existing
from . import files as _files

if TYPE_CHECKING:
    from .._model.request import Request
    from .._model.sink import SinkOpener

__all__ = ["Locks", "Place", "directory", "ensure_directory", "join"]


class Place(Protocol):
    """What a target reads of its downloader: the fields it uses, not all of `Settings` (which
    has them; the disk does not import the engine)."""

    @property
    def dest(self) -> Path: ...
    @property
    def writer(self) -> SinkOpener: ...
    @property
    def saved(self) -> _files.Ledger: ...
    @property
    def directories(self) -> set[Path]: ...
    @property
    def dest_paths(self) -> dict[str | Path, Path]: ...
    @property
    def path_locks(self) -> Locks: ...


class Locks(Protocol):
    """One lock per key (`KeyedPrimitives` of the engine's limits)."""

    def hold(self, key: str) -> AbstractAsyncContextManager[None]: ...


# --- directories --------------------------------------------------------------------------


def directory(place: Place, request: Request, dest: Path | None, url: str) -> Path:
    """The directory for a file named after its URL: the request's, the call's (`dest`) or
    the downloader's; made if it is missing."""
    given = request.dest or dest or place.dest
    if isinstance(given, str | Path):
        known = place.dest_paths
        directory = known.get(given)
        if directory is None:
            directory = known[given] = Path(given)
    else:
        directory = Path(given)
    ensure_directory(place, directory, url)
    return directory


def ensure_directory(place: Place, directory: Path, url: str) -> None:
    """Make `directory` (once per downloader: it remembers the ones it made or found)."""
    known = place.directories
    if directory in known:
        return
    # mkdir is one quick syscall when the directory exists: cheaper inline than a thread hop.
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InvalidRequestError(
            f"the destination {directory} exists and is not a directory", url=url
        ) from None
    except OSError as exc:
        raise _existing.storage_error(exc, directory, url) from exc
    known.add(directory)


def join(directory: Path, name: str, url: str) -> Path:
    """`directory / name`, for a `name` that is one safe component (`UnsafePathError`)."""
    try:
        return _files.join_safely(directory, name)
    except ValueError as exc:
        raise UnsafePathError(str(exc), url=url, path=directory) from None
