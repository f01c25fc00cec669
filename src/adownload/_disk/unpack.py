"""`unpack`: a fetched `.zip` or `.tar.*` archive unpacked beside it, as pooch's `Unzip` and
`Untar` processors do for its users, but with a stranger's archive in mind.

- Only regular files and directories come out. A member whose name is absolute, has a drive,
  climbs with `..` or holds a control character is refused, and so is a link of any kind or
  a device: nothing is written outside the folder, nothing through a link ("zip slip").
- The bytes written are counted as they are written, against `max_size` (a zip or tar bomb
  declares small sizes and inflates): past it, nothing of the archive stays.
- It unpacks into a temporary folder and renames it into place once every member is out, so
  the folder is whole or absent; a second call finds it and unpacks nothing.

Checking the archive is the fetch's work: `unpack(fetch(url, checksum=...))` unpacks only
bytes that were verified.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from .._model.errors import InvalidRequestError, SizeLimitError, StorageError, UnsafePathError
from .files import safe_filename

__all__ = ["MAX_UNPACKED", "unpack"]

#: The most bytes `unpack` writes by default (4 GiB): an archive that inflates past it is a bomb
#: unless the caller says otherwise.
MAX_UNPACKED = 4 << 30
#: The suffix of the folder an archive is unpacked into, beside it.
SUFFIX = ".unpacked"
_CHUNK = 1 << 20


def unpack(
    archive: str | os.PathLike[str],
    into: str | os.PathLike[str] | None = None,
    *,
    max_size: int = MAX_UNPACKED,
) -> list[Path]:
    """Unpack the `.zip`, `.tar`, `.tar.gz`, `.tgz`, `.tar.bz2` or `.tar.xz` file `archive`
    into the folder `into` (default: the archive's path with `.unpacked` added) and return the
    files it holds, sorted. A folder there already (a second call) is returned as it is.

    Raises `UnsafePathError` for a member that would leave the folder or is a link or device,
    `SizeLimitError` when the members inflate past `max_size` bytes, `InvalidRequestError`
    for a file that is no such archive, and `StorageError` when the disk refuses; in every
    case nothing of the archive stays.

    ```pycon
    >>> paths = adownload.unpack(adownload.fetch(url, checksum=sha256))
    ```
    """
    source = Path(archive)
    target = Path(into) if into is not None else source.with_name(source.name + SUFFIX)
    if target.is_dir() and not target.is_symlink():
        return _files_in(target)
    if os.path.lexists(target):
        raise UnsafePathError(f"{target} is there and is no folder of ours", path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A name of our own beside the target, made with the umask's mode (mkdtemp's is 0o700).
    work = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    os.mkdir(work)
    try:
        with _open(source) as members:
            written = 0
            for name, kind, data in members:
                path = _inside(work, name, source)
                if kind == "dir":
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                assert data is not None
                written = _copy(data, path, written, max_size, source)
        try:
            os.rename(work, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(work, ignore_errors=True)  # another process unpacked it meanwhile
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, InvalidRequestError):
            raise StorageError(
                f"cannot unpack {source}: {exc.strerror or exc}",
                url=None,
                path=target,
                errno=exc.errno,
            ) from exc
        raise
    return _files_in(target)


_Member = tuple[str, str, IO[bytes] | None]


@contextlib.contextmanager
def _open(source: Path) -> Iterator[Iterator[_Member]]:
    """The members of the archive `source`: (name, "file" or "dir", the bytes of a file)."""
    name = source.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(source) as archive:
                yield _zip_members(archive, source)
        elif name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
            with tarfile.open(source, "r:*") as archive:
                yield _tar_members(archive, source)
        else:
            raise InvalidRequestError(
                f"{source} is no .zip or .tar archive (by its name): nothing to unpack", url=None
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidRequestError(f"{source} is no readable archive: {exc}", url=None) from None


def _zip_members(archive: zipfile.ZipFile, source: Path) -> Iterator[_Member]:
    for info in archive.infolist():
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type said (a plain file)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafePathError(f"{source}: {info.filename!r} is a link or device", path=source)
        if info.is_dir():
            yield info.filename, "dir", None
        else:
            with archive.open(info) as data:
                yield info.filename, "file", data


def _tar_members(archive: tarfile.TarFile, source: Path) -> Iterator[_Member]:
    for member in archive:
        if member.isdir():
            yield member.name, "dir", None
        elif member.isfile():
            data = archive.extractfile(member)
            assert data is not None
            with data:
                yield member.name, "file", data
        else:
            raise UnsafePathError(f"{source}: {member.name!r} is a link or device", path=source)


def _inside(root: Path, name: str, source: Path) -> Path:
    """Where the member `name` goes below `root`: each part a plain, safe name."""
    text = name.replace("\\", "/")
    parts = [part for part in PurePosixPath(text).parts if part not in ("", ".")]
    bad = text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in parts
    if bad or not parts or any(safe_filename(part, fallback="") != part for part in parts):
        raise UnsafePathError(
            f"{source}: the member {name[:200]!r} would leave its folder or is no plain name",
            path=source,
        )
    return root.joinpath(*parts)


def _copy(data: IO[bytes], path: Path, written: int, max_size: int, source: Path) -> int:
    """Copy a member to `path` (created, never through a link), counting against the bound."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    with os.fdopen(fd, "wb") as out:
        while chunk := data.read(_CHUNK):
            written += len(chunk)
            if written > max_size:
                raise SizeLimitError(
                    f"{source} unpacks to more than {max_size} bytes: not unpacked",
                    url=None,
                    limit=max_size,
                )
            out.write(chunk)
    return written


def _files_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
