"""An HTTP response read into the engine's `Answer`, in one place: the verdict of its status and
`Content-Range`, its validators, the digests and mirrors it announces, the name it proposes,
and the framing and encodings refused before a byte of the body is used."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import hdrs
from yarl import URL

from ..._model.errors import ContentDecodingError, HTTPStatusError, RemoteProtocolError
from ..._model.names import safe_filename
from ..._model.util import redact, whole_number
from ..._model.verify import Expected, parse_digest_fields, parse_legacy_digest
from ..base import Answer, Plan, Verdict, range_answer, retry_after

if TYPE_CHECKING:
    from ..._model.options import Options


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

#: Statuses whose body is the whole file (a 203 is a 200 from a transforming proxy).
_WHOLE = frozenset({200, 203})
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)


def answer_of(response: aiohttp.ClientResponse, plan: Plan, url: str, options: Options) -> Answer:
    """The one reading of a response's status and headers into the engine's `Answer`."""
    status = response.status
    headers = response.headers
    shown = redact(url)
    answer = Answer(
        Verdict.WHOLE,
        response.url,
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        status=status,
    )
    if status == 206:
        if not plan.ranged:
            raise RemoteProtocolError(
                f"206 Partial Content to a request without Range: {shown}", url=url
            )
        value = headers.get("Content-Range")
        known = range_answer(value, response.content_length, plan.offset, plan.stop, plan.length)
        answer.ranges = True
        if known is None:
            answer.verdict = Verdict.BAD_RANGE
            answer.problem = (
                f"Content-Range {value!r} from {redact(response.url)} does not match the "
                f"range asked for (bytes={plan.offset}-{'' if plan.stop is None else plan.stop}"
                f"{'' if plan.length is None else f'/{plan.length}'})"
            )
            return answer
        answer.verdict = Verdict.PARTIAL
        answer.offset = plan.offset
        answer.length = known[2] if known[2] is not None else plan.length
        answer.announced = response.content_length
    elif status == 416 and plan.ranged:
        match = _UNSATISFIED_RANGE.match(headers.get("Content-Range", ""))
        answer.verdict = Verdict.END
        answer.length = int(match.group(1)) if match else None
        return answer
    elif status in _WHOLE:
        whole = headers.get("Content-Range")
        if (
            whole is not None
            and range_answer(whole, response.content_length, 0, None, None) is None
        ):
            # A tail sent as a 200 is never saved as the file.
            raise RemoteProtocolError(
                f"HTTP {status} with Content-Range {whole!r} from {shown}: not the whole file",
                url=url,
            )
        if options.decode_content:
            _check_decodable(response, url)
        else:
            answer.length = answer.announced = response.content_length
        accept = headers.get("Accept-Ranges", "").lower().split(",")
        answer.ranges = "bytes" in (unit.strip() for unit in accept)
    else:
        # An error, or a 2xx that is no file: 204 No Content, 205, 202 Accepted, ...
        raise status_error(response, url, "no file" if 200 <= status < 300 else "")
    if options.verify_digests and not options.decode_content:
        answer.digests = _digests(headers, partial=status == 206)
        if "Link" in headers:  # aiohttp parses `links` anew on each access
            answer.duplicates = duplicates(response.links.getall("duplicate", ()))
    if options.content_disposition:
        answer.name = _name_from_response(response)
    return answer


def _check_decodable(response: aiohttp.ClientResponse, url: str) -> None:
    """With decode_content, every body is decoded or refused: aiohttp passes an encoding it
    does not know (or a stack of two) through undecoded."""
    value = response.headers.get("Content-Encoding", "").strip().lower()
    if value and value != "identity" and value not in DECODABLE:
        raise ContentDecodingError(
            f"cannot decode Content-Encoding {value!r} from {redact(url)} "
            f"(decodable here: {', '.join(sorted(DECODABLE))})",
            url=url,
        )


def status_error(response: aiohttp.ClientResponse, url: str, why: str = "") -> HTTPStatusError:
    status = response.status
    return HTTPStatusError(
        f"HTTP {status} {response.reason or ''}".rstrip()
        + f" for {redact(url)}"
        + (f": {why}" if why else ""),
        url=url,
        status=status,
        reason=response.reason or "",
        retry_after=retry_after(response.headers.get("Retry-After")),
    )


#: Mirrors taken from one answer's `Link: rel=duplicate` headers at most.
MAX_DUPLICATES = 16


def duplicates(links: Iterable[Mapping[str, str | URL]]) -> tuple[URL, ...]:
    """The mirrors of RFC 6249's `Link: <url>; rel=duplicate; pri=N` headers (as aiohttp
    parses them, absolute), by priority (1 first; none is 999999), http, https or ftp only,
    without userinfo, at most `MAX_DUPLICATES`."""
    ranked = []
    for position, link in enumerate(links):
        url = link.get("url")
        if not isinstance(url, URL) or url.scheme not in ("http", "https", "ftp") or not url.host:
            continue
        if url.raw_user is not None or url.raw_password is not None:
            continue  # a server does not hand out logins for its mirrors
        pri = whole_number(str(link.get("pri", "")))
        priority = pri if pri is not None and 0 < pri < 1_000_000 else 999_999
        ranked.append((priority, position, url.with_fragment(None)))
    ranked.sort(key=lambda entry: entry[:2])
    return tuple(url for _, _, url in ranked[:MAX_DUPLICATES])


def _digests(headers: Mapping[str, str], *, partial: bool) -> list[Expected]:
    """The digests a response announces, each with its scope."""
    expected: list[Expected] = []
    for name, parse, scope in (
        ("Repr-Digest", parse_digest_fields, "full"),
        ("Digest", parse_legacy_digest, "full"),
        ("Content-Digest", parse_digest_fields, "partial" if partial else "full"),
    ):
        value = headers.get(name)
        digests = parse(value) if value else {}
        if digests:
            expected.append((name, digests, scope))
    return expected


def _check_framing(response: aiohttp.ClientResponse, url: str) -> None:
    """Refuse a response whose length is ambiguous: duplicate or malformed Content-Length."""
    lengths = [value for name, value in response.raw_headers if name.lower() == b"content-length"]
    if len(lengths) > 1:
        raise RemoteProtocolError(f"duplicate Content-Length headers from {redact(url)}", url=url)
    if lengths and not lengths[0].strip().isdigit():
        raise RemoteProtocolError(
            f"malformed Content-Length {lengths[0]!r} from {redact(url)}", url=url
        )


def _name_from_response(response: aiohttp.ClientResponse) -> str | None:
    """The safe file name a Content-Disposition header proposes, if any."""
    return name_from_disposition(response.headers.get(hdrs.CONTENT_DISPOSITION))


def name_from_disposition(header: str | None) -> str | None:
    """The safe file name a Content-Disposition header value proposes (aiohttp's parser, as
    `ClientResponse.content_disposition` reads it, then `safe_filename`), or None.

    >>> name_from_disposition('attachment; filename="../../etc/passwd"')
    'passwd'
    """
    if header is None:
        return None
    from aiohttp import multipart

    with warnings.catch_warnings():
        # aiohttp warns about malformed headers; a stranger's header is no reason to warn.
        warnings.simplefilter("ignore")
        _, params = multipart.parse_content_disposition(header)
        filename = multipart.content_disposition_filename(params)
    if not filename:
        return None
    return safe_filename(filename)
