"""`DownloaderOptions`: the keywords of `Downloader`, typed, for what opens a downloader of its
own (the blocking functions, the worker processes, the Dask runner). Their defaults and checks
are `Downloader`'s (and, for the per-download ones, `adownload._model.options.Options`')."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal, TypedDict

from .._model.auth import Auth, Netrc
from .._model.config import Existing, Limits, Retry, Segments, Timeout
from .._model.events import EventHook
from .._model.sink import SinkOpener

if TYPE_CHECKING:
    # aiohttp waits for the first open downloader (start-up imports only what runs).
    from aiohttp.abc import AbstractCookieJar

__all__ = ["DownloaderOptions"]


class DownloaderOptions(TypedDict, total=False):
    """The keywords of `Downloader` but `session` and `dest`, for the blocking functions
    (`adownload.download(url, retry=..., proxy=...)`), which open a downloader of their own
    on an event loop of their own: a borrowed session belongs to another loop, and `dest` is
    the call's. `test_api` holds this to the `Downloader`'s signature, name by name and type
    by type, so an option added there cannot be missed here."""

    limits: Limits
    timeout: Timeout
    existing: Existing
    headers: Mapping[str, str] | None
    content_disposition: bool
    writer: SinkOpener
    max_redirects: int
    on_event: EventHook | None
    retry: Retry
    resume: bool
    max_size: int | None
    verify_digests: bool
    allow_downgrade: bool
    decode_content: bool
    segments: Segments
    splice: bool
    proxy: str | None
    no_proxy: str | Iterable[str] | None
    trust_env: bool
    auth: Auth | None
    netrc: str | os.PathLike[str] | Netrc | Literal[False] | None
    cookies: str | os.PathLike[str] | AbstractCookieJar | None
    verify: ssl.SSLContext | bool
    store_options: Mapping[str, object] | None
