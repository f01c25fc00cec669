"""Start-up: each entry point imports only what runs.

`adownload --version` and `--help` need no HTTP client; `import adownload` defers aiohttp until
a downloader opens; a cached `fetch` with a checksum answers from the cache without it. Each
case runs in a fresh interpreter and reads `sys.modules` there.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adownload import Cache, Downloader

from .support import payload, serve_app

#: Modules an entry point that does not download has no use for.
HEAVY = (
    "aiohttp",
    "aiohttp_socks",
    "aioftp",
    "aiofiles",
    "rich",
    "multidict._multidict_py",
    "obstore",
    "configparser",  # for AWS's shared files only
)


def _imported(code: str, *args: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has imported after running `code`."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def _command(*args: str) -> str:
    """Code that runs the command with `args`, its output swallowed, and checks it succeeded."""
    return (
        "import contextlib, io\n"
        "from adownload.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        code = main({list(args)!r})\n"
        "    except SystemExit as exc:  # argparse's --help\n"
        "        code = exc.code\n"
        "assert code == 0, code\n"
    )


def test_import_adownload_imports_no_http_client() -> None:
    assert _imported("import adownload") == []


def test_making_a_downloader_imports_no_http_client_until_it_opens() -> None:
    code = "import adownload\ndl = adownload.Downloader(dest='.', proxy='http://127.0.0.1:9')"
    assert _imported(code) == []


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_the_command_answers_version_and_help_without_an_http_client(flag: str) -> None:
    assert _imported(_command(flag)) == []


@pytest.mark.parametrize("command", ["mirror", "cache"])
def test_the_subcommands_help_imports_no_http_client(command: str) -> None:
    assert _imported(_command(command, "--help")) == []


async def test_a_cached_fetch_with_a_checksum_imports_no_http_client(tmp_path: Path) -> None:
    from aiohttp import web

    data = payload("table.csv", 5000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def table(request: web.Request) -> web.Response:
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/table.csv", table)
    cache = Cache(tmp_path / "cache")
    async with serve_app(app) as port:
        url = f"http://127.0.0.1:{port}/table.csv"
        async with Downloader() as dl:
            saved = await dl.fetch(url, checksum=digest, cache=cache)
    # The server is gone: the answer can only come from the cache.
    code = (
        "import adownload\n"
        f"path = adownload.fetch({url!r}, checksum={digest!r}, cache={str(cache.root)!r})\n"
        f"assert str(path) == {str(saved)!r}, path\n"
    )
    assert _imported(code) == []
    assert saved.read_bytes() == data
