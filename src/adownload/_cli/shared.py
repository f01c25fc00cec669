"""What `adownload` and `adownload mirror` share on the command line: the usage error, the
parser that raises it, the value types of flags (counts, seconds, sizes, rates, headers), the
flags both commands take, spelt the same in both, and the checks of the destination and the
TLS flags.
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .._model.errors import InvalidRequestError
from .._model.verify import parse_checksum

PROG = "adownload"


#: What `-i` takes to read the input from standard input.
STDIN = "-"


#: What `-O` takes to write the file to standard output.
STDOUT = "-"


# RFC 9110 field names are tokens.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


# 10M, 1.5m, 500K, 2G, 300 (bytes); binary units (K = 1024) as wget, curl and aria2c read them.
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class UsageError(Exception):
    """The command line cannot be run as given; the message is the one line to show."""


class Parser(argparse.ArgumentParser):
    """argparse's parser with one-line errors, and "did you mean" for an unknown flag."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given, overrides = self._boolean_values(sys.argv[1:] if args is None else args)
        parsed, extras = super().parse_known_args(given, namespace)
        for extra in extras:
            if extra.startswith("-") and extra != "-":
                raise UsageError(self._unknown_flag(extra))
        for dest, value in overrides:
            setattr(parsed, dest, value)
        return parsed, extras

    def _boolean_values(self, args: Sequence[str]) -> tuple[list[str], list[tuple[str, bool]]]:
        """aria2c's `--flag=true` / `--flag=false` for flags that take no value: true is the
        flag itself, false leaves it off (argparse would refuse the value, or take the flag for
        on). The arguments left, and the values to set after parsing."""
        left: list[str] = []
        overrides: list[tuple[str, bool]] = []
        for position, arg in enumerate(args):
            if arg == "--":
                left.extend(args[position:])
                break
            name, equals, value = arg.partition("=")
            action = self._option_string_actions.get(name) if equals and arg[:2] == "--" else None
            if action is None or action.nargs != 0:
                left.append(arg)
                continue
            word = value.strip().lower()
            if word not in _TRUE + _FALSE:
                raise UsageError(f"{name} takes true or false, not {value!r}")
            if word in _TRUE:
                left.append(name)
            elif isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
                overrides.append((action.dest, not action.const))
            # else a choice among others (--overwrite=false): left as if not given
        return left, overrides

    def _unknown_flag(self, given: str) -> str:
        flag = given.split("=", 1)[0]
        known = [s for action in self._actions for s in action.option_strings]
        close = difflib.get_close_matches(flag, known, n=3, cutoff=0.75)
        if not close and not flag.startswith("--"):
            # "-timestamping" for "--timestamping", as wget users sometimes type it.
            close = difflib.get_close_matches("-" + flag, known, n=3, cutoff=0.8)
        hint = f"; did you mean {' or '.join(close)}?" if close else " (see --help)"
        return f"unknown option {flag}{hint}"

    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line saying what is wrong reads better.
        raise UsageError(message)


#: What follows aria2c's `-s` (a bad one too: `-s -4` is a split to refuse, not curl's -s).
_NUMBER = re.compile(r"[-+]?\d+(\.\d*)?")
#: curl's one-letter flags that come in groups (`curl -fsSLO URL`), as adownload's flags.
_CURL_LETTERS = {
    "f": "--fail",
    "s": "--quiet",
    "S": "--show-error",
    "L": "--location",
    "O": "--remote-name",
}


def curl_spellings(argv: Sequence[str]) -> list[str]:
    """`argv` with curl's spellings made adownload's, where the value shows which tool's a
    letter is: a group of curl's letters (`-fsSLO`, `-LO`) is curl's; `-O` before a URL (or
    last) is curl's "name it after the URL", while `-O NAME` and `-O -` are the output name;
    `-s` before anything but a number (or last) is curl's silent, `-s 4` aria2c's split.

    ```pycon
    >>> curl_spellings(["-fsSLO", "https://h/a.zip"])
    ['--fail', '--quiet', '--show-error', '--location', '--remote-name', 'https://h/a.zip']
    >>> curl_spellings(["-s", "4", "-O", "a.zip", "URL"])
    ['-s', '4', '-O', 'a.zip', 'URL']
    >>> curl_spellings(["-L", "-O", "https://h/a.zip"])
    ['-L', '--remote-name', 'https://h/a.zip']
    ```
    """
    out: list[str] = []
    for position, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[position:])
            break
        after = argv[position + 1] if position + 1 < len(argv) else None
        letters = arg[1:]
        if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and set(letters) <= set(_CURL_LETTERS):
            out.extend(_CURL_LETTERS[letter] for letter in letters)
        elif arg == "-O" and (after is None or "://" in after):
            out.append("--remote-name")
        elif arg == "-s" and (after is None or not _NUMBER.fullmatch(after)):
            out.append("--quiet")
        else:
            out.append(arg)
    return out


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


#: `--workers auto`, before `_cli.workers.auto_workers` decides how many.
AUTO_WORKERS = 0


def _workers(text: str) -> int:
    if text.strip().lower() == "auto":
        return AUTO_WORKERS
    try:
        return _count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a whole number of 1 or more, not {text!r}"
        ) from None


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


# What a wget user means by -A (an accept list: "*.zip", "zip,pdf"), never a User-Agent.
_ACCEPT_LIST = re.compile(r"[*?\[]|\A\.?\w{1,8}(,\.?\w{1,8})+\Z")


def _user_agent(text: str) -> tuple[str, str]:
    if _ACCEPT_LIST.search(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} looks like a file pattern, but -A is the User-Agent here, as in curl;"
            " to keep only some files, use --include PATTERN"
        )
    return _header(f"User-Agent: {text}")


def scheme_hint(url: str) -> str:
    """What to add to the error for a URL the library refused: for `example.org/a.zip` or
    `host:8000/a` (no scheme, as people type them) "; did you mean http://...?", for the name
    of a file that exists "; to read URLs from it, use -i NAME"; else nothing."""
    if "://" in url:
        return ""
    if Path(url).is_file():
        return f"; to read URLs from the file {url}, use -i {url}"
    broken = _BROKEN_SCHEME.fullmatch(url)
    if broken:  # http//host/a, ftp:/x: a scheme that lost its colon or a slash
        return f"; did you mean {broken[1].lower()}://{broken[2]}?"
    if _HOST_AND_PATH.fullmatch(url):
        return f"; did you mean http://{url}?"
    return ""


_HOST_AND_PATH = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?(?:/\S*)?")
_BROKEN_SCHEME = re.compile(r"(https?|ftp)(?::/{0,3}|/{1,3})([^/:\s]\S*)", re.IGNORECASE)


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


def check_directory(dest: Path) -> None:
    """Refuse a destination that is, or lies below, something other than a directory."""
    for path in (dest, *dest.parents):
        if path.exists():
            if not path.is_dir():
                raise UsageError(f"the destination {dest} is not a directory: {path} is a file")
            return
        if path.is_symlink():
            raise UsageError(f"the destination {dest} goes through a broken link at {path}")


def unique_headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
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
