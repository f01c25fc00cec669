"""`adownload.unpack`: a fetched archive unpacked beside it, as pooch's Unzip and Untar do,
against hostile archives: names that climb out, links, devices, bombs, broken files."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import adownload
from adownload import InvalidRequestError, SizeLimitError, UnsafePathError

from .support import listing, serve_app


def _zip(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], *, kinds: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, kind in (kinds or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return buffer.getvalue()


GOOD = {"data/a.csv": b"a,b\n1,2\n", "data/sub/b.txt": b"bee\n", "README": b"read me\n"}


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_unpacks_beside_itself_once(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / f"set.{kind}"
    archive.write_bytes(_zip(GOOD) if kind == "zip" else _tar(GOOD))
    paths = adownload.unpack(archive)
    folder = tmp_path / f"set.{kind}.unpacked"
    assert paths == sorted(folder / name for name in GOOD)
    for name, data in GOOD.items():
        assert (folder / name).read_bytes() == data
    (folder / "README").write_bytes(b"changed here")
    assert adownload.unpack(archive) == paths  # a second call unpacks nothing
    assert (folder / "README").read_bytes() == b"changed here"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"set.{kind}", f"set.{kind}.unpacked"]


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt", "a\\..\\..\\e"]
)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_member_that_climbs_out_is_refused_and_nothing_stays(
    tmp_path: Path, kind: str, name: str
) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    members = {"ok.txt": b"fine", name: b"evil"}
    archive = dest / f"x.{kind}"
    archive.write_bytes(_zip(members) if kind == "zip" else _tar(members))
    with pytest.raises(UnsafePathError, match="would leave its folder"):
        adownload.unpack(archive)
    assert listing(tmp_path) == ["d", f"d/x.{kind}"]  # nothing unpacked, nothing outside
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"evil"


def test_links_and_devices_are_refused(tmp_path: Path) -> None:
    zipped = tmp_path / "l.zip"
    zipped.write_bytes(_zip({"ok.txt": b"x"}, links={"passwd": "/etc/passwd"}))
    with pytest.raises(UnsafePathError, match="is a link or device"):
        adownload.unpack(zipped)
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE):
        tarred = tmp_path / f"{kind!r}.tar.gz".replace("'", "")
        tarred.write_bytes(_tar({"ok.txt": b"x"}, kinds={"link": kind}))
        with pytest.raises(UnsafePathError, match="is a link or device"):
            adownload.unpack(tarred)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_bomb_stops_at_the_bound_and_leaves_nothing(tmp_path: Path, kind: str) -> None:
    zeros = {"a.bin": bytes(3 << 20), "b.bin": bytes(3 << 20)}
    archive = tmp_path / f"bomb.{kind}"
    archive.write_bytes(_zip(zeros) if kind == "zip" else _tar(zeros))
    assert archive.stat().st_size < 100_000
    with pytest.raises(SizeLimitError, match="unpacks to more than"):
        adownload.unpack(archive, max_size=4 << 20)
    assert listing(tmp_path) == [f"bomb.{kind}"]
    assert len(adownload.unpack(archive, max_size=8 << 20)) == 2  # room enough: it unpacks


def test_what_is_no_archive_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 and then nothing")
    with pytest.raises(InvalidRequestError, match="no readable archive"):
        adownload.unpack(broken)
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(InvalidRequestError, match=r"no \.zip or \.tar archive"):
        adownload.unpack(text)
    assert listing(tmp_path) == ["broken.zip", "notes.txt"]


@pytest.fixture
async def archive_site() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=_zip(GOOD))

    app = web.Application()
    app.router.add_get("/{name}", handler)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_a_fetched_archive_is_verified_then_unpacked_and_pruned_with_it(
    archive_site: str, tmp_path: Path
) -> None:
    import asyncio

    cache = adownload.Cache(tmp_path / "cache")
    checksum = "sha256:" + hashlib.sha256(_zip(GOOD)).hexdigest()
    async with adownload.Downloader() as dl:
        path = await dl.fetch(f"{archive_site}/set.zip", checksum=checksum, cache=cache)
        with pytest.raises(adownload.ChecksumMismatchError):
            await dl.fetch(f"{archive_site}/other.zip", checksum="sha256:" + "0" * 64, cache=cache)
    paths = await asyncio.to_thread(adownload.unpack, path)
    assert [p.relative_to(path.parent).as_posix() for p in paths] == [
        "set.zip.unpacked/README",
        "set.zip.unpacked/data/a.csv",
        "set.zip.unpacked/data/sub/b.txt",
    ]
    assert [entry.path for entry in cache.entries()] == [path]  # the folder is no entry
    assert cache.prune(0) == [path]
    assert not path.parent.exists()  # the archive, its folder and its digest's directory
