"""The per-file path and start-up, this tree beside another checkout and a bare aiohttp loop.

Usage: python -m benchmarks.layers [--baseline SRC] [--files N] [--repeat N] [--no-install]

Rows, each the median of ``--repeat`` runs taken in turn (A B C ... A B C ...), every run in a
fresh directory, every process under ``rusage_launcher.py``:

- ``small``: N x 64 KiB files (default 1000) from a private nginx on 127.0.0.1, 16 at a time:
  ``run_aiohttp.py`` (the bare loop, the floor of our stack), ``run_guarded.py`` (the bare
  loop plus the per-file guarantees' own system calls, checks, permits and watchdog, written
  directly: what the guarantees cost apart from the library's structure; ``+ objects``: with
  the library's Request, name checks, read timeout and Outcome too) and
  ``run_adownload.py`` (``download_many``), each on asyncio's loop and on uvloop's;
- ``--version`` and ``--help`` of the command (``python -m adownload``), ``import adownload``;
- a mirror rerun with nothing to do: ``adownload mirror`` of a 20-file nginx listing into a
  folder that already holds it.

With ``--baseline SRC`` (the ``src`` folder of another checkout, e.g. a ``git worktree`` of an
older commit) every adownload row also runs that code, through ``PYTHONPATH``, in the same
rounds: the "before" and "after" of a change in one run. The table gives each row's median
wall time, its CPU time, and the ratio to the bare loop (``small``) or to the baseline.
``python -X importtime`` then lists, for the start-up rows, how many modules each imports and
whether aiohttp is among them. Both trees are byte-compiled first, as a wheel install is.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .common import LOOPBACK
from .data import make_small_files, verify_download
from .measure import measured_process
from .servers import Nginx, ensure_nginx

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
LOOPS = ("asyncio", "uvloop")


@dataclass
class Row:
    name: str
    argv: list[str]
    tree: str  # "this", "baseline" or "" (no adownload in it)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def with_tree(tree: Path | None, argv: list[str]) -> list[str]:
    """``argv`` run with ``tree`` first on the module path (``env PYTHONPATH=...``)."""
    if tree is None:
        return argv
    return ["/usr/bin/env", f"PYTHONPATH={tree}", *argv]


def build_rows(python: str, work: Path, port: int, baseline: Path | None) -> list[Row]:
    urls = work / "urls.txt"
    site = f"http://{LOOPBACK}:{port}/site/"
    trees = [("this", SOURCE)] + ([("baseline", baseline)] if baseline else [])
    rows: list[Row] = []
    for loop in LOOPS:
        drive = [python, str(HERE / "run_aiohttp.py"), str(urls), "DEST", "--loop", loop]
        rows.append(Row(f"aiohttp-loop [{loop}]", drive, ""))
        drive = [python, str(HERE / "run_guarded.py"), str(urls), "DEST", "--loop", loop]
        rows.append(Row(f"guarded loop [{loop}]", drive, ""))
        objects = with_tree(SOURCE, [*drive, "--objects"])
        rows.append(Row(f"guarded + objects [{loop}]", objects, ""))
        for tree, src in trees:
            drive = [python, str(HERE / "run_adownload.py"), str(urls), "DEST", "--loop", loop]
            rows.append(Row(f"library [{loop}]", with_tree(src, drive), tree))
    for tree, src in trees:
        command = [python, "-m", "adownload"]
        rows.append(Row("adownload --version", with_tree(src, [*command, "--version"]), tree))
        rows.append(Row("adownload --help", with_tree(src, [*command, "--help"]), tree))
        just_import = [python, "-c", "import adownload"]
        rows.append(Row("import adownload", with_tree(src, just_import), tree))
        mirror = [*command, "mirror", "-q", site, f"MIRROR-{tree}"]
        rows.append(Row("mirror rerun, nothing to do", with_tree(src, mirror), tree))
    return rows


def run_rows(rows: list[Row], work: Path, files: list, repeat: int) -> None:
    for round_ in range(repeat):
        # Every other round runs the rows in reverse, so that no row always runs right after
        # another one's writes (this disk's creates slow down while it writes them back).
        order = list(enumerate(rows))
        for index, row in order if round_ % 2 == 0 else reversed(order):
            dest = work / f"out-{round_}-{index}"
            argv = [arg.replace("DEST", str(dest)) for arg in row.argv]
            argv = [arg.replace("MIRROR-", str(work / "mirror-")) for arg in argv]
            log = work / f"run-{round_}-{index}.log"
            os.sync()
            run = measured_process(argv, log, timeout=600)
            if run.exit_code != 0:
                row.failures.append(f"exit {run.exit_code}: {log.read_text()[-300:]}")
                continue
            if "DEST" in " ".join(row.argv):
                why = verify_download(dest, files)
                if why:
                    row.failures.append(why)
                    continue
            row.walls.append(run.wall_s)
            row.cpus.append(run.cpu_s)
            print(f"  round {round_ + 1} {row.name:<30} {row.tree:<9} {run.wall_s:7.3f} s")


def imports_of(python: str, argv: list[str], tree: Path) -> tuple[int, bool]:
    """(modules imported, whether aiohttp is one) by ``argv`` under ``python -X importtime``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [python, "-X", "importtime", *argv], env=env, capture_output=True, text=True, check=False
    )
    names = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    names = [name for name in names if name and name != "imported package"]
    return len(names), any(name.strip() == "aiohttp" for name in names)


