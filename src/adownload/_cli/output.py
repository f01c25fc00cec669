"""Where the command's text goes, and how it reads: `Stream` (a closed pipe silences it), the
library's log as the command's lines (`LibraryLog`), control characters escaped (`visible`),
sizes in binary units and durations (`format_size`, `format_seconds`)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from typing import TextIO

__all__ = [
    "LibraryLog",
    "Stream",
    "format_seconds",
    "format_size",
    "is_terminal",
    "size_unit",
    "standard_streams",
    "visible",
]


# Control characters (C0, DEL, C1) as escapes: a server's text in an error message must not
# move the cursor or recolour a terminal, and a log file stays plain text.
_VISIBLE = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def visible(text: str) -> str:
    """`text` with its control characters as `\\xNN` escapes."""
    return text.translate(_VISIBLE)


def is_terminal(stream: Stream) -> bool:
    """Whether `stream` is a terminal that takes a live display (not TERM=dumb)."""
    try:
        return stream.file.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class LibraryLog(logging.Handler):
    """The library's log records as the command's own lines on `err`: `PROG: level: message`,
    then a traceback (a bug the library caught) a line at a time, each line's control
    characters escaped (one line of literal `\\x0a`s is no traceback a person can read)."""

    def __init__(self, err: Stream, prog: str) -> None:
        super().__init__()
        self._err = err
        self._prog = prog

    def emit(self, record: logging.LogRecord) -> None:
        first, *rest = self.format(record).split("\n")
        self._err.line(f"{self._prog}: {record.levelname.lower()}: {first}")
        for line in rest:
            self._err.line(line)


class Stream:
    """A text stream that a closed pipe (`adownload ... | head`) silences instead of crashing.

    Writes are small and happen on the event loop: a terminal or a pipe takes them at once, and
    keeping them in order matters more than a thread hop would save.
    """

    def __init__(self, file: TextIO | None) -> None:
        # None: the descriptor was closed when the command started (`cmd >&-`).
        self.file: TextIO = file if file is not None else io.StringIO()
        self.closed = file is None

    def line(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.file.write(visible(text) + "\n")
            self.file.flush()
        except BrokenPipeError:
            self.closed = True
            # Later writes, and the interpreter's flush at exit, go nowhere instead of failing.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.file.fileno())
                os.close(devnull)


def format_size(size: float) -> str:
    """Bytes in binary units, the ones sizes and rates are given in (`--limit-rate 10M` is
    10 MiB/s, as wget, curl and aria2c read it): `999 B`, `1.2 MiB`. One convention both
    ways, named so that it cannot be misread.

    ```pycon
    >>> format_size(1023), format_size(1536), format_size(10 << 20)
    ('1023 B', '1.5 KiB', '10.0 MiB')
    ```
    """
    scale, unit = size_unit(size)
    return f"{size:.0f} B" if scale == 1 else f"{size / scale:.1f} {unit}"


def size_unit(size: float) -> tuple[int, str]:
    """The binary unit `format_size` shows `size` in: (its bytes, its name)."""
    if size < 1024:
        return 1, "B"
    scale = 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1023.95 * scale:  # what would round to 1024.0 takes the next unit
            return scale, unit
        scale <<= 10
    return scale, "TiB"


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def standard_streams() -> tuple[Stream, Stream]:
    """stdout and stderr, set to show an unencodable file name escaped instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    return Stream(sys.stdout), Stream(sys.stderr)
