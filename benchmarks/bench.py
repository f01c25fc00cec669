"""Benchmark adownload against curl, wget, wget2, aria2c and parfive on loopback.

Makes its data in a temporary directory, serves it with a private nginx on
127.0.0.1 (plain, rate-limited, and behind a delaying proxy), runs every tool as a
subprocess on the same files, checks every downloaded byte, and prints per
scenario the median wall time, median CPU time (user+sys, children included) and
the peak RSS of each tool, with adownload's ratios to each peer.

Run it with the Python that has aiohttp, parfive and adownload installed:

    python benchmarks/bench.py                   # full run, 3 repetitions
    python benchmarks/bench.py --quick           # small data, 1 repetition
    python benchmarks/bench.py --scenario small --repeat 3 --json results.json

See benchmarks/README.md for what each scenario and tool command line is.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import grp
import hashlib
import json
import math
import os
import platform
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ftp_server import FtpServer

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

CONCURRENCY = 16
SMALL_FILE_SIZE = 64 * KIB
# nginx size suffixes are binary: "20m" is 20 MiB/s (about 21.0 MB/s) per connection.
LIMIT_RATE = "20m"
LIMIT_RATE_BYTES = 20 * MIB
# The delaying proxy holds each direction's bytes this long: a 50 ms round trip.
ONE_WAY_DELAY = 0.025
WRITE_CHUNK = 4 * MIB

EXIT_NOT_AVAILABLE = 3  # the driver scripts' "feature not there yet"
EXIT_MISSING = 4  # the driver scripts' "package not importable"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sizes:
    small_count: int
    large_size: int
    throttled_size: int
    memory_file_sizes: tuple[int, ...]  # the memory scenario: one file of each size
    memory_url_counts: tuple[int, ...]  # the memory scenario: as_completed over N URLs
    dask_count: int = 10_000  # the dask scenarios: files of SMALL_FILE_SIZE
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
    dask_count=1_000,
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
    return _write_lines(path, lines)


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


# --------------------------------------------------------------------------- processes


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this process dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[Any], signum: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The peers' binaries and the Debian packages that hold them.
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


def ensure_nginx() -> str:
    """Path of nginx, installing Debian's nginx-light with apt-get when it is missing."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("nginx is missing: install it (Debian: apt-get install -y nginx-light)")
    print("nginx is missing: installing Debian's nginx-light with apt-get ...", flush=True)
    # RUNLEVEL=1 keeps invoke-rc.d from starting the system-wide nginx service.
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    install = ["apt-get", "install", "-y", "-q", "nginx-light"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("nginx", path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if not found:
        raise SystemExit("apt-get installed nginx-light but no nginx binary was found")
    return found


NGINX_CONF = """\
# Generated by benchmarks/bench.py: a private nginx for the benchmark, loopback only.
daemon off;
master_process on;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}

http {{
    types {{ }}
    default_type application/octet-stream;
    access_log off;
    server_tokens off;

    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 100000;

    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    # (a) plain: as fast as loopback and sendfile go.
    server {{
        listen {host}:{plain_port} reuseport backlog=1024;
        root {docroot};
    }}

    # (b) a busy mirror: each connection is limited to {limit_rate} bytes/s.
    server {{
        listen {host}:{throttled_port} reuseport backlog=1024;
        root {docroot};
        limit_rate {limit_rate};
    }}

    # (c) the mirrors of the metalink scenarios, each at its own rate per connection; the
    # last one serves a copy with one byte wrong (the "corrupt" folder).
{mirrors}
}}
"""

MIRROR_CONF = """\
    server {{
        listen {host}:{port} reuseport backlog=1024;
        root {root};
        limit_rate {rate};
    }}
"""
#: The metalink scenarios' mirrors: (name, nginx limit_rate per connection, corrupt copy).
MIRRORS = (("fast", "8m", False), ("medium", "4m", False), ("slow", "2m", False),
           ("corrupting", "4m", True))  # fmt: skip
#: Connections for the one file of a metalink scenario, for every tool.
METALINK_CONNECTIONS = 6
METALINK_PIECE = 1 * MIB


class Nginx:
    """nginx as a non-daemon child with its own config, prefix, pid and log files."""

    def __init__(self, binary: str, prefix: Path, docroot: Path) -> None:
        self.binary = binary
        self.prefix = prefix
        self.docroot = docroot
        self.plain_port = free_port()
        self.throttled_port = free_port()
        self.mirror_ports = {name: free_port() for name, _, _ in MIRRORS}
        self.proc: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        user = ""
        if os.geteuid() == 0:
            # Workers would drop to "nobody", who cannot read a 0700 temp dir.
            user = f"user {pwd.getpwuid(0).pw_name} {grp.getgrgid(0).gr_name};"
        return NGINX_CONF.format(
            prefix=self.prefix,
            user=user,
            host=LOOPBACK,
            plain_port=self.plain_port,
            throttled_port=self.throttled_port,
            docroot=self.docroot,
            limit_rate=LIMIT_RATE,
            mirrors="".join(
                MIRROR_CONF.format(
                    host=LOOPBACK,
                    port=self.mirror_ports[name],
                    root=self.docroot / "corrupt" if corrupt else self.docroot,
                    rate=rate,
                )
                for name, rate, corrupt in MIRRORS
            ),
        )

    def start(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(self.config_text())
        log = (self.prefix / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, "-p", f"{self.prefix}/", "-c", str(conf), "-e", "stderr"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_parent_death_signal(),
        )
        log.close()
        try:
            wait_for_port(self.plain_port, self.proc)
            wait_for_port(self.throttled_port, self.proc)
        except RuntimeError as exc:
            self.stop()
            logs = [self.prefix / "stderr.log", self.prefix / "error.log"]
            details = "".join(log.read_text(errors="replace") for log in logs if log.exists())
            raise RuntimeError(f"nginx did not start: {exc}\n{details}") from exc

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            self.proc = None


class ListeningChild:
    """A helper server of ours as a child process, which prints ``LISTENING PORT`` on stdout
    once it accepts connections and stops on SIGTERM."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def spawn(self, argv: list[str], what: str) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=_parent_death_signal(),
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "LISTENING":
            self.stop()
            log = self.log_path.read_text(errors="replace")
            raise RuntimeError(f"{what} did not start: {log}")
        self.port = int(line[1])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


class DaskCluster:
    """A Dask scheduler and `workers` worker processes (one thread each) on 127.0.0.1, as
    `dask scheduler` and `dask worker` start them, up before a dask scenario's clock starts."""

    def __init__(self, python: str, workers: int, work: Path) -> None:
        self.python = python
        self.workers = workers
        self.work = work

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        logs = self.work / "dask"
        logs.mkdir(parents=True, exist_ok=True)
        dashboard = ["--dashboard-address", "127.0.0.1:0"]
        children = []
        try:
            for argv, name in (
                (["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                  *dashboard], "scheduler"),
                (["distributed.cli.dask_worker", address, "--nworkers", str(self.workers),
                  "--nthreads", "1", "--host", "127.0.0.1", *dashboard], "workers"),
            ):  # fmt: skip
                with (logs / f"{name}.log").open("wb") as log:
                    children.append(
                        subprocess.Popen(
                            [self.python, "-m", *argv],
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=log,
                            preexec_fn=_parent_death_signal(),
                        )
                    )
                if name == "scheduler":
                    wait_for_port(port, children[0])
            wait = (
                "import sys; from distributed import Client\n"
                "with Client(sys.argv[1], timeout=30) as c: c.wait_for_workers(int(sys.argv[2]))"
            )
            subprocess.run(
                [self.python, "-c", wait, address, str(self.workers)], check=True, timeout=60
            )
            yield address
        finally:
            for child in reversed(children):
                stop_process(child, signal.SIGTERM)


class ProxyProcess(ListeningChild):
    """benchmarks/delay_proxy.py in front of the plain nginx, as a child process."""

    def __init__(self, upstream_port: int, log_path: Path) -> None:
        super().__init__(log_path)
        self.upstream_port = upstream_port
        self.count_file = log_path.with_name("proxy-connections.txt")

    def start(self) -> None:
        argv = [
            sys.executable,
            str(HERE / "delay_proxy.py"),
            "--upstream-port",
            str(self.upstream_port),
            "--one-way-delay",
            str(ONE_WAY_DELAY),
            "--count-file",
            str(self.count_file),
        ]
        self.spawn(argv, "the delaying proxy")

    def connections(self) -> int:
        """Connections the proxy has accepted so far."""
        try:
            return int(self.count_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0


#: The Debian package (and command) of each kind of proxy the proxy scenarios run.
PROXY_PACKAGES = {"http": "tinyproxy", "socks5": "microsocks"}


class RealProxy:
    """tinyproxy (HTTP) or microsocks (SOCKS5) from Debian, as a child process on loopback."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        self.work = work
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.kind}://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        if self.kind == "http":
            conf = self.work / "tinyproxy.conf"
            conf.write_text(
                f"Port {self.port}\nListen {LOOPBACK}\nTimeout 600\nMaxClients 64\n"
                f'LogFile "{self.work / "tinyproxy.log"}"\nLogLevel Warning\n'
            )
            argv = ["tinyproxy", "-d", "-c", str(conf)]
        else:
            argv = ["microsocks", "-i", LOOPBACK, "-p", str(self.port)]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_parent_death_signal(),
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            self.proc = None


class ThrottleServer(ListeningChild):
    """benchmarks/throttle_server.py over the data: 429 above THROTTLE_LIMIT requests in hand."""

    def __init__(self, docroot: Path, log_path: Path) -> None:
        super().__init__(log_path)
        self.docroot = docroot

    def start(self) -> None:
        argv = [
            sys.executable,
            str(HERE / "throttle_server.py"),
            str(self.docroot),
            "--limit",
            str(THROTTLE_LIMIT),
            "--service",
            str(SERVICE_S),
        ]
        self.spawn(argv, "the throttling server")

    def refused(self) -> int:
        """429 answers the server has given so far."""
        url = f"http://{LOOPBACK}:{self.port}/_stats"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(json.load(response)["refused"])


# --------------------------------------------------------------------------- tools


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


def _write_lines(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def curl_command(job: Job) -> list[str]:
    proxy = ["--proxy", job.proxy] if job.proxy else []
    if len(job.urls) == 1:
        out = ["-o", str(job.dest / job.files[0].basename)]
        return ["curl", "-sS", "--fail", *proxy, *out, job.urls[0]]
    config = []
    for url, data in zip(job.urls, job.files, strict=True):
        config += [f'url = "{url}"', f'output = "{job.dest / data.basename}"']
    cfg = _write_lines(job.scratch / "curl.cfg", config)
    parallel = ["-Z", "--parallel-max", str(job.concurrency)]
    retry = ["--retry", str(job.retries)] if job.retries else []
    return ["curl", "-sS", "--fail", *proxy, *retry, *parallel, "-K", str(cfg)]


def wget_command(job: Job) -> list[str]:
    if len(job.urls) == 1:
        return ["wget", "-q", "-O", str(job.dest / job.files[0].basename), job.urls[0]]
    url_list = _write_lines(job.scratch / "urls.txt", job.urls)
    return ["wget", "-q", "-i", str(url_list), "-P", str(job.dest)]


def wget2_command(job: Job) -> list[str]:
    url_list = _write_lines(job.scratch / "urls.txt", job.urls)
    argv = ["wget2", "-q", f"--max-threads={job.concurrency}"]
    if job.segments > 1:
        largest = max(data.size for data in job.files)
        argv.append(f"--chunk-size={math.ceil(largest / job.segments)}")
    return [*argv, "-i", str(url_list), "-P", str(job.dest)]


def aria2c_command(job: Job) -> list[str]:
    entries = []
    for url, data in zip(job.urls, job.files, strict=True):
        entries += [url, f"  out={data.basename}"]
    input_file = _write_lines(job.scratch / "aria2.txt", entries)
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
    url_list = _write_lines(job.scratch / "urls.txt", job.urls)
    driver = str(HERE / "run_parfive.py")
    options = ["-j", str(job.concurrency)]
    if job.segments:
        options += ["--splits", str(job.segments)]
    if job.retries:
        options += ["--retries", str(job.retries)]
    return [job.python, driver, str(url_list), str(job.dest), *options]


def adownload_command(job: Job) -> list[str]:
    url_list = _write_lines(job.scratch / "urls.txt", job.urls)
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
    Tool("adownload-adaptive", adownload_adaptive_command, "Limits(adaptive=True)"),
    Tool(
        "adownload-dask",
        adownload_dask_command,
        "DaskRunner on a local dask scheduler and worker processes, started before the clock",
    ),
)
TOOL_NAMES = tuple(tool.name for tool in TOOLS)


def _first_line(argv: Sequence[str]) -> str | None:
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
        versions[name] = _first_line([name, "--version"]) or "unknown version"
    for name in ("parfive", "adownload"):
        version, why = python_package_version(python, name)
        if version is None:
            missing[name] = f"missing: {name} is not importable by {python} ({why})"
        else:
            versions[name] = version
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


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    tool: str
    repetition: int
    ok: bool
    wall_s: float | None = None
    cpu_s: float | None = None
    user_s: float | None = None
    sys_s: float | None = None
    max_rss_kib: int | None = None
    exit_code: int | None = None
    error: str | None = None
    connections: int | None = None  # new connections through the delaying proxy
    refused: int | None = None  # 429 answers of the throttling server


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True)
class Measurement:
    exit_code: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_kib: int
    timed_out: bool

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def measured_process(argv: Sequence[str], log_path: Path, timeout: float) -> Measurement:
    """Run ``argv`` under rusage_launcher.py; its output and errors go to ``log_path``.

    The launcher forks, execs ``argv`` and reaps it with os.wait4, so wall time, CPU
    time (user + sys, with the children it waited for) and peak RSS are the tool's own
    (see rusage_launcher.py for why bench.py does not spawn the tools itself).
    """
    result_path = log_path.with_suffix(".rusage")
    result_path.unlink(missing_ok=True)
    launcher = [sys.executable, "-S", "-I", str(HERE / "rusage_launcher.py"), str(result_path)]
    timed_out = threading.Event()

    def on_timeout(pgid: int) -> None:
        timed_out.set()
        _kill_group(pgid)

    with log_path.open("wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*launcher, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills it all
        )
        timer = threading.Timer(timeout, on_timeout, (proc.pid,))
        timer.start()
        try:
            code = proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            timer.cancel()
        outer_wall = time.perf_counter() - start
    try:
        fields = result_path.read_text().split()
        return Measurement(
            exit_code=int(fields[0]),
            wall_s=float(fields[1]),
            user_s=float(fields[2]),
            sys_s=float(fields[3]),
            max_rss_kib=int(fields[4]),
            timed_out=timed_out.is_set(),
        )
    except (OSError, ValueError, IndexError):  # killed before it could write its line
        return Measurement(code, outer_wall, 0.0, 0.0, 0, timed_out.is_set())


def driver_baseline(python: str, module: str, work: Path, times: int = 3) -> Measurement:
    """Cost of starting the driver interpreter and importing ``module``, downloading nothing.

    The run with the median wall time of ``times`` runs: one run is at the mercy of noise.
    """
    runs = [
        measured_process([python, "-c", f"import {module}"], work / f"baseline-{module}.log", 120)
        for _ in range(times)
    ]
    if any(run.exit_code for run in runs):
        return next(run for run in runs if run.exit_code)
    return sorted(runs, key=lambda run: run.wall_s)[len(runs) // 2]


def launcher_rss_floor(work: Path) -> int:
    """Peak RSS (KiB) the launcher reports for a command that uses almost none."""
    true = shutil.which("true") or "/bin/true"
    return measured_process([true], work / "rss-floor.log", 60.0).max_rss_kib


def _log_tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip()
    return " | ".join(text.splitlines()[-lines:])[-400:]


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    server: str  # "plain", "throttled" or "proxy"
    files: tuple[DataFile, ...]
    concurrency: int
    segments: int
    retries: int = 0
    proxy: str = ""  # "http" or "socks5": through that kind of proxy (PROXIES)
    mirrors: tuple[str, ...] = ()  # a metalink scenario's mirrors (MIRRORS names), best first

    @property
    def total_bytes(self) -> int:
        return sum(data.size for data in self.files)


SCENARIO_NAMES = (
    "small",
    "large",
    "throttled",
    "latency",
    "memory",
    "ftp-large",
    "ftp-small",
    "ftp-throttled",
    "adaptive-429",
    "adaptive-capped",
    "proxy-http",
    "proxy-socks5",
    "dask-1",
    "dask-2",
    "metalink",
    "metalink-corrupt",
)
#: Scenarios served by the FTP server; their peers are the tools that speak FTP.
FTP_SCENARIOS = ("ftp-large", "ftp-small", "ftp-throttled")
FTP_TOOLS = ("adownload", "curl", "wget", "aria2c")
#: Scenarios of adaptive concurrency: adownload fixed and adaptive against the peers that
#: run many requests at once. adownload-adaptive runs only here.
ADAPTIVE_SCENARIOS = ("adaptive-429", "adaptive-capped")
ADAPTIVE_TOOLS = ("adownload", "adownload-adaptive", "curl", "aria2c", "parfive")
#: Scenarios through a real proxy (tinyproxy, microsocks), and the tools that take one there.
PROXY_SCENARIOS = ("proxy-http", "proxy-socks5")
PROXY_TOOLS = ("adownload", "curl")
#: Scenarios on a Dask cluster of that many worker processes; adownload-dask runs only here,
#: next to adownload in one process.
DASK_SCENARIOS = {"dask-1": 1, "dask-2": 2}
DASK_TOOLS = ("adownload", "adownload-dask")
#: Scenarios of one file from a Metalink of three mirrors, and the tools that read one.
METALINK_SCENARIOS = {
    "metalink": ("slow", "medium", "fast"),
    "metalink-corrupt": ("slow", "corrupting", "fast"),
}
METALINK_TOOLS = ("adownload", "aria2c")
#: The throttling server: 429 above this many requests in hand, each taking SERVICE_S.
THROTTLE_LIMIT = 4
SERVICE_S = 0.02
#: Further tries per file in adaptive-429, for every tool (each with its own backoff).
THROTTLE_RETRIES = 20


@dataclass(frozen=True)
class Target:
    metric: str  # "wall", "cpu" or "rss"
    peer: str | None  # the peer the ratio is taken to; None for an absolute bound
    bound: float  # a ratio, or bytes for "rss"

    def describe(self) -> str:
        if self.peer is None:
            return f"peak RSS <= {self.bound / MIB:.0f} MiB"
        return f"{self.metric} <= {self.bound:g} x {self.peer}"


TARGETS: dict[str, tuple[Target, ...]] = {
    "small": (Target("wall", "curl", 1.0), Target("wall", "parfive", 0.5)),
    "large": (
        Target("wall", "curl", 0.8),
        Target("cpu", "curl", 1.0),
        Target("rss", None, 64 * MIB),
    ),
    "throttled": (Target("wall", "aria2c", 1.0),),
    "latency": (Target("wall", "curl", 0.9),),
    "ftp-large": (Target("wall", "curl", 1.0),),
    "ftp-small": (Target("wall", "curl", 1.0),),
    "ftp-throttled": (Target("wall", "aria2c", 1.0),),
    "metalink": (Target("wall", "aria2c", 1.0),),
    "metalink-corrupt": (Target("wall", "aria2c", 1.0),),
}


@dataclass
class ToolSummary:
    tool: str
    status: str  # "ok", "missing: ...", "not available yet: ...", "FAILED"
    command: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def ok_runs(self) -> list[Run]:
        return [run for run in self.runs if run.ok]

    def median_wall(self) -> float | None:
        walls = [run.wall_s for run in self.ok_runs() if run.wall_s is not None]
        return statistics.median(walls) if walls else None

    def median_cpu(self) -> float | None:
        cpus = [run.cpu_s for run in self.ok_runs() if run.cpu_s is not None]
        return statistics.median(cpus) if cpus else None

    def max_rss_kib(self) -> int | None:
        rss = [run.max_rss_kib for run in self.ok_runs() if run.max_rss_kib is not None]
        return max(rss) if rss else None


@dataclass
class ScenarioResult:
    scenario: Scenario
    tools: dict[str, ToolSummary]

    def target_checks(self) -> list[tuple[Target, float | None, str]]:
        """(target, measured value, verdict) for each of this scenario's targets."""
        mine = self.tools.get("adownload")
        checks: list[tuple[Target, float | None, str]] = []
        for target in TARGETS.get(self.scenario.name, ()):
            value = _target_value(target, mine, self.tools)
            if value is None:
                checks.append((target, None, "n/a"))
            else:
                checks.append((target, value, "MET" if value <= target.bound else "MISSED"))
        return checks


def _target_value(
    target: Target, mine: ToolSummary | None, tools: dict[str, ToolSummary]
) -> float | None:
    if mine is None:
        return None
    if target.peer is None:
        rss = mine.max_rss_kib()
        return None if rss is None else rss * KIB
    peer = tools.get(target.peer)
    if peer is None:
        return None
    if target.metric == "wall":
        return _ratio(mine.median_wall(), peer.median_wall())
    return _ratio(mine.median_cpu(), peer.median_cpu())


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@dataclass
class Bench:
    """Everything one benchmark invocation shares across scenarios."""

    work: Path
    python: str
    repeat: int
    timeout: float
    tools: tuple[Tool, ...]
    missing: dict[str, str]
    base_urls: dict[str, str]
    proxy: ProxyProcess | None = None
    throttle: ThrottleServer | None = None
    #: The proxies by kind ("http", "socks5"), as URLs.
    proxies: dict[str, str] = field(default_factory=dict)
    out: TextIO = sys.stdout

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        summaries: dict[str, ToolSummary] = {}
        runnable: list[Tool] = []
        for tool in self.tools:
            why = self.missing.get(tool.name)
            if why is None and scenario.name in FTP_SCENARIOS and tool.name not in FTP_TOOLS:
                why = "not compared: the FTP scenarios compare adownload, curl, wget and aria2c"
            adaptive = scenario.name in ADAPTIVE_SCENARIOS
            if why is None and adaptive and tool.name not in ADAPTIVE_TOOLS:
                why = f"not compared: the adaptive scenarios compare {', '.join(ADAPTIVE_TOOLS)}"
            if why is None and scenario.proxy and tool.name not in PROXY_TOOLS:
                why = f"not compared: the proxy scenarios compare {', '.join(PROXY_TOOLS)}"
            if why is None and tool.name == "adownload-adaptive" and not adaptive:
                why = "not compared: runs in the adaptive scenarios only"
            dask = scenario.name in DASK_SCENARIOS
            if why is None and dask and tool.name not in DASK_TOOLS:
                why = f"not compared: the dask scenarios compare {', '.join(DASK_TOOLS)}"
            if why is None and tool.name == "adownload-dask" and not dask:
                why = "not compared: runs in the dask scenarios only"
            if why is None and scenario.mirrors and tool.name not in METALINK_TOOLS:
                why = f"not compared: the metalink scenarios compare {', '.join(METALINK_TOOLS)}"
            if why is None and tool.name.startswith("adownload"):
                why = adownload_support(self.python, scenario.segments)
            summaries[tool.name] = ToolSummary(tool.name, why or "ok")
            if why is None:
                runnable.append(tool)
            else:
                self.say(f"  {tool.name}: {why}")

        with contextlib.ExitStack() as stack:
            scheduler = None
            if scenario.name in DASK_SCENARIOS and runnable:
                cluster = DaskCluster(self.python, DASK_SCENARIOS[scenario.name], self.work)
                scheduler = stack.enter_context(cluster.running())
            return self._run_tools(scenario, runnable, summaries, scheduler)

    def _run_tools(
        self,
        scenario: Scenario,
        runnable: list[Tool],
        summaries: dict[str, ToolSummary],
        scheduler: str | None,
    ) -> ScenarioResult:
        base = self.base_urls[scenario.server]
        urls = tuple(base + data.name for data in scenario.files)
        jobs: dict[str, Job] = {}
        for tool in runnable:
            scratch = self.work / "scratch" / scenario.name / tool.name
            scratch.mkdir(parents=True, exist_ok=True)
            dest = self.work / "out" / f"{scenario.name}-{tool.name}"
            document = None
            if scenario.mirrors:
                mirror_urls = [self.base_urls[f"mirror-{name}"] + scenario.files[0].name
                               for name in scenario.mirrors]  # fmt: skip
                document = write_metalink(
                    scratch / "file.meta4", self.work / "data", scenario.files[0], mirror_urls
                )
            job = Job(
                urls,
                scenario.files,
                dest,
                scratch,
                scenario.concurrency,
                scenario.segments,
                self.python,
                scenario.retries,
                self.proxies.get(scenario.proxy) if scenario.proxy else None,
                scheduler,
                document,
            )
            jobs[tool.name] = job
            summaries[tool.name].command = tool.command(job)

        for repetition in range(1, self.repeat + 1):
            for tool in runnable:
                summary = summaries[tool.name]
                if summary.status != "ok":
                    continue  # e.g. found to be not available on its first run
                run = self._one_run(scenario, tool, jobs[tool.name], summary.command, repetition)
                summary.runs.append(run)
                if run.exit_code == EXIT_NOT_AVAILABLE and tool.name.startswith("adownload"):
                    summary.status = f"not available yet: {run.error}"
        for summary in summaries.values():
            if summary.status == "ok" and summary.runs and not summary.ok_runs():
                summary.status = f"FAILED: {summary.runs[-1].error}"
        return ScenarioResult(scenario, summaries)

    def _one_run(
        self, scenario: Scenario, tool: Tool, job: Job, argv: list[str], repetition: int
    ) -> Run:
        shutil.rmtree(job.dest, ignore_errors=True)
        job.dest.mkdir(parents=True)
        log_path = job.scratch / f"run{repetition}.log"
        os.sync()  # flush the previous run's writes so they do not land in this run's time
        counting = self.proxy is not None and scenario.server == "proxy"
        before = self.proxy.connections() if counting and self.proxy else 0
        throttle = self.throttle if scenario.server == "throttling" else None
        refused_before = throttle.refused() if throttle is not None else 0
        measured = measured_process(argv, log_path, self.timeout)
        connections = self.proxy.connections() - before if counting and self.proxy else None
        refused = throttle.refused() - refused_before if throttle is not None else None
        run = Run(
            tool.name,
            repetition,
            ok=False,
            wall_s=measured.wall_s,
            cpu_s=measured.cpu_s,
            user_s=measured.user_s,
            sys_s=measured.sys_s,
            max_rss_kib=measured.max_rss_kib,
            exit_code=measured.exit_code,
            connections=connections,
            refused=refused,
        )
        if measured.timed_out:
            run.error = f"timed out after {self.timeout:g} s"
        elif measured.exit_code != 0:
            run.error = f"exit {measured.exit_code}: {_log_tail(log_path)}"
        else:
            run.error = verify_download(job.dest, job.files)
            run.ok = run.error is None
        shutil.rmtree(job.dest, ignore_errors=True)
        if run.ok:
            wall, cpu, rss = measured.wall_s, measured.cpu_s, measured.max_rss_kib / KIB
            rate = scenario.total_bytes / MIB / wall
            detail = f"{wall:8.3f} s wall {cpu:8.3f} s CPU {rss:7.1f} MiB"
            if connections is not None:
                rate_text = f"{rate:9.1f} MiB/s {connections:5d} connections"
            elif refused is not None:
                rate_text = f"{rate:9.1f} MiB/s {refused:5d} answers 429"
            else:
                rate_text = f"{rate:9.1f} MiB/s"
            self.say(f"  [{repetition}/{self.repeat}] {tool.name:<18} {detail} {rate_text}")
        else:
            self.say(f"  [{repetition}/{self.repeat}] {tool.name:<18} FAILED: {run.error}")
            run.wall_s = run.cpu_s = run.user_s = run.sys_s = None
            run.max_rss_kib = None
        return run


# --------------------------------------------------------------------------- reporting


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _fmt_rss(kib: int | None, floor_kib: int) -> str:
    if kib is None:
        return "-"
    mark = "<=" if kib <= floor_kib * 1.05 else ""
    return f"{mark}{kib / KIB:.1f} MiB"


def format_table(
    result: ScenarioResult, repeat: int, rss_floor_kib: int, startup_s: float | None = None
) -> str:
    scenario = result.scenario
    mine = result.tools.get("adownload")
    my_wall = mine.median_wall() if mine else None
    my_cpu = mine.median_cpu() if mine else None
    header = (
        f"{'tool':<18} {'ok runs':>7} {'wall s':>9} {'CPU s':>9} {'peak RSS':>12} "
        f"{'MiB/s':>9} {'adl/tool wall':>14} {'adl/tool CPU':>13}"
    )
    lines = [f"== {scenario.name}: {scenario.title} ==", header, "-" * len(header)]
    for summary in result.tools.values():
        if summary.status != "ok" and not summary.ok_runs():
            lines.append(f"{summary.tool:<18} {summary.status}")
            continue
        wall, cpu, rss = summary.median_wall(), summary.median_cpu(), summary.max_rss_kib()
        rate = scenario.total_bytes / MIB / wall if wall else None
        if summary.tool == "adownload":
            wall_ratio = cpu_ratio = "-"
        else:
            wall_ratio = _fmt(_ratio(my_wall, wall), ".2f")
            cpu_ratio = _fmt(_ratio(my_cpu, cpu), ".2f")
        lines.append(
            f"{summary.tool:<18} {len(summary.ok_runs()):>3}/{repeat:<3} {_fmt(wall, '9.3f')} "
            f"{_fmt(cpu, '9.3f')} {_fmt_rss(rss, rss_floor_kib):>12} "
            f"{_fmt(rate, '9.1f')} {wall_ratio:>14} {cpu_ratio:>13}"
        )
    for target, value, verdict in result.target_checks():
        if target.peer is None:
            shown = "-" if value is None else f"{value / MIB:.1f} MiB"
        else:
            shown = _fmt(value, ".2f")
        lines.append(f"target: adownload {target.describe():<28} measured {shown:<10} {verdict}")
    counts = {
        summary.tool: statistics.median(runs)
        for summary in result.tools.values()
        if (runs := [r.connections for r in summary.ok_runs() if r.connections is not None])
    }
    if counts:
        shown = ", ".join(f"{tool} {count:g}" for tool, count in counts.items())
        lines.append(f"new connections per run through the proxy (median): {shown}")
    # Every run's refusals, a failed one's too: a tool that gives up still loaded the server.
    refusals = {
        summary.tool: (statistics.median(runs), bool(summary.ok_runs()))
        for summary in result.tools.values()
        if (runs := [r.refused for r in summary.runs if r.refused is not None])
    }
    if refusals:
        shown = ", ".join(
            f"{tool} {count:g}{'' if ok else ' (failed)'}" for tool, (count, ok) in refusals.items()
        )
        lines.append(f"429 answers per run (median): {shown}")
    if startup_s is not None and my_wall is not None:
        # Informational only: the targets above use the full wall time.
        lines.append(
            f"note: adownload's {my_wall:.3f} s wall includes ~{startup_s:.3f} s of interpreter "
            f"start-up and imports (`python -c 'import adownload'`); the targets count it"
        )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_total_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_kib = int(line.split()[1])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_total_kib / MIB, 1),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "bench_python": f"{platform.python_implementation()} {platform.python_version()}",
    }


# --------------------------------------------------------------------------- main


def build_scenarios(names: Sequence[str], docroot: Path, sizes: Sizes, seed: int) -> list[Scenario]:
    scenarios: list[Scenario] = []
    small: tuple[DataFile, ...] = ()
    if {"small", "latency", "ftp-small", "adaptive-429"} & set(names):
        small = make_small_files(docroot, sizes.small_count, seed)
    throttled: tuple[DataFile, ...] = ()
    large: tuple[DataFile, ...] = ()
    if {"large", "ftp-large", *PROXY_SCENARIOS} & set(names):
        large = make_one_file(docroot, "large.bin", sizes.large_size, seed)
    count = f"{sizes.small_count} x {SMALL_FILE_SIZE // KIB} KiB"
    metalink_file: tuple[DataFile, ...] = ()
    for name in names:
        if name == "small":
            title = f"{count}, {CONCURRENCY} at a time, plain nginx"
            scenarios.append(Scenario(name, title, "plain", small, CONCURRENCY, 1))
        elif name == "large":
            title = f"one {_size(sizes.large_size)} file, one connection, plain nginx"
            scenarios.append(Scenario(name, title, "plain", large, CONCURRENCY, 1))
        elif name == "ftp-large":
            title = f"one {_size(sizes.large_size)} file, one connection, FTP (vsftpd)"
            scenarios.append(Scenario(name, title, "ftp", large, CONCURRENCY, 1))
        elif name == "ftp-small":
            title = f"{count}, {CONCURRENCY} at a time, FTP (vsftpd)"
            scenarios.append(Scenario(name, title, "ftp", small, CONCURRENCY, 1))
        elif name == "ftp-throttled":
            files = throttled or make_one_file(docroot, "throttled.bin", sizes.throttled_size, seed)
            throttled = files
            title = (
                f"one {_size(sizes.throttled_size)} file, FTP (vsftpd anon_max_rate "
                f"{LIMIT_RATE_BYTES / 1e6:.1f} MB/s per connection), {CONCURRENCY} segments"
            )
            scenarios.append(
                Scenario(name, title, "ftp-throttled", files, CONCURRENCY, CONCURRENCY)
            )
        elif name == "throttled":
            files = throttled or make_one_file(docroot, "throttled.bin", sizes.throttled_size, seed)
            throttled = files
            title = (
                f"one {_size(sizes.throttled_size)} file, nginx limit_rate {LIMIT_RATE} "
                f"({LIMIT_RATE_BYTES / 1e6:.1f} MB/s) per connection, {CONCURRENCY} segments"
            )
            scenarios.append(Scenario(name, title, "throttled", files, CONCURRENCY, CONCURRENCY))
        elif name == "adaptive-429":
            title = (
                f"{count}, {CONCURRENCY} at a time, from a server that answers 429 above "
                f"{THROTTLE_LIMIT} requests in hand ({SERVICE_S * 1000:g} ms each); "
                f"{THROTTLE_RETRIES} retries per file for every tool"
            )
            scenarios.append(
                Scenario(name, title, "throttling", small, CONCURRENCY, 1, THROTTLE_RETRIES)
            )
        elif name == "adaptive-capped":
            files = throttled or make_one_file(docroot, "throttled.bin", sizes.throttled_size, seed)
            throttled = files
            title = (
                f"one {_size(sizes.throttled_size)} file, nginx limit_rate {LIMIT_RATE} per "
                f"connection, every tool with its own splitting defaults (no -s)"
            )
            scenarios.append(Scenario(name, title, "throttled", files, CONCURRENCY, 0))
        elif name in PROXY_SCENARIOS:
            kind = name.removeprefix("proxy-")
            peer = {"http": "tinyproxy", "socks5": "microsocks"}[kind]
            title = f"one {_size(sizes.large_size)} file, one connection, through {peer}"
            scenarios.append(Scenario(name, title, "plain", large, CONCURRENCY, 1, proxy=kind))
        elif name in DASK_SCENARIOS:
            dask_files = make_small_files(docroot, sizes.dask_count, seed)
            workers = DASK_SCENARIOS[name]
            title = (
                f"{sizes.dask_count} x {SMALL_FILE_SIZE // KIB} KiB, {CONCURRENCY} at a time,"
                f" plain nginx; adownload-dask on {workers} worker process"
                f"{'es' if workers > 1 else ''}"
            )
            scenarios.append(Scenario(name, title, "plain", dask_files, CONCURRENCY, 1))
        elif name in METALINK_SCENARIOS:
            if not metalink_file:
                metalink_file = make_metalink_file(docroot, sizes.metalink_size, seed)
            mirrors = METALINK_SCENARIOS[name]
            rates = ", ".join(
                f"{rate}{' (one byte wrong in every piece)' if corrupt else ''}"
                for mirror in mirrors
                for other, rate, corrupt in MIRRORS
                if other == mirror
            )
            title = (
                f"one {_size(sizes.metalink_size)} file from a Metalink of 3 nginx mirrors"
                f" (limit_rate {rates} per connection; {METALINK_PIECE // MIB} MiB piece"
                f" hashes), {METALINK_CONNECTIONS} connections"
            )
            scenarios.append(
                Scenario(
                    name, title, "plain", metalink_file, CONCURRENCY, METALINK_CONNECTIONS,
                    mirrors=mirrors,
                )
            )  # fmt: skip
        elif name == "latency":
            rtt_ms = 2 * ONE_WAY_DELAY * 1000
            title = f"{count}, {CONCURRENCY} at a time, behind a {rtt_ms:.0f} ms round-trip proxy"
            scenarios.append(Scenario(name, title, "proxy", small, CONCURRENCY, 1))
    return scenarios


def _size(nbytes: int) -> str:
    return f"{nbytes / GIB:g} GiB" if nbytes >= GIB else f"{nbytes / MIB:g} MiB"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark adownload against curl, wget, wget2, aria2c and parfive.",
    )
    parser.add_argument("--quick", action="store_true", help="small data and 1 repetition")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIO_NAMES,
        help="run only this scenario (may be repeated; default: all; memory runs memory.py)",
    )
    parser.add_argument(
        "--tool",
        action="append",
        choices=TOOL_NAMES,
        help="run only this tool (may be repeated; default: all)",
    )
    parser.add_argument("--repeat", type=int, help="repetitions per tool (default 3, --quick 1)")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for the parfive and adownload drivers (default: this one)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the random data")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (data, logs)")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not apt-get install missing peers (curl, wget, wget2, aria2) when root",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results here")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


