"""The engine on an in-memory exchange of scripted answers (`scripted.py`): the transfer, the
receiver, the segments, verify and commit, against answers no socket carries. Each test checks
the bytes on disk, the files that must not exist, what was asked, and what the caller sees."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from yarl import URL

from adownload import (
    ChecksumMismatchError,
    IncompleteBodyError,
    Limits,
    Request,
    Retry,
    Segments,
    SizeLimitError,
)
from adownload._protocols.base import Plan

from .scripted import Reply, engine, part, whole
from .support import listing, payload

URL_ = URL("http://scripted.invalid/data.bin")
DATA = payload("data.bin", 300_000)
FAST = Retry(attempts=3, backoff=0, jitter=0)


async def test_a_whole_body_lands_at_its_final_name_and_nothing_else(tmp_path: Path) -> None:
    with engine(tmp_path, lambda plan: whole(URL_, DATA)) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert outcome.path == tmp_path / "data.bin"
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert listing(tmp_path) == ["data.bin"]  # no .part, no state
    assert (outcome.size, outcome.attempts, outcome.resumed_from) == (len(DATA), 1, 0)
    assert [plan.offset for plan in run.exchange.plans] == [0]


async def test_a_body_that_breaks_off_is_resumed_from_its_last_byte(tmp_path: Path) -> None:
    half = len(DATA) // 2

    def reply(plan: Plan) -> Reply:
        if plan.offset == 0:
            broken = whole(URL_, DATA)
            broken.chunks, broken.broken = [DATA[:half]], True
            return broken
        return part(URL_, DATA, plan.offset, None)

    with engine(tmp_path, reply, retry=FAST) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert listing(tmp_path) == ["data.bin"]
    assert (outcome.attempts, outcome.resumed_from) == (2, half)
    first, second = run.exchange.plans
    assert (first.offset, second.offset, second.if_range) == (0, half, '"v1"')


async def test_a_file_that_changed_under_a_resume_starts_over(tmp_path: Path) -> None:
    half = len(DATA) // 2
    new = payload("data-v2.bin", len(DATA))

    def reply(plan: Plan) -> Reply:
        if plan.offset == 0 and not run.exchange.plans[:-1]:
            broken = whole(URL_, DATA)
            broken.chunks, broken.broken = [DATA[:half]], True
            return broken
        # If-Range did its job: the whole new version, not a range of it.
        return whole(URL_, new, etag='"v2"')

    with engine(tmp_path, reply, retry=FAST) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert (tmp_path / "data.bin").read_bytes() == new  # never spliced onto the old half
    assert outcome.etag == '"v2"'
    assert listing(tmp_path) == ["data.bin"]


async def test_a_checksum_mismatch_leaves_nothing_behind(tmp_path: Path) -> None:
    wrong = "sha256:" + hashlib.sha256(b"another file").hexdigest()
    with engine(tmp_path, lambda plan: whole(URL_, DATA), retry=FAST) as run:
        outcome = await run.run(Request(str(URL_), checksum=wrong))
    assert isinstance(outcome.error, ChecksumMismatchError)
    assert listing(tmp_path) == []  # no file, no part kept for resuming a wrong file
    assert outcome.attempts == 1  # a mismatch is not retried


@pytest.mark.parametrize("count", [2, 4])
async def test_a_segmented_body_is_assembled_from_its_ranges(tmp_path: Path, count: int) -> None:
    def reply(plan: Plan) -> Reply:
        return part(URL_, DATA, plan.offset, plan.stop) if plan.ranged else whole(URL_, DATA)

    segments = Segments(count=count, min_size=32 << 10)
    limits = Limits(max_transfers=4, max_per_host=count)
    with engine(tmp_path, reply, segments=segments, limits=limits) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert listing(tmp_path) == ["data.bin"]
    ranged = [plan for plan in run.exchange.plans if plan.ranged]
    assert len(ranged) == count - 1  # the first answer is the first segment
    assert all(plan.if_range == '"v1"' for plan in ranged)


async def test_a_server_that_ignores_ranges_is_not_asked_for_segments_again(
    tmp_path: Path,
) -> None:
    def reply(plan: Plan) -> Reply:
        return whole(URL_, DATA)  # a 200 to every range: the same file, whole

    segments = Segments(count=4, min_size=32 << 10)
    with engine(tmp_path, reply, segments=segments, retry=FAST) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert listing(tmp_path) == ["data.bin"]
    # The fact it learnt: the last request asks for no range of this URL.
    assert not run.exchange.plans[-1].ranged


async def test_a_404_fails_with_nothing_on_disk(tmp_path: Path) -> None:
    with engine(tmp_path, lambda plan: Reply(status=404), retry=FAST) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.error is not None
    assert outcome.status == 404
    assert listing(tmp_path) == []
    assert len(run.exchange.plans) == 1  # a 404 is not retried


async def test_a_503_is_retried_and_the_second_answer_saved(tmp_path: Path) -> None:
    def reply(plan: Plan) -> Reply:
        return Reply(status=503) if len(run.exchange.plans) == 1 else whole(URL_, DATA)

    with engine(tmp_path, reply, retry=FAST) as run:
        outcome = await run.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert listing(tmp_path) == ["data.bin"]
    assert outcome.attempts == 2


async def test_a_mirror_serves_the_file_its_url_does_not(tmp_path: Path) -> None:
    mirror = URL("http://mirror.invalid/pub/data.bin")

    def reply(plan: Plan) -> Reply:
        return whole(mirror, DATA) if plan.url == mirror else Reply(status=404)

    with engine(tmp_path, reply, retry=FAST) as run:
        outcome = await run.run(Request(str(URL_), mirrors=[str(mirror)]))
    assert outcome.ok, outcome.error
    assert outcome.path == tmp_path / "data.bin"  # named after the request's URL
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert [plan.url for plan in run.exchange.plans] == [URL_, mirror]


async def test_a_file_over_the_size_limit_is_refused_before_a_byte_is_written(
    tmp_path: Path,
) -> None:
    with engine(tmp_path, lambda plan: whole(URL_, DATA), max_size=1000) as run:
        outcome = await run.run(Request(str(URL_)))
    assert isinstance(outcome.error, SizeLimitError)
    assert listing(tmp_path) == []


async def test_a_body_longer_than_announced_is_never_saved(tmp_path: Path) -> None:
    def reply(plan: Plan) -> Reply:
        answer = whole(URL_, DATA)
        answer.chunks = [DATA, b"one byte too many"]  # more than the announced length
        return answer

    with engine(tmp_path, reply, retry=FAST) as run:
        outcome = await run.run(Request(str(URL_)))
    assert isinstance(outcome.error, IncompleteBodyError)
    assert "received 300017 bytes" in str(outcome.error)
    assert "more than the 300000 announced" in str(outcome.error)
    assert outcome.attempts == 3  # retried, as a broken body is
    assert not (tmp_path / "data.bin").exists()
    # The part kept is longer than the file: the next run never takes it as complete nor
    # continues it, but fetches the file from its first byte.
    assert listing(tmp_path) == ["data.bin.part", "data.bin.part.state"]
    with engine(tmp_path, lambda plan: whole(URL_, DATA), retry=FAST) as again:
        outcome = await again.run(Request(str(URL_)))
    assert outcome.ok, outcome.error
    assert (tmp_path / "data.bin").read_bytes() == DATA
    assert listing(tmp_path) == ["data.bin"]
    assert [plan.offset for plan in again.exchange.plans] == [0]
