"""FTP servers for the tests, all on 127.0.0.1: aioftp's own server in-process, pyftpdlib in a
subprocess (a second implementation), and `ScriptedFtp`, a small FTP server on raw asyncio
streams that can break the protocol on purpose (cut data connections, error replies, a PASV
to another address, replies that never end) and records what it was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aioftp

USER, PASSWORD = "alice", "s3cret-ftp"


@contextlib.asynccontextmanager
async def aioftp_server(root: Path, *, anonymous: bool = True) -> AsyncIterator[int]:
    """aioftp's server on `root`: anonymous (unless not), and USER with PASSWORD; yields the
    port."""
    users = [aioftp.User(USER, PASSWORD, base_path=root)]
    if anonymous:
        users.append(aioftp.User(base_path=root))
    server = aioftp.Server(users)
    await server.start("127.0.0.1", 0)
    port: int = server.server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        await server.close()


_PYFTPD = """
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

root, user, password = sys.argv[1:4]
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root)
authorizer.add_user(user, password, root, perm="elr")
handler = FTPHandler
handler.authorizer = authorizer
handler.passive_ports = None
server = FTPServer(("127.0.0.1", 0), handler)
server.max_cons = 256
print(server.address[1], flush=True)
server.serve_forever(timeout=0.5)
"""


@contextlib.contextmanager
def pyftpdlib_server(root: Path) -> Iterator[int]:
    """pyftpdlib in a subprocess on `root`: anonymous, and USER with PASSWORD; yields the port."""
    process = subprocess.Popen(
        [sys.executable, "-c", _PYFTPD, str(root), USER, PASSWORD],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"pyftpdlib did not start: {line!r}")
        yield int(line)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@dataclass
class Script:
    """How `ScriptedFtp` behaves. Counters count down per RETR (or per login)."""

    files: dict[str, bytes] = field(default_factory=dict)
    mtime: str = "20261201120000"
    mlst: bool = False  # answer MLST (else 500: SIZE and MDTM are used)
    rest: bool = True  # accept REST
    epsv: bool = True  # accept EPSV (else 500: PASV)
    pasv_host: str = "127,0,0,1"  # the address a PASV reply names
    cut: dict[int, int] = field(default_factory=dict)  # RETR number -> bytes sent, then close
    final: dict[int, str] = field(default_factory=dict)  # RETR number -> closing reply
    busy: dict[int, str] = field(default_factory=dict)  # RETR number -> reply instead of 150
    login: str = "230 welcome"  # the reply to PASS
    greeting_never_ends: bool = False  # "220-" continuation lines, slowly, forever
    silent_after_retr: bool = False  # no closing reply after the data
    hold: float = 0.0  # seconds a RETR takes before the data starts
    pace: float = 0.0  # seconds between 256 KiB slices of the data (0: all at once)
    listings: dict[str, list[str]] = field(default_factory=dict)  # directory -> LIST lines
    sizes: dict[str, int] = field(default_factory=dict)  # path -> the size SIZE and MLST say
    flood: str | None = None  # a verb answered by continuation lines, as fast as they go, forever


class ScriptedFtp:
    """A raw FTP server that follows a `Script`; `log` holds every command received."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.log: list[str] = []
        self.retr = 0
        self.sessions = 0
        self.peak_sessions = 0
        self.data_connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> ScriptedFtp:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()

    def url(self, path: str, *, auth: str = "") -> str:
        return f"ftp://{auth}127.0.0.1:{self.port}{path}"

    def commands(self, verb: str) -> list[str]:
        return [line for line in self.log if line.split(" ", 1)[0] == verb]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.sessions += 1
        self.peak_sessions = max(self.peak_sessions, self.sessions)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sessions -= 1
            writer.close()
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.script
        if script.greeting_never_ends:
            deadline = time.monotonic() + 30  # bounded: the client gives up long before
            while time.monotonic() < deadline:
                writer.write(b"220-still greeting\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
            return
        writer.write(b"220 scripted ftp\r\n")
        passive: asyncio.Server | None = None
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        offset = 0

        async def on_data(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.data_connections += 1
            await accepted.put((r, w))

        def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")

        try:
            while line := await reader.readline():
                command = line.decode().strip()
                self.log.append(command)
                verb, _, arg = command.partition(" ")
                verb = verb.upper()
                if verb == script.flood:
                    await self._flood(writer)
                    return
                if verb == "USER":
                    reply("331 password please")
                elif verb == "PASS":
                    reply(script.login)
                elif verb == "FEAT":
                    reply(
                        "211-Features:\r\n MDTM\r\n SIZE\r\n"
                        + (" REST STREAM\r\n" if script.rest else "")
                        + "211 End"
                    )
                elif verb == "TYPE":
                    reply("200 binary")
                elif verb == "MLST":
                    if not script.mlst:
                        reply("500 no MLST")
                    elif arg in script.files:
                        size = script.sizes.get(arg, len(script.files[arg]))
                        facts = f"type=file;size={size};modify={script.mtime};"
                        reply(f"250-facts\r\n {facts} {arg}\r\n250 end")
                    else:
                        reply("550 no such file")
                elif verb == "SIZE":
                    if arg in script.files:
                        reply(f"213 {script.sizes.get(arg, len(script.files[arg]))}")
                    else:
                        reply("550 no such file")
                elif verb == "MDTM":
                    reply(f"213 {script.mtime}" if arg in script.files else "550 no such file")
                elif verb in ("EPSV", "PASV"):
                    if verb == "EPSV" and not script.epsv:
                        reply("500 no EPSV")
                        continue
                    if passive is not None:
                        passive.close()
                    while not accepted.empty():  # one data connection at a time
                        accepted.get_nowait()[1].close()
                    passive = await asyncio.start_server(on_data, "127.0.0.1", 0)
                    port = passive.sockets[0].getsockname()[1]
                    if verb == "EPSV":
                        reply(f"229 Entering Extended Passive Mode (|||{port}|)")
                    else:
                        numbers = f"{script.pasv_host},{port >> 8},{port & 255}"
                        reply(f"227 Entering Passive Mode ({numbers})")
                elif verb == "REST":
                    if script.rest:
                        offset = int(arg)
                        reply(f"350 restarting at {offset}")
                    else:
                        reply("502 no REST")
                elif verb == "RETR":
                    self.retr += 1
                    number = self.retr
                    if arg not in script.files:
                        reply("550 no such file")
                        continue
                    if number in script.busy:
                        reply(script.busy[number])
                        continue
                    reply("150 opening data connection")
                    await writer.drain()
                    _data_reader, data_writer = await asyncio.wait_for(accepted.get(), 10)
                    if script.hold:
                        await asyncio.sleep(script.hold)
                    body = script.files[arg][offset:]
                    offset = 0
                    if number in script.cut:
                        body = body[: script.cut[number]]
                    try:
                        step = 256 << 10 if script.pace else max(len(body), 1)
                        for start in range(0, len(body), step):
                            data_writer.write(body[start : start + step])
                            await data_writer.drain()
                            if script.pace:
                                await asyncio.sleep(script.pace)
                    except ConnectionError:
                        pass
                    data_writer.close()
                    if script.silent_after_retr:
                        await asyncio.sleep(30)
                        return
                    reply(script.final.get(number, "226 transfer complete"))
                elif verb in ("MLSD", "LIST"):
                    directory = arg.rstrip("/") + "/" if arg else "/"
                    if verb == "MLSD" or directory not in script.listings:
                        reply("500 no MLSD" if verb == "MLSD" else "550 no such directory")
                        await writer.drain()
                        continue
                    reply("150 here it comes")
                    await writer.drain()
                    _, data_writer = await asyncio.wait_for(accepted.get(), 10)
                    data_writer.write(
                        "".join(f"{x}\r\n" for x in script.listings[directory]).encode()
                    )
                    await data_writer.drain()
                    data_writer.close()
                    reply("226 listed")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    return
                else:
                    reply("502 not implemented")
                await writer.drain()
        finally:
            if passive is not None:
                passive.close()
            while not accepted.empty():  # data connections that no RETR took
                accepted.get_nowait()[1].close()

    @staticmethod
    async def _flood(writer: asyncio.StreamWriter) -> None:
        """Continuation lines of one reply that never ends, for at most 30 s (bounded: the
        client gives up long before)."""
        line = b"211-" + b"x" * 1000 + b"\r\n"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            writer.write(line * 64)
            await writer.drain()


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
