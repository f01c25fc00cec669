"""One file's way from URL to disk: plan, request, stream into a sink, verify, commit, retry.

Only a complete, verified file ever reaches its final name. Bytes go to `<name>.part`; when
the server gave validators (a strong ETag or Last-Modified), `<name>.part.state` records what
the part belongs to, so a later attempt, or a later run, continues it with `Range` and
`If-Range` instead of starting over. The part is moved into place (`Target.commit`) once the
body is complete and every digest matches. A failure keeps a resumable part and removes
anything else; the final name is never touched before the commit. Everything on disk is the
`Target`'s (`_target.py`); this module holds the exchange with the server, the streams, the
segments and the retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from . import _files, _splice
from ._config import Segments
from ._events import PROGRESS_INTERVAL, Progress, Retrying, Started
from ._exceptions import (
    ChecksumMismatchError,
    ContentDecodingError,
    DestinationExistsError,
    DownloadError,
    DownloadTimeout,
    HTTPStatusError,
    IncompleteBodyError,
    InvalidRequestError,
    ReadTimeout,
    RedirectError,
    RemoteProtocolError,
    SizeLimitError,
    StorageError,
    TotalTimeout,
    TransportError,
    UnsafePathError,
    translate_client_errors,
)
from ._limits import SpeedFloor
from ._models import Outcome, Request
from ._segments import Layout, Segment
from ._settings import Settings
from ._sinks import FileSink, Sink
from ._state import PartState
from ._target import Skipped, Target
from ._util import IdleTimeout, redact, wait_through_cancellation
from ._verify import Hashes, check, parse_digest_fields, parse_legacy_digest

log = logging.getLogger("adownload")


def _decodable() -> frozenset[str]:
    """The content codings aiohttp can decode here: gzip and deflate always, br with Brotli
    installed (a dependency), zstd where its module is."""
    try:
        from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD
    except ImportError:  # pragma: no cover - an aiohttp without the module
        HAS_BROTLI = HAS_ZSTD = False
    codings = {"gzip", "deflate"}
    if HAS_BROTLI:
        codings.add("br")
    if HAS_ZSTD:
        codings.add("zstd")
    return frozenset(codings)


#: What `decode_content=True` can decode, and so all it advertises in Accept-Encoding.
DECODABLE = _decodable()
ACCEPT_ENCODING = ", ".join(c for c in ("gzip", "deflate", "br", "zstd") if c in DECODABLE)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Statuses whose body is the whole file (a 203 is a 200 from a transforming proxy).
_WHOLE = frozenset({200, 203})
#: No hashes at all (falsy, so never updated): shared by every download that checks no digest.
_NO_HASHES = Hashes(())
# Request headers that carry credentials: not sent on to another origin after a redirect.
_CREDENTIALS = ("Authorization", "Proxy-Authorization", "Cookie")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
# Errors after which trying again cannot help: the next attempt would meet the same wall.
_FATAL = (
    StorageError,
    UnsafePathError,
    DestinationExistsError,
    InvalidRequestError,
    SizeLimitError,
)


class _StartOver(Exception):
    """Internal: the bytes kept so far cannot be continued; the next request starts at zero."""


@dataclass(slots=True)
class _Plan:
    """What one request asks for."""

    url: URL
    offset: int  # the first byte asked for
    probe: bool = False  # only the last byte, to confirm that a complete part is still current
    stop: int | None = None  # the last byte asked for (inclusive); None: to the end
    if_range: str | None = None  # the validator that guards the range
    foreign: bool = False  # a segment sent to another origin than the URL's: no credentials

    @property
    def ranged(self) -> bool:
        return bool(self.offset or self.stop is not None)


@dataclass(slots=True, eq=False)
class _Job:
    """A segmented download while its connections run."""

    url: URL  # where segments go: the final URL of the first response
    origin: URL  # the URL the attempt started from, resolved again if `url` expires
    validators: PartState
    layout: Layout
    length: int
    done_before: int  # bytes done by an earlier attempt or run
    finished: asyncio.Event


class Transfer:
    """The state of one download while it runs; `run()` does it and returns its `Outcome`."""

    def __init__(self, settings: Settings, request: Request, dest: Path | None) -> None:
        self._settings = settings
        self.request = request
        # What outcomes, events, errors and logs name: the URL without its userinfo. Only the
        # request itself (the caller's own object) holds the URL as given.
        self.url = self.shown = redact(str(request.url))
        self.timeout = request.timeout or settings.timeout
        self.existing = request.existing or settings.existing
        self.max_size = request.max_size if request.max_size is not None else settings.max_size
        self._dest = dest
        self._resume = settings.resume and not settings.decode_content
        # The final path, the .part and its state: everything this download does on disk.
        self.target = Target(settings, request, self.url, self.existing, resume=self._resume)
        self.status: int | None = None
        self.final_url: str | None = None
        self.size = 0
        self.attempts = 0
        self.resumed_from = 0
        self.etag: str | None = None  # validators of the response that produced the file
        self.last_modified: str | None = None
        self.started = time.monotonic()
        self._sink_size = 0  # bytes in a caller's sink
        self._sink_touched = False  # whether a caller's sink has been written to
        self._no_ranges: set[URL] = set()  # URLs whose range answers cannot be trusted
        self._no_segments: set[URL] = set()  # URLs whose bounded ranges (segments) fail
        self._stack: contextlib.AsyncExitStack | None = None
        self._idle: IdleTimeout  # the read watchdog of the attempt under way
        self._layout: Layout | None = None  # the segments of a segmented attempt

    def outcome(self, error: DownloadError | None = None, *, skipped: bool = False) -> Outcome:
        return Outcome(
            url=self.url,
            request=self.request,
            path=self.target.path,
            error=error,
            status=self.status,
            size=self.size,
            skipped=skipped,
            final_url=self.final_url,
            elapsed=time.monotonic() - self.started,
            attempts=self.attempts,
            resumed_from=self.resumed_from,
            etag=self.etag,
            last_modified=self.last_modified,
            replaced=self.target.replaced and error is None and not skipped,
        )

    # --- the whole download ---------------------------------------------------------------

    async def run(self) -> Outcome:
        """Download the file; raise a `DownloadError` when it fails for good."""
        request = self.request
        self._check_credentials()
        try:
            async with contextlib.AsyncExitStack() as stack:
                self._stack = stack
                if request.sink is None:
                    if request.path is not None:
                        target = Path(request.path)
                        self.target.ensure_directory(target.parent)
                        await self.target.claim(stack, target)
                    elif not self._settings.content_disposition:
                        name = _files.name_from_url(request.parsed_url)
                        directory = self.target.directory(self._dest)
                        await self.target.claim(stack, self.target.join(directory, name))
                    # else: the name comes with the first response, see _receive.
                await self._with_total_timeout()
        except Skipped as skip:
            self.target.path = skip.path
            self.size = 0
            return self.outcome(skipped=True)
        return self.outcome()

    def _check_credentials(self) -> None:
        """A URL's userinfo and an Authorization header are two credentials for one request:
        refuse the pair before anything is sent, rather than guess which one counts."""
        if "Authorization" not in self._settings.headers and not (
            self.request.headers and "authorization" in (k.lower() for k in self.request.headers)
        ):
            return
        for url in (self.request.parsed_url, *self.request.parsed_mirrors):
            if url.raw_user is not None or url.raw_password is not None:
                raise InvalidRequestError(
                    f"{redact(url)} has a user name or password in the URL and an Authorization "
                    "header: give one of them",
                    url=self.url,
                )

    async def _with_total_timeout(self) -> None:
        limit = self.timeout.total
        total = asyncio.timeout(limit)
        sink = self.request.sink
        try:
            async with total:
                await self._attempt_all()
            if sink is not None:
                await self._close(sink)
        except TimeoutError as exc:
            if sink is not None:
                await _close_quietly(sink)
            if total.expired():
                raise TotalTimeout(
                    f"download took longer than {limit}s: {self.shown}",
                    url=self.url,
                    phase="total",
                    seconds=limit,
                ) from exc
            raise
        except BaseException:
            if sink is not None:
                await _close_quietly(sink)
            raise

    async def _attempt_all(self) -> None:
        """Try the URL and its mirrors, retrying as the `Retry` policy says."""
        retry = self._settings.retry
        urls = [self.request.parsed_url, *self.request.parsed_mirrors]
        tries = [0] * len(urls)
        alive = list(range(len(urls)))
        position = 0
        retries = 0
        while True:
            index = alive[position % len(alive)]
            tries[index] += 1
            self.attempts += 1
            try:
                await self._attempt(urls[index])
                return
            except _StartOver:
                log.info("starting %s over from the first byte", self.shown)
                tries[index] -= 1
                continue
            except DownloadError as exc:
                error = exc
            if isinstance(error, _FATAL):
                raise error
            if not self._retryable(error) or tries[index] >= retry.attempts:
                alive.remove(index)  # this URL is done; the next mirror takes over
                if not alive:
                    raise error
            else:
                position += 1
            next_index = alive[position % len(alive)]
            if tries[next_index]:  # back to a URL that failed already: back off first
                retries += 1
                delay = self._retry_wait(error, retries)
            else:
                delay = self._retry_wait(error, 0)
            log.info("attempt %d for %s failed: %s", self.attempts, self.shown, error)
            if self._settings.emit is not None:
                self._settings.emit(Retrying(self.url, self.request, self.attempts, delay, error))
            await asyncio.sleep(delay)

    def _retry_wait(self, error: DownloadError, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` after `error` (0: another URL, no wait);
        raise `error` when the wait would end past `Retry.budget`. The one budget check, for
        whole files and segments alike."""
        retry = self._settings.retry
        delay = 0.0
        if retry_number:
            retry_after = error.retry_after if isinstance(error, HTTPStatusError) else None
            delay = retry.delay(retry_number, retry_after=retry_after)
        if retry.budget is not None and time.monotonic() - self.started + delay > retry.budget:
            raise error
        return delay

    def _retryable(self, error: DownloadError) -> bool:
        if isinstance(error, HTTPStatusError):
            return error.status in self._settings.retry.statuses
        if isinstance(error, ChecksumMismatchError | RedirectError | ContentDecodingError):
            return False
        return isinstance(error, TransportError | DownloadTimeout)

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, url: URL) -> None:
        plan = self._plan(url)
        timeout = self.timeout
        async with (
            self._settings.limiter.slot(url),
            self._read_watchdog(grace=timeout.connect or 0.0) as idle,
        ):
            self._idle = idle
            with translate_client_errors(self.url, read=timeout.read):
                response = await self._send(plan, idle)
                try:
                    await self._receive(response, plan)
                except BaseException:
                    response.close()
                    raise
                response.release()

    @contextlib.asynccontextmanager
    async def _read_watchdog(self, *, grace: float) -> AsyncIterator[IdleTimeout]:
        """An `IdleTimeout` for one exchange, whose expiry the caller sees as `ReadTimeout`."""
        seconds = self.timeout.read
        idle = IdleTimeout(seconds, grace=grace)
        try:
            async with idle:
                yield idle
        except TimeoutError as exc:
            if idle.expired():
                raise ReadTimeout(
                    f"no data received for {seconds}s from {self.shown}",
                    url=self.url,
                    phase="read",
                    seconds=seconds,
                ) from exc
            raise

    def _plan(self, url: URL) -> _Plan:
        state = self.target.state
        if state is None or not self._resume or url in self._no_ranges:
            return _Plan(url, 0)
        if_range = state.if_range()
        if state.sparse and state.length and url in self._no_segments:
            start = self.target.to_prefix()
            log.info("%s: continuing from byte %d in one stream", self.shown, start)
        if state.sparse and state.length:
            # A segmented part: ask for its first hole; the segments then fill the others.
            missing = state.missing()
            if missing and missing[0] != (0, state.length):
                start, end = missing[0]
                stop = None if end == state.length else end - 1
                return _Plan(url, start, stop=stop, if_range=if_range)
            have = 0 if missing else state.length
        else:
            have = self._bytes_on_hand()
        if state.length is not None and have >= state.length > 0:
            # Complete already: ask for the last byte only, to learn whether it is still current.
            return _Plan(
                url, state.length - 1, probe=True, stop=state.length - 1, if_range=if_range
            )
        return _Plan(url, have, if_range=if_range)

    async def _send(self, plan: _Plan, idle: IdleTimeout) -> aiohttp.ClientResponse:
        """GET `plan.url`, following redirects ourselves so that each hop can be checked."""
        settings = self._settings
        headers = settings.headers
        if self.request.headers:
            headers = headers.copy()
            headers.update(self.request.headers)
        if plan.ranged:
            headers = headers.copy()
            end = "" if plan.stop is None else str(plan.stop)
            headers["Range"] = f"bytes={plan.offset}-{end}"
            if plan.if_range:
                headers["If-Range"] = plan.if_range
        if plan.foreign:
            headers = headers.copy()
            for name in _CREDENTIALS:
                headers.pop(name, None)
        # sock_read bounds the wait for the response's headers (from the moment the request is
        # sent) by Timeout.read, as documented; it is switched off once they are here, and the
        # IdleTimeout around the attempt watches the body for less CPU per chunk.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.timeout.connect, sock_read=self.timeout.read
        )
        current = plan.url
        seen = {current}
        for hop in range(settings.max_redirects + 1):
            response = await settings.session.get(
                current,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                auto_decompress=settings.decode_content,
                raise_for_status=False,
                read_bufsize=settings.read_bufsize,
            )
            _end_header_timeout(response)
            idle.touch()
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or location is None:
                return response
            response.close()
            try:
                target = current.join(URL(location))
            except (ValueError, TypeError):
                raise RedirectError(
                    f"malformed redirect {location!r} from {redact(current)}", url=self.url
                ) from None
            self._check_redirect(current, target, hop, seen)
            if (target.scheme, target.host, target.port) != (
                current.scheme,
                current.host,
                current.port,
            ):
                headers = headers.copy()
                for name in _CREDENTIALS:
                    headers.pop(name, None)
            seen.add(target)
            log.debug("redirect %s -> %s", redact(current), redact(target))
            current = target
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_redirect(self, current: URL, target: URL, hop: int, seen: set[URL]) -> None:
        if target.scheme not in ("http", "https") or not target.host:
            raise RedirectError(
                f"refused redirect from {redact(current)} to a {target.scheme or 'relative'}: URL",
                url=self.url,
            )
        downgrade = current.scheme == "https" and target.scheme == "http"
        if downgrade and not self._settings.allow_downgrade:
            raise RedirectError(
                f"refused redirect from https to plain http: {redact(target)}", url=self.url
            )
        if target in seen:
            raise RedirectError(f"redirect loop at {redact(target)}", url=self.url)
        if hop >= self._settings.max_redirects:
            raise RedirectError(
                f"more than {self._settings.max_redirects} redirects from {self.shown}",
                url=self.url,
            )

    async def _receive(self, response: aiohttp.ClientResponse, plan: _Plan) -> None:
        self.status = response.status
        self.final_url = redact(str(response.url))
        self.etag = response.headers.get("ETag")
        self.last_modified = response.headers.get("Last-Modified")
        log.debug("%s %s <- %s", response.status, response.reason, redact(response.url))
        _check_framing(response, self.url)
        # Before the first await: the connection may be gone by the next one.
        closing = _close_watch(response)
        self._layout = None
        ranged = plan.ranged
        try:
            offset, length = self._interpret(response, plan, ranged)
        except _Complete:
            await self._finish_complete()
            return
        # A whole body, not the continuation of bytes on hand (a 206 may start at 0: the first
        # hole of a segmented part).
        fresh = response.status != 206
        if self.request.sink is None and self.target.part is None:
            # Content-Disposition naming: the target is known only now.
            name = _name_from_response(response) or _files.name_from_url(self.request.parsed_url)
            assert self._stack is not None
            directory = self.target.directory(self._dest)
            await self.target.claim(self._stack, self.target.join(directory, name), resume=False)
        if self.max_size is not None and length is not None and length > self.max_size:
            self._discard()
            raise SizeLimitError(
                f"{self.shown} is {length} bytes, over the limit of {self.max_size}",
                url=self.url,
                limit=self.max_size,
            )
        if fresh:
            self._adopt(response, length)
        # A probe re-reads the last byte of a part that is already whole.
        self.resumed_from = offset + 1 if plan.probe else offset
        sink = self.request.sink
        if sink is not None:
            if fresh and self._sink_touched:
                await _truncate(sink, self.url)
            self._sink_touched = True
            await self._stream(response, sink, offset, length, plan, closing)
            return
        segments = self._segmenting(response, plan, offset, length, fresh)
        file_sink = await self.target.open_part(fresh)
        try:
            if segments is not None and length is not None:
                assert isinstance(file_sink, FileSink)
                await self._segmented(response, file_sink, plan, offset, length, segments)
            else:
                await self._stream(response, file_sink, offset, length, plan, closing)
        except BaseException as exc:
            await _close_quietly(file_sink)
            self.target.keep_or_discard(
                exc, None if self._layout is None else self._layout.ranges()
            )
            raise
        await self._close(file_sink)
        self._commit()

    async def _finish_complete(self) -> None:
        """The bytes on hand are the whole current file: verify the checksum and commit."""
        self.size = self.resumed_from = self._bytes_on_hand()
        wanted = self.request.expected_digest
        if wanted is not None:
            hashes = Hashes([wanted[0]])
            await self._hash_prefix(hashes, self.size)
            self._verify([("checksum", {wanted[0]: bytes.fromhex(wanted[1])}, "full")], hashes)
        if self.request.sink is None:
            self._commit()

    def _interpret(
        self, response: aiohttp.ClientResponse, plan: _Plan, ranged: bool
    ) -> tuple[int, int | None]:
        """Decide from the status where the body goes: (offset, length of the whole file)."""
        status = response.status
        if status == 206:
            if not ranged:
                raise RemoteProtocolError(
                    f"206 Partial Content to a request without Range: {self.shown}", url=self.url
                )
            return plan.offset, self._check_partial(response, plan)
        if status == 416 and ranged:
            self._check_unsatisfiable(response, plan)
        if status not in _WHOLE:
            # An error, or a 2xx that is no file: 204 No Content, 205, 202 Accepted, ...
            raise self._status_error(response, "no file" if 200 <= status < 300 else "")
        whole = response.headers.get("Content-Range")
        if whole is not None:
            self._check_whole(response, whole)
        if self._settings.decode_content:
            self._check_decodable(response)
        if ranged:
            # The server sent the whole file: it ignores ranges, or the file changed (If-Range).
            log.info("%s: the server sent the whole file; starting over", self.shown)
            self._discard()
        length = None if self._settings.decode_content else response.content_length
        return 0, length

    def _status_error(self, response: aiohttp.ClientResponse, why: str = "") -> HTTPStatusError:
        status = response.status
        return HTTPStatusError(
            f"HTTP {status} {response.reason or ''}".rstrip()
            + f" for {self.shown}"
            + (f": {why}" if why else ""),
            url=self.url,
            status=status,
            reason=response.reason or "",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )

    def _check_whole(self, response: aiohttp.ClientResponse, value: str) -> None:
        """A 200 that carries a Content-Range must say it is the whole file, bytes 0 to the end;
        a tail sent as a 200 is never saved as the file."""
        if range_answer(value, response.content_length, 0, None, None) is None:
            raise RemoteProtocolError(
                f"HTTP {response.status} with Content-Range {value!r} from {self.shown}: "
                "not the whole file",
                url=self.url,
            )

    def _check_decodable(self, response: aiohttp.ClientResponse) -> None:
        """With decode_content, every body is decoded or refused: aiohttp passes an encoding it
        does not know (or a stack of two) through undecoded."""
        value = response.headers.get("Content-Encoding", "").strip().lower()
        if value and value != "identity" and value not in DECODABLE:
            raise ContentDecodingError(
                f"cannot decode Content-Encoding {value!r} from {self.shown} "
                f"(decodable here: {', '.join(sorted(DECODABLE))})",
                url=self.url,
            )

    def _check_partial(self, response: aiohttp.ClientResponse, plan: _Plan) -> int | None:
        state = self.target.state
        assert state is not None
        value = response.headers.get("Content-Range")
        answer = range_answer(value, response.content_length, plan.offset, plan.stop, state.length)
        if answer is None:
            self._no_ranges.add(plan.url)
            raise RemoteProtocolError(
                f"Content-Range {value!r} from {redact(plan.url)} does not match the range "
                f"asked for (bytes={plan.offset}-{'' if plan.stop is None else plan.stop})",
                url=self.url,
            )
        total = answer[2]
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if (etag or modified) and not state.matches(etag, modified):
            # If-Range should have prevented this: never splice another version on.
            self._discard()
            raise _StartOver
        return total if total is not None else state.length

    def _check_unsatisfiable(self, response: aiohttp.ClientResponse, plan: _Plan) -> None:
        """A 416: the part is complete if the server's size and validators say so."""
        state = self.target.state
        assert state is not None
        match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if match and int(match.group(1)) == plan.offset and state.matches(etag, modified):
            raise _Complete
        self._discard()
        raise _StartOver

    def _adopt(self, response: aiohttp.ClientResponse, length: int | None) -> None:
        """A fresh body starts: remember its validators when it can be resumed later."""
        state = self._validators(response, length)
        self._sink_size = 0
        self.target.start_fresh(state if self._resume and state.resumable else None, length)

    async def _stream(
        self,
        response: aiohttp.ClientResponse,
        sink: Sink,
        offset: int,
        length: int | None,
        plan: _Plan,
        closing: asyncio.Future[None] | None = None,
    ) -> None:
        """Copy the body into `sink` from `offset`, hashing, counting and checking as it goes.

        `closing` is the connection's close for a body that ends when it closes (no length, not
        chunked): only a clean close ends such a body (RFC 9112, section 8); a reset cuts it.
        """
        settings = self._settings
        emit = settings.emit
        full, partial, expected = self._expected_digests(response)
        if full and offset:
            await self._hash_prefix(full, offset)
        if emit is not None:
            emit(Started(self.url, self.request, self.target.path, length, offset))
            next_progress = time.monotonic() + PROGRESS_INTERVAL
        min_speed = self.timeout.min_speed
        floor = None
        if min_speed is not None:
            floor = SpeedFloor(min_speed, self.timeout.min_speed_window, 0, self.shown)
        max_size = self.max_size
        position = offset
        self.size = position
        # readchunk() hands over aiohttp's buffers one by one; iter_any() would join them first.
        read = response.content.readchunk
        touch = self._idle.touch
        bucket = settings.limiter.bucket
        if (
            self.request.sink is None
            and isinstance(sink, FileSink)
            and not (full or partial or bucket or min_speed is not None)
            and self._spliceable(response)
        ):
            spliced = await self._splice_body(response, sink, offset, length)
            if spliced is not None:
                self._check_end(response, spliced, offset, length, full, partial, expected)
                return
        # Entered once per body, not per chunk: read() is the only aiohttp call in the loop.
        try:
            with translate_client_errors(self.url):
                while True:
                    chunk, end_of_http_chunk = await read()
                    touch()
                    if not chunk:
                        if end_of_http_chunk:  # a boundary of chunked encoding, not the end
                            continue
                        break
                    try:
                        await sink.write_at(position, chunk)
                    except OSError as exc:
                        raise self.target.storage_error(exc) from exc
                    if bucket is not None:
                        await bucket.take(len(chunk))
                    position += len(chunk)
                    self.size = position
                    if self.request.sink is not None:
                        self._sink_size = position
                    if full:
                        full.update(chunk)
                    if partial:
                        partial.update(chunk)
                    if max_size is not None and position > max_size:
                        self._discard()
                        raise SizeLimitError(
                            f"{self.shown} grew over the limit of {max_size} bytes",
                            url=self.url,
                            limit=max_size,
                        )
                    if floor is not None:
                        floor.check(position - offset)
                    if emit is not None and time.monotonic() >= next_progress:
                        emit(Progress(self.url, self.request, position, length))
                        next_progress = time.monotonic() + PROGRESS_INTERVAL
        except ContentDecodingError:
            raise
        except RemoteProtocolError as exc:
            # The body broke off: say how much of the file is here, which is what a retry or a
            # later run continues from.
            raise self._incomplete(position, length, offset, response) from exc.__cause__
        if closing is not None and closing.done() and closing.exception() is not None:
            raise self._incomplete(position, length, offset, response) from closing.exception()
        self._check_end(response, position, offset, length, full, partial, expected)

    def _spliceable(self, response: aiohttp.ClientResponse) -> bool:
        """Whether the kernel copy can take this body: large, plain, with a known length."""
        settings = self._settings
        headers = response.headers
        announced = response.content_length
        return (
            settings.splice
            and _splice.available
            and announced is not None
            and announced >= _splice.SPLICE_MIN
            and "Transfer-Encoding" not in headers
            and not (settings.decode_content and "Content-Encoding" in headers)
        )

    async def _splice_body(
        self, response: aiohttp.ClientResponse, sink: FileSink, offset: int, length: int | None
    ) -> int | None:
        """Copy the body from socket to file in the kernel; the end position, or None when the
        connection cannot be taken (TLS): the read path then does the job."""
        with translate_client_errors(self.url):  # aiohttp's buffer may hold its error already
            taken = _splice.take_socket(response)
        if taken is None:
            return None
        sock_fd, head = taken
        assert response.content_length is not None
        end = offset + response.content_length
        try:
            position = offset
            if head:
                try:
                    await sink.write_at(position, head)
                    await sink.drain()
                except OSError as exc:
                    raise self.target.storage_error(exc) from exc
                position += len(head)
                self.size = position
                self._idle.touch()
            if position < end:
                position = await self._run_copy(
                    _splice.SpliceCopy(sock_fd, sink.fileno(), position, end - position),
                    response,
                    offset,
                    length,
                )
            if position == end and _splice.more_bytes_waiting(sock_fd):
                self._discard()
                raise RemoteProtocolError(
                    f"{self.shown} sent more bytes than its Content-Length", url=self.url
                )
        finally:
            os.close(sock_fd)
            response.close()  # aiohttp did not see the body end: the connection is not reusable
        return position

    async def _run_copy(
        self,
        copy: _splice.SpliceCopy,
        response: aiohttp.ClientResponse,
        offset: int,
        length: int | None,
    ) -> int:
        """Run `copy` in its thread; meanwhile keep the idle timer and the progress events going."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()

        def settle(result: int | BaseException) -> None:
            if done.done():
                return
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)

        copy.start(lambda result: loop.call_soon_threadsafe(settle, result))
        emit = self._settings.emit
        last = copy.position
        try:
            while not done.done():
                await asyncio.wait({done}, timeout=PROGRESS_INTERVAL)
                if copy.position != last:
                    last = self.size = copy.position
                    self._idle.touch()
                    if emit is not None:
                        emit(Progress(self.url, self.request, last, length))
        except BaseException:  # cancelled (a timeout, the caller): stop the thread first
            copy.stop()
            await wait_through_cancellation(done)
            done.exception()  # InterruptedError, or whatever ended the copy first: superseded
            self.size = copy.position
            raise
        finally:
            if done.done():
                copy.close()
        self.size = copy.position
        try:
            return done.result()
        except _splice.SpliceReceiveError as exc:
            raise self._incomplete(copy.position, length, offset, response) from exc.__cause__
        except OSError as exc:
            raise self.target.storage_error(exc) from exc

    def _check_end(
        self,
        response: aiohttp.ClientResponse,
        position: int,
        offset: int,
        length: int | None,
        full: Hashes,
        partial: Hashes,
        expected: list[tuple[str, dict[str, bytes], str]],
    ) -> None:
        """The body ended at `position`: check its length and digests."""
        emit = self._settings.emit
        if emit is not None:
            emit(Progress(self.url, self.request, position, length))
        announced = None if self._settings.decode_content else response.content_length
        if (announced is not None and position - offset != announced) or (
            length is not None and position != length
        ):
            raise self._incomplete(position, length, offset, response)
        self._verify(expected, full, partial)

    def _verify(
        self,
        expected: list[tuple[str, dict[str, bytes], str]],
        full: Hashes,
        partial: Hashes = _NO_HASHES,
    ) -> None:
        """Check every expected digest (`full` for the file, `partial` for this response); a
        mismatch discards the bytes on hand, so nothing of a wrong file is kept for resuming."""
        try:
            for source, digests, scope in expected:
                check(full if scope == "full" else partial, digests, source=source, url=self.url)
        except ChecksumMismatchError:
            self._discard()
            raise

    # --- segmented downloads ------------------------------------------------------------------

    def _segmenting(
        self,
        response: aiohttp.ClientResponse,
        plan: _Plan,
        offset: int,
        length: int | None,
        fresh: bool,
    ) -> Segments | None:
        """How to split this body over several connections, or None for one stream."""
        settings = self._settings
        if (
            length is None
            or plan.probe  # one byte to confirm a complete part: nothing to split
            or settings.decode_content
            # Each segment opens its own FileSink on the part; other writers may not take
            # writes out of order (a generator cannot).
            or settings.writer != FileSink.open
            or plan.url in self._no_ranges
            or plan.url in self._no_segments
        ):
            return None
        segments = self.request.segments or settings.segments
        state = self.target.state
        if state is not None and state.sparse and not fresh:
            return segments  # the holes of a segmented part: only segments can fill them
        if segments.count < 2 or length - offset < 2 * segments.min_size:
            return None
        accept = response.headers.get("Accept-Ranges", "").lower().split(",")
        if response.status != 206 and "bytes" not in (unit.strip() for unit in accept):
            return None
        validators = state or self._validators(response, length)
        # Without a strong ETag or a date, If-Range cannot keep a changed file from being
        # spliced together from two versions.
        return segments if validators.resumable else None

    def _validators(self, response: aiohttp.ClientResponse, length: int | None) -> PartState:
        return PartState.of(
            self.request.parsed_url,
            length,
            response.headers.get("ETag"),
            response.headers.get("Last-Modified"),
        )

    async def _segmented(
        self,
        response: aiohttp.ClientResponse,
        sink: FileSink,
        plan: _Plan,
        offset: int,
        length: int,
        segments: Segments,
    ) -> None:
        """Fetch the body over up to `segments.count` connections, each writing at its offsets.

        The first response is the first segment; the others are ranged GETs with If-Range to
        the first response's final URL, each on a connection of its own that takes a permit of
        the host (the attempt's global permit covers them all). A segment whose connection
        breaks continues from its last written byte; a segment that fails for good fails the
        download, and the resume state keeps every range that was written.
        """
        state = self.target.state
        validators = state or self._validators(response, length)
        resumed = state is not None and state.sparse and response.status == 206
        missing = state.missing() if state is not None and resumed else [(offset, length)]
        layout = Layout(missing, segments.count, segments.min_size)
        done_before = length - sum(end - start for start, end in missing)
        if resumed and state is not None:
            layout.done.extend(state.ranges)
        self._layout = layout
        if state is not None:
            state.sparse = True
            state.ranges = layout.ranges()
            self.target.save_state()
        self.resumed_from = done_before
        # From here on each connection watches its own silence.
        self._idle.disarm()
        origin = plan.url
        final = response.url
        job = _Job(
            url=final,
            origin=origin,
            validators=validators,
            layout=layout,
            length=length,
            done_before=done_before,
            finished=asyncio.Event(),
        )
        first = layout.take(offset)
        first.sink = sink
        full, _, expected = self._expected_digests(response)
        emit = self._settings.emit
        if emit is not None:
            emit(Started(self.url, self.request, self.target.path, length, done_before))
        log.debug("%s: %d bytes in up to %d segments", self.shown, length, segments.count)
        try:
            async with asyncio.TaskGroup() as group:
                helpers = [
                    group.create_task(self._segment_helper(job)) for _ in range(segments.count - 1)
                ]
                monitor = group.create_task(self._monitor(job))
                # The first connection runs here, in the permit the attempt holds.
                await self._segment_loop(job, first, response)
                await job.finished.wait()
                # Helpers still waiting for a host permit have nothing left to do.
                for task in helpers:
                    task.cancel()
                monitor.cancel()
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from None
        self.size = length
        if emit is not None:
            emit(Progress(self.url, self.request, length, length))
        # Bytes arrived out of order, so a digest of the whole file cannot be computed while
        # streaming: read the finished part once. A Content-Digest of one 206 covers only its
        # own part and is not checked here.
        checks = [entry for entry in expected if entry[2] == "full"]
        if checks:
            await self._hash_prefix(full, length)
            self._verify(checks, full)

    async def _segment_helper(self, job: _Job) -> None:
        """A further connection: takes a host permit, then segments until none are left."""
        async with self._settings.limiter.connection(job.url):
            await self._segment_loop(job, None, None)

    async def _segment_loop(
        self, job: _Job, segment: Segment | None, response: aiohttp.ClientResponse | None
    ) -> None:
        layout = job.layout
        while True:
            if segment is None:
                segment = layout.next()
                if segment is None:
                    return
            await self._fetch_with_retries(job, segment, response)
            response = None
            layout.finish(segment)
            if layout.finished:
                job.finished.set()
            segment = None

    async def _fetch_with_retries(
        self, job: _Job, segment: Segment, response: aiohttp.ClientResponse | None
    ) -> None:
        """Fetch `segment`; a retryable failure continues it from its last written byte."""
        retry = self._settings.retry
        tries = 0
        while True:
            try:
                await self._fetch_segment(job, segment, response)
                return
            except DownloadError as exc:
                error = exc
            response = None
            segment.restart()
            tries += 1
            if (
                isinstance(error, _FATAL)
                or not self._retryable(error)
                or job.origin in self._no_ranges
                or job.origin in self._no_segments
                or tries >= retry.attempts
            ):
                raise error
            delay = self._retry_wait(error, tries)
            self.attempts += 1
            log.info("segment %r of %s failed: %s", segment, self.shown, error)
            if self._settings.emit is not None:
                self._settings.emit(Retrying(self.url, self.request, self.attempts, delay, error))
            await asyncio.sleep(delay)

    async def _fetch_segment(
        self, job: _Job, segment: Segment, response: aiohttp.ClientResponse | None
    ) -> None:
        timeout = self.timeout
        if segment.sink is None:
            part = self.target.part
            assert part is not None
            try:
                sink = await self._settings.writer(part, existing=True)
            except OSError as exc:
                raise self.target.storage_error(exc, part) from exc
            assert isinstance(sink, FileSink)
            segment.sink = sink
        sink = segment.sink
        grace = 0.0 if response else timeout.connect or 0.0
        try:
            async with self._read_watchdog(grace=grace) as idle:
                with translate_client_errors(self.url, read=timeout.read):
                    if response is None:
                        response = await self._request_segment(job, segment, idle)
                    try:
                        consumed = await self._pump(segment, response, sink, idle)
                    except BaseException:
                        response.close()
                        raise
                    if consumed:
                        response.release()  # the connection goes back to the pool
                    else:
                        response.close()  # the rest of its range is another segment's
        except BaseException:
            await _close_quietly(sink)
            raise
        else:
            await self._close(sink)
        finally:
            segment.written = segment.durable()
            segment.sink = None

    async def _request_segment(
        self, job: _Job, segment: Segment, idle: IdleTimeout
    ) -> aiohttp.ClientResponse:
        """A ranged GET for the rest of `segment`, checked before a byte of it is used."""
        plan = _Plan(
            job.url,
            segment.position,
            stop=segment.end - 1,
            if_range=job.validators.if_range(),
            foreign=_origin(job.url) != _origin(job.origin),
        )
        response = await self._send(plan, idle)
        if response.status in (403, 410) and job.url != job.origin:
            # A redirect target that stopped working is often an expired signed URL: ask the
            # URL we were given for a fresh one.
            response.close()
            log.info(
                "%s: %d from %s; resolving %s again",
                self.shown,
                response.status,
                redact(job.url),
                redact(job.origin),
            )
            plan.url, plan.foreign = job.origin, False
            response = await self._send(plan, idle)
        try:
            self._check_segment(job, segment, response, plan)
        except BaseException:
            response.close()
            raise
        job.url = response.url
        return response

    def _check_segment(
        self, job: _Job, segment: Segment, response: aiohttp.ClientResponse, plan: _Plan
    ) -> None:
        _check_framing(response, self.url)
        status = response.status
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        same = (not etag and not modified) or job.validators.matches(etag, modified)
        if status == 206:
            # What was asked: the segment's end may have moved closer since (a split).
            assert plan.stop is not None
            value = response.headers.get("Content-Range")
            answer = range_answer(
                value, response.content_length, plan.offset, plan.stop, job.length
            )
            if answer is None or answer[2] is None:
                # Never spliced in: the next attempt is one stream from the first hole.
                self._no_segments.add(job.origin)
                raise RemoteProtocolError(
                    f"Content-Range {value!r} from {redact(response.url)} does not match the "
                    f"range asked for (bytes={plan.offset}-{plan.stop}/{job.length})",
                    url=self.url,
                )
            if not same:
                self._discard()
                raise _StartOver
            return
        if 200 <= status < 300:
            if same:
                # The same file, whole: this server ignores ranges after all.
                self._no_ranges.add(job.origin)
                raise RemoteProtocolError(
                    f"{redact(response.url)} answered a range with the whole file", url=self.url
                )
            # If-Range did its job: the file changed, and its bytes on hand are worthless.
            log.info("%s changed during the download; starting over", self.shown)
            self._discard()
            raise _StartOver
        raise self._status_error(response)

    async def _pump(
        self,
        segment: Segment,
        response: aiohttp.ClientResponse,
        sink: FileSink,
        idle: IdleTimeout,
    ) -> bool:
        """Copy the body into the segment's range until its end (which a split may move
        closer); True when the response was read to its end, so the connection can be reused."""
        read = response.content.readchunk
        touch = idle.touch
        bucket = self._settings.limiter.bucket
        try:
            while True:
                chunk, end_of_http_chunk = await read()
                touch()
                if not chunk:
                    if end_of_http_chunk:
                        continue
                    break
                position = segment.position
                room = segment.end - position
                if len(chunk) >= room:
                    # The segment ends in this chunk. Claim before writing: a split computed
                    # during the write must not hand out bytes that are being written.
                    segment.position = segment.end
                    await sink.write_at(position, chunk[:room] if len(chunk) > room else chunk)
                    if bucket is not None:
                        await bucket.take(room)
                    return len(chunk) == room and response.content.at_eof()
                segment.position = position + len(chunk)
                await sink.write_at(position, chunk)
                if bucket is not None:
                    await bucket.take(len(chunk))
        except OSError as exc:
            raise self.target.storage_error(exc) from exc
        raise IncompleteBodyError(
            f"a segment of {self.shown} ended at byte {segment.position}, before {segment.end}",
            url=self.url,
            expected=segment.end,
            received=segment.position,
        )

    async def _monitor(self, job: _Job) -> None:
        """Progress events, the resume state saved now and then, and the minimum speed."""
        emit = self._settings.emit
        min_speed = self.timeout.min_speed
        floor = None
        if min_speed is not None:
            floor = SpeedFloor(
                min_speed, self.timeout.min_speed_window, job.layout.received(), self.shown
            )
        interval = PROGRESS_INTERVAL if emit is not None else 1.0
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            received = job.layout.received()
            self.size = job.done_before + received
            if emit is not None:
                emit(Progress(self.url, self.request, self.size, job.length))
            if self.target.state is not None and now - last_save >= 1.0:
                # A killed process resumes from what was written by then.
                self.target.state.ranges = job.layout.ranges()
                with contextlib.suppress(StorageError):
                    self.target.save_state()
                last_save = now
            if floor is not None:
                floor.check(received, now)

    def _incomplete(
        self, position: int, length: int | None, offset: int, response: aiohttp.ClientResponse
    ) -> IncompleteBodyError:
        """The error for a body that ended early (or late): counted in bytes of the whole file."""
        announced = None if self._settings.decode_content else response.content_length
        expected = (
            length if length is not None else (None if announced is None else offset + announced)
        )
        return IncompleteBodyError(
            f"received {position} of {expected if expected is not None else 'unknown'} bytes "
            f"of {self.shown}" + (f" (this response started at byte {offset})" if offset else ""),
            url=self.url,
            expected=expected,
            received=position,
        )

    def _expected_digests(
        self, response: aiohttp.ClientResponse
    ) -> tuple[Hashes, Hashes, list[tuple[str, dict[str, bytes], str]]]:
        """The digests to check: the caller's checksum and those the server announces."""
        expected: list[tuple[str, dict[str, bytes], str]] = []
        wanted = self.request.expected_digest
        if wanted is not None:
            expected.append(("checksum", {wanted[0]: bytes.fromhex(wanted[1])}, "full"))
        if self._settings.verify_digests and not self._settings.decode_content:
            headers = response.headers
            partial_response = response.status == 206
            for name, parse, scope in (
                ("Repr-Digest", parse_digest_fields, "full"),
                ("Digest", parse_legacy_digest, "full"),
                ("Content-Digest", parse_digest_fields, "partial" if partial_response else "full"),
            ):
                value = headers.get(name)
                digests = parse(value) if value else {}
                if digests:
                    expected.append((name, digests, scope))
        if not expected:  # the common case: nothing to hash
            return _NO_HASHES, _NO_HASHES, expected
        full = Hashes(a for _, d, scope in expected if scope == "full" for a in d)
        partial = Hashes(a for _, d, scope in expected if scope == "partial" for a in d)
        return full, partial, expected

    async def _hash_prefix(self, hashes: Hashes, length: int) -> None:
        """Feed the bytes already on hand to `hashes`: a resumed file is hashed whole."""
        if self.request.sink is not None:
            raise RemoteProtocolError(
                "cannot verify a digest of a resumed download into a custom sink", url=self.url
            )
        await self.target.hash_part(hashes, length)

    # --- the bytes on hand ----------------------------------------------------------------------

    def _discard(self) -> None:
        """Forget the bytes on hand: in a caller's sink, or the `.part` (if ours) and its state."""
        self._sink_size = 0
        self.target.discard()

    def _bytes_on_hand(self) -> int:
        if self.request.sink is not None:
            return self._sink_size
        return self.target.bytes_on_hand()

    def _commit(self) -> None:
        self.target.commit()
        log.debug("saved %s (%d bytes)", self.target.path, self.size)

    async def _close(self, sink: Sink) -> None:
        try:
            await sink.close()
        except OSError as exc:
            raise self.target.storage_error(exc) from exc


