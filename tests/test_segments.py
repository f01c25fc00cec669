"""Segmented downloads against the fault server (`tests/servers.py`).

Each test checks the bytes on disk, what the server was asked (Range, If-Range) and how much it
sent, and which files must not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from yarl import URL

from adownload import (
    ChecksumMismatchError,
    Downloader,
    Limits,
    Request,
    Retry,
    Segments,
    Timeout,
)
from adownload._disk import state as _state

from . import test_chaos as chaos
from .servers import FaultServer, Hit
from .support import FAST, MIB, listing, payload

# Every test once through the read path and once through the kernel copy (for every body).
pytestmark = pytest.mark.usefixtures("body_path")

#: What a continued segment may fetch again beyond the bytes really missing: one read.
SLACK = 256 << 10
WIDE = Limits(max_transfers=4, max_per_host=16)


def ranged(hits: list[Hit]) -> list[tuple[int, int]]:
    """The `[start, stop)` byte ranges the ranged requests among `hits` asked for."""
    found = []
    for hit in hits:
        bounds = hit.range_bounds
        if bounds is not None:
            start, last = bounds
            assert last is not None, f"a segment asked for an open range: {hit.range}"
            found.append((start, last + 1))
    return sorted(found)


async def test_a_large_file_is_fetched_over_several_connections_that_tile_it(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    segments = Segments(count=4, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=size))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    assert outcome.ok
    assert outcome.size == size
    first, *others = faults.hits("/f/a.bin")
    assert first.range is None
    assert len(others) == 3
    assert all(hit.status == 206 for hit in others)
    assert all(hit.if_range == faults.etag("/f/a.bin", size) for hit in others)
    # The first response's own segment, then one ranged request for each further piece: they
    # tile the file, without a gap or an overlap.
    pieces = [(0, MIB), *ranged(others)]
    assert pieces == [(0, MIB), (MIB, 2 * MIB), (2 * MIB, 3 * MIB), (3 * MIB, 4 * MIB)]


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ({"ranges": "none"}, "no ranges"),
        ({"validators": "none"}, "no validators"),
        ({"validators": "weak"}, "only a weak ETag"),
        ({"chunked": "1"}, "no length"),
    ],
)
async def test_a_file_falls_back_to_one_stream(
    faults: FaultServer, dest: Path, query: dict[str, str], why: str
) -> None:
    size = 4 * MIB
    segments = Segments(count=4, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments) as dl:
        await dl.download(faults.url("/f/a.bin", size=size, **query))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    assert [hit.range for hit in faults.hits("/f/a.bin")] == [None], why


async def test_a_small_file_is_one_stream(faults: FaultServer, dest: Path) -> None:
    size = 2 * MIB - 1  # under twice the minimum segment
    async with Downloader(dest=dest, limits=WIDE, segments=Segments(min_size=MIB)) as dl:
        await dl.download(faults.url("/f/a.bin", size=size))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert [hit.range for hit in faults.hits("/f/a.bin")] == [None]


async def test_a_request_overrides_the_downloaders_segments(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    split = Segments(count=4, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=Segments(count=1)) as dl:
        await dl.download(Request(faults.url("/f/split.bin", size=size), segments=split))
    async with Downloader(dest=dest, limits=WIDE, segments=split) as dl:
        await dl.download(Request(faults.url("/f/whole.bin", size=size), segments=Segments(1)))

    assert (dest / "split.bin").read_bytes() == payload("split.bin", size)
    assert (dest / "whole.bin").read_bytes() == payload("whole.bin", size)
    assert len(faults.hits("/f/split.bin")) == 4
    assert [hit.range for hit in faults.hits("/f/whole.bin")] == [None]


async def test_a_broken_segment_continues_from_its_last_written_byte(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    cut = 500_000
    # The first GET, then the second segment (bytes 2 MiB-4 MiB) breaks off after `cut` bytes.
    faults.plan("/f/a.bin", ["ok", f"cut_after:{cut}", "ok"])
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments, retry=FAST) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=size))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    first, broken, again = faults.hits("/f/a.bin")
    assert first.range is None
    assert broken.range == f"bytes={2 * MIB}-{size - 1}"
    assert broken.body_sent == cut
    bounds = again.range_bounds
    assert bounds is not None
    start, last = bounds
    assert 2 * MIB + cut - SLACK <= start <= 2 * MIB + cut
    assert last == size - 1
    assert again.if_range == faults.etag("/f/a.bin", size)
    assert outcome.attempts == 2


async def test_an_idle_connection_takes_over_half_of_the_slowest_segment(
    faults: FaultServer, dest: Path
) -> None:
    size = 8 * MIB
    # The second segment (4 MiB-8 MiB) crawls; the first connection, done with its own four
    # MiB, takes over the second half of what the slow one has left.
    faults.plan("/f/a.bin", ["ok", "drip:65536:0.03"])
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments) as dl:
        await dl.download(faults.url("/f/a.bin", size=size))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    _first, slow, *taken = faults.hits("/f/a.bin")
    assert slow.range == f"bytes={4 * MIB}-{size - 1}"
    assert taken, "no connection took work over from the slow segment"
    start, last = taken[0].range_bounds or (0, None)
    assert 4 * MIB + 1 * MIB <= start < size - MIB
    assert last == size - 1
    # The slow connection stopped where its segment was cut: it sent about half of its range.
    assert slow.body_sent < start - 4 * MIB + SLACK * 4


@pytest.mark.parametrize("step", ["bad_range", "ignore_range"])
async def test_a_segment_answer_that_does_not_match_is_never_spliced(
    faults: FaultServer, dest: Path, step: str
) -> None:
    size = 4 * MIB
    faults.plan("/f/a.bin", ["ok", step])
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments, retry=FAST) as dl:
        await dl.download(faults.url("/f/a.bin", size=size))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    hits = faults.hits("/f/a.bin")
    if step == "ignore_range":
        # The server sends whole files for ranges: one stream, from the first byte.
        assert hits[-1].range is None
        assert hits[-1].body_sent == size
    else:
        # Only its bounded ranges are off: one stream continues from the first hole, with an
        # open-ended range, and the bytes written before it are kept.
        start, last = hits[-1].range_bounds or (0, 0)
        assert start > 0
        assert last is None
        assert hits[-1].body_sent == size - start


async def test_a_file_that_changes_during_a_segmented_download_is_fetched_anew(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    # The second segment's request meets a new version: If-Range makes the server send it
    # whole, and the download starts over instead of mixing two versions.
    faults.plan("/f/a.bin", ["ok", "change+ok"])
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments, retry=FAST) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=size))

    new = faults.content("/f/a.bin")
    assert new != payload("a.bin", size)
    assert (dest / "a.bin").read_bytes() == new
    assert outcome.size == len(new)
    assert listing(dest) == ["a.bin"]
    hits = faults.hits("/f/a.bin")
    assert hits[1].if_range == hits[0].headers.get("If-Range") or hits[1].if_range is not None
    assert hits[1].status == 200  # If-Range did not match
    assert any(hit.range is None and hit.version == 1 for hit in hits[2:])


async def test_a_cancelled_segmented_download_resumes_only_its_missing_ranges(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    stop = 300_000
    path = "/f/a.bin"
    url = faults.url(path, size=size)
    # The first connection goes silent after `stop` bytes; the second segment completes.
    faults.plan(path, [f"pause_after:{stop}", "ok"])
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments, retry=FAST) as dl:
        task = asyncio.create_task(dl.download(url))
        while not (  # noqa: ASYNC110 (polls the server's counts)
            len(faults.hits(path)) == 2
            and faults.hits(path)[0].body_sent == stop
            and faults.hits(path)[1].body_sent == 2 * MIB
        ):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not (dest / "a.bin").exists()
    state = json.loads((dest / "a.bin.part.state").read_text())
    assert state["sparse"] is True
    done = [tuple(r) for r in state["ranges"]]
    assert done[-1] == (2 * MIB, size)
    assert done[0][0] == 0
    assert stop - SLACK <= done[0][1] <= stop

    before = len(faults.log)
    async with Downloader(dest=dest, limits=WIDE, segments=segments, retry=FAST) as dl:
        outcome = await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    again = faults.log[before:]
    # Only the hole between the two done ranges, and nothing else.
    assert [hit.range for hit in again] == [f"bytes={done[0][1]}-{2 * MIB - 1}"]
    assert sum(hit.body_sent for hit in again) == 2 * MIB - done[0][1]
    assert outcome.resumed_from == size - (2 * MIB - done[0][1])


CHILD = """
import asyncio, sys
import adownload

