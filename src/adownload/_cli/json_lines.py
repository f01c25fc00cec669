"""`--json`: the command's events as JSON Lines on standard output, for `jq` and programs.

A reporter like the others of `_cli.report` (an `on_event` hook over the public events); the
names and fields of its objects are part of the command's interface.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

from .._model.util import describe_error
from .report import Reporter

if TYPE_CHECKING:
    from .._model.errors import DownloadError
    from .._model.events import (
        HostLimitChanged,
        Progress,
        Queued,
        Retrying,
        SourceDropped,
        Started,
    )
    from .._model.request import Outcome

__all__ = ["JsonReporter"]


class JsonReporter(Reporter):
    """JSON Lines on standard output: one object per event, and a summary object at the end.

    Every object has `type` (queued, started, progress, retrying, host_limit, source_dropped,
    finished, summary). The events of a file have its `url`; byte counts are `bytes`
    (received or written so far) and `total` (announced size, or null); a failure has `error`
    (the message) and `error_type` (the adownload exception's name). A `finished` object's
    `bytes` is the file's size, `resumed_from` the part of it an earlier run had fetched,
    `worker` the Dask worker that wrote it (with --scheduler; else null), `sources` the URLs
    that sent its bytes in this run, each with its `bytes` (a `source_dropped` object, with
    `source` and `reason`, tells of a mirror that serves the file no more); the summary's
    `bytes` counts what this run fetched, its `hosts` what --adaptive learnt per host (empty
    without it). An entry of an input file that cannot be downloaded has only a `finished`
    event.
    """

    def _emit(self, record: dict[str, Any]) -> None:
        self.out.line(json.dumps(record))

    def queued(self, event: Queued) -> None:
        self._emit({"type": "queued", "url": event.url})

    def started(self, event: Started) -> None:
        self._emit(
            {
                "type": "started",
                "url": event.url,
                "path": _path(event.path),
                "total": event.total,
                "offset": event.offset,
            }
        )

    def progress(self, event: Progress) -> None:
        self._emit(
            {"type": "progress", "url": event.url, "bytes": event.received, "total": event.total}
        )

    def retrying(self, event: Retrying) -> None:
        self._emit(
            {
                "type": "retrying",
                "url": event.url,
                "attempt": event.attempt,
                "delay": round(event.delay, 3),
                **_error(event.error),
            }
        )

    def host_limit(self, event: HostLimitChanged) -> None:
        self._emit(
            {
                "type": "host_limit",
                "url": event.url,
                "previous": event.previous,
                "limit": event.limit,
                "reason": event.reason,
            }
        )

    def source_dropped(self, event: SourceDropped) -> None:
        self._emit(
            {
                "type": "source_dropped",
                "url": event.url,
                "source": event.source,
                "reason": event.reason,
            }
        )

    def finished(self, outcome: Outcome) -> None:
        self._emit(
            {
                "type": "finished",
                "url": outcome.url,
                "ok": outcome.ok,
                "skipped": outcome.skipped,
                "path": _path(outcome.path),
                "status": outcome.status,
                "bytes": outcome.size,
                "final_url": outcome.final_url,
                "elapsed": round(outcome.elapsed, 3),
                "attempts": outcome.attempts,
                "resumed_from": outcome.resumed_from,
                "worker": outcome.worker,
                "sources": [{"url": url, "bytes": count} for url, count in outcome.sources],
                **_error(outcome.error),
            }
        )

    def finish(self, *, interrupted: bool) -> None:
        tally = self.tally
        self._emit(
            {
                "type": "summary",
                "downloaded": tally.downloaded,
                "skipped": tally.skipped,
                "failed": tally.failed,
                "bytes": tally.bytes,
                "elapsed": round(tally.elapsed(), 3),
                "interrupted": interrupted,
                "hosts": {origin: dataclasses.asdict(host) for origin, host in tally.hosts.items()},
            }
        )


def _path(path: os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


def _error(error: DownloadError | None) -> dict[str, str | None]:
    if error is None:
        return {"error": None, "error_type": None}
    return {"error": describe_error(error), "error_type": type(error).__name__}
