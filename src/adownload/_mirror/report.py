"""What a mirror run reports: one `MirrorChange` per file, and the `MirrorReport` tally."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from .._model.errors import DownloadError
from .._model.util import redact

if TYPE_CHECKING:
    pass

ChangeKind: TypeAlias = Literal["new", "updated", "unchanged", "deleted", "failed"]


@dataclass(frozen=True, slots=True)
class MirrorChange:
    """What happened to one file (or index page) of a mirror run.

    - `kind`: "new", "updated", "unchanged", "deleted" or "failed".
    - `path`: the local file (None for an index page or a URL that has no place under DEST).
    - `url`: the file's URL (None for a deletion found only in the state store's past).
    - `size`: body bytes transferred for it in this run (a resumed file counts the rest only).
    - `error`: why it failed, for "failed".
    - `dry_run`: True when nothing was done: this is what a real run would do.
    """

    kind: ChangeKind
    path: Path | None
    url: str | None
    size: int = 0
    error: DownloadError | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.url is not None:  # shown and printed: never with userinfo
            object.__setattr__(self, "url", redact(self.url))


@dataclass(slots=True)
class MirrorReport:
    """The counts of a mirror run, and its failures.

    `complete` is False when an index page could not be read: the listing is then partial, so
    nothing was deleted. `bytes` counts the files' body bytes transferred (index pages aside).
    """

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: int = 0
    bytes: int = 0
    complete: bool = True
    dry_run: bool = False
    failures: list[MirrorChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def add(self, change: MirrorChange) -> None:
        setattr(self, change.kind, getattr(self, change.kind) + 1)
        self.bytes += change.size
        if change.kind == "failed":
            self.failures.append(change)
