"""Every code block of the documentation runs: the README's and each page's under `docs/`.

A page is run as a reader would paste it, top to bottom, in a fresh directory:

- a block with a title (```` ```text title="urls.txt" ````) is a file the page shows; it is
  written to the directory first;
- the page's `python` blocks run in order in one interpreter and one namespace (so a block may
  use what an earlier one of the page defined), `await` allowed at the top level, with
  warnings as errors;
- then its `sh` blocks run with bash, the console script on PATH.

The hosts the pages name are this test's servers on 127.0.0.1: python.org and example.org
(and the mirrors) are one nginx serving generated files, `ftp.example.org` is pyftpdlib,
`tcp://scheduler:8786` a Dask `LocalCluster`; `SUBSTITUTIONS` says which is which. Nothing
leaves the machine. A block that must not run here says why in an HTML comment on the line
before it (`<!-- not run: REASON -->`), and `NOT_RUN` lists each one, so none is left out
quietly. The pages' own stories (what the CLI prints, what the mirror changes) are checked by
the tests beside the features: test_cli.py, test_mirror.py, test_readme.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .ftp_servers import PASSWORD, USER, pyftpdlib_server
from .nginx_server import run_nginx
from .support import free_port

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(
    r"(?P<before>^[^\n]*\n)?^```(?P<lang>[\w-]*)(?P<attrs>[^\n]*)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
_TITLE = re.compile(r'title="([^"]+)"')
_NOT_RUN = re.compile(r"<!-- not run: (.+) -->")

#: Blocks that do not run here, by page and first line: each needs what a test cannot have.
NOT_RUN = {
    ("README.md", "python3 -m venv .venv && .venv/bin/pip install -e . && .venv"),
    ("README.md", "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' "),
    ("README.md", ".venv/bin/python -m pytest                 # the tests, on f"),
    ("quickstart.md", "python3 -m venv .venv && .venv/bin/pip install -e ."),
    ("guides/workers.md", "dask scheduler --host 127.0.0.1 --port 8786 &               "),
    ("guides/stores.md", "pip install -e '.[cloud]'"),
}

#: The files the pages download, by path on the stand-in server.
IRIS = (
    b"sepal_length,sepal_width,petal_length,petal_width,species\n"
    b"5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n"
    b"7.0,3.2,4.7,1.4,versicolor\n6.3,3.3,6.0,2.5,virginica\n"
)
VERSIONS = ["3.12.7", "3.13.2", "3.14.0"]


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    code: str
    not_run: str | None

    @property
    def first_line(self) -> str:
        """The first 60 characters of the first line: how `NOT_RUN` names a block."""
        return self.code.split("\n", 1)[0][:60]


def blocks_of(page: Path) -> list[Block]:
    blocks = []
    for match in _FENCE.finditer(page.read_text()):
        title = _TITLE.search(match["attrs"])
        not_run = _NOT_RUN.search(match["before"] or "")
        blocks.append(
            Block(
                match["lang"],
                title[1] if title else None,
                match["code"],
                not_run[1] if not_run else None,
            )
        )
    return blocks


def page_id(page: Path) -> str:
    return page.relative_to(ROOT / "docs").as_posix() if page.parent != ROOT else page.name


def runnable(page: Path) -> bool:
    return any(b.lang in ("python", "sh") and b.not_run is None for b in blocks_of(page))


def _zip(version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"python-{version}-docs-html/index.html", f"<h1>Python {version}</h1>")
        archive.writestr(f"python-{version}-docs-html/library.html", os.urandom(40_000).hex())
    return buffer.getvalue()


def write_world(root: Path) -> None:
    """What python.org and example.org serve, as far as the pages ask."""
    for version in VERSIONS:
        folder = root / "ftp/python/doc" / version
        folder.mkdir(parents=True)
        (folder / f"python-{version}-docs-html.zip").write_bytes(_zip(version))
    data = root / "example.org/data"
    data.mkdir(parents=True)
    (data / "iris.csv").write_bytes(IRIS)
    docs = (root / "ftp/python/doc/3.13.2/python-3.13.2-docs-html.zip").read_bytes()
    for host in ("example.org", "mirror-a.example", "mirror-b.example"):
        pub = root / host / "pub"
        pub.mkdir(parents=True, exist_ok=True)
        (pub / "big.iso").write_bytes(docs)
    (root / "example.org/python-docs.meta4").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<metalink xmlns="urn:ietf:params:xml:ns:metalink">\n'
        '  <file name="3.13/python-3.13.2-docs-html.zip">\n'
        f'    <hash type="sha-256">{hashlib.sha256(docs).hexdigest()}</hash>\n'
        '    <url priority="1">https://www.python.org/ftp/python/doc/3.13.2/'
        "python-3.13.2-docs-html.zip</url>\n"
        "  </file>\n</metalink>\n"
    )


@dataclass
class World:
    substitutions: dict[str, str]
    root: Path


@contextlib.contextmanager
def s3_store(root: Path) -> Iterator[str]:
    """moto's S3 server with a public bucket `python-docs` of two archives; its endpoint."""
    from .store_servers import boto, moto_server

    with moto_server() as endpoint:
        client = boto(endpoint)
        client.create_bucket(Bucket="python-docs")
        for version in ("3.12.7", "3.13.2"):
            archive = root / "ftp/python/doc" / version / f"python-{version}-docs-html.zip"
            key = f"{version.rsplit('.', 1)[0]}/{archive.name}"
            client.put_object(
                Bucket="python-docs", Key=key, Body=archive.read_bytes(), ACL="public-read"
            )
        yield endpoint


