"""The event loop the blocking entry points run (the command, `adownload.download` and the
other wrappers of `_client/sync.py`, a Dask shard): uvloop's when it is installed, else asyncio's.

uvloop (`pip install 'adownload[uvloop]'`) runs the same asyncio code on libuv; per file it
spends less time in the loop itself (see docs/benchmarks.md). It is optional: asyncio's own
loop is the default, fully supported and tested, and `ADOWNLOAD_LOOP=asyncio` keeps it even
where uvloop is installed. An application that runs its own loop gets no say from us: the
`Downloader` runs on whatever loop it is awaited on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LOOP_VARIABLE", "loop_factory", "run"]

#: The environment variable that picks the loop: "asyncio" or "uvloop" (unset: uvloop if it
#: is installed).
LOOP_VARIABLE = "ADOWNLOAD_LOOP"

T = TypeVar("T")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the loop for `choice` (default: the environment's); None for asyncio's."""
    choice = (os.environ.get(LOOP_VARIABLE, "") if choice is None else choice).strip().lower()
    if choice not in ("", "asyncio", "uvloop"):
        raise ValueError(f"{LOOP_VARIABLE} must be 'asyncio' or 'uvloop', not {choice!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError(
                f"{LOOP_VARIABLE}=uvloop, but uvloop is not installed "
                "(pip install 'adownload[uvloop]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the chosen loop (Ctrl-C cancels `main`, as there)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
