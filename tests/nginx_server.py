"""A real nginx for the tests that must meet a server no one on this project wrote: Debian's
nginx as a child process with its own config on 127.0.0.1, serving a directory with nginx's
defaults (`if_modified_since exact`, ranges, ETags), an HTML autoindex under `/html/`, and
nginx's JSON and XML listings under `/json/` and `/xml/`. `.ci/run` installs nginx; a machine
without it skips these tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import free_port

_CONF = """\
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    types {{ text/html html; application/zip zip; text/plain txt; }}
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {autoindex}
        location /html/ {{ alias {root}/; autoindex on; }}
        location /json/ {{ alias {root}/; autoindex on; autoindex_format json; }}
        location /xml/ {{ alias {root}/; autoindex on; autoindex_format xml; }}
    }}
}}
"""


@dataclass
class Nginx:
    port: int
    root: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def run_nginx(root: Path, prefix: Path, *, autoindex: bool = False) -> Iterator[Nginx]:
    """nginx on `root`; with `autoindex`, every directory lists its files (as python.org's
    download folders do), not only those under `/html/`."""
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if binary is None:
        pytest.skip("needs nginx")
    prefix.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):  # a port taken between the probe and nginx's bind: another one
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            _CONF.format(
                prefix=prefix, port=port, root=root, autoindex="autoindex on;" if autoindex else ""
            )
        )
        process = subprocess.Popen(
            [binary, "-p", f"{prefix}/", "-c", str(conf), "-e", "stderr"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.02)
        if process.poll() is None:
            break
        assert process.stderr is not None
        error = process.stderr.read().decode(errors="replace")
        process.stderr.close()
        if attempt == 4:
            raise RuntimeError(f"nginx did not start: {error}")
    try:
        yield Nginx(port, root)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    root = tmp_path / "www"
    root.mkdir()
    with run_nginx(root, tmp_path / "nginx") as server:
        yield server
