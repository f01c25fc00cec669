"""Names from untrusted sources made safe: pure string work, no file system.

Everything here that takes a name from a URL or a server treats it as hostile: the result is a
single path component with no way back out of the directory it is joined to (`adownload._disk`
does the joining).
"""

from __future__ import annotations

import re
import unicodedata

from yarl import URL

PART_SUFFIX = ".part"
#: The longest suffix adownload puts after a target's name: `NAME.part.state.tmp`.
LONGEST_SUFFIX = PART_SUFFIX + ".state.tmp"

#: The name used when nothing safe is left of a name.
FALLBACK_NAME = "download"
#: The name of a URL that ends with a slash, as wget names it.
INDEX_NAME = "index.html"

# Most file systems cap a name at 255 bytes; keep room for every suffix adownload adds, so that
# `NAME.part.state.tmp` fits (`free_name` cuts a stem to make room for its ` (N)`).
NAME_LIMIT = 255
MAX_NAME_BYTES = NAME_LIMIT - len(LONGEST_SUFFIX)
_DRIVE = re.compile(r"^[A-Za-z]:")
# C0 and C1 controls, DEL, and the characters that reorder or hide text on a terminal or in a
# file manager: bidirectional embeddings, overrides and isolates (an "exe.txt" that shows as
# "txt.exe"), marks, and the line and paragraph separators.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# Names Windows reserves in any directory, with or without an extension.
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def safe_filename(name: str, *, fallback: str = FALLBACK_NAME) -> str:
    """Reduce an untrusted `name` to one harmless path component.

    Keeps the last component after both `/` and `\\` separators, drops drive letters, control
    characters (C0 with NUL, DEL, C1) and bidirectional controls, leading dots and spaces (no
    `..`, no hidden files), and trailing dots and spaces (which Windows strips), truncates it so
    that it and adownload's `.part.state.tmp` fit a file system's name limit, and returns
    `fallback` when nothing is left.

    ```pycon
    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> safe_filename("C:\\\\Windows\\\\evil.dll")
    'evil.dll'
    >>> safe_filename("..")
    'download'

    ```
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Each step can uncover what an earlier one looks for ("A\x1f:" is a drive once the
    # control character goes, "A:." once the dot goes), so they run until nothing changes:
    # the result is its own safe name. Every round but the one that adds "_" shortens it.
    while True:
        reduced = _DRIVE.sub("", name)
        reduced = _UNSAFE_CHARS.sub("", reduced)
        reduced = reduced.strip(" .").lstrip(".")
        if _WINDOWS_RESERVED.match(reduced):
            reduced = "_" + reduced
        reduced = truncate(reduced)
        if reduced == name:
            break
        name = reduced
    return name or fallback


def truncate(name: str, limit: int = MAX_NAME_BYTES) -> str:
    if len(name.encode("utf-8", "surrogatepass")) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    else:
        suffix = "." + suffix
    budget = limit - len(suffix.encode("utf-8", "surrogatepass"))
    stem_bytes = stem.encode("utf-8", "surrogatepass")[:budget]
    return stem_bytes.decode("utf-8", "ignore").rstrip(" .") + suffix


def name_from_url(url: URL) -> str:
    """The file name a URL stands for: its last path segment, percent-decoded, made safe."""
    path = url.path
    if not path or path.endswith("/"):
        return INDEX_NAME
    # url.name is percent-decoded, so "a%2F..%2Fb" arrives here as "a/../b" and is cut to "b".
    return safe_filename(url.name)


def plain_name(name: str) -> bool:
    """Whether a listed name is one plain component: no `/` or `\\`, not `.` or `..`, no
    control characters.

    >>> [plain_name(n) for n in ("a.zip", "../a", "a/b", "..", "a\\x1bb")]
    [True, False, False, False, False]
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        return False
    return not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name)
