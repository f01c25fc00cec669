"""Object stores (`s3://`, `gs://`, `az://`): one GET, a range when asked, turned into an `Answer`
and a `Body`, through obstore.

The third protocol behind the seam of `_protocols/base.py`, on obstore (imported with this
module, which `_engine.exchanges` imports only when the first object store URL is met; it is
the `cloud` extra). obstore signs the requests (AWS SigV4, Google and Azure tokens) and keeps a
connection pool per store; everything else is the engine's, as for HTTP and FTP: the `.part`,
segments as range reads, resume, retries, verification.

- The validator is the object's ETag: a range is asked for with `If-Match`, and a changed
  object (a 412) is fetched whole from byte 0 (`Verdict.WHOLE`), as HTTP's `If-Range` does,
  so a changed object is never spliced onto an old part.
- obstore's own retries are off: the engine retries (a 503 SlowDown is an `HTTPStatusError`
  503, which also cuts an adaptive host limit, as a 503 from a web server does).
- Errors name the bucket and key, never a credential: obstore's messages (which may quote
  a request) are not passed on; the status and the store's error code are.
- The stores themselves (credentials, endpoint, proxy) are made in `stores.py`.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import AsyncIterator, Iterator
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import obstore
from obstore.exceptions import (
    BaseError,
    NotFoundError,
    NotModifiedError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from ..._model.errors import (
    ConnectError,
    HTTPStatusError,
    InvalidRequestError,
    RemoteProtocolError,
)
from ..base import Answer, Plan, Verdict
from .stores import Stores, first_line

if TYPE_CHECKING:
    from yarl import URL

    from ..._model.options import Options
    from ..._model.util import IdleTimeout

#: The smallest piece obstore hands over: large enough to cost little per chunk, small enough
#: for progress and memory (the file sink gathers 1 MiB blocks anyway).
CHUNK = 256 << 10

_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")


class StoreExchange:
    """The GET requests of one download from an object store."""

    __slots__ = ("_options", "_stores")

    def __init__(self, stores: Stores, options: Options) -> None:
        self._stores = stores
        self._options = options

    def errors(
        self, url: str, *, read: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return translate_store_errors(url)

    async def open(self, plan: Plan, idle: IdleTimeout, *, url: str) -> tuple[Answer, StoreBody]:
        key = object_key(plan.url, url)
        store = self._stores.get(plan.url, url, self._options.proxy)
        with translate_store_errors(url):
            options: Any = {}
            if plan.ranged:
                end = None if plan.stop is None else plan.stop + 1
                options["range"] = {"offset": plan.offset} if end is None else (plan.offset, end)
                if plan.if_range and plan.if_range.endswith('"'):  # an ETag
                    options["if_match"] = plan.if_range
                elif plan.if_range:  # a Last-Modified date
                    options["if_unmodified_since"] = _date(plan.if_range)
            elif plan.if_modified_since:
                options["if_modified_since"] = _date(plan.if_modified_since)
            ranged = plan.ranged
            try:
                result = await obstore.get_async(store, key, options=options)
            except PreconditionError:
                # The object changed since the part was written: the whole of the new one.
                ranged = False
                result = await obstore.get_async(store, key)
            except BaseError as exc:
                if plan.ranged and _status(exc) == 416:
                    return await self._past_the_end(store, key, plan), StoreBody.empty()
                raise
            idle.touch()
        if not result.meta.get("e_tag"):
            # S3, GCS and Azure send every object's ETag: a web server's page is not an object.
            raise RemoteProtocolError(
                f"{url}: the answer is not an object store's: it has no ETag", url=url
            )
        return _answer(result, plan, ranged=ranged), StoreBody(result, url)

    async def _past_the_end(self, store: Any, key: str, plan: Plan) -> Answer:
        """Nothing at or past the offset asked: the object's facts (a HEAD), for the engine."""
        meta = await obstore.head_async(store, key)
        return Answer(
            Verdict.END,
            plan.url,
            length=int(meta["size"]),
            etag=meta.get("e_tag"),
            last_modified=http_date(meta.get("last_modified")),
            ranges=True,
        )


def object_key(url: URL, shown: str) -> str:
    """The object's key in its bucket: the URL's path without its first slash, unquoted."""
    key = unquote(url.raw_path[1:])
    if not key or key.endswith("/"):
        raise InvalidRequestError(f"{shown} names a prefix, not an object", url=shown)
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidRequestError(f"{shown}: a control character in the key", url=shown)
    return key


