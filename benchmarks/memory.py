"""Show that adownload's peak RSS stays flat: whatever the file size, whatever the URL count.

Two measurements, each in a fresh subprocess whose peak RSS (``ru_maxrss``) is taken by
rusage_launcher.py, as bench.py does:

- **file size**: ``run_adownload.py`` downloads one file of each size (default 64 MiB and
  1 GiB) from a private nginx on 127.0.0.1 into a real file; the file's SHA-256 is checked.
- **URL count**: ``Downloader.as_completed`` is fed a *generator* of N distinct URLs (default
  1,000, 10,000 and 100,000; ``?i=<n>`` on one tiny file, so nginx serves the same bytes) with
  16 transfers at a time. Each ``Request`` gets a ``CheckingSink``: it compares every byte it
  is given with the file's content and then drops it (no disk, so the numbers show adownload's
  own memory, not the page cache's or the file system's). The child also samples its RSS at
  every tenth of the way, so growth within a run shows too.

Usage:

    python benchmarks/memory.py                           # 64 MiB vs 1 GiB; 1k/10k/100k URLs
    python benchmarks/memory.py --quick                   # 16 vs 64 MiB; 1k/10k URLs
    python benchmarks/memory.py --counts 1000 --tracemalloc   # where does memory grow?

``--tracemalloc`` runs the URL-count child once more under tracemalloc and prints the
allocation sites that grew most between 10 % and 100 % of the URLs (slow: 10,000 URLs
take minutes).
``python -m benchmarks`` runs the same measurements as its ``memory`` scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import GIB, HERE, KIB, LOOPBACK, MIB
from .data import make_one_file, verify_download
from .measure import measured_process
from .servers import Nginx, ensure_nginx

#: The child: one `as_completed` run, measured from outside.
CHILD = HERE / "memory_child.py"

TINY_SIZE = 1 * KIB
JOBS = 16
FULL_FILE_SIZES = (64 * MIB, 1 * GIB)
QUICK_FILE_SIZES = (16 * MIB, 64 * MIB)
FULL_COUNTS = (1_000, 10_000, 100_000)
QUICK_COUNTS = (1_000, 10_000)
# Peak RSS may differ by this much between the smallest and largest case and still be "flat"
# (allocator noise, aiohttp's buffers reaching their high water marks).
FLAT_TOLERANCE = 4 * MIB


# --------------------------------------------------------------------------- the parent


@dataclass
class MemoryReport:
    file_rows: list[dict[str, Any]] = field(default_factory=list)
    url_rows: list[dict[str, Any]] = field(default_factory=list)
    tracemalloc: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


def _child_result(log: Path) -> dict[str, Any] | None:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    return None


def _tail(log: Path) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])[-400:]


def run_memory(
    python: str,
    base_url: str,
    docroot: Path,
    work: Path,
    file_sizes: Sequence[int],
    counts: Sequence[int],
    *,
    files: bool = False,
    trace_count: int | None = None,
    say: Any = print,
    seed: int = 20240601,
) -> MemoryReport:
    """Measure, with the nginx at ``base_url`` serving ``docroot``; scratch files in ``work``."""
    report = MemoryReport()
    work.mkdir(parents=True, exist_ok=True)

    say(f"-- memory (a): peak RSS of run_adownload.py by file size, one file, -j {JOBS}")
    for size in file_sizes:
        sources = make_one_file(docroot, f"memory-{size // MIB}M.bin", size, seed)
        dest = work / "out-size"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        urls = work / f"urls-{size // MIB}M.txt"
        urls.write_text(base_url + sources[0].name + "\n")
        os.sync()
        log = work / f"size-{size // MIB}M.log"
        argv = [python, str(HERE / "run_adownload.py"), str(urls), str(dest), "-j", str(JOBS)]
        measured = measured_process(argv, log, 900)
        error = (
            f"exit {measured.exit_code}: {_tail(log)}"
            if measured.exit_code
            else verify_download(dest, sources)
        )
        shutil.rmtree(dest, ignore_errors=True)
        (docroot / sources[0].name).unlink()
        size_row: dict[str, Any] = {
            "size": size,
            "ok": error is None,
            "error": error,
            "wall_s": measured.wall_s,
            "max_rss_kib": measured.max_rss_kib,
        }
        report.file_rows.append(size_row)
        if error:
            say(f"  {_human(size):>8}  FAILED: {error}")
        else:
            say(
                f"  {_human(size):>8}  peak RSS {measured.max_rss_kib / KIB:6.1f} MiB   "
                f"{measured.wall_s:6.2f} s wall   (byte-identical)"
            )

    say(
        f"-- memory (b): as_completed fed a generator of N URLs, -j {JOBS}, "
        f"{TINY_SIZE} B each, "
        + (
            "into files (read back, compared, deleted)"
            if files
            else "into a checking, discarding sink"
        )
    )
    tiny = make_one_file(docroot, "memory-tiny.bin", TINY_SIZE, seed)[0]
    url = base_url + tiny.name
    expected = docroot / tiny.name
    for count in counts:
        log = work / f"urls-{count}.log"
        argv = [python, str(CHILD), "--url", url]
        argv += ["--count", str(count), "--expected", str(expected)]
        if files:
            argv += ["--into", str(work / "out-urls")]
        measured = measured_process(argv, log, 1800)
        shutil.rmtree(work / "out-urls", ignore_errors=True)
        result = _child_result(log)
        ok = measured.exit_code == 0 and result is not None
        row: dict[str, Any] = {"count": count, "ok": ok, "max_rss_kib": measured.max_rss_kib}
        row["wall_s"] = measured.wall_s
        if result is not None:
            row.update({k: result[k] for k in ("done", "failed", "first_error", "rss_samples_kib")})
        report.url_rows.append(row)
        if not ok:
            why = (result or {}).get("first_error") or _tail(log)
            say(f"  {count:>8,} URLs  FAILED (exit {measured.exit_code}): {why}")
            continue
        assert result is not None
        samples = result["rss_samples_kib"]
        trail = " ".join(f"{rss / KIB:.1f}" for _, rss in samples)
        say(
            f"  {count:>8,} URLs  peak RSS {measured.max_rss_kib / KIB:6.1f} MiB   "
            f"{measured.wall_s:6.1f} s wall ({count / measured.wall_s:,.0f} URLs/s)   "
            f"RSS at each tenth (MiB): {trail}"
        )

    _verdicts(report, say)

    if trace_count:
        say(f"-- tracemalloc: allocations that grew from 10 % to 100 % of {trace_count:,} URLs")
        log = work / "tracemalloc.log"
        argv = [python, str(CHILD), "--url", url, "--tracemalloc"]
        argv += ["--count", str(trace_count), "--expected", str(expected)]
        if files:
            argv += ["--into", str(work / "out-urls")]
        measured_process(argv, log, 1800)
        result = _child_result(log)
        report.tracemalloc = result["tracemalloc_growth"] if result else [_tail(log)]
        for line in report.tracemalloc:
            say(f"  {line}")
    return report


def _verdicts(report: MemoryReport, say: Any) -> None:
    sizes = [row for row in report.file_rows if row["ok"]]
    if len(sizes) >= 2 and len(sizes) == len(report.file_rows):
        low, high = sizes[0], sizes[-1]
        grow = (high["max_rss_kib"] - low["max_rss_kib"]) * KIB
        flat = "FLAT" if grow <= FLAT_TOLERANCE else "GROWS"
        report.verdicts.append(f"file size: {flat}")
        say(
            f"  file size {_human(low['size'])} -> {_human(high['size'])}: peak RSS "
            f"{grow / MIB:+.1f} MiB -> {flat} (tolerance {FLAT_TOLERANCE / MIB:.0f} MiB)"
        )
    counts = [row for row in report.url_rows if row["ok"]]
    if len(counts) >= 2 and len(counts) == len(report.url_rows):
        low, high = counts[0], counts[-1]
        grow = (high["max_rss_kib"] - low["max_rss_kib"]) * KIB
        per_k = grow / KIB / ((high["count"] - low["count"]) / 1000)
        flat = "FLAT" if grow <= FLAT_TOLERANCE else "GROWS"
        report.verdicts.append(f"URL count: {flat}")
        # Growth within the largest run, from its first tenth to its end.
        samples = high["rss_samples_kib"]
        within = (samples[-1][1] - samples[0][1]) / KIB if samples else 0.0
        say(
            f"  URLs {low['count']:,} -> {high['count']:,}: peak RSS {grow / MIB:+.1f} MiB "
            f"({per_k:+.2f} KiB per 1000 URLs); within the {high['count']:,} run "
            f"{within:+.1f} MiB from 10 % to 100 % -> {flat}"
        )


def _human(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16/64 MiB and 1k/10k URLs")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="MIB", help="file sizes")
    parser.add_argument("--counts", type=int, nargs="+", help="URL counts")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations")
    parser.add_argument("--trace-count", type=int, default=10_000, help="URLs for --tracemalloc")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the children")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir (default: $TMPDIR)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    parser.add_argument(
        "--files",
        action="store_true",
        help="URL count: download into real files (read back, compared, deleted) "
        "instead of the checking, discarding sink",
    )
    args = parser.parse_args(argv)

    sizes = [s * MIB for s in args.sizes] if args.sizes else None
    file_sizes = sizes or list(QUICK_FILE_SIZES if args.quick else FULL_FILE_SIZES)
    counts = args.counts or list(QUICK_COUNTS if args.quick else FULL_COUNTS)
    work = Path(tempfile.mkdtemp(prefix="adownload-memory-", dir=args.workdir))
    nginx = Nginx(ensure_nginx(), work / "nginx", work / "data")
    try:
        (work / "data").mkdir()
        nginx.start()
        base_url = f"http://{LOOPBACK}:{nginx.plain_port}/"
        report = run_memory(
            args.python,
            base_url,
            work / "data",
            work / "scratch",
            file_sizes,
            counts,
            files=args.files,
            trace_count=args.trace_count if args.tracemalloc else None,
        )
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report.__dict__, indent=2) + "\n")
    failed = any(not row["ok"] for row in report.file_rows + report.url_rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
