"""The benchmark helpers that decide whether a run counts, and the commands it compares: quick,
nothing timed; one loopback server (the throttling one, in-process)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import sys
import types
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .support import serve_app

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _module(name: str) -> Any:
    """Import a module of the benchmark package (`python -m benchmarks` from the root)."""
    return importlib.import_module(f"benchmarks.{name}")


def _bench() -> Any:
    """The benchmark's data, peers and scenarios modules as one namespace."""
    names: dict[str, Any] = {}
    for module in ("common", "data", "peers", "scenarios"):
        names.update(vars(_module(module)))
    return types.SimpleNamespace(**names)


def test_verify_download_counts_only_identical_files(tmp_path: Path) -> None:
    bench = _bench()
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
    memory = _module("memory_child")
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


async def test_the_throttling_server_refuses_above_its_limit_and_counts(tmp_path: Path) -> None:
    throttle = _module("throttle_server")
    (tmp_path / "a.bin").write_bytes(b"a" * 100)
    async with (
        serve_app(throttle.make_app(tmp_path, limit=1, service=0.2)) as port,
        aiohttp.ClientSession() as session,
    ):
        base = f"http://127.0.0.1:{port}"

        async def get(path: str) -> tuple[int, bytes]:
            async with session.get(base + path) as response:
                return response.status, await response.read()

        answers = await asyncio.gather(get("/a.bin"), get("/a.bin"), get("/a.bin"))
        assert sorted(status for status, _ in answers) == [200, 429, 429]
        assert (200, b"a" * 100) in answers
        assert (await get("/missing.bin"))[0] == 404
        assert (await get("/../etc/passwd"))[0] == 404
        async with session.get(base + "/_stats") as response:
            assert await response.json() == {"requests": 5, "refused": 2}


def test_the_adaptive_scenarios_give_every_tool_retries_and_its_own_splitting(
    tmp_path: Path,
) -> None:
    bench = _bench()
    files = (bench.DataFile("a.bin", 1, "0" * 64),)
    job = bench.Job(("http://127.0.0.1:1/a.bin",), files, tmp_path, tmp_path, 16, 0, "python", 20)
    assert bench.curl_command(job)[:5] == ["curl", "-sS", "--fail", "-o", str(tmp_path / "a.bin")]
    aria2c = bench.aria2c_command(job)
    assert "--max-tries=21" in aria2c
    assert not [arg for arg in aria2c if arg.startswith(("-x", "-s"))]  # its own defaults
    assert bench.adownload_command(job)[-4:] == ["--segments", "0", "--retries", "20"]
    assert bench.adownload_adaptive_command(job)[-1] == "--adaptive"
    assert "--splits" not in bench.parfive_command(job)
    assert bench.parfive_command(job)[-2:] == ["--retries", "20"]


def test_the_proxy_scenarios_send_adownload_and_curl_through_the_same_proxy(
    tmp_path: Path,
) -> None:
    bench = _bench()
    scenarios = bench.build_scenarios(
        ["proxy-http", "proxy-socks5"], tmp_path, bench.Sizes(1, 1024, 1024, (), ()), 1
    )
    assert [(s.name, s.proxy, s.segments) for s in scenarios] == [
        ("proxy-http", "http", 1),
        ("proxy-socks5", "socks5", 1),
    ]
    files = scenarios[0].files
    proxy = "socks5://127.0.0.1:1080"
    url = "http://127.0.0.1:1/large.bin"
    job = bench.Job((url,), files, tmp_path, tmp_path, 16, 1, "python", proxy=proxy)
    curl = bench.curl_command(job)
    assert curl[curl.index("--proxy") + 1] == proxy
    assert bench.adownload_command(job)[-2:] == ["--proxy", proxy]


def test_the_dask_scenarios_run_adownload_alone_and_on_a_cluster(tmp_path: Path) -> None:
    bench = _bench()
    sizes = bench.Sizes(1, 1024, 1024, (), (), many_count=3)
    scenarios = bench.build_scenarios(["dask-1", "dask-2"], tmp_path, sizes, 1)
    assert [(s.name, len(s.files)) for s in scenarios] == [("dask-1", 3), ("dask-2", 3)]
    assert bench.DASK_SCENARIOS == {"dask-1": 1, "dask-2": 2}
    files = scenarios[0].files
    job = bench.Job(
        ("http://127.0.0.1:1/a",), files, tmp_path, tmp_path, 16, 1, "python",
        scheduler="tcp://127.0.0.1:8786",
    )  # fmt: skip
    assert bench.adownload_dask_command(job)[-2:] == ["--scheduler", "tcp://127.0.0.1:8786"]
    assert "adownload-dask" in bench.TOOL_NAMES


