"""Cookies: the downloader's jar, on aiohttp's (the `cookies.txt` format is `cookie_file.py`)."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, Morsel, SimpleCookie
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.typedefs import LooseCookies
from yarl import URL

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

from .cookie_file import Cookie as Cookie
from .cookie_file import read_cookies as read_cookies
from .cookie_file import save_cookies as save_cookies

log = logging.getLogger("adownload")


def new_jar() -> aiohttp.CookieJar:
    """A jar that also keeps the cookies of hosts named by IP address (aiohttp's default jar
    drops them: a browser's rule, which a downloader pointed at 127.0.0.1 or a LAN box does not
    want), and refuses a cookie for a public suffix (see `Jar`)."""
    return Jar(unsafe=True)


_NO_URL = URL()


class Jar(aiohttp.CookieJar):
    """aiohttp's jar, without supercookies: a cookie whose `Domain` is a public suffix (`com`,
    `co.uk`, `github.io`, in any case: curl's CVE-2023-46218 was a mixed-case one) is refused,
    as browsers and curl refuse it (RFC 6265, section 5.3, step 5), unless that suffix is the
    host itself, which then keeps it as its own. aiohttp checks only that the domain matches
    the host, so evil.example.com could set a cookie that bank.com would be sent."""

    def update_cookies(self, cookies: LooseCookies, response_url: URL = _NO_URL) -> None:
        super().update_cookies(_no_supercookies(cookies, response_url), response_url)

    def update_cookies_from_headers(self, headers: Sequence[str], response_url: URL) -> None:
        parsed: SimpleCookie = SimpleCookie()
        for header in headers:
            with contextlib.suppress(CookieError):
                parsed.load(header)
        self.update_cookies(parsed, response_url)


def _no_supercookies(cookies: LooseCookies, origin: URL) -> list[tuple[str, Any]]:
    host = (origin.host or "").lower()
    items = cookies.items() if isinstance(cookies, Mapping) else cookies
    kept: list[tuple[str, Any]] = []
    for name, value in items:
        if isinstance(value, Morsel):
            domain = str(value.get("domain", "")).strip().lstrip(".").lower()
            if domain and not _is_ip(host) and _public_suffixes().is_public(domain):
                if domain != host:
                    log.info(
                        "refused the cookie %r of %s for the public suffix %r", name, host, domain
                    )
                    continue
                value = value.copy()
                value["domain"] = ""  # the suffix's own host: a cookie of that host alone
        kept.append((name, value))
    return kept


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    # Imported and read (about 60 ms) once, when a cookie first names a domain.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def load_cookies(jar: aiohttp.CookieJar, path: str | os.PathLike[str]) -> int:
    """Add the cookies of the `cookies.txt` file at `path` to `jar`; the number added."""
    return add_cookies(jar, read_cookies(path))


def add_cookies(jar: aiohttp.CookieJar, cookies: list[Cookie]) -> int:
    for morsel, origin in cookies:
        jar.update_cookies({morsel.key: morsel}, origin)
    return len(cookies)
