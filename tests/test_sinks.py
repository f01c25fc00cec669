"""Every writer puts the same bytes on disk; the sink protocol takes writes at offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path

import pytest

from adownload import (
    AiofilesSink,
    Downloader,
    FileSink,
    GeneratorSink,
    MemorySink,
    Request,
    Sink,
    SinkOpener,
)

from .servers import Server
from .support import listing, payload

SIZE = 3 * 1024 * 1024 + 12345  # several FileSink blocks and a ragged end

WRITERS: list[SinkOpener] = [FileSink.open, AiofilesSink.open, GeneratorSink.open]


@pytest.mark.parametrize("writer", WRITERS, ids=["FileSink", "AiofilesSink", "GeneratorSink"])
async def test_each_file_writer_saves_identical_bytes(
    server: Server, dest: Path, writer: SinkOpener
) -> None:
    urls = [server("/files/big.bin", size=SIZE), server("/chunked/small.bin", size=10)]
    async with Downloader(dest=dest, writer=writer) as dl:
        outcomes = await dl.download_many(urls)
    assert [o.ok for o in outcomes] == [True, True]
    assert (dest / "big.bin").read_bytes() == payload("big.bin", SIZE)
    assert (dest / "small.bin").read_bytes() == payload("small.bin", 10)
    assert listing(dest) == ["big.bin", "small.bin"]


@pytest.mark.parametrize("writer", WRITERS, ids=["FileSink", "AiofilesSink", "GeneratorSink"])
async def test_each_file_writer_leaves_nothing_when_cancelled(
    server: Server, dest: Path, writer: SinkOpener
) -> None:
    async with Downloader(dest=dest, writer=writer) as dl:
        task = asyncio.create_task(
            dl.download(server("/stall/s.bin", size=4_000_000, after=2_500_000))
        )
        await asyncio.wait_for(server.stats.started_event("/stall/s.bin").wait(), 10)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert listing(dest) == []


async def test_memory_sink_collects_the_body_and_writes_no_file(server: Server, dest: Path) -> None:
    sink = MemorySink()
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(server("/files/m.bin", size=200_000), sink=sink)
    assert sink.getvalue() == payload("m.bin", 200_000)
    assert sink.closed
    assert outcome.ok
    assert outcome.path is None
    assert outcome.size == 200_000
    assert listing(dest) == []


async def test_a_generator_fed_through_send_gets_every_chunk(server: Server, dest: Path) -> None:
    received: list[bytes] = []

    def collector() -> Generator[None, bytes | None, None]:
        while (chunk := (yield)) is not None:
            received.append(chunk)

    async with Downloader(dest=dest) as dl:
        await dl.download_many(
            [Request(server("/files/g.bin", size=500_000), sink=GeneratorSink(collector()))]
        )
    assert b"".join(received) == payload("g.bin", 500_000)


async def test_generator_sink_refuses_writes_out_of_order() -> None:
    def collector() -> Generator[None, bytes | None, None]:
        while (yield) is not None:
            pass

    sink = GeneratorSink(collector())
    await sink.write_at(0, b"abc")
    with pytest.raises(ValueError, match="sequential"):
        await sink.write_at(10, b"def")
    await sink.close()


async def test_file_sink_writes_at_offsets_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    sink = await FileSink.open(path)
    big = b"x" * (FileSink.block_size + 7)
    await sink.write_at(5, b"world")
    await sink.write_at(0, b"hello")
    await sink.write_at(10, big)
    await sink.close()
    assert path.read_bytes() == b"helloworld" + big


async def test_file_sink_continues_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(b"first-")
    sink = await FileSink.open(path, existing=True)
    await sink.write_at(6, b"second")
    await sink.close()
    assert path.read_bytes() == b"first-second"


async def test_file_sink_refuses_to_create_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "f.part").symlink_to(victim)
    with pytest.raises(FileExistsError):
        await FileSink.open(tmp_path / "f.part")
    with pytest.raises(OSError, match="link"):
        await FileSink.open(tmp_path / "f.part", existing=True)
    assert victim.read_bytes() == b"precious"


async def test_memory_sink_takes_writes_at_offsets() -> None:
    sink = MemorySink()
    await sink.write_at(3, b"def")
    await sink.write_at(0, b"abc")
    assert sink.getvalue() == b"abcdef"
    assert len(sink) == 6


async def test_builtin_sinks_satisfy_the_protocol(tmp_path: Path) -> None:
    def writer() -> Generator[None, bytes | None, None]:
        while (yield) is not None:
            pass

    assert isinstance(MemorySink(), Sink)
    assert isinstance(GeneratorSink(writer()), Sink)
    sink = await FileSink.open(tmp_path / "x")
    assert isinstance(sink, Sink)
    await sink.close()
