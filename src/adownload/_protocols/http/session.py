"""The one place an `aiohttp.ClientSession` is made, for the downloader and its SOCKS routes."""

from __future__ import annotations

import ssl

import aiohttp
from aiohttp.abc import AbstractCookieJar


def open_session(
    *,
    tls: ssl.SSLContext | bool = True,
    cookie_jar: AbstractCookieJar | None = None,
    connector: aiohttp.TCPConnector | None = None,
) -> aiohttp.ClientSession:
    """A session as adownload uses it: no connection limits of its own (the downloader's
    `Limiter` admits transfers; the connector only pools), no decoding and no timeout but the
    downloader's own, and no environment read (the `Network` reads it, when asked, for every
    route alike). `tls` is aiohttp's `ssl=` (a context, or False to check nothing); `connector`
    is one made with the same settings (a SOCKS proxy's)."""
    if connector is None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, ssl=tls)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
        cookie_jar=cookie_jar,
        trust_env=False,
    )
