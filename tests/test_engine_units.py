"""Pure pieces of the engine, without a socket: planning, judging answers, the segment
decision, the one retry loop, per-request options, the FTP helpers, the existing-file policy
and the mirror's per-file decisions."""

from __future__ import annotations

import asyncio
import doctest
import time
from pathlib import Path

import pytest
from yarl import URL

import adownload._engine.plan
import adownload._mirror.ftp_list
import adownload._mirror.store_list
import adownload._model.names
import adownload._protocols.base
import adownload._protocols.ftp.client
import adownload._protocols.http.answer
from adownload import (
    USE_DEFAULT,
    Existing,
    HTTPStatusError,
    InvalidRequestError,
    Request,
    Retry,
    Segments,
    Timeout,
)
from adownload._disk.state import PartState
from adownload._engine.plan import (
    Judgement,
    Next,
    asked_since,
    continued_problem,
    judge,
    layout_for,
    plan_for,
    segments_for,
)
from adownload._engine.retry import retryable, with_retries
from adownload._model.errors import ConnectError, FTPReplyError, IncompleteBodyError, StorageError
from adownload._model.names import plain_name
from adownload._model.options import Options
from adownload._protocols.base import Answer, Plan, Verdict
from adownload._protocols.ftp.client import mdtm_date

URL_ = URL("http://h/f.bin")
V1 = '"v1"'


def state(**fields: object) -> PartState:
    values: dict[str, object] = {"url": "http://h/f.bin", "length": 100, "etag": V1}
    values.update(fields)
    values.setdefault("last_modified", None)
    return PartState(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "module",
    [
        adownload._protocols.base,
        adownload._engine.plan,
        adownload._protocols.ftp.client,
        adownload._protocols.http.answer,
        adownload._model.names,
        adownload._mirror.store_list,
    ],
)
def test_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted > 0


# --- planning ---------------------------------------------------------------------------------


def test_plans_continue_a_prefix_probe_a_whole_part_and_fill_the_first_hole() -> None:
    assert plan_for(URL_, None, have=0, ranges=True) == Plan(URL_, 0)
    assert plan_for(URL_, state(), have=40, ranges=False) == Plan(URL_, 0)
    assert plan_for(URL_, state(), have=40, ranges=True) == Plan(URL_, 40, if_range=V1, length=100)
    probe = plan_for(URL_, state(), have=100, ranges=True)
    assert (probe.offset, probe.stop, probe.probe) == (99, 99, True)
    sparse = state(sparse=True, ranges=[(0, 10), (50, 60)])
    hole = plan_for(URL_, sparse, have=0, ranges=True)
    assert (hole.offset, hole.stop) == (10, 49)
    tail = plan_for(URL_, state(sparse=True, ranges=[(0, 90)]), have=0, ranges=True)
    assert (tail.offset, tail.stop) == (90, None)


def test_a_part_longer_than_the_file_is_never_complete() -> None:
    # A body that ran past its length left 130 bytes of a 100-byte file: start over.
    assert plan_for(URL_, state(), have=130, ranges=True) == Plan(URL_, 0)
    assert plan_for(URL_, state(), have=101, ranges=True) == Plan(URL_, 0)


def answer(verdict: Verdict, **fields: object) -> Answer:
    return Answer(verdict, URL_, **fields)  # type: ignore[arg-type]


def test_judging_answers_against_the_part() -> None:
    ranged = Plan(URL_, 40, if_range=V1, length=100)
    part = state()
    assert judge(answer(Verdict.WHOLE, length=100), Plan(URL_, 0), None).next is Next.CONTINUE
    whole = judge(answer(Verdict.WHOLE, length=100), ranged, part)
    assert (whole.next, whole.offset, whole.discard) == (Next.CONTINUE, 0, True)
    partial = judge(answer(Verdict.PARTIAL, offset=40, length=100, etag=V1), ranged, part)
    assert (partial.next, partial.offset, partial.length) == (Next.CONTINUE, 40, 100)
    other = answer(Verdict.PARTIAL, offset=40, length=100, etag='"v2"')
    assert judge(other, ranged, part).next is Next.START_OVER
    assert judge(answer(Verdict.BAD_RANGE), ranged, part).next is Next.REFUSE
    end = Plan(URL_, 100, if_range=V1, length=100)
    assert judge(answer(Verdict.END, length=100, etag=V1), end, part).next is Next.COMPLETE
    assert judge(answer(Verdict.END, length=90, etag=V1), end, part).next is Next.START_OVER
    probe = Plan(URL_, 99, probe=True, stop=99, if_range=V1, length=100)
    assert judge(answer(Verdict.END, length=100, etag=V1), probe, part).next is Next.COMPLETE
    assert judge(answer(Verdict.END, length=100, etag='"v2"'), probe, part).next is Next.START_OVER


