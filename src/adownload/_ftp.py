"""FTP: one RETR (after SIZE, MDTM and REST) turned into an `Answer` and a `Body`.

The second protocol behind the seam of `_answer.py`, on aioftp (imported with this module,
which `_protocols` imports only when the first ftp URL is met). Logged-in control connections
are kept per host and user in the downloader's `FtpPool`, like aiohttp's connection pool, so a
thousand small files cost one login. Each body has a passive data connection of its own
(EPSV, then PASV), always to the control connection's peer: a PASV reply naming another
address (the FTP bounce) is refused, never followed.

- The length is `SIZE`, the validator `MDTM` (given as an HTTP date, so resume state and
  outcomes look the same as for HTTP), a continuation `REST`. A server that refuses `REST`
  sends the whole file (`Verdict.WHOLE`), which the engine takes as "no ranges".
- The body's end is the data connection's close followed by a 2xx reply on the control
  connection; any other reply, or a close before `SIZE` bytes, is an incomplete body.
- Error replies become `FTPReplyError` (4xx transient and retried, 5xx final).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import netrc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import aioftp
from yarl import URL

from ._answer import Answer, Plan, Verdict
from ._config import Timeout
from ._exceptions import (
    ConnectError,
    ConnectTimeout,
    FTPReplyError,
    InvalidRequestError,
    ReadTimeout,
    RemoteProtocolError,
    TransportError,
)
from ._settings import Settings
from ._util import IdleTimeout, redact

log = logging.getLogger("adownload")

#: Bytes asked of the data connection per read, and its buffer (asyncio's default is 64 KiB).
_CHUNK = 1 << 20
#: Idle control connections kept per host and user.
_IDLE_PER_KEY = 16
#: Seconds to wait for the reply to QUIT when the downloader closes.
_QUIT_WAIT = 1.0

_Key = tuple[str, int, str]


class _Client(aioftp.Client):
    """aioftp's client, held to the control connection's peer for every data connection."""

    peer: str = ""

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
            asyncio.open_connection(host, port, limit=_CHUNK), self.connection_timeout
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
class _Control:
    """A logged-in control connection."""

    client: _Client
    key: _Key
    rest: bool  # the server announced REST STREAM (or did not say: then it is tried)
    mlst: bool = True  # MLST works here (else SIZE and MDTM)


class FtpPool:
    """Idle, logged-in control connections of one downloader, per (host, port, user)."""

    def __init__(self, *, netrc: bool = False) -> None:
        self._netrc = netrc  # look up logins in ~/.netrc, as aiohttp does with trust_env
        self._idle: dict[_Key, list[_Control]] = {}
        self._closed = False

    async def acquire(self, url: URL, timeout: Timeout, shown: str) -> tuple[_Control, bool]:
        """A control connection for `url`, and whether it was reused from the pool."""
        user, password = _credentials(url, netrc=self._netrc)
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
    ) -> _Control:
        client = _Client(
            socket_timeout=timeout.read,
            connection_timeout=timeout.connect,
            encoding="utf-8",
            passive_commands=("epsv", "pasv"),
        )
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
                    code, text = _reply(exc)
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
        return _Control(client, key, rest)

    def release(self, control: _Control) -> None:
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


async def _quit(client: _Client) -> None:
    try:
        async with asyncio.timeout(_QUIT_WAIT):
            await client.quit()
    except (Exception, TimeoutError):
        pass
    finally:
        client.close()


def pool_of(settings: Settings) -> FtpPool:
    """The downloader's FTP pool, made with its first ftp URL."""
    pool = settings.pools.get("ftp")
    if pool is None:
        pool = settings.pools["ftp"] = FtpPool(netrc=settings.session.trust_env)
    assert isinstance(pool, FtpPool)
    return pool


