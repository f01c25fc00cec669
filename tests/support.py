"""Helpers the tests share: deterministic payloads, quick retry policies, serving an app on
127.0.0.1 (plain, TLS, or on a loop in a thread of its own), the leak checks, and listings.

The test servers themselves are in `servers.py`; the fixtures in `conftest.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from adownload import Retry

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


def adownload_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    leaked = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task is not current and code is not None and "adownload" in code.co_filename:
            leaked.append(task)
    return leaked


def open_files_under(directory: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


async def check_no_leaks() -> None:
    # Let cancelled tasks finish unwinding before looking for leftovers.
    for _ in range(3):
        await asyncio.sleep(0)
    assert adownload_tasks() == [], "adownload tasks leaked"


def listing(directory: Path) -> list[str]:
    """Every entry below `directory`, relative, sorted: what is on disk, nothing more."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def json_body(path: Path) -> dict[str, str]:
    result: dict[str, str] = json.loads(path.read_text())
    return result


def splice_threads() -> list[threading.Thread]:
    """The kernel copy's threads still running, after giving the last ones a moment to return
    (each hands its result to the event loop as its last step)."""
    deadline = time.monotonic() + 2
    while True:
        running = [t for t in threading.enumerate() if t.name == "adownload-splice"]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.005)


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (a child server binds it next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def child_server(command: Callable[[int], list[str]], name: str) -> Iterator[int]:
    """Run the server `command(port)` starts as a child process until it listens on
    127.0.0.1 (another port if one was taken meanwhile); its port. Stopped on exit."""
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        if process.poll() is None:
            break
    else:  # pragma: no cover - five ports taken in a row
        raise RuntimeError(f"{name} did not start")
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def dask_client() -> AsyncIterator[Any]:
    """An asynchronous `distributed.Client` of a real `LocalCluster` of two worker processes
    (one thread each) on 127.0.0.1, closed with the block."""
    from distributed import Client, LocalCluster

    async with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            asynchronous=True,
        ) as cluster,
        Client(cluster, asynchronous=True) as client,
    ):
        yield client
