"""Mirrors of one file for the multi-source tests: each an aiohttp app on 127.0.0.1 serving
the same bytes with ranges, at a rate of its own per connection, optionally corrupting one
piece of what it sends or dying (every connection cut, every later one refused) after it has
sent so many bytes. Each counts the bytes it sent and the requests it had, before and after
its death, so a test can say where the file's bytes came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from yarl import URL

from .servers import parse_range
from .support import serve_app

#: Bytes per write, and per pause of the rate limit.
CHUNK = 32 << 10


@dataclass
class Mirror:
    """One mirror of `data` at `name`: `rate` bytes per second per connection (None: as fast
    as it goes), `corrupt_at` the byte of what it sends (counted over all its answers) that it
    sends wrong, `die_after` the bytes after which it dies."""

    data: bytes
    name: str = "file.bin"
    rate: float | None = None
    corrupt_at: int | None = None
    corrupted: int | None = None  # the file offset of the byte it sent wrong
    die_after: int | None = None
    etag: str = '"v1"'
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    sent: int = 0
    requests: int = 0
    requests_after_death: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    dead: bool = False
    url: URL = field(default_factory=URL)
    _transports: set[asyncio.Transport] = field(default_factory=set)

    def file_url(self) -> str:
        return str(self.url / self.name)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/{self.name}", self._serve)
        return app

    def _die(self) -> None:
        self.dead = True
        for transport in list(self._transports):
            transport.abort()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        if self.dead:
            self.requests_after_death += 1
            transport.abort()
            raise web.HTTPServiceUnavailable
        self.requests += 1
        length = len(self.data)
        bounds = parse_range(request.headers.get("Range"), length)
        headers = {"ETag": self.etag, "Accept-Ranges": "bytes", **self.headers}
        if isinstance(bounds, tuple):
            start, end = bounds
            response = web.StreamResponse(status=206, headers=headers)
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{length}"
        else:
            start, end = 0, length
            response = web.StreamResponse(status=200, headers=headers)
        self.ranges.append((start, end))
        response.content_length = end - start
        self._transports.add(transport)
        try:
            await response.prepare(request)
            position = start
            while position < end:
                stop = min(end, position + CHUNK)
                chunk = bytearray(self.data[position:stop])
                at = self.corrupt_at
                if at is not None and self.corrupted is None and self.sent + len(chunk) > at:
                    chunk[at - self.sent] ^= 0xFF
                    self.corrupted = position + at - self.sent
                if self.die_after is not None and self.sent + len(chunk) > self.die_after:
                    self._die()
                    break
                await response.write(bytes(chunk))
                self.sent += len(chunk)
                position = stop
                if self.rate is not None:
                    await asyncio.sleep(len(chunk) / self.rate)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._transports.discard(transport)
        return response


@contextlib.asynccontextmanager
async def serve_mirrors(*mirrors: Mirror) -> AsyncIterator[tuple[Mirror, ...]]:
    """Serve each mirror on a port of its own until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        for mirror in mirrors:
            port = await stack.enter_async_context(serve_app(mirror.app()))
            mirror.url = URL(f"http://127.0.0.1:{port}")
        yield mirrors


def piece_hashes(data: bytes, length: int, algorithm: str = "sha256") -> tuple[str, ...]:
    return tuple(
        hashlib.new(algorithm, data[start : start + length]).hexdigest()
        for start in range(0, len(data), length)
    )


def meta4(name: str, data: bytes, urls: list[str], piece: int | None = None) -> bytes:
    """A Metalink 4 document for `data` at `urls` (priorities in order)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<metalink xmlns="urn:ietf:params:xml:ns:metalink">',
        f'  <file name="{name}">',
        f"    <size>{len(data)}</size>",
        f'    <hash type="sha-256">{hashlib.sha256(data).hexdigest()}</hash>',
    ]
    if piece is not None:
        lines.append(f'    <pieces length="{piece}" type="sha-256">')
        lines.extend(f"      <hash>{digest}</hash>" for digest in piece_hashes(data, piece))
        lines.append("    </pieces>")
    lines.extend(
        f'    <url priority="{rank}">{url}</url>' for rank, url in enumerate(urls, start=1)
    )
    lines += ["  </file>", "</metalink>", ""]
    return "\n".join(lines).encode()
