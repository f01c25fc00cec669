"""Retries and resumption against a server that fails on cue (`tests/servers.py`).

Every test scripts the server's faults per request and then checks the bytes on disk, what the
server was asked (Range, If-Range) and how much it had to send again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adownload import (
    Downloader,
    DownloadError,
    DownloadTimeout,
    Event,
    HTTPStatusError,
    IncompleteBodyError,
    RemoteProtocolError,
    Request,
    Retry,
    Retrying,
    StallError,
    StorageError,
    Timeout,
    UnsafePathError,
)

from .servers import FaultServer
from .support import FAST, ONCE, free_port, listing, payload

#: Every test runs with bodies read through Python and copied by the kernel (conftest).
pytestmark = pytest.mark.usefixtures("body_path")

#: Retries that do not slow the suite down.
SIZE = 1_000_000
HALF = SIZE // 2
#: What a resumed transfer may fetch beyond the bytes that were really missing: one chunk.
SLACK = 256 << 10


def retries(events: list[Event]) -> list[Retrying]:
    return [event for event in events if isinstance(event, Retrying)]


# --- bodies that break off ----------------------------------------------------------------


@pytest.mark.parametrize("fault", ["cut_after", "reset_after"])
async def test_a_broken_body_is_retried_from_where_it_stopped(
    faults: FaultServer, dest: Path, fault: str
) -> None:
    faults.plan("/f/a.bin", [f"{fault}:{HALF}", "ok"])
    events: list[Event] = []
    async with Downloader(dest=dest, retry=FAST, on_event=events.append) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))

    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    first, second = faults.hits("/f/a.bin")
    assert first.range is None
    assert first.body_sent == HALF
    start = second.range_start or 0
    if fault == "reset_after":
        # A reset makes the client's kernel drop what it had not yet handed over, so how much
        # of the first half survives is up to timing (all of the sent bytes, or none of them).
        assert 0 <= start <= HALF
    else:
        assert HALF - SLACK <= start <= HALF
    if start:
        assert second.range == f"bytes={start}-"
        assert second.if_range == faults.etag("/f/a.bin")
        assert second.status == 206
    else:
        assert second.range is None
    # The retry fetched exactly what was missing, not the whole file again.
    assert second.body_sent == SIZE - start
    assert outcome.attempts == 2
    assert outcome.resumed_from == start
    [retrying] = retries(events)
    assert retrying.attempt == 1
    assert isinstance(retrying.error, RemoteProtocolError)
    assert retrying.url == outcome.url


async def test_a_body_cut_short_raises_incomplete_body_error_and_keeps_a_resumable_part(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    faults.plan("/f/a.bin", [f"cut_after:{HALF}"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError) as caught:
            await dl.download(url)
    assert caught.value.expected == SIZE
    assert 0 < caught.value.received <= HALF
    assert caught.value.url == url
    assert listing(dest) == ["a.bin.part", "a.bin.part.state"]
    on_disk = (dest / "a.bin.part").stat().st_size
    assert on_disk == caught.value.received
    assert (dest / "a.bin.part").read_bytes() == payload("a.bin", SIZE)[:on_disk]
    state = json.loads((dest / "a.bin.part.state").read_text())
    assert state["url"] == faults.url("/f/a.bin")
    assert state["length"] == SIZE
    assert state["etag"] == faults.etag("/f/a.bin")
    assert state["last_modified"] == faults.last_modified("/f/a.bin")

    # A later run (a new downloader) continues the part.
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    rerun = faults.hits("/f/a.bin")[1]
    assert rerun.range == f"bytes={on_disk}-"
    assert rerun.if_range == faults.etag("/f/a.bin")
    assert rerun.body_sent == SIZE - on_disk
    assert outcome.attempts == 1
    assert outcome.resumed_from == on_disk


async def test_a_clean_download_reports_one_attempt_and_no_resume(
    faults: FaultServer, dest: Path
) -> None:
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (outcome.attempts, outcome.resumed_from, outcome.size) == (1, 0, SIZE)
    assert [hit.range for hit in faults.log] == [None]
    assert listing(dest) == ["a.bin"]


async def test_the_resume_state_holds_no_credentials(faults: FaultServer, dest: Path) -> None:
    with_userinfo = faults.url("/f/a.bin", size=SIZE).replace(
        "http://", "http://alice:pw-in-url-7731@"
    )
    faults.plan("/f/a.bin", [f"cut_after:{HALF}"])
    faults.plan("/f/b.bin", [f"cut_after:{HALF}"])
    async with Downloader(
        dest=dest, retry=ONCE, headers={"Cookie": "session=cookie-value-5521"}
    ) as dl:
        with pytest.raises(IncompleteBodyError) as caught:
            await dl.download(with_userinfo)
        # Neither the error's url nor its message holds the userinfo: the caller's own
        # Request keeps the URL as given.
        assert caught.value.url == faults.url("/f/a.bin", size=SIZE)
        assert "pw-in-url-7731" not in str(caught.value)
        assert "pw-in-url-7731" not in repr(caught.value)
        with pytest.raises(IncompleteBodyError):
            await dl.download(
                faults.url("/f/b.bin", size=SIZE),
                headers={"Authorization": "Bearer token-value-9902"},
            )
    assert faults.hits("/f/b.bin")[0].headers["Authorization"] == "Bearer token-value-9902"
    for name in ["a.bin", "b.bin"]:
        text = (dest / f"{name}.part.state").read_text()
        for secret in ["alice", "pw-in-url-7731", "cookie-value-5521", "token-value-9902"]:
            assert secret not in text
        assert json.loads(text)["url"] == faults.url(f"/f/{name}")


@pytest.mark.parametrize(
    ("validators", "if_range"),
    [("both", "etag"), ("etag", "etag"), ("lm", "date"), ("weak", None), ("none", None)],
)
async def test_a_retry_resumes_only_when_if_range_can_protect_it(
    faults: FaultServer, dest: Path, validators: str, if_range: str | None
) -> None:
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "ok"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE, validators=validators))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    retry = faults.hits("/f/a.bin")[1]
    if if_range is None:
        # A weak ETag or none at all: a changed file could not be told apart, so start over.
        assert retry.range is None
        assert retry.if_range is None
        assert outcome.resumed_from == 0
    else:
        expected = faults.etag("/f/a.bin") if if_range == "etag" else None
        expected = expected or faults.last_modified("/f/a.bin")
        assert retry.range_start
        assert retry.if_range == expected
        assert outcome.resumed_from == retry.range_start


@pytest.mark.parametrize("validators", ["weak", "none"])
async def test_a_failure_without_validators_keeps_nothing(
    faults: FaultServer, dest: Path, validators: str
) -> None:
    faults.plan("/f/a.bin", [f"cut_after:{HALF}"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError):
            await dl.download(faults.url("/f/a.bin", size=SIZE, validators=validators))
    assert listing(dest) == []


async def test_resume_false_always_starts_over(faults: FaultServer, dest: Path) -> None:
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "ok"])
    async with Downloader(dest=dest, retry=FAST, resume=False) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert [hit.range for hit in faults.log] == [None, None]
    assert outcome.resumed_from == 0


# --- servers that get ranges wrong ----------------------------------------------------------


async def test_a_server_that_ignores_range_makes_the_retry_start_over(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "ignore_range"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    retry = faults.hits("/f/a.bin")[1]
    assert retry.range_start  # it asked for the rest...
    assert (retry.status, retry.body_sent) == (200, SIZE)  # ...and got the whole file
    assert outcome.attempts == 2
    assert outcome.resumed_from == 0


async def test_a_wrong_content_range_is_refused_never_spliced(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    data = payload("a.bin", SIZE)
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "bad_range"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError):
            await dl.download(url)
        with pytest.raises(RemoteProtocolError) as caught:
            await dl.download(url)
    assert "Content-Range" in str(caught.value)
    assert not (dest / "a.bin").exists()
    bad = faults.hits("/f/a.bin")[1]
    assert bad.status == 206
    assert bad.range_start
    # Whatever is kept is still a prefix of the file: the misplaced bytes were not written.
    part = dest / "a.bin.part"
    if part.exists():
        kept = part.read_bytes()
        assert kept == data[: len(kept)]

    async with Downloader(dest=dest, retry=FAST) as dl:
        await dl.download(url)
    assert (dest / "a.bin").read_bytes() == data
    assert listing(dest) == ["a.bin"]


async def test_a_wrong_content_range_with_retries_still_ends_with_the_right_bytes(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "bad_range", "bad_range"])
    async with Downloader(dest=dest, retry=Retry(attempts=4, backoff=0.01)) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    assert outcome.resumed_from == 0 or faults.log[-1].status == 206


def _complete_part(dest: Path, faults: FaultServer, *, length: int | None) -> None:
    """Leave what a run killed between the last byte and the commit leaves: a whole .part."""
    (dest / "a.bin.part").write_bytes(payload("a.bin", SIZE))
    state_file = dest / "a.bin.part.state"
    state = json.loads(state_file.read_text())
    state["length"] = length
    state["ranges"] = [[0, SIZE]]
    state_file.write_text(json.dumps(state))


@pytest.mark.parametrize("length", [SIZE, None], ids=["length-known", "length-unknown"])
async def test_a_complete_part_is_committed_without_fetching_it_again(
    faults: FaultServer, dest: Path, length: int | None
) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    faults.plan("/f/a.bin", [f"cut_after:{HALF}"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError):
            await dl.download(url)
    _complete_part(dest, faults, length=length)
    before = len(faults.log)

    async with Downloader(dest=dest, retry=ONCE) as dl:
        outcome = await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    asked = faults.log[before:]
    # At most a byte to confirm it is current; with no known length, the server's
    # 416 "bytes */N" says that N bytes are all there is.
    assert sum(hit.body_sent for hit in asked) <= 1
    assert all(hit.if_range == faults.etag("/f/a.bin") for hit in asked)
    if length is None:
        assert [(hit.range, hit.status) for hit in asked] == [(f"bytes={SIZE}-", 416)]
    assert outcome.resumed_from == SIZE


async def test_a_416_that_contradicts_the_part_does_not_leave_a_wrong_file(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "status:416"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(url)
    # `*/SIZE` does not match the half on disk: not complete, so it starts over from zero.
    assert outcome.ok
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    assert faults.log[1].range_start == HALF
    assert faults.log[1].status == 416
    assert faults.log[2].range is None


# --- a file that changes between attempts -------------------------------------------------


async def test_a_file_that_changes_between_attempts_is_fetched_anew_never_spliced(
    faults: FaultServer, dest: Path
) -> None:
    old = faults.content("/f/a.bin", SIZE)
    old_etag = faults.etag("/f/a.bin")
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "change+ok"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    new = faults.content("/f/a.bin")
    assert new != old
    assert len(new) != len(old)
    assert (dest / "a.bin").read_bytes() == new
    assert listing(dest) == ["a.bin"]
    retry = faults.hits("/f/a.bin")[1]
    assert retry.range_start
    assert retry.if_range == old_etag
    assert (retry.status, retry.body_sent) == (200, len(new))
    assert outcome.resumed_from == 0
    assert outcome.size == len(new)


async def test_a_file_that_changes_between_runs_is_fetched_anew_never_spliced(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    faults.plan("/f/a.bin", [f"cut_after:{HALF}"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError):
            await dl.download(url)
    # Same length, other bytes: a splice would even have the right size.
    faults.set_content("/f/a.bin", payload("other.bin", SIZE))
    async with Downloader(dest=dest, retry=ONCE) as dl:
        outcome = await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("other.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    assert faults.log[1].status == 200
    assert outcome.resumed_from == 0


# --- statuses and Retry-After -------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "max_delay", "delay"),
    [
        ("1", 0.05, 0.05),  # the server's wait, capped at max_delay
        ("0", 5.0, 0.0),  # the server's wait, not the computed backoff
        ("date+30", 0.05, 0.05),  # an HTTP date in the future, capped
        ("date-3600", 5.0, 0.0),  # an HTTP date in the past: no wait
    ],
)
async def test_503_with_retry_after_waits_as_told_then_succeeds(
    faults: FaultServer, dest: Path, retry_after: str, max_delay: float, delay: float
) -> None:
    faults.plan("/f/a.bin", [f"status:503:{retry_after}", "ok"])
    events: list[Event] = []
    retry = Retry(attempts=3, backoff=0.01, max_delay=max_delay)
    async with Downloader(dest=dest, retry=retry, on_event=events.append) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert outcome.attempts == 2
    [retrying] = retries(events)
    assert retrying.delay == pytest.approx(delay, abs=0.002)
    assert isinstance(retrying.error, HTTPStatusError)
    assert retrying.error.status == 503


async def test_429_is_retried_with_exponential_backoff(faults: FaultServer, dest: Path) -> None:
    faults.plan("/f/a.bin", ["status:429", "status:429", "ok"])
    events: list[Event] = []
    retry = Retry(attempts=3, backoff=0.01, multiplier=2.0, max_delay=1.0, jitter=0.1)
    async with Downloader(dest=dest, retry=retry, on_event=events.append) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert outcome.attempts == 3
    first, second = retries(events)
    assert (first.attempt, second.attempt) == (1, 2)
    assert 0.01 <= first.delay <= 0.011 + 1e-9
    assert 0.02 <= second.delay <= 0.022 + 1e-9
    assert all(isinstance(e.error, HTTPStatusError) and e.error.status == 429 for e in (first,))


async def test_when_retries_run_out_the_last_status_error_is_raised(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/a.bin", ["status:503:0"] * 5)
    events: list[Event] = []
    async with Downloader(dest=dest, retry=FAST, on_event=events.append) as dl:
        with pytest.raises(HTTPStatusError) as caught:
            await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert caught.value.status == 503
    assert len(faults.log) == 3
    assert [e.attempt for e in retries(events)] == [1, 2]
    assert listing(dest) == []


@pytest.mark.parametrize("status", [400, 403, 404, 410])
async def test_other_client_errors_are_not_retried(
    faults: FaultServer, dest: Path, status: int
) -> None:
    faults.plan("/f/a.bin", [f"status:{status}"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        with pytest.raises(HTTPStatusError) as caught:
            await dl.download(faults.url("/f/a.bin"))
    assert caught.value.status == status
    assert len(faults.log) == 1
    assert listing(dest) == []


async def test_the_retry_budget_bounds_the_time_spent(faults: FaultServer, dest: Path) -> None:
    faults.plan("/f/a.bin", ["status:503"] * 100)
    retry = Retry(attempts=100, backoff=0.1, multiplier=1.0, max_delay=0.1, jitter=0, budget=0.5)
    events: list[Event] = []
    async with Downloader(dest=dest, retry=retry, on_event=events.append) as dl:
        with pytest.raises(HTTPStatusError):
            await dl.download(faults.url("/f/a.bin"))
    # Counted, not timed: the waits it announced stay within the budget, and so do the requests.
    waits = [event.delay for event in events if isinstance(event, Retrying)]
    assert sum(waits) <= 0.5
    assert 2 <= len(faults.log) <= 7
    assert len(waits) == len(faults.log) - 1


async def test_retry_attempts_one_means_no_retry(faults: FaultServer, dest: Path) -> None:
    faults.plan("/f/a.bin", ["status:503:0", "ok"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(HTTPStatusError):
            await dl.download(faults.url("/f/a.bin"))
    assert len(faults.log) == 1


# --- too slow -----------------------------------------------------------------------------


async def test_a_drip_below_the_minimum_speed_raises_stall_error(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/a.bin", ["drip:1000:0.05"])  # 20 kB/s: 50 s for the whole file
    timeout = Timeout(read=10, min_speed=100_000, min_speed_window=0.3)
    async with Downloader(dest=dest, retry=ONCE, timeout=timeout) as dl:
        with pytest.raises(StallError) as caught:
            await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert isinstance(caught.value, DownloadTimeout)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.phase == "speed"
    assert faults.log[0].body_sent < SIZE // 10
    assert not (dest / "a.bin").exists()


async def test_a_stalled_transfer_is_retried_and_resumed(faults: FaultServer, dest: Path) -> None:
    faults.plan("/f/a.bin", ["drip:2000:0.02", "ok"])  # 100 kB/s
    timeout = Timeout(read=10, min_speed=500_000, min_speed_window=0.3)
    events: list[Event] = []
    async with Downloader(dest=dest, retry=FAST, timeout=timeout, on_event=events.append) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    [retrying] = retries(events)
    assert isinstance(retrying.error, StallError)
    dripped, rest = faults.hits("/f/a.bin")
    assert rest.range_start
    assert rest.range_start <= dripped.body_sent
    assert outcome.resumed_from == rest.range_start


# --- mirrors ------------------------------------------------------------------------------


async def test_a_mirror_continues_where_the_first_url_broke_off(
    faults: FaultServer, dest: Path
) -> None:
    primary = faults.url("/f/a.bin", size=SIZE)
    # The same file (same bytes, so the same ETag) on another host.
    mirror = faults.alt_url("/f/mirror/a.bin", size=SIZE)
    faults.plan("/f/a.bin", [f"cut_after:{HALF}", "status:404", "status:404"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(Request(primary, mirrors=[mirror]))
    assert outcome.path == dest / "a.bin"  # named after the URL asked for
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
    [from_mirror] = faults.hits("/f/mirror/a.bin")
    assert from_mirror.host.startswith("127.0.0.2")
    assert from_mirror.range_start
    assert from_mirror.if_range == faults.etag("/f/a.bin")
    assert sum(hit.body_sent for hit in faults.log) <= SIZE + SLACK
    assert outcome.final_url == mirror


async def test_mirrors_are_tried_in_order_when_urls_fail(faults: FaultServer, dest: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/f/a.bin"
    missing = faults.url("/f/missing/a.bin")
    good = faults.url("/f/good/a.bin", size=5000)
    faults.plan("/f/missing/a.bin", ["status:404"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(Request(dead, mirrors=[missing, good]))
    assert outcome.path == dest / "a.bin"
    assert (dest / "a.bin").read_bytes() == payload("a.bin", 5000)
    assert [hit.path for hit in faults.log] == ["/f/missing/a.bin", "/f/good/a.bin"]


async def test_when_every_mirror_fails_the_download_fails_and_leaves_no_file(
    faults: FaultServer, dest: Path
) -> None:
    for path in ["/f/a.bin", "/f/m/a.bin"]:
        faults.plan(path, ["status:404"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        with pytest.raises(DownloadError):
            await dl.download(
                Request(faults.url("/f/a.bin"), mirrors=[faults.alt_url("/f/m/a.bin")])
            )
    assert listing(dest) == []
    assert len(faults.log) == 2


# --- links planted at the .part -----------------------------------------------------------


async def test_a_symlink_planted_at_a_resumable_part_is_not_written_through(
    faults: FaultServer, dest: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious" * 1000)
    (dest / "x.bin.part").symlink_to(victim)
    state = {
        "version": 1,
        "url": faults.url("/f/x.bin"),
        "length": SIZE,
        "etag": faults.etag("/f/x.bin", SIZE),
        "last_modified": faults.last_modified("/f/x.bin", SIZE),
        "ranges": [[0, 8000]],
    }
    (dest / "x.bin.part.state").write_text(json.dumps(state))
    async with Downloader(dest=dest, retry=FAST) as dl:
        try:
            outcome = await dl.download(faults.url("/f/x.bin", size=SIZE))
        except (UnsafePathError, StorageError):
            assert not (dest / "x.bin").exists()
        else:
            assert outcome.resumed_from == 0
            assert (dest / "x.bin").read_bytes() == payload("x.bin", SIZE)
            assert not (dest / "x.bin").is_symlink()
            assert listing(dest) == ["x.bin"]
    assert victim.read_bytes() == b"precious" * 1000
    assert listing(tmp_path) == sorted(
        ["dest", *(f"dest/{n}" for n in listing(dest)), "victim.bin"]
    )


async def test_a_symlink_planted_at_the_state_file_is_not_written_through(
    faults: FaultServer, dest: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text('{"precious": true}')
    (dest / "x.bin.part.state").symlink_to(victim)
    faults.plan("/f/x.bin", [f"cut_after:{HALF}", "ok"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError):
            await dl.download(faults.url("/f/x.bin", size=SIZE))
        assert victim.read_text() == '{"precious": true}'
        await dl.download(faults.url("/f/x.bin", size=SIZE))
    assert victim.read_text() == '{"precious": true}'
    assert (dest / "x.bin").read_bytes() == payload("x.bin", SIZE)


# --- resuming after the process died ------------------------------------------------------

CHILD = """
import asyncio, sys
import adownload

