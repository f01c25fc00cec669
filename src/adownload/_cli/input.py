"""Input files for `adownload -i`: read as a stream, parsed into entries, made into Requests.

The format is aria2c's: one URL per line; blank lines and `#` comments are ignored; indented
`key=value` lines under a URL set options for that URL (`out=`, `dir=`, `checksum=`, `header=`,
`split=`); several URLs on one line, separated by tabs or spaces, are mirrors of one file.

```
https://www.python.org/ftp/python/doc/3.13.2/python-3.13.2-docs-html.zip
  dir=docs
  out=python-3.13-docs.zip
  checksum=sha-256=0123...cdef
```

A file is never read whole: lines are parsed as they arrive, so a file of a million lines (or
a pipe that is still being written) starts downloading at once, in flat memory. An entry is
complete when the next URL line arrives, or when a pipe goes quiet for `IDLE` seconds (so
`producer | adownload -i -` starts each URL as it comes, not when the next one follows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import re
import stat
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .._disk.files import descend
from .._model.config import Segments
from .._model.errors import InvalidRequestError
from .._model.request import Request
from .._model.util import whole_number
from .._model.verify import parse_checksum
from .shared import scheme_hint

__all__ = ["KNOWN_KEYS", "Entry", "EntryParser", "InputReader", "RejectedEntry", "request_for"]

#: Bytes asked for per read, and reads that may wait for the parser: the read-ahead bound.
_CHUNK = 64 << 10
_READ_AHEAD = 4
#: Seconds of silence from a pipe after which the entry read last is started: its option lines
#: must come with it, and a producer that writes one URL a minute needs no next line first.
IDLE = 0.2
#: A longer line is not a URL; it is reported instead of being held in memory.
_MAX_LINE = 64 << 10

# RFC 9110 field names are tokens.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class RejectedEntry(Exception):
    """An entry of an input file that cannot be downloaded; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One file an input file asks for: its URLs (mirrors of one file) and per-file options.

    `line` is the URL line's number. `problem` says why the entry cannot be used (a bad option
    line, a line that is not UTF-8; `line` is then that line's number); the entry is reported
    as failed instead of being downloaded. `ignored` names the option keys aria2c knows and
    this command does not (`gid=`, `continue=`, ... in a saved aria2c session): the CLI warns
    about each once and downloads the file anyway.
    """

    line: int
    urls: tuple[str, ...]
    out: str | None = None
    dir: str | None = None
    checksum: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    split: int | None = None
    ignored: tuple[str, ...] = ()
    problem: str | None = None


#: The option keys an entry takes; `header` may be repeated.
KNOWN_KEYS = ("out", "dir", "checksum", "header", "split")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class EntryParser:
    """Turns numbered lines into entries. An entry is complete when the next URL line (or the
    end of the input, `finish()`) arrives, since option lines follow their URL."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: Entry | None = None

    def feed(self, number: int, raw: bytes) -> Entry | None:
        """Take line `number` (without its newline); return the entry it completes, if any."""
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            return self.reject(number, "the line is not UTF-8 text")
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        if line[0] in " \t":
            self._option(number, text)
            return None
        # Tabs (as aria2c writes them) or spaces: a URL holds neither, unescaped.
        return self._complete(Entry(number, tuple(text.split())))

    def reject(self, number: int, problem: str) -> Entry | None:
        """Record line `number` as an unusable entry; return the entry it completes, if any."""
        return self._complete(Entry(number, (), problem=problem))

    def finish(self) -> Entry | None:
        """The last entry, at the end of the input."""
        return self._complete(None)

    def _complete(self, entry: Entry | None) -> Entry | None:
        done = self._pending
        self._pending = entry
        return done

    def _option(self, number: int, text: str) -> None:
        entry = self._pending
        if entry is None or not entry.urls:
            if entry is None or entry.problem is None:
                self._pending = Entry(
                    number, (), problem="an option line with no URL line above it"
                )
            return
        if entry.problem is not None:
            return
        key, equals, value = text.partition("=")
        key = key.strip()
        value = value.strip()
        try:
            if not equals or not _KEY.fullmatch(key):
                raise ValueError(f"expected an option as 'key=value', not {text!r}")
            if key == "header":
                self._pending = dataclasses.replace(entry, headers=(*entry.headers, _header(value)))
                return
            if key not in KNOWN_KEYS:
                if key not in entry.ignored:
                    self._pending = dataclasses.replace(entry, ignored=(*entry.ignored, key))
                return
            if getattr(entry, key) is not None:
                raise ValueError(f"{key}= is given twice for one URL")
            if key == "out":
                _check_inside(key, value)  # here too, so that the line shown is this one
                self._pending = dataclasses.replace(entry, out=value)
            elif key == "dir":
                _check_inside(key, value)
                self._pending = dataclasses.replace(entry, dir=value)
            elif key == "split":
                self._pending = dataclasses.replace(entry, split=_split(value))
            else:
                algorithm, digest = parse_checksum(value)  # sha-256=HEX or sha256:HEX
                self._pending = dataclasses.replace(entry, checksum=f"{algorithm}:{digest}")
        except ValueError as exc:
            # The line of the problem is the one to show; the URL stays for the report.
            self._pending = dataclasses.replace(entry, line=number, problem=str(exc))


