"""Cancellation and time limits: nothing truncated left behind, errors a caller can catch."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from pathlib import Path

import pytest

from adownload import (
    ConnectTimeout,
    Downloader,
    DownloadTimeout,
    Item,
    Limits,
    ReadTimeout,
    Request,
    Timeout,
    TotalTimeout,
)

from .servers import Server
from .support import ONCE, listing, payload

#: Every test runs with bodies read through Python and copied by the kernel (conftest).
pytestmark = pytest.mark.usefixtures("body_path")

# Time limits are tested on their own here; retries after them are tested with the resilience.


async def _wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), timeout=10)


async def test_cancelling_download_many_cancels_every_transfer_and_cleans_up(
    server: Server, dest: Path
) -> None:
    stalls = [server(f"/stall/{i}.bin", after=200_000) for i in range(3)]
    (dest / "0.bin").write_bytes(b"old file")  # must survive untouched
    async with Downloader(dest=dest, existing=__import__("adownload").Existing.OVERWRITE) as dl:
        task = asyncio.create_task(dl.download_many(stalls))
        for i in range(3):
            await _wait_for(server.stats.started_event(f"/stall/{i}.bin"))
        # The bytes are on their way to the .part files.
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert listing(dest) == ["0.bin"]
    assert (dest / "0.bin").read_bytes() == b"old file"
    await asyncio.sleep(0.05)
    assert sorted(server.stats.disconnects) == sorted(f"/stall/{i}.bin" for i in range(3))


async def test_cancelling_one_download_leaves_the_others_running(
    server: Server, dest: Path
) -> None:
    async with Downloader(dest=dest) as dl:
        doomed = asyncio.create_task(dl.download(server("/stall/doomed.bin")))
        survivor = asyncio.create_task(
            dl.download(server("/slow/survivor.bin", delay=0.1, parts=3))
        )
        await _wait_for(server.stats.started_event("/stall/doomed.bin"))
        doomed.cancel()
        outcome = await survivor
        with pytest.raises(asyncio.CancelledError):
            await doomed
    assert outcome.ok
    assert listing(dest) == ["survivor.bin"]
    assert (dest / "survivor.bin").read_bytes() == payload("survivor.bin", 1024)


async def test_cancelling_the_consumer_of_as_completed_stops_its_transfers(
    server: Server, dest: Path
) -> None:
    urls = [server("/files/quick.bin"), server("/stall/a.bin"), server("/stall/b.bin")]
    got = []

    async def consume() -> None:
        async with Downloader(dest=dest) as dl:
            async for outcome in dl.as_completed(urls):
                got.append(outcome)

    task = asyncio.create_task(consume())
    await _wait_for(server.stats.started_event("/stall/a.bin"))
    await _wait_for(server.stats.started_event("/stall/b.bin"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [o.url for o in got] == [urls[0]]
    assert listing(dest) == ["quick.bin"]


async def test_leaving_as_completed_early_stops_the_rest(server: Server, dest: Path) -> None:
    urls = [server("/files/quick.bin"), server("/stall/a.bin")]
    async with Downloader(dest=dest) as dl:
        async with aclosing(dl.as_completed(urls)) as stream:
            async for outcome in stream:
                assert outcome.ok
                break
        await asyncio.sleep(0.05)
        assert server.stats.disconnects == ["/stall/a.bin"]
    assert listing(dest) == ["quick.bin"]


async def test_closing_the_downloader_stops_an_abandoned_as_completed(
    server: Server, dest: Path
) -> None:
    async with Downloader(dest=dest) as dl:
        stream = dl.as_completed([server("/stall/a.bin")])
        pending = asyncio.ensure_future(anext(stream))
        await _wait_for(server.stats.started_event("/stall/a.bin"))
    with pytest.raises(RuntimeError, match="closed during as_completed"):
        await pending
    assert listing(dest) == []


async def test_read_timeout_when_the_body_stalls(server: Server, dest: Path) -> None:
    async with Downloader(dest=dest, timeout=Timeout(read=0.3), retry=ONCE) as dl:
        # Caught `read` seconds into the silence, not after the 30 s connect grace on top.
        with pytest.raises(ReadTimeout) as caught:
            async with asyncio.timeout(10):
                await dl.download(server("/stall/s.bin", after=5000))
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, DownloadTimeout)
    assert error.phase == "read"
    assert error.seconds == 0.3
    assert listing(dest) == []


async def test_read_timeout_when_the_headers_never_come(server: Server, dest: Path) -> None:
    async with Downloader(dest=dest, timeout=Timeout(read=0.3), retry=ONCE) as dl:
        outcomes = await dl.download_many([server("/hang/h.bin"), server("/files/ok.bin")])
    assert isinstance(outcomes[0].error, ReadTimeout)
    assert outcomes[1].ok
    assert listing(dest) == ["ok.bin"]


async def test_total_timeout_even_while_bytes_keep_coming(server: Server, dest: Path) -> None:
    slow = server("/slow/drip.bin", delay=0.2, parts=10)
    async with Downloader(dest=dest, timeout=Timeout(read=5, total=0.5), retry=ONCE) as dl:
        with pytest.raises(TotalTimeout) as caught:
            await dl.download(slow)
    assert caught.value.phase == "total"
    assert caught.value.seconds == 0.5
    assert isinstance(caught.value, TimeoutError)
    assert listing(dest) == []


async def test_connect_timeout(blackhole: str, dest: Path) -> None:
    async with Downloader(dest=dest, timeout=Timeout(connect=0.3), retry=ONCE) as dl:
        with pytest.raises(ConnectTimeout) as caught:
            await dl.download(blackhole)
    assert caught.value.phase == "connect"
    assert isinstance(caught.value, TimeoutError)
    assert listing(dest) == []


async def test_per_item_timeout_overrides_the_downloader(server: Server, dest: Path) -> None:
    items: list[Item] = [
        Request(server("/stall/short.bin"), timeout=Timeout(read=0.2)),
        server("/slow/normal.bin", delay=0.3, parts=2),
    ]
    async with Downloader(dest=dest, timeout=Timeout(read=2), retry=ONCE) as dl:
        outcomes = await dl.download_many(items)
    assert isinstance(outcomes[0].error, ReadTimeout)
    assert outcomes[1].ok
    assert listing(dest) == ["normal.bin"]


async def test_asyncio_timeout_around_a_call_raises_timeout_error_and_cleans_up(
    server: Server, dest: Path
) -> None:
    async with Downloader(dest=dest, limits=Limits(max_transfers=4)) as dl:
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.3):
                await dl.download_many([server("/stall/a.bin"), server("/files/b.bin")])
        assert not isinstance(caught.value, DownloadTimeout)
        # The downloader is still usable afterwards.
        outcome = await dl.download(server("/files/c.bin"))
    assert outcome.ok
    assert listing(dest) == ["b.bin", "c.bin"]
