"""The sink interface: what the engine writes a download's bytes to (`Sink`), and how a
downloader opens one on a file (`SinkOpener`). The sinks themselves live with the disk
(`adownload._disk.sinks`) or in the caller's code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["Sink", "SinkOpener"]


@runtime_checkable
class Sink(Protocol):
    """Where the bytes of one download go.

    `write_at` is called with the body's bytes in order of arrival for each stream, `close` once at
    the end, after success or failure alike. A sink may buffer: an error from the file system may
    surface at a later `write_at` or at `close`, and the data is only guaranteed written once
    `close` returned.
    """

    async def write_at(self, offset: int, data: bytes) -> None:
        """Write `data` at byte `offset` of the destination."""

    async def close(self) -> None:
        """Flush what is buffered and release the destination. Called exactly once."""


#: Opens a sink on a path; `existing=True` continues an existing file instead of creating one.
SinkOpener = Callable[..., Awaitable[Sink]]
