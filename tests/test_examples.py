"""The examples run as documented, as real processes."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .servers import Server
from .support import listing, payload

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", str(EXAMPLES / "python_docs.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_python_docs_demo_runs_offline_and_writes_valid_archives(tmp_path: Path) -> None:
    result = run("--demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = listing(tmp_path / "python-docs")
    assert files == [f"python-{v}-docs-html.zip" for v in ["3.12.7", "3.13.2", "3.14.0"]]
    for name in files:
        with zipfile.ZipFile(tmp_path / "python-docs" / name) as archive:
            assert archive.testzip() is None
    assert result.stderr == ""


def test_python_docs_against_a_base_url_reports_a_missing_version(
    threaded_server: Server, tmp_path: Path
) -> None:
    base = threaded_server("/docs/")
    args = ["--base-url", base, "--versions", "3.12.7", "9.9.9", "3.13.2", "-d", "out"]
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert "9.9.9" in result.stderr
    assert "404" in result.stderr
    assert listing(tmp_path / "out") == [
        "python-3.12.7-docs-html.zip",
        "python-3.13.2-docs-html.zip",
    ]
    saved = (tmp_path / "out" / "python-3.12.7-docs-html.zip").read_bytes()
    assert saved == payload("python-3.12.7-docs-html.zip", 50_000)

    rerun = run(*args, cwd=tmp_path)
    assert rerun.stdout.count("already there") == 2
    assert threaded_server.stats.hits["/docs/3.12.7/python-3.12.7-docs-html.zip"] == 1
