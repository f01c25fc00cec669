"""The file system under the outputs, which can fool a benchmark of many small files.

On ext4, creating files right after many others were created or deleted can be 10-40 times
slower for a minute or two (the journal, the inode tables being written back): every tool then
pays the same extra second, and the ratios shrink toward 1. So each run writes into a fresh
directory, outputs of many files are deleted only once everything is measured (outside any
timed part), and before each run `creation_speed` measures how fast files are created right
now, which the report shows beside the run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

#: Files of PROBE_SIZE bytes that one probe creates (and keeps: a deletion would slow the next).
PROBE_FILES = 200
PROBE_SIZE = 4096
#: Outputs of more files than this wait for the end of the whole run to be deleted.
MANY_FILES = 16

_probes = itertools.count()


def creation_speed(root: Path) -> float:
    """Files a second created (written, closed) in a fresh directory under `root` now."""
    directory = root / f"probe-{next(_probes)}"
    directory.mkdir(parents=True)
    block = b"\0" * PROBE_SIZE
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    started = time.perf_counter()
    for index in range(PROBE_FILES):
        fd = os.open(directory / f"{index}", flags, 0o644)
        try:
            os.write(fd, block)
        finally:
            os.close(fd)
    return PROBE_FILES / (time.perf_counter() - started)


class Outputs:
    """Where each run writes: a fresh directory per run, deleted after it is checked when it
    holds a few (large) files, or at the end (`clear`) when it holds many small ones."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._later: list[Path] = []

    def fresh(self, scenario: str, tool: str, repetition: int) -> Path:
        path = self.root / scenario / f"{tool}-{repetition}"
        path.mkdir(parents=True)
        return path

    def done(self, path: Path, files: int) -> None:
        """The run in `path` is measured and checked."""
        if files > MANY_FILES:
            self._later.append(path)
        else:
            # Large outputs left on disk slow every later large write: they go now.
            shutil.rmtree(path, ignore_errors=True)
            os.sync()

    def clear(self) -> None:
        for path in self._later:
            shutil.rmtree(path, ignore_errors=True)
        self._later.clear()
