"""A segmented download's shared record (`Job`: the layout, the sources, the piece checks, who
sent what) and what is decided on it: the layout of a body (`plan_job`), the verdict on each
segment's answer (acting on the pure `judge_segment` and `mirror_problem` of `plan.py`), the
piece hashes, and a source dropped. `segmented.py` runs the connections around it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from yarl import URL

from .._disk.state import PartState
from .._model.errors import FileMismatchError, RemoteProtocolError
from .._model.events import SourceDropped
from .._model.pieces import PieceCheck, pieces_failed
from .._model.util import redact
from .._protocols.base import Answer, Plan, Verdict
from .plan import SegmentNext, judge_segment, layout_for, mirror_problem
from .retry import StartOver
from .segments import Layout, Segment
from .sources import Source, Sources

if TYPE_CHECKING:
    from .._model.config import Segments
    from .download import Download

log = logging.getLogger("adownload")

#: With several sources, the pieces of the layout at first: this many `min_size` each.
_SHARE = 4


@dataclass(slots=True, eq=False)
class Job:
    """A segmented download while its connections run."""

    url: URL  # where the first answer's segments go: its final URL
    origin: URL  # the URL the attempt started from, resolved again if `url` expires
    validators: PartState
    layout: Layout
    length: int
    done_before: int  # bytes done by an earlier attempt or run
    #: Where segments come from: the attempt's URL first, then the mirrors that may serve
    #: segments at once (none without a checksum or piece hashes to prove their bytes).
    sources: Sources
    pieces: PieceCheck | None = None
    #: (start, end, source) of each request that ended: who sent which bytes.
    served: list[tuple[int, int, Source]] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    pieces_checked: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def primary(self) -> Source:
        return self.sources.all[0]

    @property
    def several(self) -> bool:
        return len(self.sources.all) > 1


def plan_job(
    download: Download,
    answer: Answer,
    plan: Plan,
    offset: int,
    length: int,
    segments: Segments,
    *,
    validators: PartState,
    mirrors: list[URL],
) -> Job:
    """Lay out the segments of a body at `offset` of a file of `length` bytes: the holes of
    a resumed segmented part, else everything from `offset`; the part's state says so
    from now on. `mirrors`: further URLs that serve segments beside the answer's."""
    target = download.target
    state = target.state
    resumed = state is not None and state.sparse and answer.verdict is Verdict.PARTIAL
    missing, done_before = layout_for(state, resumed, offset, length, segments)
    pieces = download.request.pieces
    align = 1 if pieces is None else pieces.length
    sources = Sources([plan.url, *(url for url in mirrors if url != plan.url)])
    sources.all[0].url = answer.final_url
    cuts = segments.count
    if len(sources.all) > 1:
        # Pieces of a few min_size each: every connection picks its source again soon, so
        # connections move to the fast mirrors within seconds, not after a 1/count share.
        total = sum(end - start for start, end in missing)
        cuts = max(cuts, -(-total // (_SHARE * segments.min_size)))
    layout = Layout(missing, cuts, segments.min_size, align)
    if resumed and state is not None:
        layout.done.extend(state.ranges)
    target.lay_out(layout.ranges())  # the part is segmented from now on
    log.debug("%s: %d bytes in up to %d segments", redact(download.url), length, segments.count)
    return Job(
        answer.final_url, plan.url, validators, layout, length, done_before, sources,
        None if pieces is None else PieceCheck(pieces, length),
    )  # fmt: skip


def credit(job: Job, segment: Segment) -> None:
    """Give the source of `segment`'s request the bytes that arrived since last time."""
    source = segment.source
    if source is None:
        return
    now = time.monotonic()
    job.sources.credit(source, segment.position - segment.credited, now - segment.credited_at)
    segment.credited, segment.credited_at = segment.position, now


def drop(download: Download, job: Job, source: Source, why: str) -> None:
    """Use `source` no more for this file, unless it is the last one left."""
    if source.dropped is not None or len(job.sources.usable) < 2:
        return
    job.sources.drop(source, why)
    shown = redact(str(source.origin))
    log.info("%s: not using %s any more: %s", redact(download.url), shown, why)
    if download.emit is not None:
        download.emit(SourceDropped(download.url, download.request, shown, why))


def check_answer(download: Download, job: Job, answer: Answer, plan: Plan) -> None:
    """Act on the verdict of `judge_segment` on a segment's answer."""
    match judge_segment(answer, job.validators):
        case SegmentNext.USE:
            return
        case SegmentNext.START_OVER:
            if answer.verdict is Verdict.WHOLE:
                # If-Range did its job: the file changed, its bytes on hand are worthless.
                log.info("%s changed during the download; starting over", redact(download.url))
            download.target.discard()
            raise StartOver
        case SegmentNext.RANGES_IGNORED:
            download.facts.no_ranges.add(job.origin)
            raise RemoteProtocolError(
                f"{redact(answer.final_url)} answered a range with the whole file",
                url=download.url,
            )
    # Never spliced in: the next attempt is one stream from the first hole.
    download.facts.no_segments.add(job.origin)
    raise RemoteProtocolError(
        answer.problem
        or f"{redact(answer.final_url)} says the file ends before bytes={plan.offset}-{plan.stop}",
        url=download.url,
    )


def check_mirror(download: Download, job: Job, answer: Answer, plan: Plan, source: Source) -> None:
    """A mirror's answer to a segment (`mirror_problem`); a mirror that fails it is dropped
    for this file (the file's own URL and validators are not in question)."""
    why = mirror_problem(answer, plan, job.length, source.validators)
    if why is None:
        if source.validators is None:
            mine = PartState.of(source.origin, job.length, answer.etag, answer.last_modified)
            source.validators = mine if mine.resumable else None
        return
    drop(download, job, source, why)
    raise FileMismatchError(f"mirror {redact(plan.url)}: {why}", url=download.url)


async def check_pieces(download: Download, job: Job) -> None:
    """Hash the pieces the file now holds whole; a bad one is fetched again, first, and
    the source that sent it (when one source did) gets a strike."""
    checks, pieces = job.pieces, download.request.pieces
    part = download.target.part
    if checks is None or pieces is None or part is None:
        return
    async with job.pieces_checked:
        try:
            bad = await checks.check(part, checks.ready(job.layout.ranges()))
        except OSError as exc:
            raise download.target.storage_error(exc, part) from exc
        for index in bad:
            start, end = checks.span(index)
            senders = _senders(job, start, end)
            log.info(
                "%s: piece %d (bytes %d-%d) is bad; fetching it again",
                redact(download.url), index, start, end - 1,
            )  # fmt: skip
            if len(senders) == 1:
                (sender,) = senders
                if job.sources.strike(sender):
                    drop(download, job, sender, "it sent two bad pieces")
            if checks.failures > 3 + 2 * len(job.sources.all):
                why = f"{checks.failures} pieces failed their hashes, piece {index} last"
                raise pieces_failed(download.url, pieces, index, why)
            checks.invalidate(start, end)
            job.layout.redo(start, end)


def _senders(job: Job, start: int, end: int) -> set[Source]:
    """The sources whose requests delivered bytes of `[start, end)`."""
    senders = {source for a, b, source in job.served if a < end and start < b}
    for segment in job.layout.active:
        if segment.source is not None and segment.since_position < end and start < segment.position:
            senders.add(segment.source)
    return senders
