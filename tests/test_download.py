"""Downloading files: bytes on disk, outcomes, concurrency, order and failures."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import pytest

import adownload
from adownload import Downloader, HTTPStatusError, Item, Limits, Outcome, Request, Retry

from .servers import Server
from .support import json_body, listing, payload


async def test_download_writes_the_exact_bytes_and_reports_them(server: Server, dest: Path) -> None:
    url = server("/files/a.zip", size=300_000)
    async with Downloader() as dl:
        outcome = await dl.download(url, dest=f"{dest}/")

    assert (dest / "a.zip").read_bytes() == payload("a.zip", 300_000)
    assert listing(dest) == ["a.zip"]  # no .part left behind
    assert outcome.ok
    assert outcome.error is None
    assert not outcome.skipped
    assert outcome.url == url
    assert outcome.path == dest / "a.zip"
    assert outcome.status == 200
    assert outcome.size == 300_000
    assert outcome.final_url == url


async def test_dest_that_is_not_a_directory_is_the_exact_file_path(
    server: Server, dest: Path
) -> None:
    async with Downloader() as dl:
        outcome = await dl.download(server("/files/a.zip"), dest=dest / "sub" / "renamed.bin")
    assert outcome.path == dest / "sub" / "renamed.bin"
    assert listing(dest) == ["sub", "sub/renamed.bin"]
    assert outcome.path.read_bytes() == payload("a.zip", 1024)


async def test_downloader_dest_is_the_default_directory(server: Server, dest: Path) -> None:
    async with Downloader(dest=dest / "new") as dl:
        await dl.download(server("/files/a.zip"))
        await dl.download_many([server("/files/b.zip")])
    assert listing(dest) == ["new", "new/a.zip", "new/b.zip"]


async def test_body_without_content_length_is_streamed_whole(server: Server, dest: Path) -> None:
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(server("/chunked/big.bin", size=3_000_000))
    assert (dest / "big.bin").read_bytes() == payload("big.bin", 3_000_000)
    assert outcome.size == 3_000_000


async def test_404_raises_a_status_error_and_creates_no_file(server: Server, dest: Path) -> None:
    url = server("/status/404/missing.zip")
    async with Downloader(dest=dest) as dl:
        with pytest.raises(HTTPStatusError) as caught:
            await dl.download(url)
    assert caught.value.status == 404
    assert caught.value.url == url
    assert "404" in str(caught.value)
    assert listing(dest) == []


async def test_download_many_returns_outcomes_in_input_order_next_to_failures(
    server: Server, dest: Path
) -> None:
    urls = [
        server("/slow/first.bin", delay=0.2, parts=2),
        server("/status/404/missing.bin"),
        server("/files/third.bin"),
        server("/status/500/broken.bin"),
        server("/files/fifth.bin", size=0),
    ]
    fast = Retry(attempts=3, backoff=0.01)
    async with Downloader(dest=dest, retry=fast) as dl:
        outcomes = await dl.download_many(urls)

    assert [o.url for o in outcomes] == urls
    # 500 is worth retrying, 404 is not.
    assert [o.attempts for o in outcomes] == [1, 1, 1, 3, 1]
    assert [o.ok for o in outcomes] == [True, False, True, False, True]
    assert [o.status for o in outcomes] == [200, 404, 200, 500, 200]
    assert isinstance(outcomes[1].error, HTTPStatusError)
    assert outcomes[1].error.status == 404
    assert isinstance(outcomes[3].error, HTTPStatusError)
    assert outcomes[3].error.status == 500
    assert outcomes[1].path == dest / "missing.bin"  # where it would have gone
    assert listing(dest) == ["fifth.bin", "first.bin", "third.bin"]
    assert (dest / "fifth.bin").read_bytes() == b""
    assert (dest / "first.bin").read_bytes() == payload("first.bin", 1024)


async def test_downloads_overlap_up_to_the_limit(server: Server, dest: Path) -> None:
    # Each file takes >= 0.6 s on the server: 6 at once take about one file's time.
    urls = [server(f"/slow/{i}.bin", delay=0.2, parts=3) for i in range(6)]
    async with Downloader(dest=dest, limits=Limits(max_transfers=6, max_per_host=6)) as dl:
        outcomes = await dl.download_many(urls)
    assert all(o.ok for o in outcomes)
    # Counted at the server, not timed: all six were in flight at once.
    assert server.stats.peak == 6


async def test_total_limit_is_never_exceeded(server: Server, dest: Path) -> None:
    urls = [server(f"/slow/{i}.bin", delay=0.05, parts=2) for i in range(10)]
    async with Downloader(dest=dest, limits=Limits(max_transfers=3, max_per_host=10)) as dl:
        outcomes = await dl.download_many(urls)
    assert all(o.ok for o in outcomes)
    assert server.stats.peak == 3


async def test_per_host_limit_holds_while_other_hosts_proceed(server: Server, dest: Path) -> None:
    one = [server(f"/slow/a{i}.bin", delay=0.1, parts=2) for i in range(6)]
    other = [
        str(server.alt_url.with_path(f"/slow/b{i}.bin").with_query(delay=0.1, parts=2))
        for i in range(3)
    ]
    async with Downloader(dest=dest, limits=Limits(max_transfers=8, max_per_host=2)) as dl:
        outcomes = await dl.download_many(one + other)
    assert all(o.ok for o in outcomes)
    # Two on each host at once, never more; the second host is not held up by the first.
    assert server.stats.peak == 4


async def test_limits_also_bound_separate_download_calls(server: Server, dest: Path) -> None:
    urls = [server(f"/slow/{i}.bin", delay=0.05, parts=2) for i in range(6)]
    async with Downloader(dest=dest, limits=Limits(max_transfers=2)) as dl:
        await asyncio.gather(*(dl.download(url) for url in urls))
    assert server.stats.peak == 2


async def test_as_completed_yields_each_outcome_as_it_finishes(server: Server, dest: Path) -> None:
    urls = [server("/slow/late.bin", delay=0.3, parts=2), server("/files/early.bin")]
    async with Downloader(dest=dest) as dl:
        seen = [outcome.url async for outcome in dl.as_completed(urls)]
    assert seen == [urls[1], urls[0]]
    assert listing(dest) == ["early.bin", "late.bin"]


async def test_as_completed_pulls_items_lazily_from_a_generator(server: Server, dest: Path) -> None:
    pulled = 0

    def endless() -> itertools.count[int]:
        return itertools.count()

    def urls():
        nonlocal pulled
        for i in endless():
            pulled += 1
            yield server(f"/files/{i}.bin", size=10)

    limits = Limits(max_transfers=2, max_per_host=2)
    taken: list[Outcome] = []
    async with Downloader(dest=dest, limits=limits) as dl:
        stream = dl.as_completed(urls())
        async for outcome in stream:
            taken.append(outcome)
            if len(taken) == 5:
                break
        await stream.aclose()
    assert all(o.ok for o in taken)
    # Workers (2) + finished outcomes waiting in the queue (2) + the 5 taken, at most.
    assert 5 <= pulled <= 5 + 2 + 2 + 1


async def test_as_completed_accepts_an_async_iterable(server: Server, dest: Path) -> None:
    async def urls():
        for name in ["x.bin", "y.bin", "z.bin"]:
            await asyncio.sleep(0)
            yield server(f"/files/{name}")

    async with Downloader(dest=dest) as dl:
        outcomes = [o async for o in dl.as_completed(urls())]
    assert sorted(o.path.name for o in outcomes if o.path) == ["x.bin", "y.bin", "z.bin"]


async def test_request_objects_carry_path_and_headers(server: Server, dest: Path) -> None:
    items: list[Item] = [
        Request(server("/headers/h.json"), dest / "custom" / "h.json", headers={"X-Token": "t1"}),
        server("/files/plain.bin"),
    ]
    async with Downloader(dest=dest, headers={"X-Global": "g"}) as dl:
        outcomes = await dl.download_many(items)
    assert [o.ok for o in outcomes] == [True, True]
    sent = json_body(dest / "custom" / "h.json")
    assert sent["X-Token"] == "t1"
    assert sent["X-Global"] == "g"
    assert sent["Accept-Encoding"] == "identity"
    assert sent["User-Agent"].startswith("adownload/")
    assert (dest / "plain.bin").exists()


async def test_gzip_content_encoding_is_saved_undecoded(server: Server, dest: Path) -> None:
    import gzip

    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(server("/gzip/docs.tar.gz", size=50_000))
    saved = (dest / "docs.tar.gz").read_bytes()
    assert gzip.decompress(saved) == payload("docs.tar.gz", 50_000)
    assert outcome.size == len(saved)


async def test_file_is_named_after_the_url_asked_for_not_the_redirect(
    server: Server, dest: Path
) -> None:
    url = server("/go/asked.zip", to="/files/target.zip")
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(url)
    assert listing(dest) == ["asked.zip"]
    assert (dest / "asked.zip").read_bytes() == payload("target.zip", 1024)
    assert outcome.final_url is not None
    assert outcome.final_url.endswith("/files/target.zip")


async def test_borrowed_session_is_used_and_left_open(server: Server, dest: Path) -> None:
    async with aiohttp.ClientSession() as session:
        async with Downloader(session=session, dest=dest) as dl:
            await dl.download(server("/files/a.bin"))
        assert not session.closed
        async with session.get(server("/files/b.bin")) as response:
            assert response.status == 200
    assert (dest / "a.bin").exists()


async def test_borrowed_session_with_decompression_still_saves_raw_bytes(
    server: Server, dest: Path
) -> None:
    session = aiohttp.ClientSession(auto_decompress=True, raise_for_status=True)
    async with session, Downloader(session=session, dest=dest) as dl:
        await dl.download(server("/gzip/raw.gz", size=1000))
        with pytest.raises(HTTPStatusError):
            await dl.download(server("/status/404/x"))
    assert (dest / "raw.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_package_exposes_the_documented_names() -> None:
    for name in ["Downloader", "Request", "Outcome", "download", "download_many", "Limits"]:
        assert hasattr(adownload, name)
