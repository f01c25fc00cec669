"""The command's TLS flags against an https server on 127.0.0.1 with a self-signed certificate
(made with the openssl command for each test run)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from .cli_support import run_cli
from .support import listing

BODY = b"served over TLS\n" * 100


@pytest.fixture
def https_url(tls_certificate: tuple[Path, Path]) -> Iterator[tuple[str, Path]]:
    """The URL of a file on an https server whose certificate (returned too) no system trusts."""
    cert, key = tls_certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def file(request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_get("/secure.txt", file)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield f"https://127.0.0.1:{port}/secure.txt", cert
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_an_untrusted_certificate_fails_the_download(
    https_url: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = https_url
    result = run_cli("--tries", "1", "-d", "out", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "certificate" in result.stderr.lower()
    assert listing(tmp_path / "out") == []


def test_ca_certificate_trusts_the_servers_certificate(
    https_url: tuple[str, Path], tmp_path: Path
) -> None:
    url, cert = https_url
    result = run_cli("--ca-certificate", cert, "-d", "out", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/secure.txt").read_bytes() == BODY


def test_no_check_certificate_downloads_anyway(https_url: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = https_url
    result = run_cli("--no-check-certificate", "-d", "out", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out/secure.txt").read_bytes() == BODY


def test_an_unreadable_ca_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    for cafile, says in (("missing.pem", "No such file"), ("bad.pem", "cannot load bad.pem")):
        result = run_cli("--cacert", cafile, "https://127.0.0.1:9/x", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"adownload: error: --ca-certificate: cannot load {cafile}")
        assert says in result.stderr
        assert len(result.stderr.splitlines()) == 1
    assert listing(tmp_path) == ["bad.pem"]


def test_the_mirror_takes_the_same_tls_flags(https_url: tuple[str, Path], tmp_path: Path) -> None:
    url, cert = https_url
    (tmp_path / "urls.txt").write_text(url + "\n")
    untrusted = run_cli("mirror", "urls.txt", "plain", cwd=tmp_path)
    assert untrusted.returncode == 1
    assert "certificate" in untrusted.stderr.lower()
    assert not (tmp_path / "plain/secure.txt").exists()
    for flags, copy in (
        (["--ca-certificate", str(cert)], "trusted"),
        (["--insecure"], "unchecked"),
    ):
        result = run_cli("mirror", "urls.txt", copy, *flags, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / copy / "secure.txt").read_bytes() == BODY
    both = run_cli("mirror", "urls.txt", "x", "--insecure", "--cacert", str(cert), cwd=tmp_path)
    assert both.returncode == 2
    assert "contradict" in both.stderr
