"""Waste and time limits: bytes already on disk are used, one retry budget holds for files and
segments, `Timeout.read` bounds the wait for an answer, and what `--compressed` asks for it
can decode.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import brotli  # type: ignore[import-untyped]
import pytest
from aiohttp import web

from adownload import (
    ContentDecodingError,
    Downloader,
    HTTPStatusError,
    Limits,
    ReadTimeout,
    Retry,
    Segments,
    Timeout,
)
from adownload._protocols.base import range_answer

from .servers import FaultServer
from .support import MIB, ONCE, listing, payload, serve_app
from .test_segments import plant_part

# --- an open-ended answer to a bounded range ------------------------------------------------


def test_range_answer_takes_an_open_end_that_holds_what_was_asked() -> None:
    assert range_answer("bytes 10-99/100", 90, 10, 49, 100) == (10, 99, 100)
    assert range_answer("bytes 10-49/100", 40, 10, 49, 100) == (10, 49, 100)
    assert range_answer("bytes 10-99/100", None, 10, None, 100) == (10, 99, 100)
    assert range_answer("bytes 10-99/*", None, 10, None, None) == (10, 99, None)
    for refused in [
        ("bytes 11-99/100", 89, 10, 49, 100),  # starts elsewhere
        ("bytes 10-40/100", 31, 10, 49, 100),  # short of what was asked
        ("bytes 10-99/100", 50, 10, 49, 100),  # Content-Length disagrees with the range
        ("bytes 10-99/200", 90, 10, 49, 100),  # another length
        ("bytes 10-99/*", 90, 10, 49, 100),  # a length the server does not know
        ("bytes 10-100/100", 91, 10, None, 100),  # past the end
        ("bytes 10-98/100", 89, 10, None, 100),  # to the end was asked
        ("items 10-99/100", 90, 10, 49, 100),
        (None, 90, 10, 49, 100),
    ]:
        assert range_answer(*refused) is None, refused


async def test_a_part_is_continued_where_bounded_ranges_get_open_ended_answers(
    faults: FaultServer, dest: Path
) -> None:
    size = 8 * MIB
    url = faults.url("/f/a.bin", size=size, ranges="open")
    done = [(0, 2 * MIB), (3 * MIB, 5 * MIB), (6 * MIB, 7 * MIB)]
    plant_part(faults, dest, url, size, done)  # as a run killed midway leaves it
    segments = Segments(count=3, min_size=256 << 10)
    async with Downloader(dest=dest, segments=segments, limits=Limits(max_per_host=8)) as dl:
        outcome = await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    assert outcome.resumed_from == 5 * MIB
    hits = faults.hits("/f/a.bin")
    # Every request asked for a hole; none started over from byte 0.
    assert all(hit.range_bounds is not None for hit in hits)
    holes = [(2 * MIB, 3 * MIB), (5 * MIB, 6 * MIB), (7 * MIB, size)]
    for hit in hits:
        start, _last = hit.range_bounds or (0, None)
        assert any(a <= start < b for a, b in holes), hit.range


# --- one retry budget -------------------------------------------------------------------------


async def test_segment_retries_stop_at_the_retry_budget(faults: FaultServer, dest: Path) -> None:
    size = 4 * MIB
    faults.plan("/f/a.bin", ["ok", *["status:503"] * 60])
    retry = Retry(attempts=30, backoff=0.2, multiplier=1, max_delay=0.2, jitter=0, budget=0.5)
    async with Downloader(
        dest=dest,
        retry=retry,
        segments=Segments(count=2, min_size=MIB),
        limits=Limits(max_per_host=4),
    ) as dl:
        (outcome,) = await dl.download_many([faults.url("/f/a.bin", size=size)])
    assert isinstance(outcome.error, HTTPStatusError)
    assert outcome.error.status == 503
    refused = [hit for hit in faults.hits("/f/a.bin") if hit.status == 503]
    # 0.5 s of budget at 0.2 s a wait: a few retries per connection, not 30.
    assert 1 <= len(refused) <= 8
    assert not (dest / "a.bin").exists()


# --- Timeout.read and the wait for the headers --------------------------------------------------


@pytest.fixture
async def late_server() -> AsyncIterator[str]:
    """Answers every request after 3 seconds."""

    async def late(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_get("/{name}", late)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_timeout_read_bounds_the_wait_for_the_response(late_server: str, dest: Path) -> None:
    async with Downloader(dest=dest, retry=ONCE, timeout=Timeout(connect=10, read=0.5)) as dl:
        with pytest.raises(ReadTimeout) as caught:
            await dl.download(f"{late_server}/a.bin")
    assert caught.value.seconds == 0.5
    assert caught.value.phase == "read"
    assert "0.5s" in str(caught.value)
    assert listing(dest) == []


# --- decoding what was asked for ------------------------------------------------------------------


@pytest.fixture
async def encoded_server() -> AsyncIterator[tuple[str, list[str]]]:
    """`/{coding}/{name}`: the body encoded as `coding` says (br, or a label it cannot be)."""
    asked: list[str] = []
    data = payload("text", 100_000)

    async def encoded(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Accept-Encoding", ""))
        coding = request.match_info["coding"]
        body = brotli.compress(data) if coding == "br" else data
        return web.Response(body=body, headers={"Content-Encoding": coding.replace("+", ", ")})

    app = web.Application()
    app.router.add_get("/{coding}/{name}", encoded)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}", asked


async def test_compressed_decodes_brotli_and_advertises_only_what_it_decodes(
    encoded_server: tuple[str, list[str]], dest: Path
) -> None:
    base, asked = encoded_server
    async with Downloader(dest=dest, decode_content=True) as dl:
        outcome = await dl.download(f"{base}/br/a.txt")
    assert outcome.ok
    assert (dest / "a.txt").read_bytes() == payload("text", 100_000)
    offered = {c.strip() for c in asked[0].split(",")}
    assert "br" in offered
    assert offered <= {"gzip", "deflate", "br", "zstd"}


@pytest.mark.parametrize("coding", ["xz", "gzip+br", "compress", "gzip"])  # gzip: not gzip data
async def test_an_encoding_that_cannot_be_decoded_fails_at_once_and_saves_nothing(
    encoded_server: tuple[str, list[str]], dest: Path, coding: str
) -> None:
    base, asked = encoded_server
    async with Downloader(dest=dest, decode_content=True) as dl:
        (outcome,) = await dl.download_many([f"{base}/{coding}/a.txt"])
    assert isinstance(outcome.error, ContentDecodingError)
    assert len(asked) == 1  # final: no retry can decode it
    assert listing(dest) == []
