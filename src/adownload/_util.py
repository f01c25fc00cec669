"""Small asyncio helpers shared by the package."""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_through_cancellation(fut: asyncio.Future[Any]) -> None:
    """Wait until `fut` is done, even if this task is cancelled meanwhile.

    For cleanup that must not be cut short: a worker thread still writing to a file descriptor
    that is about to be closed, a child task that was told to stop. A cancellation that arrives
    meanwhile is re-raised once `fut` is done. `fut`'s own result or error is left to the caller.
    """
    cancelled = False
    while not fut.done():
        try:
            # asyncio.wait never cancels what it waits for, unlike a plain await.
            await asyncio.wait({fut})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end, re-raising only a cancellation of our own."""
    task.cancel()
    await wait_through_cancellation(task)
