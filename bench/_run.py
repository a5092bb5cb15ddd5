"""`run_bench(config)`: every scenario's workloads over every load level, as `BenchResults`."""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any

import anyio

from ._config import LatencyDistribution
from ._load import closed_loop, open_loop
from ._results import BenchResults, Point, Series, machine, versions
from ._scenarios import WORKLOADS
from ._stats import Recorder, summarize

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._config import BenchConfig
    from ._scenarios import Workload


async def run_bench(
    config: BenchConfig, *, progress: Callable[[str], None] | None = None
) -> BenchResults:
    """Run `config`'s scenarios and return the figures.

    Raises:
        BenchConfigError: an unknown scenario or an impossible parameter (nothing ran).
        BenchEnvironmentError: a scenario needs something that is missing (e.g. Docker).
    """
    config.validate()
    say = progress or (lambda line: None)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    clock = time.perf_counter()
    series: list[Series] = []
    for scenario in config.scenarios:
        for workload_type in WORKLOADS[scenario]:
            if not workload_type.available(config):
                continue
            async with workload_type(config) as workload:
                points = []
                for position, level in enumerate(config.levels):
                    say(f"{workload.title}: level {level:g} ({position + 1}/{len(config.levels)})")
                    points.append(await run_level(workload, config, level, position))
                series.append(
                    Series(
                        scenario=workload.scenario,
                        workload=workload.name,
                        title=workload.title,
                        unit=workload.unit,
                        metric=workload.metric,
                        mode=config.mode,
                        points=tuple(points),
                        notes=tuple(workload.notes),
                    )
                )
    comparisons: list[dict[str, Any]] = []
    note = ""
    if config.compare and "chats" in config.scenarios and config.mode == "closed":
        from ._compare import compare_chats

        say("W3 on autogen-agentchat (comparison)")
        comparisons, note = await compare_chats(config, LatencyDistribution.parse(config.latency))
    return BenchResults(
        comparisons=tuple(comparisons),
        comparison_note=note,
        config=config.to_dict(),
        series=tuple(series),
        started=started,
        duration_s=time.perf_counter() - clock,
        machine=machine(),
        versions=versions("anyio", "httpx", "pydantic", "aiodocker", "rich"),
    )


async def run_level(workload: Workload, config: BenchConfig, level: float, position: int) -> Point:
    """Warm up (not recorded), then measure one load level of `workload`."""
    concurrency = int(level) if config.mode == "closed" else max(config.concurrency)
    ops = config.ops or workload.default_ops(concurrency)
    warmup = config.warmup if config.warmup is not None else workload.default_warmup(ops)
    with anyio.fail_after(config.timeout):
        if warmup:
            workload.recorder = Recorder(recording=False)
            await closed_loop(
                workload.op, concurrency=concurrency, ops=warmup, recorder=workload.recorder
            )
        gc.collect()
        recorder = workload.recorder = Recorder()
        if config.mode == "closed":
            outcome = await closed_loop(
                workload.op, concurrency=concurrency, ops=ops, recorder=recorder
            )
        else:
            outcome = await open_loop(
                workload.op,
                rate=level,
                ops=ops,
                max_in_flight=concurrency,
                seed=config.seed + position,
                recorder=recorder,
            )
    return Point(
        level=level,
        concurrency=concurrency,
        rate=level if config.mode == "open" else None,
        ops=outcome.ops,
        units=outcome.units,
        duration_s=outcome.duration_s,
        cpu_s=outcome.cpu_s,
        peak_rss_bytes=outcome.peak_rss_bytes,
        errors=dict(recorder.errors),
        latencies={
            name: summarize(samples) for name, samples in sorted(recorder.latencies.items())
        },
        extra=workload.level_extra(outcome.units),
    )
