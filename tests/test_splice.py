"""The kernel copy (`adownload._protocols.splice`): when it is taken, and that it keeps every
promise.

The resilience, hostile-server, cancellation and chaos suites already run every test through
both body paths (the `body_path` fixture). The tests here check what only this path has: which
bodies take it, its thread, its progress reports, and falling back when the socket is TLS.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adownload import (
    Downloader,
    Event,
    Limits,
    Progress,
    ReadTimeout,
    Request,
    Retry,
    Segments,
    Timeout,
)
from adownload._protocols import splice as _splice

from .servers import FaultServer
from .support import listing, payload, serve_app, serve_tls, splice_threads

pytestmark = pytest.mark.skipif(not _splice.available, reason="os.splice is Linux only")

BIG = _splice.SPLICE_MIN + 1_000_000
HALF = BIG // 2


async def test_a_large_plain_body_is_copied_by_the_kernel(
    faults: FaultServer, dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    urls = [faults.url(f"/f/{name}", size=BIG) for name in ("a.bin", "b.bin")]
    async with Downloader(dest=dest) as dl:
        outcomes = await dl.download_many(urls)
    assert all(outcome.ok for outcome in outcomes)
    assert [outcome.size for outcome in outcomes] == [BIG, BIG]
    assert (dest / "a.bin").read_bytes() == payload("a.bin", BIG)
    assert (dest / "b.bin").read_bytes() == payload("b.bin", BIG)
    assert listing(dest) == ["a.bin", "b.bin"]
    assert len(copies) == 2
    # aiohttp had part of each body buffered already; the kernel moved the rest.
    assert all(0 < copy.position == BIG for copy in copies)


@pytest.mark.parametrize(
    ("why", "size", "options", "checksum"),
    [
        ("below SPLICE_MIN", _splice.SPLICE_MIN - 1, {}, False),
        ("turned off", BIG, {"splice": False}, False),
        ("a checksum needs the bytes", BIG, {}, True),
        ("a rate limit paces the bytes", BIG, {"limits": Limits(rate=1 << 40)}, False),
        ("min_speed counts the bytes", BIG, {"timeout": Timeout(min_speed=1)}, False),
    ],
)
async def test_bodies_that_need_python_take_the_read_path(
    faults: FaultServer,
    dest: Path,
    copies: list[_splice.SpliceCopy],
    why: str,
    size: int,
    options: dict[str, Any],
    checksum: bool,
) -> None:
    data = payload("a.bin", size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest() if checksum else None
    async with Downloader(dest=dest, **options) as dl:
        await dl.download(Request(faults.url("/f/a.bin", size=size), checksum=digest))
    assert (dest / "a.bin").read_bytes() == data
    assert copies == [], why


async def test_progress_events_arrive_while_the_kernel_copies(
    faults: FaultServer, dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    # Pieces of 512 KiB, 30 ms apart: the copy takes about 0.3 s, several progress intervals.
    faults.plan("/f/a.bin", [f"drip:{512 << 10}:0.03"])
    events: list[Event] = []
    async with Downloader(dest=dest, on_event=events.append) as dl:
        await dl.download(faults.url("/f/a.bin", size=BIG))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", BIG)
    assert len(copies) == 1
    progress = [event.received for event in events if isinstance(event, Progress)]
    assert len(progress) >= 3
    assert progress == sorted(progress)
    assert progress[-1] == BIG


async def test_a_stalled_copy_times_out_and_keeps_exactly_what_arrived(
    faults: FaultServer, dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    faults.plan("/f/a.bin", [f"pause_after:{HALF}"])
    url = faults.url("/f/a.bin", size=BIG)
    async with Downloader(dest=dest, retry=Retry(attempts=1), timeout=Timeout(read=0.3)) as dl:
        with pytest.raises(ReadTimeout):
            await dl.download(url)
    assert len(copies) == 1
    assert listing(dest) == ["a.bin.part", "a.bin.part.state"]
    # Everything the server sent before going silent reached the part, and nothing else.
    assert (dest / "a.bin.part").read_bytes() == payload("a.bin", BIG)[:HALF]

    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(url)
    assert outcome.resumed_from == HALF
    assert faults.hits("/f/a.bin")[1].range == f"bytes={HALF}-"
    assert (dest / "a.bin").read_bytes() == payload("a.bin", BIG)
    assert listing(dest) == ["a.bin"]


async def test_cancelling_during_the_copy_stops_its_thread_and_keeps_a_resumable_part(
    faults: FaultServer, dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    faults.plan("/f/a.bin", [f"pause_after:{HALF}"])
    url = faults.url("/f/a.bin", size=BIG)
    async with Downloader(dest=dest) as dl:
        task = asyncio.create_task(dl.download(url))
        while not copies or copies[0].position < HALF:  # noqa: ASYNC110 (polls a count)
            await asyncio.sleep(0.01)
        assert [t.name for t in threading.enumerate()].count("adownload-splice") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert splice_threads() == []
    assert (dest / "a.bin.part").read_bytes() == payload("a.bin", BIG)[:HALF]
    assert not (dest / "a.bin").exists()


@pytest.fixture
async def https_files(
    tls_certificate: tuple[Path, Path],
) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """An https server for `/{name}?size=N` (the test payload); and a context trusting it."""
    async with serve_tls(_files_app(), tls_certificate) as served:
        yield served


def _files_app() -> web.Application:
    """`/{name}?size=N`: the test payload, with a Content-Length, and nothing else."""

    async def serve_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.Response(body=payload(name, int(request.query["size"])))

    app = web.Application()
    app.router.add_get("/{name}", serve_file)
    return app


async def test_a_tls_body_is_read_through_python(
    https_files: tuple[str, ssl.SSLContext], dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    base, context = https_files
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        Downloader(dest=dest, session=session) as dl,
    ):
        await dl.download(f"{base}/a.bin?size={BIG}")
    assert (dest / "a.bin").read_bytes() == payload("a.bin", BIG)
    assert copies == []


async def test_a_borrowed_session_keeps_working_after_a_copy_took_one_of_its_connections(
    dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    async with serve_app(_files_app()) as port, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{port}"
        async with Downloader(dest=dest, session=session) as dl:
            await dl.download(f"{base}/a.bin?size={BIG}")
            await dl.download(f"{base}/b.bin?size=1000")
        # The session is the caller's: still open, and its pool still serves requests.
        async with session.get(f"{base}/c.bin?size=10") as response:
            assert await response.read() == payload("c.bin", 10)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", BIG)
    assert (dest / "b.bin").read_bytes() == payload("b.bin", 1000)
    assert len(copies) == 1


async def test_segments_are_copied_by_the_kernel(
    faults: FaultServer, dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    size = 3 * BIG
    url = faults.url("/f/big.bin", size=size)
    segments = Segments(count=3, min_size=1 << 20)
    async with Downloader(dest=dest, segments=segments, limits=Limits(max_per_host=3)) as dl:
        outcome = await dl.download(url)
    assert outcome.ok, outcome.error
    assert (dest / "big.bin").read_bytes() == payload("big.bin", size)
    assert listing(dest) == ["big.bin"]
    # The first answer and the two ranged ones (later splits of under SPLICE_MIN are read).
    assert len(copies) >= 3
    ranged = [hit for hit in faults.log if hit.range is not None]
    assert len(ranged) >= 2


async def test_a_segment_broken_in_its_kernel_copy_goes_on_from_its_last_written_byte(
    faults: FaultServer, dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    size = 2 * BIG
    path = "/f/big.bin"
    # The first answer (the first segment) breaks after 5 MB; the retry asks for the rest.
    faults.plan(path, ["cut_after:5000000", "ok", "ok", "ok"])
    url = faults.url(path, size=size)
    segments = Segments(count=2, min_size=1 << 20)
    retry = Retry(attempts=3, backoff=0, jitter=0)
    async with Downloader(
        dest=dest, segments=segments, limits=Limits(max_per_host=2), retry=retry
    ) as dl:
        outcome = await dl.download(url)
    assert outcome.ok, outcome.error
    assert (dest / "big.bin").read_bytes() == payload("big.bin", size)
    assert listing(dest) == ["big.bin"]
    assert copies
    # Nothing was asked for twice: what the cut sent is kept, and the retry asks from the byte
    # after it. (Counted in what was asked, not in what the server sent: when a finished
    # connection takes half of another's range, the bytes already in the other's socket
    # buffers were sent but are not used, and how many depends on the machine's load.)
    asked = [hit.range for hit in faults.log[1:]]
    starts = sorted(int(value[len("bytes=") :].split("-")[0]) for value in asked if value)
    assert len(starts) == len(asked)  # every later request is a range
    assert faults.log[0].range is None  # the first answer is the first segment, from byte 0
    assert 5_000_000 in starts  # the broken segment goes on from its last written byte
    assert all(start >= 5_000_000 for start in starts)  # nothing before it is asked again
    assert faults.log[0].body_sent == 5_000_000