class FtpExchange:
    """The RETR requests of one download."""

    __slots__ = ("_pool", "_timeout")

    def __init__(self, pool: FtpPool, *, timeout: Timeout) -> None:
        self._pool = pool
        self._timeout = timeout

    def errors(
        self, url: str, *, read: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return translate_ftp_errors(url, read=read)

    async def open(self, plan: Plan, idle: IdleTimeout, *, url: str) -> tuple[Answer, FtpBody]:
        path = plan.url.path
        if not path or path.endswith("/"):
            raise InvalidRequestError(f"{redact(url)} names a directory, not a file", url=url)
        if any(ord(c) < 32 or ord(c) == 127 for c in path):
            raise InvalidRequestError(f"{redact(url)}: a control character in the path", url=url)
        with translate_ftp_errors(url, read=self._timeout.read):
            while True:
                control, reused = await self._pool.acquire(plan.url, self._timeout, url)
                idle.touch()
                try:
                    return await self._retrieve(control, plan, path, idle, url)
                except (ConnectionError, aioftp.StatusCodeError) as exc:
                    control.client.close()
                    if reused and _went_away(exc):
                        continue  # the server closed an idle connection: log in afresh
                    raise
                except BaseException:
                    control.client.close()
                    raise

    async def _retrieve(
        self, control: _Control, plan: Plan, path: str, idle: IdleTimeout, url: str
    ) -> tuple[Answer, FtpBody]:
        client = control.client
        size, modified = await _facts(control, path, url)
        idle.touch()
        answer = Answer(
            Verdict.WHOLE,
            plan.url,
            length=size,
            announced=size,
            last_modified=modified,
            ranges=control.rest and size is not None,
        )
        # As If-Range: a part of another version is never continued.
        current = (plan.length is None or plan.length == size) and (
            plan.if_range is None or plan.if_range == modified
        )
        offset = plan.offset if plan.ranged and current else 0
        if plan.ranged and current and size is not None and (plan.probe or offset >= size):
            # Nothing to transfer: the same file, and the part holds it all (a probe asks
            # only for its last byte), or nothing is past the offset. The engine decides.
            answer.verdict = Verdict.END
            self._pool.release(control)
            return answer, FtpBody.empty()
        reader, writer = await client.get_passive_connection("I")
        try:
            if offset:
                try:
                    await client.command(f"REST {offset}", "350")
                except aioftp.StatusCodeError as exc:
                    if not str(exc.received_codes[-1]).startswith("5"):
                        raise
                    log.info("%s: the server refuses REST; from byte 0", redact(url))
                    control.rest = False
                    answer.ranges = False
                    offset = 0
            await client.command("RETR " + path, "1xx")
        except BaseException:
            writer.close()
            raise
        idle.touch()
        if offset:
            answer.verdict = Verdict.PARTIAL
            answer.offset = offset
            answer.announced = None if size is None else size - offset
        return answer, FtpBody(control, self._pool, reader, writer, url)


class FtpBody:
    """A RETR's data connection, then its closing reply."""

    __slots__ = ("_control", "_done", "_pool", "_reader", "_url", "_writer")

    def __init__(
        self,
        control: _Control | None,
        pool: FtpPool | None,
        reader: asyncio.StreamReader | None,
        writer: asyncio.StreamWriter | None,
        url: str,
    ) -> None:
        self._control = control
        self._pool = pool
        self._reader = reader
        self._writer = writer
        self._url = url
        self._done = reader is None  # the closing reply was read (and was a 2xx)

    @classmethod
    def empty(cls) -> FtpBody:
        return cls(None, None, None, None, "")

    async def read(self) -> bytes:
        reader = self._reader
        if reader is None:
            return b""
        try:
            chunk = await reader.read(_CHUNK)
            if chunk:
                return chunk
            await self._finish()
        except aioftp.StatusCodeError as exc:
            # 426, 451: the server says the transfer broke off.
            code, text = _reply(exc)
            raise RemoteProtocolError(
                f"the FTP server ended the transfer with {code} {text}: {redact(self._url)}",
                url=self._url,
            ) from exc
        except (OSError, ValueError, asyncio.IncompleteReadError):
            with translate_ftp_errors(self._url):
                raise
            raise  # pragma: no cover - translate_ftp_errors raises
        return b""

    async def _finish(self) -> None:
        """The data connection closed: the control connection says whether it was the end."""
        assert self._writer is not None
        assert self._control is not None
        self._writer.close()
        self._reader = None
        await self._control.client.command(None, "2xx", "1xx")
        self._done = True

    def at_eof(self) -> bool:
        return self._done

    def broken(self) -> BaseException | None:
        return None

    def kernel_copy(self) -> tuple[int, bytes] | None:
        return None

    async def close(self, *, reuse: bool) -> None:
        control, self._control = self._control, None
        if self._writer is not None:
            self._writer.close()
        self._reader = None
        if control is None:
            return
        if reuse and self._done and self._pool is not None:
            self._pool.release(control)
        else:
            control.client.close()


@contextlib.contextmanager
def translate_ftp_errors(url: str, *, read: float | None = None) -> Iterator[None]:
    """Re-raise aioftp's and the socket's exceptions as adownload's: the one place in the
    package that knows aioftp's exceptions."""
    shown = redact(url)
    try:
        yield
    except aioftp.StatusCodeError as exc:
        code, text = _reply(exc)
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


async def _facts(control: _Control, path: str, url: str) -> tuple[int | None, str | None]:
    """The file's size and modification time (as an HTTP date): one MLST (RFC 3659) where
    the server has it, else SIZE and MDTM. A 550 (no such file) raises."""
    client = control.client
    if control.mlst:
        try:
            _, info = await client.command("MLST " + path, "2xx")
        except aioftp.StatusCodeError as exc:
            if str(exc.received_codes[-1]) == "550":
                raise
            control.mlst = False
        else:
            facts = next((line for line in info[1:] if "=" in line), None)
            if facts is not None:
                _, entry = client.parse_mlsx_line(facts.lstrip())
                kind = str(entry.get("type", "file")).lower()
                if kind in ("dir", "cdir", "pdir"):
                    raise InvalidRequestError(
                        f"{redact(url)} names a directory, not a file", url=url
                    )
                raw = str(entry.get("size", ""))
                return (int(raw) if raw.isdigit() else None), mdtm_date(
                    str(entry.get("modify", ""))
                )
    return await _size(client, path), await _modified(client, path)


async def _size(client: _Client, path: str) -> int | None:
    try:
        _, info = await client.command("SIZE " + path, "213")
    except aioftp.StatusCodeError as exc:
        if str(exc.received_codes[-1]) == "550":
            raise  # no such file
        return None  # SIZE not supported, or not for this file
    text = info[-1].strip()
    return int(text) if text.isdigit() else None


async def _modified(client: _Client, path: str) -> str | None:
    """MDTM as an HTTP date (the validator); None when the server does not say."""
    try:
        _, info = await client.command("MDTM " + path, "213")
    except aioftp.StatusCodeError as exc:
        if str(exc.received_codes[-1]) == "550":
            raise
        return None
    return mdtm_date(info[-1].strip())


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


def _credentials(url: URL, *, netrc: bool) -> tuple[str, str]:
    """The login of `url`: its userinfo, else (with `netrc`) ~/.netrc or $NETRC for its host,
    else anonymous."""
    if url.user is not None:
        return url.user, url.password or ""
    found = _from_netrc(url.host or "") if netrc else None
    if found is not None:
        return found
    return "anonymous", "anonymous@"


def _from_netrc(host: str) -> tuple[str, str] | None:
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if entry is None:
        return None
    login, _, password = entry
    return login, password or ""


def _reply(exc: aioftp.StatusCodeError) -> tuple[int, str]:
    """The code and text of the reply an error is about."""
    code = str(exc.received_codes[-1])
    text = " ".join(line.strip() for line in exc.info).strip()
    return (int(code) if code.isdigit() else 0), text


def _went_away(exc: BaseException) -> bool:
    """Whether a reused control connection failed because the server dropped it while idle."""
    if isinstance(exc, ConnectionError):
        return True
    return isinstance(exc, aioftp.StatusCodeError) and str(exc.received_codes[-1]) == "421"