def _header(value: str) -> tuple[str, str]:
    name, colon, field_value = value.partition(":")
    name = name.strip()
    if not colon or not _TOKEN.fullmatch(name):
        raise ValueError(f"expected header=Name: value, not {value!r}")
    return name, field_value.strip()


def _split(value: str) -> int:
    number = whole_number(value)
    if number is None or number < 1:
        raise ValueError(f"split= takes a whole number of 1 or more, not {value!r}")
    return number


def parse_lines(lines: Iterable[bytes]) -> Iterator[Entry]:
    """The entries of an input already split into lines (for tests and small inputs)."""
    parser = EntryParser()
    for number, raw in enumerate(lines, 1):
        if (entry := parser.feed(number, raw)) is not None:
            yield entry
    if (entry := parser.finish()) is not None:
        yield entry


def request_for(
    entry: Entry,
    dest: Path,
    *,
    source: str,
    segments: Segments | None = None,
    check_only: bool = False,
) -> Request:
    """The `Request` an entry stands for, with `out=` and `dir=` inside `dest`; `segments` is
    the command line's, which `split=` changes for this file; `check_only` is `--spider`.

    Raise `RejectedEntry` saying `source:line: why` when the entry cannot be downloaded.
    """
    where = f"{source}:{entry.line}"
    if entry.problem is not None:
        raise RejectedEntry(f"{where}: {entry.problem}")
    url, *mirrors = entry.urls
    directory = dest
    try:
        if entry.dir is not None:
            # Through no link: a link under -d could lead dir= out of it (as the mirror refuses).
            directory = descend(dest, _inside("dir", entry.dir).parts, to_file=False)
        path = None if entry.out is None else directory / _inside("out", entry.out)
        split = None
        if entry.split is not None:
            split = dataclasses.replace(segments or Segments(), count=entry.split)
        return Request(
            url,
            path,
            dest=None if path is not None else directory,
            mirrors=mirrors,
            checksum=entry.checksum,
            headers=dict(entry.headers) or None,
            segments=split,
            check_only=check_only,
        )
    except InvalidRequestError as exc:
        raise RejectedEntry(f"{where}: {exc}{scheme_hint(url)}") from None
    except ValueError as exc:
        raise RejectedEntry(f"{where}: {exc}") from None


def _inside(key: str, value: str) -> PurePosixPath:
    """`value` as a relative path that cannot leave the directory it is joined to."""
    _check_inside(key, value)
    return PurePosixPath(value)


def _check_inside(key: str, value: str) -> None:
    # Strings only: the parser checks every entry, and pathlib interns each part it parses.
    parts = value.replace("\\", "/").split("/")
    if not value or value.startswith(("/", "\\")) or _DRIVE.match(value):
        raise ValueError(f"{key}= must be a relative path inside the destination, not {value!r}")
    if ".." in parts:
        raise ValueError(f"{key}= must not go up with '..': {value!r}")
    if _CONTROL.search(value):
        raise ValueError(f"{key}= contains a control character: {value!r}")
    if key == "out" and parts[-1] in ("", "."):
        raise ValueError(f"out= must name a file, not {value!r}")


