"""The public event hook: what an embedding application (and the CLI) sees."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adownload import (
    Downloader,
    Event,
    Finished,
    HTTPStatusError,
    Progress,
    Queued,
    Retry,
    Started,
)

from .servers import Server


async def test_events_tell_the_story_of_each_download(server: Server, dest: Path) -> None:
    events: list[Event] = []
    ok = server("/slow/ok.bin", size=100_000, delay=0.15, parts=4)
    missing = server("/status/404/missing.bin")
    async with Downloader(dest=dest, on_event=events.append) as dl:
        await dl.download_many([ok, missing, "gopher://bad/x"])

    def of(url: str) -> list[Event]:
        return [e for e in events if e.url == url]

    story = of(ok)
    assert type(story[0]) is Queued
    assert type(story[1]) is Started
    assert story[1].path == dest / "ok.bin"
    assert story[1].total == 100_000
    progress = [e for e in story if isinstance(e, Progress)]
    assert progress[-1].received == 100_000
    assert progress[-1].total == 100_000
    # Rate-limited: a handful over ~0.6 s, not one per chunk, and never going backwards.
    assert 2 <= len(progress) <= 10
    assert [p.received for p in progress] == sorted(p.received for p in progress)
    # Each position told once: the last one is not sent a second time at the end.
    assert len({p.received for p in progress}) == len(progress)
    assert type(story[-1]) is Finished
    assert story[-1].outcome.ok

    failed = of(missing)
    assert [type(e) for e in failed] == [Queued, Finished]
    assert isinstance(failed[-1], Finished)
    assert isinstance(failed[-1].outcome.error, HTTPStatusError)

    bad = of("gopher://bad/x")
    assert [type(e) for e in bad] == [Queued, Finished]


async def test_a_small_file_tells_its_last_progress_once(server: Server, dest: Path) -> None:
    events: list[Event] = []
    async with Downloader(dest=dest, on_event=events.append) as dl:
        await dl.download(server("/files/small.bin", size=1000))
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.received for p in progress] == [1000]


async def test_a_single_download_sends_finished_also_when_it_fails(
    server: Server, dest: Path
) -> None:
    events: list[Event] = []
    async with Downloader(dest=dest, on_event=events.append, retry=Retry(attempts=1)) as dl:
        with pytest.raises(HTTPStatusError):
            await dl.download(server("/status/500/x.bin"))
    assert isinstance(events[-1], Finished)
    assert events[-1].outcome.status == 500


async def test_a_skipped_file_finishes_without_starting(server: Server, dest: Path) -> None:
    (dest / "a.bin").write_bytes(b"there")
    events: list[Event] = []
    async with Downloader(dest=dest, on_event=events.append) as dl:
        await dl.download(server("/files/a.bin"))
    assert [type(e) for e in events] == [Queued, Finished]
    assert isinstance(events[-1], Finished)
    assert events[-1].outcome.skipped


async def test_a_hook_that_raises_is_logged_and_the_download_goes_on(
    server: Server, dest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise ValueError("display broke")

    with caplog.at_level(logging.ERROR, logger="adownload"):
        async with Downloader(dest=dest, on_event=broken) as dl:
            outcome = await dl.download(server("/files/a.bin"))
    assert outcome.ok
    assert (dest / "a.bin").exists()
    assert "on_event hook raised" in caplog.text
