"""The download cache: `fetch`, its store, locks across processes, eviction, registries, the
offline fallback and the `adownload cache` command, against a loopback server that counts
what it is asked."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

import adownload
from adownload import Cache, Downloader, Registry, StaleCacheWarning

from .cli_support import run_cli
from .servers import parse_range
from .support import MIB, payload, serve_app, serve_in_thread


@dataclasses.dataclass
class Asked:
    """What the server was asked: (path, Range, If-None-Match) per request."""

    requests: list[tuple[str, str | None, str | None]] = dataclasses.field(default_factory=list)
    versions: dict[str, int] = dataclasses.field(default_factory=dict)

    def gets(self, name: str) -> list[tuple[str, str | None, str | None]]:
        return [r for r in self.requests if r[0] == f"/data/{name}"]


def _data(name: str, version: int, size: int) -> bytes:
    return payload(f"{name}@{version}", size)


def _app(asked: Asked) -> web.Application:
    async def data(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        asked.requests.append(
            (request.path, request.headers.get("Range"), request.headers.get("If-None-Match"))
        )
        version = asked.versions.get(name, 1)
        size = int(request.query.get("size", 4096))
        body = _data(request.query.get("as", name), version, size)  # ?as=: another's bytes
        etag = f'"{name}-{version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        span = parse_range(request.headers.get("Range"), size)
        start, stop = span if isinstance(span, tuple) else (0, size)
        response = web.StreamResponse(status=206 if isinstance(span, tuple) else 200)
        response.headers.update({"ETag": etag, "Accept-Ranges": "bytes"})
        if isinstance(span, tuple):
            response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        response.content_length = stop - start
        await response.prepare(request)
        pace = float(request.query.get("pace", 0))  # seconds per 256 KiB
        step = 256 << 10
        for offset in range(start, stop, step):
            await response.write(body[offset : min(stop, offset + step)])
            if pace:
                await asyncio.sleep(pace)
        return response

    app = web.Application()
    app.router.add_get("/data/{name}", data)
    return app


@dataclasses.dataclass
class Site:
    base: str
    asked: Asked

    def url(self, name: str, **query: object) -> str:
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{self.base}/data/{name}" + (f"?{tail}" if tail else "")


@contextlib.asynccontextmanager
async def _serve() -> AsyncIterator[Site]:
    asked = Asked()
    async with serve_app(_app(asked)) as port:
        yield Site(f"http://127.0.0.1:{port}", asked)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with _serve() as running:
        yield running


@pytest.fixture
def threaded_site() -> Iterator[Site]:
    with serve_in_thread(_serve) as running:
        yield running


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- one process ----------------------------------------------------------------------------


async def test_a_checksum_that_matches_the_cached_file_sends_no_request(
    site: Site, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    data = _data("a.csv", 1, 4096)
    async with Downloader() as dl:
        first = await dl.fetch(site.url("a.csv"), checksum=_sha(data), cache=cache)
        again = await dl.fetch(site.url("a.csv"), checksum=_sha(data), cache=cache)
    assert first == again
    assert first.name == "a.csv"
    assert first.read_bytes() == data
    assert first.parent.name == hashlib.sha256(data).hexdigest()  # stored by its content
    assert len(site.asked.gets("a.csv")) == 1
    # Nothing left in incoming/, nothing beside the file.
    assert [p for p in _files_under(cache.root) if "incoming" in p] == []


async def test_without_a_checksum_the_cached_file_is_revalidated(
    site: Site, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache")
    async with Downloader() as dl:
        first = await dl.fetch(site.url("b.bin"), cache=cache)
        again = await dl.fetch(site.url("b.bin"), cache=cache)
        assert again == first
        assert site.asked.gets("b.bin")[-1][2] == '"b.bin-1"'  # a conditional request: 304
        site.asked.versions["b.bin"] = 2  # changed upstream
        changed = await dl.fetch(site.url("b.bin"), cache=cache)
    assert changed != first
    assert changed.read_bytes() == _data("b.bin", 2, 4096)
    assert first.read_bytes() == _data("b.bin", 1, 4096)  # still there until evicted
    assert len(site.asked.gets("b.bin")) == 3


async def test_the_same_bytes_from_two_urls_are_stored_once(site: Site, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    async with Downloader() as dl:
        first = await dl.fetch(site.url("same.bin"), cache=cache)
        mirror = f"http://127.0.0.2:{site.base.rsplit(':', 1)[1]}/data/same.bin"
        second = await dl.fetch(mirror, cache=cache)
    assert first == second
    (entry,) = cache.entries()
    assert sorted(entry.urls) == sorted([site.url("same.bin"), mirror])
    # The same bytes under another name: stored once, and the second URL's record finds them
    # (a revalidation, not a download, the next time).
    other = site.url("other.bin", **{"as": "same.bin"})
    async with Downloader() as dl:
        renamed = await dl.fetch(other, cache=cache)
        asked = len(site.asked.gets("other.bin"))
        again = await dl.fetch(other, cache=cache)
    assert renamed == again == first
    assert site.asked.gets("other.bin")[asked:][0][2] is not None  # If-None-Match: a 304
    # A third URL with the file's SHA-256 needs no request at all.
    digest = _sha(first.read_bytes())
    async with Downloader() as dl:
        third = await dl.fetch(site.url("same.bin") + "?copy=3", checksum=digest, cache=cache)
    assert third == first
    assert len(site.asked.gets("same.bin")) == 2


async def test_a_damaged_cache_entry_is_detected_and_replaced(site: Site, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    data = _data("c.bin", 1, 64 << 10)
    async with Downloader() as dl:
        path = await dl.fetch(site.url("c.bin", size=64 << 10), checksum=_sha(data), cache=cache)
        with path.open("r+b") as file:  # one byte flipped in place: same size
            file.seek(1000)
            file.write(bytes([data[1000] ^ 0xFF]))
        repaired = await dl.fetch(
            site.url("c.bin", size=64 << 10), checksum=_sha(data), cache=cache
        )
        assert repaired.read_bytes() == data
        assert len(site.asked.gets("c.bin")) == 2
        # Cut short, without a checksum: the size says so.
        with repaired.open("r+b") as file:
            file.truncate(10)
        again = await dl.fetch(site.url("c.bin", size=64 << 10), cache=cache)
    assert again.read_bytes() == data
    assert site.asked.gets("c.bin")[-1][2] is None  # not a conditional request: fetched whole


async def test_a_wrong_checksum_fails_and_caches_nothing(site: Site, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    async with Downloader() as dl:
        with pytest.raises(adownload.ChecksumMismatchError):
            await dl.fetch(site.url("d.bin"), checksum="sha256:" + "0" * 64, cache=cache)
        with pytest.raises(adownload.InvalidRequestError, match="checksum"):
            await dl.fetch(site.url("d.bin"), checksum="sha256:xyz", cache=cache)
    assert cache.entries() == []
    assert [p for p in _files_under(cache.root) if "objects" in p] == []


async def test_the_least_recently_used_files_go_when_the_cache_is_full(
    site: Site, tmp_path: Path
) -> None:
    cache = Cache(tmp_path / "cache", max_size=25 << 10)  # room for two 10 KiB files
    async with Downloader() as dl:
        one = await dl.fetch(site.url("one", size=10 << 10), cache=cache)
        two = await dl.fetch(site.url("two", size=10 << 10), cache=cache)
        os.utime(two, (time.time() - 100, time.time() - 100))  # `one` is the more recent now
        three = await dl.fetch(site.url("three", size=10 << 10), cache=cache)
    assert one.exists()
    assert three.exists()
    assert not two.exists()
    assert cache.size() <= 25 << 10
    assert [entry.path for entry in cache.entries()] == [one, three]
    assert cache.prune(0) == [one, three]
    assert cache.entries() == []


async def test_offline_the_cached_copy_is_returned_with_a_warning(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    async with _serve() as site:
        async with Downloader() as dl:
            path = await dl.fetch(site.url("e.txt"), cache=cache)
        url, never = site.url("e.txt"), site.url("never.txt")
    # The server is gone: its port refuses.
    async with Downloader(retry=adownload.Retry(attempts=1)) as dl:
        with pytest.warns(StaleCacheWarning, match="cannot be reached") as warned:
            assert await dl.fetch(url, cache=cache) == path
        assert warned[0].filename == __file__  # the caller's line, not adownload's
        with pytest.raises(adownload.DownloadError, match=r"no cached copy of .*never\.txt"):
            await dl.fetch(never, cache=cache)
    assert path.read_bytes() == _data("e.txt", 1, 4096)


async def test_a_registry_fetches_by_name(site: Site, tmp_path: Path) -> None:
    a, b = _data("r1.csv", 1, 4096), _data("r2.csv", 1, 4096)
    text = (
        "# name url checksum\n"
        f"r1.csv  {site.url('r1.csv')}  {_sha(a)}\n"
        f"\nr2.csv  {site.url('r2.csv')}  {hashlib.sha256(b).hexdigest()}\n"  # pooch's bare hex
    )
    (tmp_path / "registry.txt").write_text(text)
    registry = Registry.from_file(tmp_path / "registry.txt")
    assert list(registry) == ["r1.csv", "r2.csv"]
    async with Downloader() as dl:
        paths = await dl.fetch_many(registry, cache=tmp_path / "cache")
    assert [p.read_bytes() for p in paths] == [a, b]
    for bad, message in [
        ("a.csv\n", "line 1: expected 'NAME URL"),
        ("a.csv gopher://h/a sha256:00\n", "line 1: .*gopher"),
        (f"a.csv {site.url('a')} md5:zz\n", "line 1: .*md5"),
        (f"a {site.url('a')}\na {site.url('b')}\n", "names 'a' twice"),
    ]:
        with pytest.raises(adownload.InvalidRequestError, match=message):
            Registry.parse(bad)


def test_the_blocking_fetch_and_a_registry_in_a_script(threaded_site: Site, tmp_path: Path) -> None:
    data = _data("s.bin", 1, 4096)
    registry = Registry([adownload.RegistryEntry("s.bin", threaded_site.url("s.bin"), _sha(data))])
    path = registry.fetch("s.bin", cache=tmp_path / "cache")
    assert path.read_bytes() == data
    assert (
        adownload.fetch(threaded_site.url("s.bin"), checksum=_sha(data), cache=tmp_path / "cache")
        == path
    )
    assert adownload.fetch_many([threaded_site.url("s.bin")], cache=tmp_path / "cache") == [path]
    assert len(threaded_site.asked.gets("s.bin")) == 2  # the checksum spared one request


def test_the_default_cache_is_adownload_cache_or_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ADOWNLOAD_CACHE", str(tmp_path / "mine"))
    assert Cache().root == tmp_path / "mine"
    monkeypatch.delenv("ADOWNLOAD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert Cache().root == tmp_path / "xdg" / "adownload"
    with pytest.raises(ValueError, match="max_size"):
        Cache(tmp_path, max_size=-1)


# --- several processes ----------------------------------------------------------------------

FETCH = (
    "import sys, adownload\n"
    "print(adownload.fetch(sys.argv[1], checksum=sys.argv[2] or None, cache=sys.argv[3]))\n"
)


def _fetcher(url: str, checksum: str, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", FETCH, url, checksum, str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_several_processes_fetching_one_file_download_it_once(
    threaded_site: Site, tmp_path: Path
) -> None:
    size = 8 * MIB
    data = _data("big.bin", 1, size)
    url = threaded_site.url("big.bin", size=size, pace=0.02)  # about 0.6 s for the body
    procs = [_fetcher(url, _sha(data), tmp_path / "cache") for _ in range(3)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outputs]
    paths = {out.strip() for out, _ in outputs}
    assert len(paths) == 1
    assert Path(paths.pop()).read_bytes() == data
    gets = threaded_site.asked.gets("big.bin")
    # One download (over several segment connections at most), never three.
    assert all(rng is not None for _, rng, _ in gets[1:])
    assert sum(1 for _, rng, _ in gets if rng is None) == 1


def test_a_killed_fetch_is_continued_by_the_next(threaded_site: Site, tmp_path: Path) -> None:
    size = 16 * MIB
    data = _data("kill.bin", 1, size)
    url = threaded_site.url("kill.bin", size=size, pace=0.2)  # 4 segments, about 3 s each
    cache = tmp_path / "cache"
    first = _fetcher(url, _sha(data), cache)
    incoming = cache / "incoming"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until a few MiB are on disk (the part has holes)
        parts = list(incoming.rglob("*.part")) if incoming.exists() else []
        if parts and sum(p.stat().st_blocks * 512 for p in parts) > 4 * MIB:
            break
        time.sleep(0.05)
    time.sleep(1.2)  # and the resume state has been saved since (once a second)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    before = len(threaded_site.asked.gets("kill.bin"))
    second = _fetcher(url, _sha(data), cache)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert Path(out.strip()).read_bytes() == data
    # The second asks only for what the first had not written: every request a range.
    asked = threaded_site.asked.gets("kill.bin")[before:]
    assert asked
    assert all(rng is not None for _, rng, _ in asked)
    assert sum(int(rng.split("=")[1].split("-")[0]) % (4 * MIB) for _, rng, _ in asked if rng) > 0
    assert [p for p in _files_under(cache) if p.endswith((".part", ".state"))] == []


# --- the command ----------------------------------------------------------------------------


def test_the_cache_command_lists_and_prunes(threaded_site: Site, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = adownload.fetch(threaded_site.url("l1.bin", size=2048), cache=cache)
    two = adownload.fetch(threaded_site.url("l2.bin", size=4096), cache=cache)
    listed = run_cli("cache", "list", "--cache", cache, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert str(one) in listed.stdout
    assert str(two) in listed.stdout
    assert threaded_site.url("l2.bin", size=4096) in listed.stdout
    os.utime(one, (time.time() - 100, time.time() - 100))
    pruned = run_cli("cache", "prune", "--max-size", "5k", "--cache", cache, cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed {one}" in pruned.stdout
    assert not one.exists()
    assert two.exists()
    emptied = run_cli("cache", "prune", "--all", "--cache", cache, cwd=tmp_path)
    assert emptied.returncode == 0
    assert not two.exists()
    bad = run_cli("cache", "prune", "--max-size", "lots", "--cache", cache, cwd=tmp_path)
    assert bad.returncode == 2
    assert "max-size" in bad.stderr


def test_several_threads_fetching_one_file_download_it_once(
    threaded_site: Site, tmp_path: Path
) -> None:
    size = 4 * MIB
    data = _data("threads.bin", 1, size)
    url = threaded_site.url("threads.bin", size=size, pace=0.02)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(adownload.fetch, url, checksum=_sha(data), cache=tmp_path / "cache")
            for _ in range(4)
        ]
        paths = {future.result(timeout=60) for future in futures}
    assert len(paths) == 1
    assert paths.pop().read_bytes() == data
    assert sum(1 for _, rng, _ in threaded_site.asked.gets("threads.bin") if rng is None) == 1


# --- a hostile or shared cache directory ---------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        {"name": "../../../../outside/x"},
        {"sha256": "../../outside"},
        {"size": "7"},
        {"size": True},
        {"etag": 5},
        {"extra": 1},
    ],
    ids=["name-climbs-out", "digest-climbs-out", "size-as-text", "size-as-bool", "etag", "extra"],
)
async def test_a_damaged_record_counts_as_never_fetched_and_removes_nothing(
    site: Site, tmp_path: Path, damage: dict[str, object]
) -> None:
    import json

    cache = Cache(tmp_path / "cache")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_bytes(b"not the cache's")
    async with Downloader() as dl:
        first = await dl.fetch(site.url("r.bin"), cache=cache)
        (record_path,) = (cache.root / "urls").glob("*.json")
        record = json.loads(record_path.read_text())
        record.update(damage)
        record_path.write_text(json.dumps(record))
        again = await dl.fetch(site.url("r.bin"), cache=cache)
    assert again.read_bytes() == first.read_bytes() == _data("r.bin", 1, 4096)
    assert site.asked.gets("r.bin")[-1][2] is None  # fetched whole: the record was not used
    assert (outside / "x").read_bytes() == b"not the cache's"


def test_prune_never_follows_a_link_out_of_the_cache(threaded_site: Site, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    kept = adownload.fetch(threaded_site.url("k.bin", size=2048), cache=cache)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    (cache / "objects" / ("f" * 64)).symlink_to(precious)  # a directory link
    (cache / "objects" / ("e" * 64)).mkdir()
    (cache / "objects" / ("e" * 64) / "link").symlink_to(precious / "thesis.tex")
    assert [entry.path for entry in Cache(cache).entries()] == [kept]
    emptied = run_cli("cache", "prune", "--all", "--cache", cache, cwd=tmp_path)
    assert emptied.returncode == 0, emptied.stderr
    assert not kept.exists()
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert (cache / "objects" / ("e" * 64) / "link").is_symlink()  # not ours: left as it was


async def test_under_a_group_umask_every_cache_file_is_group_writable(
    site: Site, tmp_path: Path
) -> None:
    import stat

    saved = os.umask(0o002)
    try:
        cache = Cache(tmp_path / "cache")
        async with Downloader() as dl:
            await dl.fetch(site.url("g.bin"), cache=cache)
    finally:
        os.umask(saved)
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".lock" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) & 0o060 == 0o060, path


async def test_a_cache_that_cannot_be_written_gives_its_copy_or_a_storage_error(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    cache = Cache(tmp_path / "cache")
    async with Downloader() as dl:
        path = await dl.fetch(site.url("ro.bin"), cache=cache)
    # As on a read-only mount (root, which runs these tests, passes any mode bits).
    real_open = os.open

    def read_only(name: object, flags: int, *args: object, **kw: object) -> int:
        if str(name).startswith(str(cache.root)) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(name))
        return real_open(name, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    requests = len(site.asked.requests)
    async with Downloader() as dl:
        with pytest.warns(StaleCacheWarning, match="cannot be written"):
            assert await dl.fetch(site.url("ro.bin"), cache=cache) == path
        with pytest.raises(adownload.StorageError, match="cannot be written") as caught:
            await dl.fetch(site.url("new.bin"), cache=cache)
    assert caught.value.errno == errno.EROFS
    assert len(site.asked.requests) == requests  # nothing asked of the server
    assert path.read_bytes() == _data("ro.bin", 1, 4096)


def test_the_blocking_fetch_warns_at_the_callers_line(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve_in_thread(_serve) as site:
        url = site.url("w.txt")
        path = adownload.fetch(url, cache=cache)
    with pytest.warns(StaleCacheWarning, match="cannot be reached") as warned:
        assert adownload.fetch(url, cache=cache, retry=adownload.Retry(attempts=1)) == path
    assert warned[0].filename == __file__
    assert warned[0].lineno > 0


async def test_a_bare_sha256_is_taken_as_pooch_takes_it(site: Site, tmp_path: Path) -> None:
    data = _data("p.bin", 1, 4096)
    bare = hashlib.sha256(data).hexdigest()
    async with Downloader() as dl:
        path = await dl.fetch(site.url("p.bin"), checksum=bare, cache=tmp_path / "c")
        again = await dl.fetch(site.url("p.bin"), checksum=bare.upper(), cache=tmp_path / "c")
        with pytest.raises(adownload.ChecksumMismatchError):
            await dl.fetch(site.url("q.bin"), checksum="0" * 64, cache=tmp_path / "c")
        with pytest.raises(adownload.InvalidRequestError, match="checksum"):
            await dl.fetch(site.url("p.bin"), checksum="0" * 63, cache=tmp_path / "c")
    assert path == again
    assert path.read_bytes() == data
    assert len(site.asked.gets("p.bin")) == 1  # the second fetch needed no request


async def test_a_pooch_registry_file_is_read_with_its_base_url(site: Site, tmp_path: Path) -> None:
    a, b = _data("r1.csv", 1, 4096), _data("r2.csv", 1, 4096)
    registry_file = tmp_path / "registry.txt"
    registry_file.write_text(
        "# pooch: name and hash, the URL from base_url\n"
        f"r1.csv {hashlib.sha256(a).hexdigest()}\n"
        f"other.csv sha256:{hashlib.sha256(b).hexdigest()} {site.url('r2.csv')}\n"
    )
    registry = Registry.from_file(registry_file, base_url=f"{site.base}/data")
    assert registry["r1.csv"].url == site.url("r1.csv")
    async with Downloader() as dl:
        one, other = await dl.fetch_many(registry, cache=tmp_path / "cache")
    assert (one.read_bytes(), other.read_bytes()) == (a, b)
    with pytest.raises(adownload.InvalidRequestError, match=r"is not absolute|URL"):
        Registry.from_file(registry_file)  # without base_url: NAME URL, and a hash is no URL
