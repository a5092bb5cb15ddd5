"""Benchmark kernel mode: a warm kernel's latency per cell against spawn and fork mode, same run.

Prints a summary and writes benchmarks/results/kernel.json. `--quick` does fewer runs.
Every mode runs on the same image (the "kernel" profile with "data"), one slot each, the runs
alternating so that all three see the same machine load. Two cells: a stdlib one-liner, and a
pandas group-by (the kernel imported pandas in an earlier cell; spawn and fork import it per job,
as a script must). The images' sizes are reported too (issue 16).
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

IMPORT = "import pandas as pd\n"
PANDAS = (
    "frame = pd.DataFrame({'k': [i % 7 for i in range(10_000)], 'v': range(10_000)})\n"
    "print(frame.groupby('k').v.sum().iloc[0])\n"
)
BASELINE = "print(sum(range(10)))\n"
MODES = ("kernel", "spawn", "fork")


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 1),
        "p90_ms": round(percentile(samples, 90) * 1000, 1),
        "mean_ms": round(statistics.fmean(samples) * 1000, 1),
        "n": len(samples),
    }


async def cell_latency(tag: str, runs: int) -> dict[str, dict[str, float]]:
    """Per-cell latency of each job in each mode, after two warm-up runs each."""
    samples: dict[str, list[float]] = {}
    async with (
        DockerExecutor(image=tag, mode="kernel", pool_size=1, timeout=120) as kernel,
        DockerExecutor(image=tag, mode="spawn", pool_size=1, timeout=120) as spawn,
        DockerExecutor(image=tag, mode="fork", pool_size=1, timeout=120) as fork,
        kernel.session() as kernel_session,
        spawn.session() as spawn_session,
        fork.session() as fork_session,
    ):
        sessions = {"kernel": kernel_session, "spawn": spawn_session, "fork": fork_session}
        await kernel_session.run(CodeBlock(IMPORT, "python"))  # the chat's earlier cell
        for job, code in (("baseline", BASELINE), ("pandas", PANDAS)):
            for index in range(runs + 2):
                for mode, session in sessions.items():
                    source = code if mode == "kernel" or job == "baseline" else IMPORT + code
                    started = time.perf_counter()
                    result = await session.run(CodeBlock(source, "python"))
                    took = time.perf_counter() - started
                    if result.exit_code != 0:
                        raise SystemExit(f"the {mode} {job} job failed: {result.stderr}")
                    if index >= 2:
                        samples.setdefault(f"{job}_{mode}", []).append(took)
    return {name: summary_ms(values) for name, values in samples.items()}


async def image_size_mb(docker: aiodocker.Docker, tag: str) -> float:
    info = await docker.images.inspect(tag)
    return round(info["Size"] / 1e6, 1)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    tag = await build_image(["kernel", "data"])
    kernel_only = await build_image("kernel")
    async with aiodocker.Docker() as docker:
        sizes = {
            "kernel_mb": await image_size_mb(docker, kernel_only),
            "kernel_data_mb": await image_size_mb(docker, tag),
            "base_mb": await image_size_mb(docker, await build_image()),
        }
    runs = 5 if args.quick else 30
    jobs = await cell_latency(tag, runs)
    return {
        "image": tag,
        "image_kernel_only": image_tag("kernel"),
        "image_sizes": sizes,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "jobs": jobs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per job instead of 30")
    args = parser.parse_args()
    result = anyio.run(main_async, args)
    path = write("kernel", {"versions": versions(), **result})
    print(f"image sizes: {result['image_sizes']}")
    jobs = result["jobs"]
    assert isinstance(jobs, dict)
    for name, figures in jobs.items():
        print(f"{name:>16}: p50 {figures['p50_ms']} ms  p90 {figures['p90_ms']} ms")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
