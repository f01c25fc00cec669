"""Downloads in worker processes (`adownload.workers.ProcessRunner`, `adownload --workers`):
real child processes against the test server on 127.0.0.1; bytes on disk, limits, faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adownload import (
    DownloadError,
    Event,
    Finished,
    HTTPStatusError,
    InvalidRequestError,
    Limits,
    Queued,
    Request,
    Started,
)
from adownload._cli.args import parse_options
from adownload._cli.workers import AUTO_MIN_URLS, auto_workers, usable_cores
from adownload._model.config import Limits as _Limits
from adownload._runners.process import route, shares
from adownload.workers import ProcessRunner

from .cli_support import COMMAND, cli_env, run_cli
from .servers import FaultServer, Server
from .support import listing, payload
from .test_cli import interrupt


def test_shares_split_every_limit_and_never_exceed_a_hosts_connections() -> None:
    workers, share = shares(_Limits(max_transfers=16, max_per_host=16, rate=1000.0), 2)
    assert (workers, share.max_transfers, share.max_per_host, share.rate) == (2, 8, 8, 500.0)
    # One connection per host allows one worker: two would open two.
    workers, share = shares(_Limits(max_transfers=10, max_per_host=1), 4)
    assert (workers, share.max_transfers, share.max_per_host) == (1, 10, 1)
    workers, share = shares(_Limits(max_transfers=5, max_per_host=6), 4)
    assert (workers, share.max_transfers, share.max_per_host) == (4, 2, 1)


def test_requests_of_one_file_go_to_one_worker() -> None:
    a = Request("http://127.0.0.1:1/x/a.bin")
    same_name = Request("http://127.0.0.2:1/y/a.bin")
    assert route(a, 3, "d") == route(same_name, 3, "d")
    assert route(Request("http://h/q", path="out/f.bin"), 7, "d") == route(
        Request("http://g/r", path="out/f.bin"), 7, "d"
    )
    # One file, spelled by a path and by a URL's name in the directory: one worker.
    for n in range(50):
        by_url = Request(f"http://h/x/same{n}.bin")
        by_path = Request(f"http://g/other{n}", path=os.path.abspath(f"d/same{n}.bin"))
        assert route(by_url, 2, "d") == route(by_path, 2, "d")
    spread = {route(Request(f"http://h/{n}.bin"), 4, "d") for n in range(200)}
    assert spread == {0, 1, 2, 3}


async def test_two_workers_download_every_file_and_each_writes_its_share(
    server: Server, tmp_path: Path
) -> None:
    names = [f"f{n:03}.bin" for n in range(60)]
    urls = [server(f"/files/{name}", size=5000 + n) for n, name in enumerate(names)]
    events: list[Event] = []
    runner = ProcessRunner(2, dest=tmp_path, limits=Limits(max_transfers=8), on_event=events.append)
    outcomes = await runner.download_many(urls)
    assert [outcome.url for outcome in outcomes] == urls
    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes if not o.ok]
    assert listing(tmp_path) == names
    for n, name in enumerate(names):
        assert (tmp_path / name).read_bytes() == payload(name, 5000 + n)
    workers = {outcome.worker for outcome in outcomes}
    assert len(workers) == 2
    assert all(w and w.startswith("process ") for w in workers)
    # The caller's own objects and the events of a local downloader, once per file.
    assert sum(isinstance(e, Queued) for e in events) == len(urls)
    assert sum(isinstance(e, Started) for e in events) == len(urls)
    assert sorted(e.outcome.url for e in events if isinstance(e, Finished)) == sorted(urls)


async def test_each_hosts_connections_hold_across_the_workers(
    server: Server, tmp_path: Path
) -> None:
    urls = [server(f"/slow/s{n}.bin", size=2000, delay=0.05, parts=2) for n in range(12)]
    runner = ProcessRunner(2, dest=tmp_path, limits=Limits(max_transfers=16, max_per_host=2))
    outcomes = await runner.download_many(urls)
    assert all(outcome.ok for outcome in outcomes)
    assert 1 <= server.stats.peak <= 2
    assert len(listing(tmp_path)) == 12


async def test_a_missing_file_fails_alone(server: Server, tmp_path: Path) -> None:
    good = [server(f"/files/g{n}.bin", size=1000) for n in range(6)]
    missing = server("/status/404/gone.bin")
    outcomes = await ProcessRunner(2, dest=tmp_path).download_many([*good, missing])
    assert [outcome.ok for outcome in outcomes] == [True] * 6 + [False]
    error = outcomes[-1].error
    assert isinstance(error, HTTPStatusError)
    assert error.status == 404
    assert listing(tmp_path) == [f"g{n}.bin" for n in range(6)]


async def test_a_request_with_a_sink_is_refused_and_nothing_else_is_lost(
    server: Server, tmp_path: Path
) -> None:
    class Sink:
        async def write_at(self, offset: int, data: bytes) -> None: ...

        async def close(self) -> None: ...

    url = server("/files/ok.bin", size=100)
    outcomes = await ProcessRunner(2, dest=tmp_path).download_many(
        [Request(server("/files/s.bin"), sink=Sink()), url]
    )
    assert isinstance(outcomes[0].error, InvalidRequestError)
    assert "sink" in str(outcomes[0].error)
    assert outcomes[1].ok
    assert listing(tmp_path) == ["ok.bin"]


async def test_a_worker_that_dies_fails_its_downloads_and_the_others_go_on(
    server: Server, tmp_path: Path
) -> None:
    stalled = server("/stall/big.bin", after=1000)
    later = [server(f"/files/l{n}.bin", size=1000) for n in range(10)]
    runner = ProcessRunner(2, dest=tmp_path)

    async def items() -> AsyncIterator[str]:
        yield stalled
        await asyncio.wait_for(server.stats.started_event("/stall/big.bin").wait(), 30)
        os.kill(runner.pids[route(Request(stalled), 2, str(tmp_path))], signal.SIGKILL)
        for _ in range(300):  # until the runner has seen it go (bounded: 30 s)
            if len(runner.pids) == 1:
                break
            await asyncio.sleep(0.1)
        for url in later:
            yield url

    outcomes = {outcome.url: outcome async for outcome in runner.as_completed(items())}
    assert len(outcomes) == 11
    error = outcomes[stalled].error
    assert isinstance(error, DownloadError)
    assert "the worker process ended (exit status -9) before this download did" in str(error)
    assert all(outcomes[url].ok for url in later)
    assert [p for p in listing(tmp_path) if not p.startswith("big")] == sorted(
        f"l{n}.bin" for n in range(10)
    )
    # Killed mid-body: no final file; at most the part it was writing.
    assert not (tmp_path / "big.bin").exists()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="workers must be a whole number of 1 or more, not 0"):
        ProcessRunner(0)
    with pytest.raises(ValueError, match="window must be 1 or more"):
        ProcessRunner(2, window=0)
    with pytest.raises(TypeError, match="must pickle"):
        ProcessRunner(2, on_event=None, headers={"X": lambda: 1})  # type: ignore[dict-item]


# --- the command: --workers ----------------------------------------------------------------


def test_the_command_with_workers_downloads_a_list_and_reports_a_missing_file(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    names = [f"w{n:02}.bin" for n in range(30)]
    urls = [threaded_faults.url(f"/f/{name}", size=3000 + n) for n, name in enumerate(names)]
    missing = threaded_faults.url("/nowhere/gone.bin")
    (tmp_path / "list.txt").write_text("\n".join([*urls, missing]) + "\n")
    out = tmp_path / "out"
    result = run_cli("--workers", "2", "-q", "-i", "list.txt", "-d", "out", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "gone.bin" in result.stderr
    assert "404" in result.stderr
    assert listing(out) == names
    for n, name in enumerate(names):
        assert (out / name).read_bytes() == payload(name, 3000 + n)


def test_two_urls_for_one_name_meet_in_one_worker_as_in_one_process(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    # -d D URL/sameN.bin, and another URL with out=sameN.bin in the list: the second is
    # refused, and sameN.bin holds the bytes of the URL reported saved.
    names = [f"same{n}.bin" for n in range(8)]
    lines = [f"{threaded_faults.url(f'/f/other{n}.bin', size=500 + n)}\n  out={name}\n"
             for n, name in enumerate(names)]  # fmt: skip
    (tmp_path / "list.txt").write_text("".join(lines))
    urls = [threaded_faults.url(f"/f/{name}", size=900) for name in names]
    for workers in ([], ["--workers", "2"]):
        out = tmp_path / f"out{len(workers)}"
        result = run_cli(*workers, "-d", out, *urls, "-i", "list.txt", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert listing(out) == names
        for n, name in enumerate(names):
            assert (out / name).read_bytes() == payload(name, 900)
            other = threaded_faults.url(f"/f/other{n}.bin", size=500 + n)
            assert f"failed {other}: {out / name} was saved from {urls[n]}" in result.stderr


def test_the_command_with_workers_reports_like_one_process(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    urls = [threaded_faults.url(f"/f/j{n}.bin", size=2000) for n in range(5)]
    result = run_cli("--workers", "2", "--json", *urls, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    finished = [line for line in lines if line["type"] == "finished"]
    assert sorted(line["url"] for line in finished) == sorted(urls)
    assert lines[-1]["downloaded"] == 5
    assert listing(tmp_path) == [f"j{n}.bin" for n in range(5)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers: expected auto or a whole number of 1 or more, not '0'"),
        (["--workers", "many"], "--workers: expected auto or a whole number of 1 or more"),
        (["--workers", "2", "--content-disposition"], "leave out --workers"),
        (["--workers", "2", "-O", "-"], "cannot run in worker processes"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give one"),
    ],
)
def test_the_command_refuses_what_workers_cannot_do(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli(*args, "http://127.0.0.1:1/a.bin", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert os.listdir(tmp_path) == []


def test_workers_auto_runs_workers_only_for_long_lists_it_can_count(tmp_path: Path) -> None:
    def auto(known: int, *inputs: str, cores: int = 2, limit: int = 16) -> int:
        return auto_workers(known, inputs, cores=cores, limit=limit, allowed=True)

    assert auto(10) == 1
    assert auto(AUTO_MIN_URLS) == 2
    assert auto(AUTO_MIN_URLS, cores=8, limit=4) == 4  # no more than a host's connections
    assert auto(AUTO_MIN_URLS, cores=1) == 1
    assert auto_workers(AUTO_MIN_URLS, (), cores=2, limit=16, allowed=False) == 1
    short = tmp_path / "short.txt"
    short.write_text("http://127.0.0.1:1/a\n\n" * (AUTO_MIN_URLS - 1))  # blank lines don't count
    assert auto(0, str(short)) == 1
    assert auto(1, str(short)) == 2
    assert auto(1, "-", str(short)) == 1  # standard input cannot be counted before it is read
    assert auto(AUTO_MIN_URLS - 1, str(tmp_path / "missing.txt")) == 1
    assert short.read_text().count("\n") == 2 * (AUTO_MIN_URLS - 1)  # only read


def test_workers_auto_never_reads_a_pipe_to_count_it(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    # -i <(producer) is a pipe: counting its lines would leave nothing to download.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert auto_workers(1, (str(fifo),), cores=2, limit=16, allowed=True) == 1  # not opened
    urls = [threaded_faults.url(f"/f/p{n}.bin", size=700 + n) for n in range(3)]
    result = run_cli(
        "--workers", "auto", "-i", "/dev/stdin", "-d", "out", cwd=tmp_path,
        stdin="".join(f"{url}\n" for url in urls),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3 downloaded" in result.stderr
    assert listing(tmp_path / "out") == [f"p{n}.bin" for n in range(3)]
    for n in range(3):
        assert (tmp_path / "out" / f"p{n}.bin").read_bytes() == payload(f"p{n}.bin", 700 + n)


def test_workers_auto_is_decided_from_the_command_line(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/a.bin"
    long_list = tmp_path / "long.txt"
    long_list.write_text(f"{url}\n" * AUTO_MIN_URLS)
    cores = min(usable_cores(), 16)
    expected = cores if cores > 1 else 1
    assert parse_options(["--workers", "auto", "-i", str(long_list)]).workers == expected
    assert parse_options(["--workers", "auto", "-x", "1", "-i", str(long_list)]).workers == 1
    assert parse_options(["--workers", "auto", "-j", "1", "-i", str(long_list)]).workers == 1
    assert parse_options(["--workers", "auto", url]).workers == 1
    named = parse_options(["--workers", "auto", "--content-disposition", "-i", str(long_list)])
    assert named.workers == 1  # refused with a number, run here with auto
    assert parse_options(["--workers", "3", url]).workers == 3
    assert os.listdir(tmp_path) == ["long.txt"]


def test_workers_auto_downloads_a_long_list(threaded_faults: FaultServer, tmp_path: Path) -> None:
    names = [f"a{n:04}.bin" for n in range(AUTO_MIN_URLS)]
    urls = [threaded_faults.url(f"/f/{name}", size=100 + n % 7) for n, name in enumerate(names)]
    (tmp_path / "list.txt").write_text("\n".join(urls) + "\n")
    result = run_cli("--workers", "auto", "-q", "-i", "list.txt", "-d", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert listing(out) == names
    for n, name in enumerate(names):
        assert (out / name).read_bytes() == payload(name, 100 + n % 7)


def test_workers_auto_runs_here_what_workers_cannot_do(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    url = threaded_faults.url("/f/here.bin", size=5000)
    command = [*COMMAND, "--workers", "auto", "-q", "-O", "-", url]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=30, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload("here.bin", 5000)
    assert result.stderr == b""
    assert os.listdir(tmp_path) == []


def test_sigint_with_workers_keeps_a_resumable_part_and_a_rerun_finishes_it(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    size = 400_000
    threaded_faults.plan("/f/big.bin", ["pause_after:150000"])
    url = threaded_faults.url("/f/big.bin", size=size)
    small = [threaded_faults.url(f"/f/s{n}.bin", size=1000) for n in range(4)]
    _, err = interrupt(threaded_faults, "/f/big.bin", ["--workers", "2", url, *small], tmp_path)
    assert "interrupted" in err
    assert "big.bin.part" in listing(tmp_path)
    kept = (tmp_path / "big.bin.part").read_bytes()
    assert 0 < len(kept) <= 150_000
    assert kept == payload("big.bin", size)[: len(kept)]
    assert not (tmp_path / "big.bin").exists()
    result = run_cli("--workers", "2", "-q", url, *small, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "big.bin").read_bytes() == payload("big.bin", size)
    assert listing(tmp_path) == ["big.bin", *(f"s{n}.bin" for n in range(4))]
