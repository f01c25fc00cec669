"""Credentials: `auth=` (basic and digest), `.netrc` logins, and where credentials may go.

The servers check what they are sent: a digest server in this process verifies the response to
its challenge (RFC 7616) as a real one does; the fault server records every request's headers,
so that a test can show which host saw a credential and which never did.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from adownload import (
    BasicAuth,
    DigestAuth,
    Downloader,
    FTPReplyError,
    HTTPStatusError,
    InvalidRequestError,
    Request,
)

from .cli_support import COMMAND, cli_env
from .ftp_servers import PASSWORD as FTP_PASSWORD
from .ftp_servers import USER as FTP_USER
from .ftp_servers import aioftp_server
from .servers import FaultServer
from .support import ONCE, listing, payload, serve_app

USER, PASSWORD = "reader", "d1gest-s3cret"


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


# --- basic --------------------------------------------------------------------------------


async def test_basic_auth_is_sent_to_the_urls_origin(faults: FaultServer, dest: Path) -> None:
    async with Downloader(dest=dest, auth=(USER, PASSWORD)) as dl:
        await dl.download(faults.url("/f/a.bin"))
        await dl.download(Request(faults.url("/f/b.bin"), auth=BasicAuth("other", "pw")))
        await dl.download(Request(faults.url("/f/c.bin"), auth=None))
    assert faults.hits("/f/a.bin")[0].headers["Authorization"] == _basic(USER, PASSWORD)
    assert faults.hits("/f/b.bin")[0].headers["Authorization"] == _basic("other", "pw")
    assert "Authorization" not in faults.hits("/f/c.bin")[0].headers
    assert listing(dest) == ["a.bin", "b.bin", "c.bin"]


async def test_auth_is_not_sent_past_a_redirect_to_another_host(
    faults: FaultServer, dest: Path
) -> None:
    elsewhere = faults.alt_url("/f/a.bin")
    back_home = faults.url("/f/back.bin")
    hop = faults.alt_url("/r/hop", to=back_home)
    async with Downloader(dest=dest, auth=(USER, PASSWORD)) as dl:
        await dl.download(faults.url("/r/away", to=elsewhere), dest=dest / "a.bin")
        # Away and back again: the credential stays behind once it has left its origin.
        await dl.download(faults.url("/r/round", to=hop), dest=dest / "back.bin")
    assert "Authorization" in faults.hits("/r/away")[0].headers
    assert all("Authorization" not in hit.headers for hit in faults.hits("/f/a.bin"))
    assert "Authorization" not in faults.hits("/f/back.bin")[0].headers
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin")


async def test_neither_auth_nor_an_authorization_header_goes_to_a_mirror_elsewhere(
    faults: FaultServer, dest: Path
) -> None:
    faults.plan("/f/m.bin", ["status:404"])
    mirror = faults.alt_url("/f/m.bin")
    async with Downloader(dest=dest, retry=ONCE) as dl:
        await dl.download(Request(faults.url("/f/m.bin"), mirrors=[mirror], auth=(USER, PASSWORD)))
        faults.plan("/f/n.bin", ["status:404"])
        await dl.download(
            Request(
                faults.url("/f/n.bin"),
                mirrors=[faults.alt_url("/f/n.bin")],
                headers={"Authorization": "Bearer t0ken"},
            )
        )
    first, second = faults.hits("/f/m.bin")
    assert "Authorization" in first.headers
    assert second.host.startswith("127.0.0.2")
    assert "Authorization" not in second.headers
    n_first, n_second = faults.hits("/f/n.bin")
    assert n_first.headers["Authorization"] == "Bearer t0ken"
    assert "Authorization" not in n_second.headers
    assert (dest / "m.bin").read_bytes() == faults.content("/f/m.bin")


@pytest.mark.parametrize(
    "auth",
    [("only-one",), ("a", 1), "user:pw", ("a:b", "c"), ("", "pw"), ("a\r\n", "b")],
)
def test_bad_auth_is_a_clear_error(auth: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Downloader(auth=auth)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        Request("http://127.0.0.1/a.bin", auth=auth)  # type: ignore[arg-type]
    assert "pw" not in str(caught.value).replace("password", "")


async def test_auth_beside_another_credential_is_refused_before_anything_is_sent(
    faults: FaultServer, dest: Path
) -> None:
    async with Downloader(dest=dest, auth=(USER, PASSWORD)) as dl:
        with pytest.raises(InvalidRequestError, match="two credentials"):
            await dl.download(faults.url("/f/a.bin").replace("//", "//u:p@", 1))
        with pytest.raises(InvalidRequestError, match="two credentials"):
            await dl.download(faults.url("/f/a.bin"), headers={"Authorization": "x"})
    assert faults.log == []
    assert listing(dest) == []


def test_passwords_are_never_shown() -> None:
    for auth in (BasicAuth(USER, PASSWORD), DigestAuth(USER, PASSWORD)):
        assert PASSWORD not in repr(auth)
    request = Request("http://127.0.0.1/a.bin", auth=(USER, PASSWORD))
    assert PASSWORD not in repr(request)
    assert USER in repr(request)


# --- digest -------------------------------------------------------------------------------


class DigestServer:
    """A file behind digest authentication (qop=auth), checked as RFC 7616 says."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.statuses: list[int] = []
        self.data = payload("digest.bin", 100_000)

    def _hash(self, text: str) -> str:
        name = "sha256" if self.algorithm.startswith("SHA-256") else "md5"
        return hashlib.new(name, text.encode()).hexdigest()

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        fields = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header)}
        if header.startswith("Digest ") and fields.get("username") == USER:
            ha1 = self._hash(f"{USER}:files:{PASSWORD}")
            ha2 = self._hash(f"{request.method}:{fields.get('uri')}")
            expected = self._hash(
                f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}"
                f":{fields.get('qop')}:{ha2}"
            )
            if fields.get("response") == expected and fields.get("nonce") == "n0nce":
                self.statuses.append(200)
                return web.Response(body=self.data)
        self.statuses.append(401)
        challenge = (
            f'Digest realm="files", qop="auth", nonce="n0nce", opaque="0pq",'
            f" algorithm={self.algorithm}"
        )
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})


