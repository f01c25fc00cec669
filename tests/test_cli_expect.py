"""The command line as wget, curl and aria2c users try it: `-O -`, `-N`, `--spider`, `-c` on a
shorter file, `-C -`, `-L`, one URL per error line, and the mirror's `--delete` tidying up.

Each test runs the real command in a subprocess against a server on 127.0.0.1 and checks the
bytes on disk, the files that must not exist, the lines printed and the exit status.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from .cli_support import COMMAND, cli_env, run_cli
from .servers import FaultServer
from .support import listing, payload, serve_app, serve_in_thread

OLD = 1_600_000_000  # a modification time in the past, for the server's files


class Static:
    """aiohttp's own static file handler over a directory: Range, If-Range, If-Modified-Since
    and 304 as a real server answers them; `requests` logs each request's headers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = ""
        self.requests: list[dict[str, str]] = []

    def put(self, name: str, data: bytes, mtime: float = OLD) -> str:
        path = self.root / name
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
        return f"{self.base}/{name}"

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Static]:
        @web.middleware
        async def log(
            request: web.Request,
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        ) -> web.StreamResponse:
            self.requests.append(dict(request.headers))
            return await handler(request)

        app = web.Application(middlewares=[log])
        app.router.add_static("/", self.root)
        async with serve_app(app) as port:
            self.base = f"http://127.0.0.1:{port}"
            yield self


@pytest.fixture
def static(tmp_path: Path) -> Iterator[Static]:
    root = tmp_path / "served"
    root.mkdir()
    with serve_in_thread(Static(root).serving) as server:
        yield server


@pytest.fixture
def here(tmp_path: Path) -> Path:
    directory = tmp_path / "here"
    directory.mkdir()
    return directory


# --- -O - ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-O", "-o"])
def test_dash_o_dash_writes_the_body_to_standard_output_and_messages_to_stderr(
    static: Static, here: Path, flag: str
) -> None:
    data = b"line of text\n" * 25_000
    url = static.put("a.txt", data)
    result = run_cli(flag, "-", url, cwd=here)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == data
    assert listing(here) == []  # no file named "-"
    assert f"wrote {url} to standard output (317.4 KiB in " in result.stderr
    assert "1 downloaded, 0 skipped, 0 failed" in result.stderr


