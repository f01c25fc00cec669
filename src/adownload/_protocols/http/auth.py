"""The credentials of one download's HTTP requests, hop by hop: the `auth` option (basic, or
digest through aiohttp's `DigestAuthMiddleware`), the `.netrc` login of the host, and the
proxy's own, each where it belongs and nowhere else."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ..._model.auth import BasicAuth, DigestAuth, Netrc

if TYPE_CHECKING:
    from ..._model.proxy import Proxy

#: Request headers that carry credentials: not sent on to another origin after a redirect.
_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")


class Credentials:
    """What one download's requests carry, given where each one goes."""

    __slots__ = ("_auth", "_digest", "_digest_only", "_netrc")

    def __init__(self, auth: BasicAuth | DigestAuth | None, netrc: Netrc | None) -> None:
        self._auth = auth
        self._netrc = netrc
        # One per download and login: it keeps the server's nonce from one request to the next.
        self._digest: dict[tuple[str, str], aiohttp.DigestAuthMiddleware] = {}
        # Origins that answered a basic login with a digest challenge: digest from then on.
        self._digest_only: set[tuple[str, str | None, int | None]] = set()

    def _login(
        self, url: URL, headers: CIMultiDict[str], *, trusted: bool
    ) -> BasicAuth | DigestAuth | None:
        """The `auth` option where `trusted` (the request's own origin), else the `.netrc` login
        of its host when the request brings no credential of its own (userinfo in the URL,
        which aiohttp sends, or an Authorization header)."""
        login = self._auth if trusted else None
        netrc = self._netrc
        if (
            login is None
            and netrc is not None
            and url.raw_user is None
            and "Authorization" not in headers
        ):
            login = netrc.login(url.host)
        if isinstance(login, BasicAuth) and (url.scheme, url.host, url.port) in self._digest_only:
            return DigestAuth(login.login, login.password)
        return login

    def digest_asked(
        self, url: URL, headers: CIMultiDict[str], challenge: str | None, *, trusted: bool
    ) -> bool:
        """A 401 from `url` with the `WWW-Authenticate` `challenge`: whether the request went
        with a basic login that the server wants as digest, as wget and `curl --anyauth` answer
        it. Its requests then answer the challenge with that login (the same request again)."""
        if not challenge or not challenge.lstrip().lower().startswith("digest"):
            return False
        if not isinstance(self._login(url, headers, trusted=trusted), BasicAuth):
            return False
        self._digest_only.add((url.scheme, url.host, url.port))
        return True

    def apply(
        self, url: URL, headers: CIMultiDict[str], proxy: Proxy | None, *, trusted: bool
    ) -> tuple[CIMultiDict[str], dict[str, object]]:
        """The headers of one request to `url`, and aiohttp's further keywords for it.

        The `auth` option where `trusted` (the request's own origin), else the `.netrc` login
        of its host when the request brings no credential of its own (userinfo in the URL,
        which aiohttp sends, or an Authorization header); and an HTTP proxy with its
        credentials (a SOCKS proxy is its session's connector, not a keyword)."""
        extra: dict[str, object] = {}
        login = self._login(url, headers, trusted=trusted)
        if isinstance(login, BasicAuth):
            headers = headers.copy()
            headers["Authorization"] = login.header()
        elif isinstance(login, DigestAuth):
            key = (login.login, login.password)
            middleware = self._digest.get(key)
            if middleware is None:
                middleware = self._digest[key] = aiohttp.DigestAuthMiddleware(*key)
            extra["middlewares"] = (middleware,)
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
