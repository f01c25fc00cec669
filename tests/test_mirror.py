"""Mirroring an autoindex tree: what a first run, a rerun, a change, a removal, a dry run and a
kill do to the files under DEST, and what the server had to send (counted server-side)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adownload import (
    Downloader,
    Existing,
    HTTPStatusError,
    MirrorChange,
    MirrorReport,
    Request,
    Retry,
    mirror,
)
from adownload._mirror.state import STATE_NAME, MirrorState

from .autoindex_server import Archive, Running, serve_archive
from .support import adownload_tasks, free_port, open_files_under, payload

TREE = {
    "index.txt": b"the archive\n",
    "3.12/python-3.12-docs.zip": payload("3.12.zip", 300_000),
    "3.12/python-3.12-docs.tar.bz2": payload("3.12.tar.bz2", 100_000),
    "3.13/python-3.13-docs.zip": payload("3.13.zip", 400_000),
    "3.13/extra/notes.txt": b"notes\n",
    "a b/\u00fcn\u00ef.txt": "\u00fcn\u00ef\n".encode(),
}
TOTAL = sum(map(len, TREE.values()))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Running]:
    async with serve_archive(Archive(dict(TREE))) as running:
        yield running
        for _ in range(3):
            await asyncio.sleep(0)
        assert adownload_tasks() == [], "adownload tasks leaked"
    assert open_files_under(tmp_path) == [], "file handles leaked"


def on_disk(dest: Path) -> dict[str, bytes]:
    """Every file under `dest` but the mirror's state, by its path below `dest`."""
    return {
        str(path.relative_to(dest)): path.read_bytes()
        for path in sorted(dest.rglob("*"))
        if path.is_file() and not path.name.startswith(STATE_NAME)
    }


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every entry below `root` with its mtime, size and bytes: to show nothing changed."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        data = path.read_bytes() if path.is_file() else None
        found[str(path.relative_to(root))] = (info.st_mtime_ns, info.st_size, data)
    return found


async def run(served: Running, dest: Path, **options) -> tuple[MirrorReport, list[MirrorChange]]:
    changes: list[MirrorChange] = []
    report = await mirror(served.base, dest, on_change=changes.append, **options)
    return report, changes


@pytest.mark.parametrize("style", ["nginx", "apache"])
async def test_first_run_fetches_everything_and_a_rerun_transfers_no_body_bytes(
    served: Running, tmp_path: Path, style: str
) -> None:
    served.archive.style = style
    dest = tmp_path / "mirror"
    report, changes = await run(served, dest)
    assert on_disk(dest) == TREE
    assert (dest / STATE_NAME).is_file()
    assert (report.new, report.updated, report.unchanged, report.failed) == (len(TREE), 0, 0, 0)
    assert report.bytes == TOTAL == served.archive.body_bytes
    assert {c.kind for c in changes} == {"new"}
    assert not [p for p in dest.rglob("*") if p.name.endswith((".part", ".state"))]

    sent = served.archive.body_bytes
    report, changes = await run(served, dest)
    assert served.archive.body_bytes == sent, "an unchanged file was sent again"
    assert served.archive.statuses[304] == len(TREE)
    assert (report.new, report.updated, report.unchanged, report.bytes) == (0, 0, len(TREE), 0)
    assert on_disk(dest) == TREE


async def test_a_changed_file_is_fetched_again_and_only_it(served: Running, dest: Path) -> None:
    await run(served, dest)
    changed = payload("3.13.zip v2", 123_456)
    served.archive.put("3.13/python-3.13-docs.zip", changed)
    served.archive.put("3.12/new.txt", b"new file\n")
    sent = served.archive.body_bytes
    report, changes = await run(served, dest)
    assert served.archive.body_bytes - sent == len(changed) + len(b"new file\n")
    assert (report.new, report.updated, report.unchanged) == (1, 1, len(TREE) - 1)
    assert report.bytes == len(changed) + len(b"new file\n")
    assert (dest / "3.13/python-3.13-docs.zip").read_bytes() == changed
    assert on_disk(dest) == served.archive.files
    kinds = {str(c.path.relative_to(dest)): c.kind for c in changes if c.path}
    assert kinds["3.13/python-3.13-docs.zip"] == "updated"
    assert kinds["3.12/new.txt"] == "new"


