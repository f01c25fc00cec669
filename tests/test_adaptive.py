"""Adaptive per-host concurrency (`Limits(adaptive=True)`): the gate's rules without a socket,
then loopback servers that throttle above a few requests, cap each connection's rate, slow
down under load, or flap. The tests count requests, errors and connections, never time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

import adownload
from adownload import (
    Downloader,
    HostLimitChanged,
    HTTPStatusError,
    Limits,
    ReadTimeout,
    Retry,
    Segments,
)
from adownload._engine.adaptive import CUT, GROWTH, HOLD, INITIAL, WINDOW, HostGate, congestion
from adownload._model.errors import ConnectError, FTPReplyError, IncompleteBodyError

from .cli_support import run_cli
from .servers import parse_range
from .support import MIB, check_no_leaks, payload, serve_app, serve_in_thread

# --- the gate's rules, on a clock of our own -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gate(maximum: int = 16) -> tuple[HostGate, Clock, list[tuple[int, int, str]]]:
    clock = Clock()
    changes: list[tuple[int, int, str]] = []
    gate = HostGate(
        maximum,
        max_pause=30.0,
        on_change=lambda a, b, why: changes.append((a, b, why)),
        clock=clock,
    )
    return gate, clock, changes


def _window(gate: HostGate, clock: Clock, rate: float, *, pressed: bool = True) -> None:
    """One window of traffic at `rate` bytes/s, with requests waiting for a permit or not."""
    if pressed:
        gate._pressed = True  # what a request that waited for a permit leaves behind
    clock.now += WINDOW
    gate.received(int(rate * WINDOW))


def test_what_counts_as_congestion() -> None:
    def status(code: int, retry_after: float | None = None) -> HTTPStatusError:
        return HTTPStatusError(f"{code}", url="u", status=code, retry_after=retry_after)

    assert congestion(status(429, 2.0)) == ("HTTP 429", 2.0)
    assert congestion(status(503)) == ("HTTP 503", None)
    assert congestion(status(404)) is None
    assert congestion(status(500)) is None  # a server bug, not load
    assert congestion(ReadTimeout("t", url="u", phase="read", seconds=1))[0] == "timeout"  # type: ignore[index]
    assert congestion(ConnectError("c", url="u")) == ("connection refused", None)
    assert congestion(IncompleteBodyError("i", url="u", expected=2, received=1)) is not None
    assert congestion(ValueError()) is None
    too_many = FTPReplyError("421 too many", url="u", code=421, text="too many")
    assert congestion(too_many) == ("FTP 421", None)
    missing = FTPReplyError("550", url="u", code=550, text="no such file")
    assert congestion(missing) is None


async def test_a_burst_of_failures_is_one_cut_and_a_retry_after_pauses_the_host() -> None:
    gate, clock, changes = _gate()
    assert gate.limit == INITIAL
    gate._set(10, "test")
    started = clock.now
    for _ in range(4):
        await gate.acquire()
    clock.now += 0.1
    throttled = HTTPStatusError("429", url="u", status=429, retry_after=5.0)
    gate.release(throttled, started)
    gate.release(throttled, started)  # the same error again (a segment's, then the slot's)
    assert gate.throttled == 1
    gate.release(HTTPStatusError("429", url="u", status=429), started)  # started before the cut
    assert gate.limit == round(10 * CUT) == 7
    assert gate.cuts == 1
    assert gate.throttled == 2
    assert gate.paused_until == clock.now + 5.0
    # A request that started after the cut cuts again.
    gate.release(HTTPStatusError("503", url="u", status=503), clock.now)
    assert gate.limit == round(7 * CUT) == 5
    assert [why for _, _, why in changes] == ["test", "HTTP 429", "HTTP 503"]
    # A 404 says nothing about load.
    clock.now += 5.0
    await gate.acquire()
    gate.release(HTTPStatusError("404", url="u", status=404), clock.now)
    assert gate.limit == 5
    assert gate.active == 0


async def test_the_limit_doubles_while_throughput_grows_then_steps_and_takes_back_a_raise() -> None:
    gate, clock, changes = _gate(maximum=16)
    _window(gate, clock, 2e6)  # judged at once: the first raise is a probe
    assert gate.limit == 4
    _window(gate, clock, 4e6)  # right after a change: not judged
    assert gate.limit == 4
    _window(gate, clock, 4e6)  # twice the rate: keep doubling
    assert gate.limit == 8
    _window(gate, clock, 8e6)  # not judged
    _window(gate, clock, 4e6 * GROWTH * 0.9)  # the raise to 8 bought too little: back to 4
    assert gate.limit == 4
    assert changes[-1] == (8, 4, "no more throughput")
    for _ in range(6):  # held there, however pressed
        _window(gate, clock, 8e6)
    assert gate.limit == 4
    clock.now += HOLD
    _window(gate, clock, 8e6)  # probing again, one step at a time now
    assert gate.limit == 5
    # Windows in which nobody waited for a permit teach nothing.
    for _ in range(4):
        _window(gate, clock, 100e6, pressed=False)
    assert gate.limit == 5
    assert gate.highest == 8
    assert gate.lowest == INITIAL


async def test_a_cut_gate_holds_waiters_and_a_pause_holds_everyone() -> None:
    gate = HostGate(4, max_pause=0.2)
    await gate.acquire()
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()  # the limit is 2
    gate.release(None, gate.now())
    await asyncio.sleep(0)
    assert waiter.done()
    assert gate.active == 2
    gate.release(HTTPStatusError("429", url="u", status=429, retry_after=60.0), gate.now())
    gate.release(None, gate.now())
    assert gate.active == 0
    assert gate.limit == 1
    paused = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0.05)
    assert not paused.done()  # paused for the Retry-After, capped at max_pause (0.2 s)
    await asyncio.wait_for(paused, 1.0)
    assert gate.paused == pytest.approx(0.2, abs=0.01)
    cancelled = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.release(None, gate.now())
    assert gate.idle


async def test_a_waiter_cancelled_and_then_dropped_by_a_wake_leaves_quietly() -> None:
    # The task's cancel cancels its waiter at once; a release then drops that waiter from the
    # queue before the task runs its handler, which must not look for it there again.
    gate = HostGate(1, max_pause=1.0)
    await gate.acquire()
    waiting = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    gate.release(None, gate.now())
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.active == 0
    assert gate.idle
    await gate.acquire()  # the permit is there to take
    assert gate.active == 1


def test_limits_take_adaptive_as_a_bool() -> None:
    assert Limits(adaptive=True).adaptive
    with pytest.raises(TypeError, match="adaptive"):
        Limits(adaptive="yes")  # type: ignore[arg-type]


# --- loopback servers ---------------------------------------------------------------------


@dataclasses.dataclass
class Load:
    """What a server saw: requests, how many at once, and the answers it gave."""

    requests: int = 0
    active: int = 0
    peak: int = 0
    refused: int = 0

    def enter(self) -> None:
        self.requests += 1
        self.active += 1
        self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        self.active -= 1


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Site:
    base: str
    load: Load


@contextlib.asynccontextmanager
async def _serve(make: Callable[[Load], Handler]) -> AsyncIterator[Site]:
    load = Load()
    app = web.Application()
    app.router.add_get("/{name}", make(load))
    async with serve_app(app) as port:
        yield Site(f"http://127.0.0.1:{port}", load)


def _throttling(limit: int, retry_after: str | None) -> Callable[[Load], Handler]:
    """429 above `limit` requests at once (with `Retry-After` if given), else a small file."""

    def make(load: Load) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            load.enter()
            try:
                if load.active > limit:
                    load.refused += 1
                    headers = {"Retry-After": retry_after} if retry_after else {}
                    return web.Response(status=429, headers=headers)
                await asyncio.sleep(0.02)
                return web.Response(body=payload(request.match_info["name"], 16 << 10))
            finally:
                load.leave()

        return handle

    return make


async def _fetch_all(
    base: str, count: int, dest: Path, *, adaptive: bool, retry: Retry, **kw: object
) -> tuple[list[adownload.Outcome], list[HostLimitChanged], dict[str, adownload.HostLimit]]:
    events: list[HostLimitChanged] = []

    def on_event(event: adownload.Event) -> None:
        if isinstance(event, HostLimitChanged):
            events.append(event)

    limits = Limits(max_transfers=16, max_per_host=16, adaptive=adaptive)
    async with Downloader(
        dest=dest,
        limits=limits,
        retry=retry,
        on_event=on_event,
        **kw,  # type: ignore[arg-type]
    ) as dl:
        outcomes = await dl.download_many(f"{base}/f{i:03d}.bin" for i in range(count))
        hosts = dl.host_limits()
    await check_no_leaks()
    return outcomes, events, hosts


PATIENT = Retry(attempts=30, backoff=0.02, max_delay=0.5, jitter=0.0)


@pytest.mark.parametrize("retry_after", [None, "1"], ids=["no-retry-after", "retry-after"])
async def test_a_throttling_server_gets_far_fewer_requests_it_refuses(
    tmp_path: Path, retry_after: str | None
) -> None:
    seen: dict[bool, Load] = {}
    for adaptive in (False, True):
        async with _serve(_throttling(4, retry_after)) as site:
            dest = tmp_path / str(adaptive)
            outcomes, events, hosts = await _fetch_all(
                site.base, 300, dest, adaptive=adaptive, retry=PATIENT
            )
            assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
            for o in outcomes:
                assert o.path is not None
                assert o.path.read_bytes() == payload(o.path.name, 16 << 10)
            assert sorted(p.name for p in dest.iterdir()) == [f"f{i:03d}.bin" for i in range(300)]
            seen[adaptive] = site.load
            if adaptive:
                (report,) = hosts.values()
                assert report.cuts >= 1
                assert report.throttled >= 1
                assert any(e.reason == "HTTP 429" for e in events)
                assert report.paused > 0 if retry_after else report.paused == 0
            else:
                assert hosts == {}
                assert events == []
    fixed, adaptive_load = seen[False], seen[True]
    assert fixed.refused >= 20  # 16 at once against a limit of 4
    assert adaptive_load.refused * 4 <= fixed.refused
    assert adaptive_load.requests < fixed.requests  # fewer wasted requests: no slower


@pytest.mark.parametrize("retry_after", [None, "1"], ids=["no-retry-after", "retry-after"])
async def test_worker_processes_are_as_polite_as_one_process(
    tmp_path: Path, retry_after: str | None
) -> None:
    # Two workers, each with half of the host's budget and a gate of its own: a cut one of
    # them hears is passed to the other, so the server sees one client slow down.
    from adownload.workers import ProcessRunner

    seen: dict[bool, Load] = {}
    for adaptive in (False, True):
        async with _serve(_throttling(4, retry_after)) as site:
            dest = tmp_path / str(adaptive)
            runner = ProcessRunner(
                2, dest=dest, retry=PATIENT,
                limits=Limits(max_transfers=16, max_per_host=16, adaptive=adaptive),
            )  # fmt: skip
            outcomes = await runner.download_many(f"{site.base}/f{i:03d}.bin" for i in range(300))
            assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
            for o in outcomes:
                assert o.path is not None
                assert o.path.read_bytes() == payload(o.path.name, 16 << 10)
            assert sorted(p.name for p in dest.iterdir()) == [f"f{i:03d}.bin" for i in range(300)]
            seen[adaptive] = site.load
    fixed, adaptive_load = seen[False], seen[True]
    assert fixed.refused >= 20
    assert adaptive_load.refused * 4 <= fixed.refused, (adaptive_load, fixed)


def _capped(size: int, rate: int) -> Callable[[Load], Handler]:
    """One file of `size` bytes with ranges and an ETag, each response paced to `rate` B/s."""

    def make(load: Load) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            data = payload("capped", size)
            span = parse_range(request.headers.get("Range"), size)
            start, stop = span if isinstance(span, tuple) else (0, size)
            response = web.StreamResponse(status=206 if isinstance(span, tuple) else 200)
            response.headers["ETag"] = '"capped"'
            response.headers["Accept-Ranges"] = "bytes"
            if isinstance(span, tuple):
                response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
            response.content_length = stop - start
            load.enter()
            try:
                await response.prepare(request)
                step = 32 << 10
                for offset in range(start, stop, step):
                    await response.write(data[offset : min(stop, offset + step)])
                    await asyncio.sleep(step / rate)
            finally:
                load.leave()
            return response

        return handle

    return make


async def test_a_per_connection_cap_is_met_with_more_connections(tmp_path: Path) -> None:
    size = 24 * MIB
    async with _serve(_capped(size, 2 * MIB)) as site:
        outcomes, events, hosts = await _fetch_all(
            site.base, 1, tmp_path, adaptive=True, retry=PATIENT,
            segments=Segments(min_size=256 << 10),  # the default count of 4
        )  # fmt: skip
        (outcome,) = outcomes
        assert outcome.ok, outcome.error
        assert (tmp_path / "f000.bin").read_bytes() == payload("capped", size)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f000.bin"]
        (report,) = hosts.values()
        # Each raise doubled the throughput, so the limit kept growing from 2, past the 4
        # segments asked for: with adaptive limits the host's gate decides, up to -x.
        assert report.highest >= 8, _debug(site.load, events)
        assert site.load.peak >= 8
        assert [e.limit for e in events][:2] == [4, 8]
        assert all(e.reason == "more throughput" for e in events[:2])


async def test_several_segmented_files_under_adaptive_limits_all_arrive(tmp_path: Path) -> None:
    # Segments of three files wait for and give back one host's permits, and the gate cuts
    # and raises under them: a cancelled waiter used to end a download with a ValueError.
    size = 8 * MIB
    async with _serve(_capped(size, 4 * MIB)) as site:
        outcomes, _events, _hosts = await _fetch_all(
            site.base, 3, tmp_path, adaptive=True, retry=PATIENT,
            segments=Segments(min_size=256 << 10, count=8),
        )  # fmt: skip
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    names = [f"f{i:03d}.bin" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for name in names:
        assert (tmp_path / name).read_bytes() == payload("capped", size)


def test_a_cut_heard_from_another_process_cuts_once_a_burst_and_pauses() -> None:
    gate, clock, changes = _gate()
    gate.limit = start = 8  # as if it had grown
    gate.heard("HTTP 429", 2.0)
    assert gate.limit == max(1, int(start * CUT + 0.5))
    assert changes[-1][2] == "HTTP 429, in another process"
    assert gate.pause_left() == 2.0
    gate.heard("HTTP 429", 0.0)  # the same burst, heard twice
    assert len(changes) == 1
    clock.now += WINDOW
    gate.heard("HTTP 503", 0.0)
    assert len(changes) == 2
    assert gate.pause_left() == pytest.approx(2.0 - WINDOW)


def _crowded(load: Load) -> Handler:
    """A server that works on one request at a time: every request more in its hands only
    waits longer, so more at once brings nothing."""
    worker = asyncio.Lock()

    async def handle(request: web.Request) -> web.StreamResponse:
        load.enter()
        try:
            async with worker:
                await asyncio.sleep(0.003)
            return web.Response(body=payload(request.match_info["name"], 4 << 10))
        finally:
            load.leave()

    return handle


async def test_a_server_that_slows_down_under_load_is_not_crowded(tmp_path: Path) -> None:
    peaks = {}
    for adaptive in (False, True):
        async with _serve(_crowded) as site:
            dest = tmp_path / str(adaptive)
            outcomes, events, _ = await _fetch_all(
                site.base, 600, dest, adaptive=adaptive, retry=PATIENT
            )
            assert all(o.ok for o in outcomes)
            assert len(list(dest.iterdir())) == 600
            peaks[adaptive] = site.load.peak
            if adaptive:
                assert any(e.reason == "no more throughput" for e in events), _debug(
                    site.load, events
                )
    assert peaks[False] == 16
    assert peaks[True] <= 8


def _flapping(load: Load) -> Handler:
    """503 for requests 20-39, 220-239, ... (by arrival), else a small file: down, up, down."""

    async def handle(request: web.Request) -> web.StreamResponse:
        load.enter()
        try:
            if 20 <= load.requests % 200 < 40:
                load.refused += 1
                return web.Response(status=503)
            await asyncio.sleep(0.01)
            return web.Response(body=payload(request.match_info["name"], 8 << 10))
        finally:
            load.leave()

    return handle


async def test_a_flapping_server_is_cut_and_trusted_again(tmp_path: Path) -> None:
    async with _serve(_flapping) as site:
        outcomes, events, hosts = await _fetch_all(
            site.base, 400, tmp_path, adaptive=True, retry=PATIENT
        )
        assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
        for o in outcomes:
            assert o.path is not None
            assert o.path.read_bytes() == payload(o.path.name, 8 << 10)
        (report,) = hosts.values()
        assert report.cuts >= 2
        assert report.lowest == 1
        reasons = [e.reason for e in events]
        first_cut = reasons.index("HTTP 503")
        # Raised again after being cut.
        assert "more throughput" in reasons[first_cut:], _debug(site.load, events)
        assert site.load.refused >= 20


def _debug(load: Load, events: list[HostLimitChanged]) -> str:
    return f"{load} {[(e.previous, e.limit, e.reason) for e in events]}"


def test_the_cli_shows_each_change_and_what_each_host_reached(tmp_path: Path) -> None:
    with serve_in_thread(lambda: _serve(_throttling(4, None))) as site:
        urls = "".join(f"{site.base}/f{i:03d}.bin\n" for i in range(300))
        dest = tmp_path / "out"
        flags = ["--adaptive", "-x", "16", "-j", "16", "--retry-wait", "0.02", "--tries", "30"]
        lines = run_cli(*flags, "-d", dest, "-i", "-", cwd=tmp_path, stdin=urls)
        assert lines.returncode == 0, lines.stderr
        assert len(list(dest.iterdir())) == 300
        assert f"{site.base}: 4 connections at most now (was 2): more throughput" in lines.stderr
        assert ": HTTP 429" in lines.stderr
        assert re.search(
            rf"^{site.base}: \d+ connections at the end \(between \d+ and \d+; cut \d+ times",
            lines.stderr,
            flags=re.MULTILINE,
        )
        json_run = run_cli("--adaptive", "-x", "16", "--json", "-o", "one.bin",
                           f"{site.base}/one.bin", cwd=tmp_path)  # fmt: skip
        assert json_run.returncode == 0, json_run.stderr
        summary = json.loads(json_run.stdout.splitlines()[-1])
        assert summary["type"] == "summary"
        assert summary["hosts"][site.base]["limit"] == INITIAL
        # Without --adaptive, nothing of it.
        plain = run_cli("--json", "-o", "two.bin", f"{site.base}/two.bin", cwd=tmp_path)
        assert json.loads(plain.stdout.splitlines()[-1])["hosts"] == {}


def test_the_mirror_command_adapts_and_says_so(tmp_path: Path) -> None:
    with serve_in_thread(lambda: _serve(_throttling(4, None))) as site:
        listing = tmp_path / "urls.txt"
        listing.write_text("".join(f"{site.base}/f{i:03d}.bin\n" for i in range(300)))
        dest = tmp_path / "copy"
        run = run_cli("mirror", "--adaptive", "-x", "16", "-j", "16", listing, dest, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert len([p for p in dest.iterdir() if p.name.endswith(".bin")]) == 300
        assert f"{site.base}: 4 connections at most now (was 2): more throughput" in run.stderr
        assert re.search(rf"^{site.base}: \d+ connections at the end", run.stderr, flags=re.M)
        assert site.load.refused < 100
