"""Input files for `adownload -i`: the aria2c-style format, mirrors and options, streaming."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from adownload import Segments
from adownload._cli.input import Entry, InputReader, RejectedEntry, parse_lines, request_for

from .cli_support import COMMAND, cli_env, read_all, run_cli
from .servers import FaultServer
from .support import listing, payload

HEX = "ab" * 32


def entries(text: str | bytes) -> list[Entry]:
    data = text.encode() if isinstance(text, str) else text
    return list(parse_lines(data.split(b"\n")))


# --- parsing ------------------------------------------------------------------------------


def test_one_url_a_line_with_blank_lines_and_comments_ignored() -> None:
    parsed = entries("# a list\n\nhttp://h/a\r\n   \n  # an indented comment\nhttp://h/b\n")
    assert [(e.line, e.urls) for e in parsed] == [(3, ("http://h/a",)), (6, ("http://h/b",))]
    assert all(e.problem is None for e in parsed)


def test_several_urls_on_a_line_are_mirrors_of_one_file() -> None:
    (entry,) = entries("http://h/a.iso\thttp://m1/a.iso  http://m2/a.iso\n")
    assert entry.urls == ("http://h/a.iso", "http://m1/a.iso", "http://m2/a.iso")
    request = request_for(entry, Path("d"), source="list")
    assert str(request.url) == "http://h/a.iso"
    assert request.mirrors == ("http://m1/a.iso", "http://m2/a.iso")
    assert request.dest == Path("d")


@pytest.mark.parametrize("spelling", [f"sha-256={HEX}", f"sha256:{HEX}", f"SHA256:{HEX.upper()}"])
def test_options_under_a_url(spelling: str) -> None:
    (entry,) = entries(
        "http://h/a.iso\n"
        "  dir=isos/2024\n"
        "\tout=a-2024.iso\n"
        f"  checksum={spelling}\n"
        "  header=Authorization: Bearer x\n"
        "  header=X-Trace: 1\n"
        "  split=8\n"
    )
    assert entry.problem is None
    request = request_for(entry, Path("d"), source="list", segments=Segments(min_size=1 << 20))
    assert request.path == Path("d/isos/2024/a-2024.iso")
    assert request.checksum == f"sha256:{HEX}"
    assert request.headers == {"Authorization": "Bearer x", "X-Trace": "1"}
    assert request.segments == Segments(count=8, min_size=1 << 20)


def test_options_unknown_to_this_command_are_ignored_and_named() -> None:
    (entry,) = entries("http://h/a\n  gid=2089b05ecca3d829\n  continue=true\n  out=b\n")
    assert entry.problem is None
    assert entry.ignored == ("gid", "continue")
    assert request_for(entry, Path("."), source="list").path == Path("b")


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("  out=a\nhttp://h/b\n", 1, "an option line with no URL line above it"),
        ("http://h/a\n  checksum=sha256:12\n", 2, "64 hex digits"),
        ("http://h/a\n  checksum=nohash:12\n", 2, "unknown checksum algorithm"),
        ("http://h/a\n  out=x\n  out=y\n", 3, "out= is given twice"),
        ("http://h/a\n  out=../x\n", 2, "must not go up with '..'"),
        ("http://h/a\n  dir=/etc\n", 2, "relative path inside the destination"),
        ("http://h/a\n  split=0\n", 2, "split= takes a whole number"),
        ("http://h/a\n  header=nocolon\n", 2, "expected header=Name: value"),
        ("http://h/a\n  just words\n", 2, "expected an option as 'key=value'"),
        ("gopher://h/a\n", 1, "unsupported URL scheme"),
        ("http://h/a http://\n", 1, "no host"),
        (b"http://h/\xff\n", 1, "not UTF-8"),
    ],
)
def test_a_bad_entry_is_rejected_with_its_line(text: str | bytes, line: int, says: str) -> None:
    bad = entries(text)[0]
    with pytest.raises(RejectedEntry, match=rf"^list:{line}: .*") as caught:
        request_for(bad, Path("."), source="list")
    assert says in str(caught.value)


# --- the command with input files ---------------------------------------------------------


def test_an_input_file_with_mirrors_and_options(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    threaded_faults.plan("/f/m.bin", ["status:404"])  # the first URL fails, the mirror works
    a_digest = hashlib.sha256(payload("a.bin", 3000)).hexdigest()
    listed = (
        "# downloads\n"
        f"{threaded_faults.url('/f/a.bin', size=3000)}\n"
        "  dir=sub\n"
        "  out=first.bin\n"
        f"  checksum=sha-256={a_digest}\n"
        "\n"
        f"{threaded_faults.url('/f/m.bin')}\t{threaded_faults.alt_url('/f/m.bin')}\n"
        f"{threaded_faults.url('/f/h.bin')}\n"
        "  header=X-From-List: yes\n"
        "  gid=123\n"
        f"{threaded_faults.url('/f/bad.bin')}\n"
        "  checksum=sha256:00\n"
    )
    (tmp_path / "urls.txt").write_text(listed)
    result = run_cli("-i", "urls.txt", "-d", "out", cwd=tmp_path)

    assert result.returncode == 1
    out = tmp_path / "out"
    assert listing(out) == ["h.bin", "m.bin", "sub", "sub/first.bin"]
    assert (out / "sub/first.bin").read_bytes() == payload("a.bin", 3000)
    assert (out / "m.bin").read_bytes() == payload("m.bin", 1024)
    assert [hit.host.split(":")[0] for hit in threaded_faults.hits("/f/m.bin")] == [
        "127.0.0.1",
        "127.0.0.2",
    ]
    assert threaded_faults.hits("/f/h.bin")[0].headers["X-From-List"] == "yes"
    assert threaded_faults.hits("/f/bad.bin") == []
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "adownload: warning: urls.txt:8: ignoring the option gid= here and below"
        " (known: out, dir, checksum, header, split)"
    )
    assert "3 downloaded, 0 skipped, 1 failed" in result.stderr
    assert "urls.txt:12: the sha256 checksum must be 64 hex digits" in result.stderr


def test_urls_from_standard_input_start_before_the_input_ends(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    first = threaded_faults.url("/f/first.bin")
    second = threaded_faults.url("/f/second.bin")
    with subprocess.Popen(
        [*COMMAND, "--json", "-i", "-"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    ) as process:
        try:
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(f"{first}\n")
            process.stdin.flush()
            # The first file is done while standard input is still open.
            for line in process.stdout:
                record = json.loads(line)
                if record["type"] == "finished":
                    assert record["url"] == first
                    assert record["ok"] is True
                    break
            assert (tmp_path / "first.bin").read_bytes() == payload("first.bin", 1024)
            assert not (tmp_path / "second.bin").exists()
            process.stdin.write(f"{second}\n")
            process.stdin.close()
            # Not communicate(): the line iterator above may hold output read ahead.
            out, err = process.stdout.read(), read_all(process.stderr)
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert (summary["type"], summary["downloaded"], summary["failed"]) == ("summary", 2, 0)
    assert listing(tmp_path) == ["first.bin", "second.bin"]


def test_input_files_and_arguments_together(threaded_faults: FaultServer, tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text(threaded_faults.url("/f/b.bin") + "\n")
    result = run_cli(
        threaded_faults.url("/f/a.bin"),
        "-i",
        "one.txt",
        "-i",
        "-",
        cwd=tmp_path,
        stdin=threaded_faults.url("/f/c.bin"),  # no newline at the end
    )
    assert result.returncode == 0, result.stderr
    assert listing(tmp_path) == ["a.bin", "b.bin", "c.bin", "one.txt"]
    assert result.stderr.startswith("3 downloaded, 0 skipped, 0 failed")


async def test_a_long_input_is_parsed_as_it_is_read_in_flat_memory(tmp_path: Path) -> None:
    lines = 20_000
    long = "x" * 200
    path = tmp_path / "urls.txt"
    with path.open("w") as file:
        for i in range(lines):
            file.write(f"http://127.0.0.1:9/{long}/{i:08}.bin\n  out={long}-{i}.bin\n")
    size = path.stat().st_size
    reader = InputReader.open(str(path))
    tracemalloc.start()
    try:
        count = 0
        async for entry in reader.entries():
            assert entry.urls == (f"http://127.0.0.1:9/{long}/{count:08}.bin",)
            assert entry.out == f"{long}-{count}.bin"
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == lines
    # The read-ahead is a few 64 KiB chunks: far below the file's size, whatever that is.
    assert size > 8 << 20
    assert peak < 1 << 20
