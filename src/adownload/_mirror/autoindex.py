"""Directory index pages (nginx, Apache and `python -m http.server` autoindex) read as links,
and nginx's JSON and XML listings (`autoindex_format json` / `xml`) read as the same links.

An index page is a stranger's HTML. Every link in it is hostile until shown otherwise: only
links that resolve to a URL strictly below the start URL, on the same scheme, host and port,
without a query, and whose every path component decodes to a plain name, are kept. `../`,
absolute URLs to other hosts or above the base, the column-sorting links (`?C=N;O=D`),
`javascript:` and `file:` links, and encoded separators (`%2e%2e%2f`) all fall out here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import unquote

from yarl import URL

from .._disk.files import safe_filename

__all__ = ["Listing", "below", "directory_url", "listing_kind", "parse_index", "parse_listing"]

_SCHEMES = frozenset({"http", "https"})
# Decoded path components that are not a plain name: a link with one is dropped, not repaired.
_NOT_A_NAME = frozenset({"", ".", ".."})


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        for name, value in attrs:
            if name == "href" and value:
                self.hrefs.append(value.strip())


@dataclass(slots=True)
class Listing:
    """The entries of one index page below the base: subdirectories and files.

    Each entry is `(url, parts)`: the absolute URL and its path below the base as safe,
    decoded names (one per directory level, the file name last).
    """

    directories: list[tuple[URL, tuple[str, ...]]] = field(default_factory=list)
    files: list[tuple[URL, tuple[str, ...]]] = field(default_factory=list)


def directory_url(url: URL) -> URL:
    """`url` as a directory: its path ends with a slash; no query or fragment."""
    url = url.with_query(None).with_fragment(None)
    if not url.raw_path.endswith("/"):
        url = url.with_path(url.raw_path + "/", encoded=True)
    return url


def below(base: URL, url: URL) -> tuple[str, ...] | None:
    """The path of `url` below the directory `base`, as safe names; None if it is not below.

    A component that decodes to nothing, `.`, `..`, or to a name with a separator or a control
    character in it (`%2e%2e%2f`, `a%2Fb`, `%00`) makes the whole URL unusable.
    """
    if url.scheme not in _SCHEMES or (url.scheme, url.host, url.port) != (
        base.scheme,
        base.host,
        base.port,
    ):
        return None
    if url.raw_query_string or url.raw_fragment:
        return None
    prefix, path = base.raw_path, url.raw_path
    if not path.startswith(prefix) or len(path) <= len(prefix):
        return None
    raw = path[len(prefix) :].rstrip("/").split("/")
    parts = []
    for component in raw:
        name = unquote(component, errors="strict") if "%" in component else component
        if name in _NOT_A_NAME or any(ch in name for ch in "/\\\x00"):
            return None
        safe = safe_filename(name, fallback="")
        if not safe:
            return None
        parts.append(safe)
    return tuple(parts)


def listing_kind(start: bytes) -> str | None:
    """What the first bytes of a page say it is: "html" (or XML, which starts the same),
    "json", or None for no listing at all (a zip, a text file), which a mirror then need not
    read further."""
    text = start.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "html"
    if text.startswith((b"[", b"{")):
        return "json"
    return None


def parse_listing(body: bytes, page: URL, base: URL) -> Listing | None:
    """The entries of a listing page, whichever form it has: an HTML index, or nginx's JSON or
    XML listing; None for a page that is none of these (a JSON or XML document of another
    shape)."""
    kind = listing_kind(body[:1024])
    if kind == "json":
        hrefs = _json_hrefs(body)
        return None if hrefs is None else _listing(hrefs, page, base)
    if kind is None:
        return None
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<?xml", b"<list")):
        hrefs = _xml_hrefs(body)
        if hrefs is not None:
            return _listing(hrefs, page, base)
        # Not nginx's <list>: XHTML, say, read as the HTML it is.
    return parse_index(body.decode("utf-8", "replace"), page, base)


def _json_hrefs(body: bytes) -> list[str] | None:
    """nginx's `autoindex_format json`: `[{"name": "a.txt", "type": "file", ...}, ...]`."""
    import json

    try:
        entries = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    hrefs = []
    for entry in entries:
        name, kind = entry.get("name"), entry.get("type")
        if not isinstance(name, str) or kind not in ("file", "directory"):
            continue  # links and others are not followed
        hrefs.append(_href(name, directory=kind == "directory"))
    return hrefs


def _xml_hrefs(body: bytes) -> list[str] | None:
    """nginx's `autoindex_format xml`: `<list><directory>d</directory><file>a.txt</file></list>`,
    read without DTDs or entities (defusedxml)."""
    import xml.etree.ElementTree as ElementTree

    import defusedxml
    import defusedxml.ElementTree as SafeElementTree

    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except (ElementTree.ParseError, defusedxml.DefusedXmlException):
        return None
    if root.tag != "list":
        return None
    return [
        _href(element.text or "", directory=element.tag == "directory")
        for element in root
        if element.tag in ("file", "directory") and element.text
    ]


def _href(name: str, *, directory: bool) -> str:
    """A listed name as the relative link an HTML index would hold for it."""
    from urllib.parse import quote

    return quote(name, safe="") + ("/" if directory else "")


def parse_index(html: str, page: URL, base: URL) -> Listing:
    """The links of the index page `html` (served at `page`) that lie below `base`.

    A link that ends with a slash is a subdirectory, any other a file. Duplicates are dropped.
    """
    parser = _Links()
    parser.feed(html)
    parser.close()
    return _listing(parser.hrefs, page, base)


def _listing(hrefs: list[str], page: URL, base: URL) -> Listing:
    listing = Listing()
    seen: set[URL] = set()
    for href in hrefs:
        if href.startswith(("#", "?")):
            continue
        try:
            link = URL(href)
            if link.scheme and link.scheme.lower() not in _SCHEMES:
                continue
            url = page.join(link).with_fragment(None)
        except (ValueError, TypeError):
            continue
        try:
            parts = below(base, url)
        except UnicodeDecodeError:
            continue
        if parts is None or url in seen:
            continue
        seen.add(url)
        if url.raw_path.endswith("/"):
            listing.directories.append((url, parts))
        else:
            listing.files.append((url, parts))
    return listing
