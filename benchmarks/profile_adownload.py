"""Profile adownload on the benchmark's data, served by a private nginx on 127.0.0.1.

Makes the data (as bench.py does), starts nginx, and runs run_adownload.py under
py-spy (sampling, native threads included) and/or pyinstrument, then prints the
functions with the largest self and total share of the samples.

Usage (with the interpreter that has adownload, py-spy and pyinstrument installed):

    python benchmarks/profile_adownload.py                    # small and large, py-spy
    python benchmarks/profile_adownload.py --scenario large --profiler pyinstrument
    python benchmarks/profile_adownload.py --large-size 1024 --out /tmp/prof

py-spy writes collapsed stacks (``*.folded``, one stack a line) and pyinstrument a
text report into ``--out``; both stay there for a closer look (e.g. speedscope).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import CONCURRENCY, HERE, LOOPBACK, MIB
from .data import make_one_file, make_small_files
from .servers import Nginx, ensure_nginx


def top_functions(folded: Path, count: int, thread: str = "") -> str:
    """The ``count`` frames with the most samples on top (self) and anywhere (total).

    With ``thread``, only the stacks of the threads whose name contains it count.
    """
    self_samples: collections.Counter[str] = collections.Counter()
    total_samples: collections.Counter[str] = collections.Counter()
    all_samples = 0
    for line in folded.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        samples = int(number)
        frames = stack.split(";")
        if thread not in frames[0]:
            continue
        all_samples += samples
        self_samples[_short(frames[-1])] += samples
        for frame in {_short(frame) for frame in frames}:
            total_samples[frame] += samples
    if not all_samples:
        return "no samples"
    lines = [f"{all_samples} samples{f' in {thread}' if thread else ''}", "self %  function"]
    lines += [
        f"{100 * n / all_samples:5.1f}  {frame}" for frame, n in self_samples.most_common(count)
    ]
    lines += ["total %  function"]
    lines += [
        f"{100 * n / all_samples:5.1f}  {frame}" for frame, n in total_samples.most_common(count)
    ]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py:12)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if where else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=("small", "large"))
    parser.add_argument("--profiler", action="append", choices=("py-spy", "pyinstrument"))
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--large-size", type=int, default=1024, help="MiB (default 1024)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "adl-profile")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    scenarios = args.scenario or ["small", "large"]
    profilers = args.profiler or ["py-spy"]
    args.out.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="adl-profile-"))
    nginx = Nginx(ensure_nginx(), work / "nginx", work / "data")
    try:
        docroot = work / "data"
        docroot.mkdir()
        files = {
            "small": make_small_files(docroot, args.small_count, 1),
            "large": make_one_file(docroot, "large.bin", args.large_size * MIB, 1),
        }
        os.sync()  # so the data's writeback does not stall the profiled run's file creation
        nginx.start()
        base = f"http://{LOOPBACK}:{nginx.plain_port}/"
        for scenario in scenarios:
            urls = work / f"{scenario}.txt"
            urls.write_text("".join(f"{base}{data.name}\n" for data in files[scenario]))
            driver = [
                args.python,
                str(HERE / "run_adownload.py"),
                str(urls),
                str(work / "out"),
                "-j",
                str(CONCURRENCY),
            ]
            for profiler in profilers:
                shutil.rmtree(work / "out", ignore_errors=True)
                os.sync()
                started = time.perf_counter()
                if profiler == "py-spy":
                    result = args.out / f"{scenario}.folded"
                    beside = Path(args.python).with_name("py-spy")  # a venv's, off the PATH
                    spy = str(beside) if beside.exists() else "py-spy"
                    command = [spy, "record", "--format", "raw", "--rate", str(args.rate)]
                    command += ["--threads", "--nonblocking", "-o", str(result), "--", *driver]
                    subprocess.run(command, check=True, capture_output=True)
                    report = top_functions(result, args.top)
                    report += "\n-- the event loop's thread only --\n"
                    report += top_functions(result, args.top, "MainThread")
                else:
                    result = args.out / f"{scenario}.pyinstrument.txt"
                    command = [args.python, "-m", "pyinstrument", "--show-all", "-o", str(result)]
                    subprocess.run([*command, *driver[1:]], check=True, capture_output=True)
                    report = result.read_text()
                print(f"== {scenario} ({profiler}) took {time.perf_counter() - started:.2f} s")
                print(f"== {scenario} ({profiler}; kept in {result}) ==\n{report}\n", flush=True)
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
