"""Proxies as data: a proxy URL checked and split from its credentials, the `no_proxy` list,
and the proxy variables of an environment, read as curl reads them.

Pure logic, no socket: `_protocols.network` uses these to choose the route of each request.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from yarl import URL

from .errors import InvalidRequestError
from .util import redact, whole_number

#: The proxy schemes understood, and the port each takes when the URL names none: 1080, as
#: curl assumes for every kind but https, whose proxies listen for TLS on 443.
_DEFAULT_PORTS = {
    "http": 1080,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy: its URL without credentials, and the credentials apart (never shown).

    `kind` is "http" (for http and https proxies, spoken to in HTTP, with CONNECT for https
    targets) or "socks"; `remote_dns` is True for socks4a and socks5h, where the proxy looks the
    target's name up.
    """

    url: URL
    login: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return "http" if self.url.scheme in ("http", "https") else "socks"

    @property
    def remote_dns(self) -> bool:
        return self.url.scheme in ("socks4a", "socks5h")

    @property
    def shown(self) -> str:
        """The proxy as messages name it: scheme, host and port, nothing secret."""
        return str(self.url)

    def authorization(self) -> str | None:
        """The Proxy-Authorization value for an HTTP proxy with credentials (RFC 7617 basic)."""
        if self.login is None:
            return None
        return basic_credentials(self.login, self.password or "")

    def __str__(self) -> str:
        return self.shown


def basic_credentials(login: str, password: str) -> str:
    """`Basic <base64 of login:password>`, UTF-8 encoded (RFC 7617, section 2.1)."""
    token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def parse_proxy(value: object, *, where: str = "proxy") -> Proxy:
    """Check a proxy URL and split off its credentials; raise `InvalidRequestError` for a
    malformed one or an unknown scheme, naming it without its password.

    A URL without a scheme is an http proxy, as for curl (`127.0.0.1:3128`).

    ```pycon
    >>> parse_proxy("socks5h://user:pw@127.0.0.1:1080")
    Proxy(url=URL('socks5h://127.0.0.1:1080'))
    >>> parse_proxy("127.0.0.1:3128").shown
    'http://127.0.0.1:3128'
    ```
    """
    if isinstance(value, URL):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidRequestError(f"{where} must be a URL string, not {value!r}", url=None)
    shown = redact(text)
    if not text:
        raise InvalidRequestError(f"empty {where} URL", url=None)
    if any(ch in text for ch in "\x00\r\n\t "):
        raise InvalidRequestError(f"{where} URL contains blanks or control characters", url=None)
    if "://" not in text:
        text = "http://" + text
    try:
        url = URL(text)
        port = url.port  # a port that is not a number fails here
        host = url.host  # and a host yarl cannot normalize ('<') here
    except (ValueError, TypeError):
        raise InvalidRequestError(f"malformed {where} URL {shown!r}", url=None) from None
    scheme = url.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        known = ", ".join(f"{s}://" for s in _DEFAULT_PORTS)
        raise InvalidRequestError(
            f"unsupported {where} scheme {url.scheme!r} in {shown!r} (known: {known})", url=None
        )
    if not host:
        raise InvalidRequestError(f"{where} URL has no host: {shown!r}", url=None)
    if url.path not in ("", "/") or url.query_string or url.fragment:
        raise InvalidRequestError(
            f"a {where} URL is scheme://host:port, with nothing after: {shown!r}", url=None
        )
    if url.explicit_port is None:
        port = _DEFAULT_PORTS[scheme]
    try:
        bare = URL.build(scheme=scheme, host=host, port=port)
    except ValueError:  # a host yarl takes apart but will not build ('<')
        raise InvalidRequestError(f"malformed {where} URL {shown!r}", url=None) from None
    return Proxy(bare, url.user, url.password)


@dataclass(frozen=True, slots=True)
class NoProxy:
    """The hosts reached without a proxy: curl's `no_proxy` list.

    Each entry is `*` (every host), a host name (that host and its subdomains; a leading dot
    changes nothing), an IP address, or a network in CIDR notation (`10.0.0.0/8`). A port after
    a name is ignored, as curl ignores it.
    """

    everything: bool = False
    names: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> NoProxy:
        """From "a.example, .b.example, 127.0.0.1, 10.0.0.0/8" or a list of such entries."""
        if value is None:
            return cls()
        entries = value.split(",") if isinstance(value, str) else list(value)
        names: list[str] = []
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for raw in entries:
            if not isinstance(raw, str):
                raise InvalidRequestError(
                    f"no_proxy entries must be strings, not {raw!r}", url=None
                )
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                return cls(everything=True)
            if entry.startswith("[") and "]" in entry:  # [::1] or [::1]:8080
                entry = entry[1 : entry.index("]")]
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name, _, port = entry.rpartition(":")
            if name and whole_number(port, digits=5) is not None:
                entry = name
            names.append(entry.strip(".").rstrip("."))
        return cls(names=tuple(n for n in names if n), networks=tuple(networks))

    def __bool__(self) -> bool:
        return self.everything or bool(self.names or self.networks)

    def matches(self, host: str | None) -> bool:
        """Whether `host` (a URL's host, without brackets) is reached directly."""
        if self.everything:
            return True
        if not host:
            return False
        host = host.lower().rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(host == name or host.endswith("." + name) for name in self.names)
        return any(address in network for network in self.networks) or host in self.names


@dataclass(frozen=True, slots=True)
class EnvironmentProxies:
    """The proxies an environment names, as curl reads them: `http_proxy` for http URLs (the
    lower-case name only: a CGI program's HTTP_PROXY comes from a request header),
    `https_proxy` or `HTTPS_PROXY` for https, `ftp_proxy` or `FTP_PROXY` for ftp, `all_proxy`
    or `ALL_PROXY` for any of them when its own is not set, and `no_proxy` or `NO_PROXY`."""

    http: Proxy | None = None
    https: Proxy | None = None
    ftp: Proxy | None = None
    all: Proxy | None = None
    no_proxy: NoProxy = NoProxy()

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> EnvironmentProxies:
        def variable(*names: str) -> Proxy | None:
            for name in names:
                value = environ.get(name, "").strip()
                if value:
                    return parse_proxy(value, where=f"${name}")
            return None

        no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY")
        return cls(
            http=variable("http_proxy"),
            https=variable("https_proxy", "HTTPS_PROXY"),
            ftp=variable("ftp_proxy", "FTP_PROXY"),
            all=variable("all_proxy", "ALL_PROXY"),
            no_proxy=NoProxy.parse(no_proxy),
        )

    def for_scheme(self, scheme: str) -> Proxy | None:
        """The proxy for a URL of `scheme`, if the environment names one."""
        named = {"http": self.http, "https": self.https, "ftp": self.ftp}.get(scheme)
        return named if named is not None else self.all
