"""Cookies: the jar (also for hosts named by IP address), and `cookies.txt` files in and out."""

from __future__ import annotations

import stat
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from aiohttp import web

from adownload import Downloader, InvalidRequestError, StorageError
from adownload._protocols.http.cookies import read_cookies

from .servers import FaultServer
from .support import listing, serve_app


def _cookies_txt(now: int) -> str:
    """A cookies.txt whose expiries are an hour from `now` (and one an hour before)."""
    return f"""\
# HTTP cookie file.
# (a header as wget writes it, which the standard library's reader refuses)
127.0.0.1\tFALSE\t/\tFALSE\t{now + 3600}\tsid\tabc123
.127.0.0.1\tTRUE\t/f\tFALSE\t0\tsession\tyes
#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t{now + 3600}\thidden\th1
127.0.0.1\tFALSE\t/\tFALSE\t{now - 3600}\told\tgone
127.0.0.1\tFALSE\t/\tTRUE\t{now + 3600}\thttps_only\tyes
127.0.0.1\tFALSE\t/\tFALSE\t{now + 3600}\tpath\treserved
127.0.0.2\tFALSE\t/\tFALSE\t{now + 3600}\tother\thost
"""


def _sent(header: str | None) -> dict[str, str]:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(header or "")
    return {name: morsel.value for name, morsel in cookie.items()}


async def test_a_cookies_txt_file_is_sent_to_the_hosts_and_paths_it_names(
    faults: FaultServer, dest: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text(_cookies_txt(int(time.time())))
    async with Downloader(dest=dest, cookies=path) as dl:
        await dl.download(faults.url("/f/a.bin"))
        await dl.download(faults.url("/r/x", to="/f/b.bin"), dest=dest / "b.bin")
        await dl.download(faults.alt_url("/f/c.bin"))
    assert _sent(faults.hits("/f/a.bin")[0].headers.get("Cookie")) == {
        "sid": "abc123",
        "session": "yes",
        "hidden": "h1",
    }
    # /r/ is outside the session cookie's path /f.
    assert _sent(faults.hits("/r/x")[0].headers.get("Cookie")) == {"sid": "abc123", "hidden": "h1"}
    assert _sent(faults.hits("/f/c.bin")[0].headers.get("Cookie")) == {"other": "host"}
    assert listing(dest) == ["a.bin", "b.bin", "c.bin"]


@pytest.fixture
async def cookie_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def login(request: web.Request) -> web.Response:
        seen.append(_sent(request.headers.get("Cookie")))
        response = web.Response(body=b"welcome")
        response.set_cookie("token", "t0k", max_age=600, httponly=True)
        response.set_cookie("pref", "dark")
        return response

    async def file(request: web.Request) -> web.Response:
        seen.append(_sent(request.headers.get("Cookie")))
        if request.cookies.get("token") != "t0k":
            return web.Response(status=403)
        return web.Response(body=b"members only")

    app = web.Application()
    app.router.add_get("/login", login)
    app.router.add_get("/files/{name}", file)
    async with serve_app(app) as port:
        yield f"http://127.0.0.1:{port}", seen


async def test_cookies_set_by_a_server_on_an_ip_host_are_kept_and_saved(
    cookie_server: tuple[str, list[dict[str, str]]], dest: Path, tmp_path: Path
) -> None:
    base, seen = cookie_server
    saved = tmp_path / "jar.txt"
    now = int(time.time())  # the test's own clock: the suite may have run for minutes
    async with Downloader(dest=dest) as dl:
        await dl.download(f"{base}/login", dest=dest / "login.html")
        await dl.download(f"{base}/files/report.pdf")
        assert dl.save_cookies(saved) == 2
    assert (dest / "report.pdf").read_bytes() == b"members only"
    assert seen == [{}, {"token": "t0k", "pref": "dark"}]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    lines = [line.split("\t") for line in saved.read_text().splitlines() if "\t" in line]
    by_name = {fields[5]: fields for fields in lines}
    assert by_name["token"][0] == "#HttpOnly_127.0.0.1"
    assert by_name["token"][1] == "FALSE"  # host-only, as it was set
    assert now + 500 < int(by_name["token"][4]) <= now + 700
    assert by_name["pref"][4] == "0"  # a session cookie
    # Read back by a new downloader, as by curl -b or wget --load-cookies.
    async with Downloader(dest=dest / "again", cookies=saved) as dl:
        await dl.download(f"{base}/files/report.pdf")
    assert seen[-1] == {"token": "t0k", "pref": "dark"}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("127.0.0.1\tFALSE\t/\n", "line 1: not 7 fields separated by tabs"),
        ("# ok\n127.0.0.1\tFALSE\t/\tFALSE\tsoon\ta\tb\n", "line 2: the expiry 'soon'"),
        ("127.0.0.1\tFALSE\t/\tFALSE\t0\tbad name\tb\n", "line 1: 'bad name' is not a valid"),
        ("127.0.0.1\tFALSE\t/\tFALSE\t\u00b2\ta\tb\n", "line 1: the expiry '\u00b2'"),
    ],
)
def test_a_line_that_is_no_cookie_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, why: str
) -> None:
    # As curl, wget and aria2c: browser exporters write such lines; the rest of the file counts.
    path = tmp_path / "cookies.txt"
    path.write_text(text + "127.0.0.1\tFALSE\t/\tFALSE\t0\tkept\tyes\n")
    with caplog.at_level("WARNING", logger="adownload"):
        cookies = read_cookies(path)
    assert [(morsel.key, morsel.value) for morsel, _ in cookies] == [("kept", "yes")]
    assert "skipped 1 line that is no cookie" in caplog.text
    assert why in caplog.text
    assert path.read_text().startswith(text)  # untouched
    with pytest.raises(InvalidRequestError, match="cannot read the cookie file"):
        Downloader(cookies=tmp_path / "missing.txt")


