"""The test servers, all on 127.0.0.1: one place for every server the tests talk to (the
mirror's autoindex server aside, in `autoindex_server.py`). Started by the fixtures of
`conftest.py`; the helpers they share are in `support.py`.

## `make_app` / `serve`: a route table of good and bad behaviour

Routes (the last path segment is the file name the client will pick):

- `/files/{name}?size=N`          N deterministic bytes (`payload(name, N)`), Content-Length set
- `/chunked/{name}?size=N`        the same bytes with chunked transfer encoding, no length
- `/status/{code}/{name}`         that status, a short body
- `/slow/{name}?size=N&delay=S&parts=K`  N bytes in K parts, S seconds apart
- `/stall/{name}?size=N&after=M`  announces N bytes, sends M, then goes silent
- `/hang/{name}`                  accepts the request and never answers
- `/cd/{name}?cd=HEADER`          a file with that Content-Disposition header
- `/gzip/{name}`                  gzip bytes sent with Content-Encoding: gzip
- `/headers/{name}`               the request headers back, as JSON
- `/docs/{version}/{name}`        50,000 bytes of `name`; 404 for versions 9.*
- `/dir/`                         a small HTML page at a URL that ends with a slash
- `/go/{name}?to=PATH`            302 to PATH

The server counts hits per path, tracks how many requests run at once (`peak`), and records
requests whose client went away mid-response (`disconnects`).

## `FaultServer` and `RawServer`: one that fails on cue, one that breaks HTTP itself

`FaultServer` is an in-process aiohttp application serving deterministic files with validators
(a strong ETag from the content hash, Last-Modified) and real single-range support (`bytes=N-`,
`bytes=N-M`, `If-Range` honoured, 416 with `Content-Range: bytes */N`). Each path can be given a
script of faults, one step per request:

    faults.plan("/f/a.bin", ["reset_after:50000", "ok"])

Steps (after the script runs out, every request is served normally):

- `ok`                     serve the file (ranges and all)
- `cut_after:N`            send N body bytes, then close the connection (FIN): a body cut short
- `reset_after:N`          send N body bytes, then reset the connection (RST)
                           (for both: when N is not less than this response's body, half of it)
- `status:CODE[:AFTER]`    that status with a short body and `Retry-After: AFTER`; AFTER is
                           seconds, or `date+S` / `date-S` for an HTTP date S seconds from now.
                           A 416 also carries `Content-Range: bytes */<length>`.
- `ignore_range`           answer 200 with the whole body whatever Range asked for
- `bad_range[:SHIFT]`      answer a Range with a 206 whose Content-Range (and bytes) start SHIFT
                           (default 1000) bytes away from what was asked; served normally
                           without a Range
- `drip:BYTES:SECONDS`     the body in pieces of BYTES, SECONDS apart
- `pause_after:N`          send N body bytes, then go silent until the client leaves
- `announce:N`             send headers announcing Content-Length N (say, far over a size cap),
                           wait 0.3 s for the client to leave, then send the real body and close
- `hang`                   never answer
- `change+STEP`            first replace the file with a new version (new bytes, new length, new
                           ETag and Last-Modified), then do STEP

Routes (the last path segment is the file name a client picks):

- `/f/...?size=N`          the file: `payload(name, N)` until `set_content` changes it. Query:
                           `validators=both|etag|lm|weak|none` (default both), `ranges=none`
                           (never honour Range), `ranges=open` (answer `bytes=a-b` with an
                           open-ended `206 bytes a-END/TOTAL`), `chunked=1` (no Content-Length),
                           `encoding=gzip` (a Content-Encoding header), `cd=...`
                           (Content-Disposition), `digest=content,repr,legacy` (Content-Digest,
                           Repr-Digest, RFC 3230 Digest) with `bad_digest=1` to make them wrong
- `/r/...?to=URL&status=302`  a redirect to URL
- `/loop/...`              a redirect to itself

Every request is logged as a `Hit`: method, host, path, query, Range, If-Range, If-None-Match,
all headers, the step it got, the status sent and the body bytes handed to the socket.
`active` counts the requests being answered now and `peak` the most at once (segmented
downloads, per-host limits).

`RawServer` is a socket server for what aiohttp.web cannot send: the test gives the exact bytes
of each reply (`raw.script(name, reply, ...)`, built with `raw_response` or by hand).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .support import payload, serve_app


@dataclass
class Stats:
    hits: Counter[str] = field(default_factory=Counter)
    active: int = 0
    peak: int = 0
    disconnects: list[str] = field(default_factory=list)
    body_bytes_sent: int = 0
    started: dict[str, asyncio.Event] = field(default_factory=dict)

    def started_event(self, path: str) -> asyncio.Event:
        return self.started.setdefault(path, asyncio.Event())


@dataclass
class Server:
    url: URL
    stats: Stats
    alt_url: URL  # the same server on another loopback address (another "host")

    def __call__(self, path: str, **query: object) -> str:
        url = self.url.with_path(path, encoded="%" in path)
        if query:
            url = url.with_query({k: str(v) for k, v in query.items()})
        return str(url)


def _size(request: web.Request, default: int = 1024) -> int:
    return int(request.query.get("size", default))


def make_app(stats: Stats) -> web.Application:
    routes = web.RouteTableDef()

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        stats.hits[request.path] += 1
        stats.active += 1
        stats.peak = max(stats.peak, stats.active)
        try:
            return await handler(request)
        except (asyncio.CancelledError, ConnectionResetError):
            stats.disconnects.append(request.path)
            raise
        finally:
            stats.active -= 1

    @routes.get("/files/{name}")
    async def files(request: web.Request) -> web.Response:
        return web.Response(body=payload(request.match_info["name"], _size(request)))

    @routes.get("/chunked/{name}")
    async def chunked(request: web.Request) -> web.StreamResponse:
        data = payload(request.match_info["name"], _size(request))
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), 100_000):
            await response.write(data[start : start + 100_000])
        await response.write_eof()
        return response

    @routes.get("/status/{code}/{name}")
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}\n")

    @routes.get("/slow/{name}")
    async def slow(request: web.Request) -> web.StreamResponse:
        data = payload(request.match_info["name"], _size(request))
        delay = float(request.query.get("delay", "0.1"))
        parts = int(request.query.get("parts", "5"))
        response = web.StreamResponse()
        response.content_length = len(data)
        await response.prepare(request)
        step = -(-len(data) // parts)
        for start in range(0, len(data), step):
            await asyncio.sleep(delay)
            await response.write(data[start : start + step])
            stats.body_bytes_sent += len(data[start : start + step])
        await response.write_eof()
        return response

    @routes.get("/stall/{name}")
    async def stall(request: web.Request) -> web.StreamResponse:
        data = payload(request.match_info["name"], _size(request, 1 << 20))
        after = int(request.query.get("after", "1000"))
        response = web.StreamResponse()
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[:after])
        stats.started_event(request.path).set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    @routes.get("/hang/{name}")
    async def hang(request: web.Request) -> web.StreamResponse:
        stats.started_event(request.path).set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")  # pragma: no cover

    @routes.get("/cd/{name}")
    async def disposition(request: web.Request) -> web.Response:
        data = payload(request.match_info["name"], _size(request))
        return web.Response(body=data, headers={"Content-Disposition": request.query["cd"]})

    @routes.get("/gzip/{name}")
    async def gzipped(request: web.Request) -> web.Response:
        data = gzip.compress(payload(request.match_info["name"], _size(request)), mtime=0)
        return web.Response(
            body=data,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/gzip"},
        )

    @routes.get("/headers/{name}")
    async def headers(request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    @routes.get("/docs/{version}/{name}")
    async def docs(request: web.Request) -> web.Response:
        if request.match_info["version"].startswith("9"):
            raise web.HTTPNotFound()
        return web.Response(body=payload(request.match_info["name"], 50_000))

    @routes.get("/dir/")
    async def directory(request: web.Request) -> web.Response:
        return web.Response(text="<html>an index</html>", content_type="text/html")

    @routes.get("/go/{name}")
    async def go(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application(middlewares=[count])
    app.add_routes(routes)
    return app


@contextlib.asynccontextmanager
async def serve(stats: Stats) -> AsyncIterator[Server]:
    async with serve_app(make_app(stats)) as port:
        yield Server(URL(f"http://127.0.0.1:{port}"), stats, URL(f"http://127.0.0.2:{port}"))


# --- the fault server -------------------------------------------------------------------

#: Bytes per write to the socket, so that a fault can strike between pieces.
PIECE = 64 << 10

#: The first Last-Modified date handed out; each new version of a file is an hour later.
_EPOCH = 1_700_000_000


@dataclass
class Version:
    """One version of a file: its bytes and the validators that describe them."""

    data: bytes
    number: int

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'

    @property
    def last_modified(self) -> str:
        return formatdate(_EPOCH + 3600 * self.number, usegmt=True)


@dataclass
class Hit:
    """One request the fault server received, and what it did about it."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    range: str | None
    if_range: str | None
    if_none_match: str | None
    headers: dict[str, str]
    step: str
    peer: str = ""  # the client's address: a proxy's outgoing one, through a proxy
    status: int = 0
    body_sent: int = 0
    version: int = 0

    @property
    def range_bounds(self) -> tuple[int, int | None] | None:
        """(N, M) of a `Range: bytes=N-M` request header (M None if open), None without one."""
        if self.range is None or not self.range.startswith("bytes="):
            return None
        first, _, last = self.range[len("bytes=") :].partition("-")
        return int(first), int(last) if last else None

    @property
    def range_start(self) -> int | None:
        """N of a `Range: bytes=N-...` request header, None without one."""
        if self.range is None or not self.range.startswith("bytes="):
            return None
        return int(self.range[len("bytes=") :].split("-", 1)[0])


