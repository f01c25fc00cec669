"""The command line's flags: parsing, checking, and what each one means to the library.

Every check that can fail on the user's input happens here, before anything is downloaded, and
fails with one `UsageError` line. `downloader_keywords` is the one table from options to
`Downloader` keywords: a new library option is one flag in `build_parser` and one line there.

Flag names follow the tools people already know: aria2c for `-j -x -s -k -c`, `--max-tries`,
`--retry-wait`, `--lowest-speed-limit`; wget for `-P -t -T -U --no-clobber --tries`; curl for
`-H -m -A --max-filesize --max-redirs --retry --compressed`. Where two tools give one letter
different meanings (curl's `-s` is "silent", aria2c's is "split"), aria2c wins: it is the tool
adownload most resembles.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypedDict

from ._config import Existing, Limits, Retry, Segments, Timeout
from ._exceptions import InvalidRequestError
from ._models import Request
from ._verify import parse_checksum
from ._version import __version__

__all__ = [
    "Options",
    "UsageError",
    "downloader_keywords",
    "parse_options",
    "parse_rate",
    "parse_size",
]

PROG = "adownload"
#: What `-i` takes to read the input from standard input.
STDIN = "-"

_DEFAULT_LIMITS = Limits()
_DEFAULT_TIMEOUT = Timeout()
_DEFAULT_RETRY = Retry()
_DEFAULT_SEGMENTS = Segments()
_DEFAULT_MAX_REDIRECTS = 10

# RFC 9110 field names are tokens.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# 10M, 1.5m, 500K, 2G, 300 (bytes); binary units (K = 1024) as wget, curl and aria2c read them.
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_EXAMPLES = f"""\
examples:
  {PROG} https://www.python.org/ftp/python/doc/3.13.2/python-3.13.2-docs-html.zip
  {PROG} -d docs/ URL1 URL2 URL3            three files into docs/, in parallel
  {PROG} -o docs.zip URL                    one file under a name of your choice
  {PROG} --checksum sha256:HEX URL          fail (and keep nothing) unless the digest matches
  {PROG} -i urls.txt -j 16 -x 4             a list of URLs, 16 at a time, 4 per host
  {PROG} -s 8 --limit-rate 10M URL          8 connections for one big file, 10 MiB/s in all
  {PROG} --tries 10 --retry-wait 2 URL      10 attempts, waiting 2 s, 4 s, 8 s... in between
  producer | {PROG} -i -                    URLs from standard input, as they come
  {PROG} --json -i urls.txt | jq .          one JSON object per event
  {PROG} mirror URL DIR --include '*.zip'   keep DIR a copy of a directory index (see
                                            '{PROG} mirror --help')

input files (-i) hold one URL per line; blank lines and # comments are ignored; several URLs
on one line (separated by spaces or tabs) are mirrors of one file; indented lines under a URL
set options for it, as aria2c writes them (out=, dir=, checksum=, header=, split=):
  https://example.org/a.iso https://mirror.example.net/a.iso
    dir=isos
    out=a-2024.iso
    checksum=sha-256=<64 hex digits>

exit status: 0 every file is in place (skipped ones count), 1 some failed, 2 bad usage,
130 interrupted.

continuing: a download that is interrupted (Ctrl-C) or fails keeps its bytes in NAME.part
when the server allows resuming (ETag or Last-Modified, and ranges); running the same command
again continues each .part where it stopped and skips the files already complete. That is
--continue, on by default; --no-continue discards .part files and starts them over. A file
under its final name is always complete: it is skipped (see --overwrite to fetch it again).

