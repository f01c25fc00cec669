"""A file server that answers 429 above a number of requests in hand, for the benchmark.

Usage: python throttle_server.py ROOT --limit N [--service SEC] [--port P]

Serves the files under ROOT (GET only, on 127.0.0.1). A request that arrives while N others
are in hand gets ``429 Too Many Requests`` (no Retry-After: each client's own backoff
decides); the others wait SEC seconds (the work a real server does per request), then get
the file. ``GET /_stats`` answers ``{"requests": R, "refused": F}`` so far. Prints
``LISTENING PORT`` on stdout once it accepts connections; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from aiohttp import web


def make_app(root: Path, limit: int, service: float) -> web.Application:
    stats = {"requests": 0, "refused": 0}
    active = [0]
    root = root.resolve()

    async def stats_handler(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def serve(request: web.Request) -> web.StreamResponse:
        stats["requests"] += 1
        active[0] += 1
        try:
            if active[0] > limit:
                stats["refused"] += 1
                return web.Response(status=429, text="too many requests\n")
            path = (root / request.match_info["name"]).resolve()
            if root not in path.parents or not path.is_file():
                return web.Response(status=404)
            await asyncio.sleep(service)
            return web.FileResponse(path)
        finally:
            active[0] -= 1

    app = web.Application()
    app.router.add_get("/_stats", stats_handler)
    app.router.add_get("/{name:.+}", serve)
    return app


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--limit", type=int, required=True, help="requests in hand at most")
    parser.add_argument("--service", type=float, default=0.002, help="seconds per request")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    runner = web.AppRunner(make_app(args.root, args.limit, args.service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"LISTENING {port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1:]))
