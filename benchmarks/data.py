"""The benchmark's data: random files from a fixed seed with their SHA-256, a Metalink
for them, and the check that a tool's output is exactly the data."""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import GIB, METALINK_PIECE, MIB, SMALL_FILE_SIZE, WRITE_CHUNK


@dataclass(frozen=True)
class Sizes:
    small_count: int
    large_size: int
    throttled_size: int
    memory_file_sizes: tuple[int, ...]  # the memory scenario: one file of each size
    memory_url_counts: tuple[int, ...]  # the memory scenario: as_completed over N URLs
    many_count: int = 10_000  # the many and dask scenarios: files of SMALL_FILE_SIZE
    metalink_size: int = 200 * MIB  # the metalink scenarios' one file


FULL_SIZES = Sizes(
    small_count=1000,
    large_size=1 * GIB,
    throttled_size=200 * MIB,
    memory_file_sizes=(64 * MIB, 1 * GIB),
    memory_url_counts=(1_000, 10_000, 100_000),
)
QUICK_SIZES = Sizes(
    small_count=200,
    large_size=64 * MIB,
    throttled_size=32 * MIB,
    memory_file_sizes=(16 * MIB, 64 * MIB),
    memory_url_counts=(1_000, 10_000),
    many_count=1_000,
    metalink_size=32 * MIB,
)


@dataclass(frozen=True)
class DataFile:
    """One source file; ``name`` is its path under the docroot and in its URL."""

    name: str
    size: int
    sha256: str

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def write_random_file(path: Path, size: int, rng: random.Random) -> str:
    """Write ``size`` bytes from ``rng`` to ``path`` in chunks; return their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        remaining = size
        while remaining:
            block = rng.randbytes(min(WRITE_CHUNK, remaining))
            fh.write(block)
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def make_small_files(docroot: Path, count: int, seed: int) -> tuple[DataFile, ...]:
    folder = docroot / "small"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:small")
    files = []
    for index in range(count):
        name = f"small/f{index:04d}.bin"
        files.append(
            DataFile(name, SMALL_FILE_SIZE, write_random_file(docroot / name, SMALL_FILE_SIZE, rng))
        )
    return tuple(files)


def make_one_file(docroot: Path, name: str, size: int, seed: int) -> tuple[DataFile, ...]:
    rng = random.Random(f"{seed}:{name}")
    return (DataFile(name, size, write_random_file(docroot / name, size, rng)),)


def make_metalink_file(docroot: Path, size: int, seed: int) -> tuple[DataFile, ...]:
    """The metalink scenarios' file, and its copy with one byte wrong in the middle of every
    piece under ``docroot/corrupt``, for the corrupting mirror: whichever piece a tool asks
    it for comes back bad."""
    files = make_one_file(docroot, "metalink.bin", size, seed)
    corrupt = docroot / "corrupt"
    corrupt.mkdir(exist_ok=True)
    shutil.copyfile(docroot / "metalink.bin", corrupt / "metalink.bin")
    with (corrupt / "metalink.bin").open("r+b") as fh:
        for start in range(0, size, METALINK_PIECE):
            offset = start + min(METALINK_PIECE, size - start) // 2
            fh.seek(offset)
            byte = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([byte[0] ^ 0xFF]))
    return files


def write_metalink(path: Path, docroot: Path, data: DataFile, urls: Sequence[str]) -> Path:
    """A Metalink 4 document for ``data`` at ``urls`` (priority in order), with its SHA-256
    and SHA-256 hashes of its METALINK_PIECE pieces."""
    pieces = []
    with (docroot / data.name).open("rb") as fh:
        while block := fh.read(METALINK_PIECE):
            pieces.append(hashlib.sha256(block).hexdigest())
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<metalink xmlns="urn:ietf:params:xml:ns:metalink">',
        f'  <file name="{data.basename}">',
        f"    <size>{data.size}</size>",
        f'    <hash type="sha-256">{data.sha256}</hash>',
        f'    <pieces length="{METALINK_PIECE}" type="sha-256">',
        *(f"      <hash>{digest}</hash>" for digest in pieces),
        "    </pieces>",
        *(f'    <url priority="{rank}">{url}</url>' for rank, url in enumerate(urls, 1)),
        "  </file>",
        "</metalink>",
    ]
    return write_lines(path, lines)


def verify_download(dest: Path, files: Sequence[DataFile]) -> str | None:
    """None when every file is in ``dest`` with its source's size and SHA-256."""
    for data in files:
        path = dest / data.basename
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{data.basename} missing"
        if size != data.size:
            return f"{data.basename} has {size} bytes, expected {data.size}"
        with path.open("rb") as fh:
            if hashlib.file_digest(fh, "sha256").hexdigest() != data.sha256:
                return f"{data.basename} content differs from the source"
    return None


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