Sizes and rates take K, M, G suffixes (1K = 1024 bytes). Proxies come from http_proxy,
https_proxy and no_proxy, and credentials from ~/.netrc, as for curl and wget.
"""


class UsageError(Exception):
    """The command line cannot be run as given; the message is the one line to show."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line saying what is wrong reads better.
        raise UsageError(message)


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, checked. `requests` are the URLs given as arguments."""

    requests: tuple[Request, ...]
    inputs: tuple[str, ...]
    dest: Path
    limits: Limits
    timeout: Timeout
    retry: Retry
    segments: Segments
    existing: Existing
    headers: dict[str, str]
    content_disposition: bool
    resume: bool
    max_size: int | None
    max_redirects: int
    decode_content: bool
    quiet: bool
    json: bool
    bars: bool
    #: For the command's TCP connector: True checks certificates against the system's
    #: authorities, False checks nothing, a context checks against the authorities it holds.
    tls: ssl.SSLContext | bool = True


class DownloaderKeywords(TypedDict):
    dest: Path
    limits: Limits
    timeout: Timeout
    retry: Retry
    segments: Segments
    existing: Existing
    headers: dict[str, str]
    content_disposition: bool
    resume: bool
    max_size: int | None
    max_redirects: int
    decode_content: bool


def downloader_keywords(options: Options) -> DownloaderKeywords:
    """The `Downloader` keywords the options stand for."""
    return {
        "dest": options.dest,
        "limits": options.limits,
        "timeout": options.timeout,
        "retry": options.retry,
        "segments": options.segments,
        "existing": options.existing,
        "headers": options.headers,
        "content_disposition": options.content_disposition,
        "resume": options.resume,
        "max_size": options.max_size,
        "max_redirects": options.max_redirects,
        "decode_content": options.decode_content,
    }


# --- values -------------------------------------------------------------------------------


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of {least} or more, not {text!r}"
        )
    return value


def _count(text: str) -> int:
    return _whole(text, 1)


def _count0(text: str) -> int:
    return _whole(text, 0)


def _tries(text: str) -> int:
    if text.strip() == "0":
        # wget and aria2c read 0 as "forever"; a download that can never fail for good would
        # never let the command end, so say so instead of guessing a number.
        raise argparse.ArgumentTypeError(
            "0 (try forever) is not supported: give the number of attempts, for example 100"
        )
    return _whole(text, 1)


def _number(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        least = "0 or more" if zero else "above 0"
        raise argparse.ArgumentTypeError(f"expected a number of seconds {least}, not {text!r}")
    return value


def _seconds(text: str) -> float:
    return _number(text, zero=False)


def _seconds0(text: str) -> float:
    return _number(text, zero=True)


def parse_size(text: str) -> int:
    """Bytes from `300`, `64K`, `1.5M`, `2G` or `1T` (binary units, case-insensitive, an
    optional `B` or `iB`); raise ValueError for anything else, a negative number included."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected a size such as 500K, 10M or 2G, not {text!r}")
    value = float(match[1]) * _UNITS[match[2].lower()]
    if not math.isfinite(value):
        raise ValueError(f"the size {text!r} is too large")
    return math.floor(value)


def parse_rate(text: str) -> int:
    """Bytes per second from `10M` and the like (see `parse_size`); it must be above 0."""
    rate = parse_size(text.removesuffix("/s"))
    if rate <= 0:
        raise ValueError(f"a rate must be at least 1 byte per second, not {text!r}")
    return rate


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> int:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _segment_size(text: str) -> int:
    size = _size(text)
    if size < 1:
        raise argparse.ArgumentTypeError(f"expected a size of at least 1 byte, not {text!r}")
    return size


