"""`Settings`: a downloader's defaults and shared machinery, handed to each of its transfers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from .._disk.files import Ledger
from .._disk.sinks import SinkOpener
from .._model.events import Event
from .._model.options import Options
from .._model.stores import StoreConfig
from .._protocols.network import Network
from .limits import KeyedPrimitives, Limiter

if TYPE_CHECKING:
    from .._model.request import Request
    from .._protocols.base import Exchange

#: (protocol, settings, request, options) -> the exchange of one download.
ExchangeFactory = Callable[[str, "Settings", "Request", Options], "Exchange"]


@dataclass(frozen=True, slots=True)
class Settings:
    """A downloader's defaults and shared machinery, handed to each of its transfers."""

    #: The sessions, and the route (direct, or through which proxy) of each request.
    network: Network
    dest: Path
    #: The per-download options (each transfer applies its request's overrides).
    options: Options
    headers: CIMultiDict[str]
    writer: SinkOpener
    read_bufsize: int
    limiter: Limiter
    path_locks: KeyedPrimitives[str, asyncio.Lock]
    emit: Callable[[Event], None] | None
    #: Directories this downloader made or found: one mkdir per directory, not per file.
    directories: set[Path] = field(default_factory=set)
    #: The `Path` of each destination given as a str or Path: one object per directory, whose
    #: hash is computed once, not one new `Path` per file.
    dest_paths: dict[str | Path, Path] = field(default_factory=dict)
    #: The files this downloader saved, and from which URL.
    saved: Ledger = field(default_factory=Ledger)
    #: Connection pools of protocols other than HTTP (aiohttp's session has its own), by
    #: protocol; each has `async close()`, which the downloader calls when it closes.
    pools: dict[str, Any] = field(default_factory=dict)
    #: How object stores (s3, gs, az) are reached: the `store_options`, and the environment's
    #: with `trust_env`.
    stores: StoreConfig = StoreConfig({})  # noqa: RUF009 (frozen)
    #: Makes the exchange of a protocol for one download: the network's (`exchanges.exchange`)
    #: unless set; the engine's unit tests set one that answers from a script, in memory.
    exchange: ExchangeFactory | None = None
