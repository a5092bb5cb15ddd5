"""Load generators: closed-loop (C workers back to back) and open-loop (seeded Poisson arrivals).

An operation is `op(index, recorder) -> units`: it does one unit of work or more (one request,
one chat of T turns), records its own latencies, and returns how many units it completed. The
driver times the whole level, counts CPU seconds of this process, and turns exceptions into
errors by type. Open-loop latencies are measured from the scheduled arrival, so a backlog shows
up as latency instead of being hidden (no coordinated omission).
"""

from __future__ import annotations

import random
import resource
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._stats import Recorder

Mode = Literal["closed", "open"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelOutcome:
    """What one load level did, before it is summarized."""

    ops: int
    units: int
    duration_s: float
    cpu_s: float
    peak_rss_bytes: int
    overloaded: int  # open loop: arrivals refused because `max_in_flight` ops were running


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _guarded(
    op: Callable[[int, Recorder, float], Awaitable[int]],
    index: int,
    recorder: Recorder,
    due: float,
) -> int:
    try:
        return await op(index, recorder, due)
    except Exception as exc:
        recorder.error(exc)
        return 0


async def closed_loop(
    op: Callable[[int, Recorder, float], Awaitable[int]],
    *,
    concurrency: int,
    ops: int,
    recorder: Recorder,
) -> LevelOutcome:
    """`concurrency` workers take the next op index until `ops` have been issued."""
    next_index = 0
    units = 0

    async def worker() -> None:
        nonlocal next_index, units
        while next_index < ops:
            index = next_index
            next_index += 1
            # Await first: `units += await ...` would read `units` before the await.
            done = await _guarded(op, index, recorder, time.perf_counter())
            units += done

    cpu, start = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(min(concurrency, ops)):
            group.start_soon(worker)
    return LevelOutcome(
        ops=ops,
        units=units,
        duration_s=time.perf_counter() - start,
        cpu_s=time.process_time() - cpu,
        peak_rss_bytes=peak_rss_bytes(),
        overloaded=0,
    )


async def open_loop(
    op: Callable[[int, Recorder, float], Awaitable[int]],
    *,
    rate: float,
    ops: int,
    max_in_flight: int,
    seed: int,
    recorder: Recorder,
) -> LevelOutcome:
    """Start `ops` operations at Poisson arrivals of `rate` per second (seeded), at most
    `max_in_flight` at once; an arrival beyond that counts as an `Overloaded` error."""
    arrivals = random.Random(seed)
    in_flight = 0
    units = 0
    overloaded = 0

    async def one(index: int, due: float) -> None:
        nonlocal in_flight, units
        try:
            done = await _guarded(op, index, recorder, due)
            units += done
        finally:
            in_flight -= 1

    cpu, start = time.process_time(), time.perf_counter()
    due = start
    async with anyio.create_task_group() as group:
        for index in range(ops):
            due += arrivals.expovariate(rate)
            delay = due - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            if in_flight >= max_in_flight:
                overloaded += 1
                if recorder.recording:
                    recorder.errors["Overloaded"] += 1
                continue
            in_flight += 1
            group.start_soon(one, index, due)
    return LevelOutcome(
        ops=ops,
        units=units,
        duration_s=time.perf_counter() - start,
        cpu_s=time.process_time() - cpu,
        peak_rss_bytes=peak_rss_bytes(),
        overloaded=overloaded,
    )
