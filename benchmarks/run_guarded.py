"""Benchmark driver: the bare aiohttp loop plus the per-file guarantees' own work, no library.

Usage: python run_guarded.py URLS_FILE DEST [-j N] [--loop asyncio|uvloop] [--objects]

What `run_aiohttp.py` does, and for each file the system calls and checks that adownload's
guarantees cost at the least, written as directly as they can be: a lock on the final path,
a global and a per-host permit, the existing-file check (`lstat` of the final name), the probe
for a resume state (`open` of `NAME.part.state`), the `.part` created with
`O_EXCL | O_NOFOLLOW`, the mark that says it is ours set on it and taken off, the body streamed
chunk by chunk under a read watchdog (one timer), its length checked, and the no-clobber commit
(`link` to the final name, `unlink` of the part). No events, retries, resume, digests or
names from the server: the floor under the library's per-file path, so that the benchmark
shows what the guarantees cost apart from what the library's own structure costs.

With ``--objects`` it also makes, per file, what the library must hand its caller and check
on the way: an ``adownload.Request`` (the URL's checks), the name through ``safe_filename``,
the library's own read timeout (``IdleTimeout``) instead of the bare timer, and an
``adownload.Outcome``: the floor with the library's public objects, still without its engine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

import aiohttp
from yarl import URL

#: The mark adownload sets on a `.part` it made (`_disk/files.py`).
MARK = "user.adownload.part"
READ_TIMEOUT = 30.0


class Watchdog:
    """One timer per request: cancels the task when no chunk came for READ_TIMEOUT seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last = loop.time()
        self.task = asyncio.current_task()
        self.handle = loop.call_at(self.last + READ_TIMEOUT, self.check)

    def check(self) -> None:
        deadline = self.last + READ_TIMEOUT
        if self.loop.time() >= deadline:
            assert self.task is not None
            self.task.cancel()
        else:
            self.handle = self.loop.call_at(deadline, self.check)


async def download(urls: list[str], dest: Path, jobs: int, objects: bool = False) -> int:
    if objects:
        import adownload
        from adownload._model.names import safe_filename
        from adownload._model.util import IdleTimeout
    todo = iter(urls)
    outcomes: list[object] = []
    failed: list[str] = []
    locks: dict[str, asyncio.Lock] = {}
    permits = asyncio.Semaphore(jobs)
    per_host: dict[str, asyncio.Semaphore] = {}
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    connector = aiohttp.TCPConnector(limit=jobs)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()

        async def one(text: str) -> None:
            if objects:
                request = adownload.Request(text)
                url = request.parsed_url
                final = os.path.join(dest, safe_filename(url.name))
            else:
                url = URL(text)
                final = os.path.join(dest, url.name)
            part = final + ".part"
            lock = locks.setdefault(final, asyncio.Lock())
            host = per_host.setdefault(f"{url.host}:{url.port}", asyncio.Semaphore(jobs))
            async with lock, permits, host:
                try:
                    os.lstat(final)
                    return  # there already: left alone
                except FileNotFoundError:
                    pass
                try:  # noqa: SIM105 - a try costs less than contextlib.suppress
                    os.close(os.open(part + ".state", os.O_RDONLY | os.O_NOFOLLOW))
                except FileNotFoundError:
                    pass
                watchdog = Watchdog(loop)
                idle = IdleTimeout(READ_TIMEOUT, grace=READ_TIMEOUT) if objects else None
                if idle is not None:
                    watchdog.handle.cancel()  # the library's timeout instead
                    await idle.__aenter__()
                try:
                    async with session.get(url, allow_redirects=False) as response:
                        if response.status != 200:
                            failed.append(f"{text}: HTTP {response.status}")
                            return
                        length = response.content_length
                        fd = os.open(part, flags, 0o666)
                        try:
                            os.setxattr(fd, MARK, b"1")
                            position = 0
                            while chunk := (await response.content.readchunk())[0]:
                                if idle is not None:
                                    idle.touch()
                                else:
                                    watchdog.last = loop.time()
                                os.pwrite(fd, chunk, position)
                                position += len(chunk)
                            os.removexattr(fd, MARK)
                        finally:
                            os.close(fd)
                except aiohttp.ClientError as exc:  # the part, if made, is ours to remove
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(part)
                    failed.append(f"{text}: {exc!r}")
                    return
                finally:
                    watchdog.handle.cancel()
                    if idle is not None:
                        await idle.__aexit__(None, None, None)
                if length is not None and position != length:
                    os.unlink(part)
                    failed.append(f"{text}: {position} of {length} bytes")
                    return
                os.link(part, final)
                os.unlink(part)
                if objects:
                    outcomes.append(
                        adownload.Outcome(
                            url=text,
                            request=request,
                            path=Path(final),
                            status=200,
                            size=position,
                            elapsed=loop.time() - watchdog.last,
                            attempts=1,
                            etag=response.headers.get("ETag"),
                            last_modified=response.headers.get("Last-Modified"),
                        )
                    )

        async def worker() -> None:
            for text in todo:
                await one(text)

        await asyncio.gather(*(worker() for _ in range(jobs)))
    for line in failed[:10]:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="a bare aiohttp loop with the guarantees' work")
    parser.add_argument("urls_file", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop"
    )
    parser.add_argument("-j", "--jobs", type=int, default=16)
    parser.add_argument(
        "--objects", action="store_true", help="also the library's Request, names, timeout, Outcome"
    )
    args = parser.parse_args()
    urls = args.urls_file.read_text().split()
    args.dest.mkdir(parents=True, exist_ok=True)
    if args.loop == "uvloop":
        import uvloop

        return uvloop.run(download(urls, args.dest, args.jobs, args.objects))
    return asyncio.run(download(urls, args.dest, args.jobs, args.objects))


if __name__ == "__main__":
    sys.exit(main())
