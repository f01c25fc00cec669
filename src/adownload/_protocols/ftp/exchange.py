"""FTP: one RETR (after SIZE, MDTM and REST) turned into an `Answer` and a `Body`.

The second protocol behind the seam of `_protocols/base.py`, on aioftp (imported with this module,
which `_engine.exchanges` imports only when the first ftp URL is met). The connections are
`_protocols.ftp.client`'s: logged-in control connections kept per host and user in the downloader's
`FtpPool`, like aiohttp's connection pool, so a thousand small files cost one login; each body
has a passive data connection of its own (EPSV, then PASV), always to the control
connection's peer.

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
import logging
import os
import socket
from typing import TYPE_CHECKING

import aioftp

from ..._model.errors import (
    InvalidRequestError,
    RemoteProtocolError,
)
from ..._model.util import IdleTimeout, redact, whole_number
from .. import splice as _splice
from ..base import Answer, Plan, Verdict
from ..network import Network, check_ftp_route
from .client import (
    CHUNK,
    Client,
    Control,
    FtpPool,
    mdtm_date,
    reply,
    translate_ftp_errors,
    went_away,
)

if TYPE_CHECKING:
    from ..._model.options import Options

log = logging.getLogger("adownload")


class FtpExchange:
    """The RETR requests of one download."""

    __slots__ = ("_network", "_options", "_pool", "_timeout")

    def __init__(self, pool: FtpPool, network: Network, options: Options) -> None:
        self._pool = pool
        self._network = network
        self._options = options
        self._timeout = options.timeout

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
        check_ftp_route(self._network, plan.url, self._options.proxy, redact(url))
        # The auth option is the URL's: a mirror on another host logs in without it.
        login = None if plan.foreign else self._options.auth
        with translate_ftp_errors(url, read=self._timeout.read):
            while True:
                control, reused = await self._pool.acquire(
                    plan.url, self._timeout, url, login=login
                )
                idle.touch()
                try:
                    return await self._retrieve(control, plan, path, idle, url)
                except (ConnectionError, aioftp.StatusCodeError) as exc:
                    control.client.close()
                    if reused and went_away(exc):
                        continue  # the server closed an idle connection: log in afresh
                    raise
                except BaseException:
                    control.client.close()
                    raise

    async def _retrieve(
        self, control: Control, plan: Plan, path: str, idle: IdleTimeout, url: str
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
        data = await client.open_data()
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
            data.close()
            raise
        idle.touch()
        if offset:
            answer.verdict = Verdict.PARTIAL
            answer.offset = offset
            answer.announced = None if size is None else size - offset
        options = self._options
        spliceable = (
            options.splice
            and _splice.available
            and answer.announced is not None
            and answer.announced >= _splice.SPLICE_MIN
        )
        return answer, FtpBody(control, self._pool, data, url, spliceable=spliceable)


class FtpBody:
    """A RETR's data connection (a plain socket), then its closing reply."""

    __slots__ = ("_control", "_data", "_done", "_loop", "_pool", "_spliceable", "_url")

    def __init__(
        self,
        control: Control | None,
        pool: FtpPool | None,
        data: socket.socket | None,
        url: str,
        *,
        spliceable: bool = False,
    ) -> None:
        self._spliceable = spliceable
        self._control = control
        self._pool = pool
        self._data = data
        self._url = url
        self._loop = asyncio.get_running_loop()
        self._done = data is None  # the closing reply was read (and was a 2xx)

    @classmethod
    def empty(cls) -> FtpBody:
        return cls(None, None, None, "")

    async def read(self) -> bytes:
        data = self._data
        if data is None:
            return b""
        try:
            chunk = await self._loop.sock_recv(data, CHUNK)
            if chunk:
                return chunk
            await self._finish()
        except (OSError, ValueError, asyncio.IncompleteReadError):
            with translate_ftp_errors(self._url):
                raise
            raise  # pragma: no cover - translate_ftp_errors raises
        return b""

    async def _finish(self) -> None:
        """The data connection closed: the control connection says whether it was the end
        (a 426 or 451 says the transfer broke off: the body is incomplete)."""
        assert self._control is not None
        self._close_data()
        try:
            await self._control.client.command(None, "2xx", "1xx")
        except aioftp.StatusCodeError as exc:
            code, text = reply(exc)
            raise RemoteProtocolError(
                f"the FTP server ended the transfer with {code} {text}: {redact(self._url)}",
                url=self._url,
            ) from exc
        self._done = True

    def _close_data(self) -> None:
        if self._data is not None:
            self._data.close()
            self._data = None

    def at_eof(self) -> bool:
        return self._done

    def broken(self) -> BaseException | None:
        return None

    def kernel_copy(self) -> tuple[int, bytes] | None:
        """The data socket for a copy in the kernel (nothing of it was read yet)."""
        if self._data is None or not self._spliceable:
            return None
        return os.dup(self._data.fileno()), b""

    async def after_copy(self, whole: bool) -> None:
        """The copy ended: read the closing reply when it took every byte, so that the
        control connection serves the next file; otherwise it is closed with the body."""
        if not whole:
            self._close_data()
            return
        await self._finish()

    async def close(self, *, reuse: bool) -> None:
        control, self._control = self._control, None
        self._close_data()
        if control is None:
            return
        if reuse and self._done and self._pool is not None:
            self._pool.release(control)
        else:
            control.client.close()


async def _facts(control: Control, path: str, url: str) -> tuple[int | None, str | None]:
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
                return whole_number(raw), mdtm_date(str(entry.get("modify", "")))
    return await _size(client, path), await _modified(client, path)


async def _size(client: Client, path: str) -> int | None:
    try:
        _, info = await client.command("SIZE " + path, "213")
    except aioftp.StatusCodeError as exc:
        if str(exc.received_codes[-1]) == "550":
            raise  # no such file
        return None  # SIZE not supported, or not for this file
    text = info[-1].strip()
    return whole_number(text)


async def _modified(client: Client, path: str) -> str | None:
    """MDTM as an HTTP date (the validator); None when the server does not say."""
    try:
        _, info = await client.command("MDTM " + path, "213")
    except aioftp.StatusCodeError as exc:
        if str(exc.received_codes[-1]) == "550":
            raise
        return None
    return mdtm_date(info[-1].strip())
