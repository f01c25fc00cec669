"""Cookies: the downloader's jar, and Netscape `cookies.txt` files in and out.

The file format is the one curl, wget and aria2c share: a line per cookie, seven fields
separated by tabs (domain, include-subdomains, path, secure, expiry in Unix seconds with 0 for
a session cookie, name, value); `#` starts a comment, except `#HttpOnly_` before a domain.
The standard library's `MozillaCookieJar` reads the same lines, but refuses a file whose first
line is not its magic header, which wget's files and many exported ones are not: this parser
takes any such file and names the line of a bad one.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from email.utils import formatdate
from http.cookies import CookieError, Morsel, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import aiohttp
from aiohttp.typedefs import LooseCookies
from yarl import URL

from ..._model.errors import InvalidRequestError, StorageError

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

log = logging.getLogger("adownload")

_HTTP_ONLY = "#HttpOnly_"
#: The latest expiry a cookie keeps (9999-12-31 23:59:59 UTC, the last an HTTP date can say):
#: a later one (microseconds, as some exporters write) is that, as curl caps it.
MAX_EXPIRY = 253_402_300_799


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


#: A cookie read from a file: the morsel, and the URL it is as if set by.
Cookie: TypeAlias = tuple[Morsel[str], URL]


def load_cookies(jar: aiohttp.CookieJar, path: str | os.PathLike[str]) -> int:
    """Add the cookies of the `cookies.txt` file at `path` to `jar`; the number added."""
    return add_cookies(jar, read_cookies(path))


def add_cookies(jar: aiohttp.CookieJar, cookies: list[Cookie]) -> int:
    for morsel, origin in cookies:
        jar.update_cookies({morsel.key: morsel}, origin)
    return len(cookies)


def read_cookies(path: str | os.PathLike[str]) -> list[Cookie]:
    """The cookies of the `cookies.txt` file at `path`, leaving out the expired ones (no jar
    is needed: aiohttp's wants a running event loop). A line that is no cookie (browser
    exporters write such lines) is skipped, as curl, wget and aria2c skip it, and a warning
    counts them and names the first; a file that cannot be read is an `InvalidRequestError`."""
    shown = Path(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot read the cookie file {shown}: {exc.strerror or exc}", url=None
        ) from None
    now = time.time()
    cookies: list[Cookie] = []
    skipped: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        http_only = line.startswith(_HTTP_ONLY)
        if http_only:
            line = line[len(_HTTP_ONLY) :]
        if not line.strip() or line.startswith("#"):
            continue
        try:
            cookie = _cookie(line, http_only, now)
        except _NotACookie as exc:
            skipped.append(f"line {number}: {exc}")
            continue
        if cookie is not None:
            cookies.append(cookie)
    if skipped:
        more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        log.warning(
            "%s: skipped %d line%s that %s no cookie (%s%s)",
            shown,
            len(skipped),
            "" if len(skipped) == 1 else "s",
            "is" if len(skipped) == 1 else "are",
            "; ".join(skipped[:3]),
            more,
        )
    return cookies


class _NotACookie(ValueError):
    """Why a cookies.txt line is no cookie."""


#: An expiry: Unix seconds, maybe with a fraction (some exporters write one).
_EXPIRY = re.compile(r"-?[0-9]{1,30}(\.[0-9]*)?")


def _cookie(line: str, http_only: bool, now: float) -> Cookie | None:
    """The cookie of one line; None for an expired one."""
    fields = line.split("\t")
    if len(fields) == 6:  # a cookie with an empty value, trailing tab stripped
        fields.append("")
    if len(fields) != 7:
        raise _NotACookie("not 7 fields separated by tabs")
    domain, subdomains, cookie_path, secure, expires, name, value = fields
    if not domain:
        raise _NotACookie("no domain")
    if not _EXPIRY.fullmatch(expires.strip()):
        raise _NotACookie(f"the expiry {expires[:30]!r} is no number of seconds")
    expiry = min(int(expires.strip().split(".")[0]), MAX_EXPIRY)
    if 0 < expiry <= now:
        return None
    morsel: Morsel[str] = Morsel()
    if morsel.isReservedKey(name):
        # "path", "secure", ...: http.cookies (and so aiohttp) cannot hold such a cookie.
        raise _NotACookie(f"{name!r} is a name aiohttp cannot keep")
    try:
        morsel.set(name, value, value)
    except CookieError:
        raise _NotACookie(f"{name[:30]!r} is not a valid cookie name") from None
    host = domain.lstrip(".").lower()
    morsel["path"] = cookie_path or "/"
    if subdomains.upper() == "TRUE" or domain.startswith("."):
        morsel["domain"] = host
    if secure.upper() == "TRUE":
        morsel["secure"] = True
    if http_only:
        morsel["httponly"] = True
    if expiry > 0:
        morsel["expires"] = formatdate(expiry, usegmt=True)
    try:
        origin = URL.build(scheme="https" if morsel["secure"] else "http", host=host)
    except ValueError:
        raise _NotACookie(f"{domain[:60]!r} is not a host name") from None
    return morsel, origin


def save_cookies(jar: aiohttp.CookieJar, path: str | os.PathLike[str]) -> int:
    """Write the cookies of `jar` to `path` as a `cookies.txt` file readable only by its owner
    (cookies are credentials), replacing it at once (a temporary file renamed over it); the
    number written."""
    target = Path(path)
    lines = ["# Netscape HTTP Cookie File", "# Written by adownload.", ""]
    # aiohttp keeps a cookie's scope and expiry beside it rather than in the Morsel; these are
    # its jar's own tables (present in every aiohttp this package supports).
    cookies: dict[tuple[str, str], SimpleCookie] = getattr(jar, "_cookies", {})
    host_only: set[tuple[str, str, str]] = getattr(jar, "_host_only_cookies", set())
    expirations: dict[tuple[str, str, str], float] = getattr(jar, "_expirations", {})
    now = time.time()
    written = 0
    for (domain, cookie_path), cookie in sorted(cookies.items()):
        for name, morsel in cookie.items():
            key = (domain, cookie_path, name)
            expiry = expirations.get(key)
            if expiry is not None and expiry <= now:
                continue
            only = key in host_only
            prefix = _HTTP_ONLY if morsel["httponly"] else ""
            lines.append(
                "\t".join(
                    (
                        prefix + (domain if only else "." + domain),
                        "FALSE" if only else "TRUE",
                        cookie_path or "/",
                        "TRUE" if morsel["secure"] else "FALSE",
                        str(int(min(expiry, 2**31 - 1))) if expiry is not None else "0",
                        name,
                        morsel.coded_value,
                    )
                )
            )
            written += 1
    temporary: str | None = None
    try:
        # mkstemp: a new name of our own, made with mode 0600.
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
        )
        with os.fdopen(descriptor, "w", encoding="utf-8", errors="surrogateescape") as file:
            file.write("\n".join(lines) + "\n")
        os.replace(temporary, target)
    except OSError as exc:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        raise StorageError(
            f"cannot save cookies to {target}: {exc.strerror or exc}",
            url=None,
            path=target,
            errno=exc.errno,
        ) from None
    return written
