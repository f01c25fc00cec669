"""The hostile servers themselves behave as designed (checked with plain aiohttp requests), so
that a failure in the resilience tests is adownload's, not the test server's."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import aiohttp
import pytest
from multidict import CIMultiDict

from .servers import FaultServer, RawServer, raw_response
from .support import payload

SIZE = 300_000


async def _get(
    url: str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers=headers or {}) as response,
    ):
        body = await response.read()
        return response.status, CIMultiDict(response.headers), body


async def test_files_carry_validators_and_honour_ranges(faults: FaultServer) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    data = payload("a.bin", SIZE)
    status, headers, body = await _get(url)
    assert (status, body) == (200, data)
    assert headers["ETag"] == faults.etag("/f/a.bin")
    assert headers["ETag"] == '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    assert headers["Last-Modified"].endswith("GMT")
    assert headers["Accept-Ranges"] == "bytes"

    status, headers, body = await _get(url, {"Range": "bytes=1000-"})
    assert (status, body) == (206, data[1000:])
    assert headers["Content-Range"] == f"bytes 1000-{SIZE - 1}/{SIZE}"
    status, headers, body = await _get(url, {"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{SIZE}")
    status, headers, body = await _get(url, {"Range": f"bytes={SIZE}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{SIZE}")

    etag, date = faults.etag("/f/a.bin"), faults.last_modified("/f/a.bin")
    for validator in (etag, date):
        status, _, body = await _get(url, {"Range": "bytes=5-", "If-Range": validator})
        assert (status, body) == (206, data[5:])
    status, _, body = await _get(url, {"Range": "bytes=5-", "If-Range": '"stale"'})
    assert (status, body) == (200, data)
    assert [hit.range_start for hit in faults.hits("/f/a.bin")] == [None, 1000, 10, SIZE, 5, 5, 5]
    assert faults.log[-1].if_range == '"stale"'
    assert faults.log[-1].body_sent == SIZE


async def test_a_new_version_has_new_bytes_and_validators(faults: FaultServer) -> None:
    old = faults.content("/f/a.bin", SIZE)
    old_tag, old_date = faults.etag("/f/a.bin"), faults.last_modified("/f/a.bin")
    faults.set_content("/f/a.bin", b"new bytes")
    assert faults.etag("/f/a.bin") != old_tag
    assert faults.last_modified("/f/a.bin") != old_date
    status, _, body = await _get(
        faults.url("/f/a.bin", size=SIZE), {"Range": "bytes=4-", "If-Range": old_tag}
    )
    assert (status, body) == (200, b"new bytes")
    faults.plan("/f/a.bin", ["change+ok"])
    status, _, body = await _get(faults.url("/f/a.bin"))
    assert status == 200
    assert body == faults.content("/f/a.bin") not in (old, b"new bytes")


async def test_cut_and_reset_stop_the_body_where_planned(faults: FaultServer) -> None:
    faults.plan("/f/a.bin", ["cut_after:100000", "reset_after:70000", "ok"])
    url = faults.url("/f/a.bin", size=SIZE)
    with pytest.raises(aiohttp.ClientPayloadError):
        await _get(url)
    with pytest.raises(aiohttp.ClientError):
        await _get(url)
    status, _, body = await _get(url)
    assert (status, body) == (200, payload("a.bin", SIZE))
    assert [(h.step, h.body_sent) for h in faults.log] == [
        ("cut_after:100000", 100_000),
        ("reset_after:70000", 70_000),
        ("ok", SIZE),
    ]


async def test_statuses_ignored_and_bad_ranges(faults: FaultServer) -> None:
    url = faults.url("/f/a.bin", size=SIZE)
    faults.plan("/f/a.bin", ["status:503:7", "status:429:date+30", "ignore_range", "bad_range"])
    status, headers, _ = await _get(url)
    assert (status, headers["Retry-After"]) == (503, "7")
    status, headers, _ = await _get(url)
    assert status == 429
    assert headers["Retry-After"].endswith("GMT")
    status, headers, body = await _get(url, {"Range": "bytes=100-"})
    assert (status, body, "Content-Range" in headers) == (200, payload("a.bin", SIZE), False)
    status, headers, body = await _get(url, {"Range": "bytes=100-"})
    assert (status, headers["Content-Range"]) == (206, f"bytes 1100-{SIZE - 1}/{SIZE}")
    assert body == payload("a.bin", SIZE)[1100:]


async def test_announce_sends_nothing_to_a_client_that_leaves(faults: FaultServer) -> None:
    faults.plan("/f/a.bin", ["announce:10000000000"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(faults.url("/f/a.bin", size=SIZE)) as response,
    ):
        assert response.content_length == 10_000_000_000
    await asyncio.sleep(0.5)
    assert faults.log[0].body_sent == 0


async def test_digest_headers_describe_the_content(faults: FaultServer) -> None:
    data = payload("d.bin", 5000)
    url = faults.url("/f/d.bin", size=5000, digest="content,repr,legacy")
    _, headers, _ = await _get(url, {"Range": "bytes=1000-"})
    part = hashlib.sha256(data[1000:]).digest()
    whole = hashlib.sha256(data).digest()
    assert headers["Content-Digest"] == f"sha-256=:{base64.b64encode(part).decode()}:"
    assert headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(whole).decode()}:"
    assert headers["Digest"] == f"SHA-256={base64.b64encode(whole).decode()}"
    _, bad, _ = await _get(faults.url("/f/d.bin", size=5000, digest="repr", bad_digest=1))
    assert bad["Repr-Digest"] != headers["Repr-Digest"]


async def test_redirects_and_the_second_host(faults: FaultServer) -> None:
    target = faults.alt_url("/f/t.bin", size=10)
    async with aiohttp.ClientSession() as session:
        async with session.get(faults.url("/r/a.bin", to=target)) as response:
            assert str(response.url) == target
            assert await response.read() == payload("t.bin", 10)
        with pytest.raises(aiohttp.TooManyRedirects):
            await session.get(faults.url("/loop/a.bin"), max_redirects=3)
    assert [hit.host.split(":")[0] for hit in faults.log[:2]] == ["127.0.0.1", "127.0.0.2"]
    assert 1 < len(faults.hits("/loop/a.bin")) <= 4


async def test_raw_server_sends_the_exact_bytes(raw: RawServer) -> None:
    raw.script("a.bin", raw_response(headers=[("Content-Length", "3")], body=b"abc"))
    status, headers, body = await _get(raw.url("a.bin"))
    assert (status, body, headers["Connection"]) == (200, b"abc", "close")
    raw.script("b.bin", raw_response(headers=[("Content-Length", "10")], body=b"abc"))
    with pytest.raises(aiohttp.ClientPayloadError):
        await _get(raw.url("b.bin"))
    raw.script("c.bin", b"HTTP/1.1 2x0 OK\r\n\r\n")
    with pytest.raises(aiohttp.ClientResponseError):
        await _get(raw.url("c.bin"))
    assert [name for name, _ in raw.log] == ["a.bin", "b.bin", "c.bin"]
