"""The benchmark helpers that decide whether a run counts: quick, nothing timed, no servers."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name: str) -> Any:
    """Import benchmarks/<name>.py the way it runs: with its own folder on sys.path."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def test_verify_download_counts_only_identical_files(tmp_path: Path) -> None:
    bench = _module("bench")
    data = b"0123456789" * 1000
    source = bench.DataFile("small/a.bin", len(data), hashlib.sha256(data).hexdigest())
    dest = tmp_path / "out"
    dest.mkdir()

    assert bench.verify_download(dest, [source]) == "a.bin missing"
    (dest / "a.bin").write_bytes(data[:-1])
    assert (
        bench.verify_download(dest, [source])
        == f"a.bin has {len(data) - 1} bytes, expected {len(data)}"
    )
    (dest / "a.bin").write_bytes(data[:-1] + b"X")
    assert bench.verify_download(dest, [source]) == "a.bin content differs from the source"
    (dest / "a.bin").write_bytes(data)
    assert bench.verify_download(dest, [source]) is None
    assert sorted(p.name for p in dest.iterdir()) == ["a.bin"]


async def test_checking_sink_accepts_the_source_bytes_and_refuses_others() -> None:
    memory = _module("memory")
    expected = bytes(range(256)) * 4
    sink = memory.CheckingSink(expected)
    await sink.write_at(0, expected[:100])
    await sink.write_at(100, expected[100:])
    await sink.close()
    assert (sink.received, sink.closed) == (len(expected), True)

    wrong = memory.CheckingSink(expected)
    with pytest.raises(ValueError, match="offset 10 differ"):
        await wrong.write_at(10, b"\x00" * 5)
    assert wrong.received == 0


def test_profile_summary_reads_py_spy_raw_stacks(tmp_path: Path) -> None:
    profile = _module("profile_adownload")
    folded = tmp_path / "run.folded"
    folded.write_text(
        "thread (1): MainThread;main (/x/run.py:3);save (/x/_state.py:9) 3\n"
        "thread (1): MainThread;main (/x/run.py:3) 1\n"
        "thread (2): asyncio_0;_pwrite_all (/x/_sinks.py:89) 4\n"
    )
    everything = profile.top_functions(folded, 5)
    assert everything.splitlines()[0] == "8 samples"
    assert " 50.0  _pwrite_all (_sinks.py:89)" in everything
    main_only = profile.top_functions(folded, 5, "MainThread")
    assert main_only.splitlines()[0] == "4 samples in MainThread"
    assert " 75.0  save (_state.py:9)" in main_only
    assert "_pwrite_all" not in main_only
