"""Paths: names joined safely, `.part` files, and the atomic commit (the names themselves are
made safe in `adownload._model.names`).

Everything here that takes a name from a URL or a server treats it as hostile: the result is a
single path component, inside the destination directory, with no way back out of it.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

from .._model.names import FALLBACK_NAME as FALLBACK_NAME
from .._model.names import INDEX_NAME as INDEX_NAME
from .._model.names import LONGEST_SUFFIX, truncate
from .._model.names import MAX_NAME_BYTES as MAX_NAME_BYTES
from .._model.names import NAME_LIMIT as NAME_LIMIT
from .._model.names import PART_SUFFIX as PART_SUFFIX
from .._model.names import name_from_url as name_from_url
from .._model.names import safe_filename as safe_filename

_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
)
_NO_NAMES = frozenset({"", ".", ".."})


def join_safely(directory: Path, name: str) -> Path:
    """`directory / name`, after checking that a sanitized `name` cannot leave `directory`."""
    # The checks on the string first: they cost less than comparing Paths, and suffice where
    # a separator is the only way out (a Windows drive or UNC name needs the comparison).
    if name in _NO_NAMES or os.sep in name or (os.altsep is not None and os.altsep in name):
        raise ValueError(f"unsafe file name {name!r}")
    target = directory / name
    if os.name == "nt" and target.parent != directory:
        raise ValueError(f"unsafe file name {name!r}")
    return target


def descend(directory: Path, parts: tuple[str, ...], *, to_file: bool = True) -> Path:
    """`directory` joined with `parts`, one checked component at a time, through no symbolic
    link: the directories on the way (every part, or all but the last with `to_file`) must
    not be links, which could lead out of `directory`. Raise ValueError saying which part is
    refused."""
    path = directory
    last = len(parts) - 1 if to_file else len(parts)
    for index, part in enumerate(parts):
        try:
            path = join_safely(path, part)
        except ValueError as exc:
            raise RefusedPath(str(exc), path) from None
        if index < last and os.path.islink(path):
            raise RefusedPath(f"refusing to write through the symbolic link at {path}", path)
    return path


class RefusedPath(ValueError):
    """A path `descend` will not take; `path` is as far as it got."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def part_path(target: Path) -> Path:
    """Where the bytes of `target` go until they are complete: `NAME.part`. A name too long
    to take `.part.state.tmp` (an exact path a caller gave) gets a shorter part name, made
    from the name itself so a later run finds it again: `NAME-CUT~HASH.part`."""
    name = target.name
    if name_fits(name):
        return target.with_name(name + PART_SUFFIX)
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    keep = truncate(name, NAME_LIMIT - len(LONGEST_SUFFIX) - len(digest) - 1)
    return target.with_name(f"{keep}~{digest}{PART_SUFFIX}")


def lexists(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def is_regular_file(path: Path) -> bool:
    """Whether `path` is a regular file itself (never what a link names)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_dir(path: Path) -> bool:
    """Whether `path` is a directory itself (never what a link names)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def name_fits(name: str) -> bool:
    """Whether `name` leaves room for `.part.state.tmp` within the file system's name limit."""
    return len(name.encode("utf-8", "surrogateescape")) + len(LONGEST_SUFFIX) <= NAME_LIMIT


def free_name(target: Path) -> Path:
    """The first of `name (1).ext`, `name (2).ext`, ... that does not exist yet, its stem cut
    where needed so that the name and its `.part.state.tmp` still fit the name limit."""
    suffixes = "".join(target.suffixes[-2:]) if target.name.endswith(".tar.gz") else target.suffix
    if len(suffixes) > 16:
        suffixes = ""
    stem = target.name[: len(target.name) - len(suffixes)] if suffixes else target.name
    n = 1
    while True:
        counter = f" ({n}){suffixes}"
        room = NAME_LIMIT - len(LONGEST_SUFFIX) - len(counter.encode("utf-8", "surrogateescape"))
        cut = stem.encode("utf-8", "surrogateescape")[: max(room, 1)]
        candidate = target.with_name(cut.decode("utf-8", "ignore") + counter)
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


def set_modified(path: Path, http_date: str) -> None:
    """Give `path` the modification time of an HTTP date; a date that does not parse, or a
    file system that refuses, changes nothing (the file is complete either way)."""
    try:
        when = email.utils.parsedate_to_datetime(http_date).timestamp()
        os.utime(path, (time.time(), when), follow_symlinks=False)
    except (TypeError, ValueError, OverflowError, OSError):
        pass


def copy_to_part(source: Path, part: Path) -> None:
    """Copy the regular file `source` to `part`, created exclusively (never through a link);
    blocking, for a worker thread. A failure leaves no `part` behind."""
    with os.fdopen(open_regular(source, os.O_RDONLY), "rb") as reader:
        fd = os.open(part, CREATE_FLAGS, 0o666)
        try:
            with os.fdopen(fd, "wb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
        except BaseException:
            remove_quietly(part)
            raise


# O_NOFOLLOW: a symbolic link planted at the .part path makes the open fail instead of writing
# into the link's target. O_EXCL on creation does the same for a link planted between our check
# and the open. O_CLOEXEC: child processes of the embedding application do not inherit the fd.
CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


# --- what adownload made ---------------------------------------------------------------------

#: The extended attribute that marks a `.part` file as adownload's, so that a later run (after a
#: kill, when no state file was written) may replace it, and a user's own `notes.part` is never
#: touched. Removed before the commit: finished files carry no trace of it.
PART_MARK = "user.adownload.part"
_NO_XATTR = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.ENOSYS})


