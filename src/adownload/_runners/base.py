"""What the runners that hand downloads to other workers share (`DaskRunner`, `ProcessRunner`):
the check of the options that must travel to them, and `download_many` and `as_completed` over
a run's `(index, outcome)` pairs."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._model.config import Limits
from .._model.events import Event, emitter

if TYPE_CHECKING:
    from .._model.request import Item, Outcome

__all__ = ["WorkerRunner", "travelling"]


def travelling(
    options: Mapping[str, Any],
) -> tuple[Callable[[Event], None] | None, Limits, dict[str, Any]]:
    """The caller's event hook (called on the caller's loop, so it stays), the `Limits`, and
    the other downloader options, checked to pickle: they go to the workers."""
    options = dict(options)
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
    return emitter(on_event), limits, options


class WorkerRunner:
    """`download_many` and `as_completed` over `_run`, a generator of (index in the input,
    outcome) pairs that subclasses provide."""

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

    def _run(
        self, items: Iterable[Item] | AsyncIterable[Item]
    ) -> AsyncGenerator[tuple[int, Outcome], None]:
        raise NotImplementedError
