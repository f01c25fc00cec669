"""The fixtures: the test servers (see `servers.py`) started and stopped per test, with checks
that no adownload task or file handle outlives a test, and a few small environments."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from adownload._protocols import splice as _splice

from .servers import FaultServer, RawServer, Server, Stats, serve, serve_faults, serve_raw
from .support import check_no_leaks, open_files_under, serve_in_thread, splice_threads

#: Each test file's tier, set as a marker (`pytest -m unit`, `-m "not system"`): `unit` tests
#: need no socket and no subprocess; `system` tests run the console script, a Dask cluster, real
#: proxies, nginx, chaos, the README and the examples; `static` is ruff, mypy and the import
#: contract, which CI runs as a step of its own (`pytest -m static`). Every other file is
#: `integration`: the library against in-process servers on loopback.
TIERS = {
    "unit": {
        "test_units.py",
        "test_engine_units.py",
        "test_fuzz.py",
        "test_shards.py",
        "test_cli_display_units.py",
        "test_autoindex.py",
        "test_engine_scripted.py",
    },
    "system": {
        "test_cli.py",
        "test_cli_expect.py",
        "test_cli_input.py",
        "test_cli_network.py",
        "test_cli_tls.py",
        "test_cli_tty.py",
        "test_habits.py",
        "test_distributed.py",
        "test_workers.py",
        "test_proxy.py",
        "test_chaos.py",
        "test_benchmarks.py",
        "test_docs.py",
        "test_stores.py",
        "test_examples.py",
        "test_readme.py",
        "test_startup.py",
    },
    "static": {"test_static_checks.py"},
}


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the package once, before the test workers start: the hundreds of
    interpreters the tests start (the command, worker processes, Dask workers, fresh
    interpreters for start-up) then import it as from a wheel, instead of each compiling its
    hundred modules from source again (with PYTHONDONTWRITEBYTECODE, as CI's environment sets
    it, Python caches none of them itself): 0.1-0.15 s an interpreter here."""
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller did it
    import compileall

    import adownload

    compileall.compile_dir(Path(adownload.__file__).parent, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        tier = next((tier for tier, files in TIERS.items() if name in files), "integration")
        item.add_marker(tier)


@pytest.fixture(params=["read", "splice"])
def body_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per way a body can reach the file: through Python (the read path) and,
    where Linux has splice(2), through the kernel copy for every plain body with a length, however
    small (`adownload._protocols.splice`; normally only bodies of 4 MiB or more take it).

    A module opts in with `pytestmark = pytest.mark.usefixtures("body_path")`.
    """
    if request.param == "splice":
        if not _splice.available:
            pytest.skip("no os.splice on this platform")
        monkeypatch.setattr(_splice, "SPLICE_MIN", 1)
    else:
        monkeypatch.setattr(_splice, "SPLICE_MIN", 1 << 62)
    return str(request.param)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """The test server; on teardown, checks that no adownload task or file handle leaked."""
    async with serve(Stats()) as running:
        yield running
        await check_no_leaks()
    assert open_files_under(tmp_path) == [], "file handles leaked"


@pytest.fixture
def threaded_server(tmp_path: Path) -> Iterator[Server]:
    """The same server in a thread of its own, for tests of the blocking API."""
    with serve_in_thread(lambda: serve(Stats())) as running:
        yield running
    assert open_files_under(tmp_path) == []


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with the openssl command."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    directory = tmp_path / "dest"
    directory.mkdir()
    return directory


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A URL whose TCP connect never completes: a listening socket with a full backlog."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    # Fill the accept queue; further SYNs are dropped and connect() hangs.
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{port}/x.bin"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
async def faults(tmp_path: Path) -> AsyncIterator[FaultServer]:
    """The fault server; on teardown, checks that no adownload task or file handle leaked."""
    async with serve_faults() as server:
        yield server
        await check_no_leaks()
    assert open_files_under(tmp_path) == [], "file handles leaked"


@pytest.fixture
async def raw(tmp_path: Path) -> AsyncIterator[RawServer]:
    """The raw socket server; the same leak checks as `faults`."""
    async with serve_raw() as server:
        yield server
        await check_no_leaks()
    assert open_files_under(tmp_path) == [], "file handles leaked"


@pytest.fixture
def threaded_faults(tmp_path: Path) -> Iterator[FaultServer]:
    """The fault server in a thread of its own, for tests that run adownload in a subprocess.

    Plans and contents may be set from the test's thread before the requests they affect.
    """
    with serve_in_thread(serve_faults) as running:
        yield running
    assert open_files_under(tmp_path) == []


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_splice.SpliceCopy]]:
    """Every kernel copy (`SpliceCopy`) made during the test; and a check that none left a
    thread behind."""
    made: list[_splice.SpliceCopy] = []
    real = _splice.SpliceCopy

    class Recorded(real):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(_splice, "SpliceCopy", Recorded)
    yield made
    assert splice_threads() == [], "a splice thread outlived its download"
