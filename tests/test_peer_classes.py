"""The classes of defect peers were bitten by, each as a test against our code: what adownload
does in the case, pinned. (The peers' advisories are named; none of their code is used.)

- curl CVE-2024-11053 and CVE-2025-0167: a `.netrc` login sent on after a redirect, through
  an entry without a password or a bare `default` entry. Here each hop looks up its own host.
- wget2 CVE-2025-69194: a Metalink name that writes outside the directory. Refused before
  anything runs (`test_metalink.py`: `test_a_bad_metalink_file_is_a_usage_error_...`); here at
  the library's level, with nothing written anywhere.
- wget CVE-2010-2252: the name a server chooses through a redirect (`.bashrc`). Files are named
  after the URL asked for (`test_hostile.py` pins the plain case); here the dot file.
- curl CVE-2023-46218: a cookie for a public suffix, in mixed case. Refused (`_cookies.Jar`).
- aiohttp GHSA-h4cc-hm5h-fmm9 (decompression): a gzip bomb stops at `max_size`
  (`test_hostile.py`: `test_a_decompression_bomb_stops_at_the_cap`); concatenated gzip members
  are decoded whole, never cut to the first member.
"""

from __future__ import annotations

import base64
import gzip
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from adownload import Downloader, metalink
from adownload._protocols.http.cookies import new_jar

from .servers import FaultServer
from .support import listing, payload, serve_app


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "second",
    [
        "machine 127.0.0.2 login bob\n",  # CVE-2024-11053: a login without a password
        "machine 127.0.0.2\n",  # neither
        "default\n",  # CVE-2025-0167: a default entry without a login or password
        "",  # no entry at all
    ],
    ids=["login-only", "empty-machine", "empty-default", "none"],
)
async def test_a_netrc_password_never_follows_a_redirect_to_another_host(
    faults: FaultServer, tmp_path: Path, second: str
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login alice password s3cret\n{second}")
    target = faults.alt_url("/f/t.bin", size=500)
    async with Downloader(dest=tmp_path / "d", netrc=netrc) as dl:
        outcome = await dl.download(faults.url("/r/t.bin", to=target))
    assert outcome.ok
    first, after = faults.log
    assert first.headers["Authorization"] == _basic("alice", "s3cret")
    assert after.host.startswith("127.0.0.2")
    sent = after.headers.get("Authorization", "")
    assert "s3cret" not in base64.b64decode(sent.removeprefix("Basic ") or b"").decode()
    if second.startswith("machine 127.0.0.2 login bob"):
        assert sent == _basic("bob", "")  # its own entry, as it stands
    else:
        assert sent == ""
    assert (tmp_path / "d" / "t.bin").read_bytes() == payload("t.bin", 500)


@pytest.mark.parametrize(
    "name", ["../escaped.txt", "a/../../escaped.txt", "/tmp/escaped.txt", "C:\\escaped.txt"]
)
def test_a_metalink_name_never_writes_outside_the_directory(tmp_path: Path, name: str) -> None:
    document = (
        '<metalink xmlns="urn:ietf:params:xml:ns:metalink">'
        f'<file name="{name}"><url>http://127.0.0.1:9/x</url></file></metalink>'
    ).encode()
    with pytest.raises(metalink.MetalinkError, match="leaves the download directory"):
        metalink.parse(document)
    assert listing(tmp_path) == []


async def test_a_redirect_to_a_dot_file_is_saved_under_the_name_asked_for(
    faults: FaultServer, tmp_path: Path
) -> None:
    dest = tmp_path / "home"
    target = faults.url("/f/.bashrc", size=300)
    async with Downloader(dest=dest) as dl:
        outcome = await dl.download(faults.url("/r/setup.tar.gz", to=target))
    assert outcome.path == dest / "setup.tar.gz"
    assert listing(dest) == ["setup.tar.gz"]
    assert not (dest / ".bashrc").exists()


async def test_a_server_chosen_name_is_never_a_dot_file_or_a_path(
    tmp_path: Path,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=b"export EVIL=1\n",
            headers={"Content-Disposition": 'attachment; filename="../.bashrc"'},
        )

    app = web.Application()
    app.router.add_get("/{name}", handler)
    dest = tmp_path / "home"
    async with serve_app(app) as port, Downloader(dest=dest, content_disposition=True) as dl:
        outcome = await dl.download(f"http://127.0.0.1:{port}/download")
    assert outcome.path == dest / "bashrc"
    assert listing(tmp_path) == ["home", "home/bashrc"]
    assert listing(dest) == ["bashrc"]


@pytest.mark.parametrize(
    ("host", "header"),
    [
        ("evil.example.com", "sid=1; Domain=com"),
        ("evil.example.COM", "sid=1; Domain=COM"),  # CVE-2023-46218: mixed case
        ("evil.example.com", "sid=1; Domain=.CoM"),
        ("x.co.uk", "sid=1; Domain=co.uk"),
        ("a.github.io", "sid=1; Domain=github.io"),
    ],
)
async def test_a_cookie_for_a_public_suffix_is_refused(host: str, header: str) -> None:
    jar = new_jar()
    jar.update_cookies(SimpleCookie(header), URL(f"http://{host}/"))
    jar.update_cookies_from_headers([header], URL(f"http://{host}/"))
    for other in (
        "http://bank.com/",
        "http://bank.co.uk/",
        "http://b.github.io/",
        f"http://{host}/",
    ):
        assert "sid" not in jar.filter_cookies(URL(other)), other


async def test_a_public_suffix_that_is_the_host_keeps_its_own_cookie() -> None:
    jar = new_jar()
    jar.update_cookies_from_headers(["sid=1; Domain=github.io"], URL("http://github.io/"))
    jar.update_cookies_from_headers(["ok=2; Domain=example.com"], URL("http://a.example.com/"))
    assert "sid" in jar.filter_cookies(URL("http://github.io/"))
    assert "sid" not in jar.filter_cookies(URL("http://b.github.io/"))
    assert "ok" in jar.filter_cookies(URL("http://www.example.com/"))  # a registrable domain


async def test_concatenated_gzip_members_are_decoded_whole(tmp_path: Path) -> None:
    members = gzip.compress(b"first member, ") + gzip.compress(b"second member\n")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=members, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/{name}", handler)
    async with serve_app(app) as port, Downloader(dest=tmp_path, decode_content=True) as dl:
        outcome = await dl.download(f"http://127.0.0.1:{port}/log.txt")
    assert outcome.ok
    assert (tmp_path / "log.txt").read_bytes() == b"first member, second member\n"