def test_continuing_a_file_at_its_final_name() -> None:
    # Existing.CONTINUE: only a range from its end, under a checksum, continues the file.
    partial = answer(Verdict.PARTIAL, offset=40, length=100)
    go_on = Judgement(Next.CONTINUE, 40, 100)
    assert continued_problem(partial, go_on, 40, verified=True) is None
    assert "give its checksum" in (continued_problem(partial, go_on, 40, verified=False) or "")
    whole = answer(Verdict.WHOLE, length=100)
    restart = Judgement(Next.CONTINUE, 0, 100, discard=True)
    assert "does not send ranges" in (continued_problem(whole, restart, 40, verified=True) or "")
    short = answer(Verdict.BAD_RANGE, length=30)
    refused = Judgement(Next.REFUSE)
    assert "longer than the server's 30" in (
        continued_problem(short, refused, 40, verified=True) or ""
    )
    assert "does not fit" in (
        continued_problem(answer(Verdict.BAD_RANGE), refused, 40, verified=True) or ""
    )


def test_a_requests_own_if_modified_since() -> None:
    since = "Sun, 01 Dec 2024 00:00:00 GMT"
    assert asked_since(None) is None
    assert asked_since({"if-MODIFIED-since": since}) == since
    assert asked_since({"If-Modified-Since": since, "If-None-Match": '"v1"'}) is None
    assert asked_since({"Accept": "*/*"}) is None


def test_the_segment_decision() -> None:
    segments = Segments(count=4, min_size=10)
    ranged = answer(Verdict.WHOLE, length=100, etag=V1, ranges=True)
    validators = state()
    common = {"offset": 0, "length": 100, "fresh": True, "state": None, "validators": validators}
    plan = Plan(URL_, 0)
    assert segments_for(segments, ranged, plan, splittable=True, **common) == segments  # type: ignore[arg-type]
    assert segments_for(segments, ranged, plan, splittable=False, **common) is None  # type: ignore[arg-type]
    no_ranges = answer(Verdict.WHOLE, length=100, etag=V1)
    assert segments_for(segments, no_ranges, plan, splittable=True, **common) is None  # type: ignore[arg-type]
    small = {**common, "length": 15}
    assert segments_for(segments, ranged, plan, splittable=True, **small) is None  # type: ignore[arg-type]
    weak = {**common, "validators": state(etag='W/"weak"')}
    assert segments_for(segments, ranged, plan, splittable=True, **weak) is None  # type: ignore[arg-type]
    sparse = state(sparse=True, ranges=[(0, 10)])
    holes = {**common, "fresh": False, "state": sparse}
    assert segments_for(segments, no_ranges, plan, splittable=True, **holes) == segments  # type: ignore[arg-type]
    assert layout_for(sparse, True, 10, 100, segments) == ([(10, 100)], 10)
    assert layout_for(None, False, 30, 100, segments) == ([(30, 100)], 30)


# --- the one retry loop -----------------------------------------------------------------------


def test_the_retry_loop_goes_round_the_sources_and_stops_at_final_errors() -> None:
    policy = Retry(attempts=2, backoff=0.0, max_delay=0.0)
    tried: list[int] = []
    waits: list[float] = []

    async def failing(source: int) -> None:
        tried.append(source)
        raise IncompleteBodyError("cut", url="u", expected=2, received=1)

    async def run(attempt, **kw):
        await with_retries(attempt, policy=policy, started=time.monotonic(), on_retry=record, **kw)

    def record(error: Exception, delay: float) -> None:
        waits.append(delay)

    with pytest.raises(IncompleteBodyError):
        asyncio.run(run(failing, sources=2))
    # A fresh mirror is tried at once; each source twice in all.
    assert tried == [0, 1, 0, 1]
    assert waits[0] == 0.0
    tried.clear()

    async def missing(source: int) -> None:
        tried.append(source)
        raise HTTPStatusError("404", url="u", status=404)

    with pytest.raises(HTTPStatusError):
        asyncio.run(run(missing, sources=1))
    assert tried == [0]  # a 404 is not retried
    tried.clear()

    async def full_disk(source: int) -> None:
        tried.append(source)
        raise StorageError("full", url="u", path=Path("x"), errno=28)

    with pytest.raises(StorageError):
        asyncio.run(run(full_disk, sources=3))
    assert tried == [0]  # fatal: no other source either

    calls: list[int] = []

    async def second_time_lucky(source: int) -> None:
        calls.append(source)
        if len(calls) == 1:
            raise FTPReplyError("450 busy", url="u", code=450)

    asyncio.run(run(second_time_lucky, sources=1))
    assert calls == [0, 0]


