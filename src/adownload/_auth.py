"""Credentials for the servers: `BasicAuth`, `DigestAuth`, and logins from a `.netrc` file.

A credential given as `auth=` belongs to the origin of the URL it was given with: it is never
sent to another host, after a redirect or to a mirror. A `.netrc` login belongs to the host it
names, so each request (each hop of a redirect too) looks up its own.
"""

from __future__ import annotations

import netrc as _netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from ._exceptions import InvalidRequestError
from ._proxy import basic_credentials


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP basic authentication (RFC 7617), and the login of an ftp:// URL. The password is
    never shown."""

    login: str
    password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        _check_login(self.login, self.password, "BasicAuth")
        if ":" in self.login:
            raise InvalidRequestError("a basic-auth login cannot contain ':'", url=None)

    def header(self) -> str:
        return basic_credentials(self.login, self.password)


@dataclass(frozen=True, slots=True)
class DigestAuth:
    """HTTP digest authentication (RFC 7616: MD5, SHA-256, with or without -sess, qop auth), as
    aiohttp's `DigestAuthMiddleware` answers the server's challenge. The password is never
    shown. For ftp:// URLs it is a plain login, as FTP has no digest."""

    login: str
    password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        _check_login(self.login, self.password, "DigestAuth")


#: What `auth=` takes: a `BasicAuth`, a `DigestAuth`, or a (login, password) pair for basic.
Auth: TypeAlias = "BasicAuth | DigestAuth | tuple[str, str]"


def check_auth(value: object) -> BasicAuth | DigestAuth | None:
    """`value` as an auth object; `InvalidRequestError` for anything else."""
    if value is None or isinstance(value, BasicAuth | DigestAuth):
        return value
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return BasicAuth(value[0], value[1])
    kind = type(value).__name__
    raise InvalidRequestError(
        f"auth must be a (login, password) pair, a BasicAuth or a DigestAuth, not a {kind}",
        url=None,
    )


def _check_login(login: object, password: object, kind: str) -> None:
    if not isinstance(login, str) or not isinstance(password, str):
        raise InvalidRequestError(f"{kind} takes a login and a password as strings", url=None)
    if not login:
        raise InvalidRequestError(f"{kind} needs a login", url=None)
    if any(ch in login + password for ch in "\r\n\x00"):
        raise InvalidRequestError(f"{kind} login or password contains a line break", url=None)


class Netrc:
    """The logins of a `.netrc` file, read once, looked up by host (with its `default` entry,
    as curl and ftp use it)."""

    __slots__ = ("_entries", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            parsed = _netrc.netrc(os.fspath(path))
        except FileNotFoundError:
            raise InvalidRequestError(f"no netrc file at {self.path}", url=None) from None
        except _netrc.NetrcParseError as exc:
            # The file and line only: the parser's message quotes the token it stumbled on,
            # which may be a password.
            raise InvalidRequestError(
                f"cannot read the netrc file {self.path}: malformed at line {exc.lineno}",
                url=None,
            ) from None
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read the netrc file {self.path}: {exc.strerror or exc}", url=None
            ) from None
        self._entries = parsed

    @classmethod
    def default(cls) -> Netrc | None:
        """`$NETRC`, else `~/.netrc`, as curl and aiohttp find it; None when there is none."""
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        if not os.path.exists(path):
            return None
        return cls(path)

    def login(self, host: str | None) -> BasicAuth | None:
        """The login for `host`, else the file's `default` one, else None."""
        if not host:
            return None
        entry = self._entries.authenticators(host)
        if entry is None:
            return None
        login, _, password = entry
        if not login:
            return None
        return BasicAuth(login, password or "")
