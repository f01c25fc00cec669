"""Credentials for the servers: `BasicAuth`, `DigestAuth`, and logins from a `.netrc` file.

A credential given as `auth=` belongs to the origin of the URL it was given with: it is never
sent to another host, after a redirect or to a mirror. A `.netrc` login belongs to the host it
names, so each request (each hop of a redirect too) looks up its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from .errors import InvalidRequestError
from .proxy import basic_credentials


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
Auth: TypeAlias = BasicAuth | DigestAuth | tuple[str, str]


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


#: The largest `.netrc` file read, in bytes.
MAX_NETRC = 1 << 20
_BLANKS = " \t\r\n\f\v"
_ENTRY_KEYS = frozenset({"login", "user", "password", "account"})


class NetrcSyntaxError(ValueError):
    """A `.netrc` that is not one; says the line, never the token (it may be a password)."""

    def __init__(self, line: int, what: str = "malformed") -> None:
        super().__init__(f"{what} at line {line}")
        self.line = line


class Netrc:
    """The logins of a `.netrc` file, read once, looked up by host (with its `default` entry,
    as curl and ftp use it).

    Read once, as bytes, by our own parser: the standard library's opens the file a second
    time when it is not UTF-8, which empties a pipe (`--netrc-file <(gpg -d ...)`), and it
    raises a bare `UnicodeDecodeError`.
    """

    __slots__ = ("_default", "_hosts", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            with open(path, "rb") as file:  # a FIFO too: <(gpg -d ...) is one
                data = file.read(MAX_NETRC + 1)
        except FileNotFoundError:
            raise InvalidRequestError(f"no netrc file at {self.path}", url=None) from None
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read the netrc file {self.path}: {exc.strerror or exc}", url=None
            ) from None
        if len(data) > MAX_NETRC:
            raise InvalidRequestError(
                f"cannot read the netrc file {self.path}: over {MAX_NETRC >> 20} MiB", url=None
            )
        try:
            self._hosts, self._default = parse_netrc(data)
        except NetrcSyntaxError as exc:
            raise InvalidRequestError(
                f"cannot read the netrc file {self.path}: {exc}", url=None
            ) from None

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
        login, password = self._hosts.get(host) or self._default or ("", "")
        if not login:
            return None
        return BasicAuth(login, password)


Login: TypeAlias = tuple[str, str]


def parse_netrc(data: bytes) -> tuple[dict[str, Login], Login | None]:
    """The `(login, password)` of each `machine` of a `.netrc` document, and its `default`
    one; raises `NetrcSyntaxError` (a `ValueError` naming the line) for anything else.

    The grammar is curl's and Python's: `machine NAME` or `default`, then `login`, `password`
    and `account` pairs; `macdef NAME` and its lines up to a blank one; a `#` where a keyword
    belongs starts a comment; a token may be `"quoted"` and may hold `\\`-escapes. A later
    entry for a host replaces an earlier one, as in Python's `netrc`.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetrcSyntaxError(data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text") from None
    tokens = _NetrcTokens(text)
    hosts: dict[str, Login] = {}
    default: Login | None = None
    token = tokens.next()
    while token is not None:
        if token.startswith("#"):
            tokens.skip_line()
            token = tokens.next()
        elif token == "macdef":
            tokens.value()
            tokens.skip_macro()
            token = tokens.next()
        elif token in ("machine", "default"):
            host = tokens.value() if token == "machine" else None
            login = password = ""
            token = tokens.next()
            while token in _ENTRY_KEYS:
                value = tokens.value()
                if any(ch in value for ch in "\r\n\x00"):
                    raise NetrcSyntaxError(tokens.line, "a line break in a value")
                if token in ("login", "user"):
                    login = value
                elif token == "password":
                    password = value
                token = tokens.next()
            if host is None:
                default = (login, password)
            else:
                hosts[host] = (login, password)
        else:
            raise NetrcSyntaxError(tokens.line)
    return hosts, default


class _NetrcTokens:
    """The tokens of a `.netrc` text, with the line each ends on."""

    __slots__ = ("at", "line", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.line = 1

    def next(self) -> str | None:
        text, end, at = self.text, len(self.text), self.at
        while at < end and text[at] in _BLANKS:
            self.line += text[at] == "\n"
            at += 1
        if at == end:
            self.at = at
            return None
        quoted = text[at] == '"'
        at += quoted
        out = []
        while at < end and (text[at] != '"' if quoted else text[at] not in _BLANKS):
            if text[at] == "\\" and at + 1 < end:
                at += 1
            self.line += text[at] == "\n"
            out.append(text[at])
            at += 1
        if quoted:
            if at == end:
                raise NetrcSyntaxError(self.line, "an unclosed quote")
            at += 1
        self.at = at
        return "".join(out)

    def value(self) -> str:
        token = self.next()
        if token is None:
            raise NetrcSyntaxError(self.line, "a keyword without its value")
        return token

    def skip_line(self) -> None:
        newline = self.text.find("\n", self.at)
        self.at = len(self.text) if newline < 0 else newline

    def skip_macro(self) -> None:
        """Past the lines of a `macdef`, which end at a blank line (or the end)."""
        self.skip_line()
        text = self.text
        while self.at < len(text):
            self.at += 1  # the newline
            self.line += 1
            newline = text.find("\n", self.at)
            line = text[self.at : len(text) if newline < 0 else newline]
            if not line.strip(_BLANKS):
                return
            self.at = len(text) if newline < 0 else newline
