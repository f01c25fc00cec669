"""`mirror` and `adownload mirror` over FTP: listings (MLSD, or LIST where there is no MLSD),
include/exclude/depth/delete, reruns that transfer only what changed, and hostile listings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from adownload import MirrorChange, mirror

from .cli_support import run_cli
from .ftp_servers import Script, ScriptedFtp, aioftp_server, pyftpdlib_server, write_tree
from .support import listing, payload, serve_in_thread

TREE = {
    "pub/index.txt": b"index\n",
    "pub/3.13/docs.zip": payload("docs-3.13", 200_000),
    "pub/3.13/notes.txt": b"notes\n",
    "pub/3.12/docs.zip": payload("docs-3.12", 150_000),
    "pub/3.12/old/ancient.zip": payload("ancient", 1000),
}


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    root = tmp_path / "upstream"
    write_tree(root, TREE)
    return root


def _kinds(changes: list[MirrorChange]) -> dict[str, str]:
    return {str(c.path.name): c.kind for c in changes if c.path is not None}


@pytest.mark.parametrize("server", ["aioftp", "pyftpdlib"])
async def test_a_first_run_fetches_the_tree_and_a_rerun_transfers_nothing(
    upstream: Path, dest: Path, server: str
) -> None:
    async def run(port: int) -> None:
        base = f"ftp://127.0.0.1:{port}/pub/"
        first = await mirror(base, dest)
        assert first.ok
        assert first.new == 5
        for name, data in TREE.items():
            assert (dest / name.removeprefix("pub/")).read_bytes() == data
        changes: list[MirrorChange] = []
        second = await mirror(base, dest, on_change=changes.append)
        assert second.ok
        assert second.unchanged == 5
        assert second.new == second.updated == 0
        assert second.bytes == 0

    if server == "aioftp":
        async with aioftp_server(upstream) as port:
            await run(port)
    else:
        with pyftpdlib_server(upstream) as port:
            await run(port)
    assert listing(dest) == sorted(
        [
            ".adownload-mirror.sqlite",
            "3.12",
            "3.12/docs.zip",
            "3.12/old",
            "3.12/old/ancient.zip",
            "3.13",
            "3.13/docs.zip",
            "3.13/notes.txt",
            "index.txt",
        ]
    )


async def test_a_changed_file_is_fetched_again_and_a_removed_one_deleted(
    upstream: Path, dest: Path
) -> None:
    async with aioftp_server(upstream) as port:
        base = f"ftp://127.0.0.1:{port}/pub/"
        assert (await mirror(base, dest)).ok
        newer = payload("docs-3.13-newer", 210_000)
        (upstream / "pub/3.13/docs.zip").write_bytes(newer)
        later = time.time() + 120
        os.utime(upstream / "pub/3.13/docs.zip", (later, later))
        (upstream / "pub/index.txt").unlink()
        changes: list[MirrorChange] = []
        report = await mirror(base, dest, delete=True, on_change=changes.append)
    assert report.ok
    kinds = _kinds(changes)
    assert kinds["docs.zip"] in ("updated", "unchanged")
    assert report.updated == 1
    assert report.deleted == 1
    assert report.unchanged == 3
    assert (dest / "3.13/docs.zip").read_bytes() == newer
    assert not (dest / "index.txt").exists()


async def test_include_exclude_and_depth_apply(upstream: Path, dest: Path) -> None:
    with pyftpdlib_server(upstream) as port:
        base = f"ftp://127.0.0.1:{port}/pub/"
        report = await mirror(base, dest, include=["*.zip"], exclude=["old"], max_depth=1)
    assert report.ok
    assert listing(dest) == [
        ".adownload-mirror.sqlite",
        "3.12",
        "3.12/docs.zip",
        "3.13",
        "3.13/docs.zip",
    ]


async def test_a_dry_run_changes_nothing(upstream: Path, tmp_path: Path) -> None:
    dest = tmp_path / "not-yet"
    async with aioftp_server(upstream) as port:
        report = await mirror(f"ftp://127.0.0.1:{port}/pub/", dest, dry_run=True)
    assert report.new == 5
    assert not dest.exists()


async def test_listing_names_that_would_leave_dest_are_dropped(tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    outside = tmp_path / "evil.txt"
    line = "-rw-r--r--   1 ftp ftp {size} Dec  1 12:00 {name}"
    script = Script(
        files={"/pub/ok.txt": b"fine\n", "/pub/../evil.txt": b"evil\n"},
        listings={
            "/pub/": [
                line.format(size=5, name="ok.txt"),
                line.format(size=5, name="../evil.txt"),
                line.format(size=5, name="a/b.txt"),
                line.format(size=5, name="bad\x1bname.txt"),
                line.format(size=5, name=".."),
                "drwxr-xr-x   2 ftp ftp 4096 Dec  1 12:00 ..",
                "lrwxrwxrwx   1 ftp ftp 11 Dec  1 12:00 link -> /etc/passwd",
                "total 42",
                "garbage that is no listing line",
            ]
        },
    )
    async with ScriptedFtp(script) as ftp:
        report = await mirror(ftp.url("/pub/"), dest)
        retrieved = ftp.commands("RETR")
    assert report.ok
    assert report.new == 1
    assert retrieved == ["RETR /pub/ok.txt"]
    assert listing(dest) == [".adownload-mirror.sqlite", "ok.txt"]
    assert not outside.exists()


@pytest.mark.parametrize("order", ["dot-first", "dot-last"])
async def test_two_remote_names_for_one_local_name_never_share_it(
    tmp_path: Path, order: str
) -> None:
    # ".notes.txt" loses its leading dot: it must not land in notes.txt, over or under it.
    dest = tmp_path / "mirror"
    line = "-rw-r--r--   1 ftp ftp {size} Dec  1 12:00 {name}"
    names = [".notes.txt", "notes.txt"] if order == "dot-first" else ["notes.txt", ".notes.txt"]
    files = {"/pub/notes.txt": b"the notes\n", "/pub/.notes.txt": b"hidden, other\n"}
    script = Script(
        files=files,
        listings={"/pub/": [line.format(size=len(files[f"/pub/{n}"]), name=n) for n in names]},
    )
    async with ScriptedFtp(script) as ftp:
        report = await mirror(ftp.url("/pub/"), dest)
        retrieved = ftp.commands("RETR")
    assert report.new == 1
    assert report.failed == 1
    assert "/pub/.notes.txt would be saved as notes.txt" in str(report.failures[0].error)
    assert retrieved == ["RETR /pub/notes.txt"]
    assert listing(dest) == [".adownload-mirror.sqlite", "notes.txt"]
    assert (dest / "notes.txt").read_bytes() == b"the notes\n"


async def test_a_listing_that_fails_is_an_incomplete_mirror_that_deletes_nothing(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "mirror"
    line = "-rw-r--r--   1 ftp ftp 5 Dec  1 12:00 {name}"
    script = Script(
        files={"/pub/a.txt": b"aaaa\n"},
        listings={"/pub/": [line.format(name="a.txt"), "drwxr-xr-x 2 ftp ftp 0 Dec 1 12:00 gone"]},
    )
    async with ScriptedFtp(script) as ftp:
        report = await mirror(ftp.url("/pub/"), dest, delete=True)
    assert not report.complete
    assert report.failed == 1
    assert (dest / "a.txt").read_bytes() == b"aaaa\n"


def test_the_mirror_command_takes_ftp(upstream: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    with serve_in_thread(lambda: aioftp_server(upstream)) as port:
        base = f"ftp://127.0.0.1:{port}/pub/"
        result = run_cli("mirror", base, dest, cwd=tmp_path)
        again = run_cli("mirror", base, dest, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert again.returncode == 0, again.stderr
    assert (dest / "3.13/docs.zip").read_bytes() == TREE["pub/3.13/docs.zip"]
    assert "5 unchanged" in again.stdout + again.stderr
