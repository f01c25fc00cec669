"""Many sources for one file: Metalink 4 and 3 documents (and hostile ones), segments from
several mirrors at once, piece hashes, mirrors ranked and dropped, RFC 6249 Link and Digest
headers, a resume after kill -9, and the command's -M and .meta4 URLs.

The mirrors are real aiohttp servers on 127.0.0.1 (`mirror_servers.py`), each at a rate of
its own per connection; one corrupts a byte, one dies mid-file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest
from yarl import URL

import adownload
from adownload import (
    ChecksumMismatchError,
    Downloader,
    Pieces,
    Request,
    Retry,
    Segments,
    SourceDropped,
    metalink,
)
from adownload._engine.segments import Layout, split
from adownload._engine.sources import Sources
from adownload._model.pieces import PieceCheck
from adownload._protocols.http.answer import MAX_DUPLICATES, duplicates
from adownload.metalink import MAX_URLS, MetalinkError

from .cli_support import COMMAND, cli_env, no_parts
from .ftp_servers import pyftpdlib_server
from .mirror_servers import Mirror, meta4, piece_hashes, serve_mirrors
from .support import MIB, listing

PIECE = 256 << 10
SEGMENTS = Segments(count=6, min_size=MIB)
RETRY = Retry(attempts=3, backoff=0.01, max_delay=0.05)


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- reading Metalink documents -----------------------------------------------------------

V4 = """<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <published>2026-12-03T00:00:00Z</published>
  <file name="docs/python-docs.zip">
    <size>8</size>
    <hash type="md5">{md5}</hash>
    <hash type="sha-256">{sha256}</hash>
    <pieces length="4" type="sha-1">
      <hash>{p0}</hash>
      <hash>{p1}</hash>
    </pieces>
    <url location="de" priority="3">ftp://ftp.example.org/python-docs.zip</url>
    <url priority="1">https://a.example.org/python-docs.zip</url>
    <url>http://c.example.org/python-docs.zip</url>
    <url priority="2">http://b.example.org/python-docs.zip</url>
    <url priority="2">magnet:?xt=urn:btih:0000</url>
    <metaurl mediatype="torrent" priority="1">http://a.example.org/x.torrent</metaurl>
  </file>
  <file name="second.txt">
    <url>https://a.example.org/second.txt</url>
  </file>
</metalink>
"""


def v4_document() -> bytes:
    body = b"abcdefgh"
    return V4.format(
        md5=hashlib.md5(body).hexdigest(),
        sha256=sha256(body),
        p0=hashlib.sha1(b"abcd").hexdigest(),
        p1=hashlib.sha1(b"efgh").hexdigest(),
    ).encode()


def test_a_metalink_4_document_becomes_files_and_requests(tmp_path: Path) -> None:
    first, second = metalink.parse(v4_document())

    assert first.name == "docs/python-docs.zip"
    assert first.urls == (
        "https://a.example.org/python-docs.zip",
        "http://b.example.org/python-docs.zip",
        "ftp://ftp.example.org/python-docs.zip",
        "http://c.example.org/python-docs.zip",  # no priority: the lowest
    )
    assert first.size == 8
    assert first.checksum == f"sha256:{sha256(b'abcdefgh')}"  # the strongest hash given
    assert first.pieces == Pieces(4, "sha1", (hashlib.sha1(b"abcd").hexdigest(),
                                              hashlib.sha1(b"efgh").hexdigest()))  # fmt: skip
    assert (second.size, second.checksum, second.pieces) == (None, None, None)

    request = first.request(tmp_path, segments=SEGMENTS)
    assert request.path == tmp_path / "docs" / "python-docs.zip"
    assert request.mirrors == first.urls[1:]
    assert (request.size, request.checksum, request.pieces) == (8, first.checksum, first.pieces)
    assert request.segments == SEGMENTS
    assert listing(tmp_path) == []  # reading a Metalink writes nothing


def test_a_metalink_3_document_is_read_too(tmp_path: Path) -> None:
    body = b"0123456789"
    pieces = [hashlib.sha1(body[i : i + 4]).hexdigest() for i in (0, 4, 8)]
    document = f"""<?xml version="1.0"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/">
  <files>
    <file name="old.iso">
      <size>10</size>
      <verification>
        <hash type="md5">{hashlib.md5(body).hexdigest()}</hash>
        <hash type="sha1">{hashlib.sha1(body).hexdigest()}</hash>
        <pieces length="4" type="sha1">
          <hash piece="2">{pieces[2]}</hash>
          <hash piece="0">{pieces[0]}</hash>
          <hash piece="1">{pieces[1]}</hash>
        </pieces>
      </verification>
      <resources>
        <url type="bittorrent" preference="100">http://a.example.org/old.iso.torrent</url>
        <url type="http" location="us" preference="50">http://slow.example.org/old.iso</url>
        <url type="ftp" preference="90">ftp://fast.example.org/old.iso</url>
      </resources>
    </file>
  </files>
