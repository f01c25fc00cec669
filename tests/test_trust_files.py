"""No file silently missing, no wrong file committed.

A file is reported in place only when this run fetched it from that URL (or it was there and
matches what the caller knows of it); a `.part` is continued only when it and its state agree,
for the same URL; and a body is a file only when the server sent all of it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from yarl import URL

from adownload import (
    DestinationExistsError,
    Downloader,
    Existing,
    HTTPStatusError,
    IncompleteBodyError,
    RemoteProtocolError,
    Request,
)
from adownload._disk import state as _state

from .servers import FaultServer, RawReply, RawServer, raw_response
from .support import FAST, ONCE, listing

SIZE = 300_000


# --- two URLs, one name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [("/f/a.bin", "/f/b.bin"), ("/f/x/3.bin", "/f/y/3.bin")],
    ids=["redirect-to", "same-last-segment"],
)
async def test_a_second_url_that_maps_to_a_taken_name_fails_naming_the_first(
    faults: FaultServer, dest: Path, first: str, second: str
) -> None:
    one = faults.url("/r/data.bin", to=first) if first == "/f/a.bin" else faults.url(first)
    two = faults.url("/r/data.bin", to=second) if first == "/f/a.bin" else faults.url(second)
    name = "data.bin" if first == "/f/a.bin" else "3.bin"
    async with Downloader(dest=dest) as dl:
        outcomes = await dl.download_many([one, two])
    assert outcomes[0].ok
    assert not outcomes[0].skipped
    assert (dest / name).read_bytes() == faults.content(first)
    error = outcomes[1].error
    assert isinstance(error, DestinationExistsError)
    assert error.taken_by == one
    assert one in str(error)
    assert not outcomes[1].skipped
    assert listing(dest) == [name]
    assert faults.hits(second) == []  # never fetched, and never reported as in place


async def test_under_rename_a_second_url_gets_the_next_free_name(
    faults: FaultServer, dest: Path
) -> None:
    one, two = faults.url("/r/data.bin", to="/f/a.bin"), faults.url("/r/data.bin", to="/f/b.bin")
    async with Downloader(dest=dest, existing=Existing.RENAME) as dl:
        outcomes = await dl.download_many([one, two])
    assert [o.ok for o in outcomes] == [True, True]
    assert outcomes[1].path == dest / "data (1).bin"
    assert (dest / "data.bin").read_bytes() == faults.content("/f/a.bin")
    assert (dest / "data (1).bin").read_bytes() == faults.content("/f/b.bin")


@pytest.mark.parametrize("existing", [Existing.SKIP, Existing.RENAME, Existing.ERROR])
async def test_the_same_url_twice_stays_one_download(
    faults: FaultServer, dest: Path, existing: Existing
) -> None:
    url = faults.url("/f/a.bin")
    async with Downloader(dest=dest, existing=existing) as dl:
        outcomes = await dl.download_many([url, url])
    assert [o.ok for o in outcomes] == [True, True]
    assert sorted(o.skipped for o in outcomes) == [False, True]
    assert len(faults.hits("/f/a.bin")) == 1
    assert listing(dest) == ["a.bin"]


async def test_overwrite_replaces_what_this_run_saved_as_asked(
    faults: FaultServer, dest: Path
) -> None:
    # A long-lived downloader that refreshes one file: OVERWRITE means fetch it again, from the
    # same URL or another one given that exact path.
    target = dest / "latest.bin"
    async with Downloader(dest=dest, existing=Existing.OVERWRITE) as dl:
        await dl.download(faults.url("/f/a.bin"), dest=target)
        again = await dl.download(faults.url("/f/a.bin"), dest=target)
        other = await dl.download(faults.url("/f/b.bin"), dest=target)
    assert again.replaced
    assert other.replaced
    assert not other.skipped
    assert len(faults.hits("/f/a.bin")) == 2
    assert target.read_bytes() == faults.content("/f/b.bin")
    assert listing(dest) == ["latest.bin"]


# --- a checksum and a file on hand ----------------------------------------------------------


async def test_an_existing_file_that_fails_its_checksum_is_replaced_not_skipped(
    faults: FaultServer, dest: Path
) -> None:
    good = faults.content("/f/a.bin")
    (dest / "a.bin").write_bytes(b"garbage, not the file")
    checksum = "sha256:" + hashlib.sha256(good).hexdigest()
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(faults.url("/f/a.bin"), checksum=checksum)
        assert outcome.ok
        assert not outcome.skipped
        assert outcome.replaced
        assert (dest / "a.bin").read_bytes() == good
        # Now it matches: skipped, and no request at all.
        again = await dl.download(Request(faults.url("/f/a.bin"), checksum=checksum))
    assert again.skipped
    assert not again.replaced
    assert len(faults.hits("/f/a.bin")) == 1
    assert listing(dest) == ["a.bin"]


async def test_a_wrong_file_is_kept_when_the_new_download_fails_its_checksum(
    faults: FaultServer, dest: Path
) -> None:
    (dest / "a.bin").write_bytes(b"mine")
    async with Downloader(dest=dest) as dl:
        (outcome,) = await dl.download_many(
            [Request(faults.url("/f/a.bin"), checksum="md5:" + "0" * 32)]
        )
    assert outcome.error is not None
    assert (dest / "a.bin").read_bytes() == b"mine"  # replaced only by a verified download
    assert listing(dest) == ["a.bin"]


# --- a .part and its state must agree -------------------------------------------------------


def plant(dest: Path, faults: FaultServer, part: bytes, **fields: object) -> None:
    """A `.part` with a state beside it, as if an earlier run had left them."""
    url = faults.url("/f/a.bin", size=SIZE)
    state = _state.PartState.of(
        URL(url), SIZE, faults.etag("/f/a.bin", SIZE), faults.last_modified("/f/a.bin", SIZE)
    )
    for name, value in fields.items():
        setattr(state, name, value)
    (dest / "a.bin.part").write_bytes(part)
    _state.save(dest / "a.bin.part.state", state)


async def test_a_part_longer_than_the_file_is_not_committed(
    faults: FaultServer, dest: Path
) -> None:
    good = faults.content("/f/a.bin", SIZE)
    plant(dest, faults, good + b"\xee" * 8000, ranges=[(0, SIZE)])
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert outcome.resumed_from == 0
    assert (dest / "a.bin").read_bytes() == good
    assert listing(dest) == ["a.bin"]


async def test_a_sparse_state_claiming_bytes_the_part_lacks_is_not_trusted(
    faults: FaultServer, dest: Path
) -> None:
    good = faults.content("/f/a.bin", SIZE)
    # The state claims 0..250 kB; the part holds 50 kB (the rest would read as zeros).
    plant(dest, faults, good[:50_000], ranges=[(0, 250_000)], sparse=True)
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=SIZE))
    assert (dest / "a.bin").read_bytes() == good
    assert outcome.resumed_from == 0
    assert listing(dest) == ["a.bin"]


async def test_a_part_is_never_continued_for_another_query(faults: FaultServer, dest: Path) -> None:
    good = faults.content("/f/q.bin", SIZE)
    faults.plan("/f/q.bin", [f"cut_after:{SIZE // 2}"])
    async with Downloader(dest=dest, retry=ONCE) as dl:
        with pytest.raises(IncompleteBodyError):
            await dl.download(faults.url("/f/q.bin", size=SIZE, f="a", token="sekrit-55e1"))
        state_text = (dest / "q.bin.part.state").read_text()
        assert "sekrit-55e1" not in state_text
        assert json.loads(state_text)["query"]  # a digest of the query, not the query
        # Same path, same validators, another query: another file.
        outcome = await dl.download(faults.url("/f/q.bin", size=SIZE, f="b"))
    assert outcome.resumed_from == 0
    assert faults.hits("/f/q.bin")[-1].range is None
    assert (dest / "q.bin").read_bytes() == good
    assert listing(dest) == ["q.bin"]


# --- a body is a file only when all of it came ------------------------------------------------


@pytest.mark.parametrize("then", ["reset", "close"])
async def test_a_body_without_length_is_complete_only_at_a_clean_close(
    raw: RawServer, dest: Path, then: str
) -> None:
    body = b"x" * 50_000
    raw.script(
        "a.bin", RawReply(raw_response("200 OK", [("Content-Type", "text/plain")], body), then)
    )
    async with Downloader(dest=dest, retry=FAST) as dl:
        (outcome,) = await dl.download_many([raw.url("a.bin")])
    if then == "close":
        assert outcome.ok
        assert (dest / "a.bin").read_bytes() == body
    else:
        assert isinstance(outcome.error, IncompleteBodyError)
        assert raw.hits("a.bin") == FAST.attempts  # retried, as a cut body is
        assert listing(dest) == []


async def test_204_is_no_file_and_replaces_nothing(raw: RawServer, dest: Path) -> None:
    raw.script("a.bin", raw_response("204 No Content"))
    (dest / "a.bin").write_bytes(b"precious")
    async with Downloader(dest=dest, existing=Existing.OVERWRITE, retry=FAST) as dl:
        with pytest.raises(HTTPStatusError) as caught:
            await dl.download(raw.url("a.bin"))
    assert caught.value.status == 204
    assert raw.hits("a.bin") == 1  # final: asking again gets no file either
    assert (dest / "a.bin").read_bytes() == b"precious"
    assert listing(dest) == ["a.bin"]


@pytest.mark.parametrize(
    ("content_range", "ok"),
    [("bytes 100-199/200", False), ("bytes 0-99/200", False), ("bytes 0-99/100", True)],
)
async def test_a_200_with_content_range_is_a_file_only_when_it_is_the_whole_file(
    raw: RawServer, dest: Path, content_range: str, ok: bool
) -> None:
    body = bytes(range(100))
    headers = [("Content-Length", "100"), ("Content-Range", content_range)]
    raw.script("a.bin", raw_response("200 OK", headers, body))
    async with Downloader(dest=dest, retry=FAST) as dl:
        (outcome,) = await dl.download_many([raw.url("a.bin")])
    if ok:
        assert outcome.ok
        assert (dest / "a.bin").read_bytes() == body
    else:
        assert isinstance(outcome.error, RemoteProtocolError)
        assert "not the whole file" in str(outcome.error)
        assert listing(dest) == []
