"""Structured output: the schema-valid rate and repairs per answer (`moot bench structured`).

Against the scripted server (a seeded 30 % of first answers miss a required field) at
concurrency 1, 4 and 16, and, when the model is cached and llama-cpp-python is installed, the
embedded Qwen2.5-Coder-0.5B under the schema grammar on twenty prompts at concurrency 1 (its
engine answers one chat at a time). Writes `benchmarks/results/structured.json`.

    .venv/bin/python benchmarks/bench_structured.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio
from _common import versions, write

from moot.bench import BenchConfig, run_bench
from moot.bench._scenarios import embedded_model_absent


async def _run(quick: bool) -> dict[str, Any]:
    scripted = BenchConfig(
        scenarios=("structured",),
        concurrency=(1, 4) if quick else (1, 4, 16),
        ops=20 if quick else 100,
        warmup=2,
        latency="const:0.001",
        invalid_share=0.3,
        embedded=False,
    )
    figures: dict[str, Any] = {"scripted": _series(await run_bench(scripted))}
    absent = embedded_model_absent()
    if absent is None:
        embedded = BenchConfig(
            scenarios=("structured",),
            concurrency=(1,),
            ops=4 if quick else 20,
            warmup=1,
            latency="const:0",
        )
        results = await run_bench(embedded)
        figures["embedded"] = _series(results, workload="embedded")
    else:
        figures["embedded"] = {"skipped": absent}
    return figures


def _series(results: Any, workload: str = "scripted") -> list[dict[str, Any]]:
    (series,) = [s for s in results.series if s.workload == workload]
    return [
        {
            "concurrency": point.concurrency,
            "answers": point.units,
            **point.extra,
            "answer_p50_s": point.latencies[series.metric].p50,
            "cpu_per_answer_ms": point.cpu_per_unit_ms,
            "errors": dict(point.errors),
        }
        for point in series.points
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    figures = anyio.run(_run, args.quick)
    path = write("structured", {"versions": versions("pydantic", "llama_cpp_python"), **figures})
    for name in ("scripted", "embedded"):
        print(name, figures[name])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