async def test_a_start_url_without_its_slash_is_followed_to_the_index(
    served: Running, dest: Path
) -> None:
    report = await mirror(served.base.rstrip("/"), dest)
    assert report.new == len(TREE)
    assert on_disk(dest) == TREE


async def test_last_modified_alone_is_enough_to_revalidate(served: Running, dest: Path) -> None:
    served.archive.etags = False
    await run(served, dest)
    sent = served.archive.body_bytes
    report, _ = await run(served, dest)
    assert served.archive.body_bytes == sent
    assert report.unchanged == len(TREE)


async def test_a_file_without_state_is_revalidated_not_refetched(
    served: Running, dest: Path
) -> None:
    # As after a kill between a file's commit and its row, or a lost state file.
    await run(served, dest)
    (dest / STATE_NAME).unlink()
    sent = served.archive.body_bytes
    report, _ = await run(served, dest)
    assert served.archive.body_bytes == sent
    assert report.unchanged == len(TREE)
    # Known again, by the validators of the 304 this time.
    report, _ = await run(served, dest)
    assert served.archive.body_bytes == sent


async def test_a_damaged_file_is_fetched_again(served: Running, dest: Path) -> None:
    await run(served, dest)
    (dest / "index.txt").write_bytes(b"short")
    report, _ = await run(served, dest)
    assert report.updated == 1
    assert on_disk(dest) == TREE


async def test_removed_upstream_deleted_only_with_delete_and_only_if_the_mirror_made_it(
    served: Running, dest: Path
) -> None:
    # Files that were there before the mirror came: one with no upstream copy, and one that
    # is upstream too (newer than it, so the mirror adopts it as unchanged).
    (dest / "mine.txt").write_bytes(b"my own notes")
    (dest / "3.12").mkdir()
    (dest / "3.12/python-3.12-docs.tar.bz2").write_bytes(TREE["3.12/python-3.12-docs.tar.bz2"])
    report, _ = await run(served, dest)
    assert report.unchanged == 1
    assert report.new == len(TREE) - 1

    del served.archive.files["3.13/python-3.13-docs.zip"]
    del served.archive.files["3.12/python-3.12-docs.tar.bz2"]
    report, _ = await run(served, dest)
    assert report.deleted == 0
    assert (dest / "3.13/python-3.13-docs.zip").is_file()

    report, changes = await run(served, dest, delete=True)
    assert report.deleted == 1
    assert [c.path for c in changes if c.kind == "deleted"] == [dest / "3.13/python-3.13-docs.zip"]
    assert not (dest / "3.13/python-3.13-docs.zip").exists()
    assert (dest / "mine.txt").read_bytes() == b"my own notes"
    assert (dest / "3.12/python-3.12-docs.tar.bz2").is_file(), "not the mirror's to delete"
    assert on_disk(dest) == {
        **served.archive.files,
        "mine.txt": b"my own notes",
        "3.12/python-3.12-docs.tar.bz2": TREE["3.12/python-3.12-docs.tar.bz2"],
    }


async def test_an_incomplete_listing_deletes_nothing(served: Running, dest: Path) -> None:
    await run(served, dest)
    served.archive.broken.add("3.13/")
    report, changes = await run(served, dest, delete=True)
    assert not report.complete
    assert report.failed == 1
    assert report.deleted == 0
    assert [c.url for c in changes if c.kind == "failed"] == [served.base + "3.13/"]
    assert on_disk(dest) == TREE


