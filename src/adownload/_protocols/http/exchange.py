"""HTTP and HTTPS: one GET, its redirects, and the response turned into an `Answer` and a `Body`.

The only module of the engine that sees an aiohttp response. `HttpExchange.open` sends one
request (following redirects itself, so each hop is checked), reads the status and headers
once, in `answer.answer_of`, into the protocol-neutral `Answer`, and hands the body on as an
`HttpBody`. Errors of the server (404, 503 with Retry-After, a 206 that is not a range) are
raised here as `DownloadError`s; what to do with the bytes on hand is the engine's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from ..._model.errors import ProxyError, RedirectError
from ..._model.util import IdleTimeout, redact, same_origin
from .. import splice as _splice
from .answer import _check_framing, answer_of
from .auth import Credentials, without_credentials
from .errors import translate_client_errors
from .headers import merge_headers as merge_headers

if TYPE_CHECKING:
    from ..._model.options import Options
    from ..base import Answer, Plan
    from ..network import Network

log = logging.getLogger("adownload")


#: What a direct request's errors pass through (those of a proxied one name the proxy).
_DIRECT = contextlib.nullcontext()
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts for a request: made once per pair of values, not once per request."""
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


class HttpExchange:
    """GET requests of one download."""

    __slots__ = ("_credentials", "_headers", "_network", "_options", "_read_bufsize")

    def __init__(
        self,
        network: Network,
        headers: CIMultiDict[str],
        options: Options,
        *,
        read_bufsize: int,
    ) -> None:
        self._network = network
        self._headers = headers  # the downloader's and the request's, merged
        self._options = options
        self._read_bufsize = read_bufsize
        self._credentials = Credentials(options.auth, network.netrc)

    def errors(self, url: str, *, read: float | None = None) -> AbstractContextManager[None]:
        return translate_client_errors(url, read=read)

    async def open(self, plan: Plan, idle: IdleTimeout, *, url: str) -> tuple[Answer, HttpBody]:
        response = await self._send(plan, idle, url)
        log.debug("%s %s <- %s", response.status, response.reason, redact(response.url))
        try:
            _check_framing(response, url)
            # Before the first await: the connection may be gone by the next one.
            closing = _close_watch(response)
            answer = answer_of(response, plan, url, self._options)
        except BaseException:
            response.close()
            raise
        return answer, HttpBody(response, closing, self._spliceable(response), url)

    async def _send(self, plan: Plan, idle: IdleTimeout, url: str) -> aiohttp.ClientResponse:
        """GET `plan.url`, following redirects ourselves so that each hop can be checked."""
        options = self._options
        headers = self._headers
        if plan.ranged:
            headers = headers.copy()
            end = "" if plan.stop is None else str(plan.stop)
            headers["Range"] = f"bytes={plan.offset}-{end}"
            if plan.if_range:
                headers["If-Range"] = plan.if_range
        elif plan.if_modified_since:
            headers = headers.copy()
            headers["If-Modified-Since"] = plan.if_modified_since
        if plan.foreign:
            headers = without_credentials(headers)
        # sock_read bounds the wait for the response's headers (from the moment the request is
        # sent) by Timeout.read, as documented; it is switched off once they are here, and the
        # engine's IdleTimeout watches the body for less CPU per chunk.
        timeout = _client_timeout(options.timeout.connect, options.timeout.read)
        current = plan.url
        seen = {current}
        # The credentials given for the URL go to its origin only: not to a mirror elsewhere,
        # nor past a redirect that leaves it (not even when a later one comes back).
        trusted = not plan.foreign
        for hop in range(options.max_redirects + 1):
            route = self._network.route(current, options.proxy)
            proxy = route.proxy
            for _ in range(2):  # a second time only to answer a digest challenge
                hop_headers, extra = self._credentials.apply(
                    current, headers, proxy, trusted=trusted
                )
                with (
                    _DIRECT
                    if proxy is None
                    else translate_client_errors(url, read=options.timeout.read, proxy=proxy.shown)
                ):
                    response = await route.session.get(
                        current,
                        headers=hop_headers,
                        timeout=timeout,
                        allow_redirects=False,
                        auto_decompress=options.decode_content,
                        raise_for_status=False,
                        read_bufsize=self._read_bufsize,
                        **extra,  # type: ignore[arg-type]
                    )
                _end_header_timeout(response)
                idle.touch()
                challenge = response.headers.get("WWW-Authenticate")
                if response.status != 401 or not self._credentials.digest_asked(
                    current, headers, challenge, trusted=trusted
                ):
                    break
                response.close()
            if proxy is not None and proxy.kind == "http" and response.status == 407:
                # A plain-http request's answer from the proxy itself (an https one's comes
                # to the CONNECT, and aiohttp raises it).
                response.close()
                raise ProxyError(
                    f"the proxy {proxy.shown} wants credentials (407) for {redact(url)}",
                    url=url,
                    proxy=proxy.shown,
                    status=407,
                    authentication=True,
                )
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or location is None:
                return response
            response.close()
            try:
                target = current.join(URL(location))
            except (ValueError, TypeError):
                raise RedirectError(
                    f"malformed redirect {location!r} from {redact(current)}", url=url
                ) from None
            self._check_redirect(current, target, hop, seen, url)
            if not same_origin(target, current):
                headers = without_credentials(headers)
                trusted = False
            seen.add(target)
            log.debug("redirect %s -> %s", redact(current), redact(target))
            current = target
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_redirect(
        self, current: URL, target: URL, hop: int, seen: set[URL], url: str
    ) -> None:
        options = self._options
        if target.scheme not in ("http", "https") or not target.host:
            raise RedirectError(
                f"refused redirect from {redact(current)} to a {target.scheme or 'relative'}: URL",
                url=url,
            )
        if current.scheme == "https" and target.scheme == "http" and not options.allow_downgrade:
            raise RedirectError(
                f"refused redirect from https to plain http: {redact(target)}", url=url
            )
        if target in seen:
            raise RedirectError(f"redirect loop at {redact(target)}", url=url)
        if hop >= options.max_redirects:
            raise RedirectError(
                f"more than {options.max_redirects} redirects from {redact(url)}", url=url
            )

    def _spliceable(self, response: aiohttp.ClientResponse) -> bool:
        """Whether the kernel copy could take this body: large, plain, with a known length."""
        options = self._options
        headers = response.headers
        announced = response.content_length
        return (
            options.splice
            and _splice.available
            and announced is not None
            and announced >= _splice.SPLICE_MIN
            and "Transfer-Encoding" not in headers
            and not (options.decode_content and "Content-Encoding" in headers)
        )


