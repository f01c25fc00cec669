"""What a worker (a Dask shard, a worker process) tells the caller of its downloads, as small
lists of plain data that pickle and msgpack alike: each event with the request's index in the
caller's input, and each outcome pickled without its request (the caller has it).

`encode` runs on the worker, `decode` on the caller's side, where the index is mapped back to
the caller's own `Request` and the events are made again with it. Between processes on one
machine (`adownload.workers`) each message travels as one length-prefixed pickle (`frame`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
from pathlib import Path
from typing import Any

from .._model.events import Event, Finished, Progress, Retrying, Started
from .._model.request import Outcome, Request
from .._model.util import redact

__all__ = ["decode", "encode", "frame", "latest_progress", "pack", "read_frame", "unpack"]


#: The fields of an `Outcome`, in the order `pack` sends their values.
_FIELDS = tuple(field.name for field in dataclasses.fields(Outcome))
_REQUEST = _FIELDS.index("request")
_PATH = _FIELDS.index("path")
_WORKER = _FIELDS.index("worker")


def pack(outcome: Outcome, worker: str) -> bytes:
    """`outcome` for the caller: without its request, naming the worker that wrote the file.
    Its values travel as a tuple (the path as a string), which pickles and loads several
    times faster than the dataclass."""
    values = [getattr(outcome, name) for name in _FIELDS]
    values[_REQUEST] = None
    values[_WORKER] = worker
    if values[_PATH] is not None:
        values[_PATH] = os.fspath(values[_PATH])
    return pickle.dumps(tuple(values), protocol=pickle.HIGHEST_PROTOCOL)


def encode(event: Event, index: int, worker: str) -> list[Any] | None:
    """The wire form of `event` of the request at `index`; None for events that stay local."""
    match event:
        case Started(path=path, total=total, offset=offset):
            return ["started", index, None if path is None else os.fspath(path), total, offset]
        case Progress(received=received, total=total):
            return ["progress", index, received, total]
        case Retrying(attempt=attempt, delay=delay, error=error):
            return ["retrying", index, attempt, delay, pickle.dumps(error)]
        case Finished(outcome=outcome):
            return ["finished", index, pack(outcome, worker)]
    return None


def decode(wire: list[Any], request: Request) -> Event:
    """The event `wire` is, for the caller's own `request` (a Finished one carries it)."""
    kind, _, *rest = wire
    url = redact(str(request.url))
    match kind:
        case "started":
            path, total, offset = rest
            return Started(url, request, None if path is None else Path(path), total, offset)
        case "progress":
            received, total = rest
            return Progress(url, request, received, total)
        case "retrying":
            attempt, delay, error = rest
            return Retrying(url, request, attempt, delay, pickle.loads(error))
        case "finished":
            return Finished(unpack(rest[0], request))
    raise ValueError(f"not an event of the wire: {kind!r}")


def unpack(packed: bytes, request: Request | None) -> Outcome:
    """A packed outcome, with the caller's `request` back in it."""
    values = list(pickle.loads(packed))
    values[_REQUEST] = request
    if values[_PATH] is not None:
        values[_PATH] = Path(values[_PATH])
    return Outcome(*values)


def latest_progress(events: list[list[Any]], *, finished_only: bool = False) -> list[list[Any]]:
    """A batch without the progress events that a later one of the same file makes stale;
    with `finished_only`, also without the started and progress events of the files that
    finished within the batch (a caller that shows downloads under way misses nothing it
    could have shown)."""
    last: dict[int, int] = {}
    ended: set[int] = set()
    for position, event in enumerate(events):
        if event[0] == "progress":
            last[event[1]] = position
        elif finished_only and event[0] == "finished":
            ended.add(event[1])
    return [
        event
        for position, event in enumerate(events)
        if not (event[1] in ended and event[0] in ("started", "progress"))
        and (event[0] != "progress" or last[event[1]] == position)
    ]


# --- frames: one message on a pipe between processes ---------------------------------------

#: Bytes of a frame's length prefix.
_PREFIX = 4


def frame(message: Any) -> bytes:
    """`message` pickled, after its length: one frame for `read_frame`."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_PREFIX, "big") + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's message; EOFError when the pipe ended (between frames or within one)."""
    try:
        size = int.from_bytes(await reader.readexactly(_PREFIX), "big")
        return pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError as exc:
        raise EOFError("the pipe ended") from exc
