"""FTP's connections, on aioftp: logged-in control connections pooled per host and user,
data connections held to the control connection's peer (a PASV naming another address, the
FTP bounce, is refused), logins from the URL or ~/.netrc, and the one translation of aioftp's
exceptions to adownload's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import aioftp
from yarl import URL

from ..._model.errors import (
    ConnectError,
    ConnectTimeout,
    DownloadError,
    FTPReplyError,
    InvalidRequestError,
    ReadTimeout,
    RemoteProtocolError,
    TransportError,
)
from ..._model.util import redact, whole_number

if TYPE_CHECKING:
    from ..._model.auth import BasicAuth, DigestAuth, Netrc
    from ..._model.config import Timeout

#: Bytes asked of the data connection per read, and its buffer (asyncio's default is 64 KiB).
CHUNK = 1 << 20


#: Idle control connections kept per host and user.
_IDLE_PER_KEY = 16


#: Seconds to wait for the reply to QUIT when the downloader closes.
_QUIT_WAIT = 1.0


_Key = tuple[str, int, str]


#: The most text one reply may hold (a greeting, FEAT, MLST: a few lines each). aioftp keeps
#: every line of a reply, so a server that never ends one would otherwise fill the memory.
MAX_REPLY = 64 << 10


class Client(aioftp.Client):
    """aioftp's client, held to the control connection's peer for every data connection, and
    to replies of at most `MAX_REPLY` bytes that end within `reply_seconds`."""

    peer: str = ""
    epsv: bool = True  # EPSV works here (else PASV)
    reply_seconds: float | None = None  # None: no bound in time (the size still holds)

    async def parse_response(self) -> tuple[aioftp.Code, list[str]]:
        """One whole reply, as aioftp reads it (every line of a multi-line one), bounded: a
        `ValueError` past `MAX_REPLY` bytes, a `TimeoutError` past `reply_seconds`."""
        loop = asyncio.get_running_loop()
        deadline = None if self.reply_seconds is None else loop.time() + self.reply_seconds
        code, rest = await self.parse_line()
        info, size, current = [rest], len(rest), code
        while rest.startswith("-") or whole_number(current) is None:
            if size > MAX_REPLY:
                raise ValueError(f"a reply over {MAX_REPLY >> 10} KiB that does not end")
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError
            current, rest = await self.parse_line()
            size += len(current) + len(rest)
            if whole_number(current) is not None:
                info.append(rest)
                if current != code:
                    raise aioftp.StatusCodeError(code, current, info)
            else:
                info.append(current + rest)
        return code, info

    async def open_data(self) -> socket.socket:
        """A passive data connection, as a plain non-blocking socket (so that a body can go
        from it to the file in the kernel): EPSV, else PASV, always to the control
        connection's peer. The transfer type was set once, at login."""
        port = 0
        if self.epsv:
            try:
                _code, info = await self.command("EPSV", "229")
                port = self.parse_epsv_response(info[-1])[1]
            except aioftp.StatusCodeError as exc:
                if not str(exc.received_codes[-1]).startswith("50"):
                    raise
                self.epsv = False
        if not self.epsv:
            port = (await self._do_pasv())[1]
        family = socket.AF_INET6 if ":" in self.peer else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(
                loop.sock_connect(sock, (self.peer, port)), self.connection_timeout
            )
        except BaseException:
            sock.close()
            raise
        return sock

    async def _do_pasv(self) -> tuple[str | None, int]:
        _code, info = await self.command("PASV", "227")
        ip, port = self.parse_pasv_response(info[-1])
        if ip != "0.0.0.0" and not _same_address(ip, self.peer):
            # The FTP bounce: a reply that sends our data connection to a third host.
            raise _Bounce(ip, port)
        return None, port

    async def _open_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.peer:
            host = self.peer  # data connections: the address we are talking to, not a name
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=CHUNK), self.connection_timeout
        )
        if not self.peer:
            self.peer = writer.get_extra_info("peername")[0]
        return reader, writer


class _Bounce(Exception):
    def __init__(self, ip: str, port: int) -> None:
        super().__init__(f"{ip}:{port}")
        self.ip, self.port = ip, port


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


@dataclass(slots=True, eq=False)
class Control:
    """A logged-in control connection."""

    client: Client
    key: _Key
    rest: bool  # the server announced REST STREAM (or did not say: then it is tried)
    mlst: bool = True  # MLST works here (else SIZE and MDTM)


