"""A stranger's server: redirects, lying lengths, broken framing, wrong digests, size caps.

Each test checks what lands on disk (usually nothing), the error a caller sees, and, where it
matters, what the server was asked.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from adownload import (
    ChecksumMismatchError,
    Downloader,
    InvalidRequestError,
    RedirectError,
    RemoteProtocolError,
    Request,
    Retry,
    SizeLimitError,
)
from adownload._protocols import splice as _splice

from .servers import FaultServer, RawServer, raw_response
from .support import FAST, listing, payload, serve_tls

#: Every test runs with bodies read through Python and copied by the kernel (conftest).
pytestmark = pytest.mark.usefixtures("body_path")

SIZE = 200_000


# --- redirects ------------------------------------------------------------------------------


async def test_a_redirect_loop_is_refused_and_leaves_nothing(
    faults: FaultServer, dest: Path
) -> None:
    async with Downloader(dest=dest, retry=FAST) as dl:
        with pytest.raises(RedirectError, match="loop") as caught:
            await dl.download(faults.url("/loop/a.bin"))
    assert caught.value.url == faults.url("/loop/a.bin")
    assert listing(dest) == []
    # Refused, not retried: another attempt would meet the same loop.
    assert len(faults.hits("/loop/a.bin")) == 1


async def test_a_chain_longer_than_max_redirects_is_refused(
    faults: FaultServer, dest: Path
) -> None:
    last = faults.url("/f/a.bin", size=100)
    middle = faults.url("/r/b.bin", to=last)
    first = faults.url("/r/a.bin", to=middle)
    async with Downloader(dest=dest, max_redirects=1) as dl:
        with pytest.raises(RedirectError, match="more than 1 redirects"):
            await dl.download(first)
    assert listing(dest) == []
    assert faults.hits("/f/a.bin") == []


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/a.bin", "data:text/plain,hello"]
)
async def test_a_redirect_to_another_scheme_is_refused(
    faults: FaultServer, dest: Path, target: str
) -> None:
    async with Downloader(dest=dest, retry=FAST) as dl:
        with pytest.raises(RedirectError, match="refused redirect"):
            await dl.download(faults.url("/r/passwd", to=target))
    assert listing(dest) == []
    assert len(faults.log) == 1


async def test_credentials_stay_behind_when_a_redirect_leaves_the_host(
    faults: FaultServer, dest: Path
) -> None:
    target = faults.alt_url("/f/t.bin", size=SIZE)
    url = faults.url("/r/report.bin", to=target)
    async with Downloader(dest=dest, headers={"Cookie": "sid=secret-cookie"}) as dl:
        outcome = await dl.download(url, headers={"Authorization": "Bearer secret-token"})
    first, second = faults.log
    assert first.headers["Authorization"] == "Bearer secret-token"
    assert first.headers["Cookie"] == "sid=secret-cookie"
    assert second.host.startswith("127.0.0.2")
    assert "Authorization" not in second.headers
    assert "Cookie" not in second.headers
    # Named after the URL asked for, never after the redirect target (wget CVE-2010-2252).
    assert outcome.path == dest / "report.bin"
    assert outcome.final_url == target
    assert (dest / "report.bin").read_bytes() == payload("t.bin", SIZE)
    assert listing(dest) == ["report.bin"]


async def test_credentials_go_along_a_redirect_on_the_same_host(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/r/a.bin", to=faults.url("/f/a.bin", size=10))
    async with Downloader(dest=dest) as dl:
        await dl.download(url, headers={"Authorization": "Bearer same-host"})
    assert faults.log[1].headers["Authorization"] == "Bearer same-host"


@pytest.fixture
async def https_redirect(
    tls_certificate: tuple[Path, Path],
) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """An https server whose /to?url=X answers `302 Location: X`; and a context trusting it."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    app = web.Application()
    app.router.add_get("/to/{name}", redirect)
    async with serve_tls(app, tls_certificate) as served:
        yield served


@pytest.mark.parametrize("allow", [False, True])
async def test_a_downgrade_from_https_to_plain_http_is_refused_unless_allowed(
    faults: FaultServer,
    dest: Path,
    https_redirect: tuple[str, ssl.SSLContext],
    allow: bool,
) -> None:
    base, context = https_redirect
    plain = faults.url("/f/a.bin", size=SIZE)
    url = f"{base}/to/a.bin?url={plain}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
        Downloader(dest=dest, session=session, allow_downgrade=allow) as dl,
    ):
        if allow:
            outcome = await dl.download(url)
            assert outcome.final_url == plain
            assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)
        else:
            with pytest.raises(RedirectError, match="https to plain http"):
                await dl.download(url)
            assert listing(dest) == []
            assert faults.log == []


