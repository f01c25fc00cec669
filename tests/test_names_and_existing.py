"""Names from a stranger's server stay inside the destination; existing files are respected."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adownload import (
    DestinationExistsError,
    Downloader,
    Existing,
    Item,
    Request,
    UnsafePathError,
    safe_filename,
)

from .servers import Server
from .support import listing, payload


@pytest.mark.parametrize(
    ("hostile", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("C:evil.exe", "evil.exe"),
        ("C:\\Windows\\evil.dll", "evil.dll"),
        ("..", "download"),
        (".", "download"),
        ("", "download"),
        ("...", "download"),
        ("a\x00b\x1f\x7fc.txt", "abc.txt"),
        ("line\nbreak.txt", "linebreak.txt"),
        (".bashrc", "bashrc"),
        ("  spaced .txt. ", "spaced .txt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("résumé.pdf", "résumé.pdf"),
        ("a/", "download"),
    ],
)
def test_safe_filename_keeps_one_harmless_component(hostile: str, safe: str) -> None:
    assert safe_filename(hostile) == safe


def test_safe_filename_truncates_long_names_but_keeps_the_extension() -> None:
    name = safe_filename("é" * 300 + ".tar.gz")
    assert name.endswith(".gz")
    assert len((name + ".part").encode()) <= 255


async def test_percent_encoded_traversal_in_the_url_stays_inside(
    server: Server, dest: Path, tmp_path: Path
) -> None:
    url = server("/files/..%2F..%2Fescaped.bin")
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(url)
    assert outcome.path == dest / "escaped.bin"
    assert listing(dest) == ["escaped.bin"]
    assert not (tmp_path / "escaped.bin").exists()


async def test_url_ending_with_a_slash_is_saved_as_index_html(server: Server, dest: Path) -> None:
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(server("/dir/"))
    assert outcome.path == dest / "index.html"
    assert (dest / "index.html").read_text() == "<html>an index</html>"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="/abs/olute.txt"', "olute.txt"),
        ("attachment; filename*=UTF-8''..%2F..%2Fevil.sh", "evil.sh"),
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ('attachment; filename="C:\\\\evil.dll"', "evil.dll"),
        ('attachment; filename=".."', "download"),
        ("attachment", "cd.bin"),  # no filename: the URL's name
        ("garbage;;;=", "cd.bin"),
    ],
)
async def test_content_disposition_names_stay_inside_the_destination(
    server: Server, dest: Path, tmp_path: Path, header: str, expected: str
) -> None:
    async with Downloader(dest=dest, content_disposition=True) as dl:
        outcome = await dl.download(server("/cd/cd.bin", cd=header))
    assert outcome.path == dest / expected
    assert listing(dest) == [expected]
    assert (dest / expected).read_bytes() == payload("cd.bin", 1024)
    assert listing(tmp_path) == ["dest", f"dest/{expected}"]


async def test_content_disposition_is_ignored_unless_asked_for(server: Server, dest: Path) -> None:
    async with Downloader(dest=dest) as dl:
        await dl.download(server("/cd/url-name.bin", cd='attachment; filename="other.bin"'))
    assert listing(dest) == ["url-name.bin"]


async def test_symlink_planted_at_the_target_is_refused(server: Server, dest: Path) -> None:
    victim = dest.parent / "victim.txt"
    victim.write_bytes(b"precious")
    (dest / "a.bin").symlink_to(victim)
    for policy in Existing:
        async with Downloader(dest=dest, existing=policy) as dl:
            with pytest.raises(UnsafePathError) as caught:
                await dl.download(server("/files/a.bin"))
        assert caught.value.path == dest / "a.bin"
    assert victim.read_bytes() == b"precious"
    assert (dest / "a.bin").is_symlink()
    assert listing(dest) == ["a.bin"]


async def test_symlink_planted_at_the_part_file_is_not_written_through(
    server: Server, dest: Path
) -> None:
    victim = dest.parent / "victim.txt"
    victim.write_bytes(b"precious")
    (dest / "a.bin.part").symlink_to(victim)
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(server("/files/a.bin"))
    assert outcome.ok
    assert victim.read_bytes() == b"precious"
    assert listing(dest) == ["a.bin"]
    assert not (dest / "a.bin").is_symlink()
    assert (dest / "a.bin").read_bytes() == payload("a.bin", 1024)


async def test_skip_is_the_default_and_sends_no_request(server: Server, dest: Path) -> None:
    (dest / "a.bin").write_bytes(b"mine")
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(server("/files/a.bin"))
    assert outcome.ok
    assert outcome.skipped
    assert outcome.size == 0
    assert outcome.path == dest / "a.bin"
    assert (dest / "a.bin").read_bytes() == b"mine"
    assert server.stats.hits["/files/a.bin"] == 0


async def test_a_rerun_fetches_only_what_is_missing(server: Server, dest: Path) -> None:
    urls = [server(f"/files/{i}.bin") for i in range(4)]
    async with Downloader(dest=dest) as dl:
        first = await dl.download_many(urls[:2])
        second = await dl.download_many(urls)
    assert not any(o.skipped for o in first)
    assert [o.skipped for o in second] == [True, True, False, False]
    assert all(server.stats.hits[f"/files/{i}.bin"] == 1 for i in range(4))


async def test_overwrite_replaces_the_file(server: Server, dest: Path) -> None:
    (dest / "a.bin").write_bytes(b"old")
    async with Downloader(dest=dest, existing=Existing.OVERWRITE) as dl:
        outcome = await dl.download(server("/files/a.bin"))
    assert outcome.ok
    assert not outcome.skipped
    assert (dest / "a.bin").read_bytes() == payload("a.bin", 1024)
    assert listing(dest) == ["a.bin"]


async def test_rename_keeps_the_old_file_and_picks_a_free_name(server: Server, dest: Path) -> None:
    (dest / "a.tar.gz").write_bytes(b"old")
    (dest / "a (1).tar.gz").write_bytes(b"older")
    async with Downloader(dest=dest, existing=Existing.RENAME) as dl:
        outcome = await dl.download(server("/files/a.tar.gz"))
    assert outcome.path == dest / "a (2).tar.gz"
    assert (dest / "a.tar.gz").read_bytes() == b"old"
    assert (dest / "a (1).tar.gz").read_bytes() == b"older"
    assert (dest / "a (2).tar.gz").read_bytes() == payload("a.tar.gz", 1024)


async def test_error_policy_raises_and_keeps_the_file(server: Server, dest: Path) -> None:
    (dest / "a.bin").write_bytes(b"old")
    async with Downloader(dest=dest, existing=Existing.ERROR) as dl:
        with pytest.raises(DestinationExistsError) as caught:
            await dl.download(server("/files/a.bin"))
    assert isinstance(caught.value, FileExistsError)
    assert caught.value.path == dest / "a.bin"
    assert (dest / "a.bin").read_bytes() == b"old"
    assert listing(dest) == ["a.bin"]


async def test_policy_per_item_overrides_the_downloader(server: Server, dest: Path) -> None:
    for name in ["keep.bin", "replace.bin"]:
        (dest / name).write_bytes(b"old")
    items: list[Item] = [
        server("/files/keep.bin"),
        Request(server("/files/replace.bin"), existing=Existing.OVERWRITE),
    ]
    async with Downloader(dest=dest) as dl:
        outcomes = await dl.download_many(items)
    assert [o.skipped for o in outcomes] == [True, False]
    assert (dest / "keep.bin").read_bytes() == b"old"
    assert (dest / "replace.bin").read_bytes() == payload("replace.bin", 1024)


async def test_duplicate_urls_in_one_batch_download_once(server: Server, dest: Path) -> None:
    url = server("/slow/dup.bin", delay=0.1, parts=2)
    async with Downloader(dest=dest) as dl:
        outcomes = await dl.download_many([url, url, url])
    assert sorted(o.skipped for o in outcomes) == [False, True, True]
    assert server.stats.hits["/slow/dup.bin"] == 1
    assert listing(dest) == ["dup.bin"]


async def test_a_file_that_appears_during_the_download_is_not_overwritten(
    server: Server, dest: Path
) -> None:
    url = server("/slow/racy.bin", delay=0.2, parts=2)
    async with Downloader(dest=dest, existing=Existing.ERROR) as dl:
        import asyncio

        task = asyncio.create_task(dl.download(url))
        await asyncio.sleep(0.1)
        (dest / "racy.bin").write_bytes(b"someone else's")
        with pytest.raises(DestinationExistsError):
            await task
    assert (dest / "racy.bin").read_bytes() == b"someone else's"
    assert listing(dest) == ["racy.bin"]


async def test_target_that_is_a_directory_is_a_clear_error(server: Server, dest: Path) -> None:
    (dest / "a.bin").mkdir()
    async with Downloader(dest=dest, existing=Existing.OVERWRITE) as dl:
        outcomes = await dl.download_many([server("/files/a.bin")])
    assert isinstance(outcomes[0].error, ValueError)
    assert "is a directory" in str(outcomes[0].error)
    assert os.listdir(dest / "a.bin") == []
