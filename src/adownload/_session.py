"""The one place an `aiohttp.ClientSession` is made, for the library and both commands."""

from __future__ import annotations

import ssl

import aiohttp


def open_session(
    *, tls: ssl.SSLContext | bool = True, trust_env: bool = False
) -> aiohttp.ClientSession:
    """A session as adownload uses it: no connection limits of its own (the downloader's
    `Limiter` admits transfers; the connector only pools), no decoding and no timeout but the
    downloader's own. `tls` is aiohttp's `ssl=` (a context, or False to check nothing);
    `trust_env` reads the proxy variables and `~/.netrc`, which only the commands ask for: the
    library reads no environment."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, ssl=tls),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=trust_env,
    )
