"""Metalink files: one or many files, each with its mirrors, size, checksum and piece hashes.

Both formats are read: Metalink 4 (RFC 5854, `.meta4`) and Metalink 3 (`.metalink`, the
metalinker.org format aria2c and many mirrors still publish). Each `<file>` becomes a
`MetalinkFile`, and its `request()` a `Request` whose mirrors, size, checksum and pieces let
`adownload` fetch the file from several mirrors at once and check every piece as it lands.

```pycon
>>> files = adownload.metalink.parse(Path("python-docs.meta4"))
>>> async with adownload.Downloader() as dl:
...     outcomes = await dl.download_many(f.request(dest="docs") for f in files)
```

A Metalink is input from a stranger, so it is parsed by defusedxml with DTDs, entities and
external references refused (no entity expansion bomb, no file read through an entity), at
most `MAX_DOCUMENT` bytes, at most `MAX_URLS` URLs kept per file (the best ones), and every
name through the same safe-name rules as a Content-Disposition name: a name that climbs out of
the directory (`../x`, `/etc/x`) is refused, not cut down.
"""

from __future__ import annotations

import logging
import os
import stat
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ._disk.files import safe_filename
from ._model.errors import InvalidRequestError
from ._model.pieces import Pieces
from ._model.request import Request, parse_url
from ._model.util import redact, whole_number
from ._model.verify import hash_name, parse_checksum

if TYPE_CHECKING:
    from ._client.downloader import Downloader

__all__ = ["MAX_DOCUMENT", "MAX_URLS", "MetalinkError", "MetalinkFile", "fetch", "parse"]

log = logging.getLogger("adownload")

#: The largest Metalink document read, in bytes.
MAX_DOCUMENT = 16 << 20
#: URLs kept per file at most: the best by priority.
MAX_URLS = 64
#: Name suffixes of Metalink documents.
SUFFIXES = (".meta4", ".metalink")

_V4 = "urn:ietf:params:xml:ns:metalink"
_V3 = "http://www.metalinker.org/"
#: Whole-file hashes by strength: the strongest one given is checked.
_STRENGTH = ("sha512", "sha384", "sha256", "sha224", "sha1", "md5")
_SCHEMES = ("http", "https", "ftp", "s3", "gs", "az")
_LOWEST = 999_999  # Metalink 4's priorities run from 1 (best) to 999999


class MetalinkError(InvalidRequestError):
    """A Metalink document that cannot be used: not XML, not a Metalink, a DTD or entity in
    it, a file without a usable URL, a name that leaves the directory, a bad size or hash."""


@dataclass(frozen=True, slots=True)
class MetalinkFile:
    """One `<file>` of a Metalink.

    - `name`: its relative path, `/`-separated, each part a safe file name.
    - `urls`: http, https and ftp URLs, best first (at most `MAX_URLS`).
    - `size`: its length in bytes, when given.
    - `checksum`: the strongest whole-file hash given, as `"sha256:<hex>"`.
    - `pieces`: its piece hashes, when given.
    """

    name: str
    urls: tuple[str, ...]
    size: int | None = None
    checksum: str | None = None
    pieces: Pieces | None = None

    def request(self, dest: str | os.PathLike[str] = ".", **options: Any) -> Request:
        """The `Request` for this file, saved as `dest/name`; `options` are further `Request`
        fields (`segments=`, `existing=`, ...)."""
        return Request(
            self.urls[0],
            Path(dest, *PurePosixPath(self.name).parts),
            mirrors=self.urls[1:],
            size=self.size,
            checksum=self.checksum,
            pieces=self.pieces,
            **options,
        )


