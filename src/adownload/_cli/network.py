"""The flags of proxies, logins and cookies, which `adownload` and `adownload mirror` share,
and what they mean to the `Downloader`.

Spelt as curl, wget and aria2c spell them: curl's `--proxy`, `--noproxy`, `-u/--user`,
`--digest`, `--netrc`, `--netrc-file`, `-b/--cookie` and `--cookie-jar`; wget's `--user`,
`--password`, `--load-cookies` and `--save-cookies`; aria2c's `--all-proxy`. (`-x` stays
aria2c's connections per host, and `-c` its continue.) Both commands read the environment's
proxy variables and `~/.netrc`, as curl and wget do.
"""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from yarl import URL

from .._model.auth import BasicAuth, DigestAuth, Netrc
from .._model.errors import InvalidRequestError, StorageError
from .._model.options import check_proxy
from .._model.proxy import NoProxy
from .._protocols.http.cookie_file import Cookie, read_cookies
from .._protocols.network import environment_of
from .shared import UsageError

if TYPE_CHECKING:
    from .._client.downloader import Downloader


def add_network_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "proxies, logins and cookies",
        "(http_proxy, https_proxy, all_proxy and no_proxy are read as curl reads them, and "
        "logins from ~/.netrc or $NETRC)",
    )
    group.add_argument(
        "--proxy",
        "--all-proxy",
        dest="proxy",
        metavar="URL",
        help="send every request through this proxy: http://, https://, socks4://, socks4a://,"
        " socks5:// or socks5h:// (names looked up by the proxy), with USER:PASS@ if it wants"
        " them; it wins over the *_proxy variables",
    )
    group.add_argument(
        "--noproxy",
        dest="noproxy",
        metavar="LIST",
        help="reach these hosts directly: 'a.example,.b.example,127.0.0.1,10.0.0.0/8', or '*'"
        " for all; it replaces no_proxy",
    )
    group.add_argument(
        "-u",
        "--user",
        "--http-user",
        dest="user",
        metavar="USER[:PASS]",
        help="log in to the servers as USER (basic authentication; the FTP login too); without"
        " :PASS or --password, the password is asked for. A password on the command line is"
        " seen by other users of this machine: prefer --netrc-file",
    )
    group.add_argument(
        "--password",
        "--http-password",
        dest="password",
        metavar="PASS",
        help="the password for --user",
    )
    group.add_argument(
        "--digest",
        action="store_true",
        help="log in with digest authentication instead of basic",
    )
    group.add_argument(
        "--netrc",
        dest="netrc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take logins from ~/.netrc (or $NETRC) by host, for servers without --user"
        " (default: on)",
    )
    group.add_argument(
        "--netrc-file",
        dest="netrc_file",
        metavar="FILE",
        help="take logins from FILE instead of ~/.netrc",
    )
    group.add_argument(
        "--load-cookies",
        dest="load_cookies",
        action="append",
        default=[],
        metavar="FILE",
        help="send the cookies of FILE (a cookies.txt, as curl, wget, aria2c and browser"
        " extensions write it); may be repeated",
    )
    group.add_argument(
        "-b",
        "--cookie",
        dest="cookie",
        action="append",
        default=[],
        metavar="FILE|'NAME=VALUE; ...'",
        help="as curl: a cookies.txt FILE to load, or cookies to send as they are (to the"
        " hosts of the URLs given, not past a redirect elsewhere); may be repeated",
    )
    group.add_argument(
        "--save-cookies",
        "--cookie-jar",
        dest="save_cookies",
        metavar="FILE",
        help="write the cookies (those loaded, and those the servers set) to FILE at the end,"
        " readable by you only",
    )
    stores = parser.add_argument_group(
        "object stores (s3://, gs://, az://; pip install 'adownload[cloud]')",
        "(credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,"
        " AWS_PROFILE and ~/.aws, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*, as the"
        " clouds' own tools read them)",
    )
    stores.add_argument(
        "--endpoint-url",
        dest="endpoint_url",
        metavar="URL",
        help="the object store's endpoint, for S3-compatible stores (MinIO, R2, Ceph...); as"
        " aws-cli's --endpoint-url (default: AWS_ENDPOINT_URL, else AWS's)",
    )
    stores.add_argument(
        "--region",
        dest="region",
        metavar="REGION",
        help="the bucket's region, as aws-cli's --region (default: AWS_REGION, else us-east-1)",
    )
    stores.add_argument(
        "--no-sign-request",
        dest="no_sign_request",
        action="store_true",
        help="send no credentials: for public buckets, as aws-cli's --no-sign-request",
    )


class NetworkKeywords(TypedDict):
    proxy: str | None
    no_proxy: str | None
    trust_env: bool
    auth: BasicAuth | DigestAuth | None
    netrc: Netrc | Literal[False]
    store_options: dict[str, dict[str, str]] | None


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """The flags above, checked."""

    proxy: str | None = None
    no_proxy: str | None = None
    auth: BasicAuth | DigestAuth | None = None
    # Read here once, for every downloader of the run: --netrc-file <(gpg -d ...) is a pipe.
    netrc: Netrc | Literal[False] = False
    cookies: tuple[Cookie, ...] = field(default=(), repr=False)
    cookie_header: str | None = field(default=None, repr=False)
    save_cookies: Path | None = None
    #: --endpoint-url, --region, --no-sign-request, as obstore's configuration keys (the
    #: first two S3's), by scheme.
    store_options: tuple[tuple[str, str, str], ...] = ()

    def keywords(self) -> NetworkKeywords:
        """The `Downloader` keywords they stand for."""
        return {
            "proxy": self.proxy,
            "no_proxy": self.no_proxy,
            "trust_env": True,
            "auth": self.auth,
            "netrc": self.netrc,
            "store_options": _by_scheme(self.store_options),
        }