def _answer(result: Any, plan: Plan, *, ranged: bool) -> Answer:
    """The answer to `plan`: the range asked (`ranged`), else the whole object."""
    meta = result.meta
    first, end = result.range
    return Answer(
        Verdict.PARTIAL if ranged else Verdict.WHOLE,
        plan.url,
        offset=first if ranged else 0,
        length=int(meta["size"]),
        announced=end - first,
        etag=meta.get("e_tag"),
        last_modified=http_date(meta.get("last_modified")),
        status=206 if ranged else 200,
        ranges=True,
    )


class StoreBody:
    """An object's bytes, as obstore streams them."""

    __slots__ = ("_done", "_iterator", "_url")

    def __init__(self, result: Any, url: str) -> None:
        self._iterator: AsyncIterator[Any] | None = (
            None if result is None else result.stream(min_chunk_size=CHUNK).__aiter__()
        )
        self._url = url
        self._done = result is None

    @classmethod
    def empty(cls) -> StoreBody:
        return cls(None, "")

    async def read(self) -> bytes:
        if self._iterator is None:
            return b""
        try:
            chunk = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._done = True
            self._iterator = None
            return b""
        except BaseError as exc:
            raise RemoteProtocolError(
                f"the object's body broke off: {self._url}"
                f" ({_network_reason(exc) or type(exc).__name__})",
                url=self._url,
            ) from None
        return chunk if isinstance(chunk, bytes) else bytes(chunk)

    def at_eof(self) -> bool:
        return self._done

    def broken(self) -> BaseException | None:
        return None

    def kernel_copy(self) -> tuple[int, bytes] | None:
        return None  # obstore holds the socket

    async def after_copy(self, whole: bool) -> None:  # pragma: no cover - never copied
        return None

    async def close(self, *, reuse: bool) -> None:
        self._iterator = None


@contextlib.contextmanager
def translate_store_errors(url: str) -> Iterator[None]:
    """obstore's exceptions as adownload's, naming `url` (bucket and key), never a secret."""
    try:
        yield
    except NotModifiedError:
        raise HTTPStatusError(
            f"{url} is not modified", url=url, status=304, reason="Not Modified"
        ) from None
    except (NotFoundError, FileNotFoundError) as exc:  # obstore raises the built-in one
        code = _code(exc) or "NoSuchKey"
        what = "no such bucket" if code == "NoSuchBucket" else "no such object"
        raise HTTPStatusError(
            f"{what}: {url} (404 {code})", url=url, status=404, reason=code
        ) from None
    except (PermissionDeniedError, UnauthenticatedError, PermissionError) as exc:
        status = _status(exc) or 403
        code = _code(exc) or "AccessDenied"
        raise HTTPStatusError(
            f"access denied to the bucket {_bucket(url)!r} for {url} ({status} {code}): the"
            " credentials are missing, wrong or expired, or lack the right",
            url=url,
            status=status,
            reason=code,
        ) from None
    except BaseError as exc:
        answered = _status(exc)
        code = _code(exc) or ""
        if code in _REFUSED_CREDENTIALS:
            raise HTTPStatusError(
                f"the credentials for the bucket {_bucket(url)!r} were refused for {url}"
                f" ({answered} {code}): they are wrong or expired",
                url=url,
                status=answered or 403,
                reason=code,
            ) from None
        if answered is not None:
            raise HTTPStatusError(
                f"{url}: the store answered {answered} {code}".rstrip(),
                url=url,
                status=answered,
                reason=code,
            ) from None
        reason = _network_reason(exc)
        if reason is not None:
            raise ConnectError(f"cannot reach the store of {url}: {reason}", url=url) from None
        # An answer obstore cannot use (no Last-Modified, no ETag, a body that is no listing):
        # not an object store, or not one obstore understands.
        raise RemoteProtocolError(
            f"{url}: the answer is not an object store's: {first_line(exc)}", url=url
        ) from None


#: The store's codes for credentials it does not take (final: asking again changes nothing).
_REFUSED_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "InvalidToken",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "AuthenticationFailed",
    }
)


def _bucket(url: str) -> str:
    return url.split("/")[2] if url.count("/") >= 2 else url


def _status(exc: BaseException) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match[1]) if match else None


def _code(exc: BaseException) -> str | None:
    match = _CODE.search(str(exc))
    return match[1] if match else None


#: What obstore says of a connection that failed, as the short reason our messages give (its
#: own message quotes the request, which may carry a signature).
_NETWORK = ("error sending request", "connection refused", "timed out", "connection reset", "dns")


def _network_reason(exc: BaseException) -> str | None:
    """Why the connection failed, in a few words; None when it was not the connection."""
    text = str(exc).lower()
    return next((marker for marker in _NETWORK if marker in text), None)


def _date(text: str) -> datetime.datetime:
    return parsedate_to_datetime(text)


def http_date(value: object) -> str | None:
    if isinstance(value, datetime.datetime):
        return format_datetime(value.astimezone(datetime.UTC), usegmt=True)
    return None