def test_dash_o_dash_body_is_byte_exact(static: Static, here: Path) -> None:
    data = payload("b.bin", 2_000_000)
    url = static.put("b.bin", data)
    result = subprocess.run(
        [*COMMAND, "-q", "-O", "-", url], cwd=here, capture_output=True, timeout=30, env=cli_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == data
    assert result.stderr == b""
    assert listing(here) == []


# --- -N ------------------------------------------------------------------------------------


def test_timestamping_fetches_only_a_newer_copy_and_keeps_the_servers_time(
    static: Static, here: Path
) -> None:
    url = static.put("t.bin", b"first version")
    first = run_cli("-N", url, cwd=here)
    assert first.returncode == 0, first.stderr
    assert (here / "t.bin").read_bytes() == b"first version"
    assert os.stat(here / "t.bin").st_mtime == OLD  # the server's Last-Modified

    again = run_cli("-N", url, cwd=here)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"skipped {here / 't.bin'} (not modified)\n".replace(f"{here}/", "")
    assert static.requests[-1]["If-Modified-Since"] == email.utils.formatdate(OLD, usegmt=True)

    static.put("t.bin", b"second, newer version", mtime=OLD + 3600)
    newer = run_cli("--timestamping", url, cwd=here)
    assert newer.returncode == 0, newer.stderr
    assert newer.stdout.startswith("saved t.bin (21 B in ")
    assert (here / "t.bin").read_bytes() == b"second, newer version"
    assert os.stat(here / "t.bin").st_mtime == OLD + 3600
    assert listing(here) == ["t.bin"]


def test_a_304_removes_a_stale_part_of_ours(static: Static, here: Path) -> None:
    url = static.put("s.bin", b"current")
    assert run_cli("-N", url, cwd=here).returncode == 0
    # A part (with the state that makes it ours) left by an interrupted download of a
    # version that never became current.
    (here / "s.bin.part").write_bytes(b"stale")
    state = {"version": 2, "url": url, "length": 100, "etag": None, "last_modified": None}
    (here / "s.bin.part.state").write_text(json.dumps(state))
    result = run_cli("-N", url, cwd=here)
    assert result.returncode == 0, result.stderr
    assert "not modified" in result.stdout
    assert listing(here) == ["s.bin"]
    assert (here / "s.bin").read_bytes() == b"current"


# --- --spider ------------------------------------------------------------------------------


def test_spider_checks_urls_and_downloads_nothing(
    static: Static, here: Path, threaded_faults: FaultServer
) -> None:
    url = static.put("there.bin", payload("there.bin", 5000))
    gone = threaded_faults.url("/f/gone.bin")
    threaded_faults.plan("/f/gone.bin", ["status:404"])
    ok = run_cli("--spider", url, cwd=here)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"found {url} (HTTP 200, 4.9 KiB)\n"
    assert "1 found, 0 failed (checked, nothing downloaded)" in ok.stderr
    assert listing(here) == []

    mixed = run_cli("--spider", url, gone, cwd=here)
    assert mixed.returncode == 1
    assert f"failed {gone}: HTTP 404 Not Found" in mixed.stderr
    assert "1 found, 1 failed" in mixed.stderr
    assert listing(here) == []


def test_spider_reads_input_files_too(static: Static, here: Path) -> None:
    urls = [static.put(f"{n}.txt", b"x" * n) for n in (1, 2)]
    (here / "list.txt").write_text("\n".join(urls) + "\n")
    result = run_cli("--spider", "-i", "list.txt", cwd=here)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        f"found {urls[0]} (HTTP 200, 1 B)",
        f"found {urls[1]} (HTTP 200, 2 B)",
    ]
    assert listing(here) == ["list.txt"]


# --- -c on a shorter file at the final name --------------------------------------------------


def test_continue_finishes_a_shorter_file_that_a_checksum_vouches_for(
    static: Static, here: Path
) -> None:
    data = payload("c.bin", 50_000)
    url = static.put("c.bin", data)
    (here / "c.bin").write_bytes(data[:1000])  # what an interrupted wget leaves
    digest = hashlib.sha256(data).hexdigest()
    for flags in (["-c"], ["-C", "-"]):
        (here / "c.bin").write_bytes(data[:1000])
        result = run_cli(*flags, "--checksum", f"sha256:{digest}", url, cwd=here)
        assert result.returncode == 0, result.stderr
        assert (here / "c.bin").read_bytes() == data
        assert static.requests[-1]["Range"] == "bytes=1000-"
        assert listing(here) == ["c.bin"]


def test_continue_without_proof_says_why_and_keeps_the_file(static: Static, here: Path) -> None:
    data = payload("d.bin", 50_000)
    url = static.put("d.bin", data)
    (here / "d.bin").write_bytes(data[:1000])
    result = run_cli("-c", url, cwd=here)
    assert result.returncode == 1
    assert (
        f"failed {url}: d.bin exists and is not continued: nothing shows that its 1000 bytes"
        " are the start of this file: give its checksum to continue it, or replace it"
    ) in result.stderr
    assert (here / "d.bin").read_bytes() == data[:1000]
    assert listing(here) == ["d.bin"]


def test_continue_where_the_server_sends_no_ranges_says_why(
    threaded_faults: FaultServer, here: Path
) -> None:
    url = threaded_faults.url("/f/e.bin", size=5000, ranges="none")
    data = threaded_faults.content("/f/e.bin", 5000)
    (here / "e.bin").write_bytes(data[:1000])
    digest = hashlib.sha256(data).hexdigest()
    result = run_cli("-c", "--checksum", f"sha256:{digest}", url, cwd=here)
    assert result.returncode == 1
    assert "e.bin exists and is not continued: the server does not send ranges of it" in (
        result.stderr
    )
    assert (here / "e.bin").read_bytes() == data[:1000]
    assert listing(here) == ["e.bin"]