def mark_part(fd_or_path: int | Path) -> bool:
    """Mark a `.part` file as ours; False where the file system keeps no user attributes (then
    a state file beside the part is the mark, see `Target.open_part`)."""
    if not hasattr(os, "setxattr"):
        return False
    try:
        if isinstance(fd_or_path, int):
            os.setxattr(fd_or_path, PART_MARK, b"1")
        else:
            os.setxattr(fd_or_path, PART_MARK, b"1", follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_XATTR:
            return False
        raise
    return True


def unmark_part(path: Path) -> None:
    """Take the mark off a finished part, just before it becomes the file."""
    if hasattr(os, "removexattr"):
        with contextlib.suppress(OSError):
            os.removexattr(path, PART_MARK, follow_symlinks=False)


def is_marked(path: Path) -> bool:
    """Whether `path` carries adownload's part mark (never following a link)."""
    if not hasattr(os, "getxattr"):
        return False
    try:
        os.getxattr(path, PART_MARK, follow_symlinks=False)
    except OSError:
        return False
    return True


class SpecialFileError(OSError):
    """A FIFO, socket or device stands where adownload expects a regular file; `kind` says
    which ("a FIFO", ...)."""

    def __init__(self, path: Path, mode: int) -> None:
        self.kind = kind_of(mode)
        super().__init__(errno.EINVAL, f"{path} is {self.kind}", str(path))


def kind_of(mode: int) -> str:
    """A file type in words, for messages: "a FIFO", "a socket", ..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def open_regular(path: Path, flags: int) -> int:
    """`os.open` that never blocks on a FIFO, never follows a link, and refuses anything but a
    regular file with `SpecialFileError` (a FIFO opened plainly blocks until a peer shows up)."""
    fd = os.open(
        path,
        flags | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
        0o666,
    )
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SpecialFileError(path, mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Ledger:
    """Which URL each file a downloader saved came from, so that a second URL that maps to the
    same name in one run is told so instead of being reported as "already there".

    Fingerprints (`hash()` of the absolute path and of the URL), about 130 bytes a file, so a
    manifest of millions stays small; the URL's text is kept for the most recent files only,
    to name it in the error.
    """

    __slots__ = ("_names", "_urls")

    RECENT = 4096

    def __init__(self) -> None:
        self._urls: dict[int, int] = {}
        self._names: dict[int, str] = {}  # insertion-ordered: the oldest goes first

    def record(self, path: str, url: str) -> None:
        key = hash(path)
        self._urls[key] = hash(url)
        names = self._names
        names.pop(key, None)
        names[key] = url
        if len(names) > self.RECENT:
            del names[next(iter(names))]

    def saved_from(self, path: str) -> int | None:
        """The fingerprint of the URL saved at `path` in this run, or None."""
        return self._urls.get(hash(path))

    def name(self, path: str) -> str | None:
        return self._names.get(hash(path))


def remove_quietly(path: Path) -> None:
    """Remove `path` if it exists; cleanup must not hide the error that caused it."""
    with contextlib.suppress(OSError):
        os.unlink(path)
