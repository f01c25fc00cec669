"""Directory index pages (nginx, Apache and `python -m http.server` autoindex) read as links.

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

from ._files import safe_filename

__all__ = ["Listing", "below", "directory_url", "parse_index"]

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


def parse_index(html: str, page: URL, base: URL) -> Listing:
    """The links of the index page `html` (served at `page`) that lie below `base`.

    A link that ends with a slash is a subdirectory, any other a file. Duplicates are dropped.
    """
    parser = _Links()
    parser.feed(html)
    parser.close()
    listing = Listing()
    seen: set[URL] = set()
    for href in parser.hrefs:
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