</metalink>"""
    path = tmp_path / "old.metalink"
    path.write_text(document)

    (file,) = metalink.parse(path)

    assert file.name == "old.iso"
    assert file.urls == ("ftp://fast.example.org/old.iso", "http://slow.example.org/old.iso")
    assert file.checksum == f"sha1:{hashlib.sha1(body).hexdigest()}"
    assert file.pieces is not None
    assert file.pieces.hashes == tuple(pieces)  # in piece order, whatever the document's


def test_names_go_through_the_safe_name_rules() -> None:
    def named(name: str) -> str:
        document = (
            '<metalink xmlns="urn:ietf:params:xml:ns:metalink">'
            f'<file name="{name}"><url>http://a.example.org/f</url></file></metalink>'
        )
        return metalink.parse(document.encode())[0].name

    assert named("dir/./sub//file.bin") == "dir/sub/file.bin"
    assert named(".hidden") == "hidden"
    assert named("a&#x9b;31mred&#9;.txt") == "a31mred.txt"  # no terminal control (CSI, tab)
    assert named("back\\slash.txt") == "back/slash.txt"


def _v4(inner: str) -> bytes:
    return f'<metalink xmlns="urn:ietf:params:xml:ns:metalink">{inner}</metalink>'.encode()


_URL = "<url>http://a.example.org/f</url>"
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="&lol9;">
<url>http://a.example.org/f</url></file></metalink>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE metalink [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="x">
<url>http://a.example.org/&secret;</url></file></metalink>"""


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(BOMB, "document type declaration", id="entity-expansion-bomb"),
        pytest.param(EXTERNAL, "document type declaration", id="external-entity"),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE metalink SYSTEM "http://127.0.0.1:9/x.dtd">'
            + _v4(f'<file name="x">{_URL}</file>'),
            "document type declaration",
            id="external-dtd",
        ),
        pytest.param(_v4(f'<file name="../evil">{_URL}</file>'), "leaves the", id="dot-dot"),
        pytest.param(
            _v4(f'<file name="a/../../evil">{_URL}</file>'), "leaves the", id="dot-dot-inside"
        ),
        pytest.param(_v4(f'<file name="/etc/cron.d/x">{_URL}</file>'), "leaves the", id="absolute"),
        pytest.param(_v4(f'<file name="C:\\x.exe">{_URL}</file>'), "leaves the", id="drive"),
        pytest.param(_v4(f"<file>{_URL}</file>"), "without a name", id="no-name"),
        pytest.param(
            _v4(f'<file name="x"><hash type="sha-256">abcd</hash>{_URL}</file>'),
            "64 hex digits",
            id="hash-of-the-wrong-length",
        ),
        pytest.param(
            _v4(f'<file name="x"><size>-5</size>{_URL}</file>'), "number of bytes", id="negative"
        ),
        pytest.param(
            _v4(f'<file name="x"><size>1e9</size>{_URL}</file>'), "number of bytes", id="float"
        ),
        # str.isdigit() takes these; int() refuses the first and reads the second as 3.
        pytest.param(
            _v4(f'<file name="x"><size>\u00b2</size>{_URL}</file>'),
            "number of bytes",
            id="superscript-size",
        ),
        pytest.param(
            _v4(f'<file name="x"><size>\u0663</size>{_URL}</file>'),
            "number of bytes",
            id="arabic-indic-size",
        ),
        pytest.param(
            _v4('<file name="x"><url priority="\u00b2">http://a.example.org/f</url></file>'),
            "priority",
            id="superscript-priority",
        ),
        pytest.param(
            _v4(
                f'<file name="x"><pieces length="\u00b2" type="sha-1"><hash>{"0" * 40}</hash>'
                f"</pieces>{_URL}</file>"
            ),
            "piece length",
            id="superscript-piece-length",
        ),
        pytest.param(
            b'<metalink version="3.0" xmlns="http://www.metalinker.org/"><files>'
            b'<file name="x"><verification><pieces length="4" type="sha1">'
            b'<hash piece="\xc2\xb2">' + b"0" * 40 + b"</hash></pieces></verification>"
            b'<resources><url type="http">http://a.example.org/f</url></resources>'
            b"</file></files></metalink>",
            "without its number",
            id="superscript-piece-number",
        ),
        pytest.param(
            _v4(
                f'<file name="x"><size>10</size><pieces length="4" type="sha-1">'
                f"<hash>{'0' * 40}</hash></pieces>{_URL}</file>"
            ),
            "do not fit a file of 10 bytes",
            id="pieces-that-do-not-cover-the-size",
        ),
        pytest.param(
            _v4(
                f'<file name="x"><pieces length="0" type="sha-1"><hash>{"0" * 40}</hash>'
                f"</pieces>{_URL}</file>"
            ),
            "piece length",
            id="piece-length-zero",
        ),
        pytest.param(
            _v4(
                f'<file name="x"><pieces length="4" type="sha-1"><hash>xyz</hash>'
                f"</pieces>{_URL}</file>"
            ),
            "40 hex digits",
            id="bad-piece-hash",
        ),
        pytest.param(
            _v4('<file name="x"><url priority="0">http://a.example.org/f</url></file>'),
            "priority",
            id="priority-zero",
        ),
        pytest.param(
            _v4('<file name="x"><url>magnet:?xt=urn:btih:00</url><url>gopher://h/f</url></file>'),
            "no http, https or ftp URL",
            id="no-usable-url",
        ),
        pytest.param(
            _v4(f'<file name="x">{_URL}</file><file name="x">{_URL}</file>'), "twice", id="twice"
        ),
        pytest.param(_v4(""), "lists no files", id="no-files"),
        pytest.param(b"<html><body>not found</body></html>", "root is <html>", id="html"),
        pytest.param(b"PK\x03\x04 a zip", "not well-formed XML", id="not-xml"),
        pytest.param(
            b'<metalink xmlns="urn:example:other"/>', "unknown Metalink namespace", id="namespace"
        ),
    ],
)
def test_a_hostile_or_broken_metalink_gets_a_clear_error(document: bytes, expected: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(MetalinkError, match=expected) as caught:
            metalink.parse(document)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing expanded: counted in bytes, not timed
    assert isinstance(caught.value, adownload.InvalidRequestError)
    assert "root:" not in str(caught.value)  # /etc/passwd was never read


def test_a_hundred_thousand_urls_are_bounded_to_the_best() -> None:
    urls = "".join(
        f'<url priority="{1 + i % 999}">http://m{i}.example.org/f</url>' for i in range(100_000)
    )
    started = time.monotonic()
    (file,) = metalink.parse(_v4(f'<file name="f">{urls}</file>'))
    assert time.monotonic() - started < 20
    assert len(file.urls) == MAX_URLS
    assert file.urls[0] == "http://m0.example.org/f"  # priority 1, first in the document
    assert file.urls[1] == "http://m999.example.org/f"


def test_files_that_are_no_metalink_file_get_a_clear_error(tmp_path: Path) -> None:
    big = tmp_path / "big.meta4"
    with big.open("wb") as file:
        file.truncate(metalink.MAX_DOCUMENT + 1)
    with pytest.raises(MetalinkError, match="over 16 MiB"):
        metalink.parse(big)
    fifo = tmp_path / "pipe.meta4"
    os.mkfifo(fifo)
    with pytest.raises(MetalinkError, match="not a regular file"):
        metalink.parse(fifo)  # and it does not block
    with pytest.raises(MetalinkError, match="cannot read"):
        metalink.parse(tmp_path / "absent.meta4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.meta4", "pipe.meta4"]


def test_bad_pieces_and_sizes_on_a_request_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pieces(0, "sha256", ("0" * 64,))
    with pytest.raises(ValueError, match="unknown piece hash"):
        Pieces(4, "crc32", ("0" * 8,))
    with pytest.raises(ValueError, match="64 hex digits"):
        Pieces(4, "sha-256", ("0" * 40,))
    pieces = Pieces(4, "sha256", ("0" * 64,) * 2)
    with pytest.raises(adownload.InvalidRequestError, match="do not fit a file of 20 bytes"):
        Request("http://a.example.org/f", size=20, pieces=pieces)
    with pytest.raises(adownload.InvalidRequestError, match="size must be"):
        Request("http://a.example.org/f", size=-1)
    with pytest.raises(adownload.InvalidRequestError, match="must be a Pieces"):
        Request("http://a.example.org/f", pieces=("0" * 64,))  # type: ignore[arg-type]
    assert "pieces=<2 sha256 hashes>" in repr(Request("http://a.example.org/f", pieces=pieces))


# --- the bookkeeping, without a socket ------------------------------------------------------


def test_segments_are_cut_on_piece_boundaries_and_a_bad_piece_is_redone() -> None:
    assert split([(0, 10_000)], 3, 1000, align=1024) == [(0, 4096), (4096, 8192), (8192, 10_000)]
    layout = Layout([(0, 8192)], 2, 1024, align=1024)
    first = layout.take(0)
    first.position = first.written = 4096
    layout.finish(first)
    second = layout.next()
    assert second is not None
    second.position = second.written = 6000  # still running
    assert layout.ranges() == [(0, 6000)]

    layout.redo(1024, 2048)  # in a finished segment
    layout.redo(4096, 5120)  # at the start of the running one
    assert layout.ranges() == [(0, 1024), (2048, 4096), (5120, 6000)]
    assert list(layout.pending)[:2] == [(4096, 5120), (1024, 2048)]


def test_pieces_are_ready_only_when_the_bytes_on_hand_cover_them(tmp_path: Path) -> None:
    data = data_of(10)
    path = tmp_path / "part"
    path.write_bytes(data[:4] + b"X" + data[5:])
    check = PieceCheck(Pieces(4, "sha256", piece_hashes(data, 4)), 10)
    assert check.ready([(0, 6)]) == [0]
    assert check.ready([(0, 10)]) == [0, 1, 2]
    assert asyncio.run(check.check(path, [0, 1, 2])) == [1]
    assert check.ready([(0, 10)]) == [1]  # the good ones stay verified
    check.invalidate(3, 5)
    assert check.ready([(0, 10)]) == [0, 1]


def test_sources_are_picked_untried_first_then_by_speed_with_strikes_last() -> None:
    sources = Sources([URL("http://a/f"), URL("http://b/f"), URL("http://c/f")])
    a, b, c = sources.all
    assert sources.pick(room=6) is a  # none measured: the caller's order
    a.active = 1
    assert sources.pick(room=6) is b
    b.active = 1
    assert sources.pick(room=6) is c
    c.active = 1
    sources.credit(a, 1_000_000, 1.0)
    sources.credit(b, 4_000_000, 1.0)
    sources.credit(c, 2_000_000, 1.0)
    assert sources.pick(room=6) is b  # the fastest per connection, with one already
    b.active = 3
    assert sources.pick(room=3) is c  # b has the host's connections: the next fastest
    assert not sources.strike(c)  # a first bad piece: demoted, not dropped
    assert sources.pick(room=3) is a  # a source that sent a bad piece comes last
    sources.credit(b, 0, 3.0)  # more connections, no more bytes: b's server caps its total
    assert sources.pick(room=6) is a
    assert sources.strike(c)  # its second: the caller drops it
    c.strikes = 1
    assert sources.drop(a, "gone")
    assert sources.drop(b, "gone")
    assert sources.pick(room=6) is c
    assert not sources.drop(c, "gone")
    assert sources.pick(room=6) is None


def test_link_duplicate_headers_become_mirrors_by_priority() -> None:
    links: list[dict[str, str | URL]] = [
        {"rel": "duplicate", "pri": "2", "url": URL("http://b.example.org/f")},
        {"rel": "duplicate", "url": URL("ftp://c.example.org/f")},
        {"rel": "duplicate", "pri": "1", "url": URL("https://a.example.org/f#x")},
        {"rel": "duplicate", "url": URL("file:///etc/passwd")},
        {"rel": "duplicate", "url": URL("http://user:pw@d.example.org/f")},
        {"rel": "duplicate", "pri": "many", "url": URL("http://e.example.org/f")},
    ]
    assert [str(u) for u in duplicates(links)] == [
        "https://a.example.org/f",
        "http://b.example.org/f",
        "ftp://c.example.org/f",
        "http://e.example.org/f",
    ]
    many: list[dict[str, str | URL]] = [{"url": URL(f"http://m{i}.org/f")} for i in range(100)]
    assert len(duplicates(many)) == MAX_DUPLICATES


# --- downloading from several mirrors at once -------------------------------------------------


async def test_three_mirrors_one_corrupting_one_dying_give_the_file(tmp_path: Path) -> None:
    data = data_of(24 * MIB)
    fast = Mirror(data, rate=6 * MIB)
    corrupting = Mirror(data, rate=3 * MIB, corrupt_at=MIB + 1234)
    dying = Mirror(data, rate=2 * MIB, die_after=3 * MIB)
    events: list[adownload.Event] = []
    async with serve_mirrors(fast, corrupting, dying):
        document = meta4(
            "f.bin", data, [dying.file_url(), corrupting.file_url(), fast.file_url()], PIECE
        )
        (file,) = metalink.parse(document)
        async with Downloader(segments=SEGMENTS, retry=RETRY, on_event=events.append) as dl:
            outcome = await dl.download(file.request(tmp_path))

    assert (tmp_path / "f.bin").read_bytes() == data
    assert listing(tmp_path) == ["f.bin"]
    # The bad piece came again from a good mirror, alone: not the whole file.
    assert corrupting.corrupted is not None
    bad_start = corrupting.corrupted // PIECE * PIECE
    refetched = (bad_start, min(bad_start + PIECE, len(data)))
    assert refetched in fast.ranges + dying.ranges
    sent = fast.sent + corrupting.sent + dying.sent
    assert sent < len(data) + len(data) // 4
    # The dying mirror: nothing after it died, and it was dropped, said once.
    assert dying.dead
    assert dying.requests_after_death <= 1
    dropped = [e for e in events if isinstance(e, SourceDropped)]
    assert [e.source for e in dropped] == [dying.file_url()]
    # The outcome says who sent what.
    shares = dict(outcome.sources)
    assert set(shares) == {fast.file_url(), corrupting.file_url(), dying.file_url()}
    assert shares[dying.file_url()] <= dying.sent
    assert shares[fast.file_url()] > shares[dying.file_url()]
    assert sum(shares.values()) >= len(data)


async def test_a_mirror_that_disagrees_on_the_length_is_dropped(tmp_path: Path) -> None:
    data = data_of(8 * MIB)
    good = Mirror(data, rate=4 * MIB)
    other = Mirror(data + b"extra", rate=8 * MIB)
    events: list[adownload.Event] = []
    async with serve_mirrors(good, other):
        request = Request(
            good.file_url(), tmp_path / "f.bin", mirrors=[other.file_url()],
            checksum=f"sha256:{sha256(data)}",
        )  # fmt: skip
        async with Downloader(segments=SEGMENTS, retry=RETRY, on_event=events.append) as dl:
            outcome = await dl.download(request)

    assert (tmp_path / "f.bin").read_bytes() == data
    (dropped,) = [e for e in events if isinstance(e, SourceDropped)]
    assert dropped.source == other.file_url()
    assert f"says the file is {len(data) + 5} bytes, not {len(data)}" in dropped.reason
    assert dict(outcome.sources).get(other.file_url(), 0) == 0
    # Only the requests sent before its first answer came back reached it, each cut short.
    assert other.requests <= SEGMENTS.count // 2
    assert other.sent <= other.requests * (64 << 10)


async def test_without_proof_of_the_bytes_mirrors_serve_no_segments(tmp_path: Path) -> None:
    """Two copies that might differ are never spliced into one file nobody could check."""
    data = data_of(8 * MIB)
    first, second = Mirror(data, rate=8 * MIB), Mirror(data)
    async with serve_mirrors(first, second):
        request = Request(first.file_url(), tmp_path / "f.bin", mirrors=[second.file_url()])
        async with Downloader(segments=SEGMENTS, retry=RETRY) as dl:
            outcome = await dl.download(request)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert second.requests == 0
    assert outcome.sources == ((first.file_url(), len(data)),)


async def test_link_and_digest_headers_add_mirrors_on_their_own(tmp_path: Path) -> None:
    data = data_of(8 * MIB)
    mirror = Mirror(data, rate=8 * MIB)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    origin = Mirror(data, rate=2 * MIB, headers={"Digest": f"SHA-256={digest}"})
    async with serve_mirrors(origin, mirror):
        origin.headers["Link"] = f"<{mirror.file_url()}>; rel=duplicate; pri=1"
        # Small segments: the fast mirror takes over halves of the slow one's.
        segments = Segments(count=4, min_size=PIECE)
        async with Downloader(segments=segments, retry=RETRY) as dl:
            outcome = await dl.download(Request(origin.file_url(), tmp_path / "f.bin"))
    assert (tmp_path / "f.bin").read_bytes() == data
    assert mirror.requests >= 1
    shares = dict(outcome.sources)
    assert shares[mirror.file_url()] > shares[origin.file_url()]  # 8 MiB/s against 2


async def test_a_bad_piece_in_one_stream_fails_and_keeps_nothing(tmp_path: Path) -> None:
    data = data_of(MIB)
    server = Mirror(data, corrupt_at=300_000)
    async with serve_mirrors(server):
        pieces = Pieces(PIECE, "sha256", piece_hashes(data, PIECE))
        request = Request(server.file_url(), tmp_path / "f.bin", pieces=pieces)
        async with Downloader(segments=SEGMENTS, retry=RETRY) as dl:
            with pytest.raises(ChecksumMismatchError, match="1 of 4 pieces failed") as caught:
                await dl.download(request)
    assert caught.value.source == "pieces"
    assert listing(tmp_path) == []


async def test_a_resume_after_kill_9_keeps_the_verified_pieces(tmp_path: Path) -> None:
    data = data_of(16 * MIB)
    mirrors = Mirror(data, rate=2 * MIB), Mirror(data, rate=2 * MIB)
    dest = tmp_path / "dest"
    dest.mkdir()
    async with serve_mirrors(*mirrors):
        document = tmp_path / "f.meta4"
        document.write_bytes(meta4("f.bin", data, [m.file_url() for m in mirrors], PIECE))
        command = [*COMMAND, "-q", "-s", "4", "-k", "1M", "-d", str(dest), "-M", str(document)]
        process = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, env=cli_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        state = dest / "f.bin.part.state"
        kept: list[list[int]] = []
        for _ in range(400):
            await asyncio.sleep(0.025)
            with contextlib.suppress(OSError, ValueError, KeyError):  # not written yet
                kept = json.loads(state.read_text())["ranges"]
            if sum(end - start for start, end in kept) >= 4 * MIB:
                break
        process.kill()
        await process.wait()
        assert not (dest / "f.bin").exists()
        have = sum(end - start for start, end in kept)
        assert have >= 4 * MIB
        # A byte of a kept piece goes bad on disk: the rerun checks the kept pieces again.
        part = dest / "f.bin.part"
        first_start = kept[0][0]
        with part.open("r+b") as file:
            file.seek(first_start + 10)
            byte = file.read(1)
            file.seek(first_start + 10)
            file.write(bytes([byte[0] ^ 0xFF]))
        before = sum(m.sent for m in mirrors)
        for m in mirrors:
            m.rate = None
        rerun = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, env=cli_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, errors = await rerun.communicate()
        assert rerun.returncode == 0, errors.decode()
        again = sum(m.sent for m in mirrors) - before
    assert (dest / "f.bin").read_bytes() == data
    assert no_parts(dest) == []
    # The rerun fetched the missing bytes and the one bad piece, not what was verified.
    assert again <= len(data) - have + PIECE + 4 * (64 << 10)


# --- the command --------------------------------------------------------------------------


async def run_command(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *args, cwd=cwd, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    assert "Traceback" not in err.decode(), err.decode()
    return process.returncode, out.decode(), err.decode()


async def test_the_command_downloads_what_a_metalink_lists(tmp_path: Path) -> None:
    data, other = data_of(4 * MIB), data_of(1000, seed=2)
    first, second = Mirror(data, rate=8 * MIB), Mirror(data)
    small = Mirror(other, name="small.txt")
    async with serve_mirrors(first, second, small):
        document = meta4("docs/f.bin", data, [first.file_url(), second.file_url()], PIECE)
        document = document.replace(
            b"</metalink>",
            f'<file name="small.txt"><url>{small.file_url()}</url></file></metalink>'.encode(),
        )
        (tmp_path / "docs.meta4").write_bytes(document)
        dest = tmp_path / "out"
        status, out, err = await run_command(
            "-M", "docs.meta4", "-d", str(dest), "-s", "4", "-k", "256K", cwd=tmp_path
        )
    assert status == 0, err
    assert (dest / "docs" / "f.bin").read_bytes() == data
    assert (dest / "small.txt").read_bytes() == other
    assert no_parts(dest) == []
    assert second.requests >= 1  # segments came from both mirrors
    assert f"saved {dest / 'docs' / 'f.bin'} (" in out
    assert "from 2 mirrors)" in out
    assert "2 downloaded" in err


async def test_a_metalink_url_on_the_command_line_is_followed(tmp_path: Path) -> None:
    data = data_of(2 * MIB)
    mirror = Mirror(data)
    async with serve_mirrors(mirror):
        document = Mirror(meta4("f.bin", data, [mirror.file_url()], PIECE), name="f.meta4")
        async with serve_mirrors(document):
            status, _out, err = await run_command(
                "-d", str(tmp_path / "out"), document.file_url(), cwd=tmp_path
            )
    assert status == 0, err
    assert listing(tmp_path / "out") == ["f.bin"]  # the file, not the .meta4
    assert (tmp_path / "out" / "f.bin").read_bytes() == data


async def test_a_metalink_url_that_fails_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    data = data_of(1000)
    mirror = Mirror(data)
    async with serve_mirrors(mirror):
        broken = Mirror(b"<html>not a metalink</html>", name="bad.meta4")
        async with serve_mirrors(broken):
            status, _out, err = await run_command(
                "-d", str(tmp_path / "out"), broken.file_url(), mirror.file_url(), cwd=tmp_path
            )
    assert status == 1
    assert f"failed {broken.file_url()}: " in err
    assert "root is <html>" in err
    assert listing(tmp_path / "out") == ["file.bin"]


async def test_a_hostile_metalink_url_fails_its_item_while_the_others_go_on(
    tmp_path: Path,
) -> None:
    data = data_of(1000)
    mirror = Mirror(data)
    async with serve_mirrors(mirror):
        hostile = Mirror(_v4(f'<file name="x"><size>\u00b2</size>{_URL}</file>'), name="h.meta4")
        async with serve_mirrors(hostile):
            status, _out, err = await run_command(
                "-d", str(tmp_path / "out"), hostile.file_url(), mirror.file_url(), cwd=tmp_path
            )
    assert status == 1, err
    assert f"failed {hostile.file_url()}: " in err
    assert "its size must be a number of bytes" in err
    assert "Traceback" not in err
    assert listing(tmp_path / "out") == ["file.bin"]
    assert (tmp_path / "out" / "file.bin").read_bytes() == data


def test_a_malformed_weaker_hash_beside_a_valid_stronger_one_is_ignored_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = hashlib.sha256(b"x").hexdigest()
    document = _v4(
        f'<file name="x"><hash type="md5">not-hex</hash><hash type="sha-256">{good}</hash>'
        f"{_URL}</file>"
    )
    with caplog.at_level("WARNING", logger="adownload"):
        (file,) = metalink.parse(document)
    assert file.checksum == f"sha256:{good}"  # as aria2c: the stronger one
    assert "ignored its malformed md5 hash; checking its sha256" in caplog.text
    # A malformed stronger one beside a valid weaker one is no claim to fall back from.
    stronger_bad = _v4(
        f'<file name="x"><hash type="md5">{hashlib.md5(b"x").hexdigest()}</hash>'
        f'<hash type="sha-256">not-hex</hash>{_URL}</file>'
    )
    with pytest.raises(MetalinkError, match="64 hex digits"):
        metalink.parse(stronger_bad)


def test_a_skipped_metalink_url_is_logged_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = _v4(f'<file name="x"><url>http://bob:PASSWORD@[::1/f</url>{_URL}</file>')
    with caplog.at_level("DEBUG", logger="adownload"):
        files = metalink.parse(document)
    assert files[0].urls == ("http://a.example.org/f",)
    assert "a Metalink URL is skipped" in caplog.text
    assert "PASSWORD" not in caplog.text
    assert "bob" not in caplog.text


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (_v4(f'<file name="../../x">{_URL}</file>'), "leaves the download directory"),
        (BOMB, "document type declaration"),
        (b"", "not well-formed XML"),
    ],
)
async def test_a_bad_metalink_file_is_a_usage_error_before_anything_runs(
    tmp_path: Path, document: bytes, expected: str
) -> None:
    (tmp_path / "bad.meta4").write_bytes(document)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    status, _out, err = await run_command("-M", "bad.meta4", "-d", "out", cwd=tmp_path)
    assert status == 2
    assert err.startswith("adownload: error: -M bad.meta4: ")
    assert expected in err
    assert listing(tmp_path / "out") == ["keep.txt"]
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