def parse(source: bytes | str | os.PathLike[str]) -> list[MetalinkFile]:
    """The files of a Metalink 4 or 3 document: `bytes` are the document, a `str` or path
    names a file holding it. Raises `MetalinkError` saying what is wrong."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        where = "the Metalink"
    else:
        where = os.fspath(source)
        data = _read(where)
    if len(data) > MAX_DOCUMENT:
        raise MetalinkError(f"{where} is over {MAX_DOCUMENT >> 20} MiB: not read")
    import defusedxml  # here, not at the top: a run without a Metalink never pays for it
    import defusedxml.ElementTree as SafeElementTree

    try:
        root = SafeElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden:
        raise MetalinkError(
            f"{where} has a document type declaration, which a Metalink never needs: not read"
        ) from None
    except defusedxml.EntitiesForbidden:
        raise MetalinkError(
            f"{where} declares XML entities, which a Metalink never needs"
        ) from None
    except defusedxml.DefusedXmlException as exc:
        raise MetalinkError(f"{where} is refused: {exc}") from None
    except ElementTree.ParseError as exc:
        raise MetalinkError(f"{where} is not well-formed XML: {exc}") from None
    namespace, _, local = root.tag.rpartition("}")
    namespace = namespace.lstrip("{")
    if local != "metalink":
        raise MetalinkError(f"{where} is not a Metalink: its root is <{local}>")
    if namespace == _V4:
        files = [_file_v4(element, where) for element in root.findall(f"{{{_V4}}}file")]
    elif namespace == _V3 or (not namespace and root.get("version", "").startswith("3")):
        ns = f"{{{namespace}}}" if namespace else ""
        files = [_file_v3(element, ns, where) for element in root.iter(f"{ns}file")]
    else:
        raise MetalinkError(f"{where}: unknown Metalink namespace {namespace!r}")
    if not files:
        raise MetalinkError(f"{where} lists no files")
    names: set[str] = set()
    for file in files:
        if file.name in names:
            raise MetalinkError(f"{where} lists {file.name!r} twice")
        names.add(file.name)
    return files


async def fetch(url: str, downloader: Downloader) -> list[MetalinkFile]:
    """Download the Metalink at `url` with `downloader` (into memory, at most
    `MAX_DOCUMENT` bytes) and parse it; a failed download raises its `DownloadError`."""
    from ._disk.sinks import MemorySink

    sink = MemorySink()
    await downloader.download(Request(url, sink=sink, max_size=MAX_DOCUMENT))
    return parse(sink.getvalue())


def _read(name: str) -> bytes:
    """The bytes of the file `name`: a regular file (a FIFO would block), at most
    `MAX_DOCUMENT` bytes of it."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MetalinkError(f"{name} is not a regular file: not read")
            return file.read(MAX_DOCUMENT + 1)
    except OSError as exc:
        raise MetalinkError(f"cannot read {name}: {exc.strerror or exc}") from None


def is_metalink_url(url: str) -> bool:
    """Whether `url` names a Metalink document by its suffix (`.meta4`, `.metalink`)."""
    path = url.split("#", 1)[0].split("?", 1)[0].lower()
    return path.endswith(SUFFIXES)


# --- the two formats ------------------------------------------------------------------------


def _file_v4(element: ElementTree.Element, where: str) -> MetalinkFile:
    ns = f"{{{_V4}}}"
    name = _name(element.get("name"), where)
    what = f"{where}: file {name!r}"
    urls = [
        (_priority(url.get("priority"), what), url.text or "")
        for url in element.findall(f"{ns}url")
    ]
    hashes = [(h.get("type", ""), h.text or "") for h in element.findall(f"{ns}hash")]
    pieces = element.find(f"{ns}pieces")
    piece_hashes = None
    if pieces is not None:
        piece_hashes = (
            pieces.get("length"),
            pieces.get("type", ""),
            [h.text or "" for h in pieces.findall(f"{ns}hash")],
        )
    return _file(name, what, urls, _size(element.findtext(f"{ns}size"), what), hashes, piece_hashes)


def _file_v3(element: ElementTree.Element, ns: str, where: str) -> MetalinkFile:
    name = _name(element.get("name"), where)
    what = f"{where}: file {name!r}"
    urls = []
    for url in element.iter(f"{ns}url"):
        kind = url.get("type", "").lower()
        if kind and kind not in _SCHEMES:
            continue  # bittorrent, ed2k, magnet: not for us
        preference = _number(url.get("preference"))
        # Metalink 3 ranks 100 best; turned into Metalink 4's order, 1 best.
        rank = 101 - preference if preference is not None and preference <= 100 else 101
        urls.append((rank, url.text or ""))
    verification = element.find(f"{ns}verification")
    hashes: list[tuple[str, str]] = []
    piece_hashes = None
    if verification is not None:
        hashes = [(h.get("type", ""), h.text or "") for h in verification.findall(f"{ns}hash")]
        pieces = verification.find(f"{ns}pieces")
        if pieces is not None:
            numbered = []
            for h in pieces.findall(f"{ns}hash"):
                number = _number(h.get("piece"))
                if number is None:
                    raise MetalinkError(f"{what}: a piece hash without its number")
                numbered.append((number, h.text or ""))
            numbered.sort()
            if [number for number, _ in numbered] != list(range(len(numbered))):
                raise MetalinkError(f"{what}: the piece hashes are not numbered 0, 1, 2, ...")
            piece_hashes = (
                pieces.get("length"),
                pieces.get("type", ""),
                [text for _, text in numbered],
            )
    return _file(name, what, urls, _size(element.findtext(f"{ns}size"), what), hashes, piece_hashes)


