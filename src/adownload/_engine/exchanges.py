"""Which `Exchange` serves a URL: HTTP for http and https, FTP for ftp, obstore for s3, gs and az.
Each protocol's module (and its library: aiohttp, aioftp, obstore) is imported when its first
URL is met."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from yarl import URL

from .._model.errors import InvalidRequestError
from .._protocols.http.headers import merge_headers

if TYPE_CHECKING:
    from .._model.options import Options
    from .._model.request import Request
    from .._protocols.base import Exchange
    from .settings import Settings

#: The HTTP exchange's class, once its module (and aiohttp) is imported.
_http: Any = None


_KINDS = {"ftp": "ftp", "s3": "store", "gs": "store", "az": "store"}


def kind(url: URL) -> str:
    """The protocol of `url`: "http" (also for https), "ftp", or "store" (s3, gs, az)."""
    return _KINDS.get(url.scheme, "http")


class Exchanges:
    """The exchanges of one download, one per protocol, made when its first URL needs it; the
    transfer and its segments share them (and so an HTTP exchange's credentials)."""

    __slots__ = ("_made", "_options", "_request", "_settings")

    def __init__(self, settings: Settings, request: Request, options: Options) -> None:
        self._settings = settings
        self._request = request
        self._options = options
        self._made: dict[str, Exchange] = {}

    def __call__(self, url: URL) -> Exchange:
        """The exchange that serves `url`."""
        protocol = kind(url)
        made = self._made.get(protocol)
        if made is None:
            make = self._settings.exchange or exchange
            made = self._made[protocol] = make(
                protocol, self._settings, self._request, self._options
            )
        return made


def exchange(kind: str, settings: Settings, request: Request, options: Options) -> Exchange:
    """A new exchange of protocol `kind` for one download, with its `options`."""
    global _http
    if kind == "ftp":
        from .._protocols.ftp.client import pool_of
        from .._protocols.ftp.exchange import FtpExchange

        return FtpExchange(
            pool_of(settings.pools, settings.network.netrc), settings.network, options
        )
    if kind == "store":
        try:
            from .._protocols.store.exchange import StoreExchange
            from .._protocols.store.stores import stores_of
        except ModuleNotFoundError as exc:
            if exc.name != "obstore":
                raise
            raise InvalidRequestError(
                "s3://, gs:// and az:// URLs need obstore: pip install 'adownload[cloud]'",
                url=None,
            ) from None

        return StoreExchange(
            stores_of(
                settings.pools, settings.stores, settings.network, verify=settings.stores.verify
            ),
            options,
        )
    if _http is None:
        from .._protocols.http.exchange import HttpExchange

        _http = HttpExchange
    headers = settings.headers
    if request.headers:
        headers = merge_headers(headers, request.headers)
    made: Exchange = _http(settings.network, headers, options, read_bufsize=settings.read_bufsize)
    return made