async def test_a_server_with_another_length_than_expected_does_not_serve_the_file(
    tmp_path: Path,
) -> None:
    data = data_of(300_000)
    wrong, right = Mirror(data + b"x"), Mirror(data)
    async with serve_mirrors(wrong, right), Downloader(retry=RETRY) as dl:
        with pytest.raises(adownload.FileMismatchError) as caught:
            await dl.download(Request(wrong.file_url(), tmp_path / "f.bin", size=len(data)))
        assert f"it is {len(data) + 1} bytes, not the {len(data)} expected" in str(caught.value)
        assert listing(tmp_path) == []
        # With a mirror, the mirror serves it.
        request = Request(
            wrong.file_url(), tmp_path / "f.bin", size=len(data), mirrors=[right.file_url()]
        )
        outcome = await dl.download(request)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert outcome.sources == ((right.file_url(), len(data)),)
    assert wrong.requests == 2  # one a download: another file is never asked for again


async def test_an_ftp_mirror_serves_segments_beside_an_http_one(tmp_path: Path) -> None:
    """Metalinks list ftp:// URLs as often as http:// ones: both serve segments at once."""
    data = data_of(8 * MIB)
    root = tmp_path / "ftp"
    root.mkdir()
    (root / "file.bin").write_bytes(data)
    http = Mirror(data, rate=4 * MIB)
    with pyftpdlib_server(root) as port:
        async with serve_mirrors(http):
            ftp_url = f"ftp://127.0.0.1:{port}/file.bin"
            (file,) = metalink.parse(meta4("f.bin", data, [http.file_url(), ftp_url], PIECE))
            async with Downloader(segments=SEGMENTS, retry=RETRY) as dl:
                outcome = await dl.download(file.request(tmp_path / "out"))
    assert (tmp_path / "out" / "f.bin").read_bytes() == data
    shares = dict(outcome.sources)
    assert shares[http.file_url()] > 0
    assert shares[ftp_url] > 0
    assert no_parts(tmp_path / "out") == []
