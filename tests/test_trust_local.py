"""A stranger's folder: files named like adownload's own, special files, corrupt state, a full
disk, names at the length limit, names that hide their text, and links under `-d`.

adownload never deletes or overwrites a file it did not make (the target under OVERWRITE aside),
never blocks on or writes through a special file, and never lets one bad file stop the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adownload import (
    DestinationExistsError,
    Downloader,
    Existing,
    Limits,
    Request,
    Segments,
    StorageError,
    UnsafePathError,
    safe_filename,
)
from adownload._disk import files as _files

from .cli_support import run_cli
from .servers import FaultServer
from .support import FAST, MIB, listing

# --- files named like adownload's own -------------------------------------------------------


async def test_a_download_named_like_another_ones_part_is_never_deleted(
    faults: FaultServer, dest: Path
) -> None:
    items = [
        Request(faults.url("/f/a.bin"), dest / "data.part"),
        Request(faults.url("/f/b.bin"), dest / "data"),
    ]
    async with Downloader(dest=dest) as dl:
        first, second = await dl.download_many(items)
    assert first.ok
    assert (dest / "data.part").read_bytes() == faults.content("/f/a.bin")
    # `data` cannot have its .part where a finished file stands: a clear failure, not a loss.
    assert isinstance(second.error, DestinationExistsError)
    assert second.error.path == dest / "data.part"
    assert "did not make it" in str(second.error)
    assert listing(dest) == ["data.part"]
    # In the other order both fit: `data` is done (and its part gone) before `data.part` starts.
    other = dest / "other"
    other.mkdir()
    async with Downloader(dest=other) as dl:
        outcomes = await dl.download_many(
            [
                Request(faults.url("/f/b.bin"), other / "data"),
                Request(faults.url("/f/a.bin"), other / "data.part"),
            ]
        )
    assert [o.ok for o in outcomes] == [True, True]
    assert (other / "data").read_bytes() == faults.content("/f/b.bin")
    assert (other / "data.part").read_bytes() == faults.content("/f/a.bin")


async def test_a_users_own_dot_part_file_is_left_alone(faults: FaultServer, dest: Path) -> None:
    (dest / "notes.part").write_bytes(b"my notes")
    async with Downloader(dest=dest) as dl:
        (outcome,) = await dl.download_many([faults.url("/f/notes")])
    assert isinstance(outcome.error, DestinationExistsError)
    assert (dest / "notes.part").read_bytes() == b"my notes"
    assert listing(dest) == ["notes.part"]


async def test_a_leftover_part_of_ours_is_replaced(faults: FaultServer, dest: Path) -> None:
    # What a run killed in the middle of a small download leaves: a marked part, no state.
    part = dest / "a.bin.part"
    part.write_bytes(b"half of an old body")
    if not _files.mark_part(part):
        pytest.skip("this file system keeps no user attributes")
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(faults.url("/f/a.bin"))
    assert outcome.ok
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin")
    assert listing(dest) == ["a.bin"]
    assert not _files.is_marked(dest / "a.bin")  # the finished file carries no mark


# --- special files ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a.bin", "a.bin.part", "a.bin.part.state"])
async def test_a_fifo_at_the_target_part_or_state_is_refused_without_blocking(
    faults: FaultServer, dest: Path, where: str
) -> None:
    os.mkfifo(dest / where)
    async with Downloader(dest=dest) as dl:
        (outcome,) = await asyncio.wait_for(dl.download_many([faults.url("/f/a.bin")]), 10)
    assert isinstance(outcome.error, UnsafePathError)
    assert f"refusing to use {dest / where}: it is a FIFO, not a regular file" in str(outcome.error)
    assert not outcome.skipped
    assert listing(dest) == [where]  # nothing written, the FIFO left as it was
    assert (dest / where).is_fifo()


# --- unusable state -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "null",
        '"x"',
        "{}",
        # Each of these names the right URL, so only its shape is wrong.
        '{"version": 1, "url": "URL", "length": 1e999}',
        '{"version": 1, "url": 5, "length": 1024}',
        '{"version": 1, "url": "URL", "length": 1024, "etag": 5}',
        '{"version": 1, "url": "URL", "length": 1024, "last_modified": ["x"]}',
        '{"version": 1, "url": "URL", "length": 1024, "etag": "\\"e\\"", "ranges": [[0, "x"]]}',
        '{"version": 1, "url": "URL", "length": 1024, "etag": "\\"e\\"", "ranges": [[5, 1]]}',
        '{"version": 1, "url": "URL", "length": -3, "etag": "\\"e\\""}',
        '{"version": 1, "url": "URL", "length": true, "etag": "\\"e\\""}',
        '{"version": 1, "url": "URL", "length": 1024, "etag": "\\"e\\"", "sparse": "yes"}',
        '{"version": 1, "url": "URL", "length": 1024, "etag": "\\"e\\"", "ranges": 7}',
        "\xff\xfe not json",
    ],
)
async def test_any_unusable_state_is_discarded_and_the_file_downloads(
    faults: FaultServer, dest: Path, text: str
) -> None:
    text = text.replace("URL", faults.url("/f/a.bin"))
    (dest / "a.bin.part").write_bytes(b"old")
    (dest / "a.bin.part.state").write_bytes(text.encode("utf-8", "surrogateescape"))
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(faults.url("/f/a.bin"))
    assert outcome.ok
    assert outcome.resumed_from == 0
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin")
    assert listing(dest) == ["a.bin"]
    # The same again, for a run after this one: no state is ever a reason to fail forever.
    (dest / "a.bin").unlink()
    (dest / "a.bin.part.state").write_bytes(text.encode("utf-8", "surrogateescape"))
    async with Downloader(dest=dest) as dl:
        assert (await dl.download(faults.url("/f/a.bin"))).ok
    assert listing(dest) == ["a.bin"]


# --- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: a real ENOSPC. Needs root (CI and this project's machines have it)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_after_a_full_disk_only_a_resumable_part_stays_and_the_batch_goes_on(
    faults: FaultServer, small_disk: Path
) -> None:
    items = [
        # No validators: its part can never be resumed, so it must not stay and fill the disk.
        faults.url("/f/big-plain.bin", size=4 * MIB, validators="none"),
        faults.url("/f/small.bin", size=100_000),
        # Resumable and segmented: it may keep its part, with its state, and nothing else.
        faults.url("/f/big-segmented.bin", size=6 * MIB),
        faults.url("/f/last.bin", size=100_000),
    ]
    async with Downloader(
        dest=small_disk,
        retry=FAST,
        limits=Limits(max_transfers=1),
        segments=Segments(count=3, min_size=MIB),
    ) as dl:
        outcomes = await dl.download_many(items)
    assert isinstance(outcomes[0].error, StorageError)
    assert isinstance(outcomes[2].error, StorageError)
    assert outcomes[1].ok
    assert outcomes[3].ok
    assert (small_disk / "small.bin").read_bytes() == faults.content("/f/small.bin", 100_000)
    assert (small_disk / "last.bin").read_bytes() == faults.content("/f/last.bin", 100_000)
    left = set(listing(small_disk))
    assert left <= {
        "small.bin",
        "last.bin",
        "big-segmented.bin.part",
        "big-segmented.bin.part.state",
    }
    assert ("big-segmented.bin.part" in left) == ("big-segmented.bin.part.state" in left)
    if "big-segmented.bin.part.state" in left:
        json.loads((small_disk / "big-segmented.bin.part.state").read_text())


@pytest.mark.parametrize("transfers", [1, 4])
async def test_a_full_disk_leaves_no_empty_and_no_unresumable_part(
    faults: FaultServer, small_disk: Path, transfers: int
) -> None:
    # Several at once, most without validators: a part that cannot be resumed, or that was
    # created and never written, must not stay and fill the disk for the files after it.
    items = [faults.url(f"/f/big{n}.bin", size=2 * MIB, validators="none") for n in range(3)]
    items += [faults.url(f"/f/resumable{n}.bin", size=2 * MIB) for n in range(2)]
    async with Downloader(
        dest=small_disk, retry=FAST, limits=Limits(max_transfers=transfers)
    ) as dl:
        outcomes = await dl.download_many(items)
    assert any(isinstance(o.error, StorageError) for o in outcomes)
    for outcome in outcomes:
        if outcome.ok:
            assert outcome.path is not None
            name = outcome.path.name
            assert outcome.path.read_bytes() == faults.content(f"/f/{name}", 2 * MIB)
        else:
            assert isinstance(outcome.error, StorageError), outcome.error
    left = listing(small_disk)
    parts = [name for name in left if name.endswith(".part")]
    for part in parts:
        assert part.startswith("resumable"), left  # never an unresumable one
        assert f"{part}.state" in left, left  # its state says how to go on
        assert (small_disk / part).stat().st_size > 0, left
    # Nothing else holds the disk: with the complete files and the kept parts gone (which may
    # fill it between them, rightly), the next download has the room.
    for name in left:
        if not name.endswith(".state"):
            (small_disk / name).unlink()
    async with Downloader(dest=small_disk, retry=FAST) as dl:
        last = await dl.download(faults.url("/f/after.bin", size=100_000))
    assert last.ok, (last.error, left)
    assert (small_disk / "after.bin").read_bytes() == faults.content("/f/after.bin", 100_000)


# --- names at the limit, names that hide text -------------------------------------------------


@pytest.mark.parametrize("length", [240, 241, 245, 250, 255])
async def test_names_up_to_the_limit_download_and_rename(
    faults: FaultServer, dest: Path, length: int
) -> None:
    name = "n" * (length - 4) + ".bin"
    faults.plan(f"/f/{name}", [f"cut_after:{100_000}"])  # a kept part needs its state file
    async with Downloader(dest=dest, retry=FAST, existing=Existing.RENAME) as dl:
        first = await dl.download(faults.url(f"/f/{name}", size=300_000))
    async with Downloader(dest=dest, retry=FAST, existing=Existing.RENAME) as dl:  # a rerun
        second = await dl.download(faults.url(f"/f/{name}", size=300_000))
        exact = await dl.download(faults.url("/f/x.bin"), dest=dest / ("e" * 251 + ".bin"))
    for outcome in (first, second, exact):
        assert outcome.ok
        assert outcome.path is not None
        assert len(outcome.path.name.encode()) <= 255
    assert first.path != second.path
    assert first.path is not None
    assert first.path.read_bytes() == faults.content(f"/f/{name}", 300_000)
    assert exact.path == dest / ("e" * 251 + ".bin")
    assert not any(n.endswith((".part", ".state", ".tmp")) for n in listing(dest))


@pytest.mark.parametrize(
    "char", ["\u009b", "\u0085", "\u202e", "\u2066", "\u200f", "\u061c", "\u2028", "\x1b"]
)
def test_c1_controls_and_bidirectional_overrides_are_dropped_from_names(char: str) -> None:
    assert safe_filename(f"invoice{char}fdp.exe") == "invoicefdp.exe"


async def test_a_url_name_with_a_c1_control_lands_without_it(
    faults: FaultServer, dest: Path
) -> None:
    async with Downloader(dest=dest) as dl:
        url = faults.url("/f/x.txt").replace("x.txt", "ev%C2%9B%E2%80%AEil.txt")
        outcome = await dl.download(url)
    assert outcome.path == dest / "evil.txt"
    assert listing(dest) == ["evil.txt"]


# --- links under -d ---------------------------------------------------------------------------


def test_cli_input_dir_does_not_follow_a_link_out_of_dest(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    (tmp_path / "urls.txt").write_text(
        f"{threaded_faults.url('/f/a.bin')}\n  dir=sub\n"
        f"{threaded_faults.url('/f/b.bin')}\n  dir=sub/deeper\n"
        f"{threaded_faults.url('/f/c.bin')}\n  dir=fine\n"
    )
    result = run_cli("-i", "urls.txt", "-d", dest, cwd=tmp_path)
    assert result.returncode == 1
    assert "symbolic link" in result.stderr
    assert list(outside.iterdir()) == []
    assert (dest / "fine/c.bin").read_bytes() == threaded_faults.content("/f/c.bin")
    with contextlib.suppress(FileNotFoundError):
        assert not (outside / "deeper").exists()
