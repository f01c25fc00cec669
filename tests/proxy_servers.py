"""The proxies the proxy tests talk to, all on 127.0.0.1, each started and stopped by a test.

- `tinyproxy`: Debian's HTTP proxy (plain http by request line, https by CONNECT), with or
  without required credentials. Its outgoing connections leave from 127.0.0.5, so the origin
  can tell a request that came through it; it logs each request line to `log`.
- `microsocks`: Debian's SOCKS5 server, with or without credentials; outgoing from 127.0.0.6.
- `SocksServer`: a small SOCKS4, SOCKS4a and SOCKS5 (no authentication) server in this process
  (microsocks has no SOCKS4): it records what each client asked for (an address, or a name the
  client left it to look up), and can refuse the target or close during the handshake on cue.
  Outgoing from 127.0.0.7.
- `TlsFront`: TLS in front of another proxy, which makes an https:// proxy of tinyproxy.
- `Closer`: accepts and closes at once: a proxy that dies during its handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .support import free_port

USER, PASSWORD = "alice", "pr0xy-s3cret"

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

TINYPROXY_OUT = "127.0.0.5"
MICROSOCKS_OUT = "127.0.0.6"
SOCKS_OUT = "127.0.0.7"

needs_tinyproxy = shutil.which("tinyproxy")
needs_microsocks = shutil.which("microsocks")


def _wait_listening(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class RunningProxy:
    port: int
    log: Path | None = None
    scheme: str = "http"

    def url(self, *, credentials: str | None = None) -> str:
        userinfo = f"{credentials}@" if credentials else ""
        return f"{self.scheme}://{userinfo}127.0.0.1:{self.port}"

    @property
    def lines(self) -> list[str]:
        """The request lines the proxy logged (tinyproxy: "GET http://..." or "CONNECT ...")."""
        if self.log is None or not self.log.exists():
            return []
        return [
            line.split("): ", 1)[1].strip()
            for line in self.log.read_text(errors="replace").splitlines()
            if "Request (file descriptor" in line and "): " in line
        ]


@contextlib.contextmanager
def tinyproxy(directory: Path, *, auth: bool = False) -> Iterator[RunningProxy]:
    port = free_port()
    log = directory / "tinyproxy.log"
    conf = directory / "tinyproxy.conf"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        f"Bind {TINYPROXY_OUT}",
        "Timeout 30",
        "MaxClients 64",
        f'LogFile "{log}"',
        "LogLevel Connect",
    ]
    if auth:
        lines.append(f"BasicAuth {USER} {PASSWORD}")
    conf.write_text("\n".join(lines) + "\n")
    log.touch()
    log.chmod(0o666)  # tinyproxy may drop to nobody before it opens its log
    process = subprocess.Popen(
        ["tinyproxy", "-d", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process, "tinyproxy")
        yield RunningProxy(port, log)
    finally:
        _stop(process)


@contextlib.contextmanager
def microsocks(*, auth: bool = False) -> Iterator[RunningProxy]:
    port = free_port()
    command = ["microsocks", "-i", "127.0.0.1", "-p", str(port), "-b", MICROSOCKS_OUT]
    if auth:
        command += ["-u", USER, "-P", PASSWORD]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, process, "microsocks")
        yield RunningProxy(port, scheme="socks5")
    finally:
        _stop(process)


#: Seconds a closing connection of these servers may take (a TLS close waits for the peer's).
_CLOSE_WAIT = 2.0


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close `writer` and wait until its transport is gone: a TLS connection only starts
    its close here, and one left closing when the test's loop ends is an unclosed transport
    (a ResourceWarning in a later test). A peer that never answers the close is cut off."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT)
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    out_reader: asyncio.StreamReader,
    out_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, out_writer), _pipe(out_reader, writer))
    finally:
        await asyncio.gather(_close(writer), _close(out_writer), return_exceptions=True)


@dataclass
class SocksServer:
    """See the module docstring. `mode`: "ok", "refuse" (the target is refused in the reply),
    "close" (closed after the client's request, before any reply) or "hang" (no reply, until
    the client leaves)."""

    mode: str = "ok"
    port: int = 0
    #: (SOCKS version, host as the client sent it, port) per connection asked for.
    asked: list[tuple[int, str, int]] = field(default_factory=list)

    def url(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            version = (await reader.readexactly(1))[0]
            if version == 4:
                await self._socks4(reader, writer)
            elif version == 5:
                await self._socks5(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await _close(writer)

    async def _connect(self, host: str, port: int) -> Streams | None:
        if self.mode == "refuse":
            return None
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            address = "127.0.0.1" if host == "localhost" else ""
        if not address.startswith("127."):
            return None  # loopback only, whatever is asked
        try:
            return await asyncio.open_connection(address, port, local_addr=(SOCKS_OUT, 0))
        except OSError:
            return None

    async def _stall(self) -> None:
        if self.mode == "hang":
            await asyncio.sleep(3600)  # cancelled when the server stops

    async def _socks4(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command, port = struct.unpack("!BH", await reader.readexactly(3))
        ip = socket.inet_ntoa(await reader.readexactly(4))
        await reader.readuntil(b"\0")  # the user id
        host = ip
        if ip.startswith("0.0.0.") and ip != "0.0.0.0":  # SOCKS4a: the name follows
            host = (await reader.readuntil(b"\0"))[:-1].decode()
        self.asked.append((4, host, port))
        await self._stall()
        if self.mode == "close" or command != 1:
            return
        out = await self._connect(host, port)
        if out is None:
            writer.write(b"\x00\x5b" + b"\0" * 6)
            await writer.drain()
            return
        writer.write(b"\x00\x5a" + b"\0" * 6)
        await writer.drain()
        await _relay(reader, writer, *out)

    async def _socks5(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        methods = await reader.readexactly((await reader.readexactly(1))[0])
        if 0 not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(b"\x05\x00")
        await writer.drain()
        _, command, _, kind = await reader.readexactly(4)
        if kind == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        elif kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.asked.append((5, host, port))
        await self._stall()
        if self.mode == "close" or command != 1:
            return
        out = await self._connect(host, port)
        reply = b"\x05\x00\x00\x01" if out is not None else b"\x05\x05\x00\x01"
        writer.write(reply + b"\0" * 6)
        await writer.drain()
        if out is not None:
            await _relay(reader, writer, *out)


@contextlib.asynccontextmanager
async def _listening(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    tls: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """Serve `handle` on 127.0.0.1 until the block ends, then cancel the connections still
    open; yields the port."""
    tasks: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handle(reader, writer)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=tls)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@contextlib.asynccontextmanager
async def serve_socks(mode: str = "ok") -> AsyncIterator[SocksServer]:
    socks = SocksServer(mode)
    async with _listening(socks.handle) as port:
        socks.port = port
        yield socks


@contextlib.asynccontextmanager
async def tls_front(target_port: int, certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    """TLS on a port of its own, relayed in the clear to `target_port`: yields the port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            out = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            await _close(writer)
            return
        await _relay(reader, writer, *out)

    async with _listening(handle, context) as port:
        yield port


@contextlib.asynccontextmanager
async def closer() -> AsyncIterator[int]:
    """A listener that closes every connection as soon as it is accepted: yields its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()