def _file(
    name: str,
    what: str,
    urls: list[tuple[int, str]],
    size: int | None,
    hashes: list[tuple[str, str]],
    piece_hashes: tuple[str | None, str, list[str]] | None,
) -> MetalinkFile:
    urls.sort(key=lambda entry: entry[0])  # stable: the document's order breaks ties
    kept = list(dict.fromkeys(_urls(text.strip() for _, text in urls)))
    if not kept:
        raise MetalinkError(f"{what} has no http, https or ftp URL")
    if len(kept) > MAX_URLS:
        log.warning("%s lists %d URLs; keeping the best %d", what, len(kept), MAX_URLS)
        kept = kept[:MAX_URLS]
    return MetalinkFile(
        name, tuple(kept), size, _checksum(hashes, what), _pieces(piece_hashes, size, what)
    )


# --- the parts of a file ----------------------------------------------------------------------


def _name(raw: str | None, where: str) -> str:
    """A file's name: a relative path whose every part is a safe file name."""
    if raw is None or not raw.strip():
        raise MetalinkError(f"{where}: a file without a name")
    text = raw.strip().replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith("/") or (len(text) > 1 and text[1] == ":") or ".." in parts:
        raise MetalinkError(f"{where}: the name {raw[:200]!r} leaves the download directory")
    safe = [safe_filename(part) for part in parts]
    if not safe:
        raise MetalinkError(f"{where}: the name {raw[:200]!r} names no file")
    return "/".join(safe)


def _urls(texts: Iterable[str]) -> Iterable[str]:
    for text in texts:
        try:
            url = parse_url(text)
        except InvalidRequestError:
            log.debug("a Metalink URL is skipped: %r", redact(text[:200]))
            continue
        if url.scheme in _SCHEMES:
            yield str(url)


def _number(raw: str | None) -> int | None:
    return None if raw is None else whole_number(raw)


def _priority(raw: str | None, what: str) -> int:
    if raw is None:
        return _LOWEST
    number = _number(raw)
    if number is None or not 1 <= number <= _LOWEST:
        raise MetalinkError(f"{what}: a URL priority must be 1 to {_LOWEST}, not {raw[:40]!r}")
    return number


def _size(raw: str | None, what: str) -> int | None:
    if raw is None:
        return None
    number = _number(raw)
    if number is None:
        raise MetalinkError(f"{what}: its size must be a number of bytes, not {raw[:40]!r}")
    return number


def _checksum(hashes: list[tuple[str, str]], what: str) -> str | None:
    """The strongest whole-file hash, checked; unknown types are passed over. A malformed hash
    weaker than a valid one is ignored, with a warning, as aria2c uses the stronger; any other
    malformed hash refuses the file (a stronger claim that cannot be read is no claim to
    fall back from)."""
    valid: dict[str, str] = {}
    malformed: dict[str, InvalidRequestError] = {}
    for kind, text in hashes:
        name = hash_name(kind)
        if name in _STRENGTH:
            checksum = f"{name}:{text.strip()}"
            try:
                parse_checksum(checksum)
            except InvalidRequestError as exc:
                malformed[name] = exc
            else:
                valid[name] = checksum
    strongest = next((name for name in _STRENGTH if name in valid), None)
    for name, problem in malformed.items():
        if strongest is None or _STRENGTH.index(name) < _STRENGTH.index(strongest):
            raise MetalinkError(f"{what}: {problem}")
        log.warning("%s: ignored its malformed %s hash; checking its %s", what, name, strongest)
    return None if strongest is None else valid[strongest]


def _pieces(
    raw: tuple[str | None, str, list[str]] | None, size: int | None, what: str
) -> Pieces | None:
    if raw is None:
        return None
    length, kind, hashes = raw
    size_of_piece = _number(length)
    if size_of_piece is None or size_of_piece < 1:
        raise MetalinkError(f"{what}: the piece length must be a positive number, not {length!r}")
    try:
        pieces = Pieces(size_of_piece, kind, tuple(hashes))
    except ValueError as exc:
        raise MetalinkError(f"{what}: {exc}") from None
    problem = None if size is None else pieces.problem_with(size)
    if problem is not None:
        raise MetalinkError(f"{what}: {problem}")
    return pieces