async def test_dry_run_writes_nothing(served: Running, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    report, changes = await run(served, dest, dry_run=True)
    assert not dest.exists()
    assert report.new == len(TREE)
    assert all(c.dry_run for c in changes)

    await run(served, dest)
    served.archive.put("index.txt", b"changed\n")
    served.archive.put("added.txt", b"added\n")
    del served.archive.files["3.13/extra/notes.txt"]
    before = snapshot(tmp_path)
    report, changes = await run(served, dest, dry_run=True, delete=True)
    assert snapshot(tmp_path) == before
    assert (report.new, report.updated, report.deleted) == (1, 1, 1)
    assert report.unchanged == len(TREE) - 2
    assert report.bytes == 0
    kinds = {str(c.path.relative_to(dest)): c.kind for c in changes if c.path}
    assert kinds["index.txt"] == "updated"
    assert kinds["added.txt"] == "new"
    assert kinds["3.13/extra/notes.txt"] == "deleted"


async def test_hostile_index_entries_are_ignored(served: Running, tmp_path: Path) -> None:
    other_host = str(served.alt_url.with_path("/pub/evil.txt"))
    served.archive.extra = {
        "": [
            "../",
            "/",
            "/etc/",
            "/etc/passwd",
            "../secret.txt",
            "%2e%2e%2fsecret.txt",
            "..%2fsecret.txt",
            "%2e%2e/secret.txt",
            "a%2F..%2F..%2Fsecret.txt",
            other_host,
            "http://example.invalid/pub/x.txt",
            "?C=N;O=D",
            "javascript:alert(1)",
            "file:///etc/passwd",
        ],
        "3.13/": ["../../", "../../secret.txt", "/pub/../secret.txt"],
    }
    dest = tmp_path / "mirror"
    report, _ = await run(served, dest)
    assert report.failed == 0
    assert on_disk(dest) == TREE
    # Nothing was written beside DEST, and the server was never asked outside the archive.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror"]
    outside = [path for path in served.archive.hits if not path.startswith("/pub/")]
    assert outside == []
    assert "/pub/evil.txt" not in served.archive.hits


async def test_include_exclude_and_depth(served: Running, tmp_path: Path) -> None:
    zips = tmp_path / "zips"
    await run(served, zips, include=["*.zip"])
    assert sorted(on_disk(zips)) == ["3.12/python-3.12-docs.zip", "3.13/python-3.13-docs.zip"]

    some = tmp_path / "some"
    walked = served.archive.hits["/pub/3.13/extra/"]
    await run(served, some, exclude=["*.zip", "extra"], include=["*.txt", "3.12/*"])
    assert sorted(on_disk(some)) == [
        "3.12/python-3.12-docs.tar.bz2",
        "a b/\u00fcn\u00ef.txt",
        "index.txt",
    ]
    assert served.archive.hits["/pub/3.13/extra/"] == walked, "an excluded directory was walked"

    top = tmp_path / "top"
    await run(served, top, max_depth=0)
    assert sorted(on_disk(top)) == ["index.txt"]
    one = tmp_path / "one"
    await run(served, one, max_depth=1)
    assert "3.13/extra/notes.txt" not in on_disk(one)
    assert len(on_disk(one)) == len(TREE) - 1

    # A narrower run with --delete leaves what it no longer looks at alone.
    report, _ = await run(served, one, max_depth=0, delete=True)
    assert report.deleted == 0
    assert len(on_disk(one)) == len(TREE) - 1


async def test_a_list_of_urls(served: Running, dest: Path) -> None:
    base = served.base
    urls: list[str | Request] = [
        base + "index.txt",
        Request(base + "3.13/python-3.13-docs.zip", "latest/docs.zip"),
        base + "3.12/",
        "gopher://example.org/x",
    ]
    report = await mirror(urls, dest)
    assert report.failed == 1
    assert not report.complete
    assert (dest / "pub/index.txt").read_bytes() == TREE["index.txt"]
    assert (dest / "latest/docs.zip").read_bytes() == TREE["3.13/python-3.13-docs.zip"]
    assert (dest / "pub/3.12/index.html").read_bytes().startswith(b"<html>")
    sent = served.archive.body_bytes
    report = await mirror(urls[:2], dest)
    assert served.archive.body_bytes == sent
    assert report.unchanged == 2


async def test_a_304_leaves_the_old_file_untouched(served: Running, dest: Path) -> None:
    """What mirror() relies on: a 304 to a conditional request is an HTTPStatusError, and the
    file at the final name is not replaced (the commit never happens)."""
    target = dest / "index.txt"
    target.write_bytes(b"the old copy")
    inode = target.stat().st_ino
    etag = served.archive.etag("index.txt")
    async with Downloader(retry=Retry(attempts=1)) as dl:
        with pytest.raises(HTTPStatusError) as caught:
            await dl.download(
                Request(
                    served.base + "index.txt",
                    target,
                    headers={"If-None-Match": etag},
                    existing=Existing.OVERWRITE,
                )
            )
        outcome = await dl.download(
            Request(served.base + "index.txt", target, existing=Existing.OVERWRITE)
        )
    assert caught.value.status == 304
    assert outcome.etag == etag
    assert outcome.last_modified is not None
    assert sorted(os.listdir(dest)) == ["index.txt"]
    assert target.read_bytes() == TREE["index.txt"]
    assert target.stat().st_ino != inode


async def test_the_state_store(tmp_path: Path) -> None:
    from adownload._mirror.state import Record

    state = await MirrorState.open(tmp_path)
    try:
        await state.put(Record("a/b.txt", "http://h/a/b.txt", owned=True))
        await state.put(Record("a/b.txt", "http://h/a/b.txt", '"e"', None, 3, True, True))
        await state.put(Record("c.txt", "http://h/c.txt"))
        await state.forget("c.txt")
        assert await state.records() == [
            Record("a/b.txt", "http://h/a/b.txt", '"e"', None, 3, owned=True, done=True)
        ]
    finally:
        await state.close()
    before = snapshot(tmp_path)
    reader = await MirrorState.open(tmp_path, read_only=True)
    try:
        assert await reader.get("a/b.txt") is not None
        with pytest.raises(RuntimeError):
            await reader.forget("a/b.txt")
    finally:
        await reader.close()
    assert snapshot(tmp_path) == before
    empty = await MirrorState.open(tmp_path / "none", read_only=True)
    assert await empty.records() == []
    await empty.close()
    assert not (tmp_path / "none").exists()


# --- the command line ------------------------------------------------------------------------


async def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adownload",
        "mirror",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_prints_a_line_per_changed_file_and_a_summary(
    served: Running, tmp_path: Path
) -> None:
    code, out, err = await cli(served.base, "mirror", cwd=tmp_path)
    assert code == 0, err
    assert on_disk(tmp_path / "mirror") == TREE
    assert sorted(line.split()[0] for line in out.splitlines()) == ["new"] * len(TREE)
    assert "new mirror/3.13/python-3.13-docs.zip (390.6 KiB)" in out
    assert f"{len(TREE)} new, 0 updated, 0 unchanged, 0 deleted, 0 failed" in err

    served.archive.put("index.txt", b"v2\n")
    code, out, err = await cli(served.base, "mirror", "-q", cwd=tmp_path)
    assert (code, out, err) == (0, "", "")
    code, out, err = await cli(served.base, "mirror", "--dry-run", "--delete", cwd=tmp_path)
    assert (code, out) == (0, "")
    assert "dry run, nothing changed: 0 new, 0 updated" in err


async def test_cli_exit_status_1_when_a_file_fails(served: Running, tmp_path: Path) -> None:
    served.archive.extra = {"": ["missing.txt"]}
    code, out, err = await cli(served.base, "mirror", "-q", cwd=tmp_path)
    assert code == 1
    assert out == ""
    assert "failed " + served.base + "missing.txt: HTTP 404" in err
    assert on_disk(tmp_path / "mirror") == TREE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gopher://example.org/pub/", "d"], "unsupported URL scheme"),
        (["http://127.0.0.1:9/", "d", "--depth", "-1"], "expected a whole number"),
        (["http://127.0.0.1:9/", "file.txt"], "is not a directory"),
        (["http://127.0.0.1:9/"], "required"),
        (["no-such-list.txt", "d"], "cannot read the list of URLs"),
        (["http://127.0.0.1:9/", "d", "--bogus"], "unknown option --bogus (see --help)"),
        (["http://127.0.0.1:9/", "d", "--exlude", "x"], "did you mean --exclude?"),
        (["http://127.0.0.1:9/", "d", "-A", "*.zip"], "use --include PATTERN"),
    ],
)
async def test_cli_bad_usage_is_one_line_and_status_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "file.txt").write_text("a file")
    code, out, err = await cli(*args, cwd=tmp_path)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["file.txt"]