async def main():
    segments = adownload.Segments(count=2, min_size=1 << 20)
    limits = adownload.Limits(max_per_host=4)
    retry = adownload.Retry(attempts=1)
    async with adownload.Downloader(
        dest=sys.argv[2], segments=segments, limits=limits, retry=retry
    ) as dl:
        outcome = await dl.download(sys.argv[1])
    print(outcome.resumed_from)

asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_a_killed_segmented_download_resumes_only_its_missing_ranges(
    threaded_faults: FaultServer, dest: Path
) -> None:
    faults = threaded_faults
    size = 4 * MIB
    # Past one 1 MiB block of the sink: that much is written, the rest is in its buffer.
    stop = 3 * MIB // 2
    path = "/f/big.bin"
    faults.plan(path, [f"pause_after:{stop}", "ok"])
    url = faults.url(path, size=size)
    state_file = dest / "big.bin.part.state"
    command = [sys.executable, "-c", CHILD, url, str(dest)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done: list[tuple[int, int]] = []
    try:
        deadline = time.monotonic() + 60
        # The state is saved about once a second while segments run.
        while child.poll() is None and time.monotonic() < deadline:
            if state_file.exists():
                with contextlib.suppress(ValueError):
                    done = [tuple(r) for r in json.loads(state_file.read_text())["ranges"]]
                if len(done) == 2 and done[0][0] == 0 and done[1] == (2 * MIB, size):
                    break
            time.sleep(0.05)
        assert child.poll() is None, child.communicate()[1]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    # A kill loses what was still in a buffer: the state records written bytes only (the first
    # answer, 4 MiB, goes through the kernel copy, which writes as it receives).
    done = [tuple(r) for r in json.loads(state_file.read_text())["ranges"]]
    assert len(done) == 2
    assert done[1] == (2 * MIB, size)
    written = done[0][1]
    assert done[0][0] == 0
    assert MIB <= written <= stop
    assert not (dest / "big.bin").exists()

    before = len(faults.log)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert (dest / "big.bin").read_bytes() == payload("big.bin", size)
    assert listing(dest) == ["big.bin"]
    again = faults.log[before:]
    assert [hit.range for hit in again] == [f"bytes={written}-{2 * MIB - 1}"]
    assert sum(hit.body_sent for hit in again) == 2 * MIB - written
    assert rerun.stdout.split() == [str(size - (2 * MIB - written))]


async def test_max_per_host_caps_the_connections_of_segments(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    # Slow answers, so that the connections overlap.
    faults.plan("/f/a.bin", ["drip:131072:0.01"] * 40)
    limits = Limits(max_transfers=4, max_per_host=2)
    segments = Segments(count=8, min_size=256 << 10)
    async with Downloader(dest=dest, limits=limits, segments=segments) as dl:
        await dl.download(faults.url("/f/a.bin", size=size))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert faults.peak == 2
    assert len(faults.hits("/f/a.bin")) > 2


async def test_segments_of_an_expired_redirect_target_resolve_the_original_url_again(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    target = faults.url("/f/a.bin", size=size)
    # The signed URL works for the first GET, then says 403: ask the original URL anew.
    faults.plan("/f/a.bin", ["ok", "status:403", "ok"])
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments) as dl:
        outcome = await dl.download(faults.url("/r/a.bin", to=target))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    assert len(faults.hits("/r/a.bin")) == 2
    statuses = [(hit.range, hit.status) for hit in faults.hits("/f/a.bin")]
    asked = f"bytes={2 * MIB}-{size - 1}"
    assert statuses[:3] == [(None, 200), (asked, 403), (asked, 206)]
    assert outcome.final_url == target


async def test_a_checksum_of_a_segmented_download_is_checked_once_it_is_whole(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    good = "sha256:" + hashlib.sha256(payload("a.bin", size)).hexdigest()
    bad = "sha256:" + "0" * 64
    segments = Segments(count=2, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments) as dl:
        await dl.download(faults.url("/f/a.bin", size=size), checksum=good)
        with pytest.raises(ChecksumMismatchError):
            await dl.download(faults.url("/f/b.bin", size=size), checksum=bad)

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert len(faults.hits("/f/a.bin")) == 2  # segmented all the same
    assert listing(dest) == ["a.bin"]  # nothing of b.bin is kept


def plant_part(
    faults: FaultServer, dest: Path, url: str, size: int, done: list[tuple[int, int]]
) -> None:
    """A segmented `.part` as an earlier run leaves it: `done` written, garbage elsewhere."""
    data = payload("a.bin", size)
    part = bytearray(b"\xee" * size)
    for start, stop in done:
        part[start:stop] = data[start:stop]
    (dest / "a.bin.part").write_bytes(bytes(part))
    state = _state.PartState.of(
        URL(url), size, faults.etag("/f/a.bin", size), faults.last_modified("/f/a.bin", size)
    )
    state.ranges, state.sparse = done, True
    _state.save(dest / "a.bin.part.state", state)


async def test_a_segmented_part_with_holes_fetches_every_hole_and_nothing_else(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    url = faults.url("/f/a.bin", size=size)
    plant_part(faults, dest, url, size, [(0, MIB), (2 * MIB, 3 * MIB)])
    segments = Segments(count=4, min_size=MIB)
    async with Downloader(dest=dest, limits=WIDE, segments=segments) as dl:
        outcome = await dl.download(url)

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    hits = faults.hits("/f/a.bin")
    assert sorted(hit.range or "" for hit in hits) == [
        f"bytes={MIB}-{2 * MIB - 1}",
        f"bytes={3 * MIB}-{size - 1}",
    ]
    assert sum(hit.body_sent for hit in hits) == 2 * MIB
    assert outcome.resumed_from == 2 * MIB


async def test_a_complete_segmented_part_is_confirmed_with_one_byte(
    faults: FaultServer, dest: Path
) -> None:
    size = 4 * MIB
    url = faults.url("/f/a.bin", size=size)
    plant_part(faults, dest, url, size, [(0, size)])
    async with Downloader(dest=dest, limits=WIDE, segments=Segments(min_size=MIB)) as dl:
        await dl.download(url)

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert listing(dest) == ["a.bin"]
    (hit,) = faults.hits("/f/a.bin")
    assert hit.range == f"bytes={size - 1}-{size - 1}"
    assert hit.body_sent == 1


@pytest.mark.timeout(240)
async def test_chaos_with_segments_every_outcome_is_exact_or_an_error_with_no_file(
    faults: FaultServer, dest: Path
) -> None:
    """The seeded chaos run of `test_chaos.py`, with files split into segments of 16 KiB and
    up: the faults now strike segment requests too (ranges answered wrongly or ignored, a file
    that changes under one segment, bodies cut short in the middle of the file)."""
    plans, requests = chaos.chaos_requests(faults, random.Random(chaos.SEED))

    retry = Retry(attempts=chaos.ATTEMPTS, backoff=0.001, max_delay=0.01)
    timeout = Timeout(read=0.5, connect=5)
    segments = Segments(count=3, min_size=16 << 10)
    limits = Limits(max_transfers=16, max_per_host=48)
    async with Downloader(
        dest=dest, retry=retry, timeout=timeout, limits=limits, segments=segments
    ) as dl:
        outcomes = await dl.download_many(requests)

    chaos.check_outcomes(faults, dest, plans, outcomes)
    # Segments were really used: many files were fetched over more than one request.
    split = sum(
        1
        for plan in plans
        if sum(hit.range is not None for hit in faults.hits(plan.path)) >= 2
        and plan.size >= 32 << 10
    )
    assert split > 30