def report(rows: list[Row], python: str, baseline: Path | None) -> None:
    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    floor = {
        row.name.split()[-1]: median(row.walls)
        for row in rows
        if not row.tree and row.name.startswith("aiohttp-loop")
    }
    base = {row.name: median(row.walls) for row in rows if row.tree == "baseline"}
    print(f"\n{'row':<30} {'tree':<9} {'median s':>9} {'cpu s':>7} {'vs loop':>8} {'vs base':>8}")
    for row in rows:
        wall = median(row.walls)
        if wall is None:
            print(f"{row.name:<30} {row.tree:<9} FAILED: {row.failures[0] if row.failures else ''}")
            continue
        cpu = median(row.cpus) or 0.0
        measured = row.name.startswith(("library", "guarded"))
        loop = floor.get(row.name.split()[-1]) if measured else None
        vs_loop = f"{wall / loop:.2f}x" if loop else ""
        other = base.get(row.name) if row.tree == "this" else None
        vs_base = f"{wall / other:.2f}x" if other else ""
        print(f"{row.name:<30} {row.tree:<9} {wall:9.3f} {cpu:7.3f} {vs_loop:>8} {vs_base:>8}")
    print("\nimports (python -X importtime): modules, aiohttp imported?")
    trees = [("this", SOURCE)] + ([("baseline", baseline)] if baseline else [])
    for what, argv in (
        ("adownload --version", ["-m", "adownload", "--version"]),
        ("adownload --help", ["-m", "adownload", "--help"]),
        ("import adownload", ["-c", "import adownload"]),
    ):
        for tree, src in trees:
            count, aiohttp = imports_of(python, argv, src)
            said = "yes" if aiohttp else "no"
            print(f"  {what:<22} {tree:<9} {count:4d} modules, aiohttp {said}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout's src folder")
    parser.add_argument("--files", type=int, default=1000, help="64 KiB files in `small`")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--python", default=sys.executable, help="the drivers' interpreter")
    parser.add_argument("--no-install", action="store_true", help="do not install nginx")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir")
    args = parser.parse_args(argv)
    baseline = args.baseline.resolve() if args.baseline else None
    if baseline is not None and not (baseline / "adownload" / "__init__.py").is_file():
        parser.error(f"--baseline {baseline}: no adownload package there")
    for tree in [SOURCE] + ([baseline] if baseline else []):
        # As a wheel install does (see peers.precompile_package): with PYTHONDONTWRITEBYTECODE
        # set, every run would otherwise compile the package from source.
        compileall.compile_dir(tree / "adownload", quiet=1)
    nginx_binary = ensure_nginx(install=not args.no_install)
    work = Path(tempfile.mkdtemp(prefix="adownload-layers-", dir=args.workdir))
    try:
        docroot = work / "docroot"
        files = list(make_small_files(docroot, args.files, seed=20240601))
        site = docroot / "site"
        site.mkdir()
        for index in range(20):
            (site / f"page{index:02d}.html").write_bytes(b"x" * 4096)
        (work / "urls.txt").write_text(
            "".join(f"http://{LOOPBACK}:{{port}}/{file.name}\n" for file in files)
        )
        nginx = Nginx(nginx_binary, work / "nginx", docroot)
        nginx.start()
        try:
            port = nginx.plain_port
            text = (work / "urls.txt").read_text().replace("{port}", str(port))
            (work / "urls.txt").write_text(text)
            rows = build_rows(args.python, work, port, baseline)
            for row in rows:  # the mirror rows' first run fills the folder they rerun in
                if row.name.startswith("mirror"):
                    target = [a.replace("MIRROR-", str(work / "mirror-")) for a in row.argv]
                    subprocess.run(target, check=True, stdin=subprocess.DEVNULL)
            run_rows(rows, work, files, args.repeat)
        finally:
            nginx.stop()
        report(rows, args.python, baseline)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