def _checksum(text: str) -> str:
    try:
        parse_checksum(text)
    except InvalidRequestError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not _TOKEN.fullmatch(name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', not {text!r}")
    if any(ch in value for ch in "\r\n\x00"):
        raise argparse.ArgumentTypeError(f"a header value cannot hold a line break: {text!r}")
    return name, value.strip()


def _user_agent(text: str) -> tuple[str, str]:
    return _header(f"User-Agent: {text}")


# --- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Download files over HTTP(S), many at a time; never a truncated file.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="http or https URLs to download")
    _what_and_where(parser)
    _existing_files(parser)
    _connections(parser)
    _retries(parser)
    _output(parser)
    parser.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    return parser


def _what_and_where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("what and where")
    where.add_argument(
        "-i",
        "--input-file",
        dest="inputs",
        action="append",
        default=[],
        metavar="FILE",
        help="read URLs from FILE, one a line ('-' for standard input); may be repeated",
    )
    where.add_argument(
        "-d",
        "-P",
        "--dir",
        "--directory-prefix",
        dest="dest",
        default=".",
        metavar="DIR",
        help="save files into DIR, created if needed (default: the current directory)",
    )
    where.add_argument(
        "-o",
        "-O",
        "--output",
        "--out",
        "--output-document",
        dest="output",
        metavar="NAME",
        help="save the one URL given as NAME (inside DIR) instead of the name in the URL",
    )
    where.add_argument(
        "--content-disposition",
        action="store_true",
        help="name files as the server's Content-Disposition header says, made safe",
    )
    where.add_argument(
        "--checksum",
        type=_checksum,
        metavar="ALGO:HEX",
        help="the expected digest of the one URL given (sha256:HEX, sha-256=HEX, md5:HEX...);"
        " a mismatch fails the download and keeps nothing",
    )
    where.add_argument(
        "--max-filesize",
        type=_size,
        metavar="SIZE",
        help="refuse files larger than SIZE (e.g. 2G), before or while downloading them",
    )
    where.add_argument(
        "-c",
        "--continue",
        dest="resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue the .part files of interrupted or failed downloads where they stopped"
        " (on by default; --no-continue discards them and starts over)",
    )


def _existing_files(parser: argparse.ArgumentParser) -> None:
    existing = parser.add_argument_group(
        "files that already exist", "(give one; the default is --skip-existing)"
    ).add_mutually_exclusive_group()
    existing.add_argument(
        "--skip-existing",
        "--no-clobber",
        "-nc",
        dest="existing",
        action="store_const",
        const="skip",
        help="leave them alone and do not download them again",
    )
    existing.add_argument(
        "--overwrite",
        "--allow-overwrite",
        dest="existing",
        action="store_const",
        const="overwrite",
        help="replace them once the new file is complete",
    )
    existing.add_argument(
        "--rename",
        "--auto-file-renaming",
        dest="existing",
        action="store_const",
        const="rename",
        help="keep them and save the new file as 'name (1).ext'",
    )
    existing.add_argument(
        "--fail-if-exists",
        dest="existing",
        action="store_const",
        const="error",
        help="count the download as failed",
    )
    existing.add_argument(
        "--existing",
        dest="existing",
        choices=[policy.value for policy in Existing],
        help="the same, as one option",
    )


def _connections(parser: argparse.ArgumentParser) -> None:
    network = parser.add_argument_group("connections, speed and time limits")
    add_shared_option(network, "jobs")
    add_shared_option(network, "per_host")
    network.add_argument(
        "-s",
        "--split",
        dest="split",
        type=_count,
        default=_DEFAULT_SEGMENTS.count,
        metavar="N",
        help="download one large file over up to N connections, when the server allows ranges"
        " (default: %(default)s; 1 switches splitting off)",
    )
    network.add_argument(
        "-k",
        "--min-split-size",
        dest="min_split_size",
        type=_segment_size,
        default=_DEFAULT_SEGMENTS.min_size,
        metavar="SIZE",
        help="never split a file into pieces smaller than SIZE (default: 4M)",
    )
    network.add_argument(
        "--limit-rate",
        "--max-overall-download-limit",
        dest="rate",
        type=_rate,
        metavar="RATE",
        help="download at most RATE bytes per second in all, e.g. 500K or 10M (default: no limit)",
    )
    add_shared_option(network, "connect_timeout")
    add_shared_option(network, "read_timeout")
    network.add_argument(
        "-m",
        "--max-time",
        type=_seconds,
        default=_DEFAULT_TIMEOUT.total,
        metavar="SEC",
        help="give up on a file that takes longer than SEC seconds in all (default: no limit)",
    )
    network.add_argument(
        "--lowest-speed-limit",
        "--speed-limit",
        "-Y",
        dest="min_speed",
        type=_rate,
        metavar="RATE",
        help="treat a download slower than RATE bytes per second as stalled, and retry it",
    )
    network.add_argument(
        "--speed-time",
        "-y",
        dest="speed_window",
        type=_seconds,
        default=_DEFAULT_TIMEOUT.min_speed_window,
        metavar="SEC",
        help="the seconds over which --lowest-speed-limit is measured (default: %(default)s)",
    )
    add_shared_option(network, "headers")
    network.add_argument(
        "-U",
        "-A",
        "--user-agent",
        dest="user_agent",
        type=_user_agent,
        metavar="AGENT",
        help="send AGENT as the User-Agent header",
    )
    network.add_argument(
        "--max-redirs",
        "--max-redirect",
        dest="max_redirects",
        type=_count0,
        default=_DEFAULT_MAX_REDIRECTS,
        metavar="N",
        help="follow at most N redirects per request (default: %(default)s)",
    )
    add_shared_option(network, "insecure")
    add_shared_option(network, "cafile")
    network.add_argument(
        "--compressed",
        action="store_true",
        help="ask for a compressed transfer and save it decoded (such downloads do not resume)",
    )


def _retries(parser: argparse.ArgumentParser) -> None:
    retries = parser.add_argument_group(
        "retries",
        "(connection errors, timeouts, broken bodies and statuses 408, 429, 5xx are retried)",
    )
    attempts = retries.add_mutually_exclusive_group()
    attempts.add_argument(
        "-t",
        "--tries",
        "--max-tries",
        dest="tries",
        type=_tries,
        metavar="N",
        help=f"try each file N times in all (default: {_DEFAULT_RETRY.attempts})",
    )
    attempts.add_argument(
        "--retry",
        dest="retries",
        type=_count0,
        metavar="N",
        help="retry each file N times after the first attempt (the same as --tries N+1)",
    )
    retries.add_argument(
        "--retry-wait",
        "--waitretry",
        "--retry-delay",
        dest="retry_wait",
        type=_seconds0,
        default=_DEFAULT_RETRY.backoff,
        metavar="SEC",
        help="wait SEC seconds before the first retry, twice as long before each next one, up"
        f" to {_DEFAULT_RETRY.max_delay:.0f} s or SEC (default: %(default)s);"
        " a server's Retry-After wins",
    )
    retries.add_argument(
        "--retry-max-time",
        dest="retry_budget",
        type=_seconds,
        metavar="SEC",
        help="start no retry that would begin more than SEC seconds after the first attempt",
    )


def _output(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "output",
        "(on a terminal: live progress bars on standard error; otherwise one line per file)",
    )
    output = group.add_mutually_exclusive_group()
    output.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (exit status says)"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per event on standard output (JSON Lines)",
    )
    group.add_argument(
        "--no-progress",
        dest="bars",
        action="store_false",
        help="print one line per file even on a terminal, no bars",
    )


