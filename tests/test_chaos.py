"""A seeded chaos run: hundreds of downloads through a server that fails at random.

Every file gets a random script of faults (bodies cut or reset, 5xx and 429 with Retry-After,
ignored and wrong ranges, a file that changes between attempts, silence until the read timeout)
and random server traits (validators or none, ranges or none, chunked bodies). The test then
holds the library to its promise, for every single item:

- an outcome reported as a success is byte-identical to the server's current file;
- a failure carries a `DownloadError` and leaves no file at the final name (a resumable
  `.part` with its state may stay; nothing else);
- a script of transient faults that the retry policy can outlast always ends in a success,
  and a permanent fault (404, a lying digest, a wrong checksum) always ends in a failure;
- no task or file handle leaks (the `faults` fixture checks on teardown).

The seed is printed on failure: `CHAOS_SEED=<n> pytest tests/test_chaos.py` replays a run.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from adownload import Downloader, DownloadError, Limits, Outcome, Request, Retry, Timeout

from .servers import FaultServer

#: Every test runs with bodies read through Python and copied by the kernel (conftest).
pytestmark = pytest.mark.usefixtures("body_path")

COUNT = 500
SEED = int(os.environ.get("CHAOS_SEED", "20261123"))
#: Transient faults before the server behaves; at most ATTEMPTS - 1 of them per file.
ATTEMPTS = 4
TRANSIENT = [
    "cut_after:{half}",
    "reset_after:{half}",
    "status:503:0",
    "status:429:0",
    "status:500",
    "status:502",
    "pause_after:{half}",
    "change+cut_after:{half}",
    "change+ok",
]
#: Steps that fail nothing by themselves but make the next request's answer odd.
ODD = ["ignore_range", "bad_range", "bad_range:7"]


@dataclass
class Plan:
    path: str
    size: int
    query: dict[str, object]
    steps: list[str]
    permanent: str | None  # why this file must fail, or None when it must succeed
    checksum: str | None = None
    mirror: bool = False


def make_plans(rng: random.Random) -> list[Plan]:
    plans = []
    for index in range(COUNT):
        size = rng.choice([0, 1, 1000, rng.randrange(1, 300_000), rng.randrange(1, 64_000)])
        half = max(1, size // 2)
        query: dict[str, object] = {"size": size}
        query["validators"] = rng.choice(["both", "both", "etag", "lm", "weak", "none"])
        if rng.random() < 0.15:
            query["ranges"] = "none"
        if rng.random() < 0.15:
            query["chunked"] = 1
        steps: list[str] = []
        budget = ATTEMPTS - 1
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            if budget and rng.random() < 0.8:
                steps.append(rng.choice(TRANSIENT).format(half=half))
                budget -= 1
            else:
                steps.append(rng.choice(ODD))
        steps = [s for s in steps if not (size == 0 and s.startswith(("cut", "reset", "pause")))]
        permanent = None
        roll = rng.random()
        if roll < 0.04:
            steps = ["status:404"] * 4  # enough for a mirror too: a 404 is not retried
            permanent = "404"
        elif roll < 0.07:
            query["digest"] = rng.choice(["repr", "legacy"])
            query["bad_digest"] = 1
            permanent = "digest"
        elif roll < 0.10:
            permanent = "checksum"
        plan = Plan(f"/f/c{index:04d}.bin", size, query, steps, permanent)
        plan.mirror = rng.random() < 0.1
        plans.append(plan)
    return plans


def chaos_requests(faults: FaultServer, rng: random.Random) -> tuple[list[Plan], list[Request]]:
    """The seeded plans, scripted into `faults`, and a `Request` for each."""
    plans = make_plans(rng)
    requests = []
    for plan in plans:
        faults.plan(plan.path, plan.steps)
        data = faults.content(plan.path, plan.size)
        if plan.permanent == "checksum":
            plan.checksum = "sha256:" + hashlib.sha256(data + b"x").hexdigest()
        elif rng.random() < 0.2 and not any(step.startswith("change") for step in plan.steps):
            # A right checksum, which must also hold across resumes and restarts.
            plan.checksum = "sha256:" + hashlib.sha256(data).hexdigest()
        mirrors = [faults.alt_url(plan.path, **plan.query)] if plan.mirror else []
        requests.append(
            Request(faults.url(plan.path, **plan.query), checksum=plan.checksum, mirrors=mirrors)
        )
    return plans, requests


def check_outcomes(
    faults: FaultServer, dest: Path, plans: list[Plan], outcomes: list[Outcome]
) -> None:
    """Hold every outcome to the promise in this module's docstring."""
    assert len(outcomes) == len(plans)
    leftovers = set(os.listdir(dest))
    problems = []
    for plan, outcome in zip(plans, outcomes, strict=True):
        name = plan.path.rsplit("/", 1)[-1]
        final = dest / name
        leftovers -= {name, f"{name}.part", f"{name}.part.state"}
        where = (
            f"seed {SEED}, {plan.path} {plan.query} {plan.steps} checksum={plan.checksum} "
            f"mirror={plan.mirror}"
        )
        if outcome.ok:
            if plan.permanent:
                problems.append(f"succeeded despite {plan.permanent}: {where}")
            elif final.read_bytes() != faults.content(plan.path, plan.size):
                problems.append(f"success with wrong bytes: {where}")
            elif outcome.size != final.stat().st_size:
                problems.append(f"size {outcome.size} != {final.stat().st_size}: {where}")
            if (dest / f"{name}.part").exists():
                problems.append(f"a .part left beside a success: {where}")
        else:
            if not isinstance(outcome.error, DownloadError):
                problems.append(f"failure without a DownloadError ({outcome.error!r}): {where}")
            if final.exists():
                problems.append(f"a failure left a final file: {where}")
            if not plan.permanent:
                problems.append(f"transient faults not outlasted ({outcome.error!r}): {where}")
    assert leftovers == set(), f"files nobody asked for: {sorted(leftovers)}"
    assert problems == [], "\n".join(problems[:20])


@pytest.mark.timeout(240)
async def test_chaos_every_outcome_is_exact_or_an_error_with_no_file(
    faults: FaultServer, dest: Path
) -> None:
    plans, requests = chaos_requests(faults, random.Random(SEED))
    retry = Retry(attempts=ATTEMPTS, backoff=0.001, max_delay=0.01)
    timeout = Timeout(read=0.5, connect=5)
    async with Downloader(
        dest=dest, retry=retry, timeout=timeout, limits=Limits(max_transfers=32, max_per_host=32)
    ) as dl:
        outcomes = await dl.download_many(requests)

    check_outcomes(faults, dest, plans, outcomes)
    # The run was chaotic for real: many retries, some resumed from the middle.
    assert sum(o.attempts > 1 for o in outcomes) > COUNT // 4
    assert sum(o.resumed_from > 0 for o in outcomes if o.ok) > 10