async def main():
    retry = adownload.Retry(attempts=1)
    # One stream: a segmented part has holes (tests/test_segments.py kills one of those).
    one = adownload.Segments(count=1)
    async with adownload.Downloader(dest=sys.argv[2], retry=retry, segments=one) as dl:
        outcome = await dl.download(sys.argv[1])
    print(outcome.attempts, outcome.resumed_from)

asyncio.run(main())
"""


@pytest.mark.timeout(120)
def test_a_download_killed_midway_resumes_from_the_bytes_on_disk(
    threaded_faults: FaultServer, dest: Path
) -> None:
    faults = threaded_faults
    size = 8 << 20
    # Three quarters, then silence: the child has written at least half when it is killed.
    faults.plan("/f/big.bin", [f"pause_after:{size * 3 // 4}", "ok"])
    url = faults.url("/f/big.bin", size=size)
    part = dest / "big.bin.part"
    command = [sys.executable, "-c", CHILD, url, str(dest)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            if part.exists() and part.stat().st_size >= size // 2:
                break
            time.sleep(0.01)
        assert child.poll() is None, child.communicate()[1]
        assert part.stat().st_size >= size // 2, "the .part never reached half the file"
        time.sleep(0.3)  # the server is silent now: let the child settle its files
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    on_disk = part.stat().st_size
    assert not (dest / "big.bin").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    assert (dest / "big.bin").read_bytes() == payload("big.bin", size)
    assert listing(dest) == ["big.bin"]
    _, second = faults.hits("/f/big.bin")
    start = second.range_start
    assert start is not None
    assert on_disk - SLACK <= start <= on_disk
    assert second.if_range == faults.etag("/f/big.bin")
    assert second.body_sent <= size - on_disk + SLACK
    assert rerun.stdout.split() == ["1", str(start)]


async def test_a_download_cancelled_midway_by_the_caller_is_resumable_later(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    faults.plan("/f/a.bin", [f"pause_after:{HALF}"])
    async with Downloader(dest=dest, retry=FAST) as dl:
        task = asyncio.create_task(dl.download(url))
        while not faults.log or faults.log[0].body_sent < HALF:  # noqa: ASYNC110 (polls a count)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not (dest / "a.bin").exists()
    async with Downloader(dest=dest, retry=FAST) as dl:
        await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
    assert listing(dest) == ["a.bin"]
