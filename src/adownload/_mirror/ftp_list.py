"""FTP directory listings for the mirror: `MLSD` (RFC 3659), falling back to `LIST`.

A listing is a stranger's text. A name is kept only when it is one plain path component (no
`/`, not `.` or `..`) without control characters; everything else is dropped, so no name can
lead outside the destination or into a command. Listings are bounded in size, and their
connections are the downloader's (its pool, its per-host limit, its timeouts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import aioftp
from yarl import URL

from .._engine.watchdog import read_watchdog
from .._model.errors import RemoteProtocolError
from .._model.names import plain_name
from .._model.util import redact, whole_number
from .._protocols.ftp.client import Client, mdtm_date, pool_of, translate_ftp_errors
from .._protocols.network import check_ftp_route

if TYPE_CHECKING:
    from .._engine.settings import Settings

#: A listing larger than this is not a listing.
MAX_LISTING_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    """One name of a directory listing."""

    name: str
    directory: bool
    size: int | None = None
    modified: str | None = None  # an HTTP date


async def list_directory(settings: Settings, url: URL) -> list[Entry]:
    """The entries of the FTP directory at `url` (its path, with or without the final `/`)."""
    shown = redact(str(url))
    timeout = settings.options.timeout
    pool = pool_of(settings.pools, settings.network.netrc)
    check_ftp_route(settings.network, url, settings.options.proxy, shown)
    path = url.path or "/"
    async with (
        settings.limiter.slot(url),
        asyncio.timeout(timeout.total),
        read_watchdog(timeout.read, grace=timeout.connect or 0.0, url=shown) as idle,
    ):
        with translate_ftp_errors(shown, read=timeout.read):
            control, _ = await pool.acquire(url, timeout, shown, login=settings.options.auth)
            idle.touch()
            try:
                entries = await _list(control.client, path, shown, idle.touch)
            except BaseException:
                control.client.close()
                raise
            pool.release(control)
    return entries


async def _list(client: Client, path: str, shown: str, touch: Callable[[], None]) -> list[Entry]:
    parsers: list[tuple[str, Callable[[bytes], tuple[PurePosixPath, Any]]]] = [
        ("MLSD", client.parse_mlsx_line),
        ("LIST", client.parse_list_line),
    ]
    for command, parse in parsers:
        # The data connection is opened and closed here, not by aioftp's get_stream, which
        # leaves it open when the command is refused.
        sock = await client.open_data()
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        try:
            try:
                await client.command(f"{command} {path}", "1xx")
            except aioftp.StatusCodeError as exc:
                if command == "MLSD" and str(exc.received_codes[-1]).startswith("50"):
                    continue  # no MLSD here: LIST
                raise
            entries: list[Entry] = []
            total = 0
            while line := await reader.readline():
                touch()
                total += len(line)
                if total > MAX_LISTING_BYTES:
                    raise RemoteProtocolError(
                        f"the listing of {shown} is over {MAX_LISTING_BYTES} bytes", url=shown
                    )
                entry = _entry(line, parse)
                if entry is not None:
                    entries.append(entry)
        finally:
            writer.close()
        await client.command(None, "2xx", "1xx")
        return entries
    raise AssertionError("unreachable")  # pragma: no cover


def _entry(line: bytes, parse: Callable[[bytes], tuple[PurePosixPath, Any]]) -> Entry | None:
    """One listing line as an `Entry`, or None for a line to drop."""
    if not line.strip():
        return None
    try:
        path, info = parse(line.rstrip(b"\r\n"))
    except (ValueError, IndexError, KeyError, UnicodeDecodeError):
        return None  # not a line aioftp understands: a total line, a banner, garbage
    name = str(path)
    if not plain_name(name):
        return None
    kind = str(info.get("type", "")).lower()
    if kind not in ("file", "dir") or "link_dst" in info or line[:1] == b"l":
        return None  # cdir, pdir, devices, and links, which are never followed
    raw = str(info.get("size", ""))
    size = whole_number(raw)
    modified = mdtm_date(str(info.get("modify", "")))
    return Entry(name, kind == "dir", size, modified)
