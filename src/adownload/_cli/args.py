"""The command line's options: parsing and checking them, and what each one means to the library.

Every check that can fail on the user's input happens here (or in the value types of
`_cli.shared`), before anything is downloaded, and fails with one `UsageError` line.
The library's per-download options are parsed into its own `Options` (`Options.download`,
checked by the library, with the library's defaults) and handed to `Downloader` as they are
(`downloader_keywords`): a new library option is one field of `adownload._model.options.Options`
and one flag in `flags.py`.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import metalink
from .._model.config import Existing, Limits, Segments, Timeout
from .._model.errors import InvalidRequestError
from .._model.options import Options as DownloadOptions
from .._model.request import Request
from ..metalink import is_metalink_url
from .flags import build_parser
from .network import NetworkOptions, network_options
from .shared import (
    AUTO_WORKERS,
    STDOUT,
    UsageError,
    check_directory,
    curl_spellings,
    scheme_hint,
    tls_context,
    unique_headers,
)
from .shared_flags import (
    retry_of,
)

__all__ = ["Options", "downloader_keywords", "parse_options"]


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, checked. `requests` are the URLs given as arguments."""

    requests: tuple[Request, ...]
    inputs: tuple[str, ...]
    #: URLs of Metalink documents, fetched and read when the run starts.
    metalink_urls: tuple[str, ...]
    dest: Path
    limits: Limits
    #: The library's per-download options (timeouts, retries, segments, the existing-file
    #: policy, ...), as the flags set them.
    download: DownloadOptions
    headers: dict[str, str]
    quiet: bool
    json: bool
    bars: bool
    #: `-O -`: the one URL's body goes to standard output, every message to standard error.
    stdout: bool = False
    #: `--spider`: check that the URLs exist, download nothing.
    spider: bool = False
    #: `--scheduler`: the address of the Dask scheduler to run the downloads on.
    scheduler: str | None = None
    #: `--workers`: processes on this machine to run the downloads in.
    workers: int = 1
    #: True checks certificates against the system's authorities, False checks nothing, a
    #: context checks against the authorities it holds.
    tls: ssl.SSLContext | bool = True
    network: NetworkOptions = NetworkOptions()  # noqa: RUF009 (frozen)


def downloader_keywords(options: Options) -> dict[str, Any]:
    """The `Downloader` keywords the options stand for: the per-download options as parsed,
    then what the command adds (the destination, the limits, the headers, the certificates,
    the proxies and logins)."""
    return {
        **options.download.keywords(),
        "dest": options.dest,
        "limits": options.limits,
        "headers": options.headers,
        "verify": options.tls,
        **options.network.keywords(),
    }


# --- values -------------------------------------------------------------------------------


# --- the parser ---------------------------------------------------------------------------


# --- checking it all ----------------------------------------------------------------------


