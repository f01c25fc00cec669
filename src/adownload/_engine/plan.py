"""What to ask for next, and what an answer means for the bytes on hand: pure decisions,
unit-tested without a socket. `Transfer` carries them out (truncating, discarding, retrying).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from yarl import URL

from .._protocols.base import Answer, Plan, Verdict

if TYPE_CHECKING:
    from .._disk.state import PartState
    from .._model.config import Segments


def plan_for(url: URL, state: PartState | None, *, have: int, ranges: bool) -> Plan:
    """The request for `url`, given the part's `state` and the `have` bytes on hand (a prefix;
    unused for a sparse part). `ranges`: whether ranges may be asked of this URL at all.

    >>> from adownload._disk.state import PartState
    >>> state = PartState("http://h/f", 100, '"v1"', None)
    >>> plan = plan_for(URL("http://h/f"), state, have=40, ranges=True)
    >>> plan.offset, plan.stop, plan.if_range
    (40, None, '"v1"')
    """
    if state is None or not ranges:
        return Plan(url, 0)
    if_range = state.if_range()
    length = state.length
    if state.sparse and length:
        # A segmented part: ask for its first hole; the segments then fill the others.
        missing = state.missing()
        if missing and missing[0] != (0, length):
            start, end = missing[0]
            stop = None if end == length else end - 1
            return Plan(url, start, stop=stop, if_range=if_range, length=length)
        have = 0 if missing else length
    if length is not None and have > length:
        # More bytes than the file has (a body that ran past its length): no prefix of this
        # file, so never complete. A fresh body from byte 0 replaces them.
        return Plan(url, 0)
    if length is not None and have >= length > 0:
        # Complete already: ask for the last byte only, to learn whether it is still current.
        last = length - 1
        return Plan(url, last, probe=True, stop=last, if_range=if_range, length=length)
    return Plan(url, have, if_range=if_range, length=length)


def newer(last_modified: str | None, since: str) -> bool:
    """Whether a server's copy with `last_modified` (an HTTP date; None: not said) is newer
    than the local one of `since`: what wget -N and curl -z decide themselves when a server
    answers 200 to If-Modified-Since anyway (nginx's default `if_modified_since exact` does
    unless the dates are equal). Without a date to compare, it may be: fetched.

    >>> newer("Tue, 01 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 10:00:00 GMT")
    False
    >>> newer("Wed, 02 Dec 2026 10:00:00 GMT", "Tue, 01 Dec 2026 10:00:00 GMT")
    True
    """
    if last_modified is None:
        return True
    try:
        theirs, ours = parsedate_to_datetime(last_modified), parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return True
    if theirs.tzinfo is None or ours.tzinfo is None:
        return True
    return theirs > ours


class Next(enum.Enum):
    """What the engine does after an answer."""

    CONTINUE = "continue"  # write the body at `Judgement.offset`
    COMPLETE = "complete"  # the bytes on hand are the whole, current file
    START_OVER = "start over"  # discard the bytes on hand; the next request starts at 0
    REFUSE = "refuse"  # the answer's range cannot be trusted: fail this attempt


@dataclass(frozen=True, slots=True)
class Judgement:
    next: Next
    offset: int = 0  # where the body goes
    length: int | None = None  # the whole file's length, when known
    discard: bool = False  # drop the bytes on hand first (a whole body to a ranged plan)


def judge(answer: Answer, plan: Plan, state: PartState | None) -> Judgement:
    """What `answer` to `plan` means for the part described by `state`."""
    verdict = answer.verdict
    if verdict is Verdict.BAD_RANGE:
        return Judgement(Next.REFUSE)
    if verdict is Verdict.WHOLE:
        # To a ranged plan: the server ignores ranges, or the file changed (If-Range).
        return Judgement(Next.CONTINUE, 0, answer.length, discard=plan.ranged)
    if state is None:  # only a part's state makes a ranged plan
        return Judgement(Next.START_OVER)
    same = state.matches(answer.etag, answer.last_modified)
    if verdict is Verdict.END:
        end = plan.offset + 1 if plan.probe else plan.offset
        return Judgement(Next.COMPLETE if answer.length == end and same else Next.START_OVER)
    if (answer.etag or answer.last_modified) and not same:
        return Judgement(Next.START_OVER)  # another version: never spliced on
    return Judgement(Next.CONTINUE, plan.offset, answer.length)


class SegmentNext(enum.Enum):
    """What a segment's answer means: the facts a segment reports, for the runner to act on."""

    USE = "use"  # the range asked for, of the same file
    START_OVER = "start over"  # the file changed: the bytes on hand are worthless
    RANGES_IGNORED = "ranges ignored"  # the same file, whole: this server ignores ranges
    REFUSED = "refused"  # no usable range: the next attempt is one stream, never spliced