class _Complete(Exception):
    """Internal: a 416 confirmed that the part on hand is the whole, current file."""


async def _truncate(sink: Sink, url: str) -> None:
    """Empty a caller's sink before a download starts over, if the sink can be emptied."""
    truncate = getattr(sink, "truncate", None)
    if truncate is None:
        raise DownloadError(
            f"{redact(url)} must start over, but its sink cannot be emptied (it has no truncate())",
            url=url,
        )
    await truncate(0)


async def _close_quietly(sink: Sink) -> None:
    # The error that got us here matters more than one from closing.
    with contextlib.suppress(Exception):
        await sink.close()


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


def _most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error of a segmented download that says most about it: a start-over first (the
    file changed), then the first download error, then anything else."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    for kind in (_StartOver, DownloadError, Exception):
        for error in leaves:
            if isinstance(error, kind):
                return error
    return leaves[0] if leaves else group


def range_answer(
    value: str | None, announced: int | None, offset: int, stop: int | None, length: int | None
) -> tuple[int, int, int | None] | None:
    """The (first, last, total) bytes of a 206's `Content-Range` when it answers the range
    asked (`offset` to `stop` inclusive; None: to the end) of a file of `length` (None:
    unknown), else None. The one range validator, for whole-file requests and segments.

    The answer must start where asked and cover at least what was asked: an open-ended answer
    to a bounded range (`bytes a-END/TOTAL`, which some servers send) holds what was asked, and
    the reader stops at `stop`. Its Content-Length, when given, must be the range's size.

    >>> range_answer("bytes 100-199/1000", 100, 100, 199, 1000)
    (100, 199, 1000)
    >>> range_answer("bytes 100-999/1000", 900, 100, 199, 1000)  # open-ended: it holds 100-199
    (100, 999, 1000)
    >>> range_answer("bytes 101-199/1000", 99, 100, 199, 1000) is None
    True
    """
    match = _CONTENT_RANGE.match(value or "")
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if first != offset or last < first or (announced is not None and announced != last - first + 1):
        return None
    if total is None:
        if length is not None:  # "*": the server does not know the length we were told
            return None
    elif last >= total or (length is not None and total != length):
        return None
    if stop is not None and last < stop:
        return None
    if stop is None and total is not None and last != total - 1:
        return None
    return first, last, total


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
    does not tell a reset from a clean close). None for every other body."""
    if response.content_length is not None or "Transfer-Encoding" in response.headers:
        return None
    connection = response.connection
    protocol = None if connection is None else connection.protocol
    closed = None if protocol is None else protocol.closed
    if closed is not None:
        # Retrieved here, so that an unread error is never logged by asyncio.
        closed.add_done_callback(lambda future: future.cancelled() or future.exception())
    return closed


def _check_framing(response: aiohttp.ClientResponse, url: str) -> None:
    """Refuse a response whose length is ambiguous: duplicate or malformed Content-Length."""
    lengths = [value for name, value in response.raw_headers if name.lower() == b"content-length"]
    if len(lengths) > 1:
        raise RemoteProtocolError(f"duplicate Content-Length headers from {redact(url)}", url=url)
    if lengths and not lengths[0].strip().isdigit():
        raise RemoteProtocolError(
            f"malformed Content-Length {lengths[0]!r} from {redact(url)}", url=url
        )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _name_from_response(response: aiohttp.ClientResponse) -> str | None:
    """The safe file name a Content-Disposition header proposes, if any."""
    with warnings.catch_warnings():
        # aiohttp warns about malformed headers; a stranger's header is no reason to warn.
        warnings.simplefilter("ignore")
        disposition = response.content_disposition
    if disposition is None or not disposition.filename:
        return None
    return _files.safe_filename(disposition.filename)


def merge_headers(*layers: Mapping[str, str] | None) -> CIMultiDict[str]:
    merged: CIMultiDict[str] = CIMultiDict()
    for layer in layers:
        if layer:
            merged.update(layer)
    return merged