def parse_options(argv: Sequence[str] | None = None) -> Options:
    """Parse and check the command line; raise `UsageError` with one line if it is wrong."""
    args = build_parser().parse_args(curl_spellings(sys.argv[1:] if argv is None else argv))
    urls: list[str] = args.urls
    inputs: list[str] = args.inputs
    metalinks: list[str] = args.metalinks
    if not urls and not inputs and not metalinks:
        raise UsageError("no URLs given: pass URLs, or a file of URLs with -i (see --help)")
    dest = Path(args.dest)
    check_directory(dest)
    metalink_urls = [url for url in urls if is_metalink_url(url)]
    urls = [url for url in urls if not is_metalink_url(url)]
    linked = _metalink_requests(metalinks, dest, check_only=args.spider)
    pairs: list[tuple[str, str]] = args.headers
    if args.user_agent is not None:
        pairs = [*pairs, args.user_agent]
    network = network_options(args)
    if network.cookie_header is not None:
        pairs = [*pairs, ("Cookie", network.cookie_header)]
    headers = unique_headers(pairs)

    single = len(urls) == 1 and not inputs and not linked and not metalink_urls
    for flag, value in (("-o/--output", args.output), ("--checksum", args.checksum)):
        if value is not None and not single:
            where = "out=NAME" if flag.startswith("-o") else "checksum=ALGO:HEX"
            raise UsageError(
                f"{flag} is for one file, so it takes exactly one URL"
                f" (in an input file, use '{where}' under each URL)"
            )
    stdout = args.output == STDOUT
    if stdout and args.json:
        raise UsageError("-O - writes the file to standard output, so --json cannot go there too")
    if stdout and args.spider:
        raise UsageError("--spider downloads nothing, so -O - has nothing to write")
    path = None
    if args.output is not None and not stdout:
        output: str = args.output
        if not output or output.endswith(("/", os.sep)):
            raise UsageError(
                f"-o/--output must name a file, not {output!r} (use -d for a directory)"
            )
        path = dest / output
        if path.is_dir():
            raise UsageError(f"-o/--output: {path} is a directory (use -d for a directory)")
        check_directory(path.parent)

    requests = []
    for url in urls:
        try:
            requests.append(Request(url, path, checksum=args.checksum, check_only=args.spider))
        except InvalidRequestError as exc:
            raise UsageError(f"{exc}{scheme_hint(url)}") from None
    requests.extend(linked)

    tls = tls_context(args.insecure, args.cafile)
    scheduler: str | None = args.scheduler
    if scheduler is not None:
        if stdout:
            raise UsageError("-O - writes here, so it cannot run on a cluster (--scheduler)")
        from .dask import check_cluster_options

        check_cluster_options(tls, network)
    workers: int = args.workers
    if workers > 1 or workers == AUTO_WORKERS:
        from .workers import auto_workers, check_worker_options, usable_cores

        try:
            check_worker_options(
                tls, network, stdout=stdout, scheduler=scheduler,
                content_disposition=args.content_disposition,
            )  # fmt: skip
            allowed = True
        except UsageError:
            if workers != AUTO_WORKERS:
                raise
            allowed = False  # auto: what workers cannot do runs in this process instead
        if workers == AUTO_WORKERS:
            limit = min(args.per_host, args.jobs)
            known = len(requests)
            workers = auto_workers(
                known, inputs, cores=usable_cores(), limit=limit, allowed=allowed
            )
    try:
        return Options(
            requests=tuple(requests),
            inputs=tuple(inputs),
            metalink_urls=tuple(metalink_urls),
            dest=dest,
            limits=Limits(
                max_transfers=args.jobs,
                max_per_host=args.per_host,
                rate=args.rate,
                adaptive=args.adaptive,
            ),
            download=DownloadOptions(
                timeout=Timeout(
                    connect=args.connect_timeout,
                    read=args.read_timeout,
                    total=args.max_time,
                    min_speed=args.min_speed,
                    min_speed_window=args.speed_window,
                ),
                retry=retry_of(args),
                segments=Segments(count=args.split, min_size=args.min_split_size),
                existing=_existing(args),
                content_disposition=args.content_disposition,
                resume=args.resume is not False,
                max_size=args.max_filesize,
                max_redirects=args.max_redirects,
                decode_content=args.compressed,
            ),
            headers=headers,
            quiet=args.quiet,
            json=args.json,
            bars=args.bars,
            stdout=stdout,
            spider=args.spider,
            scheduler=scheduler,
            workers=workers,
            tls=tls,
            network=network,
        )
    except (TypeError, ValueError) as exc:  # a check of the library's that ours did not make
        raise UsageError(str(exc)) from None


def _metalink_requests(names: list[str], dest: Path, *, check_only: bool) -> list[Request]:
    """The requests of the Metalink files given with -M, read now: a bad one is a usage error
    before anything is downloaded."""
    requests: list[Request] = []
    for name in names:
        try:
            files = metalink.parse(name)
        except metalink.MetalinkError as exc:
            raise UsageError(f"-M {name}: {exc}") from None
        requests.extend(file.request(dest, check_only=check_only) for file in files)
    return requests


def _existing(args: argparse.Namespace) -> Existing:
    """The existing-file policy: one of its flags, `-N`, or `-c`/`-C -` given explicitly
    (which continues a shorter file at the final name, as wget -c does); else SKIP."""
    chosen = [
        flag
        for flag, given in (
            (f"--{args.existing}", args.existing is not None),
            ("-N/--timestamping", args.timestamping),
            ("-c/--continue", args.resume is True or args.continue_at is not None),
        )
        if given
    ]
    if len(chosen) > 1:
        names = {"--skip": "--skip-existing", "--error": "--fail-if-exists"}
        shown = [names.get(flag, flag) for flag in chosen]
        raise UsageError(f"{' and '.join(shown)} say different things about files that exist")
    if args.resume is False and args.continue_at is not None:
        raise UsageError("-C - and --no-continue contradict each other")
    if args.timestamping:
        return Existing.NEWER
    if args.resume is True or args.continue_at is not None:
        return Existing.CONTINUE
    return Existing(args.existing or Existing.SKIP.value)