@contextlib.contextmanager
def work_dir(parent: Path | None, keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="adownload-bench-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept the work dir {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def needed_disk(names: Sequence[str], sizes: Sizes) -> int:
    small = (
        sizes.small_count * SMALL_FILE_SIZE if {"small", "latency", "ftp-small"} & set(names) else 0
    )
    large = sizes.large_size if {"large", "ftp-large"} & set(names) else 0
    throttled_names = {"throttled", "ftp-throttled", "adaptive-capped"}
    throttled = sizes.throttled_size if throttled_names & set(names) else 0
    memory = 2 * max(sizes.memory_file_sizes) if "memory" in names else 0
    dask = sizes.dask_count * SMALL_FILE_SIZE if set(DASK_SCENARIOS) & set(names) else 0
    small = max(small, dask)  # the dask scenarios' files include the small ones
    metalink = 2 * sizes.metalink_size if set(METALINK_SCENARIOS) & set(names) else 0
    # sources, plus one tool's output at a time, plus some slack
    biggest = max(small, large, throttled, memory, metalink)
    return small + large + throttled + metalink + biggest + 256 * MIB


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [name for name in SCENARIO_NAMES if not args.scenario or name in args.scenario]
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    tools = tuple(tool for tool in TOOLS if not args.tool or tool.name in args.tool)

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)

    nginx_binary = ensure_nginx()
    if not args.no_install:
        install_missing_peers([tool.name for tool in tools])
    info = machine_info()
    for package in ("adownload", "parfive"):
        why = precompile_package(args.python, package)
        if why is not None:
            print(f"warning: could not byte-compile {package}: {why}")
    versions, missing = tool_versions(args.python)
    versions["nginx"] = _first_line([nginx_binary, "-v"]) or "unknown version"
    driver_python = _first_line([args.python, "--version"]) or args.python
    info["driver_python"] = f"{driver_python} ({args.python})"

    print("== machine ==")
    print(
        f"nproc {info['nproc']}, {info['cpu_model']}, {info['memory_gib']} GiB RAM, "
        f"Linux {info['kernel']}, load average at start {info['loadavg_at_start']}"
    )
    print(f"python: bench {info['bench_python']}; drivers {info['driver_python']}")
    for name in (*TOOL_NAMES, "nginx"):
        print(f"  {name:<10} {versions.get(name) or missing.get(name, '-')}")
    print(
        f"settings: {'--quick, ' if args.quick else ''}{args.repeat} repetition(s), "
        f"tools alternate run by run; scenarios: {', '.join(names)}"
    )

    results: list[ScenarioResult] = []
    with work_dir(args.workdir, args.keep) as work:
        free = shutil.disk_usage(work).free
        if free < needed_disk(names, sizes):
            raise SystemExit(f"{work} has {free / GIB:.1f} GiB free, too little for the data")
        rss_floor = launcher_rss_floor(work)
        info["rss_floor_kib"] = rss_floor
        print(
            f"peak RSS floor of the measuring launcher: {rss_floor / KIB:.1f} MiB "
            "(a tool shown at or under it used no more than that)"
        )
        for module in ("aiohttp", "parfive", "adownload"):
            if module in missing:
                continue
            base = driver_baseline(args.python, module, work)
            if base.exit_code == 0:
                info[f"startup_{module}"] = {"wall_s": base.wall_s, "cpu_s": base.cpu_s}
                print(
                    f"start-up of `{Path(args.python).name} -c 'import {module}'` (median of 3): "
                    f"{base.wall_s:.3f} s wall, {base.cpu_s:.3f} s CPU, "
                    f"{base.max_rss_kib / KIB:.1f} MiB peak RSS"
                )
        print("(the parfive and adownload numbers include their driver's start-up)")
        docroot = work / "data"
        docroot.mkdir()
        started = time.perf_counter()
        scenarios = build_scenarios(names, docroot, sizes, args.seed)
        print(f"made the data in {docroot} in {time.perf_counter() - started:.1f} s")

        nginx = Nginx(nginx_binary, work / "nginx", docroot)
        proxy: ProxyProcess | None = None
        throttle: ThrottleServer | None = None
        ftp: FtpServer | None = None
        slow_ftp: FtpServer | None = None
        real_proxies: list[RealProxy] = []
        try:
            nginx.start()
            base_urls = {
                "plain": f"http://{LOOPBACK}:{nginx.plain_port}/",
                "throttled": f"http://{LOOPBACK}:{nginx.throttled_port}/",
                **{
                    f"mirror-{name}": f"http://{LOOPBACK}:{port}/"
                    for name, port in nginx.mirror_ports.items()
                },
            }
            if "latency" in names:
                proxy = ProxyProcess(nginx.plain_port, work / "proxy.log")
                proxy.start()
                base_urls["proxy"] = f"http://{LOOPBACK}:{proxy.port}/"
            if "adaptive-429" in names:
                throttle = ThrottleServer(docroot, work / "throttle.log")
                throttle.start()
                base_urls["throttling"] = f"http://{LOOPBACK}:{throttle.port}/"
            if set(FTP_SCENARIOS) & set(names):
                ftp = FtpServer(work / "ftp", docroot, LOOPBACK, free_port(), 40000)
                ftp.start(_parent_death_signal(), wait_for_port)
                base_urls["ftp"] = f"ftp://{LOOPBACK}:{ftp.port}/"
                print(f"ftp server: {ftp.version()}")
            if "ftp-throttled" in names:
                slow_ftp = FtpServer(
                    work / "ftp-throttled", docroot, LOOPBACK, free_port(), 40400, LIMIT_RATE_BYTES
                )
                slow_ftp.start(_parent_death_signal(), wait_for_port)
                base_urls["ftp-throttled"] = f"ftp://{LOOPBACK}:{slow_ftp.port}/"
            proxies: dict[str, str] = {}
            for name in PROXY_SCENARIOS:
                kind = name.removeprefix("proxy-")
                if name in names and shutil.which(PROXY_PACKAGES[kind]):
                    real = RealProxy(kind, work)
                    real.start()
                    real_proxies.append(real)
                    proxies[kind] = real.url
                elif name in names:
                    print(f"{name}: {PROXY_PACKAGES[kind]} is not installed (apt-get it)")
                    scenarios = [s for s in scenarios if s.name != name]
            print(f"servers: {', '.join(f'{k} {v}' for k, v in base_urls.items())}")
            if proxies:
                print(f"proxies: {', '.join(proxies.values())}")
            bench = Bench(
                work, args.python, args.repeat, args.timeout, tools, missing, base_urls, proxy,
                throttle, proxies,
            )  # fmt: skip
            for scenario in scenarios:
                print(f"\n-- {scenario.name}: {scenario.title}")
                result = bench.run_scenario(scenario)
                results.append(result)
                print()
                startup = info.get("startup_adownload", {}).get("wall_s")
                print(format_table(result, args.repeat, rss_floor, startup))
            if "memory" in names and "adownload" in (t.name for t in tools):
                print()
                if "adownload" in missing:
                    print(f"-- memory: adownload {missing['adownload']}")
                else:
                    # Imported here: memory.py imports this module for nginx and measuring.
                    from memory import run_memory

                    memory_report = run_memory(
                        args.python,
                        base_urls["plain"],
                        docroot,
                        work / "memory",
                        sizes.memory_file_sizes,
                        sizes.memory_url_counts,
                        seed=args.seed,
                    )
                    info["memory"] = asdict(memory_report)
        finally:
            for real in real_proxies:
                real.stop()
            if proxy is not None:
                proxy.stop()
            if throttle is not None:
                throttle.stop()
            for server in (ftp, slow_ftp):
                if server is not None and server.proc is not None:
                    stop_process(server.proc, signal.SIGTERM)
            nginx.stop()

        print("\n== commands (WORK is the temp dir) ==")
        for result in results:
            print(f"{result.scenario.name}:")
            for summary in result.tools.values():
                if summary.command:
                    shown = " ".join(summary.command).replace(str(work), "WORK")
                    print(f"  {summary.tool:<18} {shown}")

    if args.json:
        save_json(args.json, info, versions, missing, args, sizes, results)
        print(f"saved the results to {args.json}")
    return 0