# --- lengths and framing -------------------------------------------------------------------


def _raw_ok(headers: list[tuple[str, str]], body: bytes) -> bytes:
    return raw_response(headers=headers, body=body)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([("Content-Length", "5"), ("Content-Length", "5")], b"hello"),
        ([("Content-Length", "5"), ("Content-Length", "7")], b"hello!!"),
        ([("Content-Length", "5x")], b"hello"),
        ([("Content-Length", "-5")], b"hello"),
        ([("Content-Length", "+5")], b"hello"),
        ([("Transfer-Encoding", "chunked")], b"-5\r\nhello\r\n0\r\n\r\n"),
        ([("Transfer-Encoding", "chunked")], b"zz\r\nhello\r\n0\r\n\r\n"),
        ([("Transfer-Encoding", "chunked")], b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ],
    ids=[
        "duplicate-length",
        "conflicting-lengths",
        "malformed-length",
        "negative-length",
        "signed-length",
        "negative-chunk",
        "malformed-chunk",
        "oversized-chunk",
    ],
)
async def test_ambiguous_or_malformed_framing_is_an_error_and_saves_nothing(
    raw: RawServer, dest: Path, headers: list[tuple[str, str]], body: bytes
) -> None:
    raw.script("a.bin", _raw_ok(headers, body))
    async with Downloader(dest=dest, retry=Retry(attempts=1)) as dl:
        with pytest.raises(RemoteProtocolError):
            await dl.download(raw.url("a.bin"))
    assert listing(dest) == []


async def test_a_body_longer_than_content_length_is_an_error_and_saves_nothing(
    raw: RawServer, dest: Path
) -> None:
    # More bytes than announced: the server's framing cannot be trusted, so neither can the file.
    raw.script("a.bin", _raw_ok([("Content-Length", "5")], b"helloEXTRA-BYTES"))
    async with Downloader(dest=dest, retry=Retry(attempts=1)) as dl:
        with pytest.raises(RemoteProtocolError):
            await dl.download(raw.url("a.bin"))
    assert listing(dest) == []


async def test_a_body_shorter_than_content_length_is_never_committed(
    raw: RawServer, dest: Path
) -> None:
    raw.script("a.bin", _raw_ok([("Content-Length", "10")], b"hello"))
    async with Downloader(dest=dest, retry=Retry(attempts=2, backoff=0.01)) as dl:
        with pytest.raises(RemoteProtocolError):
            await dl.download(raw.url("a.bin"))
    # No validators: nothing resumable is kept either.
    assert listing(dest) == []
    assert raw.hits("a.bin") == 2


# --- size caps ------------------------------------------------------------------------------


async def test_a_content_length_over_the_cap_is_refused_before_any_byte(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/huge.iso", ["announce:10000000000000"])
    async with Downloader(dest=dest, max_size=1 << 20, retry=FAST) as dl:
        with pytest.raises(SizeLimitError) as caught:
            await dl.download(faults.url("/f/huge.iso", size=SIZE))
    assert caught.value.limit == 1 << 20
    assert listing(dest) == []
    assert len(faults.log) == 1  # not retried
    assert faults.log[0].body_sent == 0


async def test_a_body_without_length_is_cut_off_at_the_cap(faults: FaultServer, dest: Path) -> None:
    async with Downloader(dest=dest) as dl:
        with pytest.raises(SizeLimitError):
            await dl.download(
                Request(faults.url("/f/big.bin", size=SIZE, chunked=1), max_size=SIZE // 4)
            )
        # Per item: another file under the same downloader is unaffected.
        ok = await dl.download(faults.url("/f/small.bin", size=1000, chunked=1))
    assert ok.size == 1000
    assert listing(dest) == ["small.bin"]


async def test_a_decompression_bomb_stops_at_the_cap(raw: RawServer, dest: Path) -> None:
    bomb = gzip.compress(b"\0" * (20 << 20))
    assert len(bomb) < 100_000
    raw.script(
        "bomb.txt",
        _raw_ok([("Content-Length", str(len(bomb))), ("Content-Encoding", "gzip")], bomb),
    )
    async with Downloader(dest=dest, decode_content=True, max_size=1 << 20) as dl:
        with pytest.raises(SizeLimitError):
            await dl.download(raw.url("bomb.txt"))
    assert listing(dest) == []


async def test_decoding_is_opt_in_and_then_saves_the_decoded_bytes(
    raw: RawServer, dest: Path
) -> None:
    text = b"hello, world\n" * 1000
    packed = gzip.compress(text)
    reply = _raw_ok([("Content-Length", str(len(packed))), ("Content-Encoding", "gzip")], packed)
    raw.script("a.txt", reply)
    raw.script("b.txt", reply)
    async with Downloader(dest=dest) as dl:
        await dl.download(raw.url("a.txt"))
    async with Downloader(dest=dest, decode_content=True) as dl:
        await dl.download(raw.url("b.txt"))
    assert (dest / "a.txt").read_bytes() == packed
    assert (dest / "b.txt").read_bytes() == text


# --- digests --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["content", "repr", "legacy"])
async def test_a_wrong_digest_header_fails_and_keeps_nothing(
    faults: FaultServer, dest: Path, kind: str
) -> None:
    url = faults.url("/f/a.bin", size=SIZE, digest=kind, bad_digest=1)
    async with Downloader(dest=dest, retry=FAST) as dl:
        with pytest.raises(ChecksumMismatchError) as caught:
            await dl.download(url)
    assert caught.value.url == url
    assert listing(dest) == []  # no final file, and no .part kept for resuming
    assert len(faults.log) == 1  # the same bytes would come again: not retried


@pytest.mark.parametrize("kind", ["content", "repr", "legacy"])
async def test_a_right_digest_header_passes(faults: FaultServer, dest: Path, kind: str) -> None:
    async with Downloader(dest=dest) as dl:
        await dl.download(faults.url("/f/a.bin", size=SIZE, digest=kind))
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)


async def test_digest_headers_are_ignored_when_verification_is_off(
    faults: FaultServer, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=SIZE, digest="repr", bad_digest=1)
    async with Downloader(dest=dest, verify_digests=False) as dl:
        await dl.download(url)
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)


