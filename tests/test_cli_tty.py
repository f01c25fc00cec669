"""The progress display, run in a pseudo-terminal and read back as a screen.

The command runs with its standard streams on a pty (python's `pty`, so no tmux is needed); what
it writes is fed to `Screen`, a small terminal that understands what rich's live display sends
(carriage return, line feed, cursor up, erase line; colours are dropped). The tests assert on
the screen as a person would see it: during the run, and when the command has ended.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .cli_support import COMMAND, cli_env
from .servers import FaultServer
from .support import listing, payload

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


class Screen:
    """The visible text of a terminal of `width` columns, fed with what a program writes."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def feed(self, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                match = _CSI.match(text, i)
                assert match is not None, (
                    f"an escape sequence the test does not know: {text[i : i + 10]!r}"
                )
                self._csi(match[1], match[2])
                i = match.end()
                continue
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
                while len(self.lines) <= self.row:
                    self.lines.append([])
            else:
                assert char >= " ", f"a control character on the screen: {char!r}"
                line = self.lines[self.row]
                line.extend(" " * (self.col - len(line) + 1))
                line[self.col] = char
                self.col += 1
            i += 1

    def _csi(self, args: str, command: str) -> None:
        if command == "A":  # cursor up
            self.row = max(0, self.row - int(args or 1))
        elif command == "K":  # erase in line
            assert args == "2"
            self.lines[self.row] = []
        # "m" (colours) and "?25l" / "?25h" (hide and show the cursor) change no text.

    def text(self) -> list[str]:
        """The screen's lines, trailing blanks removed."""
        lines = ["".join(line).rstrip() for line in self.lines]
        while lines and not lines[-1]:
            lines.pop()
        return lines