@pytest.mark.parametrize(
    ("how", "fraction"),
    [(signal.SIGKILL, 0.05), (signal.SIGKILL, 0.4), (signal.SIGKILL, 0.8), (signal.SIGINT, 0.4)],
    ids=["SIGKILL-early", "SIGKILL-midway", "SIGKILL-late", "SIGINT"],
)
async def test_a_run_killed_midway_and_run_again_ends_byte_identical(
    served: Running, tmp_path: Path, how: signal.Signals, fraction: float
) -> None:
    dest = tmp_path / "mirror"
    served.archive.delay = 0.01
    served.archive.mark = int(TOTAL * fraction)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adownload",
        "mirror",
        served.base,
        str(dest),
        "-j",
        "2",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            await served.archive.marked.wait()
    finally:
        process.send_signal(how)
        _, killed_err = await process.communicate()
    expected = -signal.SIGKILL if how == signal.SIGKILL else 130
    assert process.returncode == expected, killed_err.decode()
    # No file at a final name is anything but complete.
    complete = on_disk(dest)
    finished = {
        name: data for name, data in complete.items() if not name.endswith((".part", ".part.state"))
    }
    if fraction > 0.3:
        assert finished, "killed before any file was complete: the test proves less"
    assert len(finished) < len(TREE), "killed after the end: the test proves nothing"
    for name, data in finished.items():
        assert data == TREE[name], f"{name} is corrupt"

    served.archive.delay = 0
    sent = served.archive.body_bytes
    code, _, err = await cli(served.base, str(dest), cwd=tmp_path)
    assert code == 0, err
    assert on_disk(dest) == TREE
    assert not [p for p in dest.rglob("*") if p.name.endswith((".part", ".state"))]
    # Complete files were not fetched again (and parts were continued, not restarted).
    missing = sum(len(TREE[name]) for name in TREE if name not in finished)
    assert served.archive.body_bytes - sent <= missing


