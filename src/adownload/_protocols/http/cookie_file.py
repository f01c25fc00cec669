"""Netscape `cookies.txt` files in and out: no aiohttp (the command reads `--load-cookies`
before any session exists; the jar is in `cookies.py`).

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
import re
import tempfile
import time
from email.utils import formatdate
from http.cookies import CookieError, Morsel, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from yarl import URL

from ..._model.errors import InvalidRequestError, StorageError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("adownload")

_HTTP_ONLY = "#HttpOnly_"
#: The latest expiry a cookie keeps (9999-12-31 23:59:59 UTC, the last an HTTP date can say):
#: a later one (microseconds, as some exporters write) is that, as curl caps it.
MAX_EXPIRY = 253_402_300_799


#: A cookie read from a file: the morsel, and the URL it is as if set by.
Cookie: TypeAlias = tuple[Morsel[str], URL]


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
