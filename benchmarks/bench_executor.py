"""Benchmark the Docker executor against `docker run --rm` and `docker exec` per job, in one run.

Prints a table and writes benchmarks/results/executor.json. `--quick` does a tiny run.
Targets (issue 5): warm p50 <= 15 ms; >= 80 runs/s spawn and >= 300 runs/s fork at concurrency 8;
<= 25 MiB per warm slot; a 2 s timeout returns by 2.05 s; a slot is usable again within 400 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiodocker
import anyio

from moot.executors import CodeBlock, DockerExecutor, ExecutorSession, SandboxError, build_image

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

JOB = CodeBlock("print(sum(range(10)))", "python")
SOURCE = "print(sum(range(10)))"
RESULTS = Path(__file__).resolve().parent / "results" / "executor.json"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 2),
        "p90_ms": round(percentile(samples, 90) * 1000, 2),
        "p99_ms": round(percentile(samples, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
        "n": len(samples),
    }


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def latency(session: ExecutorSession, runs: int, gap: float = 0.0) -> list[float]:
    """Sequential runs; `gap` is an idle pause between runs, as a model's turn gives in a chat."""
    for _ in range(5):
        await session.run(JOB)
    samples = []
    for _ in range(runs):
        if gap:
            await anyio.sleep(gap)
        started = time.perf_counter()
        result = await session.run(JOB)
        samples.append(time.perf_counter() - started)
        assert result.stdout == "45\n", result
    return samples


async def throughput(executor: DockerExecutor, concurrency: int, seconds: float) -> float:
    """Runs/s with `concurrency` callers sharing the pool's slots (one session per slot)."""
    done = 0
    sessions: list[ExecutorSession] = []
    async with anyio.create_task_group() as opener:

        async def hold(ready: anyio.Event, release: anyio.Event) -> None:
            async with executor.session() as session:
                sessions.append(session)
                ready.set()
                await release.wait()

        release = anyio.Event()
        for _ in range(min(concurrency, executor.pool_size)):
            ready = anyio.Event()
            opener.start_soon(hold, ready, release)
            await ready.wait()
        for session in sessions:
            await session.run(JOB)
        deadline = time.perf_counter() + seconds

        async def worker(session: ExecutorSession) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                result = await session.run(JOB)
                assert result.exit_code == 0, result
                done += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as workers:
            for i in range(concurrency):
                workers.start_soon(worker, sessions[i % len(sessions)])
        elapsed = time.perf_counter() - started
        release.set()
    return done / elapsed


async def cli(*argv: str) -> None:
    await anyio.run_process(list(argv), check=True)


async def baselines(image: str, runs: int, exec_concurrency: int) -> dict[str, Any]:
    run_samples = [
        await timed(
            lambda: cli(
                "docker", "run", "--rm", "--network", "none", image, "python3", "-c", SOURCE
            )
        )
        for _ in range(runs)
    ]
    name = f"moot-bench-exec-{os.getpid()}"
    await cli(
        "docker",
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "exec python3 -c 'import time; time.sleep(3600)'",
    )
    try:
        exec_samples = [
            await timed(lambda: cli("docker", "exec", name, "python3", "-c", SOURCE))
            for _ in range(runs * 2)
        ]
        count = 0
        deadline = time.perf_counter() + 3

        async def exec_worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await cli("docker", "exec", name, "python3", "-c", SOURCE)
                count += 1

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(exec_concurrency):
                group.start_soon(exec_worker)
        exec_rate = count / (time.perf_counter() - started)
    finally:
        await anyio.run_process(["docker", "rm", "-f", name], check=False)
    return {
        "docker_run_rm": summary_ms(run_samples),
        "docker_exec": summary_ms(exec_samples),
        f"docker_exec_runs_per_s_c{exec_concurrency}": round(exec_rate, 1),
    }


async def _all_stats(containers: list[Any]) -> list[dict[str, Any]]:
    """One stats sample per container, fetched concurrently (each takes the engine ~1 s)."""
    samples: list[dict[str, Any]] = []

    async def one(container: Any) -> None:
        (stats,) = await container.stats(stream=False)
        samples.append(stats)

    async with anyio.create_task_group() as group:
        for container in containers:
            group.start_soon(one, container)
    return samples


