"""What a caller asks for (`Request`) and what it gets back (`Outcome`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from yarl import URL

from .auth import Auth, check_auth
from .catalogue import KEYWORDS
from .config import Existing, Segments, Timeout
from .errors import DownloadError, InvalidRequestError
from .options import USE_DEFAULT, UseDefault, check_kind, check_max_size, check_proxy
from .pieces import Pieces
from .sink import Sink
from .stores import STORE_SCHEMES, check_bucket
from .util import redact
from .verify import parse_checksum

if TYPE_CHECKING:
    pass

__all__ = ["Item", "Outcome", "Request"]

_SCHEMES = frozenset({"http", "https", "ftp", *STORE_SCHEMES})


def parse_url(url: str | URL) -> URL:
    """Parse and check a URL given by a caller: absolute, http, https or ftp with a host, or
    an object store's (s3, gs, az) with a bucket.

    Every error names the URL without its userinfo (`DownloadError` cuts it).
    """
    if isinstance(url, URL):
        parsed = url
        text = str(url)
    elif isinstance(url, str):
        text = url
        stripped = url.strip()
        if not stripped:
            raise InvalidRequestError("empty URL", url=url)
        # isprintable() is one C call that is True for almost every URL; only a URL it is False
        # for (a control character, or some other non-printable one) is looked at closely.
        if not stripped.isprintable() and any(ch in stripped for ch in "\x00\r\n\t"):
            raise InvalidRequestError(f"URL contains control characters: {url!r}", url=url)
        try:
            parsed = URL(stripped)
        except (ValueError, TypeError) as exc:
            # yarl's message may quote the URL, userinfo and all: name the URL ourselves.
            reason = redact(str(exc))
            raise InvalidRequestError(f"malformed URL {url!r}: {reason}", url=url) from None
    else:
        raise InvalidRequestError(
            f"a download item must be a URL (str or yarl.URL) or a Request, not {url!r}",
            url=None,
        )
    if not parsed.scheme:
        raise InvalidRequestError(f"URL is not absolute: {text!r}", url=text)
    if parsed.scheme.lower() not in _SCHEMES:
        raise InvalidRequestError(
            f"unsupported URL scheme {parsed.scheme!r} in {text!r}: only http, https, ftp,"
            " s3, gs and az",
            url=text,
        )
    if not parsed.host:
        raise InvalidRequestError(f"URL has no host: {text!r}", url=text)
    if parsed.scheme in STORE_SCHEMES:
        check_bucket(parsed, text)
    return parsed.with_fragment(None) if parsed.raw_fragment else parsed


def _shared_keywords() -> str:
    names = [f"`{declared.name}`" for declared in KEYWORDS if declared.per_request]
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True, slots=True)
class Request:
    """One file to download, with options that override the downloader's for this file only.

    - `url`: http, https or ftp, as a string or `yarl.URL`. Checked when the Request is made.
    - `path`: the exact file to write. Without it the file goes into the `dest` directory of the
      call (or of the downloader), named after the URL's last path segment.
    - `sink`: send the bytes to this sink (e.g. a `MemorySink`) instead of a file.
    - `check_only`: check that the file exists and download nothing (as wget's `--spider`):
      the request is sent and its answer's status read; the outcome has the `status`, the
      `final_url` and, as its `size`, the length the server announced (0 when it gave none);
      no file is written or looked at. A 404 fails it, as it would the download.
    - `checksum`: the expected digest, `"sha256:<hex>"` (any algorithm hashlib has); computed
      while the bytes stream, and a mismatch fails the download and keeps nothing.
    - `mirrors`: further URLs of the same file, tried in turn when one fails; a download moves
      on from the bytes already written when the validators allow it. The file is named after
      `url`. With a `checksum` or `pieces` to prove the bytes, the segments of a large file
      are fetched from the URL and its mirrors at once, the faster ones taking more of them.
    - `size`: the file's length when it is known beforehand (a Metalink's `<size>`): a
      server that announces another length fails, or a mirror that does is not used.
    - `pieces`: the hashes of the file's pieces (`Pieces`, as a Metalink lists them): each
      piece is checked as it lands, and a bad one is fetched again, from another mirror when
      there is one.

    The keywords a request shares with `Downloader` (listed below, in `help(Request)`, and
    marked in the documentation's options table) are the `Downloader` keywords of those
    names, for this file only (`headers` are added to the downloader's); left out, they are
    the downloader's. None means none (no size limit for `max_size`, no proxy but the
    environment's when the downloader has `trust_env`, no credentials), or the default for
    `existing`, `timeout` and `segments`.

    ```pycon
    >>> Request("https://user:pw@example.org/a.zip", path="archives/a-2024.zip")
    Request(url='https://example.org/a.zip', path='archives/a-2024.zip')
    ```
    """

    __doc__ = f"{__doc__}\n    Shared with `Downloader`: {_shared_keywords()}.\n"

    url: str | URL
    path: str | os.PathLike[str] | None = None
    _: KW_ONLY
    dest: str | os.PathLike[str] | None = None
    headers: Mapping[str, str] | None = None
    existing: Existing | UseDefault | None = USE_DEFAULT
    timeout: Timeout | UseDefault | None = USE_DEFAULT
    sink: Sink | None = None
    checksum: str | None = None
    mirrors: Sequence[str | URL] = ()
    size: int | None = None
    pieces: Pieces | None = None
    max_size: int | UseDefault | None = USE_DEFAULT
    segments: Segments | UseDefault | None = USE_DEFAULT
    proxy: str | UseDefault | None = USE_DEFAULT
    auth: Auth | UseDefault | None = USE_DEFAULT
    check_only: bool = False
    parsed_url: URL = field(init=False, repr=False, compare=False)
    parsed_mirrors: tuple[URL, ...] = field(init=False, repr=False, compare=False)
    expected_digest: tuple[str, str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parsed_url", parse_url(self.url))
        if isinstance(self.mirrors, str | URL):
            raise InvalidRequestError(
                "mirrors must be a list of URLs, not a single URL", url=str(self.url)
            )
        mirrors = tuple(self.mirrors)
        object.__setattr__(self, "mirrors", mirrors)
        object.__setattr__(self, "parsed_mirrors", tuple(parse_url(m) for m in mirrors))
        object.__setattr__(
            self,
            "expected_digest",
            None if self.checksum is None else parse_checksum(self.checksum, url=str(self.url)),
        )
        url = str(self.url)
        for name, kind in (("existing", Existing), ("timeout", Timeout), ("segments", Segments)):
            value = getattr(self, name)
            if value is None:  # as before USE_DEFAULT: None takes the downloader's
                object.__setattr__(self, name, USE_DEFAULT)
            elif value is not USE_DEFAULT:
                check_kind(name, value, kind, _invalid(url))
        if self.max_size is not USE_DEFAULT:
            check_max_size(self.max_size, _invalid(url))
        if self.size is not None and (
            isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0
        ):
            raise InvalidRequestError(f"size must be a number of bytes, not {self.size!r}", url=url)
        if self.pieces is not None:
            if not isinstance(self.pieces, Pieces):
                raise InvalidRequestError(
                    f"pieces must be a Pieces, not {type(self.pieces).__name__}", url=url
                )
            problem = None if self.size is None else self.pieces.problem_with(self.size)
            if problem is not None:
                raise InvalidRequestError(problem, url=url)
        try:
            if self.proxy is not USE_DEFAULT:
                check_proxy(self.proxy)
            if self.auth is not USE_DEFAULT:
                check_auth(self.auth)
        except InvalidRequestError as exc:
            raise InvalidRequestError(str(exc), url=url) from None
        if self.sink is not None and self.path is not None:
            raise InvalidRequestError("give a path or a sink, not both", url=str(self.url))
        if self.check_only and self.sink is not None:
            raise InvalidRequestError("check_only downloads nothing: give no sink", url=url)

    def __repr__(self) -> str:
        # Shown in logs and tracebacks: no userinfo, and no value of a header that carries a
        # credential. The fields themselves are as the caller gave them.
        fields = [f"url={redact(self.url)!r}"]
        for name in ("path", "dest", "existing", "timeout", "sink", "checksum", "size"):
            value = getattr(self, name)
            if value is not None and value is not USE_DEFAULT:
                fields.append(f"{name}={value!r}")
        if self.max_size is not USE_DEFAULT:  # None is a value here: no limit
            fields.append(f"max_size={self.max_size!r}")
        if self.headers:
            shown = {k: "<redacted>" if _is_secret(k) else v for k, v in self.headers.items()}
            fields.append(f"headers={shown!r}")
        if self.mirrors:
            fields.append(f"mirrors={[redact(m) for m in self.mirrors]!r}")
        if self.pieces is not None:
            fields.append(f"pieces=<{len(self.pieces.hashes)} {self.pieces.algorithm} hashes>")
        if self.segments is not USE_DEFAULT:
            fields.append(f"segments={self.segments!r}")
        if self.proxy is not USE_DEFAULT:
            fields.append(f"proxy={None if self.proxy is None else redact(self.proxy)!r}")
        if self.auth is not USE_DEFAULT:
            fields.append(f"auth={check_auth(self.auth)!r}")  # its repr hides the password
        if self.check_only:
            fields.append("check_only=True")
        return f"Request({', '.join(fields)})"


#: Header names whose values are credentials, never shown (case-insensitive).
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(
        word in lowered for word in ("token", "secret", "password", "api-key", "apikey")
    )


#: What `download_many` and `as_completed` accept for each file.
Item: TypeAlias = str | URL | Request


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one download ended.

    - `url`: the URL asked for, as a string.
    - `request`: the full `Request`, or None when the item could not be made into one (then
      `error` is an `InvalidRequestError` saying why).
    - `ok`: True when the file is in place: downloaded now, or `skipped` because it already was.
    - `error`: why it failed (a `DownloadError`), or None.
    - `path`: the file written or skipped (for a failure: the file it was meant to be, when known).
    - `status`: the HTTP status of the final response, or None if none was received.
    - `size`: bytes written by this download (0 when skipped).
    - `final_url`: the URL after redirects, when a response was received.
    - `elapsed`: seconds from the start of the download to its end.
    - `attempts`: requests made for it (1 when the first one worked, 0 when skipped).
    - `resumed_from`: bytes that were already on disk when the last attempt continued them.
    - `etag`, `last_modified`: the validators of the response that produced the file (its ETag
      and Last-Modified headers), for a later conditional request; None when absent.
    - `replaced`: the download replaced a file that was at `path` (under `Existing.OVERWRITE`,
      or under `SKIP` when that file did not match the `checksum`).
    - `sources`: (URL, bytes) of each URL that delivered bytes of the file in this download:
      the URL and the mirrors it used, with the userinfo cut, in the request's order.
    - `worker`: the address of the Dask worker that wrote the file (`adownload.distributed`);
      None for a download in this process.

    `url` and `final_url` never hold the URL's user name or password; `request.url` is the URL
    as the caller gave it.
    """

    url: str
    request: Request | None
    path: Path | None = None
    error: DownloadError | None = None
    status: int | None = None
    size: int = 0
    skipped: bool = False
    final_url: str | None = None
    elapsed: float = 0.0
    attempts: int = 0
    resumed_from: int = 0
    etag: str | None = None
    last_modified: str | None = None
    replaced: bool = False
    sources: tuple[tuple[str, int], ...] = ()
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.skipped:
            state = "skipped"
        elif self.error is None:
            state = "ok"
        else:
            state = f"error={self.error!r}"
        return f"<Outcome {state} url={self.url!r} path={self.path!s} size={self.size}>"


def check_credentials(
    request: Request, headers: Mapping[str, str], url: str, *, auth: object = None
) -> None:
    """A URL's userinfo, an Authorization header (the downloader's `headers` or the
    request's) and an `auth` option are each a credential for one request: refuse two of them
    before anything is sent, rather than guess which one counts."""
    given = []
    if "Authorization" in headers or (
        request.headers and "authorization" in (k.lower() for k in request.headers)
    ):
        given.append("an Authorization header")
    if auth is not None:
        given.append("auth=")
    for candidate in (request.parsed_url, *request.parsed_mirrors):
        if candidate.raw_user is not None or candidate.raw_password is not None:
            given.append(f"a user name or password in the URL {redact(candidate)}")
            break
    if len(given) > 1:
        raise InvalidRequestError(
            f"{' and '.join(given)} are two credentials for {redact(url)}: give one of them",
            url=url,
        )


def _invalid(url: str) -> Callable[[str], InvalidRequestError]:
    """An error type for `check_kind`: bad Request fields are InvalidRequestErrors."""
    return lambda message: InvalidRequestError(message, url=url)


def request_for(
    item: Item,
    *,
    dest: str | os.PathLike[str] | None,
    headers: Mapping[str, str] | None,
    existing: Existing | None,
    timeout: Timeout | None,
    sink: Sink | None,
    checksum: str | None,
    max_size: int | None,
) -> Request:
    """The `Request` for `Downloader.download(item, ...)`: `item` (a URL or a `Request`) with
    the keywords given, which override its own; `dest` is a directory when it exists as one or
    ends with a separator, else the file's exact path."""
    overrides: dict[str, object] = {
        key: value
        for key, value in {
            "headers": headers,
            "existing": existing,
            "timeout": timeout,
            "sink": sink,
            "checksum": checksum,
            "max_size": max_size,
        }.items()
        if value is not None
    }
    if dest is not None:
        text = os.fspath(dest)
        if text.endswith(("/", os.sep)) or os.path.isdir(text):
            overrides["dest"] = dest
            overrides["path"] = None
        else:
            overrides["path"] = dest
    if isinstance(item, Request):
        return dataclasses.replace(item, **overrides)  # type: ignore[arg-type]
    if not isinstance(item, str | URL):
        raise InvalidRequestError(
            f"download() takes a URL (str or yarl.URL) or a Request, not {item!r}", url=None
        )
    return Request(item, **overrides)  # type: ignore[arg-type]
