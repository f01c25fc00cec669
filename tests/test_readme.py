"""The README's examples run as pasted (against the local server instead of python.org)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import Server
from .support import listing

README = Path(__file__).parent.parent / "README.md"
PYTHON_ORG = "https://www.python.org/ftp/python/doc"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def is_program(block: str) -> bool:
    return block.startswith("import ")


def test_readme_has_runnable_programs() -> None:
    """Every Python block of the README is a whole program (the docs' fragments run in
    test_docs.py)."""
    assert sum(map(is_program, python_blocks())) == len(python_blocks()) >= 2


@pytest.mark.parametrize(
    "block", [b for b in python_blocks() if is_program(b)], ids=lambda b: b.split("\n")[-2]
)
def test_readme_programs_run_as_pasted(block: str, threaded_server: Server, tmp_path: Path) -> None:
    source = block.replace(PYTHON_ORG, threaded_server("/docs").rstrip("/"))
    assert source != block, "the example no longer downloads from python.org"

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "-X", "dev", "-c", source],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    first = run()
    assert "docs-html.zip" in first
    written = listing(tmp_path)
    assert written, "the example wrote nothing"
    assert not [name for name in written if name.endswith(".part")]
    if "9.9.9" in block:
        assert first.count("saved") == 2
        assert "failed" in first
        assert "404" in first
        assert "9.9.9" not in "".join(written)
    again = run()  # a rerun works too, skipping what is there, and says so
    if "9.9.9" in block:
        assert again.count("skipped") == 2
        assert "saved" not in again
        assert "0 bytes" not in again
