"""A real HTTP server on 127.0.0.1 for the tests, with a route table of good and bad behaviour.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web
from yarl import URL

from adownload import Retry, _splice

T = TypeVar("T")


#: Quick retries for tests: three attempts, a few milliseconds apart.
FAST = Retry(attempts=3, backoff=0.01, max_delay=0.05)
#: No retry at all.
ONCE = Retry(attempts=1)
MIB = 1 << 20


@lru_cache(maxsize=256)
def payload(name: str, size: int) -> bytes:
    """The bytes the server sends for file `name` of `size` bytes."""
    return random.Random(f"{name}:{size}").randbytes(size)


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
async def serve_app(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 and 127.0.0.2 (one port, two hosts) until the block ends."""
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port: int = runner.addresses[0][1]
    await web.TCPSite(runner, "127.0.0.2", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_tls(
    app: web.Application, certificate: tuple[Path, Path]
) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """Serve `app` over https on 127.0.0.1 with `certificate` (cert, key) until the block ends:
    its base URL, and a client context that trusts it."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
    port = runner.addresses[0][1]
    try:
        yield f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(cert))
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve(stats: Stats) -> AsyncIterator[Server]:
    async with serve_app(make_app(stats)) as port:
        yield Server(URL(f"http://127.0.0.1:{port}"), stats, URL(f"http://127.0.0.2:{port}"))


def _adownload_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    leaked = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task is not current and code is not None and "adownload" in code.co_filename:
            leaked.append(task)
    return leaked


def _open_files_under(directory: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


@pytest.fixture(params=["read", "splice"])
def body_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per way a body can reach the file: through Python (the read path) and,
    where Linux has splice(2), through the kernel copy for every plain body with a length, however
    small (`adownload._splice`; normally only bodies of 4 MiB or more take it).

    A module opts in with `pytestmark = pytest.mark.usefixtures("body_path")`.
    """
    if request.param == "splice":
        if not _splice.available:
            pytest.skip("no os.splice on this platform")
        monkeypatch.setattr(_splice, "SPLICE_MIN", 1)
    else:
        monkeypatch.setattr(_splice, "SPLICE_MIN", 1 << 62)
    return str(request.param)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """The test server; on teardown, checks that no adownload task or file handle leaked."""
    async with serve(Stats()) as running:
        yield running
        # Let cancelled tasks finish unwinding before looking for leftovers.
        for _ in range(3):
            await asyncio.sleep(0)
        assert _adownload_tasks() == [], "adownload tasks leaked"
    assert _open_files_under(tmp_path) == [], "file handles leaked"


@contextlib.contextmanager
def serve_in_thread(
    serving: Callable[[], contextlib.AbstractAsyncContextManager[T]],
) -> Iterator[T]:
    """Run the server that `serving()` opens on an event loop in a thread of its own.

    For tests whose client blocks (the sync API, a subprocess): the server keeps answering.
    """
    ready: list[T] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with serving() as running:
            ready.append(running)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    started.wait(10)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def threaded_server(tmp_path: Path) -> Iterator[Server]:
    """The same server in a thread of its own, for tests of the blocking API."""
    with serve_in_thread(lambda: serve(Stats())) as running:
        yield running
    assert _open_files_under(tmp_path) == []


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    directory = tmp_path / "dest"
    directory.mkdir()
    return directory


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose TCP connect never completes: a listening socket with a full backlog."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    # Fill the accept queue; further SYNs are dropped and connect() hangs.
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}/x.bin"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def listing(directory: Path) -> list[str]:
    """Every entry below `directory`, relative, sorted: what is on disk, nothing more."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def json_body(path: Path) -> dict[str, str]:
    result: dict[str, str] = json.loads(path.read_text())
    return result


# The fault-injecting servers' fixtures, for every test module. Imported last: faults.py uses
# the helpers above.
from .faults import faults, raw, threaded_faults  # noqa: E402, F401
