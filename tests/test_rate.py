"""`Limits.rate`: one byte rate for all transfers of a downloader together.

Only lower bounds on time: the machine is shared, so a download may always be slower than the
limit, never faster.
"""

from __future__ import annotations

import time
from pathlib import Path

from adownload import Downloader, Limits, Segments

from .servers import FaultServer
from .support import listing, payload

RATE = 6_000_000  # bytes per second
#: The bucket lets a twentieth of a second's worth through at once.
BURST = RATE // 20


async def test_one_download_is_held_to_the_rate(faults: FaultServer, dest: Path) -> None:
    size = 3_000_000
    async with Downloader(dest=dest, limits=Limits(rate=RATE)) as dl:
        started = time.monotonic()
        await dl.download(faults.url("/f/a.bin", size=size))
        elapsed = time.monotonic() - started

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert elapsed >= (size - BURST) / RATE * 0.97


async def test_the_rate_is_shared_by_all_transfers(faults: FaultServer, dest: Path) -> None:
    size = 1_000_000
    names = [f"{n}.bin" for n in range(3)]
    limits = Limits(rate=RATE, max_transfers=3, max_per_host=3)
    async with Downloader(dest=dest, limits=limits) as dl:
        started = time.monotonic()
        outcomes = await dl.download_many(faults.url(f"/f/{name}", size=size) for name in names)
        elapsed = time.monotonic() - started

    assert all(outcome.ok for outcome in outcomes)
    assert listing(dest) == names
    for name in names:
        assert (dest / name).read_bytes() == payload(name, size)
    # Three files at once, each one third of the rate: as long as one file of 3 MB.
    assert elapsed >= (3 * size - BURST) / RATE * 0.97


async def test_the_segments_of_a_file_share_the_rate(faults: FaultServer, dest: Path) -> None:
    size = 3_000_000
    limits = Limits(rate=RATE, max_per_host=4)
    segments = Segments(count=4, min_size=500_000)
    async with Downloader(dest=dest, limits=limits, segments=segments) as dl:
        started = time.monotonic()
        await dl.download(faults.url("/f/a.bin", size=size))
        elapsed = time.monotonic() - started

    assert (dest / "a.bin").read_bytes() == payload("a.bin", size)
    assert len(faults.hits("/f/a.bin")) == 4
    assert elapsed >= (size - BURST) / RATE * 0.97