def test_fractional_expiries_and_empty_values_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text(
        "127.0.0.1\tFALSE\t/\tFALSE\t4102444800.25\tfraction\tx\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tempty\t\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tstripped\n"
    )
    cookies = {morsel.key: morsel for morsel, _ in read_cookies(path)}
    assert set(cookies) == {"fraction", "empty", "stripped"}
    assert cookies["fraction"]["expires"] == "Fri, 01 Jan 2100 00:00:00 GMT"
    assert cookies["empty"].value == ""


async def test_an_expiry_past_the_year_9999_is_kept_as_that_year(tmp_path: Path) -> None:
    # 13350000000000000: microseconds (some exporters write them) read as seconds.
    path = tmp_path / "cookies.txt"
    path.write_text("127.0.0.1\tFALSE\t/\tFALSE\t13350000000000000\tsid\tv\n")
    cookies = read_cookies(path)
    assert [(morsel.key, morsel.value) for morsel, _ in cookies] == [("sid", "v")]
    assert cookies[0][0]["expires"] == "Fri, 31 Dec 9999 23:59:59 GMT"
    saved = tmp_path / "saved.txt"
    async with Downloader(cookies=path) as dl:
        dl.save_cookies(saved)
    assert read_cookies(saved)[0][0].value == "v"


async def test_saving_cookies_where_it_cannot_be_written_is_a_storage_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    target = tmp_path / "no-such-dir" / "jar.txt"
    async with Downloader(dest=tmp_path) as dl:
        with pytest.raises(StorageError, match="cannot save cookies"):
            dl.save_cookies(target)
    assert listing(tmp_path) == []


def test_cookies_go_with_the_downloaders_own_session_only() -> None:
    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ValueError, match="borrowed session"):
                Downloader(session=session, cookies="cookies.txt")

    import asyncio

    asyncio.run(run())
