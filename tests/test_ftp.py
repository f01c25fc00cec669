"""ftp:// downloads against real FTP servers on 127.0.0.1: aioftp's server in-process,
pyftpdlib in a subprocess, and the scripted raw server for broken replies."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from adownload import (
    ConnectTimeout,
    Downloader,
    FTPReplyError,
    IncompleteBodyError,
    Limits,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    Segments,
    Timeout,
    download,
)
from adownload._model.events import Event, Finished, Progress, Started
from adownload._protocols import splice as _splice

from .cli_support import COMMAND, cli_env, run_cli
from .ftp_servers import PASSWORD, USER, Script, ScriptedFtp, aioftp_server, pyftpdlib_server
from .servers import Server
from .support import FAST, MIB, ONCE, check_no_leaks, listing, payload, serve_in_thread

BIG = payload("ftp-big", 3 * MIB + 17)
SMALL = payload("ftp-small", 1000)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "ftproot"
    (root / "pub" / "sub").mkdir(parents=True)
    (root / "pub" / "big.bin").write_bytes(BIG)
    (root / "pub" / "small.bin").write_bytes(SMALL)
    (root / "pub" / "sub" / "deep.txt").write_bytes(b"deep\n")
    return root


# --- downloads from real servers -----------------------------------------------------------


@pytest.mark.parametrize("login", ["anonymous", "user"])
async def test_aioftp_server_files_arrive_whole_with_the_same_outcomes_and_events(
    tree: Path, dest: Path, login: str
) -> None:
    events: list[Event] = []
    auth = f"{USER}:{PASSWORD}@" if login == "user" else ""
    async with aioftp_server(tree) as port:
        base = f"ftp://{auth}127.0.0.1:{port}/pub/"
        async with Downloader(dest=dest, on_event=events.append) as dl:
            outcomes = await dl.download_many([base + "big.bin", base + "small.bin"])
    assert [o.ok for o in outcomes] == [True, True]
    assert (dest / "big.bin").read_bytes() == BIG
    assert (dest / "small.bin").read_bytes() == SMALL
    assert listing(dest) == ["big.bin", "small.bin"]
    big = outcomes[0]
    assert big.size == len(BIG)
    assert big.attempts == 1
    assert big.last_modified is not None
    assert big.last_modified.endswith(" GMT")
    assert PASSWORD not in big.url
    assert PASSWORD not in repr(big)
    started = [e for e in events if isinstance(e, Started) and e.url == big.url]
    assert started
    assert started[0].total == len(BIG)
    progress = [e for e in events if isinstance(e, Progress) and e.url == big.url]
    assert progress[-1].received == len(BIG)
    assert sum(isinstance(e, Finished) for e in events) == 2


async def test_pyftpdlib_files_arrive_whole(tree: Path, dest: Path) -> None:
    with pyftpdlib_server(tree) as port:
        base = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/pub/"
        async with Downloader(dest=dest) as dl:
            outcomes = await dl.download_many([base + "big.bin", base + "sub/deep.txt"])
    assert [o.ok for o in outcomes] == [True, True]
    assert (dest / "big.bin").read_bytes() == BIG
    assert (dest / "deep.txt").read_bytes() == b"deep\n"


async def test_a_missing_file_is_a_failed_outcome_with_the_reply_like_a_404(
    tree: Path, dest: Path
) -> None:
    async with aioftp_server(tree) as port, Downloader(dest=dest, retry=FAST) as dl:
        outcome = (await dl.download_many([f"ftp://127.0.0.1:{port}/pub/nope.bin"]))[0]
    assert isinstance(outcome.error, FTPReplyError)
    assert outcome.error.code == 550
    assert outcome.status == 550
    assert "550" in str(outcome.error)
    assert outcome.attempts == 1  # final: no retry
    assert listing(dest) == []


async def test_a_refused_login_is_final(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, login="530 login incorrect")
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=FAST) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin", auth="bob:wrong@")]))[0]
    assert isinstance(outcome.error, FTPReplyError)
    assert outcome.error.code == 530
    assert outcome.attempts == 1
    assert "wrong" not in str(outcome.error)
    assert listing(dest) == []


async def test_a_directory_url_is_refused(tree: Path, dest: Path) -> None:
    async with aioftp_server(tree) as port, Downloader(dest=dest) as dl:
        outcome = (await dl.download_many([f"ftp://127.0.0.1:{port}/pub/sub"]))[0]
    assert outcome.error is not None
    assert "directory" in str(outcome.error)
    assert listing(dest) == []


def test_the_sync_api_takes_ftp(tree: Path, tmp_path: Path) -> None:
    with serve_in_thread(lambda: aioftp_server(tree)) as port:
        outcome = download(f"ftp://127.0.0.1:{port}/pub/small.bin", dest=f"{tmp_path}/out/")
    assert outcome.ok
    assert (tmp_path / "out" / "small.bin").read_bytes() == SMALL


# --- resuming -------------------------------------------------------------------------------


async def test_a_broken_data_connection_is_continued_with_rest(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, cut={1: MIB})
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(ftp.url("/f.bin"))
    assert outcome.ok
    assert (dest / "f.bin").read_bytes() == BIG
    assert outcome.attempts == 2
    assert outcome.resumed_from == MIB
    assert f"REST {MIB}" in ftp.log
    assert listing(dest) == ["f.bin"]


@pytest.mark.parametrize("mlst", [False, True], ids=["SIZE", "MLST"])
async def test_a_body_longer_than_the_size_the_server_gave_is_never_saved(
    dest: Path, mlst: bool
) -> None:
    # The server says 1000 bytes and sends 1000 + 300: the second attempt must not take the
    # over-long part for a complete one.
    script = Script(files={"/a.bin": SMALL + b"x" * 300}, sizes={"/a.bin": 1000}, mlst=mlst)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=FAST) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin")]))[0]
    assert not outcome.ok
    assert isinstance(outcome.error, RemoteProtocolError)
    assert not (dest / "a.bin").exists()
    assert outcome.attempts == FAST.attempts
    assert all(
        not name.startswith("a.bin") or name.startswith("a.bin.part") for name in listing(dest)
    )


async def test_kill_9_then_a_rerun_continues_with_rest(dest: Path, tmp_path: Path) -> None:
    script = Script(files={"/f.bin": BIG}, pace=0.05)
    async with ScriptedFtp(script) as ftp:
        url = ftp.url("/f.bin")
        command = [*COMMAND, "-d", str(dest), url]
        process = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, env=cli_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        part = dest / "f.bin.part"
        for _ in range(400):
            await asyncio.sleep(0.025)
            if part.exists() and part.stat().st_size >= MIB:
                break
        process.kill()
        await process.wait()
        assert not (dest / "f.bin").exists()
        kept = part.stat().st_size
        assert kept >= MIB
        script.pace = 0
        rerun = await asyncio.create_subprocess_exec(
            *command, cwd=tmp_path, env=cli_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert await rerun.wait() == 0
        rests = ftp.commands("REST")
    assert rests
    assert int(rests[-1].split()[1]) > 0
    assert (dest / "f.bin").read_bytes() == BIG
    assert listing(dest) == ["f.bin"]


async def test_a_rerun_on_the_same_server_continues_the_part(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, cut={1: 2 * MIB})
    async with ScriptedFtp(script) as ftp:
        async with Downloader(dest=dest, retry=ONCE) as dl:
            first = await dl.download_many([ftp.url("/f.bin")])
        assert isinstance(first[0].error, IncompleteBodyError)
        async with Downloader(dest=dest) as dl:
            again = await dl.download(ftp.url("/f.bin"))
    assert again.ok
    assert again.resumed_from == 2 * MIB
    assert f"REST {2 * MIB}" in ftp.log
    assert (dest / "f.bin").read_bytes() == BIG
    assert listing(dest) == ["f.bin"]


async def test_a_changed_file_is_not_continued(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, cut={1: 2 * MIB})
    newer = payload("ftp-newer", len(BIG))
    async with ScriptedFtp(script) as ftp:
        async with Downloader(dest=dest, retry=ONCE) as dl:
            await dl.download_many([ftp.url("/f.bin")])
        script.files["/f.bin"] = newer
        script.mtime = "20261202080000"
        async with Downloader(dest=dest) as dl:
            again = await dl.download(ftp.url("/f.bin"))
    assert again.ok
    assert again.resumed_from == 0
    assert (dest / "f.bin").read_bytes() == newer
    assert not any(line.startswith("REST") for line in ftp.log[-6:])


async def test_a_server_that_refuses_rest_sends_the_whole_file(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, cut={1: MIB}, rest=False)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(ftp.url("/f.bin"))
    assert outcome.ok
    assert outcome.resumed_from == 0
    assert (dest / "f.bin").read_bytes() == BIG


async def test_a_complete_part_is_confirmed_without_a_transfer(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, final={1: "426 connection closed; aborted"})
    async with ScriptedFtp(script) as ftp:
        async with Downloader(dest=dest, retry=ONCE) as dl:
            first = await dl.download_many([ftp.url("/f.bin")])
        # Every byte came, but the server said the transfer failed: never a file.
        assert isinstance(first[0].error, IncompleteBodyError)
        assert not (dest / "f.bin").exists()
        assert (dest / "f.bin.part").stat().st_size == len(BIG)
        retrs = len(ftp.commands("RETR"))
        async with Downloader(dest=dest) as dl:
            again = await dl.download(ftp.url("/f.bin"))
    assert again.ok
    assert len(ftp.commands("RETR")) == retrs  # SIZE and MDTM said it is whole and current
    assert (dest / "f.bin").read_bytes() == BIG


# --- segments -------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["aioftp", "pyftpdlib"])
async def test_segments_over_several_connections(tree: Path, dest: Path, server: str) -> None:
    segments = Segments(count=4, min_size=MIB // 2)
    limits = Limits(max_transfers=2, max_per_host=8)

    async def run(port: int) -> None:
        url = f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/pub/big.bin"
        async with Downloader(dest=dest, segments=segments, limits=limits) as dl:
            outcome = await dl.download(url)
        assert outcome.ok

    if server == "aioftp":
        async with aioftp_server(tree) as port:
            await run(port)
    else:
        with pyftpdlib_server(tree) as port:
            await run(port)
    assert (dest / "big.bin").read_bytes() == BIG
    assert listing(dest) == ["big.bin"]


async def test_segments_use_rest_on_connections_of_their_own(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, hold=0.05)
    segments = Segments(count=3, min_size=MIB // 2)
    limits = Limits(max_per_host=3)
    async with ScriptedFtp(script) as ftp:
        async with Downloader(dest=dest, segments=segments, limits=limits) as dl:
            outcome = await dl.download(ftp.url("/f.bin"))
        assert outcome.ok
        assert len(ftp.commands("REST")) >= 2
        assert ftp.peak_sessions <= 3
    assert (dest / "f.bin").read_bytes() == BIG


# --- limits, timeouts, cancellation -----------------------------------------------------------


async def test_the_per_host_limit_counts_control_connections(dest: Path) -> None:
    files = {f"/f{i}.bin": payload(f"f{i}", 5000) for i in range(8)}
    script = Script(files=files, hold=0.05)
    async with ScriptedFtp(script) as ftp:
        async with Downloader(dest=dest, limits=Limits(max_transfers=8, max_per_host=2)) as dl:
            outcomes = await dl.download_many([ftp.url(name) for name in files])
        assert all(o.ok for o in outcomes)
        assert ftp.peak_sessions == 2
        # The pool reuses logins: two sessions for eight files.
        assert len(ftp.commands("USER")) == 2
    for name, data in files.items():
        assert (dest / name[1:]).read_bytes() == data


async def test_a_greeting_that_never_ends_is_bounded_by_the_timeouts(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, greeting_never_ends=True)
    timeout = Timeout(connect=0.5, read=0.5, total=5)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, timeout=timeout, retry=ONCE) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin")]))[0]
    # The read or connect timeout ended it, not the total one (a sibling, not a subclass).
    assert isinstance(outcome.error, ReadTimeout | ConnectTimeout)
    assert outcome.attempts == 1
    assert listing(dest) == []


@pytest.mark.parametrize("verb", ["FEAT", "SIZE", "RETR"])
async def test_a_reply_that_never_ends_is_cut_off_at_its_bound(dest: Path, verb: str) -> None:
    # Continuation lines as fast as the socket takes them: aioftp would keep every one.
    script = Script(files={"/a.bin": SMALL}, flood=verb)
    timeout = Timeout(connect=4, read=4)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, timeout=timeout, retry=ONCE) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin")]))[0]
    assert isinstance(outcome.error, RemoteProtocolError), outcome.error
    assert "a reply over 64 KiB that does not end" in str(outcome.error)
    assert listing(dest) == []


async def test_a_missing_closing_reply_is_a_timeout_and_never_a_file(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, silent_after_retr=True)
    timeout = Timeout(connect=1, read=0.5)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, timeout=timeout, retry=ONCE) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin")]))[0]
    assert isinstance(outcome.error, ReadTimeout)
    assert not (dest / "a.bin").exists()


async def test_a_transient_reply_is_retried(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, busy={1: "450 file busy, try later"})
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=FAST) as dl:
        outcome = await dl.download(ftp.url("/a.bin"))
    assert outcome.ok
    assert outcome.attempts == 2
    assert (dest / "a.bin").read_bytes() == SMALL


async def test_cancelling_keeps_a_resumable_part_and_leaks_nothing(dest: Path) -> None:
    script = Script(files={"/f.bin": BIG}, cut={1: MIB}, final={1: ""}, silent_after_retr=True)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=ONCE) as dl:
        task = asyncio.create_task(dl.download(ftp.url("/f.bin")))
        for _ in range(200):
            await asyncio.sleep(0.01)
            part = dest / "f.bin.part"
            if part.exists() and part.stat().st_size >= MIB:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not (dest / "f.bin").exists()
    assert (dest / "f.bin.part").read_bytes() == BIG[:MIB]
    assert (dest / "f.bin.part.state").exists()
    await check_no_leaks()


# --- hostile servers ------------------------------------------------------------------------


async def test_a_pasv_to_another_address_is_refused(dest: Path) -> None:
    # The FTP bounce: the reply names 127.0.0.2, not the server's 127.0.0.1.
    script = Script(files={"/a.bin": SMALL}, epsv=False, pasv_host="127,0,0,2")
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=ONCE) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin")]))[0]
    assert isinstance(outcome.error, RemoteProtocolError)
    assert "bounce" in str(outcome.error)
    assert ftp.data_connections == 0
    assert ftp.commands("RETR") == []
    assert listing(dest) == []


async def test_pasv_to_the_servers_own_address_works(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, epsv=False)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest) as dl:
        outcome = await dl.download(ftp.url("/a.bin"))
    assert outcome.ok
    assert (dest / "a.bin").read_bytes() == SMALL


async def test_a_data_connection_that_closes_early_is_incomplete(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, cut={1: 400})
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=ONCE) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin")]))[0]
    assert isinstance(outcome.error, IncompleteBodyError)
    assert outcome.error.received == 400
    assert outcome.error.expected == len(SMALL)
    assert not (dest / "a.bin").exists()


async def test_mlst_is_used_where_the_server_has_it(dest: Path) -> None:
    script = Script(files={"/a.bin": SMALL}, mlst=True)
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest) as dl:
        outcome = await dl.download(ftp.url("/a.bin"))
    assert outcome.ok
    assert ftp.commands("MLST")
    assert not ftp.commands("SIZE")
    assert outcome.last_modified == "Tue, 01 Dec 2026 12:00:00 GMT"


@pytest.mark.parametrize("path", ["/a%0D%0ADELE%20x.bin", "/a%00.bin"])
async def test_control_characters_in_the_path_never_reach_the_server(dest: Path, path: str) -> None:
    script = Script(files={"/a.bin": SMALL})
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest) as dl:
        outcome = (await dl.download_many([ftp.url("/a.bin").replace("/a.bin", path)]))[0]
    assert outcome.error is not None
    assert not any("DELE" in line for line in ftp.log)
    assert listing(dest) == []


# --- the command line -----------------------------------------------------------------------


def test_the_cli_downloads_ftp_urls_and_reads_netrc(tree: Path, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    out = tmp_path / "out"
    with serve_in_thread(lambda: aioftp_server(tree, anonymous=False)) as port:
        url = f"ftp://127.0.0.1:{port}/pub/small.bin"
        result = subprocess.run(
            [*COMMAND, "--json", "-d", str(out), url],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            env=cli_env(NETRC=str(netrc)),
        )
        # Without the netrc entry: anonymous, which this server refuses.
        refused = run_cli("-d", out, url.replace("small", "other"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "small.bin").read_bytes() == SMALL
    records = [json.loads(line) for line in result.stdout.splitlines()]
    finished = [r for r in records if r["type"] == "finished"]
    assert finished[0]["ok"] is True
    assert finished[0]["bytes"] == len(SMALL)
    assert PASSWORD not in result.stdout + result.stderr
    assert refused.returncode == 1
    assert "530" in refused.stdout + refused.stderr
    assert listing(out) == ["small.bin"]


# --- the kernel copy --------------------------------------------------------------------------

HUGE = payload("ftp-huge", _splice.SPLICE_MIN + 1_000_003)


@pytest.mark.skipif(not _splice.available, reason="splice(2) is Linux-only")
async def test_large_bodies_go_through_the_kernel_and_the_login_serves_the_next(
    dest: Path, copies: list[_splice.SpliceCopy]
) -> None:
    files = {"/a.bin": HUGE, "/b.bin": HUGE[::-1]}
    async with ScriptedFtp(Script(files=files)) as ftp:
        async with Downloader(dest=dest, limits=Limits(max_per_host=1)) as dl:
            outcomes = await dl.download_many([ftp.url("/a.bin"), ftp.url("/b.bin")])
        logins = len(ftp.commands("USER"))
    assert all(o.ok for o in outcomes)
    assert len(copies) == 2
    assert logins == 1  # the closing reply was read after each copy
    assert (dest / "a.bin").read_bytes() == HUGE
    assert (dest / "b.bin").read_bytes() == HUGE[::-1]


@pytest.mark.skipif(not _splice.available, reason="splice(2) is Linux-only")
@pytest.mark.parametrize("fault", ["426", "cut"])
async def test_a_broken_kernel_copied_body_is_incomplete_and_resumed(
    dest: Path, copies: list[_splice.SpliceCopy], fault: str
) -> None:
    half = len(HUGE) // 2
    script = Script(files={"/a.bin": HUGE})
    if fault == "426":
        script.final[1] = "426 connection closed; transfer aborted"
    else:
        script.cut[1] = half
    async with ScriptedFtp(script) as ftp, Downloader(dest=dest, retry=ONCE) as dl:
        first = (await dl.download_many([ftp.url("/a.bin")]))[0]
        assert isinstance(first.error, IncompleteBodyError)
        assert not (dest / "a.bin").exists()
        again = await dl.download(ftp.url("/a.bin"))
    assert copies
    assert again.ok
    assert (dest / "a.bin").read_bytes() == HUGE
    if fault == "cut":
        assert again.resumed_from == half


# --- ftp URLs wherever URLs are taken --------------------------------------------------------


async def test_an_ftp_mirror_of_a_failing_http_url_serves_the_file(
    tree: Path, dest: Path, server: Server
) -> None:
    async with aioftp_server(tree) as port, Downloader(dest=dest, retry=FAST) as dl:
        request = Request(
            server("/status/404/big.bin"), mirrors=[f"ftp://127.0.0.1:{port}/pub/big.bin"]
        )
        outcome = await dl.download(request)
    assert outcome.ok
    assert (dest / "big.bin").read_bytes() == BIG
    assert listing(dest) == ["big.bin"]


def test_an_input_file_takes_ftp_urls(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with serve_in_thread(lambda: aioftp_server(tree)) as port:
        entries = f"ftp://127.0.0.1:{port}/pub/small.bin\n  out=renamed.bin\n"
        result = run_cli("-d", out, "-i", "-", cwd=tmp_path, stdin=entries)
    assert result.returncode == 0, result.stderr
    assert (out / "renamed.bin").read_bytes() == SMALL
    assert listing(out) == ["renamed.bin"]


def test_ftp_proxy_is_refused_not_silently_ignored(tree: Path, tmp_path: Path) -> None:
    # ftp:// cannot go through a proxy here: a proxy the user named for it is refused, with
    # the command line's way around it, never bypassed.
    with serve_in_thread(lambda: aioftp_server(tree)) as port:
        url = f"ftp://127.0.0.1:{port}/pub/small.bin"
        proxy = {"ftp_proxy": "http://127.0.0.1:9"}
        refused = run_cli("-d", tmp_path / "out", url, cwd=tmp_path, env=proxy)
        direct = run_cli(
            "--noproxy", "127.0.0.1", "-d", tmp_path / "out", url, cwd=tmp_path, env=proxy
        )
    assert refused.returncode == 1
    assert "would go through the proxy http://127.0.0.1:9" in refused.stderr
    assert "--noproxy 127.0.0.1" in refused.stderr
    assert direct.returncode == 0, direct.stderr
    assert (tmp_path / "out" / "small.bin").read_bytes() == SMALL
