"""Downloads on a Dask cluster: `DaskRunner`, for manifests that outgrow one machine.

    import adownload.distributed
    from distributed import Client

    async with Client("tcp://scheduler:8786", asynchronous=True) as client:
        runner = adownload.distributed.DaskRunner(client, dest="/shared/archive")
        async for outcome in runner.as_completed(manifest):
            ...
        print(runner.report)

Needs Dask's `distributed` (`pip install 'adownload[dask]'`). The input (any iterable or async
iterable of URLs or `Request`s) is read lazily and cut into shards of one origin each
(`_runners.shards`); each shard is one Dask task that opens a `Downloader` of its own on a worker
(`_runners.dask_worker`) and streams its events back to the caller's side of the run
(`_runners.dask`). The caller gets outcomes as they complete, each naming the worker that wrote the
file, and the same events as from a local downloader, so a progress display works unchanged. The
caller holds at most `buffer` requests at once, however long the input.

Per-host limits hold for the whole cluster: at most `min(max_per_host, workers)` shards of an
origin run at once, each with its share of the connections (see `_runners.shards.share_of`).

Faults: a worker that dies has its shard run again by Dask elsewhere; the rerun skips the
files already complete and continues the `.part` files, and outcomes the caller already had
are not repeated. A shard that fails for good (Dask gives up after its allowed failures)
reports each of its files without an outcome as failed; the run goes on. Leaving the
iteration early, or cancelling it, cancels the cluster's tasks, which stop their downloads as
an interruption would.

Files go to `dest` as each worker sees it: a directory shared by every worker (NFS, a
cluster file system), at the same path on each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Unpack

try:
    import distributed
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "adownload.distributed needs Dask's distributed: pip install 'adownload[dask]'"
    ) from exc

from ._runners.base import WorkerRunner, travelling
from ._runners.dask import Run

if TYPE_CHECKING:
    from ._client.keywords import DownloaderOptions
    from ._model.request import Item, Outcome

__all__ = ["DaskRunner", "Report"]


@dataclass
class Report:
    """What the runs of a `DaskRunner` did, so far."""

    downloaded: int = 0
    skipped: int = 0
    failed: int = 0
    #: Bytes written in these runs (not counting what `.part` files held before).
    bytes: int = 0
    shards: int = 0
    #: Shards that Dask gave up on (their files are failed outcomes).
    lost_shards: int = 0
    #: Outcomes by the address of the worker that wrote them.
    workers: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            self.failed += 1
        elif outcome.skipped:
            self.skipped += 1
        else:
            self.downloaded += 1
            self.bytes += max(0, outcome.size - outcome.resumed_from)
        if outcome.worker is not None:
            self.workers[outcome.worker] = self.workers.get(outcome.worker, 0) + 1


class DaskRunner(WorkerRunner):
    """Runs downloads on the cluster of `client`, an asynchronous `distributed.Client`.

    - `dest`: the directory the files go into (shared by the workers, at the same path on
      each); a relative one, and the relative `path` or `dest` of a `Request`, are taken from
      the caller's working directory.
    - `shard_size`: requests per Dask task (500). Larger shards cost the scheduler less;
      smaller ones spread a short manifest over more workers and lose less to a dead one.
    - `buffer`: the most requests the caller holds at once, read from the input but not
      finished (by default, enough to keep two shards queued on every worker).
    - `on_event`: called on the caller's event loop with each event of every download, as
      a `Downloader`'s hook is (Progress at most five times a second per file).
    - every other keyword of `Downloader` (`limits`, `retry`, `timeout`, `proxy`, ...) goes
      to the downloader of each shard; they must pickle (an `ssl.SSLContext` does not:
      install the authority on the workers instead). `limits.max_per_host` is the limit of
      the whole cluster; `limits.max_transfers` that of each shard.

    Memory: besides `buffer` requests, a Dask client keeps its last
    `distributed.admin.low-level-log-length` messages to the scheduler (1000 by default), and
    each shard is one: about 66 KiB for 1,000 requests, so some 66 MiB once a thousand
    shards have gone out, whatever the manifest's length. Lower it for the client
    (`dask.config.set({"distributed.admin.low-level-log-length": 20})` around `Client(...)`),
    as `adownload --scheduler` does.
    """

    def __init__(
        self,
        client: distributed.Client,
        *,
        dest: str | os.PathLike[str] = ".",
        shard_size: int = 500,
        buffer: int | None = None,
        **options: Unpack[DownloaderOptions],
    ) -> None:
        if not isinstance(client, distributed.Client) or not client.asynchronous:
            raise TypeError(
                "DaskRunner needs an asynchronous distributed.Client:"
                " Client(address, asynchronous=True)"
            )
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ValueError(f"shard_size must be a whole number of 1 or more, not {shard_size!r}")
        if buffer is not None and (isinstance(buffer, bool) or buffer < 1):
            raise ValueError(f"buffer must be 1 or more, not {buffer!r}")
        # The hook is called here, on the caller's loop, with the events the workers send back.
        emit, _, travelling_options = travelling(options)
        self._client = client
        # Absolute: a worker's working directory is not the caller's.
        self._dest = os.path.abspath(dest)
        self._shard_size = shard_size
        self._buffer = buffer
        self._emit = emit
        self._options = travelling_options
        self.report = Report()

    async def _run(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        run = Run(
            self._client,
            workers=await self._workers(),
            dest=self._dest,
            options=self._options,
            shard_size=self._shard_size,
            buffer=self._buffer,
            emit=self._emit,
        )
        async with contextlib.aclosing(run.outcomes(items)) as outcomes:
            async for pair in outcomes:
                self.report.add(pair[1])
                yield pair
        self.report.shards += run.shards
        self.report.lost_shards += run.lost

    async def _workers(self) -> int:
        info = self._client.scheduler_info()
        workers = len(info.get("workers", {}))
        if not workers:
            client: Any = self._client  # asynchronous: wait_for_workers is a coroutine
            await client.wait_for_workers(1)
            workers = len(self._client.scheduler_info().get("workers", {}))
        return max(1, workers)
