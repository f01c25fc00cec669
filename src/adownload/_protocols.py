"""Which `Exchange` serves a URL: HTTP for http and https, FTP for ftp (aioftp is imported only
when the first ftp URL is met)."""

from __future__ import annotations

from yarl import URL

from ._answer import Exchange
from ._config import Timeout
from ._http import HttpExchange, HttpOptions, merge_headers
from ._models import Request
from ._settings import Settings


def kind(url: URL) -> str:
    """The protocol of `url`: "http" (also for https) or "ftp"."""
    return "ftp" if url.scheme == "ftp" else "http"


def exchange(kind: str, settings: Settings, request: Request, timeout: Timeout) -> Exchange:
    """A new exchange of protocol `kind` for one download."""
    if kind == "ftp":
        from ._ftp import FtpExchange, pool_of

        return FtpExchange(pool_of(settings), timeout=timeout)
    headers = settings.headers
    if request.headers:
        headers = merge_headers(headers, request.headers)
    return HttpExchange(
        HttpOptions(
            session=settings.session,
            headers=headers,
            timeout=timeout,
            max_redirects=settings.max_redirects,
            allow_downgrade=settings.allow_downgrade,
            decode_content=settings.decode_content,
            verify_digests=settings.verify_digests,
            content_disposition=settings.content_disposition,
            read_bufsize=settings.read_bufsize,
            splice=settings.splice,
        )
    )
