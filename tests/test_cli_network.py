"""The command's proxy, login and cookie flags, and the environment it reads, run as a user
runs it (a subprocess) against real proxies and the fault server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from .cli_support import no_parts, run_cli
from .proxy_servers import (
    PASSWORD,
    SOCKS_OUT,
    TINYPROXY_OUT,
    USER,
    RunningProxy,
    SocksServer,
    needs_tinyproxy,
    serve_socks,
    tinyproxy,
)
from .servers import FaultServer
from .support import free_port, listing, serve_in_thread


@pytest.fixture
def socks() -> Iterator[SocksServer]:
    with serve_in_thread(serve_socks) as running:
        yield running


@pytest.fixture
def http_proxy_auth(tmp_path: Path) -> Iterator[RunningProxy]:
    if not needs_tinyproxy:
        pytest.skip("needs tinyproxy")
    directory = tmp_path / "tinyproxy"
    directory.mkdir()
    with tinyproxy(directory, auth=True) as running:
        yield running


def _basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def test_proxy_flag_with_credentials(
    threaded_faults: FaultServer, http_proxy_auth: RunningProxy, tmp_path: Path
) -> None:
    proxy = http_proxy_auth.url(credentials=f"{USER}:{PASSWORD}")
    result = run_cli(
        "--proxy", proxy, threaded_faults.url("/f/a.bin"), "-d", tmp_path / "d", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "a.bin").read_bytes() == threaded_faults.content("/f/a.bin")
    assert [hit.peer for hit in threaded_faults.hits("/f/a.bin")] == [TINYPROXY_OUT]
    assert PASSWORD not in result.stdout + result.stderr


def test_a_proxy_that_wants_credentials_names_itself_and_exits_1(
    threaded_faults: FaultServer, http_proxy_auth: RunningProxy, tmp_path: Path
) -> None:
    result = run_cli(
        "--proxy",
        http_proxy_auth.url(),
        threaded_faults.url("/f/a.bin"),
        "-d",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert f"the proxy {http_proxy_auth.url()} wants credentials (407)" in result.stderr
    assert listing(tmp_path / "d") == []


def test_the_proxy_variables_take_socks_urls(
    threaded_faults: FaultServer, socks: SocksServer, tmp_path: Path
) -> None:
    # The bug this pins: http_proxy=socks5://... failed with "Bad status line".
    result = run_cli(
        threaded_faults.url("/f/a.bin"),
        threaded_faults.url("/f/b.bin"),
        "-d",
        tmp_path,
        cwd=tmp_path,
        env={"http_proxy": socks.url("socks5h"), "no_proxy": "example.org"},
    )
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["a.bin", "b.bin"]
    assert {hit.peer for hit in threaded_faults.log} == {SOCKS_OUT}


def test_noproxy_and_a_dead_all_proxy(threaded_faults: FaultServer, tmp_path: Path) -> None:
    dead = f"socks5://127.0.0.1:{free_port()}"
    env = {"ALL_PROXY": dead}
    failed = run_cli(
        threaded_faults.url("/f/a.bin"), "-d", tmp_path, "--tries", "1", cwd=tmp_path, env=env
    )
    assert failed.returncode == 1
    assert f"cannot connect to the proxy {dead}" in failed.stderr
    direct = run_cli(
        "--noproxy",
        "127.0.0.1",
        threaded_faults.url("/f/a.bin"),
        "-d",
        tmp_path,
        cwd=tmp_path,
        env=env,
    )
    assert direct.returncode == 0, direct.stderr
    assert listing(tmp_path) == ["a.bin"]
    assert no_parts(tmp_path) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--proxy", "gopher://127.0.0.1:70"], "unsupported proxy scheme 'gopher'"),
        (["--proxy", "http://u:hunter2@127.0.0.1:x"], "malformed proxy URL"),
        (["--password", "pw"], "--password is for --user"),
        (["--user", "u:pw", "--password", "pw"], "give the password once"),
        (["--user", "u"], "--user u needs a password"),
        (["--digest"], "--digest is for --user"),
        (["--netrc-file", "missing-netrc"], "no netrc file"),
        (["--load-cookies", "missing.txt"], "cannot read the cookie file"),
    ],
)
def test_bad_network_flags_are_usage_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    result = run_cli(*flags, "http://127.0.0.1:9/a.bin", cwd=tmp_path, stdin="")
    assert result.returncode == 2
    assert message in result.stderr
    assert "hunter2" not in result.stderr
    assert listing(tmp_path) == []


def test_a_malformed_proxy_variable_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(
        "http://127.0.0.1:9/a.bin", cwd=tmp_path, env={"https_proxy": "x://u:hunter2@h"}
    )
    assert result.returncode == 2
    assert "$https_proxy" in result.stderr
    assert "hunter2" not in result.stderr


def test_user_password_and_netrc_file(threaded_faults: FaultServer, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.2 login from-netrc password n3trc\n")
    netrc.chmod(0o600)
    result = run_cli(
        "--user",
        "alice",
        "--password",
        "pw1",
        threaded_faults.url("/f/a.bin"),
        "-d",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    other = run_cli(
        "--netrc-file",
        netrc,
        threaded_faults.alt_url("/f/b.bin"),
        "-d",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert other.returncode == 0, other.stderr
    no_netrc = run_cli(
        "--no-netrc",
        threaded_faults.alt_url("/f/c.bin"),
        "-d",
        tmp_path / "d",
        cwd=tmp_path,
        env={"NETRC": str(netrc)},
    )
    assert no_netrc.returncode == 0, no_netrc.stderr
    assert threaded_faults.hits("/f/a.bin")[0].headers["Authorization"] == _basic("alice", "pw1")
    assert threaded_faults.hits("/f/b.bin")[0].headers["Authorization"] == _basic(
        "from-netrc", "n3trc"
    )
    assert "Authorization" not in threaded_faults.hits("/f/c.bin")[0].headers
    assert "pw1" not in result.stdout + result.stderr


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_a_netrc_file_that_can_be_read_once_gives_its_logins(
    threaded_faults: FaultServer, tmp_path: Path, workers: list[str]
) -> None:
    # --netrc-file <(gpg -d netrc.gpg) is a pipe: a second read of it is empty.
    result = run_cli(
        "--netrc-file",
        "/dev/stdin",
        *workers,
        threaded_faults.url("/f/a.bin"),
        threaded_faults.url("/f/b.bin"),
        "-d",
        tmp_path / "d",
        cwd=tmp_path,
        stdin="machine 127.0.0.1 login from-pipe password p1pe\n",
    )
    assert result.returncode == 0, result.stderr
    for name in ("a.bin", "b.bin"):
        assert threaded_faults.hits(f"/f/{name}")[0].headers["Authorization"] == _basic(
            "from-pipe", "p1pe"
        )
        assert (tmp_path / "d" / name).read_bytes() == threaded_faults.content(f"/f/{name}")


def test_a_netrc_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_bytes(b"machine 127.0.0.1 login u password s3cret\n# caf\xe9\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"mine")
    for args in (["--netrc-file", str(netrc)], []):
        result = run_cli(
            *args, "http://127.0.0.1:9/a.bin", "-d", tmp_path / "d", cwd=tmp_path,
            env={"NETRC": str(netrc)},
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert f"cannot read the netrc file {netrc}: not UTF-8 text at line 2" in result.stderr
        assert "s3cret" not in result.stderr
    assert (tmp_path / "d" / "a.bin").read_bytes() == b"mine"


def test_cookie_flags_load_send_and_save(threaded_faults: FaultServer, tmp_path: Path) -> None:
    jar = tmp_path / "in.txt"
    jar.write_text("127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tfrom-file\n")
    saved = tmp_path / "out.txt"
    result = run_cli(
        "--load-cookies",
        jar,
        "-b",
        "lang=en; theme=dark",
        "--save-cookies",
        saved,
        "--json",
        threaded_faults.url("/f/a.bin"),
        "-d",
        tmp_path / "d",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(threaded_faults.hits("/f/a.bin")[0].headers["Cookie"])
    assert {k: m.value for k, m in cookie.items()} == {
        "sid": "from-file",
        "lang": "en",
        "theme": "dark",
    }
    assert "\tsid\tfrom-file" in saved.read_text()
    assert all(json.loads(line) for line in result.stdout.splitlines())
    mirror = run_cli(
        "mirror",
        "--load-cookies",
        jar,
        "--proxy",
        f"http://127.0.0.1:{free_port()}",
        "--noproxy",
        "*",
        threaded_faults.url("/f/"),
        tmp_path / "m",
        cwd=tmp_path,
    )
    assert "--load-cookies" not in mirror.stderr  # the mirror takes the same flags
    assert mirror.returncode in (0, 1)
    assert threaded_faults.hits("/f/")[0].headers.get("Cookie") == "sid=from-file"
