"""Benchmark the "data" profile's image: cold build time, size, and the latency of a pandas job.

Prints a summary and writes benchmarks/results/data_image.json. `--quick` does fewer runs;
`--no-build` reuses the image instead of timing a fresh build.
Targets (issue 19): image <= 350 MB; cold build <= 60 s on the 2-core machine. A pandas job's p50
(import included) is reported in spawn and fork mode, beside a stdlib-only job as the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import aiodocker
import anyio
from _common import percentile, versions, write

from moot.executors import CodeBlock, DockerExecutor, build_image, image_tag

PANDAS_JOB = CodeBlock(
    "import pandas as pd\n"
    "frame = pd.DataFrame({'k': [i % 7 for i in range(10_000)], 'v': range(10_000)})\n"
    "print(frame.groupby('k').v.sum().iloc[0])\n",
    "python",
)
CHART_JOB = CodeBlock(
    "import matplotlib.pyplot as plt\nplt.plot(range(100))\nplt.savefig('chart.png')\n",
    "python",
)
BASELINE_JOB = CodeBlock("print(sum(range(10)))", "python")


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 1),
        "p90_ms": round(percentile(samples, 90) * 1000, 1),
        "mean_ms": round(statistics.fmean(samples) * 1000, 1),
        "n": len(samples),
    }


async def job_latency(tag: str, block: CodeBlock, runs: int) -> dict[str, dict[str, float]]:
    """Runs of one job in a spawn-mode and a fork-mode slot, alternating so that both see the
    same machine load, after two warm-up runs each."""
    samples: dict[str, list[float]] = {"spawn": [], "fork": []}
    async with (
        DockerExecutor(image=tag, mode="spawn", pool_size=1, timeout=120) as spawn,
        DockerExecutor(image=tag, mode="fork", pool_size=1, timeout=120) as fork,
        spawn.session() as spawn_session,
        fork.session() as fork_session,
    ):
        sessions = {"spawn": spawn_session, "fork": fork_session}
        for index in range(runs + 2):
            for mode, session in sessions.items():
                started = time.perf_counter()
                result = await session.run(block)
                took = time.perf_counter() - started
                if result.exit_code != 0:
                    raise SystemExit(f"the {mode} job failed: {result.stderr}")
                if index >= 2:
                    samples[mode].append(took)
    return {mode: summary_ms(values) for mode, values in samples.items()}


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    tag = image_tag("data")
    build: dict[str, object] = {"skipped": True}
    if not args.no_build:
        lines: list[str] = []
        started = time.perf_counter()
        await build_image("data", if_missing=False, progress=lines.append)
        build = {"cold_build_s": round(time.perf_counter() - started, 1), "log": lines}
    else:
        await build_image("data")
    async with aiodocker.Docker() as docker:
        info = await docker.images.inspect(tag)
    runs = 5 if args.quick else 25
    jobs: dict[str, dict[str, float]] = {}
    for name, block in (("pandas", PANDAS_JOB), ("baseline", BASELINE_JOB), ("chart", CHART_JOB)):
        for mode, figures in (await job_latency(tag, block, runs)).items():
            jobs[f"{name}_{mode}"] = figures
    return {
        "image": tag,
        "image_size_mb": round(info["Size"] / 1e6, 1),
        "build": build,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "jobs": jobs,
        "targets": {"image_size_mb": 350, "cold_build_s": 60},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per job instead of 25")
    parser.add_argument("--no-build", action="store_true", help="do not time a fresh build")
    args = parser.parse_args()
    result = anyio.run(main_async, args)
    path = write("data_image", {"versions": versions(), **result})
    build = result["build"]
    assert isinstance(build, dict)
    print(f"image {result['image']}: {result['image_size_mb']} MB")
    print(f"cold build: {build.get('cold_build_s', 'skipped')} s")
    jobs = result["jobs"]
    assert isinstance(jobs, dict)
    for name, figures in jobs.items():
        print(f"{name:>16}: p50 {figures['p50_ms']} ms  p90 {figures['p90_ms']} ms")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
