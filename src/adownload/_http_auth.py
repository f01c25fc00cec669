"""The credentials of one download's HTTP requests, hop by hop: the `auth` option (basic, or
digest through aiohttp's `DigestAuthMiddleware`), the `.netrc` login of the host, and the
proxy's own, each where it belongs and nowhere else."""

from __future__ import annotations

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ._auth import BasicAuth, DigestAuth, Netrc
from ._proxy import Proxy

#: Request headers that carry credentials: not sent on to another origin after a redirect.
_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")


class Credentials:
    """What one download's requests carry, given where each one goes."""

    __slots__ = ("_auth", "_digest", "_netrc")

    def __init__(self, auth: BasicAuth | DigestAuth | None, netrc: Netrc | None) -> None:
        self._auth = auth
        self._netrc = netrc
        # One per download: it keeps the server's nonce from one request to the next.
        self._digest: aiohttp.DigestAuthMiddleware | None = None

    def apply(
        self, url: URL, headers: CIMultiDict[str], proxy: Proxy | None, *, trusted: bool
    ) -> tuple[CIMultiDict[str], dict[str, object]]:
        """The headers of one request to `url`, and aiohttp's further keywords for it.

        The `auth` option where `trusted` (the request's own origin), else the `.netrc` login
        of its host when the request brings no credential of its own (userinfo in the URL,
        which aiohttp sends, or an Authorization header); and an HTTP proxy with its
        credentials (a SOCKS proxy is its session's connector, not a keyword)."""
        extra: dict[str, object] = {}
        login = self._auth if trusted else None
        netrc = self._netrc
        if (
            login is None
            and netrc is not None
            and url.raw_user is None
            and "Authorization" not in headers
        ):
            login = netrc.login(url.host)
        if isinstance(login, BasicAuth):
            headers = headers.copy()
            headers["Authorization"] = login.header()
        elif isinstance(login, DigestAuth):
            if self._digest is None:
                self._digest = aiohttp.DigestAuthMiddleware(login.login, login.password)
            extra["middlewares"] = (self._digest,)
        if proxy is not None and proxy.kind == "http":
            extra["proxy"] = proxy.url
            headers = _proxy_credentials(proxy, url, headers, extra)
        return headers, extra


def _proxy_credentials(
    proxy: Proxy, url: URL, headers: CIMultiDict[str], extra: dict[str, object]
) -> CIMultiDict[str]:
    """An HTTP proxy's credentials: on the CONNECT (which aiohttp sends) for an https URL; on
    the request itself, which goes to the proxy and which the proxy takes off, for plain http."""
    credential = proxy.authorization()
    if credential is None:
        return headers
    if url.scheme == "https":
        extra["proxy_headers"] = {"Proxy-Authorization": credential}
        return headers
    headers = headers.copy()
    headers["Proxy-Authorization"] = credential
    return headers


def without_credentials(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """`headers` without those that carry credentials, for a request to another origin."""
    headers = headers.copy()
    for name in _CREDENTIALS:
        headers.pop(name, None)
    return headers