def network_options(args: argparse.Namespace) -> NetworkOptions:
    """Check the flags above; a `UsageError` for a bad one, before anything is sent."""
    try:
        # The variables (and ~/.netrc, when it is the one) are checked here too, so that a
        # malformed one is a usage error; the netrc file is read here, once.
        _, default = environment_of(True, netrc=args.netrc and args.netrc_file is None)
        proxy: str | None = args.proxy
        if proxy is not None:
            check_proxy(proxy)
        if args.noproxy is not None:
            NoProxy.parse(args.noproxy)
        netrc: Netrc | Literal[False] = default or False
        if args.netrc_file is not None:
            netrc = Netrc(args.netrc_file)
        auth = _login(args.user, args.password, digest=args.digest)
        cookies = [cookie for path in args.load_cookies for cookie in read_cookies(path)]
        header: list[str] = []
        for value in args.cookie:  # curl's -b: a file, or cookies as they are sent
            if "=" in value and not os.path.exists(value):
                header.append(value.strip().rstrip(";"))
            else:
                cookies.extend(read_cookies(value))
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
    save = None if args.save_cookies is None else Path(args.save_cookies)
    if save is not None and save.is_dir():
        raise UsageError(f"--save-cookies: {save} is a directory")
    return NetworkOptions(
        proxy=proxy,
        no_proxy=args.noproxy,
        auth=auth,
        netrc=netrc,
        cookies=tuple(cookies),
        cookie_header="; ".join(header) if header else None,
        save_cookies=save,
        store_options=_store_flags(args),
    )


def _by_scheme(options: tuple[tuple[str, str, str], ...]) -> dict[str, dict[str, str]] | None:
    found: dict[str, dict[str, str]] = {}
    for scheme, key, value in options:
        found.setdefault(scheme, {})[key] = value
    return found or None


def _store_flags(args: argparse.Namespace) -> tuple[tuple[str, str, str], ...]:
    """The object store flags as store options (they win over the variables)."""
    options: list[tuple[str, str, str]] = []
    if args.endpoint_url is not None:
        endpoint = URL(args.endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.host:
            raise UsageError(
                f"--endpoint-url must be an http or https URL, not {args.endpoint_url!r}"
            )
        options.append(("s3", "endpoint", args.endpoint_url))
    if args.region is not None:
        if not args.region or not all(c.isalnum() or c == "-" for c in args.region):
            raise UsageError(f"--region {args.region!r} is not a region name")
        options.append(("s3", "region", args.region))
    if args.no_sign_request:
        options += [(scheme, "skip_signature", "true") for scheme in ("s3", "gs", "az")]
    return tuple(options)


def load_cookies_into(downloader: Downloader, network: NetworkOptions) -> None:
    """Put the cookies of the command line in the open downloader's jar."""
    if network.cookies:
        import aiohttp  # the downloader is open: aiohttp is imported already

        from .._protocols.http.cookies import add_cookies

        jar = downloader.cookie_jar
        assert isinstance(jar, aiohttp.CookieJar)  # the downloader's own
        add_cookies(jar, list(network.cookies))


def save_cookies_of(
    downloader: Downloader, network: NetworkOptions, warn: Callable[[str], None]
) -> None:
    """Write the jar to --save-cookies, if given; a failure to is a warning, as for wget."""
    if network.save_cookies is not None:
        try:
            downloader.save_cookies(network.save_cookies)
        except StorageError as exc:
            warn(str(exc))


def _login(
    user: str | None, password: str | None, *, digest: bool
) -> BasicAuth | DigestAuth | None:
    if user is None:
        if password is not None:
            raise UsageError("--password is for --user: give both")
        if digest:
            raise UsageError("--digest is for --user: give the login with it")
        return None
    name, colon, given = user.partition(":")
    if colon and password is not None:
        raise UsageError("give the password once: in --user USER:PASS or with --password")
    if not colon:
        given = password if password is not None else _ask(name)
    kind = DigestAuth if digest else BasicAuth
    return kind(name, given)


def _ask(name: str) -> str:
    """The password for `name`, asked on the terminal, as curl asks."""
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError(
            f"--user {name} needs a password: --user {name}:PASS, --password, or --netrc-file"
        )
    try:
        return getpass.getpass(f"password for {name}: ")
    except (EOFError, KeyboardInterrupt):
        raise UsageError("no password given") from None


def refuse_untravelling(
    tls: ssl.SSLContext | bool, network: NetworkOptions, workers: str, instead: str, flag: str
) -> None:
    """Refuse, before anything runs, the options that cannot travel to other processes
    (`workers`, named in the message): a TLS context and a cookie jar do not pickle."""
    if isinstance(tls, ssl.SSLContext):
        raise UsageError(f"--ca-certificate cannot be sent to {workers}: {instead}")
    if network.cookies or network.save_cookies is not None:
        raise UsageError(
            f"a cookie jar does not travel to {workers}: with {flag}, give"
            " cookies as -b 'NAME=VALUE' (sent as a header)"
        )