class InputReader:
    """The lines of an input file or pipe, read in a thread of its own, as they arrive.

    A pipe may go quiet for minutes (`producer | adownload -i -`), and a read on the event loop
    would freeze every transfer meanwhile; a read on a regular file is quick but still a disk
    access. So a daemon thread reads chunks, at most `_READ_AHEAD` ahead of the parser, and
    hands them to the loop. The thread is not joined: a read from a pipe that nobody writes
    can block forever and no thread can interrupt it. It stops by itself after its current
    read once told to stop (or once the loop is gone), and, being a daemon, never keeps the
    process alive. It closes the file it reads when it ends, unless that is standard input.
    """

    def __init__(self, file: BinaryIO, name: str, *, close: bool) -> None:
        self.name = name
        self._file = file
        self._close = close
        self._queue: asyncio.Queue[bytes | OSError] = asyncio.Queue()
        self._room = threading.Semaphore(_READ_AHEAD)
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def open(cls, path: str) -> InputReader:
        """Open the file at `path`; raise OSError if it cannot be read."""
        file = open(path, "rb")  # noqa: SIM115  (the reading thread closes it)
        try:
            if stat.S_ISDIR(os.fstat(file.fileno()).st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        except BaseException:
            file.close()
            raise
        return cls(file, path, close=True)

    async def entries(self) -> AsyncIterator[Entry]:
        """The input's entries, parsed as its bytes arrive; raise OSError if reading fails."""
        parser = EntryParser()
        number = 0
        pending = b""
        overlong = False  # skipping the rest of a line that is too long to be a URL
        async for chunk in self._chunks():
            if chunk is None:  # the input went quiet: the last entry is all there is for now
                if not pending and (entry := parser.finish()) is not None:
                    yield entry
                continue
            if number == 0 and not pending:
                chunk = chunk.removeprefix(b"\xef\xbb\xbf")  # a byte order mark
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                number += 1
                if overlong:
                    overlong = False
                elif (entry := parser.feed(number, raw)) is not None:
                    yield entry
            if len(pending) > _MAX_LINE:
                if not overlong:
                    problem = f"the line is longer than {_MAX_LINE} bytes"
                    if (entry := parser.reject(number + 1, problem)) is not None:
                        yield entry
                    overlong = True
                pending = b""
        if pending and not overlong and (entry := parser.feed(number + 1, pending)) is not None:
            yield entry
        if (entry := parser.finish()) is not None:
            yield entry

    async def _chunks(self) -> AsyncIterator[bytes | None]:
        """The input's bytes as they come, and None once each time it goes quiet for `IDLE`."""
        self._loop = asyncio.get_running_loop()
        thread = threading.Thread(target=self._pump, name=f"adownload input {self.name}")
        thread.daemon = True
        thread.start()
        try:
            quiet = False
            while True:
                if quiet or not self._queue.empty():
                    item = await self._queue.get()
                else:
                    try:
                        item = await asyncio.wait_for(self._queue.get(), IDLE)
                    except TimeoutError:
                        quiet = True
                        yield None
                        continue
                quiet = False
                self._room.release()
                if isinstance(item, OSError):
                    raise item
                if not item:
                    return
                yield item
        finally:
            self._stopped = True
            self._room.release()  # wakes the thread if it waits for room, so that it ends

    def _pump(self) -> None:
        fd = self._file.fileno()
        try:
            while True:
                self._room.acquire()
                if self._stopped:
                    return
                try:
                    chunk = os.read(fd, _CHUNK)
                except OSError as exc:
                    self._hand(exc)
                    return
                if not self._hand(chunk) or not chunk:
                    return
        finally:
            if self._close:
                self._file.close()

    def _hand(self, item: bytes | OSError) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True