def save_json(
    path: Path,
    info: dict[str, Any],
    versions: dict[str, str],
    missing: dict[str, str],
    args: argparse.Namespace,
    sizes: Sizes,
    results: list[ScenarioResult],
) -> None:
    info = dict(info)
    memory = info.pop("memory", None)
    document: dict[str, Any] = {
        "machine": info,
        "memory": memory,
        "versions": versions,
        "missing": missing,
        "settings": {
            "quick": args.quick,
            "repeat": args.repeat,
            "sizes": asdict(sizes),
            "concurrency": CONCURRENCY,
            "limit_rate": LIMIT_RATE,
            "one_way_delay_s": ONE_WAY_DELAY,
        },
        "scenarios": {},
    }
    for result in results:
        scenario = result.scenario
        document["scenarios"][scenario.name] = {
            "title": scenario.title,
            "files": len(scenario.files),
            "total_bytes": scenario.total_bytes,
            "tools": {
                name: {
                    "status": summary.status,
                    "command": summary.command,
                    "median_wall_s": summary.median_wall(),
                    "median_cpu_s": summary.median_cpu(),
                    "max_rss_kib": summary.max_rss_kib(),
                    "runs": [asdict(run) for run in summary.runs],
                }
                for name, summary in result.tools.items()
            },
            "targets": [
                {"target": target.describe(), "value": value, "verdict": verdict}
                for target, value, verdict in result.target_checks()
            ],
        }
    path.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