async def pool_cpu_s(executor: DockerExecutor) -> float:
    """CPU seconds the pool's containers have used so far (cgroup accounting, via the engine)."""
    docker = aiodocker.Docker()
    try:
        containers = await docker.containers.list(
            filters=json.dumps({"label": [f"moot.pool={executor.pool_id}"]})
        )
        samples = await _all_stats(containers)
        return sum(stats["cpu_stats"]["cpu_usage"]["total_usage"] for stats in samples) / 1e9
    finally:
        await docker.close()


async def cpu_per_job(
    executor: DockerExecutor, session: ExecutorSession, runs: int
) -> dict[str, float]:
    """CPU per job in the container and in this host process: capacity independent of noise."""
    container_before = await pool_cpu_s(executor)
    host_before = time.process_time()
    for _ in range(runs):
        await session.run(JOB)
    host = (time.process_time() - host_before) / runs
    container = (await pool_cpu_s(executor) - container_before) / runs
    cores = os.cpu_count() or 1
    return {
        "container_cpu_ms": round(container * 1000, 2),
        "host_cpu_ms": round(host * 1000, 2),
        "capacity_runs_per_s_all_cores": round(cores / (container + host), 1),
    }


async def slot_memory_mib(executor: DockerExecutor) -> float:
    docker = aiodocker.Docker()
    try:
        containers = await docker.containers.list(
            filters=json.dumps({"label": [f"moot.pool={executor.pool_id}"]})
        )
        usages = []
        for stats in await _all_stats(containers):
            memory = stats["memory_stats"]
            cache = memory.get("stats", {}).get("cache", 0) or memory.get("stats", {}).get(
                "inactive_file", 0
            )
            usages.append((memory["usage"] - cache) / 2**20)
        return round(statistics.fmean(usages), 2)
    finally:
        await docker.close()


async def timeouts(image: str) -> dict[str, float]:
    async with DockerExecutor(image=image, pool_size=1) as executor:
        async with executor.session() as session:
            await session.run(JOB)
            started = time.perf_counter()
            result = await session.run(
                CodeBlock("import time; time.sleep(60)", "python"), timeout=2
            )
            returned = time.perf_counter() - started
            assert result.timed_out
            recovered = await timed(lambda: session.run(JOB))
            docker = aiodocker.Docker()
            try:
                (container,) = await docker.containers.list(
                    filters=json.dumps({"label": [f"moot.pool={executor.pool_id}"]})
                )
                await container.kill()
            finally:
                await docker.close()
            try:
                await session.run(JOB)
            except SandboxError:
                pass
            replaced = await timed(lambda: session.run(JOB))
    return {
        "timeout_2s_returned_s": round(returned, 3),
        "slot_usable_after_timeout_s": round(recovered, 3),
        "slot_usable_after_replacement_s": round(replaced, 3),
    }