# --- checking it all ----------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse and check the command line; raise `UsageError` with one line if it is wrong."""
    args = build_parser().parse_args(argv)
    urls: list[str] = args.urls
    inputs: list[str] = args.inputs
    if not urls and not inputs:
        raise UsageError("no URLs given: pass URLs, or a file of URLs with -i (see --help)")
    dest = Path(args.dest)
    _check_directory(dest)
    pairs: list[tuple[str, str]] = args.headers
    if args.user_agent is not None:
        pairs = [*pairs, args.user_agent]
    headers = _headers(pairs)

    single = len(urls) == 1 and not inputs
    for flag, value in (("-o/--output", args.output), ("--checksum", args.checksum)):
        if value is not None and not single:
            where = "out=NAME" if flag.startswith("-o") else "checksum=ALGO:HEX"
            raise UsageError(
                f"{flag} is for one file, so it takes exactly one URL"
                f" (in an input file, use '{where}' under each URL)"
            )
    path = None
    if args.output is not None:
        output: str = args.output
        if not output or output.endswith(("/", os.sep)):
            raise UsageError(
                f"-o/--output must name a file, not {output!r} (use -d for a directory)"
            )
        path = dest / output
        if path.is_dir():
            raise UsageError(f"-o/--output: {path} is a directory (use -d for a directory)")
        _check_directory(path.parent)

    requests = []
    for url in urls:
        try:
            requests.append(Request(url, path, checksum=args.checksum))
        except InvalidRequestError as exc:
            raise UsageError(str(exc)) from None

    tls = tls_context(args.insecure, args.cafile)
    tries: int = _DEFAULT_RETRY.attempts
    if args.tries is not None:
        tries = args.tries
    elif args.retries is not None:
        tries = args.retries + 1
    wait: float = args.retry_wait
    try:
        return Options(
            requests=tuple(requests),
            inputs=tuple(inputs),
            dest=dest,
            limits=Limits(max_transfers=args.jobs, max_per_host=args.per_host, rate=args.rate),
            timeout=Timeout(
                connect=args.connect_timeout,
                read=args.read_timeout,
                total=args.max_time,
                min_speed=args.min_speed,
                min_speed_window=args.speed_window,
            ),
            retry=Retry(
                attempts=tries,
                backoff=wait,
                max_delay=max(_DEFAULT_RETRY.max_delay, wait),
                budget=args.retry_budget,
            ),
            segments=Segments(count=args.split, min_size=args.min_split_size),
            existing=Existing(args.existing or Existing.SKIP.value),
            headers=headers,
            content_disposition=args.content_disposition,
            resume=args.resume,
            max_size=args.max_filesize,
            max_redirects=args.max_redirects,
            decode_content=args.compressed,
            quiet=args.quiet,
            json=args.json,
            bars=args.bars,
            tls=tls,
        )
    except (TypeError, ValueError) as exc:  # a check of the library's that ours did not make
        raise UsageError(str(exc)) from None


