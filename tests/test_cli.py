"""The `adownload` command, run as a subprocess against the fault server on 127.0.0.1.

Each test checks the exit status, the bytes on disk, the files that must not be there, and what
the command printed.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import adownload
from adownload import Existing, Limits, Retry, Segments, Timeout
from adownload._cli.args import parse_options
from adownload._cli.shared import UsageError, parse_rate, parse_size
from adownload.cli import main

from .cli_support import COMMAND, cli_env, has_control_characters, read_all, run_cli
from .servers import FaultServer, Server
from .support import listing, payload

# --- success, failure, and what is printed ------------------------------------------------


def test_urls_are_saved_and_exit_status_is_0(threaded_faults: FaultServer, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    urls = [threaded_faults.url(f"/f/{n}.bin", size=s) for n, s in (("a", 70_000), ("b", 3))]
    result = run_cli("-d", dest, *urls, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (dest / "a.bin").read_bytes() == payload("a.bin", 70_000)
    assert (dest / "b.bin").read_bytes() == payload("b.bin", 3)
    assert listing(dest) == ["a.bin", "b.bin"]
    # Not a terminal: a line per file, the summary on stderr, and no control characters.
    saved = sorted(result.stdout.splitlines())
    assert len(saved) == 2
    assert saved[0].startswith(f"saved {dest / 'a.bin'} (68.4 KiB in ")
    assert saved[1].startswith(f"saved {dest / 'b.bin'} (3 B in ")
    assert result.stderr.startswith("2 downloaded, 0 skipped, 0 failed: 68.4 KiB in ")
    assert len(result.stderr.splitlines()) == 1
    assert not has_control_characters(result.stdout + result.stderr)

    again = run_cli("-d", dest, *urls, cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.count("skipped") == 2
    assert again.stderr.startswith("0 downloaded, 2 skipped, 0 failed: 0 B in ")
    assert listing(dest) == ["a.bin", "b.bin"]


def test_some_failed_exit_status_is_1_with_a_summary_of_which_and_why(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    threaded_faults.plan("/f/gone.bin", ["status:404"])
    threaded_faults.plan("/f/busy.bin", ["status:503"])
    ok = threaded_faults.url("/f/ok.bin")
    gone = threaded_faults.url("/f/gone.bin")
    busy = threaded_faults.url("/f/busy.bin")
    result = run_cli("--tries", "1", ok, gone, busy, cwd=tmp_path)

    assert result.returncode == 1
    assert listing(tmp_path) == ["ok.bin"]
    assert (tmp_path / "ok.bin").read_bytes() == payload("ok.bin", 1024)
    lines = result.stderr.splitlines()
    # Each failure as it happens, then the summary that says which failed and why.
    assert sum(line.startswith(f"failed {gone}: ") for line in lines) == 1
    summary = lines[lines.index("failed:") - 1 :]
    assert summary[0].startswith("1 downloaded, 0 skipped, 2 failed: 1.0 KiB in ")
    assert sorted(summary[2:]) == sorted(
        [f"  {gone}: {_why(lines, gone)}", f"  {busy}: {_why(lines, busy)}"]
    )
    assert "404" in _why(lines, gone)
    assert "503" in _why(lines, busy)
    assert [hit.step for hit in threaded_faults.hits("/f/busy.bin")] == ["status:503"]


def _why(lines: list[str], url: str) -> str:
    return next(line for line in lines if line.startswith(f"failed {url}: ")).split(": ", 1)[1]


def test_retries_are_shown_as_they_happen(threaded_faults: FaultServer, tmp_path: Path) -> None:
    threaded_faults.plan("/f/flaky.bin", ["status:503", "cut_after:500", "ok"])
    url = threaded_faults.url("/f/flaky.bin", size=2000)
    result = run_cli("--retry", "2", "--retry-wait", "0", url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "flaky.bin").read_bytes() == payload("flaky.bin", 2000)
    retries = [line for line in result.stderr.splitlines() if line.startswith("retrying")]
    assert len(retries) == 2
    assert "attempt 1 failed" in retries[0]
    assert "503" in retries[0]
    assert "attempt 2 failed" in retries[1]


def test_quiet_prints_errors_only(threaded_faults: FaultServer, tmp_path: Path) -> None:
    ok = threaded_faults.url("/f/ok.bin")
    assert run_cli("-q", ok, cwd=tmp_path).stdout == ""
    result = run_cli("-q", "--overwrite", ok, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    threaded_faults.plan("/f/gone.bin", ["status:404"])
    gone = threaded_faults.url("/f/gone.bin")
    result = run_cli("-q", ok, gone, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"failed {gone}: ")
    assert lines[1] == "1 of 2 downloads failed"
    assert listing(tmp_path) == ["ok.bin"]


def test_json_prints_one_object_per_event(threaded_faults: FaultServer, tmp_path: Path) -> None:
    threaded_faults.plan("/f/gone.bin", ["status:404"])
    url = threaded_faults.url("/f/a.bin", size=300_000)
    gone = threaded_faults.url("/f/gone.bin")
    result = run_cli("--json", "--tries", "1", url, gone, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr == ""
    records = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [(r["type"], r.get("url")) for r in records]
    assert kinds[0][0] == "queued"
    assert {("queued", url), ("started", url), ("progress", url), ("finished", url)} <= set(kinds)
    assert ("finished", gone) in kinds
    assert ("started", gone) not in kinds
    started = next(r for r in records if r["type"] == "started" and r["url"] == url)
    assert started["total"] == 300_000
    assert started["path"] == "a.bin"  # as the command line gave it: relative to the cwd
    progress = [r for r in records if r["type"] == "progress" and r["url"] == url]
    assert progress[-1]["bytes"] == progress[-1]["total"] == 300_000
    finished = {r["url"]: r for r in records if r["type"] == "finished"}
    assert finished[url]["ok"] is True
    assert finished[url]["bytes"] == 300_000
    assert finished[gone]["ok"] is False
    assert finished[gone]["error_type"] == "HTTPStatusError"
    assert finished[gone]["status"] == 404
    assert records[-1]["type"] == "summary"
    assert (records[-1]["downloaded"], records[-1]["failed"], records[-1]["bytes"]) == (
        1,
        1,
        300_000,
    )
    assert records[-1]["interrupted"] is False
    assert (tmp_path / "a.bin").read_bytes() == payload("a.bin", 300_000)
    assert listing(tmp_path) == ["a.bin"]


def test_output_name_and_checksum(threaded_faults: FaultServer, tmp_path: Path) -> None:
    url = threaded_faults.url("/f/a.bin", size=5000)
    digest = hashlib.sha256(payload("a.bin", 5000)).hexdigest()
    result = run_cli("-o", "named.bin", "--checksum", f"sha-256={digest}", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["named.bin"]
    assert (tmp_path / "named.bin").read_bytes() == payload("a.bin", 5000)

    wrong = hashlib.sha256(b"something else").hexdigest()
    result = run_cli("-d", "sub", "--checksum", f"sha256:{wrong}", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "checksum" in result.stderr.lower()
    assert listing(tmp_path / "sub") == []


def test_max_filesize_refuses_a_larger_file(threaded_faults: FaultServer, tmp_path: Path) -> None:
    small = threaded_faults.url("/f/small.bin", size=1000)
    big = threaded_faults.url("/f/big.bin", size=5000)
    result = run_cli("--max-filesize", "4K", small, big, cwd=tmp_path)
    assert result.returncode == 1
    assert listing(tmp_path) == ["small.bin"]
    assert "big.bin" in result.stderr


def test_python_dash_m_help_shows_examples(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "examples:" in result.stdout
    for flag in ("--split", "--continue", "--no-continue", "--checksum", "--limit-rate"):
        assert flag in result.stdout
    assert "adownload mirror URL DIR" in result.stdout  # the subcommand is discoverable
    assert listing(tmp_path) == []


# --- bad input: one line, exit status 2, nothing touched ----------------------------------

GOOD = "http://127.0.0.1:9/never-contacted.bin"


BAD_INPUT = [
    (["http://"], "no host"),
    (["not a url"], "not absolute"),
    (["gopher://example.org/a.iso"], "unsupported URL scheme 'gopher'"),
    (["-i", "missing.txt"], "cannot read the input file missing.txt"),
    (["-i", "."], "cannot read the input file ."),
    (["-d", "afile", GOOD], "is not a directory"),
    (["-d", "afile/below", GOOD], "afile is a file"),
    (["--checksum", "sha256:xyz", GOOD], "64 hex digits"),
    (["--checksum", "nohash:00", GOOD], "unknown checksum algorithm"),
    (["--checksum", "sha256", GOOD], "checksum must look like"),
    (["--checksum", "md5:" + "0" * 32, GOOD, GOOD], "exactly one URL"),
    (["-o", "x.bin", GOOD, GOOD], "exactly one URL"),
    (["-j", "-1", GOOD], "expected a whole number of 1 or more, not '-1'"),
    (["-x", "0", GOOD], "expected a whole number of 1 or more"),
    (["-s", "-4", GOOD], "expected a whole number of 1 or more"),
    (["--tries", "0", GOOD], "0 (try forever) is not supported"),
    (["--retry=-1", GOOD], "0 or more"),
    (["--retry-wait=-1", GOOD], "0 or more"),
    (["-T", "-5", GOOD], "above 0"),
    (["--limit-rate=-5M", GOOD], "expected a size"),
    (["--limit-rate", "0", GOOD], "at least 1 byte per second"),
    (["--limit-rate", "10Q", GOOD], "expected a size"),
    (["--max-filesize=-1", GOOD], "expected a size"),
    (["-H", "no colon", GOOD], "expected 'Name: value'"),
    (["--frobnicate", GOOD], "unknown option --frobnicate (see --help)"),
    (["--tmestamping", GOOD], "unknown option --tmestamping; did you mean --timestamping?"),
    (["--limitrate=1M", GOOD], "unknown option --limitrate; did you mean --limit-rate?"),
    (["-C", "100", GOOD], "only '-C -' is supported"),
    (["-A", "*.zip", GOOD], "-A is the User-Agent here, as in curl"),
    (["-A", "zip,pdf", GOOD], "to keep only some files, use --include"),
    (["-O", "-", "--json", GOOD], "--json cannot go there too"),
    (["-N", "--overwrite", GOOD], "--overwrite and -N/--timestamping say different things"),
    (["-c", "--rename", GOOD], "--rename and -c/--continue say different things"),
    (["example.org/a.zip"], "; did you mean http://example.org/a.zip?"),
    (["localhost:8000/a.zip"], "; did you mean http://localhost:8000/a.zip?"),
    ([], "no URLs given"),
]
#: One case of each kind the issue names, run as a subprocess; main() runs them all in-process
#: (starting Python and aiohttp takes most of a second on a busy machine).
SUBPROCESS_CASES = {0, 2, 3, 5, 7, 12}


@pytest.mark.parametrize(
    ("args", "says"), [case for i, case in enumerate(BAD_INPUT) if i in SUBPROCESS_CASES]
)
def test_bad_input_is_one_line_and_exit_status_2(
    args: list[str], says: str, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_bytes(b"precious")
    result = run_cli(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("adownload: error: ")
    assert says in result.stderr
    assert listing(tmp_path) == ["afile"]
    assert (tmp_path / "afile").read_bytes() == b"precious"


@pytest.mark.parametrize(("args", "says"), BAD_INPUT)
def test_bad_input_in_process(
    args: list[str],
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "afile").write_bytes(b"precious")
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("adownload: error: ")
    assert says in err
    assert listing(tmp_path) == ["afile"]


def test_an_existing_output_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    result = run_cli("-o", "taken", GOOD, cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr
        == "adownload: error: -o/--output: taken is a directory (use -d for a directory)\n"
    )


# --- flags map onto the library's options -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("300", 300),
        ("64K", 64 << 10),
        ("64k", 64 << 10),
        ("1.5M", 3 << 19),
        ("10MB", 10 << 20),
        ("10MiB", 10 << 20),
        ("2G", 2 << 30),
        (".5k", 512),
        ("0", 0),
    ],
)
def test_sizes_take_binary_suffixes_as_wget_and_aria2c(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "-1", "1e3", "M", "10 M/s/s", "1,5M", "inf", "nan", "10X"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(text)


def test_a_rate_is_positive() -> None:
    assert parse_rate("10M") == 10 << 20
    assert parse_rate("500K/s") == 500 << 10
    with pytest.raises(ValueError, match="at least 1 byte"):
        parse_rate("0.1")


def test_flags_map_to_the_library_options(tmp_path: Path) -> None:
    options = parse_options(
        [
            *("-d", str(tmp_path), "-j", "3", "-x", "2", "-s", "8", "-k", "1M"),
            *("--limit-rate", "10M", "--max-filesize", "2G", "--no-continue"),
            *("--tries", "7", "--retry-wait", "45", "--retry-max-time", "120"),
            *("--connect-timeout", "5", "-T", "7", "-m", "600"),
            *("--lowest-speed-limit", "1K", "--speed-time", "20", "--max-redirs", "0"),
            *("-U", "tester/1.0", "-H", "X-A: 1", "--compressed", "--rename"),
            GOOD,
        ]
    )
    assert options.limits == Limits(max_transfers=3, max_per_host=2, rate=10 << 20)
    assert options.download.segments == Segments(count=8, min_size=1 << 20)
    assert options.download.max_size == 2 << 30
    assert options.download.resume is False
    assert options.download.retry.attempts == 7
    retry = options.download.retry
    assert (retry.backoff, retry.max_delay, retry.budget) == (45, 45, 120)
    assert options.download.timeout == Timeout(
        connect=5, read=7, total=600, min_speed=1024, min_speed_window=20
    )
    assert options.download.max_redirects == 0
    assert options.headers == {"X-A": "1", "User-Agent": "tester/1.0"}
    assert options.download.decode_content is True
    assert options.download.existing is Existing.RENAME

    defaults = parse_options([GOOD])
    assert defaults.download.resume is True
    assert defaults.limits == Limits()
    assert defaults.download.segments == Segments()
    assert defaults.download.retry == Retry()
    assert defaults.download.existing is Existing.SKIP
    assert parse_options(["--retry", "0", GOOD]).download.retry.attempts == 1
    assert parse_options(["-c", GOOD]).download.resume is True
    with pytest.raises(UsageError, match="not allowed with argument"):
        parse_options(["--tries", "2", "--retry", "2", GOOD])


# --- Ctrl-C -------------------------------------------------------------------------------


def interrupt(
    faults: FaultServer, path: str, args: list[str], cwd: Path, **env: str
) -> tuple[str, str]:
    """Run `adownload --json ARGS`, wait until the server paused `path` mid-body and the bytes
    had time to arrive, send SIGINT; return stdout and stderr, checking the exit status is 130.

    (A paused body sends no Progress event: they are sent as bytes arrive, so the server's log
    says when the pause began.)
    """
    with subprocess.Popen(
        [*COMMAND, "--json", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if json.loads(line)["type"] == "started":
                    break
            deadline = time.monotonic() + 10
            while not faults.hits(path) and time.monotonic() < deadline:
                time.sleep(0.01)  # another file may have started first
            hit = faults.hits(path)[0]
            kind, pause = hit.step.split(":")
            assert kind == "pause_after"
            while hit.body_sent < int(pause) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # for the client to read what was sent: not a speed assertion
            process.send_signal(signal.SIGINT)
            # Not communicate(): the line iterator above may hold output read ahead.
            out, err = process.stdout.read(), read_all(process.stderr)
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["interrupted"] is True
    return out, err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sigint_leaves_a_resumable_part_and_a_rerun_fetches_only_the_rest(
    threaded_faults: FaultServer, tmp_path: Path, loop: str
) -> None:
    # On both event loops the command can run on (ADOWNLOAD_LOOP, see adownload._client.loop).
    pytest.importorskip(loop)
    size = 400_000
    threaded_faults.plan("/f/big.bin", ["pause_after:150000"])
    url = threaded_faults.url("/f/big.bin", size=size)
    _, err = interrupt(threaded_faults, "/f/big.bin", [url], tmp_path, ADOWNLOAD_LOOP=loop)

    assert re.match(
        r"adownload: interrupted\. Kept 1 partial download \(big\.bin\.part; \d{2,3}\.\d KiB\)\."
        r" Run the same command again to continue it: files already complete are skipped\.$",
        err.splitlines()[-1],
    ), err
    assert listing(tmp_path) == ["big.bin.part", "big.bin.part.state"]
    kept = (tmp_path / "big.bin.part").read_bytes()
    assert 0 < len(kept) <= 150_000
    assert kept == payload("big.bin", size)[: len(kept)]

    result = run_cli("--json", url, cwd=tmp_path, env=cli_env(ADOWNLOAD_LOOP=loop))
    assert result.returncode == 0, result.stderr
    *_, finished, summary = map(json.loads, result.stdout.splitlines())
    assert (finished["bytes"], finished["resumed_from"]) == (size, len(kept))
    assert (summary["downloaded"], summary["bytes"]) == (1, size - len(kept))
    assert listing(tmp_path) == ["big.bin"]
    assert (tmp_path / "big.bin").read_bytes() == payload("big.bin", size)
    last = threaded_faults.hits("/f/big.bin")[-1]
    assert last.range_start == len(kept)
    assert last.body_sent == size - len(kept)


def test_sigint_with_no_continue_keeps_nothing(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    threaded_faults.plan("/f/big.bin", ["pause_after:50000"])
    url = threaded_faults.url("/f/big.bin", size=200_000)
    _, err = interrupt(threaded_faults, "/f/big.bin", ["--no-continue", url], tmp_path)

    assert err.startswith(
        "adownload: interrupted. 1 download cut short kept nothing (--no-continue)."
    )
    assert "Without --no-continue, partial downloads are kept and continued." in err
    assert os.listdir(tmp_path) == []


def test_sigint_against_a_server_without_ranges_promises_no_continuation(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    # As python -m http.server: a Last-Modified, but no Accept-Ranges and no ranges served.
    threaded_faults.plan("/f/big.bin", ["pause_after:50000"])
    url = threaded_faults.url("/f/big.bin", size=200_000, ranges="none", validators="lm")
    _, err = interrupt(threaded_faults, "/f/big.bin", [url], tmp_path)

    assert err.startswith(
        "adownload: interrupted. 1 download cut short kept nothing: its server does not allow"
        " resuming (no ranges, or no ETag or Last-Modified), so the next run starts it over."
    ), err
    assert "to continue" not in err
    assert os.listdir(tmp_path) == []  # no .part that a rerun would only overwrite


# --- the command line's guide ----------------------------------------------------------------

GUIDE = Path(__file__).parent.parent / "docs" / "guides" / "cli.md"
PYTHON_ORG = "https://www.python.org/ftp/python/doc"


def command_line_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def test_the_guides_command_line_examples_run_as_pasted(
    threaded_server: Server, tmp_path: Path
) -> None:
    blocks = command_line_blocks()
    assert len(blocks) == 5
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "adownload").exists(), "the console script is not installed"
    env = cli_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    outputs = []
    for block in blocks:
        script = block.replace(PYTHON_ORG, threaded_server("/docs").rstrip("/"))
        assert script != block
        result = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        outputs.append(result)

    assert sorted(listing(tmp_path)) == [
        "docs.meta4",
        "python-3.13.2-docs-html.zip",
        "python-docs",
        "python-docs/3.12",
        "python-docs/3.12/python-3.12.7-docs-html.zip",
        "python-docs/3.13",
        "python-docs/3.13/python-3.13.2-docs-html.zip",
        "python-docs/latest-docs-html.zip",
        "python-docs/python-3.12.7-docs-html.zip",
        "python-docs/python-3.13.2-docs-html.zip",
        "urls.txt",
    ]
    assert (tmp_path / "python-docs/latest-docs-html.zip").read_bytes() == (
        tmp_path / "python-3.13.2-docs-html.zip"
    ).read_bytes()
    summary, failed = outputs[1].stdout.splitlines()
    assert json.loads(summary)["type"] == "summary"
    assert json.loads(summary)["skipped"] == 1
    assert failed == "exit status 1"
    assert "404" in outputs[1].stderr
    # -O - to a pipe, --spider, -N: the bytes of the file saved first, nothing new on disk.
    digest, found, there, timestamped = outputs[2].stdout.splitlines()
    assert (
        digest.split()[0]
        == hashlib.sha256((tmp_path / "python-3.13.2-docs-html.zip").read_bytes()).hexdigest()
    )
    assert found.startswith("found http://127.0.0.1:")
    assert found.endswith("/docs/3.12.7/python-3.12.7-docs-html.zip (HTTP 200, 48.8 KiB)")
    assert there == "it is there"
    assert timestamped.startswith(("saved python-docs/", "skipped python-docs/"))
    assert outputs[3].stdout.count("saved") == 2
    # -M: the file the Metalink names, where it names it.
    assert outputs[4].stdout.startswith("saved python-docs/3.13/python-3.13.2-docs-html.zip (")


def test_no_print_in_the_library() -> None:
    """The library logs through logging.getLogger("adownload"); only the CLI writes output."""
    source = Path(adownload.__file__).parent
    modules = list(source.rglob("*.py"))
    assert len(modules) > 80, "the library's modules, in every subpackage"
    for module in modules:
        if module.parent.name == "_cli" or module.name in ("cli.py", "__main__.py"):
            continue
        tree = ast.parse(module.read_text())
        calls = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ]
        assert calls == [], f"print() in {module.name} at lines {calls}"


def test_control_characters_from_a_url_are_printed_escaped(tmp_path: Path) -> None:
    result = run_cli("--tries", "1", "http://127.0.0.1:9/a\x1b[2J.bin", cwd=tmp_path)
    assert result.returncode == 1
    assert not has_control_characters(result.stdout + result.stderr)
    assert "failed http://127.0.0.1:9/a\\x1b[2J.bin: " in result.stderr
    assert listing(tmp_path) == []


def test_the_download_command_imports_neither_the_mirror_nor_metalink_parsing() -> None:
    """Start-up: a download run pays for no module it does not use."""
    code = (
        "import sys, adownload.cli; "
        "print(sorted(m for m in sys.modules if m.startswith(('adownload._mirror', "
        "'adownload._cli.mirror', 'sqlite3', 'defusedxml', 'distributed', "
        "'adownload._disk.unpack', 'tarfile', 'zipfile', 'publicsuffixlist'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_library_traceback_is_shown_a_line_at_a_time() -> None:
    import io
    import logging

    from adownload._cli.report import LibraryLog, Stream

    out = io.StringIO()
    handler = LibraryLog(Stream(out), "adownload")
    logger = logging.getLogger("adownload.test-library-log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("boom\x1b[2J")
        except ValueError:
            logger.exception("unexpected error downloading %s", "http://127.0.0.1/a")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "adownload: error: unexpected error downloading http://127.0.0.1/a"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom\\x1b[2J"  # control characters still escaped
    assert "\\x0a" not in out.getvalue()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_standard_output_closed_is_a_clear_error_for_o_dash_and_no_matter_otherwise(
    threaded_server: Server, tmp_path: Path, loop: str
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    command = " ".join(shlex.quote(part) for part in COMMAND)
    url = shlex.quote(threaded_server("/files/closed.bin", size=3000))
    env = cli_env(ADOWNLOAD_LOOP=loop)
    to_stdout = subprocess.run(
        ["bash", "-c", f"{command} -O - {url} >&-"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert to_stdout.returncode == 2, to_stdout.stderr
    assert "adownload: error: -O -: standard output is closed" in to_stdout.stderr
    assert "Traceback" not in to_stdout.stderr
    assert os.listdir(tmp_path) == []
    to_file = subprocess.run(
        ["bash", "-c", f"{command} -d out {url} >&-"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert to_file.returncode == 0, to_file.stderr
    assert "Traceback" not in to_file.stderr
    assert (tmp_path / "out" / "closed.bin").read_bytes() == payload("closed.bin", 3000)


def test_sigint_of_a_segmented_download_counts_the_bytes_its_state_holds(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    # A segmented part is the whole file's size on disk, holes and all: what it holds for the
    # next run is what its state says is done.
    size = 8 << 20
    threaded_faults.plan("/f/big.bin", ["pause_after:100000"] * 8)
    url = threaded_faults.url("/f/big.bin", size=size)
    out, err = interrupt(threaded_faults, "/f/big.bin", ["-s", "4", "-k", "1M", url], tmp_path)
    found = re.search(r"Kept 1 partial download \(big\.bin\.part; ([\d.]+) (KiB|MiB)\)", err)
    assert found is not None, err
    said = float(found[1]) * (1024 if found[2] == "KiB" else 1 << 20)
    state = json.loads((tmp_path / "big.bin.part.state").read_text())
    held = sum(end - start for start, end in state["ranges"])
    assert state["sparse"] is True
    assert (tmp_path / "big.bin.part").stat().st_size > 2 * held  # the holes
    assert abs(said - held) <= max(1024, held * 0.01), (said, held)
    # The summary's bytes and speed count the same way (Reporter.count_cut_short).
    assert json.loads(out.splitlines()[-1])["interrupted"] is True