# --- the guide's example ---------------------------------------------------------------------

GUIDE = Path(__file__).parent.parent / "docs" / "guides" / "mirror.md"


def readme_mirror_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def test_the_guides_mirror_example_runs_as_pasted(tmp_path: Path) -> None:
    local, with_internet = readme_mirror_blocks()
    assert "https://www.python.org/ftp/python/doc/" in with_internet
    # Only the port changes: 8000 may be taken on a shared machine.
    script = local.replace("8000", str(free_port()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(lines[:2]) == ["new copy/3.13/notes.txt (14 B)", "new copy/docs.zip (3 B)"]
    assert sorted(lines[2:4]) == ["would delete copy/docs.zip", "would update copy/3.13/notes.txt"]
    assert sorted(lines[4:]) == ["deleted copy/docs.zip", "updated copy/3.13/notes.txt (10 B)"]
    assert "1 updated, 0 unchanged, 1 deleted, 0 failed" in result.stderr
    assert on_disk(tmp_path / "copy") == {"3.13/notes.txt": b"new notes\n"}


async def test_a_link_inside_dest_is_not_written_through(served: Running, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "mirror"
    dest.mkdir()
    (dest / "3.13").symlink_to(outside)
    report, changes = await run(served, dest)
    failed = sorted(str(c.path) for c in changes if c.kind == "failed")
    assert failed == [str(dest / "3.13")] * 2
    assert report.new == len(TREE) - 2
    assert list(outside.iterdir()) == []


async def test_cli_reads_a_list_of_urls(served: Running, tmp_path: Path) -> None:
    base = served.base
    (tmp_path / "urls.txt").write_text(
        f"# the archive's first file\n{base}index.txt\n"
        f"{base}3.13/python-3.13-docs.zip\n  dir=latest\n  out=docs.zip\n"
        f"{base}3.12/python-3.12-docs.zip\n  out=../escape.zip\n"
    )
    code, out, err = await cli("urls.txt", "copy", "--delete", cwd=tmp_path)
    assert code == 1
    assert "failed urls.txt:7: out= must not go up with '..'" in err  # the option's line
    assert "not deleting anything: the list has errors" in err
    assert on_disk(tmp_path / "copy") == {
        "pub/index.txt": TREE["index.txt"],
        "latest/docs.zip": TREE["3.13/python-3.13-docs.zip"],
    }
    assert sorted(out.splitlines()) == [
        "new copy/latest/docs.zip (390.6 KiB)",
        "new copy/pub/index.txt (12 B)",
    ]
    assert not (tmp_path / "escape.zip").exists()
