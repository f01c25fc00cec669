"""The tools compared: how each is installed, which version it is, and the command line
it gets for a `Job`."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import EXIT_MISSING, EXIT_NOT_AVAILABLE, HERE
from .data import DataFile, write_lines

PEER_PACKAGES = {"curl": "curl", "wget": "wget", "wget2": "wget2", "aria2c": "aria2"}


def install_missing_peers(names: Sequence[str]) -> None:
    """apt-get install the Debian packages of the peers in ``names`` that are not on PATH.

    Only as root on a machine with apt-get; otherwise the missing peers get "missing" rows.
    """
    packages = sorted(
        {PEER_PACKAGES[n] for n in names if n in PEER_PACKAGES and not shutil.which(n)}
    )
    if not packages or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    print(f"installing the missing peers with apt-get: {' '.join(packages)} ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    install = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False, capture_output=True)
        done = subprocess.run(install, env=env, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"apt-get could not install them: {done.stderr.strip()[-300:]}", flush=True)


@dataclass(frozen=True)
class Job:
    """What one tool run downloads, and where."""

    urls: tuple[str, ...]
    files: tuple[DataFile, ...]
    dest: Path
    scratch: Path  # for URL lists and configs, outside ``dest``
    concurrency: int
    segments: int  # ranged connections per file; 1 means one per file, 0 the tool's default
    python: str
    retries: int = 0  # further tries per file for a server that refuses (429); 0: the default
    proxy: str | None = None  # every request through this proxy (a URL)
    scheduler: str | None = None  # the Dask scheduler of a dask scenario's cluster
    metalink: Path | None = None  # the Metalink document of a metalink scenario


def curl_command(job: Job) -> list[str]:
    proxy = ["--proxy", job.proxy] if job.proxy else []
    if len(job.urls) == 1:
        out = ["-o", str(job.dest / job.files[0].basename)]
        return ["curl", "-sS", "--fail", *proxy, *out, job.urls[0]]
    config = []
    for url, data in zip(job.urls, job.files, strict=True):
        config += [f'url = "{url}"', f'output = "{job.dest / data.basename}"']
    cfg = write_lines(job.scratch / "curl.cfg", config)
    parallel = ["-Z", "--parallel-max", str(job.concurrency)]
    retry = ["--retry", str(job.retries)] if job.retries else []
    return ["curl", "-sS", "--fail", *proxy, *retry, *parallel, "-K", str(cfg)]


def wget_command(job: Job) -> list[str]:
    if len(job.urls) == 1:
        return ["wget", "-q", "-O", str(job.dest / job.files[0].basename), job.urls[0]]
    url_list = write_lines(job.scratch / "urls.txt", job.urls)
    return ["wget", "-q", "-i", str(url_list), "-P", str(job.dest)]


def wget2_command(job: Job) -> list[str]:
    url_list = write_lines(job.scratch / "urls.txt", job.urls)
    argv = ["wget2", "-q", f"--max-threads={job.concurrency}"]
    if job.segments > 1:
        largest = max(data.size for data in job.files)
        argv.append(f"--chunk-size={math.ceil(largest / job.segments)}")
    return [*argv, "-i", str(url_list), "-P", str(job.dest)]


def aria2c_command(job: Job) -> list[str]:
    entries = []
    for url, data in zip(job.urls, job.files, strict=True):
        entries += [url, f"  out={data.basename}"]
    input_file = write_lines(job.scratch / "aria2.txt", entries)
    quiet = [
        "--no-conf=true",
        "--file-allocation=none",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--download-result=hide",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
    ]
    if job.segments > 1:
        split = [f"-x{job.segments}", f"-s{job.segments}", "-k1M"]
    elif job.segments == 1:
        split = ["-x1", "-s1"]
    else:
        split = []  # aria2c's defaults: -x1 (one connection per server), -s5
    retry = [f"--max-tries={job.retries + 1}"] if job.retries else []
    where = ["-d", str(job.dest), "-i", str(input_file)]
    if job.metalink is not None:
        # Its adaptive selector ranks the mirrors by speed, as adownload's does.
        where = ["-d", str(job.dest), "--uri-selector=adaptive", "-M", str(job.metalink)]
    return ["aria2c", *quiet, f"-j{job.concurrency}", *split, *retry, *where]


def parfive_command(job: Job) -> list[str]:
    url_list = write_lines(job.scratch / "urls.txt", job.urls)
    driver = str(HERE / "run_parfive.py")
    options = ["-j", str(job.concurrency)]
    if job.segments:
        options += ["--splits", str(job.segments)]
    if job.retries:
        options += ["--retries", str(job.retries)]
    return [job.python, driver, str(url_list), str(job.dest), *options]


def adownload_command(job: Job) -> list[str]:
    url_list = write_lines(job.scratch / "urls.txt", job.urls)
    driver = str(HERE / "run_adownload.py")
    argv = [job.python, driver, str(url_list), str(job.dest), "-j", str(job.concurrency)]
    if job.segments != 1:
        argv += ["--segments", str(job.segments)]
    if job.retries:
        argv += ["--retries", str(job.retries)]
    if job.proxy:
        argv += ["--proxy", job.proxy]
    if job.metalink is not None:
        argv += ["--metalink", str(job.metalink)]
    return argv


def adownload_cli_command(job: Job) -> list[str]:
    """The `adownload` command as a user types it: `-i` a list of URLs, `-d` the folder."""
    url_list = write_lines(job.scratch / "urls.txt", job.urls)
    command = str(Path(job.python).with_name("adownload"))
    return [command, "-q", "-j", str(job.concurrency), "-i", str(url_list), "-d", str(job.dest)]


def adownload_cli_workers_command(job: Job) -> list[str]:
    """The command in two worker processes (--workers 2): both cores of this machine."""
    return [*adownload_cli_command(job), "--workers", "2"]


def adownload_cli_asyncio_command(job: Job) -> list[str]:
    """The command on asyncio's own loop, where uvloop is installed too."""
    return ["env", "ADOWNLOAD_LOOP=asyncio", *adownload_cli_command(job)]