def parse_range(header: str | None, length: int) -> tuple[int, int] | str | None:
    """A single `bytes=N-` / `bytes=N-M` / `bytes=-S` range as `(start, stop)`; "unsatisfiable"
    when it starts at or past the end; None when absent, malformed or a multi-range (ignored,
    as RFC 9110 allows)."""
    if header is None or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[len("bytes=") :].strip().partition("-")
    if not sep:
        return None
    try:
        if not first:  # a suffix: the last S bytes
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return max(0, length - suffix), length
        start = int(first)
        stop = length if not last else min(length, int(last) + 1)
    except ValueError:
        return None
    if start < 0 or (last and stop <= start):
        return None
    if start >= length:
        return "unsatisfiable"
    return start, stop


def _retry_after(value: str) -> str:
    if value.startswith("date"):
        return formatdate(time.time() + float(value[len("date") :]), usegmt=True)
    return value


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _cut_point(n: int, body: int) -> int:
    """Where a cut after `n` bytes strikes a body of `body` bytes: always before its end."""
    return n if n < body else body // 2


class FaultServer:
    """The fault-injecting file server; see the module docstring."""

    def __init__(self) -> None:
        self.base = URL("http://127.0.0.1")
        self.alt_base = URL("http://127.0.0.2")
        self.log: list[Hit] = []
        self._versions: dict[str, Version] = {}
        self._plans: dict[str, deque[str]] = {}
        self.active = 0
        self.peak = 0

    # --- the test's side ------------------------------------------------------------------

    def url(self, path: str, **query: object) -> str:
        """The URL of `path` on 127.0.0.1, with `query` as its query string."""
        return self._url(self.base, path, query)

    def alt_url(self, path: str, **query: object) -> str:
        """The URL of `path` on 127.0.0.2: the same server, seen as another host."""
        return self._url(self.alt_base, path, query)

    @staticmethod
    def _url(base: URL, path: str, query: Mapping[str, object]) -> str:
        url = base.with_path(path)
        if query:
            url = url.with_query({k: str(v) for k, v in query.items()})
        return str(url)

    def plan(self, path: str, steps: Iterable[str]) -> None:
        """Script the next requests to `path`, one step each (see the module docstring)."""
        self._plans[path] = deque(steps)

    def set_content(self, path: str, data: bytes) -> None:
        """Replace the file at `path`: a new version with a new ETag and Last-Modified."""
        old = self._versions.get(path)
        self._versions[path] = Version(data, 1 if old is None else old.number + 1)

    def content(self, path: str, size: int = 1024) -> bytes:
        """The file's current bytes (made from `size`, like a request would, if none yet)."""
        return self._version(path, size).data

    def etag(self, path: str, size: int = 1024) -> str:
        return self._version(path, size).etag

    def last_modified(self, path: str, size: int = 1024) -> str:
        return self._version(path, size).last_modified

    def hits(self, path: str) -> list[Hit]:
        """The logged requests for `path`, in order."""
        return [hit for hit in self.log if hit.path == path]

    def _version(self, path: str, size: int) -> Version:
        version = self._versions.get(path)
        if version is None:
            name = path.rstrip("/").rsplit("/", 1)[-1]
            version = self._versions[path] = Version(payload(name, size), 0)
        return version

    def _change(self, path: str, size: int) -> None:
        old = self._version(path, size)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        number = old.number + 1
        # A new length too, so that a splice of old and new could not even have the right size.
        new_size = max(1, len(old.data) + 997 * number % 4001 - 2000)
        self._versions[path] = Version(payload(f"{name}~v{number}", new_size), number)

    # --- the server's side ----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self._answer(request)
        finally:
            self.active -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        plan = self._plans.get(request.path)
        step = plan.popleft() if plan else "ok"
        hit = Hit(
            method=request.method,
            host=request.host,
            path=request.path,
            query=dict(request.query),
            range=request.headers.get("Range"),
            if_range=request.headers.get("If-Range"),
            if_none_match=request.headers.get("If-None-Match"),
            headers=dict(request.headers),
            step=step,
            peer=request.remote or "",
        )
        self.log.append(hit)
        size = int(request.query.get("size", "1024"))
        if step.startswith("change+"):
            self._change(request.path, size)
            step = step[len("change+") :]
        kind, *args = step.split(":")
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "status":
            return self._status(request, hit, int(args[0]), args[1] if len(args) > 1 else None)
        if request.path.startswith("/loop/"):
            return self._redirect(hit, 302, str(request.rel_url))
        if request.path.startswith("/r/"):
            to = request.query.get("to", "/")
            return self._redirect(hit, int(request.query.get("status", "302")), to)
        if not request.path.startswith("/f/"):
            return self._status(request, hit, 404, None)
        return await self._file(request, hit, kind, args, size)

    def _status(
        self, request: web.Request, hit: Hit, status: int, retry_after: str | None
    ) -> web.Response:
        headers = CIMultiDict[str]()
        if retry_after is not None:
            headers["Retry-After"] = _retry_after(retry_after)
        if status == 416:
            size = int(request.query.get("size", "1024"))
            headers["Content-Range"] = f"bytes */{len(self.content(request.path, size))}"
        hit.status = status
        return web.Response(status=status, text=f"status {status}\n", headers=headers)

    @staticmethod
    def _redirect(hit: Hit, status: int, to: str) -> web.Response:
        hit.status = status
        return web.Response(status=status, headers={"Location": to})

    async def _file(
        self, request: web.Request, hit: Hit, kind: str, args: Sequence[str], size: int
    ) -> web.StreamResponse:
        version = self._version(request.path, size)
        hit.version = version.number
        data = version.data
        query = request.query
        headers = self._file_headers(query, version)
        validators = query.get("validators", "both")

        status, start, stop = 200, 0, len(data)
        wanted = None
        if query.get("ranges") != "none" and kind != "ignore_range":
            if_range = request.headers.get("If-Range")
            if if_range is None or (
                (validators in ("both", "etag") and if_range == version.etag)
                or (validators in ("both", "lm") and if_range == version.last_modified)
            ):
                wanted = parse_range(request.headers.get("Range"), len(data))
        if wanted == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{len(data)}"
            hit.status = 416
            return web.Response(status=416, headers=headers)
        if isinstance(wanted, tuple):
            status, (start, stop) = 206, wanted
            if kind == "bad_range":
                shift = int(args[0]) if args else 1000
                moved = start + shift if start + shift < len(data) else max(0, start - shift)
                if moved == start:
                    moved = (start + 1) % len(data)
                start, stop = moved, len(data)
            if query.get("ranges") == "open":
                stop = len(data)  # a bounded range answered to the end, as some servers do
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        body = data[start:stop]
        self._digest_headers(query, headers, data, body)

        response = web.StreamResponse(status=status, headers=headers)
        if kind == "announce":
            response.content_length = int(args[0])
        elif query.get("chunked") == "1":
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        hit.status = status
        await response.prepare(request)

        limit = len(body)
        if kind in ("cut_after", "reset_after", "pause_after"):
            limit = _cut_point(int(args[0]), len(body))
        piece, delay = PIECE, 0.0
        if kind == "drip":
            piece, delay = int(args[0]), float(args[1])
        if kind == "announce":
            await asyncio.sleep(0.3)
        for offset in range(0, limit, piece):
            if delay:
                await asyncio.sleep(delay)
            chunk = body[offset : min(limit, offset + piece)]
            await response.write(chunk)
            hit.body_sent += len(chunk)

        transport = request.transport
        if kind == "pause_after":
            await asyncio.sleep(3600)
        if kind in ("cut_after", "announce") and transport is not None:
            transport.close()  # flushes what is buffered, then FIN
        elif kind == "reset_after" and transport is not None:
            await _flush(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            await response.write_eof()
        return response

    @staticmethod
    def _file_headers(query: Mapping[str, str], version: Version) -> CIMultiDict[str]:
        headers = CIMultiDict[str]({"Content-Type": "application/octet-stream"})
        validators = query.get("validators", "both")
        if validators in ("both", "etag"):
            headers["ETag"] = version.etag
        if validators == "weak":
            headers["ETag"] = "W/" + version.etag
        if validators in ("both", "lm"):
            headers["Last-Modified"] = version.last_modified
        if query.get("ranges") != "none":
            headers["Accept-Ranges"] = "bytes"
        if "encoding" in query:
            headers["Content-Encoding"] = query["encoding"]
        if "cd" in query:
            headers["Content-Disposition"] = query["cd"]
        return headers

    @staticmethod
    def _digest_headers(
        query: Mapping[str, str], headers: CIMultiDict[str], data: bytes, body: bytes
    ) -> None:
        kinds = [k for k in query.get("digest", "").split(",") if k]
        if query.get("bad_digest") == "1":
            data, body = data + b"!", body + b"!"
        for kind in kinds:
            if kind == "content":  # RFC 9530: of the content of this message (a 206's part)
                headers["Content-Digest"] = f"sha-256=:{_b64(hashlib.sha256(body).digest())}:"
            elif kind == "repr":  # RFC 9530: of the whole representation
                headers["Repr-Digest"] = f"sha-256=:{_b64(hashlib.sha256(data).digest())}:"
            elif kind == "legacy":  # RFC 3230: the instance, whole
                headers["Digest"] = f"SHA-256={_b64(hashlib.sha256(data).digest())}"
            else:
                raise ValueError(f"unknown digest kind {kind!r}")


async def _flush(transport: asyncio.BaseTransport) -> None:
    """Wait until asyncio has handed everything buffered to the kernel (at most a second)."""
    assert isinstance(transport, asyncio.WriteTransport)
    deadline = time.monotonic() + 1.0
    while transport.get_write_buffer_size() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


@contextlib.asynccontextmanager
async def serve_faults() -> AsyncIterator[FaultServer]:
    """Run a `FaultServer` on 127.0.0.1 and 127.0.0.2 (one port) until the block ends."""
    server = FaultServer()
    async with serve_app(server.app()) as port:
        server.base = URL(f"http://127.0.0.1:{port}")
        server.alt_base = URL(f"http://127.0.0.2:{port}")
        yield server


# --- the raw socket server ----------------------------------------------------------------


@dataclass(frozen=True)
class RawReply:
    """Exact bytes to send, and what to do after: "close" (FIN), "reset" (RST) or "hang"."""

    data: bytes
    then: str = "close"


def raw_response(
    status: str = "200 OK",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    close: bool = True,
) -> bytes:
    """An HTTP/1.1 response, byte for byte as given: no header is added or checked, except
    `Connection: close` (unless `close=False`) so that the client does not reuse the
    connection."""
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class RawServer:
    """A socket server answering `/raw/<name>` with the bytes scripted for `name`."""

    port: int = 0
    log: list[tuple[str, bytes]] = field(default_factory=list)
    _scripts: dict[str, deque[RawReply]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/raw/{name}"

    def script(self, name: str, *replies: bytes | RawReply) -> None:
        """Answer the next requests for `name` with `replies`, in order; the last one repeats."""
        self._scripts[name] = deque(r if isinstance(r, RawReply) else RawReply(r) for r in replies)

    def hits(self, name: str) -> int:
        return sum(1 for hit, _ in self.log if hit == name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("latin-1")
            name = target.split("?", 1)[0].rsplit("/", 1)[-1]
            self.log.append((name, head))
            script = self._scripts.get(name)
            if not script:
                reply = RawReply(raw_response("404 Not Found", [("Content-Length", "0")]))
            elif len(script) > 1:
                reply = script.popleft()
            else:
                reply = script[0]
            writer.write(reply.data)
            await writer.drain()
            if reply.then == "hang":
                # Until the server stops: a cancelled handler would make asyncio log an error.
                await self._closing.wait()
            elif reply.then == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        self._closing.set()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)


@contextlib.asynccontextmanager
async def serve_raw() -> AsyncIterator[RawServer]:
    raw_server = RawServer()
    listener = await asyncio.start_server(raw_server.handle, "127.0.0.1", 0)
    raw_server.port = listener.sockets[0].getsockname()[1]
    try:
        yield raw_server
    finally:
        listener.close()
        await raw_server.stop()
        await listener.wait_closed()


def gzipped(data: bytes) -> bytes:
    """`data` gzip-compressed, reproducibly."""
    return gzip.compress(data, mtime=0)
