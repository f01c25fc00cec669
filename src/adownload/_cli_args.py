"""The command line's flags: parsing, checking, and what each one means to the library.

Every check that can fail on the user's input happens here, before anything is downloaded, and
fails with one `UsageError` line. `downloader_keywords` is the one table from options to
`Downloader` keywords: a new library option (retries, rate limits, ...) is one flag in
`build_parser` and one line there.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypedDict

from ._config import Existing, Limits, Timeout
from ._exceptions import InvalidRequestError
from ._models import Request
from ._version import __version__

__all__ = ["Options", "UsageError", "downloader_keywords", "parse_options"]

PROG = "adownload"
#: What `-i` takes to read the input from standard input.
STDIN = "-"

_DEFAULT_LIMITS = Limits()
_DEFAULT_TIMEOUT = Timeout()

# RFC 9110 field names are tokens.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

_EXAMPLES = f"""\
examples:
  {PROG} https://www.python.org/ftp/python/doc/3.13.2/python-3.13.2-docs-html.zip
  {PROG} -d docs/ URL1 URL2 URL3            three files into docs/, in parallel
  {PROG} -o docs.zip URL                    one file under a name of your choice
  {PROG} -i urls.txt -j 16 -x 4             a list of URLs, 16 at a time, 4 per host
  producer | {PROG} -i -                    URLs from standard input, as they come
  {PROG} --json -i urls.txt | jq .          one JSON object per event

input files (-i) hold one URL per line; blank lines and # comments are ignored, and indented
lines under a URL set options for it, as aria2c writes them:
  https://example.org/a.iso
    dir=isos
    out=a-2024.iso

exit status: 0 every file is in place (skipped ones count), 1 some failed, 2 bad usage,
130 interrupted. Files already complete are skipped by default, so rerunning an interrupted
command continues it. Proxies come from http_proxy, https_proxy and no_proxy, and
credentials from ~/.netrc, as for curl and wget.
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
    existing: Existing
    headers: dict[str, str]
    content_disposition: bool
    quiet: bool
    json: bool


class DownloaderKeywords(TypedDict):
    dest: Path
    limits: Limits
    timeout: Timeout
    existing: Existing
    headers: dict[str, str]
    content_disposition: bool


def downloader_keywords(options: Options) -> DownloaderKeywords:
    """The `Downloader` keywords the options stand for."""
    return {
        "dest": options.dest,
        "limits": options.limits,
        "timeout": options.timeout,
        "existing": options.existing,
        "headers": options.headers,
        "content_disposition": options.content_disposition,
    }


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not _TOKEN.fullmatch(name):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', not {text!r}")
    if any(ch in value for ch in "\r\n\x00"):
        raise argparse.ArgumentTypeError(f"a header value cannot hold a line break: {text!r}")
    return name, value.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Download files over HTTP(S), many at a time; never a truncated file.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="http or https URLs to download")

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
        "--output",
        "--out",
        dest="output",
        metavar="NAME",
        help="save the one URL given as NAME (inside DIR) instead of the name in the URL",
    )
    where.add_argument(
        "--content-disposition",
        action="store_true",
        help="name files as the server's Content-Disposition header says, made safe",
    )

    existing = parser.add_argument_group(
        "files that already exist", "(give one; the default is --skip-existing)"
    ).add_mutually_exclusive_group()
    existing.add_argument(
        "--skip-existing",
        "--no-clobber",
        dest="existing",
        action="store_const",
        const="skip",
        help="leave them alone and do not download them again",
    )
    existing.add_argument(
        "--overwrite",
        dest="existing",
        action="store_const",
        const="overwrite",
        help="replace them once the new file is complete",
    )
    existing.add_argument(
        "--rename",
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

    network = parser.add_argument_group("connections and time limits")
    network.add_argument(
        "-j",
        "--jobs",
        "--max-concurrent-downloads",
        dest="jobs",
        type=_count,
        default=_DEFAULT_LIMITS.max_transfers,
        metavar="N",
        help="download N files at once in all (default: %(default)s)",
    )
    network.add_argument(
        "-x",
        "--max-connection-per-server",
        "--max-per-host",
        dest="per_host",
        type=_count,
        default=_DEFAULT_LIMITS.max_per_host,
        metavar="N",
        help="open at most N connections to one host (default: %(default)s)",
    )
    network.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=_DEFAULT_TIMEOUT.connect,
        metavar="SEC",
        help="give up connecting after SEC seconds (default: %(default)s)",
    )
    network.add_argument(
        "-T",
        "--read-timeout",
        "--timeout",
        dest="read_timeout",
        type=_seconds,
        default=_DEFAULT_TIMEOUT.read,
        metavar="SEC",
        help="give up when no byte arrives for SEC seconds (default: %(default)s)",
    )
    network.add_argument(
        "-m",
        "--max-time",
        type=_seconds,
        default=_DEFAULT_TIMEOUT.total,
        metavar="SEC",
        help="give up on a file that takes longer than SEC seconds in all (default: no limit)",
    )
    network.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="send this request header with every request; may be repeated",
    )

    output = parser.add_argument_group("output").add_mutually_exclusive_group()
    output.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (exit status says)"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per event on standard output (JSON Lines)",
    )
    parser.add_argument("-V", "--version", action="version", version=f"{PROG} {__version__}")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse and check the command line; raise `UsageError` with one line if it is wrong."""
    args = build_parser().parse_args(argv)
    urls: list[str] = args.urls
    inputs: list[str] = args.inputs
    if not urls and not inputs:
        raise UsageError("no URLs given: pass URLs, or a file of URLs with -i (see --help)")
    dest = Path(args.dest)
    _check_directory(dest)
    headers = _headers(args.headers)

    requests = []
    for url in urls:
        try:
            requests.append(Request(url))
        except InvalidRequestError as exc:
            raise UsageError(str(exc)) from None

    if args.output is not None:
        if len(urls) != 1 or inputs:
            raise UsageError(
                "-o/--output names one file, so it takes exactly one URL"
                " (in an input file, use 'out=NAME' under each URL)"
            )
        output: str = args.output
        if not output or output.endswith(("/", os.sep)):
            raise UsageError(
                f"-o/--output must name a file, not {output!r} (use -d for a directory)"
            )
        path = dest / output
        if path.is_dir():
            raise UsageError(f"-o/--output: {path} is a directory (use -d for a directory)")
        requests = [Request(urls[0], path)]

    return Options(
        requests=tuple(requests),
        inputs=tuple(inputs),
        dest=dest,
        limits=Limits(max_transfers=args.jobs, max_per_host=args.per_host),
        timeout=Timeout(connect=args.connect_timeout, read=args.read_timeout, total=args.max_time),
        existing=Existing(args.existing or Existing.SKIP.value),
        headers=headers,
        content_disposition=args.content_disposition,
        quiet=args.quiet,
        json=args.json,
    )


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
