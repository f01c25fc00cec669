"""A downloader's network, from its keywords to its open `Network`: `network_config` checks and
reads what it can when the downloader is made (the certificates option, `no_proxy`, the
environment and `.netrc` when trusted, a cookies file), so that a bad value is an early error;
`open_network` makes the session and the `Network` when the downloader opens, importing aiohttp
then, in a worker thread, so that an application's event loop does not stall for it."""

from __future__ import annotations

import asyncio
import importlib
import os
import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .._model.auth import Netrc
from .._model.proxy import EnvironmentProxies, NoProxy
from .http.cookie_file import Cookie
from .network import environment_of

if TYPE_CHECKING:
    # aiohttp waits for the first open downloader (start-up imports only what runs).
    import aiohttp
    from aiohttp.abc import AbstractCookieJar

    from .network import Network

__all__ = ["NetworkConfig", "network_config", "open_network"]

#: What a downloader needs to open (aiohttp among them), the HTTP exchange last.
HTTP_MODULES = (
    "adownload._protocols.http.session",
    "adownload._protocols.http.cookies",
    "adownload._protocols.network",
    "adownload._protocols.http.exchange",
)


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """A downloader's network as its keywords said it, checked and read."""

    verify: ssl.SSLContext | bool
    no_proxy: NoProxy
    environment: EnvironmentProxies | None
    netrc: Netrc | None
    #: A caller's own cookie jar, or the cookies to fill the downloader's new one with.
    jar: AbstractCookieJar | None = None
    cookies: list[Cookie] = field(default_factory=list)


def network_config(
    *,
    verify: ssl.SSLContext | bool,
    no_proxy: str | Iterable[str] | None,
    trust_env: bool,
    netrc: str | os.PathLike[str] | Netrc | Literal[False] | None,
    cookies: str | os.PathLike[str] | AbstractCookieJar | None,
    borrowed: bool,
) -> NetworkConfig:
    """Check the network keywords of a `Downloader` (`borrowed`: it was given a session)."""
    if not isinstance(verify, ssl.SSLContext | bool):
        raise TypeError(f"verify must be a bool or an ssl.SSLContext, not {verify!r}")
    if cookies is not None and borrowed:
        raise ValueError(
            "cookies= is for the downloader's own session; a borrowed session keeps its"
            " own cookie_jar (load it there)"
        )
    environment, default_netrc = environment_of(bool(trust_env), netrc=netrc is None)
    chosen: Netrc | None = default_netrc
    if isinstance(netrc, Netrc):  # read already (a pipe can be read once)
        chosen = netrc
    elif netrc is not None and netrc is not False:
        chosen = Netrc(netrc)
    jar: AbstractCookieJar | None = None
    read: list[Cookie] = []
    if cookies is not None:
        # aiohttp (which the cookie jar needs) is imported here only for a caller's cookies;
        # without them, when the downloader opens.
        from aiohttp.abc import AbstractCookieJar

        from .http.cookie_file import read_cookies

        if isinstance(cookies, AbstractCookieJar):
            jar = cookies
        else:
            # Read now, for an early error; a jar can be made only with the loop running.
            read = read_cookies(cookies)
    return NetworkConfig(verify, NoProxy.parse(no_proxy), environment, chosen, jar, read)


async def open_network(
    config: NetworkConfig, session: aiohttp.ClientSession | None
) -> tuple[Network, aiohttp.ClientSession]:
    """The `Network` of a downloader that opens, on `session` (borrowed) or a new one."""
    if HTTP_MODULES[-1] not in sys.modules:
        await asyncio.to_thread(import_http)
    from .http.cookies import add_cookies, new_jar
    from .http.session import open_session
    from .network import Network

    if session is None:
        jar = config.jar
        if jar is None:
            jar = new_jar()
            add_cookies(jar, config.cookies)
        session = open_session(tls=config.verify, cookie_jar=jar)
    elif session.closed:
        raise RuntimeError("the borrowed aiohttp.ClientSession is closed")
    network = Network(
        session,
        tls=config.verify,
        no_proxy=config.no_proxy,
        environment=config.environment,
        netrc=config.netrc,
    )
    return network, session


def import_http() -> None:
    """Import the HTTP side (aiohttp and our modules on it) on this thread.

    A downloader's first open does it in a worker thread, so that an application's loop never
    stalls on it; an entry point that owns its loop and will open a downloader (the command, a
    worker process) calls this before it starts the loop instead, which spares the thread's
    hand-offs (about 40 ms a process on the benchmark's machine)."""
    for name in HTTP_MODULES:
        importlib.import_module(name)