def run_in_terminal(
    args: list[str],
    cwd: Path,
    width: int = 200,
    interrupt_when: Callable[[list[str]], bool] | None = None,
) -> tuple[int, list[list[str]]]:
    """Run `adownload ARGS` on a pty; return the exit status and the screens seen, the last
    one being the screen after the command ended. Send SIGINT (what Ctrl-C sends) once a
    screen satisfies `interrupt_when`."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, width, 0, 0))
    env = cli_env(TERM="xterm-256color")
    env.pop("COLUMNS")  # the width comes from the terminal
    screen = Screen(width)
    screens = []
    with subprocess.Popen(
        [*COMMAND, *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env
    ) as process:
        os.close(slave)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1)
                if not ready:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the program ended and the pty is gone
                    break
                if not data:
                    break
                screen.feed(data)
                screens.append(screen.text())
                if interrupt_when is not None and interrupt_when(screens[-1]):
                    interrupt_when = None
                    process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
        finally:
            os.close(master)
            if process.poll() is None:
                process.kill()
    return process.returncode, screens


def test_the_screen_shows_bars_while_downloading_and_a_summary_at_the_end(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    # slow.bin fails once (a retry), then arrives in pieces: long enough to be seen on screen.
    threaded_faults.plan("/f/slow.bin", ["status:503", "drip:20000:0.05"])
    threaded_faults.plan("/f/gone.bin", ["status:404"])
    slow = threaded_faults.url("/f/slow.bin", size=400_000)
    quick = threaded_faults.url("/f/quick.bin")
    gone = threaded_faults.url("/f/gone.bin")
    status, screens = run_in_terminal(
        ["--retry-wait", "0", "--tries", "2", slow, quick, gone], tmp_path
    )

    assert status == 1
    assert listing(tmp_path) == ["quick.bin", "slow.bin"]
    assert (tmp_path / "slow.bin").read_bytes() == payload("slow.bin", 400_000)

    # While it runs: the overall bar (files done of the total, bytes, speed) over a bar for
    # the active transfer (its name, bytes of the total, speed, time left).
    during = [
        screen for screen in screens if any(line.startswith("  slow.bin ") for line in screen)
    ]
    assert during, "the transfer's bar never showed"
    overall = [line for line in during[-1] if re.match(r"\d/3 files ", line)]
    assert len(overall) == 1
    assert "━" in overall[0]
    assert " KiB" in overall[0]
    bar = next(line for line in during[-1] if line.startswith("  slow.bin "))
    assert "━" in bar
    assert re.search(r"\d+\.\d/390\.6 KiB", bar)
    assert "KiB/s" in bar

    # At the end: the bars are gone; the retry and the failure, printed as they happened,
    # stay above the summary.
    final = screens[-1]
    assert not any("━" in line for line in final)
    retried, failed = sorted(final[:2], reverse=True)  # in the order they happened
    assert retried.startswith(f"retrying {slow} in 0.0 s (attempt 1 failed: HTTP 503")
    assert failed.startswith(f"failed {gone}: HTTP 404")
    assert final[2].startswith("2 downloaded, 0 skipped, 1 failed: 391.6 KiB in ")
    assert final[3:5] == ["failed:", f"  {gone}: HTTP 404 Not Found"]
    assert len(final) == 5


def test_quiet_and_json_draw_no_bars_on_a_terminal(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    url = threaded_faults.url("/f/a.bin")
    status, screens = run_in_terminal(["-q", url], tmp_path)
    assert status == 0
    assert screens == []
    status, screens = run_in_terminal(["--json", "--overwrite", url], tmp_path)
    assert status == 0
    assert all(line.startswith("{") for line in screens[-1])
    assert (tmp_path / "a.bin").read_bytes() == payload("a.bin", 1024)


def test_ctrl_c_on_a_terminal_takes_the_bars_down_and_says_how_to_continue(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    threaded_faults.plan("/f/big.bin", ["pause_after:100000"])
    url = threaded_faults.url("/f/big.bin", size=300_000)

    def transfer_shown(screen: list[str]) -> bool:
        return any(line.startswith("  big.bin ") for line in screen)

    status, screens = run_in_terminal([url], tmp_path, interrupt_when=transfer_shown)

    assert status == 130
    final = screens[-1]
    assert not any("━" in line for line in final)
    assert re.match(r"0 downloaded, 0 skipped, 0 failed, 1 cut short: 97\.7 KiB in ", final[0])
    assert final[1] == (
        "adownload: interrupted. Kept 1 partial download (big.bin.part; 97.7 KiB)."
        " Run the same command again to continue it: files already complete are skipped."
    )
    assert len(final) == 2
    assert listing(tmp_path) == ["big.bin.part", "big.bin.part.state"]  # bytes, validators
    assert not (tmp_path / "big.bin").exists()


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_a_mixed_batch_fits_every_width_shows_bytes_and_a_stall(
    threaded_faults: FaultServer, tmp_path: Path, width: int
) -> None:
    # One large file (about 1.5 s), a few small ones, one failure, one that stalls for good.
    threaded_faults.plan("/f/large.bin", ["drip:100000:0.05"])
    threaded_faults.plan("/f/stalled.bin", ["pause_after:30000"])
    threaded_faults.plan("/f/missing.bin", ["status:404"])
    large = threaded_faults.url("/f/large.bin", size=3_000_000)
    stalled = threaded_faults.url("/f/stalled.bin", size=100_000)
    missing = threaded_faults.url("/f/missing.bin")
    small = [threaded_faults.url(f"/f/small{i}.bin", size=20_000) for i in range(5)]
    status, screens = run_in_terminal(
        ["--tries", "1", "-T", "4.5", large, stalled, missing, *small], tmp_path, width=width
    )

    assert status == 1
    small_files = [f"small{i}.bin" for i in range(5)]
    # The stalled file failed with its bytes kept, to be continued.
    assert listing(tmp_path) == [
        "large.bin",
        *small_files,
        "stalled.bin.part",
        "stalled.bin.part.state",
    ]
    assert (tmp_path / "large.bin").read_bytes() == payload("large.bin", 3_000_000)
    # No line of the live display is wider than the terminal: a wider one would wrap, and the
    # display would leave torn copies of itself behind.
    for screen in screens:
        for line in screen:
            if "━" in line:
                assert len(line) <= width, (width, line)
    # Once every file has started, the overall line counts bytes, with a percentage.
    overall = [line for screen in screens for line in screen if re.match(r"\d/8 files ", line)]
    assert any(re.search(r"\d+%\s+[\d.]+( [KM]iB)?/3\.\d MiB", line) for line in overall), overall
    # The stalled transfer says so while it waits (Progress events stop coming).
    assert any(
        line.startswith("  stall") and re.search(r"%.*\bstalled\b", line)
        for screen in screens
        for line in screen
    )
    final = screens[-1]
    assert f"failed {missing}: HTTP 404 Not Found" in final
    assert any(line.startswith("6 downloaded, 0 skipped, 2 failed: 3.0 MiB in ") for line in final)
    if width == 80:
        # The command line's guide shows this display at 80 columns: a screen it really shows.
        seen = {_shape(line) for screen in screens for line in screen}
        for line in _guide_picture():
            assert len(line) <= width, line
            assert _shape(line) in seen, (line, sorted(seen))


GUIDE = Path(__file__).parent.parent / "docs" / "guides" / "cli.md"


def _guide_picture() -> list[str]:
    """The guide's picture of the display (the text block after "80 columns")."""
    text = GUIDE.read_text()
    start = text.index("```text\n", text.index("(80 columns, a mixed batch)")) + len("```text\n")
    return text[start : text.index("```", start)].splitlines()


def _shape(line: str) -> str:
    """A line with its numbers, port and bar fill left out: what stays from run to run."""
    line = re.sub(r"\d+(\.\d+)?", "9", line)
    line = re.sub(r"[━╸╺]+", "━", line)
    return " ".join(line.split())


def test_the_mirror_shows_its_transfers_on_a_terminal_while_they_run(
    threaded_faults: FaultServer, tmp_path: Path
) -> None:
    # wget -m users see something before a file completes: the same live lines as downloads.
    threaded_faults.plan("/f/slow.bin", ["drip:20000:0.05"])
    (tmp_path / "list.txt").write_text(
        threaded_faults.url("/f/slow.bin", size=300_000) + "\n" + threaded_faults.url("/f/q.bin")
    )
    status, screens = run_in_terminal(["mirror", "list.txt", "copy"], tmp_path)
    assert status == 0, screens[-1]
    during = [s for s in screens if any(line.startswith("  slow.bin ") for line in s)]
    assert during, "the transfer's line never showed"
    bar = next(line for line in during[-1] if line.startswith("  slow.bin "))
    assert "━" in bar
    assert re.search(r"\d+\.\d/293\.0 KiB", bar), bar
    final = screens[-1]
    assert not any("━" in line for line in final)  # the bars are gone at the end
    assert any(line.startswith("new copy/f/slow.bin (293.0 KiB)") for line in final), final
    assert any(line.startswith("2 new, 0 updated") for line in final), final
    assert (tmp_path / "copy" / "f" / "slow.bin").read_bytes() == payload("slow.bin", 300_000)
