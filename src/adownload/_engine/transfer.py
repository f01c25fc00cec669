"""One file's way from URL to disk: plan, exchange, sink, verify, commit, outcome.

Only a complete, verified file ever reaches its final name. Bytes go to `<name>.part`; when
the server gave validators (a strong ETag or Last-Modified), `<name>.part.state` records what
the part belongs to, so a later attempt, or a later run, continues it instead of starting over.
The part is moved into place (`Target.commit`) once the body is complete and every digest
matches. A failure keeps a resumable part and removes anything else; the final name is never
touched before the commit.

`Transfer` is the engine for one file and knows no protocol: each attempt asks its `Exchange`
(`_protocols/http/exchange.py`, `_protocols/ftp/exchange.py`) for an `Answer` and a `Body`
(`_protocols/base.py`) and decides from the verdict what to keep, discard or retry. Everything on
disk is the `Target`'s (`_disk/target.py`), the body goes to its sink through a `Receiver`
(`_engine/receive.py`: one stream or segments, then the digests), retries through
`_engine.retry.with_retries`. The receiver and the segments are handed the download's data
(`Download`, `_engine/download.py`) and add what they learn to its `Facts`; they never see the
transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from yarl import URL

from .._disk import files as _files
from .._disk import places
from .._disk.existing import Skipped
from .._disk.sinks import close_quietly
from .._disk.target import Target
from .._model.config import Existing
from .._model.errors import (
    DestinationExistsError,
    DownloadError,
    FileMismatchError,
    FTPReplyError,
    HTTPStatusError,
    RemoteProtocolError,
    SizeLimitError,
    TotalTimeout,
)
from .._model.request import Outcome, Request, check_credentials
from .._model.util import IdleTimeout, redact, same_origin
from .._protocols.base import Answer, Body, Plan, Verdict
from .download import Download
from .exchanges import Exchanges
from .plan import Judgement, Next, asked_since, continued_problem, judge, newer, plan_for
from .receive import Receiver, validators_of
from .retry import StartOver, with_retries

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("adownload")

#: The total timeout of a download without one.
_UNBOUNDED = contextlib.nullcontext()


class Transfer:
    """The state of one download while it runs; `run()` does it and returns its `Outcome`."""

    def __init__(self, settings: Settings, request: Request, dest: Path | None) -> None:
        self._settings = settings
        self.request = request
        # What outcomes, events, errors and logs name: the URL without its userinfo. Only the
        # request itself (the caller's own object) holds the URL as given.
        self.url = redact(str(request.url))
        self.options = options = settings.options.for_request(request)
        self.timeout = options.timeout
        self.existing = options.existing
        self.max_size = options.max_size
        self._dest = dest
        self._resume = options.resume and not options.decode_content
        # The final path, the .part and its state: everything this download does on disk.
        self.target = target = Target(
            settings, request, self.url, self.existing, resume=self._resume
        )
        self.started = time.monotonic()
        # What the outcome reports.
        self.status: int | None = None
        self.final_url: str | None = None
        self.etag: str | None = None  # validators of the answer that produced the file
        self.last_modified: str | None = None
        #: The file's size when no body says it (skipped, checked, complete on hand).
        self._size: int | None = None
        # Handed down to the receiver and the segments, which add what they learn to its facts.
        self.download = Download(
            self.url, request, target, self.timeout, self.started,
            Exchanges(settings, request, options), settings.emit,
        )  # fmt: skip
        self.facts = self.download.facts
        # Where the bytes go, and what they must match.
        self.receiver = Receiver(self.download, settings, options)

    @property
    def size(self) -> int:
        """Bytes of the file on hand (what the outcome reports as its size)."""
        if self._size is not None:
            return self._size
        meter = self.receiver.meter
        return 0 if meter is None else meter.position

    def outcome(
        self, error: DownloadError | None = None, *, skipped: Path | None = None
    ) -> Outcome:
        """The outcome so far: of a failure (`error`), of a skip (the file `skipped` left in
        place), or of the file saved."""
        return Outcome(
            url=self.url,
            request=self.request,
            path=skipped or self.target.path,
            error=error,
            status=self.status,
            size=self.size,
            skipped=skipped is not None,
            final_url=self.final_url,
            elapsed=time.monotonic() - self.started,
            attempts=self.facts.attempts,
            resumed_from=self.facts.resumed_from,
            etag=self.etag,
            last_modified=self.last_modified,
            replaced=self.target.replaced and error is None and not skipped,
            sources=tuple(self.receiver.served.items()),
        )

    # --- the whole download ---------------------------------------------------------------

    async def run(self) -> Outcome:
        """Download the file; raise a `DownloadError` when it fails for good."""
        request = self.request
        check_credentials(request, self._settings.headers, self.url, auth=self.options.auth)
        try:
            try:
                if request.check_only:
                    pass  # no file is written, or looked at
                elif request.sink is None:
                    if request.path is not None:
                        target = Path(request.path)
                        places.ensure_directory(self._settings, target.parent, self.url)
                        await self.target.claim(target)
                    elif not self.options.content_disposition:
                        name = _files.name_from_url(request.parsed_url)
                        directory = places.directory(self._settings, request, self._dest, self.url)
                        await self.target.claim(places.join(directory, name, self.url))
                    # else: the name comes with the first answer, see _receive.
                    await self.target.continue_final()
                await self._with_total_timeout()
            finally:
                await self.target.release()
        except Skipped as skip:
            self._size = 0
            return self.outcome(skipped=skip.path)
        return self.outcome()

    async def _with_total_timeout(self) -> None:
        limit = self.timeout.total
        total = None if limit is None else asyncio.timeout(limit)
        sink = self.request.sink
        try:
            async with _UNBOUNDED if total is None else total:
                await self._attempt_all()
            if sink is not None:
                await self.receiver.close(sink)
        except TimeoutError as exc:
            if sink is not None:
                await close_quietly(sink)
            if total is not None and total.expired():
                raise TotalTimeout(
                    f"download took longer than {limit}s: {self.url}",
                    url=self.url,
                    phase="total",
                    seconds=limit,
                ) from exc
            raise
        except BaseException:
            if sink is not None:
                await close_quietly(sink)
            raise

    async def _attempt_all(self) -> None:
        """Try the URL and its mirrors, retrying as the `Retry` policy says."""
        urls = [self.request.parsed_url, *self.request.parsed_mirrors]

        facts = self.facts

        async def attempt(index: int) -> None:
            while True:
                facts.attempts += 1
                try:
                    await self._attempt(urls[index])
                    return
                except StartOver:
                    log.info("starting %s over from the first byte", self.url)

        await with_retries(
            attempt,
            policy=self.options.retry,
            sources=len(urls),
            started=self.started,
            on_retry=lambda error, delay: self.download.retrying(
                "attempt", error, delay, new=False
            ),
        )

    # --- one attempt ----------------------------------------------------------------------

    async def _attempt(self, url: URL) -> None:
        plan = self._plan(url)
        # A mirror on another origin gets none of the credentials given for the URL's.
        plan.foreign = plan.foreign or not same_origin(url, self.request.parsed_url)
        exchange = self.download.exchanges(url)
        timeout = self.timeout
        async with (
            self._settings.limiter.slot(url),
            self.download.watchdog(grace=timeout.connect or 0.0) as idle,
        ):
            with exchange.errors(self.url, read=timeout.read):
                try:
                    answer, body = await exchange.open(plan, idle, url=self.url)
                except HTTPStatusError as exc:
                    self.status = exc.status
                    if exc.status == 304:
                        self._not_modified(plan)
                    raise
                except FTPReplyError as exc:
                    self.status = exc.code
                    raise
                if self.request.check_only:
                    self._checked(answer)
                    await body.close(reuse=False)
                    return
                try:
                    await self._receive(answer, body, plan, idle)
                except BaseException:
                    await body.close(reuse=False)
                    raise
                await body.close(reuse=body.at_eof())

    def _commit(self) -> None:
        path = self.target.commit()
        if self.existing is Existing.NEWER and self.last_modified:
            # As wget -N: the file takes the server's time, which the next run sends back.
            _files.set_modified(path, self.last_modified)

    def _not_modified(self, plan: Plan) -> None:
        """A 304 (or, under `Existing.NEWER`, a copy that is not newer): the file here is
        current, so a `.part` of ours is stale; with `Existing.NEWER` (which asked for it) the
        download is skipped."""
        self.target.discard()
        if plan.if_modified_since is not None and self.target.path is not None:
            raise Skipped(self.target.path)

    def _checked(self, answer: Answer) -> None:
        """`check_only`: the answer is all the outcome needs; the body is never read."""
        self.status = answer.status
        self.final_url = redact(str(answer.final_url))
        self.etag, self.last_modified = answer.etag, answer.last_modified
        self._size = answer.length or 0

    def _plan(self, url: URL) -> Plan:
        state = self.target.state
        ranges = self._resume and url not in self.facts.no_ranges
        if ranges and state is not None and state.sparse and state.length:
            if url not in self.facts.no_segments:
                return plan_for(url, state, have=0, ranges=True)
            start = self.target.to_prefix()  # now a prefix, continued in one stream
            log.info("%s: continuing from byte %d in one stream", self.url, start)
        have = self.receiver.bytes_on_hand() if ranges and state is not None else 0
        plan = plan_for(url, state, have=have, ranges=ranges)
        if not plan.ranged:
            plan.if_modified_since = self.target.since
        return plan

    async def _receive(self, answer: Answer, body: Body, plan: Plan, idle: IdleTimeout) -> None:
        self.status = answer.status
        self.final_url = redact(str(answer.final_url))
        self.etag, self.last_modified = answer.etag, answer.last_modified
        fresh = answer.verdict is Verdict.WHOLE
        since = plan.if_modified_since or asked_since(self.request.headers)
        if since is not None and fresh and not newer(answer.last_modified, since):
            # A 200 all the same (nginx's default `if_modified_since exact` answers so unless
            # the dates are equal): the copy here stands, as wget -N and curl -z decide.
            self._not_modified(plan)
            raise HTTPStatusError(
                f"{self.url} is not newer than {since}: not modified",
                url=self.url,
                status=304,
                reason="Not Modified (by date)",
            )
        offset, length = self._judge(answer, plan)
        self._check_length(answer, length)
        if offset is None:
            await self._finish_complete()
            return
        # `fresh`: a whole body, not the continuation of bytes on hand (a partial answer may
        # start at 0: the first hole of a segmented part).
        if self.request.sink is None and self.target.part is None:
            # Content-Disposition naming: the target is known only now.
            name = answer.name or _files.name_from_url(self.request.parsed_url)
            directory = places.directory(self._settings, self.request, self._dest, self.url)
            await self.target.claim(places.join(directory, name, self.url), resume=False)
        if self.max_size is not None and length is not None and length > self.max_size:
            self.receiver.discard()
            raise SizeLimitError(
                f"{self.url} is {length} bytes, over the limit of {self.max_size}",
                url=self.url,
                limit=self.max_size,
            )
        if fresh:
            # A fresh body starts: remember its validators when it can be resumed later.
            state = validators_of(self.request, answer, length)
            self.receiver.sink_size = 0
            # Kept for later only when a later request could continue it: validators for
            # If-Range, and a server that says it serves ranges (one that does not, as
            # `python -m http.server`, would send the whole file again).
            resumable = self._resume and state.resumable and answer.ranges
            self.target.start_fresh(state if resumable else None, length)
        # A probe re-reads the last byte of a part that is already whole.
        self.facts.resumed_from = offset + 1 if plan.probe else offset
        await self.receiver.receive(answer, body, plan, offset, length, fresh=fresh, idle=idle)
        if self.request.sink is None:
            self._commit()
            log.debug("saved %s (%d bytes)", self.target.path, self.size)

    def _judge(self, answer: Answer, plan: Plan) -> tuple[int | None, int | None]:
        """Carry out `_engine.plan.judge`: (where the body goes, the whole file's length); offset
        None when the bytes on hand are the whole, current file."""
        judgement = judge(answer, plan, self.target.state)
        if self.target.continued is not None:
            self._judge_continued(answer, judgement)
        match judgement.next:
            case Next.REFUSE:
                self.facts.no_ranges.add(plan.url)
                raise RemoteProtocolError(answer.problem, url=self.url)
            case Next.START_OVER:
                self.receiver.discard()
                raise StartOver
            case Next.COMPLETE:
                return None, None
        if judgement.discard:
            log.info("%s: the server sent the whole file; starting over", self.url)
            self.receiver.discard()
        return judgement.offset, judgement.length

    def _check_length(self, answer: Answer, length: int | None) -> None:
        """The file's length as the answer says it, against what the request knows of it
        (`size`, the pieces): another length is another file, and this URL does not serve
        it (the next mirror may). Nothing on hand is touched."""
        request = self.request
        if length is None:
            return
        if request.size is not None and length != request.size:
            problem = f"it is {length} bytes, not the {request.size} expected"
        elif request.pieces is not None:
            problem = request.pieces.problem_with(length) or ""
        else:
            return
        if problem:
            shown = redact(str(answer.final_url))
            raise FileMismatchError(f"{shown} does not serve this file: {problem}", url=self.url)

    def _judge_continued(self, answer: Answer, judgement: Judgement) -> None:
        """`Existing.CONTINUE`: carry out `continued_problem`; the file is skipped when it is
        whole already, and left as it was when it cannot be continued."""
        size, path = self.target.continued, self.target.path
        assert size is not None
        assert path is not None
        if judgement.next is Next.COMPLETE:
            self.receiver.discard()
            raise Skipped(path)  # already the server's length
        why = continued_problem(
            answer, judgement, size, verified=self.request.expected_digest is not None
        )
        if why is None:
            return
        self.receiver.discard()
        raise DestinationExistsError(
            f"{path} exists and is not continued: {why}", url=self.url, path=path
        )

    async def _finish_complete(self) -> None:
        """The bytes on hand are the whole current file: verify the checksum and commit."""
        self._size = self.facts.resumed_from = self.receiver.bytes_on_hand()
        await self.receiver.verify_on_hand(self._size)
        if self.request.sink is None:
            self._commit()