def test_continue_skips_a_complete_file_and_refuses_a_longer_one(
    static: Static, here: Path
) -> None:
    data = payload("f.bin", 4000)
    url = static.put("f.bin", data)
    (here / "f.bin").write_bytes(data)
    complete = run_cli("-c", url, cwd=here)
    assert complete.returncode == 0, complete.stderr
    assert complete.stdout == "skipped f.bin (already there)\n"

    (here / "f.bin").write_bytes(data + b"more")
    longer = run_cli("-c", url, cwd=here)
    assert longer.returncode == 1
    assert "f.bin exists and is not continued: it is 4004 bytes, longer than the server's 4000" in (
        longer.stderr
    )
    assert (here / "f.bin").read_bytes() == data + b"more"
    assert listing(here) == ["f.bin"]


# --- small things ----------------------------------------------------------------------------


def test_dash_l_is_accepted_as_curl_users_type_it(static: Static, here: Path) -> None:
    url = static.put("l.bin", b"followed")
    result = run_cli("-L", url, cwd=here)
    assert result.returncode == 0, result.stderr
    assert (here / "l.bin").read_bytes() == b"followed"


def test_an_error_line_names_the_url_once(here: Path) -> None:
    with socket.socket() as unused:  # a loopback port that nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    result = run_cli("--tries", "1", url, cwd=here)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if url in line]
    assert lines, result.stderr
    assert all(line.count(url) == 1 for line in lines), lines
    assert f"failed {url}: cannot connect: " in result.stderr
    assert listing(here) == []


def test_a_host_without_a_scheme_gets_a_hint(here: Path) -> None:
    result = run_cli("example.org/a.zip", cwd=here)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("did you mean http://example.org/a.zip?")
    (here / "urls.txt").write_text("http://127.0.0.1:9/a\n")
    result = run_cli("urls.txt", cwd=here)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("to read URLs from the file urls.txt, use -i urls.txt")
    assert listing(here) == ["urls.txt"]


def test_mirror_delete_removes_the_directories_it_emptied(here: Path, tmp_path: Path) -> None:
    served = tmp_path / "site"
    (served / "keep").mkdir(parents=True)
    (served / "old" / "deeper").mkdir(parents=True)
    (served / "keep" / "k.txt").write_text("k")
    (served / "old" / "deeper" / "o.txt").write_text("o")
    (served / "old" / "p.txt").write_text("p")
    lines = ["keep/k.txt", "old/deeper/o.txt", "old/p.txt"]

    def listed(names: list[str], base: str) -> str:
        return "".join(f"{base}/{name}\n" for name in names)

    with serve_in_thread(Static(served).serving) as server:
        (tmp_path / "list.txt").write_text(listed(lines, server.base))
        dest = here / "mirror"
        first = run_cli("mirror", tmp_path / "list.txt", dest, cwd=here)
        assert first.returncode == 0, first.stderr
        assert files(dest) == ["keep/k.txt", "old/deeper/o.txt", "old/p.txt"]
        (dest / "keep" / "mine.txt").write_text("a file of the user's")
        (tmp_path / "list.txt").write_text(listed(["keep/z.txt"], server.base))
        (served / "keep" / "z.txt").write_text("z")
        second = run_cli("mirror", "--delete", tmp_path / "list.txt", dest, cwd=here)
        assert second.returncode == 0, second.stderr
    assert files(dest) == ["keep/mine.txt", "keep/z.txt"]
    assert not (dest / "old").exists()  # emptied by the deletions, so removed
    assert sorted(p.name for p in dest.iterdir()) == [".adownload-mirror.sqlite", "keep"]


def files(directory: Path) -> list[str]:
    """The files a mirror put below `directory`, without its own state."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and not p.name.startswith(".adownload-mirror")
    )
