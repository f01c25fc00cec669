"""`Registry`: data files by name, each with its URL and checksum, fetched through the cache.

A registry file has one file a line: its name, its URL and its checksum (`sha256:<hex>`, or
a bare hex SHA-256, as pooch's registries have it), separated by white space; blank lines
and lines starting with `#` are skipped.

```
# name          url                                         checksum
iris.csv        https://example.org/data/iris.csv           sha256:4a7d...
```

pooch's registry files (`name checksum`, a line each, the URL the `base_url` joined with the
name; a third field is a URL of its own) are read with `base_url=`, as `pooch.create(base_url=
..., registry=...)` reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .._model.errors import InvalidRequestError
from .._model.request import parse_url
from .._model.verify import parse_checksum
from . import sync

if TYPE_CHECKING:
    from .._cache.store import Cache

__all__ = ["Registry", "RegistryEntry"]


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One file of a registry: its `name`, `url` and `checksum` (`algorithm:hex`, or None)."""

    name: str
    url: str
    checksum: str | None = None


class Registry(Mapping[str, RegistryEntry]):
    """Data files by name. `Registry.from_file(path)` reads a registry file; `fetch(name)`
    returns the path of a verified local copy; `Downloader.fetch_many(registry)` fetches them
    all at once."""

    def __init__(self, entries: Mapping[str, RegistryEntry] | list[RegistryEntry]) -> None:
        items = entries.values() if isinstance(entries, Mapping) else entries
        self._entries: dict[str, RegistryEntry] = {}
        for entry in items:
            if entry.name in self._entries:
                raise InvalidRequestError(f"the registry names {entry.name!r} twice")
            parse_url(entry.url)
            if entry.checksum is not None:
                parse_checksum(entry.checksum, url=entry.url)
            self._entries[entry.name] = entry

    @classmethod
    def parse(
        cls, text: str, *, source: str = "the registry", base_url: str | None = None
    ) -> Registry:
        """The registry in `text`: `NAME URL [CHECKSUM]` lines, or with `base_url`, pooch's
        `NAME CHECKSUM [URL]` lines, whose URL is otherwise `base_url` + `NAME`."""
        base = None if base_url is None else base_url.rstrip("/") + "/"
        if base is not None:
            parse_url(base)
        expected = "NAME URL [CHECKSUM]" if base is None else "NAME CHECKSUM [URL]"
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) not in (2, 3):
                raise InvalidRequestError(
                    f"{source}, line {number}: expected '{expected}', not {line.strip()!r}"
                )
            if base is None:
                name, url, *rest = fields
                checksum = rest[0] if rest else None
            else:
                name, checksum, *own = fields
                url = own[0] if own else base + quote(name)
            if checksum is not None and ":" not in checksum and "=" not in checksum:
                checksum = f"sha256:{checksum}"  # pooch's bare hex
            try:
                entries.append(RegistryEntry(name, url, checksum))
                cls([entries[-1]])
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"{source}, line {number}: {exc}") from None
        return cls(entries)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, base_url: str | None = None) -> Registry:
        """The registry file at `path` (see `parse`; with `base_url`, pooch's form)."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.parse(text, source=os.fspath(path), base_url=base_url)

    def __getitem__(self, name: str) -> RegistryEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{name!r} is not in the registry") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[RegistryEntry]:
        return list(self._entries.values())

    def fetch(self, name: str, *, cache: Cache | str | os.PathLike[str] | None = None) -> Path:
        """The path of a verified local copy of the file `name` (blocking, as
        `adownload.fetch`)."""
        entry = self[name]
        return sync.fetch(entry.url, checksum=entry.checksum, cache=cache)

    def __repr__(self) -> str:
        return f"Registry({len(self)} files)"