class FtpPool:
    """Idle, logged-in control connections of one downloader, per (host, port, user)."""

    def __init__(self, *, netrc: Netrc | None = None) -> None:
        self._netrc = netrc  # logins by host, for URLs that bring none
        self._idle: dict[_Key, list[Control]] = {}
        self._closed = False

    async def acquire(
        self, url: URL, timeout: Timeout, shown: str, *, login: BasicAuth | DigestAuth | None
    ) -> tuple[Control, bool]:
        """A control connection for `url` (logged in as `login` when given), and whether it
        was reused from the pool."""
        user, password = _credentials(url, login, self._netrc)
        key = (url.host or "", url.port or 21, user)
        idle = self._idle.get(key)
        while idle:
            control = idle.pop()
            if not control.client.stream.reader.at_eof():
                return control, True
            control.client.close()
        return await self._login(url, key, user, password, timeout, shown), False

    async def _login(
        self, url: URL, key: _Key, user: str, password: str, timeout: Timeout, shown: str
    ) -> Control:
        client = Client(
            # No per-read timeout in aioftp (a wait_for, so a task, per line read in Python
            # 3.11): the engine's read watchdog bounds every exchange, touched as it goes.
            socket_timeout=None,
            connection_timeout=timeout.connect,
            encoding="utf-8",
            passive_commands=("epsv", "pasv"),
        )
        # A reply that goes on longer than a read may pause is not one (curl gives up too).
        client.reply_seconds = timeout.read or timeout.connect
        try:
            await client.connect(key[0], key[1])
        except TimeoutError as exc:
            client.close()
            raise ConnectTimeout(
                f"timed out connecting for {shown}", url=shown, phase="connect"
            ) from exc
        except OSError as exc:
            client.close()
            raise ConnectError(f"cannot connect for {shown}: {exc}", url=shown) from exc
        except BaseException:
            client.close()
            raise
        try:
            with translate_ftp_errors(shown, read=timeout.read):
                try:
                    await client.login(user, password)
                except aioftp.StatusCodeError as exc:
                    code, text = reply(exc)
                    # A refused login is final whatever its code: the next try would be refused.
                    raise FTPReplyError(
                        f"FTP login as {user!r} refused: {code} {text} for {shown}",
                        url=shown,
                        code=530 if 400 <= code < 500 else code,
                        text=text,
                    ) from None
                rest = True
                with contextlib.suppress(aioftp.StatusCodeError):
                    _, features = await client.command("FEAT", "211")
                    listed = {line.strip().upper() for line in features}
                    rest = any(line.startswith("REST") for line in listed)
                await client.command("TYPE I", "200")
        except BaseException:
            client.close()
            raise
        return Control(client, key, rest)

    def release(self, control: Control) -> None:
        """Keep an idle control connection (ready for a command) for the next download."""
        idle = self._idle.setdefault(control.key, [])
        if self._closed or len(idle) >= _IDLE_PER_KEY:
            control.client.close()
        else:
            idle.append(control)

    async def close(self) -> None:
        self._closed = True
        controls = [control for idle in self._idle.values() for control in idle]
        self._idle.clear()
        # QUIT, politely and briefly: a server that does not answer is simply closed.
        await asyncio.gather(*(_quit(control.client) for control in controls))


async def _quit(client: Client) -> None:
    try:
        async with asyncio.timeout(_QUIT_WAIT):
            await client.quit()
    except (Exception, TimeoutError):
        pass
    finally:
        client.close()


def pool_of(pools: dict[str, Any], netrc: Netrc | None) -> FtpPool:
    """The downloader's FTP pool from its `pools` (by protocol), made with its first ftp URL."""
    pool = pools.get("ftp")
    if pool is None:
        pool = pools["ftp"] = FtpPool(netrc=netrc)
    assert isinstance(pool, FtpPool)
    return pool


@contextlib.contextmanager
def translate_ftp_errors(url: str, *, read: float | None = None) -> Iterator[None]:
    """Re-raise aioftp's and the socket's exceptions as adownload's: the one place in the
    package that knows aioftp's exceptions."""
    shown = redact(url)
    try:
        yield
    except DownloadError:
        raise  # ours already (a ValueError too, when it is an InvalidRequestError)
    except aioftp.StatusCodeError as exc:
        code, text = reply(exc)
        raise FTPReplyError(
            f"FTP {code} {text} for {shown}", url=url, code=code, text=text
        ) from exc
    except _Bounce as exc:
        raise RemoteProtocolError(
            f"refused a data connection to {exc.ip}, not the server's address, from {shown} "
            "(an FTP bounce)",
            url=url,
        ) from None
    except aioftp.errors.InvalidCommand as exc:
        raise InvalidRequestError(f"invalid FTP path in {shown}: {exc}", url=url) from exc
    except TimeoutError as exc:  # aioftp's socket timeout: no reply, no data
        raise ReadTimeout(
            f"no reply within {read}s from {shown}", url=url, phase="read", seconds=read
        ) from exc
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise RemoteProtocolError(
            f"the FTP server closed the connection: {shown}", url=url
        ) from exc
    except (ValueError, IndexError, UnicodeDecodeError) as exc:  # a reply aioftp cannot parse
        raise RemoteProtocolError(f"malformed FTP reply from {shown}: {exc}", url=url) from exc
    except OSError as exc:
        raise TransportError(f"transfer failed for {shown}: {exc!r}", url=url) from exc


def mdtm_date(value: str) -> str | None:
    """An MDTM reply (`YYYYMMDDHHMMSS[.sss]`, UTC; RFC 3659) as an HTTP date, or None.

    >>> mdtm_date("20261202101530")
    'Wed, 02 Dec 2026 10:15:30 GMT'
    >>> mdtm_date("2026") is None
    True
    """
    digits = value.split(".", 1)[0]
    if len(digits) != 14 or not digits.isdigit():
        return None
    try:
        when = datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return format_datetime(when, usegmt=True)


def _credentials(
    url: URL, login: BasicAuth | DigestAuth | None, netrc: Netrc | None
) -> tuple[str, str]:
    """The login of `url`: its userinfo, else `login` (the auth option), else the netrc
    file's for its host, else anonymous."""
    if url.user is not None:
        return url.user, url.password or ""
    if login is None and netrc is not None:
        login = netrc.login(url.host)
    if login is not None:
        return login.login, login.password
    return "anonymous", "anonymous@"


def reply(exc: aioftp.StatusCodeError) -> tuple[int, str]:
    """The code and text of the reply an error is about."""
    code = str(exc.received_codes[-1])
    text = " ".join(line.strip() for line in exc.info).strip()
    return whole_number(code) or 0, text


def went_away(exc: BaseException) -> bool:
    """Whether a reused control connection failed because the server dropped it while idle."""
    if isinstance(exc, ConnectionError):
        return True
    return isinstance(exc, aioftp.StatusCodeError) and str(exc.received_codes[-1]) == "421"
