"""Downloads on a real Dask cluster: a `distributed.LocalCluster` of two worker processes on
127.0.0.1, driven by `adownload.distributed.DaskRunner` against loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

pytest.importorskip("distributed")

from distributed import Client

import adownload
from adownload import Limits
from adownload.distributed import DaskRunner

from .cli_support import run_cli
from .servers import FaultServer
from .support import dask_client, listing, payload, serve_app, serve_in_thread

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with dask_client() as client:
        yield client


async def pids(client: Client) -> dict[str, int]:
    run: Any = client.run(os.getpid)
    found: dict[str, int] = await run
    return found


async def test_a_manifest_through_the_cluster_is_byte_identical(
    client: Client, faults: FaultServer, tmp_path: Path
) -> None:
    sizes = {f"f{i:02}.bin": 1000 + 997 * i for i in range(40)}
    urls = [faults.url(f"/f/{name}", size=size) for name, size in sizes.items()]
    faults.plan("/f/gone.bin", ["status:404"])
    events: list[adownload.Event] = []
    runner = DaskRunner(client, dest=tmp_path, shard_size=7, on_event=events.append)

    outcomes = await runner.download_many([*urls, faults.url("/f/gone.bin"), "gopher://x/"])

    assert [o.ok for o in outcomes] == [True] * 40 + [False, False]
    assert isinstance(outcomes[40].error, adownload.HTTPStatusError)
    assert outcomes[40].error.status == 404
    assert isinstance(outcomes[41].error, adownload.InvalidRequestError)
    assert listing(tmp_path) == sorted(sizes)
    for name, size in sizes.items():
        assert (tmp_path / name).read_bytes() == payload(name, size)
    # Every outcome names the worker that wrote it; both workers took shards.
    workers = set((await pids(client)).keys())
    assert {o.worker for o in outcomes[:41]} <= workers
    assert len({o.worker for o in outcomes[:41]}) == 2
    assert runner.report.downloaded == 40
    assert runner.report.failed == 2
    assert runner.report.bytes == sum(sizes.values())
    # The caller's hook saw each download's events, with the caller's own Request objects.
    finished = [e for e in events if isinstance(e, adownload.Finished)]
    assert len(finished) == 42
    started = [e for e in events if isinstance(e, adownload.Started)]
    assert {e.url for e in started} == set(urls)


async def test_one_name_from_two_origins_is_written_by_one_of_them(
    client: Client, faults: FaultServer, tmp_path: Path
) -> None:
    # Shards hold one origin each: the same file named from two origins must not race on one
    # .part in two workers, nor be reported saved with the other's bytes.
    names = [f"same{n}.bin" for n in range(6)]
    items: list[adownload.Item] = []
    for name in names:
        items.append(faults.url(f"/f/{name}", size=700))
        items.append(adownload.Request(faults.alt_url(f"/g/{name}", size=900), tmp_path / name))
    runner = DaskRunner(client, dest=tmp_path, shard_size=2)
    outcomes = await runner.download_many(items)
    assert listing(tmp_path) == names
    for n, name in enumerate(names):
        first, second = outcomes[2 * n], outcomes[2 * n + 1]
        assert first.ok, first.error
        assert (tmp_path / name).read_bytes() == payload(name, 700)
        assert isinstance(second.error, adownload.DestinationExistsError), second
        assert "earlier in this run" in str(second.error)


async def test_per_host_limits_hold_across_the_cluster(
    client: Client, faults: FaultServer, tmp_path: Path
) -> None:
    urls = []
    for i in range(24):
        faults.plan(f"/f/slow{i}.bin", ["drip:5000:0.05"])  # about 0.2 s each
        urls.append(faults.url(f"/f/slow{i}.bin", size=20_000))
    runner = DaskRunner(client, dest=tmp_path, shard_size=4, limits=Limits(max_per_host=4))

    outcomes = await runner.download_many(urls)

    assert all(o.ok for o in outcomes)
    assert len({o.worker for o in outcomes}) == 2  # both workers ran shards of the host ...
    assert 2 < faults.peak <= 4  # ... and together never opened more than 4 connections


async def test_a_worker_killed_mid_run_leaves_every_file_intact(
    client: Client, faults: FaultServer, tmp_path: Path
) -> None:
    # One shard: a large file arriving slowly, then small ones. Its worker is killed while
    # the large file streams; Dask runs the shard again, which skips what is complete and
    # continues the .part.
    big = 4 << 20
    faults.plan("/f/big.bin", ["drip:65536:0.02"])  # about 1.3 s
    urls = [faults.url("/f/big.bin", size=big)]
    urls += [faults.url(f"/f/s{i}.bin", size=3000) for i in range(10)]
    runner = DaskRunner(client, dest=tmp_path, shard_size=100)
    consumer = asyncio.create_task(runner.download_many(urls))

    deadline = time.monotonic() + 30
    while sum(hit.body_sent for hit in faults.hits("/f/big.bin")) < big // 4:
        assert time.monotonic() < deadline, "the large file never got going"
        await asyncio.sleep(0.02)
    busy = [address for address, keys in (await _processing(client)).items() if keys]
    assert len(busy) == 1
    os.kill((await pids(client))[busy[0]], signal.SIGKILL)

    outcomes = await asyncio.wait_for(consumer, 60)

    assert [o.ok for o in outcomes] == [True] * 11, [o.error for o in outcomes]
    assert [o.url for o in outcomes] == urls  # each once: the rerun's repeats are dropped
    assert (tmp_path / "big.bin").read_bytes() == payload("big.bin", big)
    for i in range(10):
        assert (tmp_path / f"s{i}.bin").read_bytes() == payload(f"s{i}.bin", 3000)
    assert not [name for name in listing(tmp_path) if ".part" in name]
    # The rerun continued the large file where the dead worker's part ended ...
    hits = faults.hits("/f/big.bin")
    assert len(hits) == 2
    assert hits[1].range_start is not None
    assert hits[1].range_start > 0
    # ... so nothing was fetched twice beyond what was in flight when it died.
    assert sum(hit.body_sent for hit in hits) <= big + 4 * 65536


async def test_a_shard_that_fails_for_good_reports_its_files_as_failed(
    client: Client, faults: FaultServer, tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="must pickle to reach the workers"):
        DaskRunner(client, verify=ssl.create_default_context())
    # Every worker fails to open the downloader (no such cookie file there): the task errs.
    urls = [faults.url(f"/f/{i}.bin") for i in range(5)]
    runner = DaskRunner(client, dest=tmp_path, cookies=tmp_path / "missing" / "cookies.txt")

    outcomes = await asyncio.wait_for(runner.download_many(urls), 90)

    assert [o.ok for o in outcomes] == [False] * 5
    assert all("the cluster could not run this download" in str(o.error) for o in outcomes)
    assert runner.report.lost_shards == 1
    assert listing(tmp_path) == []


async def test_cancelling_the_caller_cancels_the_clusters_tasks(
    client: Client, faults: FaultServer, tmp_path: Path
) -> None:
    urls = []
    for i in range(6):
        faults.plan(f"/f/hung{i}.bin", ["pause_after:10000"])
        urls.append(faults.url(f"/f/hung{i}.bin", size=300_000))
    started = asyncio.Event()

    def on_event(event: adownload.Event) -> None:
        if isinstance(event, adownload.Started):
            started.set()

    runner = DaskRunner(client, dest=tmp_path, shard_size=3, on_event=on_event)
    consumer = asyncio.create_task(runner.download_many(urls))
    await asyncio.wait_for(started.wait(), 90)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer

    deadline = time.monotonic() + 60
    while faults.active or any((await _processing(client)).values()):
        assert time.monotonic() < deadline, "the cluster kept downloading after the cancel"
        await asyncio.sleep(0.1)
    # Nothing under a final name; what was fetched is kept to be continued.
    assert all(name.endswith((".part", ".part.state")) for name in listing(tmp_path))


async def _processing(client: Client) -> dict[str, Any]:
    processing: Any = client.processing()  # a coroutine, the client being asynchronous
    return dict(await processing)


@pytest.fixture
def scheduler_file(tmp_path: Path) -> Iterator[Path]:
    """A cluster as the README starts one: `dask scheduler` and `dask worker` processes
    (two workers of one thread), on 127.0.0.1; the file that says where the scheduler is."""
    path = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    common = ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", "0", *common],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as scheduler:
        try:
            deadline = time.monotonic() + 30
            while not path.exists():
                assert time.monotonic() < deadline, "the scheduler never started"
                time.sleep(0.1)
            worker_command = [sys.executable, "-m", "distributed.cli.dask_worker"]
            with subprocess.Popen(
                [*worker_command, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
                 *common],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ) as workers:  # fmt: skip
                try:
                    yield path
                finally:
                    workers.terminate()
                    workers.wait(30)
        finally:
            scheduler.terminate()
            scheduler.wait(30)


ROOT = Path(__file__).parent.parent

_MEMORY_RUN = textwrap.dedent(
    """
    import asyncio, resource, sys
    from distributed import Client
    from adownload import Request
    from adownload.distributed import DaskRunner

    async def main(scheduler_file, base, count):
        async with Client(scheduler_file=scheduler_file, asynchronous=True) as client:
            await client.wait_for_workers(2)
            items = (Request(f"{base}/{i}.bin", check_only=True) for i in range(count))
            found = 0
            async for outcome in DaskRunner(client, shard_size=1000).as_completed(items):
                found += outcome.ok
            print(found, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    if __name__ == "__main__":
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


@contextlib.asynccontextmanager
async def tiny_bodies() -> AsyncIterator[str]:
    """A server that answers every path with one byte and keeps no log."""

    async def one_byte(request: web.Request) -> web.Response:
        return web.Response(body=b"x")

    app = web.Application()
    app.router.add_get("/{name}", one_byte)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.timeout(600)
def test_many_items_keep_the_callers_memory_flat(scheduler_file: Path, tmp_path: Path) -> None:
    """The caller's peak RSS for 5,000 and for 50,000 generated items (checked only): within a
    few MiB of each other, so a long manifest is never held whole. (The benchmark runs a
    million.)"""
    (tmp_path / "run.py").write_text(_MEMORY_RUN)
    peaks = {}
    with serve_in_thread(tiny_bodies) as base:
        for count in (5_000, 50_000):
            result = subprocess.run(
                [sys.executable, str(tmp_path / "run.py"), str(scheduler_file), base, str(count)],
                capture_output=True,
                text=True,
                timeout=500,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            assert result.returncode == 0, result.stderr[-3000:]
            found, peak_kib = map(int, result.stdout.split())
            assert found == count
            peaks[count] = peak_kib
    assert peaks[50_000] - peaks[5_000] < 16 * 1024, peaks


def test_a_runner_needs_an_asynchronous_client() -> None:
    with pytest.raises(TypeError, match=r"asynchronous distributed\.Client"):
        DaskRunner(object())  # type: ignore[arg-type]


# --- the command line -------------------------------------------------------------------------


def scheduler_address(scheduler_file: Path) -> str:
    address: str = json.loads(scheduler_file.read_text())["address"]
    return address


def test_the_command_runs_a_manifest_on_the_cluster(
    scheduler_file: Path, threaded_faults: FaultServer, tmp_path: Path
) -> None:
    names = [f"m{i}.bin" for i in range(12)]
    threaded_faults.plan("/f/gone.bin", ["status:404"])
    urls = [threaded_faults.url(f"/f/{name}", size=5000) for name in names]
    (tmp_path / "manifest.txt").write_text("\n".join([*urls, threaded_faults.url("/f/gone.bin")]))
    dest = tmp_path / "shared"
    address = scheduler_address(scheduler_file)

    result = run_cli(
        "--scheduler", address, "--json", "-i", "manifest.txt", "-d", dest, cwd=tmp_path
    )

    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    finished = [r for r in records if r["type"] == "finished"]
    assert len(finished) == 13
    assert {r["worker"] for r in finished if r["ok"]} <= set(_workers(address))
    assert records[-1]["type"] == "summary"
    assert (records[-1]["downloaded"], records[-1]["failed"]) == (12, 1)
    assert listing(dest) == sorted(names)
    for name in names:
        assert (dest / name).read_bytes() == payload(name, 5000)

    mirrored = tmp_path / "mirror"
    (tmp_path / "list.txt").write_text("\n".join(urls))
    result = run_cli("mirror", "--scheduler", address, "list.txt", mirrored, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [name for name in listing(mirrored) if not name.startswith(".")] == [
        "f",
        *sorted(f"f/{name}" for name in names),
    ]
    for name in names:
        assert (mirrored / "f" / name).read_bytes() == payload(name, 5000)


def _workers(address: str) -> list[str]:
    from distributed import Client

    with Client(address, timeout=10) as client:
        return list(client.scheduler_info()["workers"])


def test_the_command_says_when_the_scheduler_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = run_cli(
        "--scheduler", f"tcp://127.0.0.1:{port}", "http://127.0.0.1:9/a.bin", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"adownload: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: "
    )
    assert listing(tmp_path) == []
    bad = run_cli(
        "--scheduler", f"tcp://127.0.0.1:{port}", "--ca-certificate", "x.pem", "http://h/a",
        cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2