def tls_context(insecure: bool, cafile: str | None) -> ssl.SSLContext | bool:
    """aiohttp's `ssl=` for the TLS flags: the system's authorities, FILE's, or none checked."""
    if insecure and cafile is not None:
        raise UsageError("--no-check-certificate and --ca-certificate contradict each other")
    if insecure:
        return False
    if cafile is None:
        return True
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"--ca-certificate: cannot load {cafile}: {why}") from None


def _check_directory(dest: Path) -> None:
    """Refuse a destination that is, or lies below, something other than a directory."""
    for path in (dest, *dest.parents):
        if path.exists():
            if not path.is_dir():
                raise UsageError(f"the destination {dest} is not a directory: {path} is a file")
            return
        if path.is_symlink():
            raise UsageError(f"the destination {dest} goes through a broken link at {path}")


def _headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name.lower() in seen:
            raise UsageError(
                f"the header {name!r} is given twice; give it once, with every value"
                f" (for example '{name}: a, b')"
            )
        seen[name.lower()] = name
        headers[name] = value
    return headers


#: Options that `adownload` and `adownload mirror` share: flags and argparse keywords.
_SHARED_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "jobs": (
        ("-j", "--jobs", "--max-concurrent-downloads"),
        {
            "dest": "jobs",
            "type": _count,
            "default": _DEFAULT_LIMITS.max_transfers,
            "metavar": "N",
            "help": "download N files at once in all (default: %(default)s)",
        },
    ),
    "per_host": (
        ("-x", "--max-connection-per-server", "--max-per-host"),
        {
            "dest": "per_host",
            "type": _count,
            "default": _DEFAULT_LIMITS.max_per_host,
            "metavar": "N",
            "help": "open at most N connections to one host (default: %(default)s)",
        },
    ),
    "connect_timeout": (
        ("--connect-timeout",),
        {
            "type": _seconds,
            "default": _DEFAULT_TIMEOUT.connect,
            "metavar": "SEC",
            "help": "give up connecting after SEC seconds (default: %(default)s)",
        },
    ),
    "read_timeout": (
        ("-T", "--read-timeout", "--timeout"),
        {
            "dest": "read_timeout",
            "type": _seconds,
            "default": _DEFAULT_TIMEOUT.read,
            "metavar": "SEC",
            "help": "give up when no byte arrives for SEC seconds (default: %(default)s)",
        },
    ),
    "insecure": (
        ("--no-check-certificate", "--insecure"),
        {
            "dest": "insecure",
            "action": "store_true",
            "help": "do not check the server's TLS certificate (for a test server; never on the "
            "internet)",
        },
    ),
    "cafile": (
        ("--ca-certificate", "--cacert"),
        {
            "dest": "cafile",
            "metavar": "FILE",
            "help": "trust the certificate authorities in FILE (PEM) instead of the system's",
        },
    ),
    "headers": (
        ("-H", "--header"),
        {
            "dest": "headers",
            "action": "append",
            "type": _header,
            "default": [],
            "metavar": "'NAME: VALUE'",
            "help": "send this request header with every request; may be repeated",
        },
    ),
}


def add_shared_option(group: argparse._ActionsContainer, name: str) -> None:
    """Add an option that `adownload` and `adownload mirror` share, spelt the same in both."""
    flags, keywords = _SHARED_OPTIONS[name]
    group.add_argument(*flags, **keywords)
