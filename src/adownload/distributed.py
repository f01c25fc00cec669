"""Downloads on a Dask cluster: `DaskRunner`, for manifests that outgrow one machine.

    import adownload.distributed
    from distributed import Client

    async with Client("tcp://scheduler:8786", asynchronous=True) as client:
        runner = adownload.distributed.DaskRunner(client, dest="/shared/archive")
        async for outcome in runner.as_completed(manifest):
            ...
        print(runner.report)

Needs Dask's `distributed` (`pip install 'adownload[dask]'`). The input (any iterable or
async iterable of URLs or `Request`s) is read lazily and cut into shards of one origin each
(`_shards`); each shard is one Dask task that opens a `Downloader` of its own on a worker
(`_dask_worker`) and streams its events back. The caller gets outcomes as they complete,
each naming the worker that wrote the file, and the same events as from a local downloader,
so a progress display works unchanged. The caller holds at most `buffer` requests at once,
however long the input.

Per-host limits hold for the whole cluster: at most `min(max_per_host, workers)` shards of an
origin run at once, each with its share of the connections (see `_shards.share_of`).

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

import asyncio
import contextlib
import dataclasses
import os
import pickle
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

try:
    import distributed
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "adownload.distributed needs Dask's distributed: pip install 'adownload[dask]'"
    ) from exc

from ._config import Limits
from ._dask_worker import run_shard
from ._downloader import DownloaderOptions
from ._events import Finished, Progress, Queued, Retrying, Started, emitter
from ._exceptions import DownloadError, InvalidRequestError
from ._models import Item, Outcome, Request, request_for
from ._shards import Shard, Shards, share_of
from ._util import each, redact

__all__ = ["DaskRunner", "Report"]

#: Seconds without a new request after which partial shards are sent anyway (a slow input).
_FLUSH_AFTER = 0.5
#: Messages the scheduler holds for the caller at most; the shards wait when it is full.
_QUEUE_SIZE = 256


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


class DaskRunner:
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
        # Called here, on the caller's loop, with the events the workers send back.
        on_event = options.pop("on_event", None)
        limits = options.get("limits", Limits())
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be an adownload.Limits, not {limits!r}")
        try:
            pickle.dumps(options)
        except Exception as exc:
            raise TypeError(
                f"the downloader's options must pickle to reach the workers: {exc}"
            ) from None
        self._client = client
        # Absolute: a worker's working directory is not the caller's.
        self._dest = os.path.abspath(dest)
        self._shard_size = shard_size
        self._buffer = buffer
        self._emit = emitter(on_event)
        self._limits = limits
        self._options = dict(options)
        self.report = Report()

    async def download_many(self, items: Iterable[Item] | AsyncIterable[Item]) -> list[Outcome]:
        """Every item's `Outcome`, in input order (all of them held: for a bounded list)."""
        found: dict[int, Outcome] = {}
        async with contextlib.aclosing(self._run(items)) as outcomes:
            async for index, outcome in outcomes:
                found[index] = outcome
        return [found[index] for index in sorted(found)]

    async def as_completed(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[Outcome, None]:
        """Each item's `Outcome` as its download ends, on whichever worker."""
        async with contextlib.aclosing(self._run(items)) as outcomes:
            async for _, outcome in outcomes:
                yield outcome

    async def _run(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        run = _Run(self, await self._workers())
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


class _Run:
    """One call's input, its shards in flight, and the messages coming back."""

    def __init__(self, runner: DaskRunner, workers: int) -> None:
        self._runner = runner
        self._client: Any = runner._client  # asynchronous: its methods return coroutines
        self._emit = runner._emit
        limits = runner._limits
        per_origin, connections = share_of(limits.max_per_host, workers)
        self._options = {
            **runner._options,
            "limits": dataclasses.replace(limits, max_per_host=connections),
        }
        self._shards = Shards(runner._shard_size, per_origin)
        self._max_running = 2 * workers
        self._room = asyncio.Semaphore(runner._buffer or 2 * workers * runner._shard_size)
        self._name = f"adownload-{uuid.uuid4().hex}"
        self._events = runner._emit is not None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._running: dict[int, Shard] = {}
        self._futures: dict[int, distributed.Future[Any]] = {}
        self._waiters: set[asyncio.Task[None]] = set()
        self.shards = 0
        self.lost = 0

    async def outcomes(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        queues: Any = distributed.Queue  # untyped
        queue = await queues(self._name, client=self._client, maxsize=_QUEUE_SIZE)
        listener = asyncio.create_task(self._listen(queue))
        reader = asyncio.create_task(self._read(items))
        reading = True
        try:
            while reading or self._running or self._shards.waiting:
                self._submit()
                try:
                    kind, value = await asyncio.wait_for(self._inbox.get(), _FLUSH_AFTER)
                except TimeoutError:
                    if self._shards.partial:
                        self._shards.flush()  # a slow input: send what there is
                    continue
                match kind:
                    case "request":
                        index, request = value
                        self._shards.add(index, request)
                    case "rejected":
                        yield self._finished(value[0], value[1], None)
                    case "end":
                        reading = False
                        self._shards.flush()
                    case "failed":
                        raise value
                    case "message":
                        for pair in self._message(value):
                            yield pair
                    case "shard":
                        for pair in self._shard_ended(*value):
                            yield pair
        finally:
            for task in (reader, listener):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._stop(queue)

    # --- the input --------------------------------------------------------------------------

    async def _read(self, items: Iterable[Item] | AsyncIterable[Item]) -> None:
        index = 0
        try:
            async for item in each(items):
                await self._room.acquire()
                try:
                    # The caller's own Request object: outcomes carry it back.
                    request = item if isinstance(item, Request) else _request(item)
                except InvalidRequestError as exc:
                    url = redact(str(item)) if isinstance(item, str) else ""
                    self._inbox.put_nowait(("rejected", (index, Outcome(url, None, error=exc))))
                else:
                    if request.sink is not None:
                        error = InvalidRequestError(
                            "a cluster writes files: a Request with a sink cannot go there",
                            url=redact(str(request.url)),
                        )
                        outcome = Outcome(redact(str(request.url)), request, error=error)
                        self._inbox.put_nowait(("rejected", (index, outcome)))
                    else:
                        self._inbox.put_nowait(("request", (index, request)))
                index += 1
        except Exception as exc:  # the caller's iterable failed: the run fails with it
            self._inbox.put_nowait(("failed", exc))
            return
        self._inbox.put_nowait(("end", None))

    # --- shards -----------------------------------------------------------------------------

    def _submit(self) -> None:
        while len(self._running) < self._max_running:
            shard = self._shards.take()
            if shard is None:
                return
            self.shards += 1
            for _, request in shard.entries:
                self._emit_event(Queued(redact(str(request.url)), request))
            future = self._client.submit(
                run_shard,
                self._name,
                shard.number,
                # The caller keeps its own objects (outcomes and events carry them back).
                [(index, _absolute(request)) for index, request in shard.entries],
                self._runner._dest,
                self._options,
                self._events,
                key=f"{self._name}-shard-{shard.number}",
                pure=False,
            )
            self._running[shard.number] = shard
            self._futures[shard.number] = future
            waiter = asyncio.create_task(self._wait(shard, future))
            self._waiters.add(waiter)
            waiter.add_done_callback(self._waiters.discard)

    async def _wait(self, shard: Shard, future: distributed.Future[Any]) -> None:
        try:
            result = await future
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # KilledWorker, or the task failed: the shard is lost
            self._inbox.put_nowait(("shard", (shard, None, exc)))
        else:
            self._inbox.put_nowait(("shard", (shard, result, None)))

    def _shard_ended(
        self, shard: Shard, result: list[tuple[int, bytes]] | None, error: BaseException | None
    ) -> list[tuple[int, Outcome]]:
        self._running.pop(shard.number, None)
        self._futures.pop(shard.number, None)
        self._shards.finished(shard)
        ended = []
        if result is not None:
            for index, packed in result:
                if index not in shard.done:
                    ended.append(self._finished(index, pickle.loads(packed), shard))
        if error is not None:
            self.lost += 1
        for index, request in shard.entries:
            if index not in shard.done:
                failure = DownloadError(
                    f"the cluster could not run this download: {type(error).__name__}: {error}"
                    if error is not None
                    else "the cluster's task ended without this download",
                    url=redact(str(request.url)),
                )
                ended.append(
                    self._finished(
                        index, Outcome(redact(str(request.url)), None, error=failure), shard
                    )
                )
        return ended

    def _finished(self, index: int, outcome: Outcome, shard: Shard | None) -> tuple[int, Outcome]:
        if shard is not None:
            shard.done.add(index)
            request = shard.request(index)
            if request is not None:
                outcome = dataclasses.replace(outcome, request=request)
        self._emit_event(Finished(outcome))
        self._room.release()
        return index, outcome

    # --- messages from the workers ----------------------------------------------------------

    async def _listen(self, queue: Any) -> None:
        """Move the workers' messages from the scheduler's queue to the inbox."""
        while True:
            try:
                first = await queue.get(timeout=1)
            except TimeoutError:
                continue
            self._inbox.put_nowait(("message", first))
            for message in await queue.get(batch=True):
                self._inbox.put_nowait(("message", message))

    def _message(self, message: dict[str, Any]) -> list[tuple[int, Outcome]]:
        shard = self._running.get(message["shard"])
        if shard is None:
            return []  # a shard already settled: its rerun's repeats, or a late batch
        ended = []
        for kind, index, *rest in message["events"]:
            if index in shard.done:
                continue
            request = shard.request(index)
            if request is None:
                continue
            url = redact(str(request.url))
            match kind:
                case "started":
                    path, total, offset = rest
                    path = None if path is None else Path(path)
                    self._emit_event(Started(url, request, path, total, offset))
                case "progress":
                    received, total = rest
                    self._emit_event(Progress(url, request, received, total))
                case "retrying":
                    attempt, delay, error = rest
                    self._emit_event(Retrying(url, request, attempt, delay, pickle.loads(error)))
                case "finished":
                    ended.append(self._finished(index, pickle.loads(rest[0]), shard))
        return ended

    def _emit_event(self, event: Any) -> None:
        if self._emit is not None:
            self._emit(event)

    async def _stop(self, queue: Any) -> None:
        """Cancel what still runs on the cluster, and let the scheduler drop the queue."""
        futures = list(self._futures.values())
        if futures:
            await self._client.cancel(futures, force=True)
        for waiter in list(self._waiters):
            waiter.cancel()
        if self._waiters:
            await asyncio.gather(*self._waiters, return_exceptions=True)
        with contextlib.suppress(Exception):  # a closed client holds no queue any more
            queue.close()


def _request(item: Item) -> Request:
    return request_for(
        item,
        dest=None,
        headers=None,
        existing=None,
        timeout=None,
        sink=None,
        checksum=None,
        max_size=None,
    )


def _absolute(request: Request) -> Request:
    """`request` with its `path` and `dest` as absolute paths, which mean the same on a worker."""
    changes = {
        name: os.path.abspath(value)
        for name in ("path", "dest")
        if (value := getattr(request, name)) is not None and not os.path.isabs(value)
    }
    return dataclasses.replace(request, **changes) if changes else request