@contextlib.contextmanager
def dask_scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    root = tmp_path / "www"
    root.mkdir()
    write_world(root)
    (tmp_path / "ftp").mkdir()
    (tmp_path / "ftp/pub").mkdir()
    (tmp_path / "ftp/pub/README").write_bytes(b"read me\n")
    (tmp_path / "ftp/private").mkdir()
    (tmp_path / "ftp/private/data.tar").write_bytes(b"\0" * 10_240)
    with (
        run_nginx(root, tmp_path / "nginx", autoindex=True) as nginx,
        pyftpdlib_server(tmp_path / "ftp") as ftp,
    ):
        base = f"http://127.0.0.1:{nginx.port}"
        port = free_port()  # the mirror page's http.server: 8000 may be taken
        # The longest first: a URL is rewritten by the most specific prefix that fits.
        yield World(
            {
                "https://www.python.org": base,
                "https://example.org": f"{base}/example.org",
                "https://mirror-a.example": f"{base}/mirror-a.example",
                "https://mirror-b.example": f"{base}/mirror-b.example",
                "ftp://alice:s3cret@ftp.example.org": f"ftp://{USER}:{PASSWORD}@127.0.0.1:{ftp}",
                "ftp://ftp.example.org": f"ftp://127.0.0.1:{ftp}",
                "127.0.0.1:8000": f"127.0.0.1:{port}",
                "http.server 8000": f"http.server {port}",
            },
            root,
        )


def substitute(code: str, substitutions: dict[str, str]) -> str:
    for old in sorted(substitutions, key=len, reverse=True):
        code = code.replace(old, substitutions[old])
    return code