def test_the_metalink_scenarios_data_and_commands(tmp_path: Path) -> None:
    """The Metalink the harness writes reads back as one file with its pieces; the corrupting
    mirror's copy differs in every piece; both tools get the same connections."""
    from adownload import metalink

    bench = _bench()
    docroot = tmp_path / "data"
    docroot.mkdir()
    piece = bench.METALINK_PIECE
    (data,) = bench.make_metalink_file(docroot, 3 * piece + 10, seed=1)
    urls = ["http://127.0.0.1:9/metalink.bin", "http://127.0.0.1:10/metalink.bin"]
    document = bench.write_metalink(tmp_path / "f.meta4", docroot, data, urls)

    (file,) = metalink.parse(document)
    assert (file.name, file.urls, file.size) == ("metalink.bin", tuple(urls), data.size)
    assert file.checksum == f"sha256:{data.sha256}"
    assert file.pieces is not None
    assert len(file.pieces.hashes) == 4
    good, bad = (
        (docroot / "metalink.bin").read_bytes(),
        (docroot / "corrupt/metalink.bin").read_bytes(),
    )
    assert len(good) == len(bad)
    for start in range(0, len(good), piece):
        assert good[start : start + piece] != bad[start : start + piece]

    job = bench.Job((urls[0],), (data,), tmp_path / "out", tmp_path, 16, 6, sys.executable,
                    metalink=document)  # fmt: skip
    aria2c = bench.aria2c_command(job)
    assert aria2c[aria2c.index("-x6") : aria2c.index("-x6") + 3] == ["-x6", "-s6", "-k1M"]
    assert aria2c[-2:] == ["-M", str(document)]
    ours = bench.adownload_command(job)
    assert ours[-2:] == ["--metalink", str(document)]
    assert ours[ours.index("--segments") + 1] == "6"


def test_the_disk_check_counts_the_outputs_of_each_scenarios_own_tools() -> None:
    main, data, scenarios = _module("main"), _module("data"), _module("scenarios")
    sizes = data.FULL_SIZES
    many = sizes.many_count * _module("common").SMALL_FILE_SIZE
    alone = main.needed_disk(["dask-1"], sizes, ["curl"], 3)  # curl has no dask rows
    both = main.needed_disk(["dask-1"], sizes, ["adownload", "adownload-dask", "curl"], 3)
    assert both - alone == 2 * 3 * many
    everything = main.needed_disk(
        scenarios.SCENARIO_NAMES, sizes, [tool.name for tool in _module("peers").TOOLS], 3
    )
    assert everything < 40 * (1 << 30)  # the whole run fits a disk of 79 GiB free
    assert set(scenarios.SCENARIO_TOOLS) == set(scenarios.SCENARIO_NAMES)


def test_the_object_store_benchmark_checks_and_compares_both_tools() -> None:
    """`benchmarks.stores` at its smallest: both tools fetch, are checked, and are compared."""
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.stores",
            "--repeat",
            "1",
            "--large",
            "2",
            "--small",
            "5",
        ],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("1 x 2 MiB") and " adownload " in line for line in lines)
    assert any(line.startswith("5 x 64 KiB") and " boto3 " in line for line in lines)
    assert sum("adl/boto3" in line for line in lines) == 2


@pytest.mark.parametrize("objects", [[], ["--objects"]], ids=["bare", "objects"])
async def test_the_guarded_loop_saves_whole_files_and_no_short_one(
    tmp_path: Path, objects: list[str]
) -> None:
    """`run_guarded.py`, the benchmark's floor with the guarantees' work: whole files at their
    names, no `.part` left, a file already there left alone, and a body shorter than its
    Content-Length never at its final name."""
    bodies = {f"f{n}.bin": hashlib.sha256(str(n).encode()).digest() * (100 + n) for n in range(5)}

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        name = request.match_info["name"]
        if name == "short.bin":
            response = aiohttp.web.StreamResponse(headers={"Content-Length": "1000"})
            await response.prepare(request)
            await response.write(b"x" * 10)
            request.transport.close()  # type: ignore[union-attr]
            return response
        return aiohttp.web.Response(body=bodies[name])

    app = aiohttp.web.Application()
    app.router.add_get("/{name}", handler)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "f0.bin").write_bytes(b"mine")
    async with serve_app(app) as port:
        urls = tmp_path / "urls.txt"
        names = [*bodies, "short.bin"]
        urls.write_text("".join(f"http://127.0.0.1:{port}/{name}\n" for name in names))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BENCHMARKS / "run_guarded.py"),
            str(urls),
            str(dest),
            "-j",
            "3",
            *objects,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert b"short.bin" in err
    assert sorted(p.name for p in dest.iterdir()) == sorted(bodies)
    assert (dest / "f0.bin").read_bytes() == b"mine"
    for name in list(bodies)[1:]:
        assert (dest / name).read_bytes() == bodies[name]
