"""No secret shown: nothing adownload prints, logs or stores holds a URL's password or the value
of a credential header, whichever way the URL or the header reached it.

Each test plants distinctive secrets and then searches every channel for them: log records
(all levels), the ERROR record of a raising hook, the command's standard output and error
(lines and JSON), usage errors, and the files adownload writes (resume state, mirror state).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import adownload
from adownload import Downloader, InvalidRequestError, Request, mirror
from adownload._mirror.state import STATE_NAME

from .autoindex_server import Archive, serve_archive
from .cli_support import run_cli
from .servers import FaultServer
from .support import FAST

PASSWORD = "pw-7f3a9c"
USER = "alice-4e1b"
TOKEN = "token-d82c51"
COOKIE = "cookie-93ab0e"
SECRETS = (PASSWORD, USER, TOKEN, COOKIE)


def with_userinfo(url: str) -> str:
    return url.replace("://", f"://{USER}:{PASSWORD}@", 1)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} shown in: {text[:2000]}"


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        record.getMessage() + (record.exc_text or "") for record in caplog.records
    ) + "\n".join(caplog.text.splitlines())


async def test_library_logs_outcomes_and_errors_hold_no_password(
    faults: FaultServer, dest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="adownload")
    faults.plan("/f/a.bin", ["status:503", "ok"])
    ok_url = with_userinfo(faults.url("/f/a.bin"))
    missing_url = with_userinfo(faults.url("/status/404/b.bin"))
    async with Downloader(dest=dest, retry=FAST) as dl:
        outcomes = await dl.download_many([ok_url, missing_url, "gopher://u:" + PASSWORD + "@h/x"])
    assert [o.ok for o in outcomes] == [True, False, False]
    assert (dest / "a.bin").read_bytes() == faults.content("/f/a.bin")
    assert outcomes[0].attempts == 2  # one Retrying on the way
    # The server did get the credentials, as Basic authentication.
    assert faults.hits("/f/a.bin")[0].headers["Authorization"].startswith("Basic ")
    for outcome in outcomes:
        assert_no_secret(repr(outcome))
        assert_no_secret(f"{outcome.url} {outcome.final_url} {outcome.error}")
        assert_no_secret(repr(outcome.error))
        assert_no_secret(repr(outcome.request))
        assert outcome.error is None or outcome.error.url is None or "@" not in outcome.error.url
    # The caller's own Request keeps the URL as given.
    assert outcomes[0].request is not None
    assert outcomes[0].request.url == ok_url
    assert outcomes[0].url == faults.url("/f/a.bin")
    assert_no_secret(log_text(caplog))
    assert "failed" in caplog.text  # the records are there, only without the password


async def test_a_raising_hook_is_logged_without_urls_credentials_or_header_values(
    faults: FaultServer, dest: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: adownload.Event) -> None:
        raise RuntimeError("display broke")

    headers = {"Authorization": f"Bearer {TOKEN}", "Cookie": f"s={COOKIE}"}
    async with Downloader(dest=dest, on_event=broken) as dl:
        outcome = await dl.download(Request(faults.url("/f/a.bin"), headers=headers))
        mirror_url = with_userinfo(faults.url("/f/b.bin"))
        await dl.download(Request(faults.url("/f/c.bin"), mirrors=[mirror_url]))
    assert outcome.ok
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors, "the hook's failures are logged"
    assert "display broke" in caplog.text
    assert_no_secret(log_text(caplog))
    # A Request's repr, wherever it turns up, hides credential values but names the header.
    shown = repr(Request(with_userinfo(faults.url("/f/a.bin")), headers=headers))
    assert_no_secret(shown)
    assert "Authorization" in shown


async def test_userinfo_and_an_authorization_header_together_are_refused_before_any_request(
    faults: FaultServer, dest: Path
) -> None:
    url = with_userinfo(faults.url("/f/a.bin"))
    async with Downloader(dest=dest) as dl:
        with pytest.raises(InvalidRequestError, match="Authorization") as caught:
            await dl.download(url, headers={"authorization": f"Bearer {TOKEN}"})
    assert_no_secret(str(caught.value))
    async with Downloader(dest=dest, headers={"Authorization": f"Bearer {TOKEN}"}) as dl:
        (outcome,) = await dl.download_many([url])
    assert isinstance(outcome.error, InvalidRequestError)
    assert_no_secret(str(outcome.error))
    assert faults.hits("/f/a.bin") == []  # nothing was sent
    assert list(dest.iterdir()) == []


def test_cli_lines_json_and_summary_hold_no_password(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    good = with_userinfo(threaded_faults.url("/f/a.bin"))
    missing = with_userinfo(threaded_faults.url("/status/404/b.bin"))
    for flags in ([], ["--json"], ["-q"]):
        threaded_faults.plan("/f/a.bin", ["status:503", "ok"])
        out = tmp_path / f"out{len(flags)}{''.join(flags)}"
        result = run_cli(*flags, "--retry-wait", "0.01", "-d", out, good, missing, cwd=tmp_path)
        assert result.returncode == 1
        assert_no_secret(result.stdout + result.stderr)
        assert (out / "a.bin").read_bytes() == threaded_faults.content("/f/a.bin")
        if flags == ["--json"]:
            events = [json.loads(line) for line in result.stdout.splitlines()]
            assert {e["type"] for e in events} >= {"retrying", "finished", "summary"}
            urls = [e["url"] for e in events if "url" in e]
            assert threaded_faults.url("/f/a.bin") in urls
        if not flags:
            assert "failed" in result.stderr
            assert "retrying" in result.stderr


def test_cli_input_file_errors_hold_no_password(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    good = with_userinfo(threaded_faults.url("/f/a.bin"))
    (tmp_path / "urls.txt").write_text(f"{good}\n  dir=../up\n{good}\n  split=many\n")
    for command in (["-i", "urls.txt", "-d", "out"], ["mirror", "urls.txt", "copy"]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.returncode == 1
        assert "urls.txt:2" in result.stderr  # the bad entry is reported, by its line
        assert_no_secret(result.stdout + result.stderr)


@pytest.mark.parametrize(
    "url",
    [
        f"file://{USER}:{PASSWORD}@127.0.0.1/x.zip",
        f"http://{USER}:{PASSWORD}@[::1/x.zip",
        f"http://{USER}:{PASSWORD}@/x.zip",
        f"gopher://{USER}:{PASSWORD}@127.0.0.1:1/x",
    ],
)
def test_usage_errors_hold_no_password(url: str, tmp_path: Path) -> None:
    result = run_cli("-d", tmp_path / "out", url, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip()
    assert_no_secret(result.stdout + result.stderr)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InvalidRequestError) as caught:
        Request(url)
    assert_no_secret(f"{caught.value} {caught.value.url} {caught.value!r}")


async def test_the_mirror_state_and_changes_hold_no_password(tmp_path: Path) -> None:
    tree = {"a.txt": b"alpha\n", "sub/b.txt": b"beta\n"}
    changes: list[adownload.MirrorChange] = []
    async with serve_archive(Archive(dict(tree))) as served:
        base = with_userinfo(served.base)
        report = await mirror(base, tmp_path / "copy", on_change=changes.append)
        assert report.failed == 0
        # A rerun still knows every file (the stored URL is compared without userinfo).
        again: list[adownload.MirrorChange] = []
        await mirror(base, tmp_path / "copy", on_change=again.append)
        # A list of URLs as the source: each URL is stored as it came, less its userinfo.
        listed = await mirror([base + "a.txt", base + "sub/b.txt"], tmp_path / "listed")
        assert listed.failed == 0
    assert (tmp_path / "listed/pub/a.txt").read_bytes() == b"alpha\n"
    assert (tmp_path / "copy/a.txt").read_bytes() == b"alpha\n"
    assert (tmp_path / "copy/sub/b.txt").read_bytes() == b"beta\n"
    assert {c.kind for c in again} == {"unchanged"}
    stored = b"".join(
        p.read_bytes()
        for name in ("copy", "listed")
        for p in (tmp_path / name).glob(STATE_NAME + "*")
    )
    assert stored
    for secret in SECRETS:
        assert secret.encode() not in stored
    assert_no_secret(" ".join(f"{c.url} {c.error}" for c in [*changes, *again]))
