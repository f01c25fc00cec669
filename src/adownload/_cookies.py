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
import logging
import os
import tempfile
import time
from email.utils import formatdate
from http.cookies import CookieError, Morsel, SimpleCookie
from pathlib import Path
from typing import TypeAlias

import aiohttp
from yarl import URL

from ._exceptions import InvalidRequestError, StorageError

log = logging.getLogger("adownload")

_HTTP_ONLY = "#HttpOnly_"
#: The latest expiry a cookie keeps (9999-12-31 23:59:59 UTC, the last an HTTP date can say):
#: a later one (microseconds, as some exporters write) is that, as curl caps it.
MAX_EXPIRY = 253_402_300_799


def new_jar() -> aiohttp.CookieJar:
    """A jar that also keeps the cookies of hosts named by IP address (aiohttp's default jar
    drops them: a browser's rule, which a downloader pointed at 127.0.0.1 or a LAN box does not
    want)."""
    return aiohttp.CookieJar(unsafe=True)


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
    is needed: aiohttp's wants a running event loop). `InvalidRequestError` names the file and
    line of a malformed one."""
    shown = Path(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot read the cookie file {shown}: {exc.strerror or exc}", url=None
        ) from None
    now = time.time()
    cookies: list[Cookie] = []
    for number, line in enumerate(text.splitlines(), 1):
        http_only = line.startswith(_HTTP_ONLY)
        if http_only:
            line = line[len(_HTTP_ONLY) :]
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 6:  # a cookie with an empty value, trailing tab stripped
            fields.append("")
        if len(fields) != 7:
            raise InvalidRequestError(
                f"{shown}:{number}: not a cookies.txt line (7 fields separated by tabs)",
                url=None,
            )
        domain, subdomains, cookie_path, secure, expires, name, value = fields
        digits = expires.strip().removeprefix("-")
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if not domain or not (digits.isascii() and digits.isdigit()) or len(digits) > 30:
            raise InvalidRequestError(
                f"{shown}:{number}: a cookie needs a domain and a numeric expiry", url=None
            )
        expiry = min(int(expires), MAX_EXPIRY)
        if 0 < expiry <= now:
            continue
        morsel: Morsel[str] = Morsel()
        if morsel.isReservedKey(name):
            # "path", "secure", ...: http.cookies (and so aiohttp) cannot hold such a cookie.
            log.warning(
                "%s:%d: skipped the cookie %r, a name aiohttp cannot keep", shown, number, name
            )
            continue
        try:
            morsel.set(name, value, value)
        except CookieError:
            raise InvalidRequestError(
                f"{shown}:{number}: {name!r} is not a valid cookie name", url=None
            ) from None
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
            raise InvalidRequestError(
                f"{shown}:{number}: {domain!r} is not a host name", url=None
            ) from None
        cookies.append((morsel, origin))
    return cookies


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