@pytest.fixture(params=["MD5", "SHA-256"])
async def digest(request: pytest.FixtureRequest) -> AsyncIterator[tuple[DigestServer, str]]:
    server = DigestServer(request.param)
    app = web.Application()
    app.router.add_get("/private/{name}", server.handle)
    async with serve_app(app) as port:
        yield server, f"http://127.0.0.1:{port}/private/digest.bin"


async def test_digest_auth_answers_the_servers_challenge(
    digest: tuple[DigestServer, str], dest: Path
) -> None:
    server, url = digest
    async with Downloader(dest=dest, auth=DigestAuth(USER, PASSWORD)) as dl:
        outcome = await dl.download(url)
    assert (dest / "digest.bin").read_bytes() == server.data
    assert server.statuses == [401, 200]
    assert outcome.status == 200


async def test_a_basic_login_answers_a_digest_challenge(
    digest: tuple[DigestServer, str], dest: Path, tmp_path: Path
) -> None:
    # As wget, and curl --anyauth: the server wants digest; the login given is used so.
    server, url = digest
    async with Downloader(dest=dest, auth=BasicAuth(USER, PASSWORD)) as dl:
        outcome = await dl.download(url)
    assert outcome.ok
    assert (dest / "digest.bin").read_bytes() == server.data
    assert server.statuses[-1] == 200
    assert server.statuses.count(401) <= 2  # the basic try, and the middleware's probe
    netrc = _netrc(tmp_path, f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    async with Downloader(dest=dest / "n", netrc=netrc) as dl:
        assert (await dl.download(url)).ok
    assert (dest / "n" / "digest.bin").read_bytes() == server.data
    async with Downloader(dest=dest / "w", auth=BasicAuth(USER, "wrong"), retry=ONCE) as dl:
        [wrong] = await dl.download_many([url])
    assert isinstance(wrong.error, HTTPStatusError)
    assert wrong.error.status == 401
    assert not (dest / "w").exists() or listing(dest / "w") == []


async def test_the_commands_user_answers_a_digest_only_server(
    digest: tuple[DigestServer, str], tmp_path: Path
) -> None:
    server, url = digest
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "-u", f"{USER}:{PASSWORD}", url, "-d", str(tmp_path / "d"),
        cwd=tmp_path, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert (tmp_path / "d" / "digest.bin").read_bytes() == server.data
    assert PASSWORD not in (out + err).decode()


async def test_a_wrong_digest_password_fails_and_keeps_nothing(
    digest: tuple[DigestServer, str], dest: Path
) -> None:
    _, url = digest
    async with Downloader(dest=dest, auth=DigestAuth(USER, "wrong"), retry=ONCE) as dl:
        [outcome] = await dl.download_many([url])
    assert isinstance(outcome.error, HTTPStatusError)
    assert outcome.error.status == 401
    assert listing(dest) == []


# --- .netrc -------------------------------------------------------------------------------


def _netrc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "netrc"
    path.write_text(text)
    path.chmod(0o600)
    return path


async def test_netrc_logins_go_to_their_own_host_only(
    faults: FaultServer, dest: Path, tmp_path: Path
) -> None:
    netrc = _netrc(tmp_path, f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    async with Downloader(dest=dest, netrc=netrc) as dl:
        await dl.download(faults.url("/f/a.bin"))
        await dl.download(faults.alt_url("/f/b.bin"))
        await dl.download(faults.url("/f/c.bin"), headers={"Authorization": "Bearer x"})
    assert faults.hits("/f/a.bin")[0].headers["Authorization"] == _basic(USER, PASSWORD)
    assert "Authorization" not in faults.hits("/f/b.bin")[0].headers
    assert faults.hits("/f/c.bin")[0].headers["Authorization"] == "Bearer x"


async def test_trust_env_takes_netrc_from_the_environment(
    faults: FaultServer, dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = _netrc(tmp_path, f"default login {USER} password {PASSWORD}\n")
    monkeypatch.setenv("NETRC", str(netrc))
    async with Downloader(dest=dest, trust_env=True) as dl:
        await dl.download(faults.url("/f/a.bin"))
    async with Downloader(dest=dest, trust_env=True, netrc=False) as dl:
        await dl.download(faults.url("/f/b.bin"))
    async with Downloader(dest=dest) as dl:
        await dl.download(faults.url("/f/c.bin"))
    assert faults.hits("/f/a.bin")[0].headers["Authorization"] == _basic(USER, PASSWORD)
    assert "Authorization" not in faults.hits("/f/b.bin")[0].headers
    assert "Authorization" not in faults.hits("/f/c.bin")[0].headers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "no netrc file"),
        # A password where a keyword belongs: the error must not quote it.
        ("machine 127.0.0.1 login u s3cret\n", "malformed at line"),
    ],
)
def test_a_bad_netrc_file_is_a_clear_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str | None, message: str
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "netrc" if text is None else _netrc(tmp_path, text)
    with pytest.raises(InvalidRequestError, match=message) as caught:
        Downloader(netrc=path)
    assert "s3cret" not in str(caught.value)


# --- FTP ----------------------------------------------------------------------------------


async def test_auth_is_the_ftp_login(tmp_path: Path, dest: Path) -> None:
    root = tmp_path / "ftp"
    root.mkdir()
    (root / "private.bin").write_bytes(payload("private.bin", 30_000))
    async with aioftp_server(root, anonymous=False) as port:
        url = f"ftp://127.0.0.1:{port}/private.bin"
        async with Downloader(dest=dest, auth=(FTP_USER, FTP_PASSWORD), retry=ONCE) as dl:
            await dl.download(url)
        async with Downloader(dest=dest / "x", retry=ONCE) as dl:
            [refused] = await dl.download_many([url])
    assert (dest / "private.bin").read_bytes() == payload("private.bin", 30_000)
    assert isinstance(refused.error, FTPReplyError)
    assert not (dest / "x").exists() or listing(dest / "x") == []