_RUNNER = """
import asyncio, ast, json, sys, warnings
warnings.simplefilter("error")
namespace = {"__name__": "__main__"}
for number, source in enumerate(json.load(sys.stdin), 1):
    code = compile(source, f"block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
"""


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=page_id)
def test_every_code_block_runs(page: Path, world: World, tmp_path: Path) -> None:
    blocks = blocks_of(page)
    name = page_id(page)
    for block in blocks:
        if block.not_run is not None:
            assert (name, block.first_line) in NOT_RUN, f"{name}: {block.first_line!r}"
    cwd = tmp_path / "reader"
    cwd.mkdir()
    # The Dask page's shared directory is one under this test's.
    substitutions = {**world.substitutions, "/shared/": f"{cwd}/shared/"}
    runs = [b for b in blocks if b.not_run is None]
    for block in runs:
        if block.title is not None and block.lang not in ("python", "sh"):
            (cwd / block.title).write_text(substitute(block.code, substitutions))
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "ADOWNLOAD_CACHE": str(tmp_path / "cache"),
        "NO_COLOR": "1",
    }
    python = [substitute(b.code, substitutions) for b in runs if b.lang == "python"]
    with contextlib.ExitStack() as stack:
        if any("s3://" in block.code for block in runs):
            endpoint = stack.enter_context(s3_store(world.root))
            substitutions = {**substitutions, "http://127.0.0.1:9000": endpoint}
            python = [code.replace("http://127.0.0.1:9000", endpoint) for code in python]
        if any("tcp://scheduler:8786" in code for code in python):
            address = stack.enter_context(dask_scheduler())
            python = [code.replace("tcp://scheduler:8786", address) for code in python]
        if python:
            result = subprocess.run(
                [sys.executable, "-X", "dev", "-c", _RUNNER],
                input=json.dumps(python),
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{name}:\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
        for block in runs:
            if block.lang != "sh":
                continue
            script = substitute(block.code, substitutions)
            result = subprocess.run(
                ["bash", "-e", "-c", script],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, f"{name}: {block.first_line}\n{result.stderr}"
            assert "Traceback" not in result.stderr, result.stderr
    assert not list(cwd.rglob("*.part")), "a page left a .part behind"


def test_the_pages_have_code_that_runs() -> None:
    """The harness finds what it should: a page per guide, every fence closed."""
    ids = [page_id(p) for p in PAGES if runnable(p)]
    assert "README.md" in ids
    assert "quickstart.md" in ids
    assert len(ids) >= 14
    for page in PAGES:
        assert page.read_text().count("```") % 2 == 0, f"{page_id(page)}: an unclosed fence"
    listed = {(page_id(p), b.first_line) for p in PAGES for b in blocks_of(p) if b.not_run}
    assert listed == NOT_RUN


def docstring_examples() -> list[tuple[str, str]]:
    """The `pycon` examples of the package's docstrings (the reference shows them): their code,
    by module."""
    examples = []
    for module in sorted((ROOT / "src" / "adownload").rglob("*.py")):
        text = module.read_text()
        for match in re.finditer(r"^\s*```pycon\n(.*?)^\s*```$", text, re.MULTILINE | re.DOTALL):
            code = [
                line.strip()[4:] if line.strip()[:4] in (">>> ", "... ") else ""
                for line in match[1].splitlines()
                if line.strip().startswith((">>>", "..."))
            ]
            examples.append((module.relative_to(ROOT).as_posix(), "\n".join(code)))
    return examples


def test_the_docstring_examples_compile() -> None:
    """The reference's examples come from the docstrings: each is Python that compiles (the
    guides run the same calls against real servers)."""
    import ast

    examples = docstring_examples()
    assert len(examples) >= 20
    for module, code in examples:
        compile(code, module, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    """`mkdocs build --strict`: every page in the navigation, every link and anchor found, the
    reference rendered from the docstrings, the generated parts made from the code."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    site = tmp_path / "site"
    errors = (site / "reference/errors/index.html").read_text()
    for name in ("FTPReplyError", "ChecksumMismatchError", "StallError", "MetalinkError"):
        assert name in errors, name
    cli = (site / "reference/cli/index.html").read_text()
    for flag in ("--timestamping", "--max-redirs", "--delete", "--max-size"):
        assert flag in cli, flag
    api = (site / "reference/api/index.html").read_text()
    assert "adownload.Downloader" in api
    assert "&gt;&gt;&gt;" in api  # the docstrings' examples, as code


def test_the_reference_has_every_public_name() -> None:
    """Each name a program can import from `adownload` has its section in the reference."""
    import adownload

    api = (ROOT / "docs/reference/api.md").read_text()
    documented = set(re.findall(r"^::: adownload\.(\w+)$", api, re.MULTILINE))
    assert documented == set(adownload.__all__) - {"__version__"}
    runners = (ROOT / "docs/reference/runners.md").read_text()
    for name in ("workers.ProcessRunner", "distributed.DaskRunner", "distributed.Report"):
        assert f"::: adownload.{name}" in runners
    assert "::: adownload.metalink" in (ROOT / "docs/reference/metalink.md").read_text()
