"""A file archive served the way nginx and Apache serve a directory: autoindex pages.

`Archive` holds the files (path below `/pub/` -> bytes); the server renders each directory as
nginx or Apache would, answers `If-None-Match` / `If-Modified-Since` with 304, serves ranges
with `If-Range`, and counts the body bytes of files it sends (index pages aside), so a test can
show that a rerun transferred nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from urllib.parse import quote

from aiohttp import web
from yarl import URL

from .support import serve_app

#: Files are "modified" at this time plus their version, in the past (2020).
EPOCH = 1_600_000_000.0
PREFIX = "/pub/"
CHUNK = 16 << 10


def nginx_page(path: str, entries: list[tuple[str, int | None]], extra: list[str]) -> str:
    """An index page as nginx's autoindex writes it (`entries`: name, size or None for a dir)."""
    lines = [
        f"<html>\r\n<head><title>Index of {html.escape(path)}</title></head>\r\n<body>\r\n",
        f'<h1>Index of {html.escape(path)}</h1><hr><pre><a href="../">../</a>\r\n',
    ]
    for name, size in entries:
        href = quote(name) + ("/" if size is None else "")
        shown = html.escape(name + ("/" if size is None else ""))
        column = "-" if size is None else str(size)
        lines.append(f'<a href="{href}">{shown}</a>{" " * 20}04-Feb-2025 12:00 {column:>20}\r\n')
    lines.extend(f'<a href="{html.escape(href)}">{html.escape(href)}</a>\r\n' for href in extra)
    lines.append("</pre><hr></body>\r\n</html>\r\n")
    return "".join(lines)


def apache_page(path: str, entries: list[tuple[str, int | None]], extra: list[str]) -> str:
    """An index page as Apache's mod_autoindex writes it (FancyIndexing, HTMLTable)."""
    parent = path.rstrip("/").rsplit("/", 1)[0] + "/"
    rows = [
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n',
        f"  <title>Index of {html.escape(path.rstrip('/'))}</title>\n </head>\n <body>\n",
        f"<h1>Index of {html.escape(path.rstrip('/'))}</h1>\n  <table>\n",
        '   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th>'
        '<th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th>'
        '<th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>\n',
        '   <tr><th colspan="5"><hr></th></tr>\n',
        '<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td>'
        f'<td><a href="{html.escape(parent)}">Parent Directory</a></td><td>&nbsp;</td>'
        '<td align="right">  - </td><td>&nbsp;</td></tr>\n',
    ]
    for name, size in entries:
        href = quote(name) + ("/" if size is None else "")
        icon, alt = ("folder.gif", "[DIR]") if size is None else ("unknown.gif", "[   ]")
        rows.append(
            f'<tr><td valign="top"><img src="/icons/{icon}" alt="{alt}"></td>'
            f'<td><a href="{html.escape(href)}">{html.escape(name)}</a></td>'
            f'<td align="right">2025-02-04 12:00  </td>'
            f'<td align="right">{"-" if size is None else size}</td><td>&nbsp;</td></tr>\n'
        )
    rows.extend(
        f'<tr><td></td><td><a href="{html.escape(href)}">x</a></td></tr>\n' for href in extra
    )
    rows.append('   <tr><th colspan="5"><hr></th></tr>\n</table>\n</body></html>\n')
    return "".join(rows)


STYLES = {"nginx": nginx_page, "apache": apache_page}