def test_dead_mirrors_cost_a_try_each_and_one_backoff_a_round() -> None:
    # 64 dead mirrors, 3 tries each: two rounds back to them, so two backoff waits, each the
    # step of its round; not 128 waits growing to the longest.
    policy = Retry(attempts=3, backoff=0.001, max_delay=1.0, jitter=0.0)
    waits: list[float] = []
    tried: list[int] = []

    async def dead(source: int) -> None:
        tried.append(source)
        raise ConnectError("refused", url="u")

    async def run() -> None:
        await with_retries(
            dead, policy=policy, sources=64, started=time.monotonic(),
            on_retry=lambda error, delay: waits.append(delay),
        )  # fmt: skip

    with pytest.raises(ConnectError):
        asyncio.run(run())
    assert tried[:128] == list(range(64)) * 2
    assert sorted(tried) == sorted(list(range(64)) * 3)  # each mirror three times in all
    backoffs = [delay for delay in waits if delay]
    assert backoffs == [policy.delay(1), policy.delay(2)]
    assert len(waits) == 64 * 3 - 1


def test_retryable_errors() -> None:
    policy = Retry()
    assert retryable(HTTPStatusError("503", url="u", status=503), policy)
    assert not retryable(HTTPStatusError("404", url="u", status=404), policy)
    assert retryable(FTPReplyError("421", url="u", code=421), policy)
    assert not retryable(FTPReplyError("550", url="u", code=550), policy)


# --- per-request options ------------------------------------------------------------------------


def test_a_request_overrides_or_unsets_the_downloaders_options() -> None:
    defaults = Options(max_size=1000, existing=Existing.SKIP, timeout=Timeout(read=5))
    assert defaults.for_request(Request("http://h/a")) is defaults
    unset = defaults.for_request(Request("http://h/a", max_size=None))
    assert unset.max_size is None  # no limit for this file
    assert defaults.for_request(Request("http://h/a", max_size=USE_DEFAULT)).max_size == 1000
    changed = defaults.for_request(
        Request("http://h/a", existing=Existing.OVERWRITE, timeout=Timeout(read=1))
    )
    assert (changed.existing, changed.timeout.read, changed.max_size) == (
        Existing.OVERWRITE,
        1,
        1000,
    )
    # None for an option that has no "unset" keeps the downloader's, as before USE_DEFAULT.
    assert defaults.for_request(Request("http://h/a", timeout=None)).timeout.read == 5
    assert "max_size" not in repr(Request("http://h/a"))
    assert "max_size=None" in repr(Request("http://h/a", max_size=None))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"max_size": -1}, InvalidRequestError),
        ({"max_size": True}, InvalidRequestError),
        ({"existing": "skip"}, InvalidRequestError),
        ({"timeout": 5}, InvalidRequestError),
        ({"segments": 4}, InvalidRequestError),
    ],
)
def test_bad_request_options_are_refused(fields: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        Request("http://h/a", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"max_size": -1}, ValueError),
        ({"max_redirects": -1}, ValueError),
        ({"max_redirects": 1.5}, TypeError),
        ({"retry": 3}, TypeError),
        ({"timeout": 5}, TypeError),
    ],
)
def test_bad_downloader_options_are_refused(fields: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        Options(**fields)  # type: ignore[arg-type]


# --- FTP helpers ----------------------------------------------------------------------------------


def test_mdtm_dates_and_listing_names() -> None:
    assert mdtm_date("20261202101530.123") == "Wed, 02 Dec 2026 10:15:30 GMT"
    for bad in ("", "2026120210153", "20261302101530", "abcdefghijklmn"):
        assert mdtm_date(bad) is None, bad
    for name in ("", ".", "..", "a/b", "/a", "a\\b", "a\x00b", "a\nb", "a\x85b", "a\x7fb"):
        assert not plain_name(name), name
    assert plain_name("docs-3.13 (final).zip")
    assert plain_name("ü.txt")


# --- the existing-file policy and the mirror's per-file decisions ---------------------------


def _resolve(path: Path, existing: Existing, **kw: object) -> tuple[Path, bool]:
    from adownload._disk.existing import resolve
    from adownload._disk.files import Ledger

    args: dict[str, object] = {"saved": Ledger(), "wanted": None, "url": "http://h/f"}
    args.update(kw)
    return asyncio.run(resolve(path, existing, **args))  # type: ignore[arg-type]


def test_the_existing_file_policy(tmp_path: Path) -> None:
    from adownload import DestinationExistsError, UnsafePathError
    from adownload._disk.existing import Skipped
    from adownload._disk.files import Ledger

    target = tmp_path / "f"
    assert _resolve(target, Existing.ERROR) == (target, False)  # nothing there
    target.write_bytes(b"old")
    assert _resolve(target, Existing.OVERWRITE) == (target, True)
    assert _resolve(target, Existing.RENAME) == (tmp_path / "f (1)", False)
    with pytest.raises(Skipped):
        _resolve(target, Existing.SKIP)
    with pytest.raises(DestinationExistsError, match="exists"):
        _resolve(target, Existing.ERROR)
    # SKIP keeps a file only when it matches a known checksum; a wrong one is replaced.
    md5_old = "149603e6c03516362a8da23f624db945"
    with pytest.raises(Skipped):
        _resolve(target, Existing.SKIP, wanted=("md5", md5_old))
    assert _resolve(target, Existing.SKIP, wanted=("md5", "0" * 32)) == (target, True)
    # A file this run saved from another URL is never passed off as this one's.
    saved = Ledger()
    saved.record(str(target), "http://h/other")
    with pytest.raises(DestinationExistsError, match="earlier in this run"):
        _resolve(target, Existing.SKIP, saved=saved)
    assert _resolve(target, Existing.OVERWRITE, saved=saved) == (target, True)
    # Links and directories are refused, never followed.
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        _resolve(link, Existing.OVERWRITE)
    with pytest.raises(InvalidRequestError, match="is a directory"):
        _resolve(tmp_path, Existing.OVERWRITE)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "link"]


