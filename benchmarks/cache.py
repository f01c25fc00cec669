"""The download cache against pooch: the first fetch (into an empty cache) and the cached one.

Usage: python benchmarks/cache.py [--repeat N] [--python PATH] [--small N] [--large SIZE_MIB]

Serves N x 64 KiB files and one large file from a private nginx on 127.0.0.1 and, for each
of `adownload.fetch_many` / `adownload.fetch` and `pooch.retrieve` (pooch fetches one file at
a time; it is called once per file, as its users do), runs a fresh process that fetches them
with their SHA-256 into an empty cache ("first"), then another that fetches them again
("cached"). Every run is checked: the paths it printed must hold the right bytes. Prints wall
time, CPU time and peak RSS (medians), and adownload / pooch.

Needs nginx (as bench.py) and pooch in the driver interpreter (`pip install pooch`).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import KIB, LOOPBACK, MIB
from .data import DataFile, make_one_file, make_small_files
from .measure import Measurement, measured_process
from .servers import Nginx, ensure_nginx

ADOWNLOAD = """
import sys, adownload
lines = [line.split() for line in open(sys.argv[1])]
cache = sys.argv[2]
if len(lines) == 1:
    paths = [adownload.fetch(lines[0][0], checksum="sha256:" + lines[0][1], cache=cache)]
else:
    limits = adownload.Limits(max_transfers=16, max_per_host=16)
    items = [(url, "sha256:" + sha) for url, sha in lines]
    paths = adownload.fetch_many(items, cache=cache, limits=limits)
print("\\n".join(f"PATH {path}" for path in paths))
"""

POOCH = """
import sys, pooch
lines = [line.split() for line in open(sys.argv[1])]
cache = sys.argv[2]
paths = [
    pooch.retrieve(url, known_hash="sha256:" + sha, path=cache, progressbar=False)
    for url, sha in lines
]
print("\\n".join(f"PATH {path}" for path in paths))
"""

TOOLS = {"adownload": ADOWNLOAD, "pooch": POOCH}


def check(printed: Path, files: tuple[DataFile, ...]) -> str | None:
    lines = printed.read_text().splitlines()
    paths = [Path(line[5:]) for line in lines if line.startswith("PATH ")]
    if len(paths) != len(files):
        return f"printed {len(paths)} paths for {len(files)} files"
    for path, data in zip(paths, files, strict=True):
        if hashlib.sha256(path.read_bytes()).hexdigest() != data.sha256:
            return f"{path} does not hold {data.name}"
    return None


def run(python: str, tool: str, urls: Path, cache: Path, work: Path, tag: str) -> Measurement:
    log = work / f"{tag}.log"
    argv = [python, "-c", TOOLS[tool], str(urls), str(cache)]
    return measured_process(argv, log, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--small", type=int, default=200, help="how many 64 KiB files")
    parser.add_argument("--large", type=int, default=256, help="MiB of the large file")
    args = parser.parse_args(argv)
    missing = subprocess.run([args.python, "-c", "import pooch, adownload"], check=False)
    if missing.returncode != 0:
        print("cache.py needs adownload and pooch in the driver: pip install pooch")
        return 2
    with tempfile.TemporaryDirectory(prefix="adownload-cache-bench-") as temp:
        work = Path(temp)
        docroot = work / "data"
        docroot.mkdir()
        sets = {
            f"{args.small} x 64 KiB": make_small_files(docroot, args.small, 1),
            f"1 x {args.large} MiB": make_one_file(docroot, "large.bin", args.large * MIB, 1),
        }
        nginx = Nginx(ensure_nginx(), work / "nginx", docroot)
        nginx.start()
        try:
            base = f"http://{LOOPBACK}:{nginx.plain_port}/"
            print(
                f"{'files':<16} {'tool':<10} {'fetch':<7} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8}"
            )
            for label, files in sets.items():
                urls = work / f"{label.split()[0]}.txt"
                urls.write_text("".join(f"{base}{f.name} {f.sha256}\n" for f in files))
                results: dict[tuple[str, str], list[Measurement]] = {}
                for repetition in range(args.repeat):
                    for tool in TOOLS:  # alternate, run by run
                        cache = work / f"cache-{tool}"
                        shutil.rmtree(cache, ignore_errors=True)
                        for phase in ("first", "cached"):
                            tag = f"{tool}-{phase}-{repetition}"
                            measured = run(args.python, tool, urls, cache, work, tag)
                            log = work / f"{tag}.log"
                            error = (
                                f"exit {measured.exit_code}"
                                if measured.exit_code != 0
                                else check(log, files)
                            )
                            if error is not None:
                                print(f"{label}: {tool} {phase} failed: {error}")
                                print(log.read_text()[-2000:])
                                return 1
                            results.setdefault((tool, phase), []).append(measured)
                for phase in ("first", "cached"):
                    walls = {}
                    for tool in TOOLS:
                        runs = results[(tool, phase)]
                        wall = statistics.median(r.wall_s for r in runs)
                        cpu = statistics.median(r.cpu_s for r in runs)
                        rss = max(r.max_rss_kib for r in runs) / KIB
                        walls[tool] = wall
                        print(
                            f"{label:<16} {tool:<10} {phase:<7} {wall:8.3f} {cpu:8.3f} {rss:8.1f}"
                        )
                    ratio = walls["adownload"] / walls["pooch"]
                    print(f"{label:<16} {'adl/pooch':<10} {phase:<7} {ratio:8.2f}")
        finally:
            nginx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