@dataclass
class Archive:
    """The files below `/pub/` and how the server behaves; change it between runs."""

    files: dict[str, bytes]
    style: str = "nginx"
    #: Extra (hostile) hrefs per directory ("" is /pub/ itself).
    extra: dict[str, list[str]] = field(default_factory=dict)
    etags: bool = True
    #: Seconds to wait between chunks of a file body (to be killed in the middle of one).
    delay: float = 0.0
    #: Directories whose index page fails with 500.
    broken: set[str] = field(default_factory=set)
    versions: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    #: `marked` is set once `body_bytes` reaches `mark` (0: never).
    mark: int = 0
    marked: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, path: str, data: bytes) -> None:
        """Add or change a file; it gets a new ETag and a later Last-Modified."""
        self.files[path] = data
        self.versions[path] += 1

    def entries(self, directory: str) -> list[tuple[str, int | None]] | None:
        found: dict[str, int | None] = {}
        for path, data in self.files.items():
            if not path.startswith(directory):
                continue
            head, slash, _ = path[len(directory) :].partition("/")
            found[head] = None if slash else len(data)
        if not found and directory:
            return None
        return sorted(found.items())

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha256(self.files[path]).hexdigest()[:16] + '"'

    def modified(self, path: str) -> float:
        return EPOCH + 60 * self.versions[path]


def make_app(archive: Archive) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        archive.hits[request.path] += 1
        response = await _answer(archive, request)
        archive.statuses[response.status] += 1
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


async def _answer(archive: Archive, request: web.Request) -> web.StreamResponse:
    path = request.path
    if path == PREFIX.rstrip("/"):
        raise web.HTTPMovedPermanently(PREFIX)
    if not path.startswith(PREFIX):
        # Anything outside the archive: a trap that a mirror must never ask for.
        return web.Response(text="outside the archive\n")
    rel = path[len(PREFIX) :]
    if rel == "" or rel.endswith("/"):
        if rel in archive.broken:
            return web.Response(status=500, text="broken\n")
        entries = archive.entries(rel)
        if entries is None:
            return web.Response(status=404, text="no such directory\n")
        page = STYLES[archive.style](path, entries, archive.extra.get(rel, []))
        return web.Response(text=page, content_type="text/html")
    if rel not in archive.files:
        if rel + "/" in {p[: len(rel) + 1] for p in archive.files}:
            raise web.HTTPMovedPermanently(path + "/")
        return web.Response(status=404, text="not found\n")
    data = archive.files[rel]
    etag = archive.etag(rel) if archive.etags else None
    modified = archive.modified(rel)
    headers = {"Last-Modified": formatdate(modified, usegmt=True), "Accept-Ranges": "bytes"}
    if etag:
        headers["ETag"] = etag
    if_none_match = request.headers.get("If-None-Match")
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_none_match is not None:
        if etag and etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
            return web.Response(status=304, headers=headers)
    elif if_modified_since is not None:
        with contextlib.suppress(TypeError, ValueError):
            if modified <= parsedate_to_datetime(if_modified_since).timestamp():
                return web.Response(status=304, headers=headers)
    start = 0
    status = 200
    wanted = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range")
    if (
        wanted.startswith("bytes=")
        and wanted.endswith("-")
        and if_range
        in (
            etag,
            headers["Last-Modified"],
        )
    ):
        start = int(wanted[len("bytes=") : -1])
        if start >= len(data):
            return web.Response(
                status=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"}
            )
        status = 206
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(data) - start
    await response.prepare(request)
    for offset in range(start, len(data), CHUNK):
        if archive.delay:
            await asyncio.sleep(archive.delay)
        chunk = data[offset : offset + CHUNK]
        await response.write(chunk)
        archive.body_bytes += len(chunk)
        if archive.mark and archive.body_bytes >= archive.mark:
            archive.marked.set()
    await response.write_eof()
    return response


@dataclass
class Running:
    archive: Archive
    url: URL  # the server's root on 127.0.0.1
    alt_url: URL  # the same server on 127.0.0.2: another host

    @property
    def base(self) -> str:
        return str(self.url.with_path(PREFIX))


@contextlib.asynccontextmanager
async def serve_archive(archive: Archive) -> AsyncIterator[Running]:
    async with serve_app(make_app(archive)) as port:
        yield Running(archive, URL(f"http://127.0.0.1:{port}"), URL(f"http://127.0.0.2:{port}"))
