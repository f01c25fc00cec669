"""The caller's memory on a Dask cluster, for manifests of 10,000 to 1,000,000 items.

Usage: python benchmarks/dask_memory.py [--counts 10000,100000,1000000] [--workers 2]
                                        [--message-log N]

Starts a Dask scheduler and worker processes on 127.0.0.1 (`bench.DaskCluster`), a server that
answers every path with one byte and keeps no log, and then, for each count, a caller process
that runs that many generated items (`Request(url, check_only=True)`: no files, so the disk
does not set the pace) through `adownload.distributed.DaskRunner`. The caller prints its peak
RSS (`ru_maxrss`), which stays flat when the manifest is read lazily and nothing is kept per
finished item. Prints one row per count: items, seconds, items per second, peak RSS.
`--message-log N` sets the caller's `distributed.admin.low-level-log-length` (Dask keeps that
many of the messages it sent, each shard one; 1000 by default, 20 under `adownload
--scheduler`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from .processes import stop_process
from .servers import DaskCluster

ROOT = Path(__file__).resolve().parent.parent

_SERVER = textwrap.dedent(
    """
    import asyncio
    from aiohttp import web

    async def one_byte(request):
        return web.Response(body=b"x")

    async def main():
        app = web.Application()
        app.router.add_get("/{name}", one_byte)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print("LISTENING", runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)

_CALLER = textwrap.dedent(
    """
    import asyncio, resource, sys
    import dask.config
    from distributed import Client
    from adownload import Request
    from adownload.distributed import DaskRunner

    async def main(address, base, count, log):
        with dask.config.set({"distributed.admin.low-level-log-length": log}):
            client = await Client(address, asynchronous=True)
        async with client:
            items = (Request(f"{base}/{i}.bin", check_only=True) for i in range(count))
            found = 0
            async for outcome in DaskRunner(client, shard_size=1000).as_completed(items):
                found += outcome.ok
        print(found, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,100000,1000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--message-log", type=int, default=1000)
    args = parser.parse_args(argv)
    counts = [int(text) for text in args.counts.split(",")]
    python = sys.executable
    with tempfile.TemporaryDirectory() as work:
        server = subprocess.Popen(
            [python, "-c", _SERVER], stdout=subprocess.PIPE, text=True, cwd=work
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline().split()[1])
            base = f"http://127.0.0.1:{port}"
            with DaskCluster(python, args.workers, Path(work)).running() as address:
                print(
                    f"{args.workers} worker processes; items checked (check_only), 1 byte each;"
                    f" the caller keeps {args.message_log} sent messages"
                )
                print(f"{'items':>10} {'seconds':>9} {'items/s':>9} {'caller peak RSS':>16}")
                for count in counts:
                    started = time.monotonic()
                    result = subprocess.run(
                        [python, "-c", _CALLER, address, base, str(count), str(args.message_log)],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        check=False,
                    )
                    elapsed = time.monotonic() - started
                    if result.returncode != 0:
                        print(result.stderr[-2000:], file=sys.stderr)
                        return 1
                    found, peak_kib = map(int, result.stdout.split())
                    if found != count:
                        print(f"only {found} of {count} items were found", file=sys.stderr)
                        return 1
                    print(
                        f"{count:>10} {elapsed:>9.1f} {count / elapsed:>9.0f}"
                        f" {peak_kib / 1024:>12.1f} MiB"
                    )
        finally:
            stop_process(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
