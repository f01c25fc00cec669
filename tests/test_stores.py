"""Object stores (s3://) through the same engine, against moto's S3 server on 127.0.0.1.

Each test checks the bytes on disk, what the store was asked (through `S3Front`: ranges and
If-Match on resume, no object GET on a mirror rerun, signed or not) and the error a caller sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import adownload
import adownload.metalink as adownload_metalink
from adownload import (
    Downloader,
    Existing,
    HTTPStatusError,
    InvalidRequestError,
    Request,
    Retry,
    Segments,
)
from adownload._model.stores import store_config

from .proxy_servers import needs_tinyproxy, tinyproxy
from .store_servers import ACCESS_KEY, SECRET_KEY, S3Front, moto_server, s3_front
from .support import FAST, dask_client, listing

MIB = 1 << 20

tinyproxy_only = pytest.mark.skipif(not needs_tinyproxy, reason="needs tinyproxy")


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
async def s3(moto: str) -> AsyncIterator[S3Front]:
    async with s3_front(moto) as front:
        yield front


def signed(front: S3Front) -> dict[str, str]:
    return {
        "endpoint": front.endpoint,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "region": "us-east-1",
    }


def body(size: int, seed: str = "v1") -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


# --- downloads -------------------------------------------------------------------------------


async def test_an_object_is_saved_with_its_bytes(s3: S3Front, tmp_path: Path) -> None:
    data = body(300_000)
    etag = s3.put("docs/a.zip", data)
    async with Downloader(dest=tmp_path, store_options=signed(s3)) as dl:
        outcome = await dl.download(f"s3://{s3.bucket}/docs/a.zip")
    assert outcome.ok
    assert outcome.status == 200
    assert outcome.path == tmp_path / "a.zip"
    assert outcome.path.read_bytes() == data
    assert outcome.etag == etag
    assert listing(tmp_path) == ["a.zip"]
    [asked] = s3.gets()
    assert asked.range is None
    assert asked.signed


async def test_a_large_object_comes_in_ranged_segments(s3: S3Front, tmp_path: Path) -> None:
    data = body(12 * MIB)
    etag = s3.put("big.bin", data)
    async with Downloader(
        dest=tmp_path,
        store_options=signed(s3),
        segments=Segments(count=4, min_size=MIB),
        limits=adownload.Limits(max_per_host=4),
    ) as dl:
        outcome = await dl.download(f"s3://{s3.bucket}/big.bin")
    assert outcome.ok, outcome.error
    assert (tmp_path / "big.bin").read_bytes() == data
    ranged = [a for a in s3.gets("big.bin") if a.range is not None]
    assert len(ranged) >= 2, s3.gets()
    assert all(a.if_match == etag for a in ranged)  # a changed object is never spliced in
    assert listing(tmp_path) == ["big.bin"]


async def test_newer_only_and_spider_work_as_for_http(s3: S3Front, tmp_path: Path) -> None:
    s3.put("n.txt", b"first")
    url = f"s3://{s3.bucket}/n.txt"
    async with Downloader(dest=tmp_path, store_options=signed(s3)) as dl:
        first = await dl.download(url)
    async with Downloader(dest=tmp_path, store_options=signed(s3), existing=Existing.NEWER) as dl:
        again = await dl.download(url)
        checked = await dl.download(Request(url, check_only=True))
    assert first.ok
    assert again.skipped, again.error
    assert again.status == 304
    assert checked.ok
    assert checked.size == 5
    assert checked.status == 200
    assert (tmp_path / "n.txt").read_bytes() == b"first"
    assert listing(tmp_path) == ["n.txt"]


async def test_a_missing_key_is_a_failed_outcome_like_a_404(s3: S3Front, tmp_path: Path) -> None:
    s3.put("here.txt", b"here")
    async with Downloader(dest=tmp_path, store_options=signed(s3)) as dl:
        here, missing, no_bucket = await dl.download_many(
            [
                f"s3://{s3.bucket}/here.txt",
                f"s3://{s3.bucket}/missing.txt",
                "s3://no-such-bucket-here/x.txt",
            ]
        )
    assert here.ok
    assert isinstance(missing.error, HTTPStatusError)
    assert missing.error.status == 404
    assert missing.status == 404
    assert str(missing.error) == f"no such object: s3://{s3.bucket}/missing.txt (404 NoSuchKey)"
    assert isinstance(no_bucket.error, HTTPStatusError)
    assert "no such bucket" in str(no_bucket.error)
    assert listing(tmp_path) == ["here.txt"]
    assert len(s3.gets("missing.txt")) == 1  # a 404 is final


async def test_a_cut_body_continues_where_it_stopped(s3: S3Front, tmp_path: Path) -> None:
    data = body(MIB)
    etag = s3.put("cut.bin", data)
    s3.plan("cut.bin", ["cut:300000"])
    async with Downloader(dest=tmp_path, store_options=signed(s3), retry=FAST) as dl:
        outcome = await dl.download(f"s3://{s3.bucket}/cut.bin")
    assert outcome.ok, outcome.error
    assert (tmp_path / "cut.bin").read_bytes() == data
    first, second = s3.gets("cut.bin")
    assert first.range is None
    assert first.sent == 300_000
    assert second.range is not None
    assert second.range.startswith("bytes=")
    start = int(second.range.split("=")[1].split("-")[0])
    assert 0 < start <= 300_000  # what was written is not asked for again
    assert second.if_match == etag
    assert outcome.resumed_from == start


async def test_a_changed_object_is_fetched_whole_never_spliced(s3: S3Front, tmp_path: Path) -> None:
    old, new = body(MIB, "old"), body(MIB, "new")
    s3.put("doc.bin", old)
    s3.plan("doc.bin", ["cut:400000"])
    async with Downloader(dest=tmp_path, store_options=signed(s3), retry=Retry(attempts=1)) as dl:
        first = await dl.download_many([f"s3://{s3.bucket}/doc.bin"])
    assert not first[0].ok
    assert listing(tmp_path) == ["doc.bin.part", "doc.bin.part.state"]  # as after a kill
    state = (tmp_path / "doc.bin.part.state").read_text()
    assert f"s3://{s3.bucket}/doc.bin" in state
    assert SECRET_KEY not in state
    assert ACCESS_KEY not in state
    s3.put("doc.bin", new)  # the object changes between the runs
    async with Downloader(dest=tmp_path, store_options=signed(s3), retry=FAST) as dl:
        outcome = await dl.download(f"s3://{s3.bucket}/doc.bin")
    assert outcome.ok, outcome.error
    assert (tmp_path / "doc.bin").read_bytes() == new
    assert outcome.resumed_from == 0
    asked = s3.gets("doc.bin")
    assert asked[1].range is not None
    assert asked[1].status == 412
    assert asked[2].range is None
    assert asked[2].sent == MIB


async def test_slowdown_is_retried_and_counted(s3: S3Front, tmp_path: Path) -> None:
    s3.put("busy.txt", b"busy")
    s3.plan("busy.txt", ["status:503:SlowDown", "status:503:SlowDown"])
    events: list[adownload.Event] = []
    async with Downloader(
        dest=tmp_path, store_options=signed(s3), retry=FAST, on_event=events.append
    ) as dl:
        outcome = await dl.download(f"s3://{s3.bucket}/busy.txt")
    assert outcome.ok
    assert outcome.attempts == 3
    retrying = [e for e in events if isinstance(e, adownload.Retrying)]
    assert [e.error.status for e in retrying] == [503, 503]  # type: ignore[attr-defined]
    assert (tmp_path / "busy.txt").read_bytes() == b"busy"


async def test_slowdown_cuts_an_adaptive_host_limit(s3: S3Front, tmp_path: Path) -> None:
    for n in range(4):
        s3.put(f"f{n}.txt", b"x")
    s3.plan("f0.txt", ["status:503:SlowDown"])
    limits = adownload.Limits(max_per_host=8, adaptive=True)
    async with Downloader(dest=tmp_path, store_options=signed(s3), retry=FAST, limits=limits) as dl:
        outcomes = await dl.download_many(f"s3://{s3.bucket}/f{n}.txt" for n in range(4))
        limit = dl.host_limits()[f"s3://{s3.bucket}"]
    assert all(o.ok for o in outcomes)
    assert limit.throttled == 1
    assert limit.lowest < 2


async def test_access_denied_is_final_names_the_bucket_and_no_secret(
    s3: S3Front, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3.put("private.txt", b"private")
    s3.plan("private.txt", ["status:403:AccessDenied"])
    events: list[adownload.Event] = []
    caplog.set_level(logging.DEBUG, logger="adownload")
    async with Downloader(
        dest=tmp_path, store_options=signed(s3), retry=FAST, on_event=events.append
    ) as dl:
        [outcome] = await dl.download_many([f"s3://{s3.bucket}/private.txt"])
    error = outcome.error
    assert isinstance(error, HTTPStatusError)
    assert error.status == 403
    assert f"access denied to the bucket {s3.bucket!r}" in str(error)
    assert len(s3.gets("private.txt")) == 1  # final: not retried
    assert listing(tmp_path) == []
    shown = " ".join(
        [str(error), repr(outcome), caplog.text, *map(repr, events), *map(str, events)]
    )
    assert SECRET_KEY not in shown
    assert SECRET_KEY not in repr(store_config(signed(s3), trust_env=False))


async def test_an_expired_token_is_final_and_says_so(s3: S3Front, tmp_path: Path) -> None:
    s3.put("t.txt", b"t")
    s3.plan("t.txt", ["status:400:ExpiredToken"])
    options = {**signed(s3), "session_token": "an-old-token-Z9"}
    async with Downloader(dest=tmp_path, store_options=options, retry=FAST) as dl:
        [outcome] = await dl.download_many([f"s3://{s3.bucket}/t.txt"])
    assert isinstance(outcome.error, HTTPStatusError)
    assert outcome.error.status == 400
    assert str(outcome.error) == (
        f"the credentials for the bucket {s3.bucket!r} were refused for s3://{s3.bucket}/t.txt"
        " (400 ExpiredToken): they are wrong or expired"
    )
    assert "an-old-token-Z9" not in repr(outcome)
    assert len(s3.gets("t.txt")) == 1
    assert listing(tmp_path) == []


def test_an_unknown_region_or_option_type_is_refused_at_once() -> None:
    with pytest.raises(InvalidRequestError, match="'Mars Base!' is not a region name"):
        Downloader(store_options={"region": "Mars Base!"})
    with pytest.raises(TypeError, match="store option 'endpoint' must be a string"):
        Downloader(store_options={"endpoint": ["http://a"]})
    with pytest.raises(TypeError, match="store_options must be a mapping"):
        Downloader(store_options="endpoint=x")  # type: ignore[arg-type]


async def test_no_credentials_send_unsigned_requests(s3: S3Front, tmp_path: Path) -> None:
    s3.put("public.txt", b"public", public=True)
    async with Downloader(dest=tmp_path, store_options={"endpoint": s3.endpoint}) as dl:
        outcome = await dl.download(f"s3://{s3.bucket}/public.txt")
    assert outcome.ok
    [asked] = s3.gets()
    assert not asked.signed  # as aws-cli's --no-sign-request


async def test_the_environment_is_read_only_when_trusted(
    s3: S3Front, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put("env.txt", b"env", public=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    url = f"s3://{s3.bucket}/env.txt"
    async with Downloader(dest=tmp_path / "trusted", trust_env=True) as dl:
        trusted = await dl.download(url)
    # Not trusted: the variables are not read (the endpoint must be given, and no key is).
    async with Downloader(dest=tmp_path / "not", store_options={"endpoint": s3.endpoint}) as dl:
        untrusted = await dl.download(url)
    assert trusted.ok
    assert untrusted.ok
    first, second = s3.gets()
    assert first.signed
    assert not second.signed


def test_an_aws_profile_is_read_from_the_shared_files(tmp_path: Path) -> None:
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n"
        "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = w\n"
    )
    (aws / "config").write_text("[profile work]\nregion = eu-west-3\n")
    env = {"HOME": str(tmp_path), "AWS_PROFILE": "work"}
    config = store_config(None, trust_env=True, environ=env).for_scheme("s3")
    assert config == {"access_key_id": "WORKKEY", "secret_access_key": "w", "region": "eu-west-3"}
    env["AWS_ACCESS_KEY_ID"] = "FROMENV"  # the variables win over the files
    assert store_config(None, trust_env=True, environ=env).for_scheme("s3")["access_key_id"] == (
        "FROMENV"
    )
    assert store_config(None, trust_env=False, environ=env).for_scheme("s3") == {}
    with pytest.raises(InvalidRequestError, match="AWS_PROFILE names 'nope'"):
        store_config(None, trust_env=True, environ={"HOME": str(tmp_path), "AWS_PROFILE": "nope"})


async def test_the_cache_fetches_an_object_once(s3: S3Front, tmp_path: Path) -> None:
    data = body(100_000)
    s3.put("data/iris.csv", data)
    checksum = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"s3://{s3.bucket}/data/iris.csv"
    cache = adownload.Cache(tmp_path / "cache")
    async with Downloader(store_options=signed(s3)) as dl:
        first = await dl.fetch(url, checksum=checksum, cache=cache)
        second = await dl.fetch(url, checksum=checksum, cache=cache)
    assert first == second
    assert first.read_bytes() == data
    assert first.name == "iris.csv"
    assert len(s3.gets()) == 1  # the second answered from the cache, no request
    for stored in (tmp_path / "cache").rglob("*"):  # its records name the URL, no secret
        if stored.is_file() and stored != first:
            assert SECRET_KEY.encode() not in stored.read_bytes(), stored


async def test_metalink_sources_may_be_object_stores(s3: S3Front, tmp_path: Path) -> None:
    data = body(200_000)
    s3.put("pub/file.bin", data)
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="file.bin">'
        f'<hash type="sha-256">{hashlib.sha256(data).hexdigest()}</hash>'
        f"<url>s3://{s3.bucket}/pub/file.bin</url></file></metalink>"
    ).encode()
    [file] = adownload_metalink.parse(document)
    async with Downloader(dest=tmp_path, store_options=signed(s3)) as dl:
        outcome = await dl.download(file.request(tmp_path))
    assert outcome.ok, outcome.error
    assert (tmp_path / "file.bin").read_bytes() == data


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["s3://Bad_Bucket!/k", "s3://ab/k", "s3://a..b/k", "s3://user:pw@bucket/k", "az://a--b/k"],
)
def test_a_malformed_bucket_is_refused_before_anything_is_sent(url: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Request(url)
    assert "pw" not in str(raised.value)


async def test_bad_store_input_fails_its_file_and_the_batch_goes_on(
    s3: S3Front, tmp_path: Path
) -> None:
    s3.put("ok.txt", b"ok")
    good = f"s3://{s3.bucket}/ok.txt"
    async with Downloader(dest=tmp_path, store_options=signed(s3)) as dl:
        prefix, control, ok = await dl.download_many(
            [f"s3://{s3.bucket}/docs/", f"s3://{s3.bucket}/a%01b.txt", good]
        )
    assert isinstance(prefix.error, InvalidRequestError)
    assert "names a prefix, not an object" in str(prefix.error)
    assert isinstance(control.error, InvalidRequestError)
    assert ok.ok
    async with Downloader(
        dest=tmp_path, store_options={"colour": "blue"}, existing=Existing.OVERWRITE
    ) as dl:
        [unknown] = await dl.download_many([good])
    assert isinstance(unknown.error, InvalidRequestError)
    assert "unknown S3 store option 'colour'" in str(unknown.error)
    assert listing(tmp_path) == ["ok.txt"]


async def test_an_endpoint_that_is_no_object_store_is_a_clear_error(
    tmp_path: Path, threaded_server: object
) -> None:
    from .servers import Server

    assert isinstance(threaded_server, Server)
    endpoint = threaded_server("/").rstrip("/")
    async with Downloader(dest=tmp_path, store_options={"endpoint": endpoint}) as dl:
        [outcome] = await dl.download_many(["s3://bucket/docs/3.13/python.zip"])
    assert not outcome.ok
    assert "s3://bucket/docs/3.13/python.zip" in str(outcome.error)
    assert listing(tmp_path) == []


async def test_a_web_server_that_answers_200_is_no_object_store(tmp_path: Path) -> None:
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>a web page</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with Downloader(
            dest=tmp_path, store_options={"endpoint": endpoint}, retry=Retry(attempts=1)
        ) as dl:
            [outcome] = await dl.download_many(["s3://bucket/page.html"])
    finally:
        await runner.cleanup()
    assert isinstance(outcome.error, adownload.RemoteProtocolError)
    assert str(outcome.error).startswith(
        "s3://bucket/page.html: the answer is not an object store's: "
    )
    assert listing(tmp_path) == []


async def test_an_unreachable_store_is_a_connect_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        async with Downloader(
            dest=tmp_path, store_options={"endpoint": f"http://127.0.0.1:{port}"}, retry=FAST
        ) as dl:
            [outcome] = await dl.download_many(["s3://bucket/k.txt"])
    assert isinstance(outcome.error, adownload.ConnectError)
    assert listing(tmp_path) == []


# --- the mirror of a prefix ------------------------------------------------------------------


async def test_a_prefix_is_mirrored_and_a_rerun_transfers_no_body(
    s3: S3Front, tmp_path: Path
) -> None:
    tree = {
        "docs/index.html": b"<h1>docs</h1>",
        "docs/3.13/a.zip": body(70_000, "a"),
        "docs/3.13/sub/b.txt": b"b",
        "docs/3.12/c.zip": body(50_000, "c"),
        "other/x.txt": b"not below the prefix",
    }
    for key, data in tree.items():
        s3.put(key, data)
    dest = tmp_path / "copy"
    source = f"s3://{s3.bucket}/docs/"

    async def run(**options: object) -> list[adownload.MirrorChange]:
        changes: list[adownload.MirrorChange] = []
        async with Downloader(store_options=signed(s3)) as dl:
            await adownload.mirror(
                source,
                dest,
                downloader=dl,
                on_change=changes.append,
                **options,  # type: ignore[arg-type]
            )
        return changes

    first = await run()
    assert sorted(c.kind for c in first) == ["new"] * 4
    for key, data in tree.items():
        if key.startswith("docs/"):
            assert (dest / key.removeprefix("docs/")).read_bytes() == data
    assert not (dest / "x.txt").exists()
    s3.asked.clear()
    again = await run()
    assert sorted(c.kind for c in again) == ["unchanged"] * 4
    assert s3.gets() == []  # the listing said it all: no object asked for
    s3.put("docs/3.13/a.zip", body(70_000, "a2"))  # changed: same size, another ETag
    s3.delete("docs/3.12/c.zip")
    s3.asked.clear()
    third = await run(delete=True)
    kinds = {str(c.path.relative_to(dest)): c.kind for c in third if c.path is not None}
    assert kinds["3.13/a.zip"] == "updated"
    assert kinds["3.12/c.zip"] == "deleted"
    assert (dest / "3.13/a.zip").read_bytes() == body(70_000, "a2")
    assert not (dest / "3.12").exists()
    assert [a.key for a in s3.gets()] == ["docs/3.13/a.zip"]
    scoped = tmp_path / "scoped"
    changes: list[adownload.MirrorChange] = []
    async with Downloader(store_options=signed(s3)) as dl:
        await adownload.mirror(
            source,
            scoped,
            downloader=dl,
            include=["*.zip", "index.html"],
            max_depth=1,
            on_change=changes.append,
        )
    assert sorted(str(p.relative_to(scoped)) for p in scoped.rglob("*") if p.is_file()) == [
        ".adownload-mirror.sqlite",
        "3.13/a.zip",
        "index.html",
    ]


async def test_a_long_listing_is_fetched_batch_by_batch(
    s3: S3Front, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 2 (2000 in use): collisions and --delete must hold across batches, where
    # only the paths claimed so far are remembered, on disk.
    import adownload._mirror.listing

    monkeypatch.setattr(adownload._mirror.listing, "STORE_BATCH", 2)
    for n in range(7):
        s3.put(f"b/f{n}.txt", f"file {n}".encode())
    s3.put("b/z/.notes.txt", b"hidden")  # comes to z/notes.txt, as the next one does
    s3.put("b/z/notes.txt", b"notes")
    dest = tmp_path / "copy"

    async def run(**options: object) -> list[adownload.MirrorChange]:
        changes: list[adownload.MirrorChange] = []
        async with Downloader(store_options=signed(s3)) as dl:
            await adownload.mirror(
                f"s3://{s3.bucket}/b/",
                dest,
                downloader=dl,
                on_change=changes.append,
                **options,  # type: ignore[arg-type]
            )
        return changes

    first = await run()
    assert sorted(c.kind for c in first) == ["failed"] + ["new"] * 8
    [failed] = [c for c in first if c.kind == "failed"]
    assert "would be saved as z/notes.txt" in str(failed.error)
    assert (dest / "z/notes.txt").read_bytes() == b"hidden"  # the first listed keeps it
    s3.delete("b/f0.txt")
    s3.delete("b/f5.txt")
    second = await run(delete=True)
    deleted = sorted(
        str(c.path.relative_to(dest)) for c in second if c.kind == "deleted" and c.path
    )
    assert deleted == ["f0.txt", "f5.txt"]
    assert sorted(p.name for p in dest.iterdir() if p.suffix == ".txt") == [
        f"f{n}.txt" for n in (1, 2, 3, 4, 6)
    ]


async def test_hostile_keys_never_leave_dest(s3: S3Front, tmp_path: Path) -> None:
    s3.put("p/ok.txt", b"ok")
    s3.put("p/a/../evil.txt", b"evil")
    s3.put("p//double.txt", b"double")
    s3.put("p/ctl\x01.txt", b"control")
    long = "n" * 300 + ".txt"
    s3.put(f"p/{long}", b"long")
    dest = tmp_path / "copy"
    changes: list[adownload.MirrorChange] = []
    async with Downloader(store_options=signed(s3)) as dl:
        report = await adownload.mirror(
            f"s3://{s3.bucket}/p/", dest, downloader=dl, on_change=changes.append
        )
    failed = [c for c in changes if c.kind == "failed"]
    assert len(failed) == 3, changes
    assert all(isinstance(c.error, adownload.UnsafePathError) for c in failed)
    assert not report.complete  # keys were skipped: a --delete would delete nothing
    saved = sorted(p.name for p in dest.rglob("*") if p.is_file())
    assert "ok.txt" in saved
    assert "evil.txt" not in saved
    assert report.new == 2  # ok.txt, and the long name made safe
    assert all(len(name.encode()) <= 240 for name in saved)
    assert not (tmp_path / "evil.txt").exists()


# --- the command line ------------------------------------------------------------------------


async def _adownload(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adownload",
        *args,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "100", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_downloads_and_mirrors_a_bucket(s3: S3Front, tmp_path: Path) -> None:
    s3.put("pub/a.txt", b"aaa", public=True)
    s3.put("pub/sub/b.txt", b"bb", public=True)
    flags = ["--endpoint-url", s3.endpoint, "--no-sign-request"]
    code, out, err = await _adownload(
        *flags,
        "-d",
        "got",
        f"s3://{s3.bucket}/pub/a.txt",
        f"s3://{s3.bucket}/pub/none",
        cwd=tmp_path,
    )
    assert code == 1, err
    assert (tmp_path / "got/a.txt").read_bytes() == b"aaa"
    assert "no such object" in err
    assert "404" in err
    code, out, err = await _adownload(
        "mirror", f"s3://{s3.bucket}/pub/", "copy", *flags, cwd=tmp_path
    )
    assert code == 0, err
    assert sorted(out.splitlines()) == ["new copy/a.txt (3 B)", "new copy/sub/b.txt (2 B)"]
    s3.asked.clear()
    code, out, err = await _adownload(
        "mirror", f"s3://{s3.bucket}/pub/", "copy", *flags, cwd=tmp_path
    )
    assert code == 0, err
    assert "0 new, 0 updated, 2 unchanged" in err
    assert s3.gets() == []
    assert all(not a.signed for a in s3.asked)
    # The credentials of the environment, as aws-cli reads them; never printed.
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": s3.endpoint,
    }
    code, out, err = await _adownload(
        "-d", "env", "--json", f"s3://{s3.bucket}/pub/a.txt", cwd=tmp_path, env=env
    )
    assert code == 0, err
    assert s3.asked[-1].signed
    assert SECRET_KEY not in out + err
    assert not (tmp_path / "env").joinpath("a.txt.part").exists()
    assert (tmp_path / "env/a.txt").read_bytes() == b"aaa"
    code, _, err = await _adownload("--endpoint-url", "not a url", "s3://b-b/k", cwd=tmp_path)
    assert code == 2
    assert "--endpoint-url must be an http or https URL" in err


# --- Azure, on Azurite -----------------------------------------------------------------------


@pytest.fixture
def azure(tmp_path: Path) -> Iterator[str]:
    from .store_servers import azurite

    with azurite(tmp_path / "azurite") as endpoint:
        yield endpoint


async def test_azure_blobs_download_fail_like_a_404_and_mirror(azure: str, tmp_path: Path) -> None:
    from .store_servers import AZURITE_ACCOUNT, AZURITE_KEY, azure_container

    container = azure_container(azure, "docs")
    data = body(3 * MIB, "azure")
    container.upload_blob("3.13/big.bin", data)
    container.upload_blob("3.13/notes.txt", b"notes")
    options = {
        "az": {"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY, "endpoint": azure}
    }
    async with Downloader(
        dest=tmp_path / "got", store_options=options, segments=Segments(count=3, min_size=MIB)
    ) as dl:
        big, missing = await dl.download_many(["az://docs/3.13/big.bin", "az://docs/none.txt"])
    assert big.ok, big.error
    assert (tmp_path / "got/big.bin").read_bytes() == data
    assert isinstance(missing.error, HTTPStatusError)
    assert missing.error.status == 404
    assert listing(tmp_path / "got") == ["big.bin"]
    assert AZURITE_KEY not in str(missing.error)
    for run in ("first", "again"):
        changes: list[adownload.MirrorChange] = []
        async with Downloader(store_options=options) as dl:
            await adownload.mirror(
                "az://docs/", tmp_path / "copy", downloader=dl, on_change=changes.append
            )
        expected = "new" if run == "first" else "unchanged"
        assert sorted(c.kind for c in changes) == [expected] * 2, changes
    assert (tmp_path / "copy/3.13/big.bin").read_bytes() == data


async def test_a_store_that_never_answers_times_out(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with Downloader(
            dest=tmp_path,
            store_options={"endpoint": endpoint},
            timeout=adownload.Timeout(connect=1, read=0.5),
            retry=Retry(attempts=2, backoff=0.01),
        ) as dl:
            [outcome] = await dl.download_many(["s3://bucket/k.txt"])
    assert isinstance(outcome.error, adownload.ReadTimeout)
    assert outcome.attempts == 2
    assert listing(tmp_path) == []


# --- where object stores meet the other capabilities ----------------------------------------


def test_the_blocking_functions_take_store_urls(moto: str, tmp_path: Path) -> None:
    from .store_servers import boto

    boto(moto).create_bucket(Bucket="blocking")
    boto(moto).put_object(Bucket="blocking", Key="b.txt", Body=b"blocking", ACL="public-read")
    outcome = adownload.download(
        "s3://blocking/b.txt", dest=tmp_path, store_options={"endpoint": moto}
    )
    assert outcome.ok
    assert (tmp_path / "b.txt").read_bytes() == b"blocking"


async def test_worker_processes_take_store_urls_and_options(s3: S3Front, tmp_path: Path) -> None:
    from adownload.workers import ProcessRunner

    for n in range(6):
        s3.put(f"w/{n}.txt", f"object {n}".encode())
    runner = ProcessRunner(2, dest=tmp_path, store_options=signed(s3))
    outcomes = await runner.download_many([f"s3://{s3.bucket}/w/{n}.txt" for n in range(6)])
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert 1 <= len({o.worker for o in outcomes}) <= 2  # each names its process
    for n in range(6):
        assert (tmp_path / f"{n}.txt").read_bytes() == f"object {n}".encode()


async def test_a_dead_proxy_fails_the_object_never_bypassed(s3: S3Front, tmp_path: Path) -> None:
    s3.put("p.txt", b"p")
    async with Downloader(
        dest=tmp_path,
        store_options=signed(s3),
        proxy="http://127.0.0.1:9",
        retry=Retry(attempts=1),
    ) as dl:
        [outcome] = await dl.download_many([f"s3://{s3.bucket}/p.txt"])
    assert isinstance(outcome.error, adownload.ConnectError), outcome.error
    assert s3.gets() == []  # nothing went around the proxy
    assert listing(tmp_path) == []


@tinyproxy_only
async def test_an_object_comes_through_an_http_proxy(s3: S3Front, tmp_path: Path) -> None:
    """`proxy` reaches object stores as it reaches web servers, credentials kept out of sight."""
    s3.put("via/proxy.bin", body(5000))
    (tmp_path / "proxy").mkdir()
    with tinyproxy(tmp_path / "proxy") as proxy:
        async with Downloader(
            dest=tmp_path / "out", store_options=signed(s3), proxy=proxy.url()
        ) as dl:
            outcome = await dl.download(f"s3://{s3.bucket}/via/proxy.bin")
        lines = proxy.lines
    assert outcome.ok
    assert (tmp_path / "out" / "proxy.bin").read_bytes() == body(5000)
    assert any(line.startswith(f"GET {s3.endpoint}/") for line in lines), lines
    assert [a.key for a in s3.gets()] == ["via/proxy.bin"]


@tinyproxy_only
async def test_the_environments_proxy_only_with_trust_env(
    s3: S3Front, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """obstore's client reads HTTP_PROXY by itself; the library reads the environment only
    when trusted, and then as for HTTP (`no_proxy` too)."""
    s3.put("env.txt", b"env")
    (tmp_path / "proxy").mkdir()
    with tinyproxy(tmp_path / "proxy") as proxy:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url())
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with Downloader(dest=tmp_path / "direct", store_options=signed(s3)) as dl:
            direct = await dl.download(f"s3://{s3.bucket}/env.txt")
        assert proxy.lines == []  # untrusted: the variables are not read
        async with Downloader(
            dest=tmp_path / "trusted", store_options=signed(s3), trust_env=True
        ) as dl:
            trusted = await dl.download(f"s3://{s3.bucket}/env.txt")
        through = len(proxy.lines)
        async with Downloader(
            dest=tmp_path / "excluded",
            store_options=signed(s3),
            trust_env=True,
            no_proxy="127.0.0.1",
        ) as dl:
            excluded = await dl.download(f"s3://{s3.bucket}/env.txt")
        assert len(proxy.lines) == through
    assert [direct.ok, trusted.ok, excluded.ok] == [True, True, True]
    assert through == 1
    for folder in ("direct", "trusted", "excluded"):
        assert (tmp_path / folder / "env.txt").read_bytes() == b"env"


@tinyproxy_only
async def test_a_prefix_is_mirrored_through_the_proxy(s3: S3Front, tmp_path: Path) -> None:
    """The mirror's listing of a prefix goes through the downloader's proxy, as its GETs do."""
    s3.put("m/a.txt", b"a")
    s3.put("m/sub/b.txt", b"b")
    (tmp_path / "proxy").mkdir()
    with tinyproxy(tmp_path / "proxy") as proxy:
        async with Downloader(store_options=signed(s3), proxy=proxy.url()) as dl:
            source = f"s3://{s3.bucket}/m/"
            report = await adownload.mirror(source, tmp_path / "copy", downloader=dl)
        lines = proxy.lines
    assert report.failed == 0
    assert (tmp_path / "copy" / "a.txt").read_bytes() == b"a"
    assert (tmp_path / "copy" / "sub" / "b.txt").read_bytes() == b"b"
    through = [line for line in lines if line.startswith(f"GET {s3.endpoint}/")]
    assert any("list-type=2" in line for line in through), lines  # the listing
    assert sum("list-type" not in line for line in through) == 2  # the two objects
    assert sorted(a.key for a in s3.gets()) == ["m/a.txt", "m/sub/b.txt"]


async def test_a_socks_proxy_is_refused_for_an_object_store(s3: S3Front, tmp_path: Path) -> None:
    s3.put("s.txt", b"s")
    async with Downloader(
        dest=tmp_path, store_options=signed(s3), proxy="socks5://127.0.0.1:9"
    ) as dl:
        [outcome] = await dl.download_many([f"s3://{s3.bucket}/s.txt"])
    assert isinstance(outcome.error, InvalidRequestError)
    assert "http or https proxy" in str(outcome.error)
    assert s3.gets() == []
    assert listing(tmp_path) == []


async def test_a_dask_cluster_takes_store_urls_and_options(s3: S3Front, tmp_path: Path) -> None:
    """The credentials travel with the options to each worker of a real `LocalCluster`; a
    missing key fails there as it does here, and nothing else is saved for it."""
    from adownload.distributed import DaskRunner

    for n in range(5):
        s3.put(f"d/{n}.bin", body(3000 + n, seed=f"dask {n}"))
    urls = [f"s3://{s3.bucket}/d/{n}.bin" for n in range(5)]
    async with dask_client() as client:
        runner = DaskRunner(client, dest=tmp_path, shard_size=2, store_options=signed(s3))
        outcomes = await runner.download_many([*urls, f"s3://{s3.bucket}/d/missing.bin"])
    assert [o.ok for o in outcomes] == [True] * 5 + [False]
    missing = outcomes[5].error
    assert isinstance(missing, HTTPStatusError)
    assert missing.status == 404
    assert SECRET_KEY not in str(missing)
    assert all(o.worker for o in outcomes[:5])  # each names the worker that wrote it
    assert listing(tmp_path) == [f"{n}.bin" for n in range(5)]
    for n in range(5):
        assert (tmp_path / f"{n}.bin").read_bytes() == body(3000 + n, seed=f"dask {n}")
    asked = s3.gets()
    assert sorted(a.key for a in asked) == sorted(f"d/{n}.bin" for n in [*range(5), "missing"])
    assert all(a.signed for a in asked)