def aiohttp_loop_command(job: Job) -> list[str]:
    url_list = write_lines(job.scratch / "urls.txt", job.urls)
    driver = str(HERE / "run_aiohttp.py")
    return [job.python, driver, str(url_list), str(job.dest), "-j", str(job.concurrency)]


def adownload_adaptive_command(job: Job) -> list[str]:
    return [*adownload_command(job), "--adaptive"]


def adownload_dask_command(job: Job) -> list[str]:
    assert job.scheduler is not None
    return [*adownload_command(job), "--scheduler", job.scheduler]


@dataclass(frozen=True)
class Tool:
    name: str
    command: Callable[[Job], list[str]]
    note: str = ""


TOOLS: tuple[Tool, ...] = (
    Tool("adownload", adownload_command),
    Tool("curl", curl_command, "-Z --parallel-max 16 for many files; one connection per file"),
    Tool("wget", wget_command, "sequential: one file at a time, one connection"),
    Tool("wget2", wget2_command, "--max-threads=16; --chunk-size for segmented"),
    Tool("aria2c", aria2c_command),
    Tool("parfive", parfive_command),
    Tool(
        "adownload-cli",
        adownload_cli_command,
        "the adownload command: -q -j 16 -i urls.txt -d DEST",
    ),
    Tool("adownload-cli-workers", adownload_cli_workers_command, "the command, --workers 2"),
    Tool("adownload-cli-asyncio", adownload_cli_asyncio_command, "the command on asyncio's loop"),
    Tool("aiohttp-loop", aiohttp_loop_command, "a bare aiohttp loop: one session, 16 workers"),
    Tool("adownload-adaptive", adownload_adaptive_command, "Limits(adaptive=True)"),
    Tool(
        "adownload-dask",
        adownload_dask_command,
        "DaskRunner on a local dask scheduler and worker processes, started before the clock",
    ),
)
TOOL_NAMES = tuple(tool.name for tool in TOOLS)


def first_line(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    if done.returncode != 0 or not text:
        return None
    return text.splitlines()[0].strip()


def precompile_package(python: str, package: str) -> str | None:
    """Byte-compile ``package`` for ``python`` as a wheel install does; None, or why not.

    An editable install (``pip install -e .``) leaves no ``.pyc`` behind, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on some CI machines) none is ever written: every
    run would then compile the package from source while the peers installed from
    wheels load their ``.pyc``.  Compiling once up front puts them on the same footing.
    """
    code = (
        "import compileall, importlib.util, os, sys\n"
        f"spec = importlib.util.find_spec({package!r})\n"
        "if spec is None or not spec.submodule_search_locations: sys.exit(0)\n"
        "ok = all(compileall.compile_dir(d, quiet=1) for d in spec.submodule_search_locations)\n"
        "sys.exit(0 if ok else 1)\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return (done.stderr or done.stdout).strip()[-300:] or f"exit {done.returncode}"
    return None


def python_package_version(python: str, package: str) -> tuple[str | None, str]:
    """(version, "") when ``package`` imports in ``python``, else (None, why not)."""
    code = (
        "import importlib, importlib.metadata as m, sys\n"
        f"importlib.import_module({package!r})\n"
        f"try:\n    print(m.version({package!r}))\n"
        "except m.PackageNotFoundError:\n    print('unknown version')\n"
    )
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
    except OSError as exc:
        return None, str(exc)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["import failed"])[-1]
        return None, last
    return done.stdout.strip(), ""


def tool_versions(python: str) -> tuple[dict[str, str], dict[str, str]]:
    """({tool: version}, {tool: why it is missing})."""
    versions: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name in ("curl", "wget", "wget2", "aria2c"):
        if shutil.which(name) is None:
            missing[name] = f"{name} is not installed"
            continue
        versions[name] = first_line([name, "--version"]) or "unknown version"
    for name in ("parfive", "adownload", "aiohttp"):
        version, why = python_package_version(python, name)
        if version is None:
            missing[name] = f"missing: {name} is not importable by {python} ({why})"
        else:
            versions[name] = version
    # The other rows of adownload (the command, its variants) and the bare loop's aiohttp.
    for tool in TOOL_NAMES:
        if tool.startswith("adownload-"):
            if "adownload" in missing:
                missing[tool] = missing["adownload"]
            else:
                versions[tool] = versions["adownload"]
    if "aiohttp" in missing:
        missing["aiohttp-loop"] = missing.pop("aiohttp")
    else:
        versions["aiohttp-loop"] = f"aiohttp {versions.pop('aiohttp')}"
    return versions, missing


def adownload_support(python: str, job_segments: int) -> str | None:
    """None when adownload can run a scenario with this many segments, else why not."""
    argv = [python, str(HERE / "run_adownload.py"), "--check", "--segments", str(job_segments)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode == 0:
        return None
    message = done.stderr.strip()
    if done.returncode == EXIT_NOT_AVAILABLE:
        return "not available yet: " + message.removeprefix("NOT AVAILABLE: ")
    if done.returncode == EXIT_MISSING:
        return "missing: " + message.removeprefix("MISSING: ")
    return f"driver check failed ({done.returncode}): {message[-300:]}"
