"""Paths: safe names from untrusted sources, `.part` files, and the atomic commit.

Everything here that takes a name from a URL or a server treats it as hostile: the result is a
single path component, inside the destination directory, with no way back out of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import unicodedata
from pathlib import Path

from yarl import URL

PART_SUFFIX = ".part"

#: The name used when nothing safe is left of a name.
FALLBACK_NAME = "download"
#: The name of a URL that ends with a slash, as wget names it.
INDEX_NAME = "index.html"

# Most file systems cap a name at 255 bytes; keep room for the ".part" suffix.
_MAX_NAME_BYTES = 255 - len(PART_SUFFIX)
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
)
# Names Windows reserves in any directory, with or without an extension.
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def safe_filename(name: str, *, fallback: str = FALLBACK_NAME) -> str:
    """Reduce an untrusted `name` to one harmless path component.

    Keeps the last component after both `/` and `\\` separators, drops drive letters, control
    characters (NUL included), leading dots and spaces (no `..`, no hidden files), and trailing
    dots and spaces (which Windows strips), truncates it to fit a file system's name limit, and
    returns `fallback` when nothing is left.

    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> safe_filename("C:\\\\Windows\\\\evil.dll")
    'evil.dll'
    >>> safe_filename("..")
    'download'
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _DRIVE.sub("", name)
    name = _UNSAFE_CHARS.sub("", name)
    name = name.strip(" .").lstrip(".")
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    name = _truncate(name)
    return name or fallback


def _truncate(name: str) -> str:
    if len(name.encode("utf-8", "surrogatepass")) <= _MAX_NAME_BYTES:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    else:
        suffix = "." + suffix
    budget = _MAX_NAME_BYTES - len(suffix.encode("utf-8", "surrogatepass"))
    stem_bytes = stem.encode("utf-8", "surrogatepass")[:budget]
    return stem_bytes.decode("utf-8", "ignore").rstrip(" .") + suffix


def name_from_url(url: URL) -> str:
    """The file name a URL stands for: its last path segment, percent-decoded, made safe."""
    path = url.path
    if not path or path.endswith("/"):
        return INDEX_NAME
    # url.name is percent-decoded, so "a%2F..%2Fb" arrives here as "a/../b" and is cut to "b".
    return safe_filename(url.name)


def join_safely(directory: Path, name: str) -> Path:
    """`directory / name`, after checking that a sanitized `name` cannot leave `directory`."""
    target = directory / name
    if target.parent != directory or name in {"", ".", ".."}:
        raise ValueError(f"unsafe file name {name!r}")
    return target


def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def lexists(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def free_name(target: Path) -> Path:
    """The first of `name (1).ext`, `name (2).ext`, ... that does not exist yet."""
    suffixes = "".join(target.suffixes[-2:]) if target.name.endswith(".tar.gz") else target.suffix
    stem = target.name[: len(target.name) - len(suffixes)] if suffixes else target.name
    n = 1
    while True:
        candidate = target.with_name(f"{stem} ({n}){suffixes}")
        if not lexists(candidate):
            return candidate
        n += 1


def commit(part: Path, target: Path, *, overwrite: bool) -> None:
    """Move a complete `.part` file to its final name.

    With `overwrite`, an existing file at `target` is replaced atomically (`os.replace`). Without,
    the move fails with FileExistsError if `target` exists, even if it appeared a moment ago:
    a hard link is made first (which never replaces) and the `.part` name removed after.
    """
    if overwrite:
        os.replace(part, target)
        return
    try:
        os.link(part, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        # No hard links here (FAT, some network file systems): check, then rename. A file that
        # appears between the two calls is replaced; there is no atomic no-replace rename in the
        # standard library.
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.replace(part, target)
        return
    os.unlink(part)


def remove_quietly(path: Path) -> None:
    """Remove `path` if it exists; cleanup must not hide the error that caused it."""
    with contextlib.suppress(OSError):
        os.unlink(path)
