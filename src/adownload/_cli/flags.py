"""The flags of `adownload`, in the groups `--help` shows.

Flag names follow the tools people already know: aria2c for `-j -x -s -k -c`, `--max-tries`,
`--retry-wait`, `--lowest-speed-limit`; wget for `-P -t -T -U --no-clobber --tries`; curl for
`-H -m -A -L -C - --max-filesize --max-redirs --retry --compressed`; wget for `-N` and
`--spider` too. `-A` is the User-Agent in both commands (curl's meaning; wget's accept list
is `--include`), and a value that looks like a file pattern is refused with that hint. Where
two tools give one letter different meanings, the value decides (`curl_spellings`): `-s 4` is
aria2c's split, `-s URL` curl's silent; `-O NAME` is wget's output, `-O URL` curl's "name it
after the URL"; a group of curl's letters (`-fsSLO`) is curl's.
"""

from __future__ import annotations

import argparse

from .._model.config import Existing
from .._version import __version__
from .network import add_network_flags
from .shared import (
    PROG,
    Parser,
    _checksum,
    _count,
    _count0,
    _rate,
    _seconds,
    _segment_size,
    _size,
)
from .shared_flags import (
    _DEFAULT_MAX_REDIRECTS,
    _DEFAULT_SEGMENTS,
    _DEFAULT_TIMEOUT,
    add_retry_flags,
    add_shared_option,
)

_EXAMPLES = f"""\
examples:
  {PROG} https://www.python.org/ftp/python/doc/3.13.2/python-3.13.2-docs-html.zip
  {PROG} -d docs/ URL1 URL2 URL3            three files into docs/, in parallel
  {PROG} -o docs.zip URL                    one file under a name of your choice
  {PROG} -O - URL | tar -tz                 the file to standard output
  {PROG} -N URL                             only if the server's copy is newer
  {PROG} --spider -i urls.txt               check that the URLs exist; download nothing
  {PROG} --checksum sha256:HEX URL          fail (and keep nothing) unless the digest matches
  {PROG} -i urls.txt -j 16 -x 4             a list of URLs, 16 at a time, 4 per host
  {PROG} -s 8 --limit-rate 10M URL          8 connections for one big file, 10 MiB/s in all
  {PROG} --tries 10 --retry-wait 2 URL      10 attempts, waiting 2 s, 4 s, 8 s... in between
  producer | {PROG} -i -                    URLs from standard input, as they come
  {PROG} --json -i urls.txt | jq .          one JSON object per event
  {PROG} --scheduler tcp://HOST:8786 -i manifest.txt -d /shared/dest
                                            on a Dask cluster (pip install 'adownload[dask]')
  {PROG} mirror URL DIR --include '*.zip'   keep DIR a copy of a directory index (see
                                            '{PROG} mirror --help')
  {PROG} cache list                         the download cache of fetch() (see
                                            '{PROG} cache --help'; prune, --max-size)

input files (-i) hold one URL per line; blank lines and # comments are ignored; several URLs
on one line (separated by spaces or tabs) are mirrors of one file; indented lines under a URL
set options for it, as aria2c writes them (out=, dir=, checksum=, header=, split=):
  https://example.org/a.iso https://mirror.example.net/a.iso
    dir=isos
    out=a-2024.iso
    checksum=sha-256=<64 hex digits>

curl's spellings work as curl users mean them: -O URL (and -LO, -sSLO, -fsSLO) names the
file after the URL, which is the default anyway; -f, -S and -L are what adownload always
does; -s is silent when no number follows it (-s 4 splits, as aria2c's). -o NAME and -O -
are the output name and standard output.

exit status: 0 every file is in place (skipped ones count), 1 some failed, 2 bad usage,
130 interrupted.

continuing: a download that is interrupted (Ctrl-C) or fails keeps its bytes in NAME.part
when the server allows resuming (ETag or Last-Modified, and ranges); running the same command
again continues each .part where it stopped and skips the files already complete. That is
--continue, on by default; --no-continue discards .part files and starts them over. A file
under its final name is always complete: it is skipped (see --overwrite to fetch it again).

Sizes and rates take K, M, G suffixes (1K = 1024 bytes) and are shown in the same units,
named KiB, MiB, GiB. Proxies come from --proxy, else
http_proxy, https_proxy and all_proxy (socks5h://host:1080 works there too), with no_proxy or
--noproxy; logins from --user, else ~/.netrc, as for curl and wget.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Download files over HTTP(S) and FTP, many at a time; never a truncated file.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="http, https or ftp URLs to download (a .meta4 or .metalink URL: the files it lists)",
    )
    _what_and_where(parser)
    _existing_files(parser)
    _connections(parser)
    add_network_flags(parser)
    add_retry_flags(parser)
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
        "-M",
        "--metalink",
        dest="metalinks",
        action="append",
        default=[],
        metavar="FILE",
        help="download the files a Metalink (.meta4, .metalink) lists, each from its mirrors"
        " at once, checking every piece; may be repeated. A URL ending in .meta4 or .metalink"
        " is read as one too",
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
        help="save the one URL given as NAME (inside DIR) instead of the name in the URL;"
        " '-' writes it to standard output",
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
        default=None,
        help="continue the .part files of interrupted or failed downloads where they stopped"
        " (on by default), and a shorter file already at the final name when the server allows"
        " ranges and --checksum vouches for it; --no-continue discards .part files",
    )
    where.add_argument(
        "-C",
        "--continue-at",
        dest="continue_at",
        type=_continue_at,
        metavar="-",
        help="as curl's '-C -': the same as --continue",
    )
    where.add_argument(
        "-N",
        "--timestamping",
        action="store_true",
        help="download a file only when the server's copy is newer than the one here (a"
        " conditional request); saved files take the server's modification time",
    )
    where.add_argument(
        "--spider",
        action="store_true",
        help="check that the URLs exist (status, size, type) and download nothing",
    )


def _continue_at(text: str) -> str:
    if text != "-":
        raise argparse.ArgumentTypeError(
            f"only '-C -' is supported (continue where the file stops), not a byte offset {text!r}"
        )
    return text


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
    add_shared_option(network, "scheduler")
    add_shared_option(network, "workers")
    add_shared_option(network, "adaptive")
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
        help="never split a file into pieces smaller than SIZE"
        f" (default: {_DEFAULT_SEGMENTS.min_size >> 20}M)",
    )
    add_shared_option(network, "rate")
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
    add_shared_option(network, "user_agent")
    network.add_argument(
        "--max-redirs",
        "--max-redirect",
        dest="max_redirects",
        type=_count0,
        default=_DEFAULT_MAX_REDIRECTS,
        metavar="N",
        help="follow at most N redirects per request (default: %(default)s)",
    )
    network.add_argument(
        "-L",
        "--location",
        action="store_true",
        help="follow redirects, as curl's -L (adownload always does; see --max-redirs)",
    )
    network.add_argument(
        "-f",
        "--fail",
        action="store_true",
        help="curl's: fail on an HTTP error status (adownload always does, keeping nothing)",
    )
    network.add_argument(
        "-S",
        "--show-error",
        action="store_true",
        help="curl's: show errors under -s (adownload always does)",
    )
    network.add_argument(
        "--remote-name",
        action="store_true",
        help="curl's -O: name the file after the URL (the default)",
    )
    add_shared_option(network, "insecure")
    add_shared_option(network, "cafile")
    network.add_argument(
        "--compressed",
        action="store_true",
        help="ask for a compressed transfer and save it decoded (such downloads do not resume)",
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
