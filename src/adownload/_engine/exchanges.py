"""Which `Exchange` serves a URL: HTTP for http and https, FTP for ftp (aioftp is imported only
when the first ftp URL is met)."""

from __future__ import annotations

from yarl import URL

from .._model.options import Options
from .._model.request import Request
from .._protocols.base import Exchange
from .._protocols.http.headers import merge_headers
from .settings import Settings


def kind(url: URL) -> str:
    """The protocol of `url`: "http" (also for https) or "ftp"."""
    return "ftp" if url.scheme == "ftp" else "http"


def exchange(kind: str, settings: Settings, request: Request, options: Options) -> Exchange:
    """A new exchange of protocol `kind` for one download, with its `options`."""
    if kind == "ftp":
        from .._protocols.ftp.client import pool_of
        from .._protocols.ftp.exchange import FtpExchange

        return FtpExchange(
            pool_of(settings.pools, settings.network.netrc), settings.network, options
        )
    from .._protocols.http.exchange import HttpExchange  # aiohttp: imported on first use

    headers = settings.headers
    if request.headers:
        headers = merge_headers(headers, request.headers)
    return HttpExchange(settings.network, headers, options, read_bufsize=settings.read_bufsize)
