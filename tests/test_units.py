"""The pure pieces, without a socket: segment layout, resume state, retry delays, the speed
floor, Retry-After, digests, ranges, name lengths and part names, redaction, the ledger.

Each of these is also reached through the server tests; here a wrong edge shows at once, and
by name.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from yarl import URL

from adownload import InvalidRequestError, Request, Retry, StallError
from adownload._disk.files import (
    MAX_NAME_BYTES,
    NAME_LIMIT,
    Ledger,
    RefusedPath,
    descend,
    free_name,
    name_fits,
    name_from_url,
    part_path,
    safe_filename,
)
from adownload._disk.state import PartState, _parse, identity, merge
from adownload._engine.limits import SpeedFloor
from adownload._engine.segments import Layout, split
from adownload._model.util import redact
from adownload._model.verify import parse_checksum, parse_digest_fields, parse_legacy_digest
from adownload._protocols.base import range_answer
from adownload._protocols.base import retry_after as _retry_after
from adownload._protocols.splice import PIPE_SIZE

from .support import MIB

# --- segments ---------------------------------------------------------------------------------


def test_split_cuts_the_missing_ranges_into_about_count_pieces_none_below_min_size() -> None:
    assert split([(0, 8 * MIB)], 4, MIB) == [
        (0, 2 * MIB),
        (2 * MIB, 4 * MIB),
        (4 * MIB, 6 * MIB),
        (6 * MIB, 8 * MIB),
    ]
    pieces = split([(0, 5 * MIB + 10)], 5, MIB)
    assert len(pieces) == 5
    assert pieces[0][0] == 0
    assert pieces[-1][1] == 5 * MIB + 10
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(end - start >= MIB for start, end in pieces)
    # Holes smaller than min_size stay whole.
    assert split([(0, 100), (500, 700)], 8, MIB) == [(0, 100), (500, 700)]


def test_a_layout_hands_out_pieces_then_the_second_half_of_the_slowest() -> None:
    layout = Layout([(0, 8 * MIB)], 2, MIB)
    first = layout.take(0)
    second = layout.next()
    assert second is not None
    assert (first.start, first.end, second.start, second.end) == (0, 4 * MIB, 4 * MIB, 8 * MIB)
    first.position, second.position = 3 * MIB, 4 * MIB + 1
    first.since -= 1.0  # first is fast (3 MiB in 1 s), second crawls (1 byte in 10 s)
    second.since -= 10.0
    stolen = layout.next()
    assert stolen is not None
    middle = 4 * MIB + 1 + (4 * MIB - 1) // 2
    assert (stolen.start, stolen.end, second.end) == (middle, 8 * MIB, middle)
    # Only `stolen` still has two min_size halves; with no speed yet, it is not cut blind.
    assert layout.next() is None
    assert layout.young()
    stolen.since_position -= 1
    stolen.since -= 100.0  # as if 1 byte in 100 s: the slowest, and far from its end
    again = layout.next()
    assert again is not None
    half = middle + (8 * MIB - middle) // 2
    assert (again.start, again.end, stolen.end) == (half, 8 * MIB, half)
    assert layout.next() is None  # nothing left with room for two halves
    assert not layout.young()
    # Ranges record what is written, never what is only claimed.
    first.written = 2 * MIB
    assert layout.ranges() == [(0, 2 * MIB)]
    assert layout.received() == 3 * MIB + 1


def test_a_split_leaves_a_kernel_copy_what_its_pipe_may_hold() -> None:
    # A kernel copy takes up to PIPE_SIZE bytes from the socket before it writes them: a split
    # that cut into those bytes would see them written past the segment's new end.
    layout = Layout([(0, 16 * MIB)], 1, 64 * 1024)
    slow = layout.take(0)
    slow.position = 100 * 1024
    slow.since -= 1.0  # 100 KiB/s: half a second of it is far less than a pipe
    plain = layout.next(rate=float(1 << 40))  # a very fast connection takes nearly everything
    assert plain is not None
    assert plain.start < slow.position + PIPE_SIZE
    layout = Layout([(0, 16 * MIB)], 1, 64 * 1024)
    copying = layout.take(0)
    copying.position, copying.reserve = 100 * 1024, PIPE_SIZE
    copying.since -= 1.0
    taken = layout.next(rate=float(1 << 40))
    assert taken is not None
    assert taken.start == copying.end == copying.position + PIPE_SIZE
    # While the copy runs, the file holds every byte before its position.
    assert layout.ranges() == [(0, copying.position)]


# --- resume state -----------------------------------------------------------------------------


def test_part_state_missing_merge_and_agreement() -> None:
    state = PartState("u", 100, '"e"', None, ranges=[(10, 20), (15, 30), (50, 60)], sparse=True)
    assert merge(state.ranges) == [(10, 30), (50, 60)]
    assert state.missing() == [(0, 10), (30, 50), (60, 100)]
    assert state.done_prefix() == 0
    assert state.agrees_with(60)
    assert not state.agrees_with(59)  # claims bytes 59 and beyond that the part lacks
    assert not state.agrees_with(101)  # longer than the file
    stream = PartState("u", 100, '"e"', None)
    assert stream.agrees_with(0)
    assert stream.agrees_with(100)
    assert not stream.agrees_with(101)


def test_part_state_validators() -> None:
    assert PartState("u", 1, '"strong"', None).if_range() == '"strong"'
    assert PartState("u", 1, 'W/"weak"', "date").if_range() == "date"
    assert not PartState("u", 1, 'W/"weak"', None).resumable
    assert PartState("u", 1, None, "date").matches(None, "date")
    assert not PartState("u", 1, '"a"', "date").matches('"b"', "date")  # the ETag decides


def test_identity_counts_the_query_but_keeps_no_secret_in_clear() -> None:
    plain, query = identity(URL("https://u:pw@example.org/q?token=s3cret&f=a#frag"))
    assert plain == "https://example.org/q"
    assert query == hashlib.sha256(b"token=s3cret&f=a").hexdigest()
    assert identity(URL("https://example.org/q")) == ("https://example.org/q", None)
    state = PartState.of(URL("https://example.org/q?f=a"), 10, '"e"', None)
    assert state.belongs_to(URL("https://other:pw@example.org/q?f=a"))
    assert not state.belongs_to(URL("https://example.org/q?f=b"))
    assert not state.belongs_to(URL("https://example.org/q"))


@pytest.mark.parametrize(
    "data",
    [
        [],
        None,
        "x",
        {},
        {"version": 3, "url": "u"},
        {"version": 2, "url": 1},
        {"version": 2, "url": "u", "length": 1e999},
        {"version": 2, "url": "u", "length": True},
        {"version": 2, "url": "u", "length": -1},
        {"version": 2, "url": "u", "length": 10, "etag": 5},
        {"version": 2, "url": "u", "length": 10, "query": ["x"]},
        {"version": 2, "url": "u", "length": 10, "ranges": [[0, 11]]},
        {"version": 2, "url": "u", "length": 10, "ranges": [[3, 3]]},
        {"version": 2, "url": "u", "length": 10, "ranges": [[0]]},
        {"version": 2, "url": "u", "length": 10, "ranges": {"0": 1}},
        {"version": 2, "url": "u", "length": None, "sparse": True},
        {"version": 2, "url": "u", "length": 10, "sparse": 1},
    ],
)
def test_a_state_of_any_other_shape_parses_as_none(data: object) -> None:
    assert _parse(json.loads(json.dumps(data))) is None


def test_a_good_state_parses_version_1_and_2() -> None:
    good = {"version": 2, "url": "u", "length": 10, "etag": '"e"', "ranges": [[0, 4]]}
    state = _parse(good)
    assert state is not None
    assert (state.length, state.ranges, state.query) == (10, [(0, 4)], None)
    assert _parse({**good, "version": 1}) is not None


# --- retries ----------------------------------------------------------------------------------


def test_retry_delays_grow_are_capped_and_honour_retry_after() -> None:
    retry = Retry(backoff=0.5, multiplier=2, max_delay=3, jitter=0)
    assert [retry.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3, 3]
    assert retry.delay(1, retry_after=2.5) == 2.5
    assert retry.delay(1, retry_after=100) == 3  # capped
    jittered = Retry(backoff=1, jitter=0.1)
    assert all(1.0 <= jittered.delay(1) <= 1.1 for _ in range(50))


def test_the_speed_floor_judges_whole_windows_only() -> None:
    floor = SpeedFloor(1000, 2.0, 0, "http://h/a")
    start = time.monotonic()
    floor.check(10, start + 1.9)  # half a window of almost nothing: not judged yet
    floor.check(2500, start + 2.0)  # 1250 B/s over the window: fine, and the window restarts
    with pytest.raises(StallError) as caught:
        floor.check(3000, start + 4.5)  # 500 B in 2.5 s
    assert (caught.value.phase, caught.value.seconds, caught.value.url) == (
        "speed",
        2.0,
        "http://h/a",
    )


def test_retry_after_takes_seconds_and_http_dates() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after(" 0 ") == 0.0
    soon = _retry_after(formatdate(time.time() + 30, usegmt=True))
    assert soon is not None
    assert 25 <= soon <= 31
    assert _retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0
    for bad in (None, "", "soon", "-5", "1.5"):
        assert _retry_after(bad) is None, bad


# --- digests ----------------------------------------------------------------------------------


def test_digest_headers() -> None:
    digest = hashlib.sha256(b"x").digest()
    encoded = base64.b64encode(digest).decode()
    assert parse_digest_fields(f"sha-256=:{encoded}:, md5=:AAAA:") == {"sha256": digest}
    assert parse_digest_fields("sha-256=:not base64!:") == {}
    assert parse_digest_fields("unknown=:AAAA:") == {}
    assert parse_legacy_digest(f"SHA-256={encoded}") == {"sha256": digest}
    assert parse_legacy_digest("SHA-256=***") == {}
    assert parse_checksum("SHA-256=" + "AB" * 32) == ("sha256", "ab" * 32)
    with pytest.raises(InvalidRequestError):
        parse_checksum("sha256:abc")


# --- ranges -----------------------------------------------------------------------------------


def test_range_answer_for_whole_files_and_tails() -> None:
    # A 200 carrying Content-Range is a file only when it says it is all of it.
    assert range_answer("bytes 0-99/100", 100, 0, None, None) == (0, 99, 100)
    assert range_answer("bytes 0-99/200", 100, 0, None, None) is None
    assert range_answer("bytes 100-199/200", 100, 0, None, None) is None
    assert range_answer("bytes 0-99/*", 100, 0, None, None) == (0, 99, None)


# --- names ------------------------------------------------------------------------------------


def test_names_leave_room_for_every_suffix() -> None:
    long = safe_filename("n" * 300 + ".zip")
    assert len(long.encode()) == MAX_NAME_BYTES
    assert long.endswith(".zip")
    assert name_fits(long)
    assert len((long + ".part.state.tmp").encode()) <= NAME_LIMIT
    assert name_from_url(URL("http://h/dir/")) == "index.html"
    assert name_from_url(URL("http://h/a%2F..%2Fb")) == "b"


def test_part_names(tmp_path: Path) -> None:
    assert part_path(tmp_path / "a.bin") == tmp_path / "a.bin.part"
    exact = tmp_path / ("e" * 251 + ".bin")
    part = part_path(exact)
    assert part == part_path(exact)  # the same name every run, so a rerun finds it
    assert part.name.endswith(".part")
    assert len((part.name + ".state.tmp").encode()) <= NAME_LIMIT
    assert part_path(tmp_path / ("f" * 251 + ".bin")) != part


def test_free_names_keep_the_suffix_and_fit(tmp_path: Path) -> None:
    (tmp_path / "a.tar.gz").write_bytes(b"")
    (tmp_path / "a (1).tar.gz").write_bytes(b"")
    assert free_name(tmp_path / "a.tar.gz") == tmp_path / "a (2).tar.gz"
    long = tmp_path / ("n" * 236 + ".bin")
    renamed = free_name(long)
    assert renamed.name.endswith(" (1).bin")
    assert name_fits(renamed.name)


def test_descend_refuses_links_and_escapes(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert descend(tmp_path, ("real", "f.txt")) == tmp_path / "real/f.txt"
    assert descend(tmp_path, ("link",)) == tmp_path / "link"  # the file itself: the caller's
    for parts, to_file in ((("link", "f.txt"), True), (("link",), False), (("..", "x"), True)):
        with pytest.raises(RefusedPath):
            descend(tmp_path, parts, to_file=to_file)


# --- redaction and the ledger -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://user:pw@host/a", "http://host/a"),
        ("ftp://user@host/a", "ftp://host/a"),
        ("http://u:p@ss@host/a@b", "http://host/a@b"),
        ("failed http://u:pw@[::1/x: malformed", "failed http://[::1/x: malformed"),
        ("mail me@example.org", "mail me@example.org"),
        ("http://host/path?q=a@b", "http://host/path?q=a@b"),
        (URL("https://u:pw@h:8443/x"), "https://h:8443/x"),
    ],
)
def test_redact(text: str | URL, shown: str) -> None:
    assert redact(text) == shown


def test_request_repr_hides_userinfo_and_credential_headers() -> None:
    request = Request(
        "https://alice:pw@example.org/a.zip",
        headers={"Authorization": "Bearer t0k", "X-Api-Key": "k3y", "Accept": "*/*"},
        mirrors=["https://bob:pw2@mirror.example/a.zip"],
    )
    shown = repr(request)
    for secret in ("alice", "pw", "t0k", "k3y", "bob"):
        assert secret not in shown
    assert "'Accept': '*/*'" in shown
    assert request.url == "https://alice:pw@example.org/a.zip"


def test_the_ledger_remembers_urls_by_fingerprint_and_recent_names() -> None:
    ledger = Ledger()
    ledger.record("/d/a", "http://h/1")
    assert ledger.saved_from("/d/a") == hash("http://h/1")
    assert ledger.name("/d/a") == "http://h/1"
    assert ledger.saved_from("/d/b") is None
    for n in range(Ledger.RECENT + 10):
        ledger.record(f"/d/{n}", f"http://h/{n}")
    assert ledger.saved_from("/d/a") == hash("http://h/1")  # still known
    assert ledger.name("/d/a") is None  # its text is no longer kept
    assert ledger.name(f"/d/{Ledger.RECENT + 9}") == f"http://h/{Ledger.RECENT + 9}"


# --- the event loop of the blocking entry points ------------------------------------------


def test_the_loop_is_uvloops_when_installed_unless_asyncio_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from adownload._client import loop as _loop

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    monkeypatch.setenv(_loop.LOOP_VARIABLE, "asyncio")
    assert _loop.loop_factory() is None
    assert _loop.run(which()).startswith("asyncio")
    with pytest.raises(ValueError, match="must be 'asyncio' or 'uvloop', not 'tokio'"):
        _loop.loop_factory("tokio")
    try:
        import uvloop
    except ImportError:
        monkeypatch.delenv(_loop.LOOP_VARIABLE)
        assert _loop.loop_factory() is None  # not installed: asyncio's, silently
        with pytest.raises(ValueError, match="uvloop is not installed"):
            _loop.loop_factory("uvloop")
        return
    monkeypatch.delenv(_loop.LOOP_VARIABLE)
    assert _loop.loop_factory() is uvloop.new_event_loop
    assert _loop.run(which()).startswith("uvloop")
