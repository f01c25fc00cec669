"""aiohttp's and aiohttp-socks' exceptions as adownload's: the one place that knows their tree.

Every exception keeps its context as `__cause__`. The tree itself is `adownload._model.errors`;
this module only maps into it.
"""

from __future__ import annotations

import os as _os
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError

from ..._model.errors import (
    ConnectError,
    ConnectTimeout,
    ContentDecodingError,
    InvalidRequestError,
    ProxyError,
    ReadTimeout,
    RedirectError,
    RemoteProtocolError,
    TransportError,
)
from ..._model.util import redact

__all__ = ["translate_client_errors"]


@contextmanager
def translate_client_errors(
    url: str, *, read: float | None = None, proxy: str | None = None
) -> Iterator[None]:
    """Re-raise aiohttp's exceptions as adownload's, the most specific match first.

    The one place in the package that knows aiohttp's exception tree. `url` goes on the error
    without userinfo, as do the messages; `read` is the read timeout, for its message. With
    `proxy` (the proxy a request goes through, as shown), the proxy's failures are
    `ProxyError`s, aiohttp-socks' among them, and a connect timeout names it.
    """
    shown = redact(url)
    try:
        if proxy is None:
            yield
        else:
            with _proxy_errors(shown, url, proxy):
                yield
    except aiohttp.ConnectionTimeoutError as exc:
        through = "" if proxy is None else f" through the proxy {proxy}"
        raise ConnectTimeout(
            f"timed out connecting for {shown}{through}", url=url, phase="connect"
        ) from exc
    except aiohttp.ServerTimeoutError as exc:
        # aiohttp's sock_read, which bounds the wait for the response headers by Timeout.read.
        raise ReadTimeout(
            f"no response within {read}s from {shown}" if read else f"no response from {shown}",
            url=url,
            phase="read",
            seconds=read,
        ) from exc
    except aiohttp.TooManyRedirects as exc:
        raise RedirectError(f"too many redirects for {shown}", url=url) from exc
    except (aiohttp.InvalidUrlRedirectClientError, aiohttp.NonHttpUrlRedirectClientError) as exc:
        raise RedirectError(f"refused redirect from {shown}: {exc}", url=url) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        raise InvalidRequestError(f"invalid URL {shown!r}: {exc}", url=url) from exc
    except aiohttp.ClientConnectorError as exc:
        raise ConnectError(f"cannot connect for {shown}: {exc.os_error}", url=url) from exc
    except aiohttp.ClientPayloadError as exc:
        if isinstance(exc.__cause__, ContentEncodingError):
            raise ContentDecodingError(
                f"cannot decode the body from {shown}: {exc.__cause__.message}", url=url
            ) from exc
        raise RemoteProtocolError(f"broken response body from {shown}: {exc}", url=url) from exc
    except aiohttp.ClientResponseError as exc:
        raise RemoteProtocolError(f"malformed response from {shown}: {exc}", url=url) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise RemoteProtocolError(f"server disconnected: {shown}", url=url) from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"transfer failed for {shown}: {exc!r}", url=url) from exc


#: Words of a SOCKS proxy's refusal that mean the credentials (python-socks' messages).
_SOCKS_AUTHENTICATION = ("authentication", "no acceptable auth", "user id")


@contextmanager
def _proxy_errors(shown: str, url: str, proxy: str) -> Iterator[None]:
    """The proxy's own failures, as `ProxyError`s: aiohttp's for HTTP proxies, and for SOCKS
    those of aiohttp-socks (its errors derive from no aiohttp class), or the stream error of a
    proxy that closed during the handshake."""
    try:
        yield
    except aiohttp.ClientHttpProxyError as exc:
        status = exc.status
        # The answer to a CONNECT is the proxy's own: a 401 there (tinyproxy's answer to
        # wrong credentials) means the credentials too.
        wants = status in (401, 407)
        why = (
            f"answered {status}: credentials missing or refused"
            if wants
            else f"answered {status} {exc.message}"
        )
        raise ProxyError(
            f"the proxy {proxy} {why} for {shown}",
            url=url,
            proxy=proxy,
            status=status,
            authentication=wants,
        ) from exc
    except aiohttp.ClientProxyConnectionError as exc:
        raise ProxyError(
            f"cannot connect to the proxy {proxy} for {shown}: {exc.os_error}", url=url, proxy=proxy
        ) from exc
    except aiohttp.ClientConnectorError:
        raise  # the origin's, through the proxy: a TLS failure of the server's, say
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        # Before any answer: the proxy hung up on the request (an origin's failure would
        # come back from the proxy as a status, 502 or 504).
        raise ProxyError(
            f"the proxy {proxy} closed the connection before answering for {shown}",
            url=url,
            proxy=proxy,
        ) from exc
    except aiohttp.ClientError:
        raise
    except Exception as exc:
        kind = type(exc)
        if kind.__module__.startswith(("aiohttp_socks", "python_socks")):
            cause = exc.__cause__
            text = str(exc)
            if kind.__name__ == "ProxyConnectionError":
                errno = cause.errno if isinstance(cause, OSError) else None
                reason = _os.strerror(errno) if errno else text
                message = f"cannot connect to the proxy {proxy} for {shown}: {reason}"
            else:
                message = f"the proxy {proxy} failed for {shown}: {text}"
            raise ProxyError(
                message,
                url=url,
                proxy=proxy,
                authentication=any(word in text.lower() for word in _SOCKS_AUTHENTICATION),
            ) from exc
        if isinstance(exc, EOFError | ConnectionError):
            raise ProxyError(
                f"the proxy {proxy} closed the connection during its handshake for {shown}",
                url=url,
                proxy=proxy,
            ) from exc
        raise