def test_the_mirror_asks_with_the_validators_it_recorded(tmp_path: Path) -> None:
    from adownload._mirror.plan import conditions
    from adownload._mirror.state import Record

    url = "http://h/a.txt"
    (tmp_path / "a.txt").write_bytes(b"12345")
    info = (tmp_path / "a.txt").stat()
    row = Record("a.txt", url, '"e"', "Mon, 02 Nov 2026 10:00:00 GMT", 5, owned=True, done=True)
    assert conditions(None, None, url) == {}  # nothing on disk: a plain request
    assert conditions(row, info, url) == {
        "If-None-Match": '"e"',
        "If-Modified-Since": "Mon, 02 Nov 2026 10:00:00 GMT",
    }
    # Another size than recorded: not the file the mirror wrote, so fetch it whole.
    assert conditions(Record("a.txt", url, '"e"', None, 9, owned=True, done=True), info, url) == {}
    # No finished row: the file's own time, as wget's --timestamping has it.
    assert set(conditions(None, info, url)) == {"If-Modified-Since"}


def test_a_listed_ftp_file_is_current_when_size_and_time_agree(tmp_path: Path) -> None:
    from adownload._mirror.listing import Listed, Upstream
    from adownload._mirror.plan import Pending, listed_current
    from adownload._mirror.state import Record

    url = "ftp://h/a.txt"
    target = tmp_path / "a.txt"
    target.write_bytes(b"12345")
    when = "Mon, 02 Nov 2026 10:00:00 GMT"

    def pending(listed: tuple[int | None, str | None], record: Record | None) -> Pending:
        file = Upstream(Request(url), ("a.txt",), listed=Listed(*listed))
        return Pending(file, url, target, True, record, 5, {})

    row = Record("a.txt", url, None, when, 5, owned=True, done=True)
    assert listed_current(pending((5, when), row))
    assert not listed_current(pending((6, when), row))  # another size upstream
    assert not listed_current(pending((5, "Tue, 03 Nov 2026 10:00:00 GMT"), row))
    # No row: the same size and not older upstream than the file on disk.
    assert listed_current(pending((5, when), None))
    assert not listed_current(pending((5, "Fri, 01 Jan 2100 00:00:00 GMT"), None))
    assert not listed_current(pending((None, when), None))
