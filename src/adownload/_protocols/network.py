"""`Network`: the sessions of one downloader, and which of them (through which proxy) each
request takes.

Direct requests and those through an HTTP or HTTPS proxy share the downloader's session:
aiohttp speaks to an HTTP proxy per request (`proxy=`, with CONNECT for https targets). A SOCKS
proxy is spoken to by the connector, so each SOCKS proxy gets a session of its own, on
aiohttp-socks' `ProxyConnector` (imported only when the first SOCKS proxy is used), made on
first use with the same TLS settings and the same cookie jar. Every session is pooled like the
first, so the connections of a segmented download through a proxy are all opened through it.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yarl import URL

from .._model.auth import Netrc
from .._model.errors import InvalidRequestError
from .._model.proxy import EnvironmentProxies, NoProxy, Proxy

if TYPE_CHECKING:
    # aiohttp waits for the first open downloader (start-up imports only what runs).
    import aiohttp


@dataclass(frozen=True, slots=True)
class Route:
    """How one request goes: over `session`, through `proxy` (None: directly)."""

    session: aiohttp.ClientSession
    proxy: Proxy | None = None


class Network:
    """The sessions of one downloader, and the route of each request."""

    __slots__ = (
        "_direct",
        "_environment",
        "_jar",
        "_no_proxy",
        "_session",
        "_socks",
        "_tls",
        "netrc",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        tls: ssl.SSLContext | bool,
        no_proxy: NoProxy,
        environment: EnvironmentProxies | None,
        netrc: Netrc | None,
    ) -> None:
        self._session = session
        self._direct = Route(session)  # the common case, made once
        self._tls = tls
        self._jar = session.cookie_jar
        # An explicit no_proxy list replaces the environment's, as curl's --noproxy does.
        if not no_proxy and environment is not None:
            no_proxy = environment.no_proxy
        self._no_proxy = no_proxy
        self._environment = environment
        self._socks: dict[Proxy, aiohttp.ClientSession] = {}
        #: Logins by host, from a `.netrc` file, for the requests that bring none of their own.
        self.netrc = netrc

    @property
    def session(self) -> aiohttp.ClientSession:
        """The downloader's own session (or the one it borrows)."""
        return self._session

    def proxy_for(self, url: URL, proxy: Proxy | None) -> Proxy | None:
        """The proxy a request for `url` goes through: `proxy` (the request's or the
        downloader's), else the environment's (with `trust_env`), unless `no_proxy` names the
        host."""
        if proxy is None and self._environment is not None:
            proxy = self._environment.for_scheme(url.scheme)
        if proxy is None or self._no_proxy.matches(url.host):
            return None
        return proxy

    def route(self, url: URL, proxy: Proxy | None) -> Route:
        chosen = self.proxy_for(url, proxy)
        if chosen is None:
            return self._direct
        if chosen.kind == "http":
            return Route(self._session, chosen)
        session = self._socks.get(chosen)
        if session is None:
            session = self._socks[chosen] = self._socks_session(chosen)
        return Route(session, chosen)

    def _socks_session(self, proxy: Proxy) -> aiohttp.ClientSession:
        from aiohttp_socks import ProxyConnector, ProxyType

        from .http.session import open_session

        kind = ProxyType.SOCKS4 if proxy.url.scheme.startswith("socks4") else ProxyType.SOCKS5
        connector = ProxyConnector(
            host=proxy.url.host or "",
            port=proxy.url.port or 1080,
            proxy_type=kind,
            username=proxy.login,
            password=proxy.password,
            rdns=proxy.remote_dns,
            ssl=self._tls,
            limit=0,
            limit_per_host=0,
        )
        return open_session(tls=self._tls, cookie_jar=self._jar, connector=connector)

    async def close(self) -> None:
        """Close the SOCKS sessions (the main one is the downloader's to close)."""
        sessions = list(self._socks.values())
        self._socks.clear()
        for session in sessions:
            await session.close()


def environment_of(
    trust_env: bool, *, netrc: bool = True
) -> tuple[EnvironmentProxies | None, Netrc | None]:
    """With `trust_env`: the proxies of the environment, and (unless `netrc` is False, for a
    caller with a file of its own) the default `.netrc` file."""
    if not trust_env:
        return None, None
    return EnvironmentProxies.read(os.environ), Netrc.default() if netrc else None


def check_ftp_route(network: Network, url: URL, proxy: Proxy | None, shown: str) -> None:
    """FTP goes only directly: a proxy that would apply to an ftp:// URL is refused rather
    than bypassed, since a caller who set one may not want their address seen."""
    chosen = network.proxy_for(url, proxy)
    if chosen is not None:
        raise InvalidRequestError(
            f"{shown} would go through the proxy {chosen.shown}, and ftp:// URLs cannot go "
            "through a proxy here; add the host to no_proxy (on the command line:"
            f" --noproxy {url.host}) to connect directly",
            url=shown,
        )