async def main(quick: bool) -> dict[str, Any]:
    runs = 30 if quick else 300
    seconds = 1.0 if quick else 4.0
    started = time.perf_counter()
    image = await build_image(if_missing=True)
    image_seconds = time.perf_counter() - started
    report: dict[str, Any] = {"image": image, "image_ready_s": round(image_seconds, 2)}
    docker = aiodocker.Docker()
    try:
        info = await docker.images.inspect(image)
        report["image_size_mb"] = round(info["Size"] / 1e6, 1)
        engine = await docker.version()
    finally:
        await docker.close()

    for mode in ("spawn", "fork"):
        started = time.perf_counter()
        async with DockerExecutor(image=image, pool_size=8, mode=mode) as executor:  # type: ignore[arg-type]
            pool_start = time.perf_counter() - started
            async with executor.session() as session:
                samples = await latency(session, runs)
                paced = await latency(session, max(20, runs // 3), gap=0.03)
                cpu = await cpu_per_job(executor, session, runs)
            rates = {f"c{c}": round(await throughput(executor, c, seconds), 1) for c in (1, 8, 32)}
            memory = await slot_memory_mib(executor)
        report[mode] = {
            "pool_of_8_start_s": round(pool_start, 3),
            "warm_latency": summary_ms(samples),
            "warm_latency_30ms_between_runs": summary_ms(paced),
            "runs_per_s": rates,
            "memory_per_warm_slot_mib": memory,
            "cpu_per_job": cpu,
        }
    report["timeouts"] = await timeouts(image)
    report["baselines"] = await baselines(image, 5 if quick else 15, 8)
    spawn_p50 = report["spawn"]["warm_latency"]["p50_ms"]
    report["ratios"] = {
        "docker_exec_p50_over_spawn_p50": round(
            report["baselines"]["docker_exec"]["p50_ms"] / spawn_p50, 1
        ),
        "docker_run_p50_over_spawn_p50": round(
            report["baselines"]["docker_run_rm"]["p50_ms"] / spawn_p50, 1
        ),
        "spawn_c8_over_docker_exec_c8": round(
            report["spawn"]["runs_per_s"]["c8"] / report["baselines"]["docker_exec_runs_per_s_c8"],
            1,
        ),
        "fork_c8_over_docker_exec_c8": round(
            report["fork"]["runs_per_s"]["c8"] / report["baselines"]["docker_exec_runs_per_s_c8"],
            1,
        ),
    }
    report["targets"] = {
        "warm_p50_ms<=15": spawn_p50 <= 15,
        "spawn_c8>=80": report["spawn"]["runs_per_s"]["c8"] >= 80,
        "fork_c8>=300": report["fork"]["runs_per_s"]["c8"] >= 300,
        "memory_per_slot_mib<=25": report["spawn"]["memory_per_warm_slot_mib"] <= 25,
        "timeout_2s_returns_by_2.05": report["timeouts"]["timeout_2s_returned_s"] <= 2.05,
        "slot_usable_within_0.4s": report["timeouts"]["slot_usable_after_replacement_s"] <= 0.4,
        "pool_of_8_start<=1.5s": report["spawn"]["pool_of_8_start_s"] <= 1.5,
        "image<=70MB": report["image_size_mb"] <= 70,
    }
    report["versions"] = {
        "python": sys.version.split()[0],
        "docker_engine": engine.get("Version"),
        "aiodocker": version("aiodocker"),
        "anyio": version("anyio"),
    }
    report["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    report["quick"] = quick
    return report


def print_table(report: dict[str, Any]) -> None:
    rows = [("image", f"{report['image']} ({report['image_size_mb']} MB)")]
    for mode in ("spawn", "fork"):
        data = report[mode]
        lat = data["warm_latency"]
        rows += [
            (
                f"{mode} warm latency",
                f"p50 {lat['p50_ms']} ms  p90 {lat['p90_ms']} ms  p99 {lat['p99_ms']} ms",
            ),
            (
                f"{mode} latency, 30 ms gaps",
                f"p50 {data['warm_latency_30ms_between_runs']['p50_ms']} ms"
                f"  p99 {data['warm_latency_30ms_between_runs']['p99_ms']} ms",
            ),
            (f"{mode} runs/s", "  ".join(f"{k}={v}" for k, v in data["runs_per_s"].items())),
            (f"{mode} memory/slot", f"{data['memory_per_warm_slot_mib']} MiB"),
            (f"{mode} cpu/job", "  ".join(f"{k}={v}" for k, v in data["cpu_per_job"].items())),
            (f"{mode} pool of 8 start", f"{data['pool_of_8_start_s']} s"),
        ]
    base = report["baselines"]
    rows += [
        ("docker run --rm/job", f"p50 {base['docker_run_rm']['p50_ms']} ms"),
        (
            "docker exec/job",
            f"p50 {base['docker_exec']['p50_ms']} ms"
            f"  c8 {base['docker_exec_runs_per_s_c8']} runs/s",
        ),
    ]
    rows += [(key, str(value)) for key, value in report["timeouts"].items()]
    rows += [(key, str(value)) for key, value in report["ratios"].items()]
    rows += [(f"target {key}", "met" if ok else "MISSED") for key, ok in report["targets"].items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds, not minutes)")
    arguments = parser.parse_args()
    result = anyio.run(main, arguments.quick)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {RESULTS}")