class HttpBody:
    """A response's body, chunk by chunk as aiohttp buffers it."""

    __slots__ = ("_closing", "_read", "_response", "_spliceable", "_url")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        closing: asyncio.Future[None] | None,
        spliceable: bool,
        url: str,
    ) -> None:
        self._response = response
        self._url = url
        # readchunk() hands over aiohttp's buffers one by one; iter_any() would join them first.
        self._read = response.content.readchunk
        self._closing = closing
        self._spliceable = spliceable

    async def read(self) -> bytes:
        read = self._read
        try:
            while True:
                chunk, end_of_http_chunk = await read()
                if chunk or not end_of_http_chunk:  # a boundary of chunked encoding: not the end
                    return chunk
        except aiohttp.ClientError:
            with translate_client_errors(self._url):
                raise
            raise  # pragma: no cover - translate_client_errors raises

    def kernel_copy(self) -> tuple[int, bytes] | None:
        if not self._spliceable:
            return None
        with translate_client_errors(self._url):  # aiohttp's buffer may hold its error already
            return _splice.take_socket(self._response)

    def at_eof(self) -> bool:
        return self._response.content.at_eof()

    def broken(self) -> BaseException | None:
        closing = self._closing
        if closing is not None and closing.done() and not closing.cancelled():
            return closing.exception()
        return None

    async def after_copy(self, whole: bool) -> None:
        """Nothing follows a body in HTTP; aiohttp did not see this one end, so the response
        is not at its end and the connection is closed, not reused."""

    async def close(self, *, reuse: bool) -> None:
        if reuse:
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()


def _end_header_timeout(response: aiohttp.ClientResponse) -> None:
    """The headers are here: stop aiohttp's per-chunk read timer (the IdleTimeout watches the
    body from now on, for one clock read per chunk instead of a timer)."""
    connection = response.connection
    protocol = None if connection is None else connection.protocol
    if protocol is not None:
        protocol.read_timeout = None
        protocol.start_timeout()  # with no read timeout, this cancels the pending timer


def _close_watch(response: aiohttp.ClientResponse) -> asyncio.Future[None] | None:
    """For a body delimited by the connection's close: the connection's `closed` future, which
    aiohttp completes with an error when the peer reset the connection (the body's end alone
    does not tell a reset from a clean close; RFC 9112, section 8). None for every other body."""
    if response.content_length is not None or "Transfer-Encoding" in response.headers:
        return None
    connection = response.connection
    protocol = None if connection is None else connection.protocol
    closed = None if protocol is None else protocol.closed
    if closed is not None:
        # Retrieved here, so that an unread error is never logged by asyncio.
        closed.add_done_callback(lambda future: future.cancelled() or future.exception())
    return closed
