"""Download the HTML documentation archives of several Python versions, concurrently.

The classic asyncio example (download_many with gather, a 404 check, a generator writer),
grown up: bounded concurrency, a missing version is reported next to the others instead of
stopping them, each archive appears under its name only once complete, and a rerun skips the
archives already there.

    python examples/python_docs.py                                # from python.org
    python examples/python_docs.py --versions 3.13.2 3.14.0 -d docs/
    python examples/python_docs.py --demo                         # offline: a local demo server
    python examples/python_docs.py --base-url http://127.0.0.1:8000/ftp/python/doc/

Exit status: 0 when every archive is in place, 1 when any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

import adownload

PYTHON_ORG = "https://www.python.org/ftp/python/doc/"
VERSIONS = ["3.12.7", "3.13.2", "3.14.0"]


def archive_url(base_url: str, version: str) -> str:
    return f"{base_url.rstrip('/')}/{version}/python-{version}-docs-html.zip"


async def fetch_docs(base_url: str, versions: list[str], dest: str, jobs: int) -> int:
    urls = [archive_url(base_url, version) for version in versions]
    failed = 0
    limits = adownload.Limits(max_transfers=jobs, max_per_host=jobs)
    async with adownload.Downloader(dest=dest, limits=limits) as dl:
        async for outcome in dl.as_completed(urls):
            if outcome.skipped:
                print(f"=  {outcome.path} (already there)")
            elif outcome.ok:
                print(f"ok {outcome.path} ({outcome.size:,} bytes, {outcome.elapsed:.2f}s)")
            else:
                failed += 1
                print(f"!! {outcome.url}: {outcome.error}", file=sys.stderr)
    return 1 if failed else 0


# --- an offline stand-in for python.org, for --demo ----------------------------------------


def _fake_archive(version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"python-{version}-docs-html/index.html",
            f"<html><title>Python {version} documentation</title>" + "<p>demo</p>" * 5000,
        )
    return buffer.getvalue()


@asynccontextmanager
async def demo_server() -> AsyncIterator[str]:
    """Serve generated archives on 127.0.0.1; yields the base URL."""

    async def archive(request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if request.match_info["name"] != f"python-{version}-docs-html.zip":
            raise web.HTTPNotFound()
        return web.Response(body=_fake_archive(version), content_type="application/zip")

    app = web.Application()
    app.router.add_get("/ftp/python/doc/{version}/{name}", archive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/ftp/python/doc/"
    finally:
        await runner.cleanup()


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=VERSIONS, metavar="X.Y.Z")
    parser.add_argument("--base-url", default=PYTHON_ORG, help="default: %(default)s")
    parser.add_argument("-d", "--dest", default="python-docs", help="default: %(default)s")
    parser.add_argument("-j", "--jobs", type=int, default=4, help="default: %(default)s")
    parser.add_argument(
        "--demo", action="store_true", help="serve generated archives from 127.0.0.1 (offline)"
    )
    args = parser.parse_args(argv)
    if args.demo:
        async with demo_server() as base_url:
            return await fetch_docs(base_url, args.versions, args.dest, args.jobs)
    return await fetch_docs(args.base_url, args.versions, args.dest, args.jobs)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