async def test_a_resumed_download_is_checked_against_the_whole_file_digest(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/a.bin", [f"cut_after:{SIZE // 2}", "ok"])
    url = faults.url("/f/a.bin", size=SIZE, digest="repr,content")
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(url)
    assert outcome.resumed_from > 0
    assert (dest / "a.bin").read_bytes() == payload("a.bin", SIZE)


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5", "blake2b", "sha3_256"])
async def test_a_checksum_is_checked_while_streaming(
    faults: FaultServer, dest: Path, algorithm: str
) -> None:
    data = payload("a.bin", SIZE)
    good = hashlib.new(algorithm, data).hexdigest()
    bad = hashlib.new(algorithm, data + b"!").hexdigest()
    async with Downloader(dest=dest, retry=FAST) as dl:
        with pytest.raises(ChecksumMismatchError):
            await dl.download(faults.url("/f/a.bin", size=SIZE), checksum=f"{algorithm}:{bad}")
        assert listing(dest) == []
        await dl.download(faults.url("/f/a.bin", size=SIZE), checksum=f"{algorithm}:{good}")
    assert (dest / "a.bin").read_bytes() == data
    assert len(faults.log) == 2  # the mismatch was not retried


@pytest.mark.parametrize(
    "checksum", ["sha256", "sha256:", "sha256:xyz", "nosuchalgo:00", "sha256:" + "0" * 10]
)
def test_a_malformed_checksum_is_a_clear_error(checksum: str) -> None:
    with pytest.raises(InvalidRequestError, match="checksum"):
        Request("http://127.0.0.1/a.bin", checksum=checksum)


# --- disk trouble ---------------------------------------------------------------------------

_DISK_FULL_SCRIPT = """
import asyncio, json, resource, signal, sys
import adownload

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead


async def main():
    small, big, dest, splice_min = sys.argv[1:]
    adownload._protocols.splice.SPLICE_MIN = int(splice_min)  # the body path this test runs with
    async with adownload.Downloader(dest=dest) as dl:
        await dl.download(small)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            await dl.download(big)
        except adownload.DownloadError as exc:
            print(json.dumps({"type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                              "path": str(getattr(exc, "path", "")), "message": str(exc)}))


asyncio.run(main())
"""


def test_a_full_disk_is_a_storage_error_naming_the_path_and_keeps_other_files(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    small = threaded_faults.url("/f/small.bin", size=50_000)
    big = threaded_faults.url("/f/big.bin", size=3_000_000)
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_SCRIPT, small, big, str(dest), str(_splice.SPLICE_MIN)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    error = json.loads(result.stdout)
    assert error["type"] == "StorageError"
    assert error["errno"] == errno.EFBIG
    assert error["path"].startswith(str(dest / "big.bin"))
    assert "big.bin" in error["message"]
    assert (dest / "small.bin").read_bytes() == payload("small.bin", 50_000)
    assert not (dest / "big.bin").exists()
