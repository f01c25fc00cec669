"""As users type it, round 3: what wget, curl, aria2c and pooch users expect, against servers
no one on this project wrote (a real nginx here) and through the console script."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from .cli_support import run_cli
from .nginx_server import Nginx, nginx  # noqa: F401 (the fixture)
from .servers import FaultServer
from .support import listing, payload, serve_app

OLD = 1_767_225_600  # 2026-01-01 00:00:00 UTC: the server's copy


def _serve_file(server: Nginx, name: str, data: bytes) -> None:
    path = server.root / name
    path.write_bytes(data)
    os.utime(path, (OLD, OLD))


def test_timestamping_keeps_a_local_copy_newer_than_nginxs(
    nginx: Nginx,  # noqa: F811
    tmp_path: Path,
) -> None:
    # nginx's default `if_modified_since exact` answers 200 unless the dates are equal: the
    # command must compare Last-Modified itself, as wget -N and curl -z do.
    _serve_file(nginx, "a.zip", b"the server's copy")
    work = tmp_path / "work"
    work.mkdir()
    mine = work / "a.zip"
    mine.write_bytes(b"mine, newer")  # touched now
    newer = run_cli("-N", "-o", "a.zip", nginx.url("/a.zip"), cwd=work)
    assert newer.returncode == 0, newer.stderr
    assert "skipped" in newer.stdout
    assert "not modified" in newer.stdout
    assert mine.read_bytes() == b"mine, newer"
    assert listing(work) == ["a.zip"]
    # An older local copy is replaced, and takes the server's time.
    os.utime(mine, (OLD - 86_400, OLD - 86_400))
    older = run_cli("-N", "-o", "a.zip", nginx.url("/a.zip"), cwd=work)
    assert older.returncode == 0, older.stderr
    assert "saved" in older.stdout
    assert mine.read_bytes() == b"the server's copy"
    assert int(mine.stat().st_mtime) == OLD
    # The same date: nginx answers 304 itself.
    again = run_cli("-N", "-o", "a.zip", nginx.url("/a.zip"), cwd=work)
    assert again.returncode == 0, again.stderr
    assert "not modified" in again.stdout
    assert listing(work) == ["a.zip"]


def test_a_mirror_keeps_a_hand_placed_file_newer_than_nginxs(
    nginx: Nginx,  # noqa: F811
    tmp_path: Path,
) -> None:
    _serve_file(nginx, "a.txt", b"upstream a\n")
    _serve_file(nginx, "b.txt", b"upstream b\n")
    dest = tmp_path / "mirror"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"placed here, newer\n")
    result = run_cli("mirror", nginx.url("/html/"), dest, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (dest / "a.txt").read_bytes() == b"placed here, newer\n"
    assert (dest / "b.txt").read_bytes() == b"upstream b\n"
    again = run_cli("mirror", nginx.url("/html/"), dest, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 new" in again.stdout + again.stderr


def test_a_mirror_of_a_file_url_mirrors_that_one_file(
    nginx: Nginx,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = os.urandom(3 << 20)
    _serve_file(nginx, "python-docs.zip", data)
    _serve_file(nginx, "notes.txt", b"plain text, no listing\n")
    dest = tmp_path / "mirror"
    for name in ("python-docs.zip", "notes.txt"):
        result = run_cli("mirror", nginx.url(f"/{name}"), dest, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "1 new" in result.stdout + result.stderr
    assert (dest / "python-docs.zip").read_bytes() == data
    assert (dest / "notes.txt").read_bytes() == b"plain text, no listing\n"
    again = run_cli("mirror", nginx.url("/python-docs.zip"), dest, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1 unchanged" in again.stdout + again.stderr


def test_nginx_json_and_xml_listings_are_mirrored_as_listings(
    nginx: Nginx,  # noqa: F811
    tmp_path: Path,
) -> None:
    _serve_file(nginx, "a.txt", b"a\n")
    (nginx.root / "sub dir").mkdir()
    _serve_file(nginx, "sub dir/b é.txt", b"b\n")
    for form in ("json", "xml"):
        dest = tmp_path / form
        result = run_cli("mirror", nginx.url(f"/{form}/"), dest, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "2 new" in result.stdout + result.stderr
        assert (dest / "a.txt").read_bytes() == b"a\n"
        assert (dest / "sub dir" / "b é.txt").read_bytes() == b"b\n"


def test_a_directory_url_that_is_no_listing_is_a_clear_error(tmp_path: Path) -> None:
    from .support import serve_in_thread

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok: a health check\n")

    async def serve() -> AsyncIterator[int]:
        app = web.Application()
        app.router.add_get("/api/", health)
        async with serve_app(app) as port:
            yield port

    with serve_in_thread(contextlib.asynccontextmanager(serve)) as port:
        result = run_cli("mirror", f"http://127.0.0.1:{port}/api/", tmp_path / "d", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "is no directory listing" in result.stderr
    assert listing(tmp_path / "d") == [".adownload-mirror.sqlite"]


# --- what people type --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["-O"], ["-LO"], ["-L", "-O"], ["-OL"], ["-sSLO"], ["-fsSLO"], ["-fsSL", "-O"]],
    ids=" ".join,
)
def test_curls_remote_name_spellings_download_under_the_urls_name(
    threaded_faults: FaultServer, tmp_path: Path, args: list[str]
) -> None:
    url = threaded_faults.url("/f/python-docs.zip", size=5000)
    result = run_cli(*args, url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["python-docs.zip"]
    assert (tmp_path / "python-docs.zip").read_bytes() == payload("python-docs.zip", 5000)
    if "s" in "".join(args):
        assert result.stdout == ""  # silent


def test_curls_fail_silent_show_error_still_says_what_failed(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    threaded_faults.plan("/f/gone.zip", ["status:404"])
    result = run_cli("-fsSLO", threaded_faults.url("/f/gone.zip"), cwd=tmp_path)
    assert result.returncode == 1
    assert "404" in result.stderr
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("argv", "split", "output", "quiet"),
    [
        (["-s", "4", "URL"], 4, None, False),  # aria2c's split
        (["-s", "URL"], None, None, True),  # curl's silent
        (["-O", "a.zip", "URL"], None, "a.zip", False),  # wget's output document
        (["-O", "-", "URL"], None, "-", False),  # standard output
        (["-o", "b.zip", "URL"], None, "b.zip", False),
        (["-sSLO", "URL"], None, None, True),
    ],
)
def test_one_letter_two_tools_the_value_decides(
    argv: list[str], split: int | None, output: str | None, quiet: bool
) -> None:
    from adownload._cli.flags import build_parser
    from adownload._cli.shared import curl_spellings

    argv = [a.replace("URL", "https://127.0.0.1/a.zip") for a in argv]
    args = build_parser().parse_args(curl_spellings(argv))
    if split is not None:
        assert args.split == split
    assert args.output == output
    assert args.quiet is quiet
    assert args.urls == ["https://127.0.0.1/a.zip"]


@pytest.mark.parametrize(
    ("flag", "existing", "quiet"),
    [
        ("--auto-file-renaming=false", "skip", False),  # renaming off: the default policy
        ("--auto-file-renaming=true", "rename", False),
        ("--allow-overwrite=true", "overwrite", False),
        ("--allow-overwrite=false", "skip", False),
        ("--quiet=true", "skip", True),
        ("--quiet=false", "skip", False),
    ],
)
def test_aria2c_boolean_values_mean_what_they_say(flag: str, existing: str, quiet: bool) -> None:
    from adownload._cli.args import parse_options

    options = parse_options([flag, "https://127.0.0.1/a.zip"])
    assert options.download.existing.value == existing
    assert options.quiet is quiet


def test_a_boolean_value_that_is_neither_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("--auto-file-renaming=maybe", "https://127.0.0.1:9/a.zip", cwd=tmp_path)
    assert result.returncode == 2
    assert "--auto-file-renaming takes true or false, not 'maybe'" in result.stderr


def test_auto_file_renaming_false_keeps_the_file_there(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    (tmp_path / "a.zip").write_bytes(b"mine")
    url = threaded_faults.url("/f/a.zip", size=100)
    result = run_cli("--auto-file-renaming=false", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["a.zip"]
    assert (tmp_path / "a.zip").read_bytes() == b"mine"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("http//127.0.0.1/a", "http://127.0.0.1/a"),
        ("https//127.0.0.1/a", "https://127.0.0.1/a"),
        ("ftp//x/y", "ftp://x/y"),
        ("http:/127.0.0.1/a", "http://127.0.0.1/a"),
        ("127.0.0.1:8000/a", "http://127.0.0.1:8000/a"),
    ],
)
def test_a_url_that_lost_part_of_its_scheme_gets_the_right_hint(
    tmp_path: Path, typed: str, meant: str
) -> None:
    result = run_cli(typed, cwd=tmp_path)
    assert result.returncode == 2
    assert f"did you mean {meant}?" in result.stderr
    assert listing(tmp_path) == []


def test_a_browser_exported_cookie_file_loads_and_says_what_it_skipped(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        "# Netscape HTTP Cookie File\n"
        "this line is a browser exporter's note, no cookie\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t4102444800.5\tsid\tabc\n"
    )
    result = run_cli(
        "-b", jar, threaded_faults.url("/f/a.bin", size=10), "-d", tmp_path / "d", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "adownload: warning:" in result.stderr
    assert "skipped 1 line that is no cookie (line 2: not 7 fields" in result.stderr
    assert threaded_faults.hits("/f/a.bin")[0].headers["Cookie"] == "sid=abc"


def test_help_names_ftp_the_cache_command_and_the_curl_rule(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "http, https or ftp URLs" in text
    assert "adownload cache list" in text
    assert "curl's spellings work as curl users mean them" in text


# --- the mirror as wget -m users run it ---------------------------------------------------


def test_the_mirror_takes_wgets_np_nh_and_the_download_commands_limits_and_json(
    nginx: Nginx,  # noqa: F811
    tmp_path: Path,
) -> None:
    import json

    _serve_file(nginx, "a.txt", b"a\n")
    _serve_file(nginx, "b.txt", b"bb\n")
    dest = tmp_path / "mirror"
    args = ["mirror", "-np", "-nH", "--limit-rate", "10M", "--tries", "3", "--json"]
    result = run_cli(*args, nginx.url("/html/"), dest, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["type"], Path(r["path"]).name) for r in records[:-1]) == [
        ("new", "a.txt"),
        ("new", "b.txt"),
    ]
    assert records[-1]["type"] == "summary"
    assert (records[-1]["new"], records[-1]["failed"], records[-1]["bytes"]) == (2, 0, 5)
    assert (dest / "b.txt").read_bytes() == b"bb\n"


def test_the_mirror_parses_rate_and_retries_as_the_download_command() -> None:
    from adownload._cli.mirror_flags import parse_options

    options = parse_options(
        ["--limit-rate", "1M", "--retry", "4", "--retry-wait", "0.5", "http://127.0.0.1/", "d"]
    )
    assert options.limits.rate == 1 << 20
    assert (options.download.retry.attempts, options.download.retry.backoff) == (5, 0.5)


@pytest.mark.parametrize(("tries", "ok"), [("1", False), ("2", True)])
def test_the_mirrors_tries_retry_a_busy_server(
    threaded_faults: FaultServer, tmp_path: Path, tries: str, ok: bool
) -> None:
    threaded_faults.plan("/f/busy.bin", ["status:503:0"])
    (tmp_path / "list.txt").write_text(threaded_faults.url("/f/busy.bin", size=300) + "\n")
    result = run_cli("mirror", "--tries", tries, "--retry-wait", "0", "list.txt", "d", cwd=tmp_path)
    assert result.returncode == (0 if ok else 1), result.stderr
    assert (tmp_path / "d" / "f" / "busy.bin").exists() is ok  # the URL's path below d