def continued_problem(
    answer: Answer, judgement: Judgement, size: int, *, verified: bool
) -> str | None:
    """`Existing.CONTINUE` with a file of `size` bytes at the final name (not yet the server's
    whole length): None when the answer continues it, from its end, under a checksum
    (`verified`); else why it is not continued (then it stays as it was)."""
    if judgement.next is Next.CONTINUE and not judgement.discard:
        if verified:
            return None
        return (
            f"nothing shows that its {size} bytes are the start of this file: give its"
            " checksum to continue it, or replace it"
        )
    if answer.verdict is Verdict.WHOLE:
        return "the server does not send ranges of it, so only a whole new copy could replace it"
    if answer.length is not None and answer.length < size:
        return f"it is {size} bytes, longer than the server's {answer.length}"
    return "the server's answer to the range does not fit it"


def asked_since(headers: Mapping[str, str] | None) -> str | None:
    """A request's own If-Modified-Since (a mirror's, or a caller's), when it is its only
    condition: with If-None-Match too, a 200 says the ETag changed."""
    if not headers:
        return None
    names = {name.lower(): value for name, value in headers.items()}
    if "if-none-match" in names:
        return None
    return names.get("if-modified-since")


def judge_segment(answer: Answer, validators: PartState) -> SegmentNext:
    """What the answer to a segment's ranged request (with If-Range) means, given the
    `validators` of the file the part belongs to.

    >>> from adownload._disk.state import PartState
    >>> v1, url = PartState("http://h/f", 100, '"v1"', None), URL("http://h/f")
    >>> judge_segment(Answer(Verdict.PARTIAL, url, length=100, etag='"v1"'), v1)
    <SegmentNext.USE: 'use'>
    >>> judge_segment(Answer(Verdict.WHOLE, url, length=100, etag='"v2"'), v1)
    <SegmentNext.START_OVER: 'start over'>
    >>> judge_segment(Answer(Verdict.WHOLE, url, length=100, etag='"v1"'), v1)
    <SegmentNext.RANGES_IGNORED: 'ranges ignored'>
    """
    same = (not answer.etag and not answer.last_modified) or validators.matches(
        answer.etag, answer.last_modified
    )
    verdict = answer.verdict
    if verdict is Verdict.PARTIAL and answer.length is not None:
        return SegmentNext.USE if same else SegmentNext.START_OVER
    if verdict is Verdict.WHOLE:
        # If-Range did its job when the file changed; the same file whole ignores ranges.
        return SegmentNext.RANGES_IGNORED if same else SegmentNext.START_OVER
    return SegmentNext.REFUSED


def mirror_problem(
    answer: Answer, plan: Plan, length: int, validators: PartState | None
) -> str | None:
    """Why a mirror's answer to a segment cannot be used (None: it can): the range asked for,
    of a file of `length` bytes, of the version its earlier answers (`validators`) were."""
    if answer.verdict is Verdict.PARTIAL and answer.length == length:
        if validators is None or validators.matches(answer.etag, answer.last_modified):
            return None
        return "its copy changed during the download"
    if answer.verdict is Verdict.WHOLE:
        return "it answers a range with the whole file"
    if answer.length is not None and answer.length != length:
        return f"it says the file is {answer.length} bytes, not {length}"
    return answer.problem or f"its answer does not fit bytes={plan.offset}-{plan.stop}"


def segments_for(
    segments: Segments,
    answer: Answer,
    plan: Plan,
    *,
    offset: int,
    length: int | None,
    fresh: bool,
    state: PartState | None,
    validators: PartState,
    splittable: bool,
) -> Segments | None:
    """How to split a body over several connections, or None for one stream. `splittable`:
    the download may write out of order at all (a `FileSink`, no decoding, ranges of this URL
    trusted)."""
    if length is None or plan.probe or not splittable:
        return None  # a probe is one byte, confirming a complete part: nothing to split
    if state is not None and state.sparse and not fresh:
        return segments  # the holes of a segmented part: only segments can fill them
    if segments.count < 2 or length - offset < 2 * segments.min_size or not answer.ranges:
        return None
    # Without a strong ETag or a date, If-Range cannot keep a changed file from being
    # spliced together from two versions.
    return segments if validators.resumable else None


def layout_for(
    state: PartState | None, resumed: bool, offset: int, length: int, segments: Segments
) -> tuple[list[tuple[int, int]], int]:
    """The ranges a segmented body must fetch, and the bytes done before: the holes of a
    resumed segmented part, else everything from `offset`."""
    missing = state.missing() if state is not None and resumed else [(offset, length)]
    return missing, length - sum(end - start for start, end in missing)
