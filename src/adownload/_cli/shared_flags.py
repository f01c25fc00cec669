"""The flags `adownload` and `adownload mirror` share, declared once for both: the limits, the
timeouts, the headers, the retries (`add_shared_option`, `add_retry_flags`, `retry_of`); each
flag's default is the library's (`Limits()`, `adownload._model.options.DEFAULTS`)."""

from __future__ import annotations

import argparse
from typing import Any

from .._model.config import Limits, Retry
from .._model.options import DEFAULTS
from .shared import (
    _count,
    _count0,
    _header,
    _rate,
    _seconds,
    _seconds0,
    _tries,
    _user_agent,
    _workers,
)

# Each flag's default is the library's (declared once, in `Limits` and `Options`).
_DEFAULT_LIMITS = Limits()
_DEFAULT_TIMEOUT = DEFAULTS.timeout
_DEFAULT_RETRY = DEFAULTS.retry
_DEFAULT_SEGMENTS = DEFAULTS.segments
_DEFAULT_MAX_REDIRECTS = DEFAULTS.max_redirects


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
    "workers": (
        ("--workers",),
        {
            "dest": "workers",
            "type": _workers,
            "default": 1,
            "metavar": "N|auto",
            "help": "run the downloads in N processes on this machine, each host's connections"
            " split among them (default: 1): for long lists of small files, where one"
            " process's work per file is the limit; auto: one per core when at least"
            " 2000 URLs are given (on the command line or in -i files) and the other options"
            " allow it, else one",
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
    "adaptive": (
        ("--adaptive",),
        {
            "action": argparse.BooleanOptionalAction,
            "default": _DEFAULT_LIMITS.adaptive,
            "help": "find each host's connection limit by itself, up to -x: fewer connections "
            "to a server that answers 429 or 503, times out or gains nothing from more, more "
            "to one that caps each connection's speed"
            f" (default: {'on' if _DEFAULT_LIMITS.adaptive else 'off'})",
        },
    ),
    "rate": (
        ("--limit-rate", "--max-overall-download-limit"),
        {
            "dest": "rate",
            "type": _rate,
            "metavar": "RATE",
            "help": "download at most RATE bytes per second in all, e.g. 500K or 10M"
            " (default: no limit)",
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
    "scheduler": (
        ("--scheduler",),
        {
            "dest": "scheduler",
            "metavar": "ADDRESS",
            "help": "run the downloads on the Dask cluster of this scheduler (tcp://HOST:8786;"
            " needs adownload[dask]); the destination must be a directory that every worker"
            " sees at the same path",
        },
    ),
    "user_agent": (
        ("-U", "-A", "--user-agent"),
        {
            "dest": "user_agent",
            "type": _user_agent,
            "metavar": "AGENT",
            "help": "send AGENT as the User-Agent header (-A as in curl, -U as in wget)",
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


def add_retry_flags(parser: argparse.ArgumentParser) -> None:
    """-t/--tries, --retry, --retry-wait and --retry-max-time, as both commands take them;
    `retry_of` reads them back."""
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


def retry_of(args: argparse.Namespace) -> Retry:
    """The `Retry` the flags of `add_retry_flags` say."""
    tries: int = _DEFAULT_RETRY.attempts
    if args.tries is not None:
        tries = args.tries
    elif args.retries is not None:
        tries = args.retries + 1
    wait: float = args.retry_wait
    return Retry(
        attempts=tries,
        backoff=wait,
        max_delay=max(_DEFAULT_RETRY.max_delay, wait),
        budget=args.retry_budget,
    )


def add_shared_option(group: argparse._ActionsContainer, name: str) -> None:
    """Add an option that `adownload` and `adownload mirror` share, spelt the same in both."""
    flags, keywords = _SHARED_OPTIONS[name]
    group.add_argument(*flags, **keywords)
