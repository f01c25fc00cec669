"""Downloads through proxies: tinyproxy (HTTP, CONNECT, and https:// behind a TLS front),
microsocks (SOCKS5, with and without credentials), and an in-process SOCKS4/4a/5 server.

Each test checks the bytes on disk, what the proxy and the origin saw (the origin sees the
proxy's outgoing address, and never its credentials), and for the failures, the error a caller
gets, that it names the proxy without its password, and that nothing is left on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from adownload import (
    ConnectError,
    ConnectTimeout,
    Downloader,
    InvalidRequestError,
    ProxyError,
    Request,
    Segments,
    Timeout,
)
from adownload._model.proxy import EnvironmentProxies, NoProxy, parse_proxy

from .proxy_servers import (
    MICROSOCKS_OUT,
    PASSWORD,
    SOCKS_OUT,
    TINYPROXY_OUT,
    USER,
    RunningProxy,
    closer,
    microsocks,
    needs_microsocks,
    needs_tinyproxy,
    serve_socks,
    tinyproxy,
    tls_front,
)
from .servers import FaultServer
from .support import FAST, MIB, ONCE, free_port, listing, payload, serve_tls

tinyproxy_only = pytest.mark.skipif(not needs_tinyproxy, reason="needs tinyproxy")
microsocks_only = pytest.mark.skipif(not needs_microsocks, reason="needs microsocks")

CREDENTIALS = f"{USER}:{PASSWORD}"


@pytest.fixture
def http_proxy(tmp_path: Path) -> Iterator[RunningProxy]:
    directory = tmp_path / "tinyproxy"
    directory.mkdir()
    with tinyproxy(directory) as running:
        yield running


@pytest.fixture
def http_proxy_auth(tmp_path: Path) -> Iterator[RunningProxy]:
    directory = tmp_path / "tinyproxy-auth"
    directory.mkdir()
    with tinyproxy(directory, auth=True) as running:
        yield running


@pytest.fixture
def socks5() -> Iterator[RunningProxy]:
    with microsocks() as running:
        yield running


@pytest.fixture
def socks5_auth() -> Iterator[RunningProxy]:
    with microsocks(auth=True) as running:
        yield running


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


# --- HTTP proxies -------------------------------------------------------------------------


@tinyproxy_only
async def test_a_plain_http_download_goes_through_an_http_proxy(
    faults: FaultServer, http_proxy: RunningProxy, dest: Path
) -> None:
    url = faults.url("/f/a.bin", size=300_000)
    async with Downloader(dest=dest, proxy=http_proxy.url()) as dl:
        outcome = await dl.download(url)
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin", 300_000)
    assert outcome.ok
    assert outcome.status == 200
    [hit] = faults.hits("/f/a.bin")
    assert hit.peer == TINYPROXY_OUT  # it came from the proxy
    assert "tinyproxy" in hit.headers.get("Via", "")
    assert any(line.startswith(f"GET {url}") for line in http_proxy.lines)


@tinyproxy_only
async def test_credentials_in_the_proxy_url_reach_the_proxy_and_not_the_origin(
    faults: FaultServer,
    http_proxy_auth: RunningProxy,
    dest: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="adownload")
    proxy = http_proxy_auth.url(credentials=CREDENTIALS)
    seen: list[object] = []
    async with Downloader(dest=dest, proxy=proxy, on_event=seen.append) as dl:
        outcome = await dl.download(faults.url("/f/a.bin", size=5000))
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin", 5000)
    [hit] = faults.hits("/f/a.bin")
    assert hit.peer == TINYPROXY_OUT
    assert "Proxy-Authorization" not in hit.headers
    assert "Authorization" not in hit.headers
    assert PASSWORD not in repr(hit.headers)
    _no_secret(repr(outcome), caplog.text, *(repr(event) for event in seen))


@tinyproxy_only
async def test_a_proxy_that_wants_credentials_is_a_proxy_error_and_saves_nothing(
    faults: FaultServer, http_proxy_auth: RunningProxy, dest: Path
) -> None:
    async with Downloader(dest=dest, proxy=http_proxy_auth.url(), retry=FAST) as dl:
        outcomes = await dl.download_many(
            [
                faults.url("/f/a.bin", size=5000),
                # Another file of the batch, told to go directly: it is not lost.
                Request(faults.url("/f/b.bin", size=5000), proxy=None),
            ]
        )
    error = outcomes[0].error
    assert isinstance(error, ProxyError)
    assert error.status == 407
    assert error.authentication
    assert error.proxy == http_proxy_auth.url()
    assert http_proxy_auth.url() in str(error)
    assert "407" in str(error)
    assert outcomes[0].attempts == 1  # no retry brings credentials
    assert faults.hits("/f/a.bin") == []
    assert outcomes[1].ok
    assert listing(dest) == ["b.bin"]


@tinyproxy_only
async def test_wrong_proxy_credentials_are_refused_and_never_shown(
    http_proxy_auth: RunningProxy, tls_certificate: tuple[Path, Path], dest: Path
) -> None:
    # Through a CONNECT, whose answer is the proxy's own. (For a plain-http URL, tinyproxy
    # answers wrong credentials with a 401, which cannot be told from the origin's.)
    app = web.Application()
    async with serve_tls(app, tls_certificate) as (base, context):
        proxy = http_proxy_auth.url(credentials=f"{USER}:wrong-{PASSWORD}")
        async with Downloader(dest=dest, proxy=proxy, retry=FAST, verify=context) as dl:
            [outcome] = await dl.download_many([f"{base}/a.bin"])
    assert isinstance(outcome.error, ProxyError)
    assert outcome.error.authentication
    assert outcome.attempts == 1
    _no_secret(str(outcome.error), repr(outcome.error), outcome.error.proxy)
    assert listing(dest) == []


@tinyproxy_only
async def test_an_https_download_tunnels_through_an_http_proxy_with_connect(
    http_proxy_auth: RunningProxy, tls_certificate: tuple[Path, Path], dest: Path
) -> None:
    data = payload("secure.bin", 200_000)
    seen: list[dict[str, str]] = []

    async def file(request: web.Request) -> web.Response:
        seen.append({"peer": request.remote or "", **request.headers})
        return web.Response(body=data)

    app = web.Application()
    app.router.add_get("/secure.bin", file)
    async with serve_tls(app, tls_certificate) as (base, context):
        proxy = http_proxy_auth.url(credentials=CREDENTIALS)
        async with Downloader(dest=dest, proxy=proxy, verify=context) as dl:
            await dl.download(f"{base}/secure.bin")
    assert (dest / "secure.bin").read_bytes() == data
    assert [s["peer"] for s in seen] == [TINYPROXY_OUT]
    assert "Proxy-Authorization" not in seen[0]
    assert any(line.startswith("CONNECT 127.0.0.1:") for line in http_proxy_auth.lines)


@tinyproxy_only
async def test_an_untrusted_server_certificate_through_a_proxy_is_the_servers_fault(
    http_proxy: RunningProxy, tls_certificate: tuple[Path, Path], dest: Path
) -> None:
    app = web.Application()
    async with (
        serve_tls(app, tls_certificate) as (base, _),
        Downloader(dest=dest, proxy=http_proxy.url(), retry=ONCE) as dl,
    ):
        [outcome] = await dl.download_many([f"{base}/a.bin"])
    assert isinstance(outcome.error, ConnectError), outcome.error
    assert not isinstance(outcome.error, ProxyError)
    assert "certificate" in str(outcome.error).lower()
    assert listing(dest) == []


@tinyproxy_only
async def test_an_https_proxy_is_spoken_to_over_tls(
    faults: FaultServer,
    http_proxy_auth: RunningProxy,
    tls_certificate: tuple[Path, Path],
    dest: Path,
) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(tls_certificate[0]))
    async with tls_front(http_proxy_auth.port, tls_certificate) as port:
        proxy = f"https://{CREDENTIALS}@127.0.0.1:{port}"
        async with Downloader(dest=dest, proxy=proxy, verify=context) as dl:
            await dl.download(faults.url("/f/a.bin", size=70_000))
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin", 70_000)
    assert [hit.peer for hit in faults.hits("/f/a.bin")] == [TINYPROXY_OUT]


@tinyproxy_only
async def test_a_segmented_download_opens_every_connection_through_the_proxy(
    faults: FaultServer, http_proxy: RunningProxy, dest: Path
) -> None:
    url = faults.url("/f/big.bin", size=8 * MIB)
    segments = Segments(count=4, min_size=MIB)
    async with Downloader(dest=dest, proxy=http_proxy.url(), segments=segments) as dl:
        await dl.download(url)
    assert (dest / "big.bin").read_bytes() == faults.content("/f/big.bin", 8 * MIB)
    hits = faults.hits("/f/big.bin")
    assert len(hits) >= 4
    assert sum(hit.range is not None for hit in hits) >= 3
    assert {hit.peer for hit in hits} == {TINYPROXY_OUT}


@tinyproxy_only
async def test_a_cut_download_resumes_through_the_proxy(
    faults: FaultServer, http_proxy: RunningProxy, dest: Path
) -> None:
    faults.plan("/f/cut.bin", ["cut_after:100000", "ok"])
    url = faults.url("/f/cut.bin", size=400_000)
    async with Downloader(dest=dest, proxy=http_proxy.url(), retry=FAST) as dl:
        outcome = await dl.download(url)
    assert (dest / "cut.bin").read_bytes() == faults.content("/f/cut.bin", 400_000)
    first, second = faults.hits("/f/cut.bin")
    assert second.range_start is not None
    assert second.range_start > 0
    assert outcome.resumed_from == second.range_start
    assert {first.peer, second.peer} == {TINYPROXY_OUT}
    assert listing(dest) == ["cut.bin"]


# --- SOCKS proxies ------------------------------------------------------------------------


@microsocks_only
async def test_a_download_goes_through_a_socks5_proxy(
    faults: FaultServer, socks5: RunningProxy, dest: Path
) -> None:
    async with Downloader(dest=dest, proxy=socks5.url()) as dl:
        await dl.download(faults.url("/f/a.bin", size=250_000))
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin", 250_000)
    assert [hit.peer for hit in faults.hits("/f/a.bin")] == [MICROSOCKS_OUT]


@microsocks_only
async def test_a_segmented_download_through_socks5_uses_it_for_every_segment(
    faults: FaultServer, socks5_auth: RunningProxy, dest: Path
) -> None:
    url = faults.url("/f/big.bin", size=8 * MIB)
    proxy = socks5_auth.url(credentials=CREDENTIALS)
    segments = Segments(count=4, min_size=MIB)
    async with Downloader(dest=dest, proxy=proxy, segments=segments) as dl:
        await dl.download(url)
    assert (dest / "big.bin").read_bytes() == faults.content("/f/big.bin", 8 * MIB)
    hits = faults.hits("/f/big.bin")
    assert len(hits) >= 4
    assert {hit.peer for hit in hits} == {MICROSOCKS_OUT}


@microsocks_only
@pytest.mark.parametrize("credentials", [None, f"{USER}:wrong"])
async def test_a_socks5_proxy_that_refuses_the_credentials_is_a_final_proxy_error(
    faults: FaultServer, socks5_auth: RunningProxy, dest: Path, credentials: str | None
) -> None:
    proxy = socks5_auth.url(credentials=credentials)
    async with Downloader(dest=dest, proxy=proxy, retry=FAST) as dl:
        [outcome] = await dl.download_many([faults.url("/f/a.bin")])
    error = outcome.error
    assert isinstance(error, ProxyError)
    assert error.authentication
    assert error.proxy == socks5_auth.url()
    assert socks5_auth.url() in str(error)
    assert outcome.attempts == 1
    assert faults.hits("/f/a.bin") == []
    assert listing(dest) == []


@microsocks_only
async def test_a_socks5_proxy_that_cannot_reach_the_target_is_a_proxy_error(
    socks5: RunningProxy, dest: Path
) -> None:
    target = f"http://127.0.0.1:{free_port()}/gone.bin"
    async with Downloader(dest=dest, proxy=socks5.url(), retry=ONCE) as dl:
        [outcome] = await dl.download_many([target])
    assert isinstance(outcome.error, ProxyError)
    assert not outcome.error.authentication
    assert "refused" in str(outcome.error)
    assert socks5.url() in str(outcome.error)
    assert listing(dest) == []


@pytest.mark.parametrize(
    ("scheme", "version", "asked"),
    [
        ("socks4", 4, "127.0.0.1"),  # the client looks the name up
        ("socks4a", 4, "localhost"),  # the proxy does
        ("socks5", 5, "127.0.0.1"),
        ("socks5h", 5, "localhost"),
    ],
)
async def test_socks_versions_and_who_looks_the_name_up(
    faults: FaultServer, dest: Path, scheme: str, version: int, asked: str
) -> None:
    url = faults.url("/f/a.bin", size=20_000).replace("127.0.0.1", "localhost")
    async with serve_socks() as socks, Downloader(dest=dest, proxy=socks.url(scheme)) as dl:
        await dl.download(url)
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin", 20_000)
    assert [(v, host) for v, host, _ in socks.asked] == [(version, asked)]
    assert [hit.peer for hit in faults.hits("/f/a.bin")] == [SOCKS_OUT]


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
async def test_a_socks_proxy_that_refuses_the_target_fails_that_file_only(
    faults: FaultServer, dest: Path, scheme: str
) -> None:
    async with (
        serve_socks("refuse") as socks,
        Downloader(dest=dest, proxy=socks.url(scheme), retry=ONCE) as dl,
    ):
        outcomes = await dl.download_many(
            [faults.url("/f/a.bin"), Request(faults.url("/f/b.bin"), proxy=None)]
        )
    assert isinstance(outcomes[0].error, ProxyError)
    assert socks.url(scheme) in str(outcomes[0].error)
    assert outcomes[1].ok
    assert listing(dest) == ["b.bin"]


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
async def test_a_socks_proxy_that_closes_during_the_handshake_is_a_proxy_error(
    faults: FaultServer, dest: Path, scheme: str
) -> None:
    async with (
        serve_socks("close") as socks,
        Downloader(dest=dest, proxy=socks.url(scheme), retry=FAST) as dl,
    ):
        [outcome] = await dl.download_many([faults.url("/f/a.bin")])
    assert isinstance(outcome.error, ProxyError), outcome.error
    assert socks.url(scheme) in str(outcome.error)
    assert outcome.attempts == 3  # a broken handshake may be a passing fault: retried
    assert faults.hits("/f/a.bin") == []
    assert listing(dest) == []


@pytest.mark.parametrize("scheme", ["socks4a", "socks5h"])
async def test_a_socks_handshake_that_never_ends_is_a_connect_timeout(
    faults: FaultServer, dest: Path, scheme: str
) -> None:
    async with (
        serve_socks("hang") as socks,
        Downloader(
            dest=dest, proxy=socks.url(scheme), retry=ONCE, timeout=Timeout(connect=0.3)
        ) as dl,
    ):
        [outcome] = await dl.download_many([faults.url("/f/a.bin")])
    assert isinstance(outcome.error, ConnectTimeout), outcome.error
    assert f"through the proxy {socks.url(scheme)}" in str(outcome.error)
    assert len(socks.asked) == 1
    assert listing(dest) == []


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_a_proxy_that_closes_at_once_is_a_proxy_error(
    faults: FaultServer, dest: Path, scheme: str
) -> None:
    async with closer() as port:
        proxy = f"{scheme}://{CREDENTIALS}@127.0.0.1:{port}"
        async with Downloader(dest=dest, proxy=proxy, retry=ONCE) as dl:
            [outcome] = await dl.download_many([faults.url("/f/a.bin")])
    assert isinstance(outcome.error, ProxyError), outcome.error
    assert f"{scheme}://127.0.0.1:{port}" in str(outcome.error)
    _no_secret(str(outcome.error))
    assert listing(dest) == []


@pytest.mark.parametrize("scheme", ["http", "https", "socks4", "socks5h"])
async def test_a_dead_proxy_is_named_in_the_error(
    faults: FaultServer, dest: Path, scheme: str
) -> None:
    dead = f"{scheme}://{CREDENTIALS}@127.0.0.1:{free_port()}"
    async with Downloader(dest=dest, proxy=dead, retry=ONCE) as dl:
        [outcome] = await dl.download_many([faults.url("/f/a.bin")])
    error = outcome.error
    assert isinstance(error, ProxyError), error
    assert "cannot connect to the proxy" in str(error)
    assert error.proxy == dead.replace(f"{CREDENTIALS}@", "")
    _no_secret(str(error), repr(error))
    assert listing(dest) == []


# --- choosing the route -------------------------------------------------------------------


async def test_no_proxy_hosts_are_reached_directly(faults: FaultServer, dest: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with Downloader(dest=dest, proxy=dead, no_proxy="127.0.0.1") as dl:
        await dl.download(faults.url("/f/a.bin"))
    assert [hit.peer for hit in faults.hits("/f/a.bin")] == ["127.0.0.1"]


async def test_a_request_may_choose_its_own_proxy(faults: FaultServer, dest: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with serve_socks() as socks, Downloader(dest=dest, proxy=dead, retry=ONCE) as dl:
        outcome = await dl.download(Request(faults.url("/f/a.bin"), proxy=socks.url("socks5")))
    assert outcome.ok
    assert [hit.peer for hit in faults.hits("/f/a.bin")] == [SOCKS_OUT]


async def test_trust_env_reads_the_proxy_variables_as_curl_does(
    faults: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve_socks() as socks:
        # http_proxy, here a SOCKS one (which the command once failed on), and HTTP_PROXY is
        # ignored, as curl ignores it: set to a dead proxy, it changes nothing.
        monkeypatch.setenv("http_proxy", socks.url("socks5h"))
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        async with Downloader(dest=dest, trust_env=True) as dl:
            await dl.download(faults.url("/f/a.bin"))
        assert [hit.peer for hit in faults.hits("/f/a.bin")] == [SOCKS_OUT]
        # all_proxy stands in for a scheme with no variable of its own.
        monkeypatch.delenv("http_proxy")
        monkeypatch.delenv("HTTP_PROXY")
        monkeypatch.setenv("ALL_PROXY", socks.url("socks5"))
        async with Downloader(dest=dest, trust_env=True) as dl:
            await dl.download(faults.url("/f/b.bin"))
        assert [hit.peer for hit in faults.hits("/f/b.bin")] == [SOCKS_OUT]
        # no_proxy exempts a host; without trust_env, nothing is read.
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        async with Downloader(dest=dest, trust_env=True) as dl:
            await dl.download(faults.url("/f/c.bin"))
        monkeypatch.delenv("no_proxy")
        async with Downloader(dest=dest) as dl:
            await dl.download(faults.url("/f/d.bin"))
    assert [hit.peer for hit in faults.hits("/f/c.bin")] == ["127.0.0.1"]
    assert [hit.peer for hit in faults.hits("/f/d.bin")] == ["127.0.0.1"]
    assert len(socks.asked) == 2


async def test_a_malformed_proxy_variable_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", f"gopher://{CREDENTIALS}@127.0.0.1:70")
    with pytest.raises(InvalidRequestError, match=r"\$https_proxy") as caught:
        Downloader(trust_env=True)
    _no_secret(str(caught.value))


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("gopher://127.0.0.1:70", "unsupported proxy scheme"),
        ("socks5://", "no host"),
        ("http://127.0.0.1:port", "malformed proxy URL"),
        ("http://127.0.0.1:3128/path", "nothing after"),
        ("", "empty proxy"),
        (f"http://{CREDENTIALS}@127.0.0.1:3128 x", "blanks"),
    ],
)
async def test_a_malformed_proxy_is_refused_before_anything_is_sent(
    faults: FaultServer, dest: Path, proxy: str, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message) as caught:
        Downloader(proxy=proxy)
    _no_secret(str(caught.value))
    with pytest.raises(InvalidRequestError, match=message):
        Request(faults.url("/f/a.bin"), proxy=proxy)
    assert faults.log == []
    assert listing(dest) == []


async def test_an_ftp_url_that_a_proxy_would_take_is_refused_not_sent_around_it(
    dest: Path,
) -> None:
    async with serve_socks() as socks, Downloader(dest=dest, proxy=socks.url("socks5")) as dl:
        [outcome] = await dl.download_many([f"ftp://127.0.0.1:{free_port()}/a.bin"])
    assert isinstance(outcome.error, InvalidRequestError)
    assert "cannot go through a proxy" in str(outcome.error)
    assert socks.asked == []
    assert listing(dest) == []


async def test_without_a_proxy_a_dead_server_is_still_a_connect_error(dest: Path) -> None:
    async with Downloader(dest=dest, retry=ONCE) as dl:
        [outcome] = await dl.download_many([f"http://127.0.0.1:{free_port()}/a.bin"])
    assert isinstance(outcome.error, ConnectError)


# --- the pure parts -----------------------------------------------------------------------


def test_parse_proxy_splits_credentials_and_gives_curls_default_ports() -> None:
    proxy = parse_proxy(f"socks5h://{CREDENTIALS}@127.0.0.1")
    assert proxy.shown == "socks5h://127.0.0.1:1080"
    assert proxy.remote_dns
    assert (proxy.login, proxy.password) == (USER, PASSWORD)
    assert PASSWORD not in repr(proxy)
    assert parse_proxy("127.0.0.1:3128").shown == "http://127.0.0.1:3128"
    assert parse_proxy("https://127.0.0.1").url.port == 443
    assert parse_proxy("HTTP://127.0.0.1:8080").kind == "http"
    assert parse_proxy("socks4://127.0.0.1:9").kind == "socks"


@pytest.mark.parametrize(
    ("entries", "host", "direct"),
    [
        ("example.org", "example.org", True),
        ("example.org", "files.example.org", True),
        (".example.org", "files.example.org", True),
        ("example.org", "badexample.org", False),
        ("example.org:8080", "example.org", True),
        ("127.0.0.1", "127.0.0.1", True),
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.1.2.3", False),
        ("[::1]", "::1", True),
        ("::1", "::1", True),
        ("*", "anything.example", True),
        (" a.example , ,B.EXAMPLE ", "b.example", True),
        ("", "example.org", False),
    ],
)
def test_no_proxy_matches_as_curl_does(entries: str, host: str, direct: bool) -> None:
    assert NoProxy.parse(entries).matches(host) is direct


def test_environment_proxies_follow_curls_names() -> None:
    env = EnvironmentProxies.read(
        {
            "HTTP_PROXY": "http://127.0.0.1:1",
            "HTTPS_PROXY": "http://127.0.0.1:2",
            "all_proxy": "socks5://127.0.0.1:3",
            "NO_PROXY": "example.org",
        }
    )
    assert env.for_scheme("http") == env.all  # HTTP_PROXY is never read
    https = env.for_scheme("https")
    assert https is not None
    assert https.shown == "http://127.0.0.1:2"
    ftp = env.for_scheme("ftp")
    assert ftp is not None
    assert ftp.shown == "socks5://127.0.0.1:3"
    assert env.no_proxy.matches("example.org")
    lower = EnvironmentProxies.read({"https_proxy": "127.0.0.1:4", "HTTPS_PROXY": "x://y"})
    assert lower.https is not None
    assert lower.https.shown == "http://127.0.0.1:4"
