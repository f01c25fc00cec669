"""The `Downloader`: one HTTP session, its limits, and the ways to run many downloads."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import ssl
import textwrap
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from .._cache import fetch as _fetch
from .._cache.fetch import Listed  # noqa: TC001 (public annotations resolve at runtime)
from .._disk.sinks import FileSink, Sink, SinkOpener
from .._engine.limits import KeyedPrimitives, Limiter
from .._engine.settings import Settings
from .._model.auth import Auth, Netrc, check_auth
from .._model.catalogue import describe
from .._model.config import Existing, Limits, Retry, Segments, Timeout
from .._model.events import EventHook, emitter
from .._model.options import DEFAULTS, Options, check_proxy
from .._model.request import Item, Outcome, request_for
from .._model.stores import store_config
from .._model.util import cancel_and_wait
from .._protocols.http.headers import merge_headers
from .._protocols.opening import network_config, open_network
from .._version import USER_AGENT
from .batch import completed, perform, run_all

__all__ = ["Downloader"]

log = logging.getLogger("adownload")

#: Bytes aiohttp buffers per response before it stops reading the socket. Measured on one
#: 256 MiB body from nginx on loopback (py-spy, event-loop thread): at 256 KiB the transport
#: pauses and resumes reading (two epoll_ctl calls) every couple of recv()s, 6 % of the loop's
#: samples, and readchunk() hands over small pieces (8 %); at 1 MiB, as large as a FileSink
#: block, that is 1.7 % and 2 %, and the loop thread needs 13 % fewer samples for the same
#: bytes. 4 MiB gains nothing more and holds more memory per connection; 64 KiB costs 20 %
#: more CPU.
_READ_BUFSIZE = 1 << 20

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.abc import AbstractCookieJar

    from .._cache.store import Cache
    from .._engine.adaptive import HostLimit


class _State(enum.Enum):
    UNOPENED = enum.auto()
    OPEN = enum.auto()
    CLOSED = enum.auto()


class Downloader:
    """Downloads files over one `aiohttp.ClientSession`, many at a time.

    Use it as an async context manager; it opens its own session and closes it on exit, or
    borrows `session` (and never closes it), to embed in an application that has one.

    ```pycon
    >>> async with Downloader(dest="mirror/") as dl:
    ...     outcome = await dl.download("https://example.org/a.zip")
    ...     outcomes = await dl.download_many(urls)
    ```

    Every keyword is keyword-only, with a default that is safe for a stranger's server; what
    each does is declared once, in `adownload._model.catalogue`, from which the list below (in
    `help(Downloader)`) and the documentation's options table are made.
    """

    __doc__ = f"{__doc__}\n    Options:\n\n{textwrap.indent(describe(), '    ')}\n"

    def __init__(
        self,
        *,
        dest: str | os.PathLike[str] = ".",
        limits: Limits = Limits(),  # noqa: B008  (frozen, so sharing the default is safe)
        timeout: Timeout = DEFAULTS.timeout,
        existing: Existing = DEFAULTS.existing,
        headers: Mapping[str, str] | None = None,
        content_disposition: bool = DEFAULTS.content_disposition,
        writer: SinkOpener = FileSink.open,
        max_redirects: int = DEFAULTS.max_redirects,
        session: aiohttp.ClientSession | None = None,
        on_event: EventHook | None = None,
        retry: Retry = DEFAULTS.retry,
        resume: bool = DEFAULTS.resume,
        max_size: int | None = DEFAULTS.max_size,
        verify_digests: bool = DEFAULTS.verify_digests,
        allow_downgrade: bool = DEFAULTS.allow_downgrade,
        decode_content: bool = DEFAULTS.decode_content,
        segments: Segments = DEFAULTS.segments,
        splice: bool = DEFAULTS.splice,
        proxy: str | None = None,
        no_proxy: str | Iterable[str] | None = None,
        trust_env: bool = False,
        auth: Auth | None = None,
        netrc: str | os.PathLike[str] | Netrc | Literal[False] | None = None,
        cookies: str | os.PathLike[str] | AbstractCookieJar | None = None,
        verify: ssl.SSLContext | bool = True,
        store_options: Mapping[str, object] | None = None,
    ) -> None:
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be an adownload.Limits, not {limits!r}")
        if session is not None:
            import aiohttp  # the caller's session: aiohttp is imported already

            if not isinstance(session, aiohttp.ClientSession):
                raise TypeError(f"session must be an aiohttp.ClientSession, not {session!r}")
        # Each option is checked, and has its default, in Options.
        self._options = Options(
            timeout=timeout,
            existing=existing,
            content_disposition=content_disposition,
            max_redirects=max_redirects,
            retry=retry,
            resume=resume,
            max_size=max_size,
            verify_digests=verify_digests,
            allow_downgrade=allow_downgrade,
            decode_content=decode_content,
            segments=segments,
            splice=splice,
            proxy=check_proxy(proxy),
            auth=check_auth(auth),
        )
        self._network = network_config(
            verify=verify,
            no_proxy=no_proxy,
            trust_env=trust_env,
            netrc=netrc,
            cookies=cookies,
            borrowed=session is not None,
        )
        self._stores = store_config(
            store_options, trust_env=bool(trust_env), verify=verify is not False
        )
        self._dest = Path(dest)
        self._limits = limits
        # identity: the bytes on disk are the bytes of the resource; a .tar.gz stays gzipped.
        defaults = {"User-Agent": USER_AGENT}
        # Decoded: only the codings that can be decoded here are asked for.
        defaults["Accept-Encoding"] = _accept_encoding() if decode_content else "identity"
        self._headers = merge_headers(defaults, headers)
        self._writer = writer
        self._session = session
        self._owns_session = session is None
        self._settings: Settings | None = None
        self._state = _State.UNOPENED
        self._runners: set[asyncio.Task[None]] = set()
        self._emit = emitter(on_event)

    @property
    def limits(self) -> Limits:
        return self._limits

    def host_limits(self) -> dict[str, HostLimit]:
        """With `Limits(adaptive=True)`: what this downloader learnt of each host it used, by
        origin (`http://host:port`): the limit now, the highest and lowest it reached, its cuts,
        throttling answers and pauses. Empty without adaptive limits or before it opens."""
        if self._settings is None:
            return {}
        return self._settings.limiter.host_limits()

    @property
    def cookie_jar(self) -> AbstractCookieJar:
        """The cookies this downloader sends and keeps (its session's jar); open it first."""
        return self._open_settings().network.session.cookie_jar

    def save_cookies(self, path: str | os.PathLike[str]) -> int:
        """Write the cookie jar to `path` as a Netscape `cookies.txt` file (mode 0600, replaced
        at once); the number of cookies written. `StorageError` if it cannot be written."""
        import aiohttp

        from .._protocols.http.cookies import save_cookies

        jar = self.cookie_jar
        if not isinstance(jar, aiohttp.CookieJar):
            raise TypeError(f"cannot save the cookies of a {type(jar).__name__}")
        return save_cookies(jar, path)

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is _State.OPEN:
            raise RuntimeError("this Downloader is already open")
        if self._state is _State.CLOSED:
            raise RuntimeError("a closed Downloader cannot be reopened; make a new one")
        network, self._session = await open_network(self._network, self._session)
        self._settings = Settings(
            network=network,
            dest=self._dest,
            options=self._options,
            headers=self._headers,
            writer=self._writer,
            read_bufsize=_READ_BUFSIZE,
            limiter=Limiter(self._limits, max_pause=self._options.retry.max_delay, emit=self._emit),
            path_locks=KeyedPrimitives(asyncio.Lock),
            emit=self._emit,
            stores=self._stores,
        )
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop what is still running and close the session if this downloader opened it."""
        if self._state is not _State.OPEN:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSED
        try:
            for runner in list(self._runners):
                await cancel_and_wait(runner)
        finally:
            if self._settings is not None:
                for pool in self._settings.pools.values():
                    await pool.close()
                await self._settings.network.close()
            if self._owns_session and self._session is not None:
                await self._session.close()

    def _open_settings(self) -> Settings:
        """What the open downloader runs with; see `settings_of`."""
        if self._state is _State.OPEN and self._settings is not None:
            return self._settings
        if self._state is _State.UNOPENED:
            raise RuntimeError(
                "this Downloader is not open: use it as 'async with Downloader() as dl:'"
            )
        raise RuntimeError("this Downloader is closed")

    # --- one file ---------------------------------------------------------------------------

    async def download(
        self,
        item: Item,
        *,
        dest: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        existing: Existing | None = None,
        timeout: Timeout | None = None,
        sink: Sink | None = None,
        checksum: str | None = None,
        max_size: int | None = None,
    ) -> Outcome:
        """Download one file and return its `Outcome`; raise a `DownloadError` if it fails.

        `dest` is a directory if it exists as one or ends with a path separator (the file is
        named after the URL); otherwise it is the exact path of the file. The other keywords
        override the downloader's settings for this file (see `Request`).
        """
        settings = self._open_settings()
        request = request_for(
            item,
            dest=dest,
            headers=headers,
            existing=existing,
            timeout=timeout,
            sink=sink,
            checksum=checksum,
            max_size=max_size,
        )
        outcome = await perform(settings, request, None)
        if outcome.error is not None:
            raise outcome.error
        return outcome

    # --- the cache ----------------------------------------------------------------------------

    async def fetch(
        self,
        url: str,
        *,
        checksum: str | None = None,
        cache: Cache | str | os.PathLike[str] | None = None,
    ) -> Path:
        """The path of a verified local copy of `url` in the download cache, downloading it
        only when the cache lacks it or it changed upstream.

        With `checksum` ("sha256:<hex>", ...), a cached file with that digest is returned
        without a request; without one, the cached file is revalidated with a conditional
        request. `cache` is a `Cache` or its directory (default: `$ADOWNLOAD_CACHE`, else the
        user cache directory). Several processes fetching one URL at once download it once.
        With the server unreachable, a cached copy is returned with a `StaleCacheWarning`.
        """
        self._open_settings()
        return await _fetch.fetch(self, url, checksum=checksum, cache=cache)

    async def fetch_many(
        self,
        items: Iterable[str | tuple[str, str | None]] | Listed,
        *,
        cache: Cache | str | os.PathLike[str] | None = None,
    ) -> list[Path]:
        """`fetch` every item (a URL, a (URL, checksum) pair, or every file of a `Registry`)
        at once, within this downloader's limits; the paths, in order."""
        self._open_settings()
        return await _fetch.fetch_many(self, items, cache=cache)

    # --- many files -------------------------------------------------------------------------

    async def download_many(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        *,
        dest: str | os.PathLike[str] | None = None,
    ) -> list[Outcome]:
        """Download every item, `limits.max_transfers` at a time, into the `dest` directory.

        Returns one `Outcome` per item, in the order of `items`. A failed item is an outcome with
        its `error`; it never stops the others. Cancelling the call cancels every transfer it
        started, keeps each resumable `.part` (removing the others), and re-raises
        `CancelledError`.
        """
        settings = self._open_settings()
        results: dict[int, Outcome] = {}

        async def store(index: int, outcome: Outcome) -> None:
            results[index] = outcome

        await self._run(settings, items, _directory(dest), store)
        return [results[i] for i in range(len(results))]

    async def as_completed(
        self,
        items: Iterable[Item] | AsyncIterable[Item],
        *,
        dest: str | os.PathLike[str] | None = None,
    ) -> AsyncGenerator[Outcome, None]:
        """Download every item like `download_many`, yielding each `Outcome` as it finishes.

        `items` is consumed lazily, as transfer slots free up: a generator of millions of URLs
        is never held in memory, and neither are the outcomes the caller has already taken.
        Leaving the loop early stops the remaining transfers; to stop them at once rather than
        when the generator is collected, wrap it in `contextlib.aclosing`.
        """
        settings = self._open_settings()
        directory = _directory(dest)

        def run(emit: Callable[[int, Outcome], Awaitable[None]]) -> Awaitable[None]:
            return self._run(settings, items, directory, emit)

        async with contextlib.aclosing(
            completed(run, window=self._limits.max_transfers, tasks=self._runners)
        ) as outcomes:
            async for outcome in outcomes:
                yield outcome

    async def _run(
        self,
        settings: Settings,
        items: Iterable[Item] | AsyncIterable[Item],
        dest: Path | None,
        emit: Callable[[int, Outcome], Awaitable[None]],
    ) -> None:
        await run_all(settings, items, dest, emit, workers=self._limits.max_transfers)


def _directory(dest: str | os.PathLike[str] | None) -> Path | None:
    return None if dest is None else Path(dest)


def _accept_encoding() -> str:
    """What `decode_content=True` asks for: the codings aiohttp can decode here."""
    from .._protocols.http.answer import ACCEPT_ENCODING

    return ACCEPT_ENCODING


def settings_of(dl: Downloader) -> Settings:
    """The settings an open downloader runs its downloads with, for the clients built on it
    (the mirror lists an FTP directory or a store's prefix with them; a worker process reads
    its limiter): one seam, instead of each reaching into the downloader. `RuntimeError` when
    it is not open."""
    return dl._open_settings()
