"""Downloads in several worker processes on this machine: `ProcessRunner`, for manifests of
many small files, where one Python process's per-file cost is the limit and more cores help.

    import adownload.workers

    runner = adownload.workers.ProcessRunner(workers=2, dest="mirror/")
    async for outcome in runner.as_completed(manifest):
        ...

Each worker is a `python -m adownload._runners.process_worker` child running one `Downloader`
with its share of the limits: `limits` are the whole run's, as for one downloader
(`max_transfers` is split among the workers, each host's `max_per_host` too, and `rate`), so a
server sees no more connections than from one process. A request goes to the worker its file's
name hashes to, so two requests of one file never run in two processes at once. The input (any
iterable or async iterable) is read as the workers finish, at most `window` requests in hand per
worker. The caller gets outcomes as they complete, each naming the process that wrote the file
(`Outcome.worker`), and the same events as from a local downloader (`on_event`).

When it pays: a worker costs the start of an interpreter (about 0.3-0.6 s of CPU here) and
each file a little copying between processes; against that, each worker's files cost one
core's time. On this project's 2-core machine two workers pay from a few thousand small files
(see docs/benchmarks.md); for a few hundred files, or for large ones (the kernel copies
those, and one process fills a fast link), one process is faster.

Faults: a worker that dies (killed, out of memory) has its unfinished downloads fail with an
error that says so (their `.part` files stay, and a rerun continues them); the others go on,
and the rest of the input goes to them. Leaving the iteration early, or cancelling it, sends
each worker a SIGINT, which interrupts its downloads as Ctrl-C does (`.part` files kept).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable
from typing import TYPE_CHECKING, Unpack

from ._runners.base import WorkerRunner, travelling
from ._runners.process import Run

if TYPE_CHECKING:
    from ._client.keywords import DownloaderOptions
    from ._model.request import Item, Outcome

__all__ = ["ProcessRunner"]


class ProcessRunner(WorkerRunner):
    """Runs downloads in `workers` processes on this machine (at most one per connection
    `limits.max_per_host` allows, as each host's connections are split among them).

    - `dest`: the directory the files go into; a relative one, and the relative `path` or
      `dest` of a `Request`, are taken from the caller's working directory.
    - `window`: requests each worker holds at most, sent but not finished (default: four
      times its share of `max_transfers`, at least 64).
    - `on_event`: called on the caller's event loop with each event of every download.
    - `every_event`: False leaves out the Started and Progress events of a download that
      ended before its worker's next batch of events (every 50 ms): a display of the downloads
      under way misses nothing, and the caller's process does less per small file. Queued,
      Retrying and Finished events always come.
    - every other keyword of `Downloader` goes to each worker's downloader and must pickle
      (an `ssl.SSLContext` does not; a cookie jar stays with no one). A `Request` with a
      `sink` cannot cross to another process and fails with `InvalidRequestError`.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        dest: str | os.PathLike[str] = ".",
        window: int | None = None,
        every_event: bool = True,
        **options: Unpack[DownloaderOptions],
    ) -> None:
        if workers is None:
            workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a whole number of 1 or more, not {workers!r}")
        if window is not None and (isinstance(window, bool) or window < 1):
            raise ValueError(f"window must be 1 or more, not {window!r}")
        emit, _, travelling_options = travelling(options)
        self.workers = workers
        self._dest = os.path.abspath(dest)
        self._window = window
        self._every_event = every_event
        self._emit = emit
        self._options = travelling_options
        self._runs: list[Run] = []

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers running now (of every call in progress)."""
        return [pid for run in self._runs for pid in run.pids()]

    async def _run(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        run = Run(
            workers=self.workers,
            dest=self._dest,
            options=self._options,
            window=self._window,
            emit=self._emit,
            every_event=self._every_event,
        )
        self._runs.append(run)
        try:
            async with contextlib.aclosing(run.outcomes(items)) as outcomes:
                async for pair in outcomes:
                    yield pair
        finally:
            self._runs.remove(run)
