"""A TCP proxy on loopback that adds latency, for the ``latency`` benchmark scenario.

Every chunk of bytes read from one side is held back for ``--one-way-delay`` seconds
before it is written to the other side, in both directions, so one HTTP
request/response round trip through the proxy costs about twice that delay
(50 ms with the default 25 ms).  Bytes are delayed, not throttled: a window of at
most ``--window`` bytes per direction may be in flight, as on a real long link.

A new connection also waits ``--connect-delay`` seconds (default: one round trip)
before the proxy connects upstream and starts reading the client's bytes, standing
in for the TCP handshake a real distant server would cost; so reusing a kept-alive
connection pays off here as it does on the Internet.

The proxy binds to 127.0.0.1 only.  It prints ``LISTENING <port>`` on stdout once it
accepts connections, and stops on SIGTERM/SIGINT, when its parent process goes
away, or after ``--max-lifetime`` seconds, whichever comes first.

Usage: python delay_proxy.py --upstream-port PORT [--listen-port 0] [--one-way-delay 0.025]
       [--count-file FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

READ_SIZE = 64 * 1024
LOOPBACK = "127.0.0.1"


class DelayProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        one_way_delay: float,
        connect_delay: float,
        window: int,
        count_file: str | None = None,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.one_way_delay = one_way_delay
        self.connect_delay = connect_delay
        # Bound the chunks queued per direction; each chunk is at most READ_SIZE bytes.
        self.max_chunks = max(1, window // READ_SIZE)
        self.connections: set[asyncio.Task[None]] = set()
        # Connections accepted so far, written to count_file at each accept so a benchmark can
        # tell how many new connections (each paying the handshake delay) a client opened.
        self.accepted = 0
        self.count_file = count_file

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        self.accepted += 1
        if self.count_file is not None:
            with open(self.count_file, "w") as fh:  # a few bytes: no need to leave the loop
                fh.write(f"{self.accepted}\n")
        upstream_w: asyncio.StreamWriter | None = None
        try:
            await asyncio.sleep(self.connect_delay)
            upstream_r, upstream_w = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
            await self._relay(client_r, upstream_w, upstream_r, client_w)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections.discard(task)
            for writer in (client_w, upstream_w):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()

    async def _relay(
        self,
        client_r: asyncio.StreamReader,
        upstream_w: asyncio.StreamWriter,
        upstream_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
    ) -> None:
        """Pump both directions until both ended, or either failed."""
        directions = {
            asyncio.create_task(self._pump(client_r, upstream_w)),
            asyncio.create_task(self._pump(upstream_r, client_w)),
        }
        try:
            done, _ = await asyncio.wait(directions, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise a failure, which closes the connection
        finally:
            for task in directions:
                task.cancel()
            await asyncio.gather(*directions, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction, delaying each chunk by the one-way delay."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(self.max_chunks)

        async def read_side() -> None:
            while True:
                try:
                    data = await reader.read(READ_SIZE)
                except OSError:
                    data = b""  # a reset ends this direction like an EOF would
                await queue.put((loop.time() + self.one_way_delay, data))
                if not data:
                    return

        async def write_side() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        reading = asyncio.create_task(read_side())
        try:
            await write_side()
            await reading
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await reading


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            return
        await asyncio.sleep(0.5)


async def serve(args: argparse.Namespace) -> None:
    connect_delay = 2 * args.one_way_delay if args.connect_delay is None else args.connect_delay
    proxy = DelayProxy(
        args.upstream_host,
        args.upstream_port,
        args.one_way_delay,
        connect_delay,
        args.window,
        args.count_file,
    )
    server = await asyncio.start_server(proxy.handle, LOOPBACK, args.listen_port, backlog=1024)
    port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watcher = asyncio.create_task(_watch_parent(os.getppid(), stop))
    loop.call_later(args.max_lifetime, stop.set)

    print(f"LISTENING {port}", flush=True)
    async with server:
        await stop.wait()
    watcher.cancel()
    for task in list(proxy.connections):
        task.cancel()
    await asyncio.gather(*proxy.connections, return_exceptions=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-host", default=LOOPBACK)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--listen-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--one-way-delay", type=float, default=0.025, help="seconds added per direction"
    )
    parser.add_argument(
        "--connect-delay",
        type=float,
        default=None,
        help="seconds before a new connection starts relaying (default: one round trip)",
    )
    parser.add_argument(
        "--window", type=int, default=4 * 1024 * 1024, help="bytes in flight per direction"
    )
    parser.add_argument(
        "--count-file", help="keep the number of connections accepted so far in this file"
    )
    parser.add_argument(
        "--max-lifetime", type=float, default=6 * 3600.0, help="stop after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.upstream_host not in (LOOPBACK, "localhost", "::1"):
        parser.error("the upstream must be on loopback")
    return args


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
