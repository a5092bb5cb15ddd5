"""Model-client overhead: 1,000 calls at concurrency 100 against the scripted server (0 ms latency).

The same request goes through raw `httpx.AsyncClient` (post, read, parse JSON) and through moot's
per-entry stack (retry, rate limit, `OpenAIClient`) on an identical `httpx.AsyncClient`,
alternating rounds in one run; the ratio of their per-call times is the client's overhead
(target: at most 1.3x). A third row shows the stack on its default sharded `ConnectionPool`.
The server runs in its own process so that its work is not charged to any client. Writes
`benchmarks/results/model_client.json`.

    .venv/bin/python benchmarks/bench_model_client.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from moot.models import ModelConfig, ModelRequest, RetryPolicy, client_from_config

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

RESULTS = Path(__file__).resolve().parent / "results" / "model_client.json"
TARGET = 1.3
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Compute the 10th Fibonacci number and say TERMINATE."},
]


async def _run_calls(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    """Seconds to make `calls` calls with `concurrency` workers."""
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return time.perf_counter() - started


async def _measure(base_url: str, calls: int, concurrency: int, rounds: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    body = {"model": "scripted", "messages": MESSAGES}
    url = f"{base_url}/chat/completions"
    headers = {"authorization": "Bearer bench"}
    raw_http = httpx.AsyncClient(limits=limits, timeout=None)
    moot_http = httpx.AsyncClient(limits=limits, timeout=None)
    config = ModelConfig(model="scripted", base_url=base_url, api_key="bench")
    # The stack `client_from_llm_config` builds per entry: retry(rate limit(HTTP)).
    client = client_from_config(config, http=moot_http, retry=RetryPolicy())
    pooled = client_from_config(config, retry=RetryPolicy())  # its own sharded ConnectionPool

    async def raw_call() -> object:
        response = await raw_http.post(url, json=body, headers=headers)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    async def moot_call() -> object:
        return (await client.create(ModelRequest(messages=MESSAGES))).content

    async def pooled_call() -> object:
        return (await pooled.create(ModelRequest(messages=MESSAGES))).content

    contenders = (("raw_httpx", raw_call), ("moot", moot_call), ("moot_pool", pooled_call))
    timings: dict[str, list[float]] = {name: [] for name, _ in contenders}
    cpu: dict[str, list[float]] = {name: [] for name, _ in contenders}
    async with raw_http, moot_http, client, pooled:
        for _, call in contenders:
            await _run_calls(call, concurrency, concurrency)  # warm the pools
        for _ in range(rounds):
            for name, call in contenders:
                cpu_started = time.process_time()
                timings[name].append(await _run_calls(call, calls, concurrency))
                cpu[name].append(time.process_time() - cpu_started)
    per_call = {name: statistics.median(values) / calls * 1e6 for name, values in timings.items()}
    cpu_per_call = {name: statistics.median(values) / calls * 1e6 for name, values in cpu.items()}
    return {
        "calls": calls,
        "concurrency": concurrency,
        "rounds": rounds,
        "wall_us_per_call": {k: round(v, 1) for k, v in per_call.items()},
        "client_cpu_us_per_call": {k: round(v, 1) for k, v in cpu_per_call.items()},
        "calls_per_second": {k: round(1e6 / v) for k, v in per_call.items()},
        "ratio": round(per_call["moot"] / per_call["raw_httpx"], 3),
        "cpu_ratio": round(cpu_per_call["moot"] / cpu_per_call["raw_httpx"], 3),
        "pool_ratio": round(per_call["moot_pool"] / per_call["raw_httpx"], 3),
        "round_seconds": {k: [round(v, 4) for v in values] for k, values in timings.items()},
    }


def _start_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moot.testing", "--reply", "The 10th Fibonacci number is 55."],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the scripted server did not start (got {base_url!r})")
    return process, base_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the benchmark")
    args = parser.parse_args()
    calls, concurrency, rounds = (100, 10, 3) if args.quick else (1000, 100, 5)

    process, base_url = _start_server()
    try:
        result = anyio.run(_measure, base_url, calls, concurrency, rounds)
    finally:
        process.terminate()
        process.wait()

    result.update(
        {
            "benchmark": "model_client",
            "quick": args.quick,
            "target_ratio": TARGET,
            "meets_target": float(str(result["ratio"])) <= TARGET,
            "baseline": "httpx.AsyncClient.post + response.json(), same request, same pool limits",
            "versions": {
                "python": platform.python_version(),
                **{name: version(name) for name in ("moot", "httpx", "httpcore", "anyio")},
                "pydantic": version("pydantic"),
            },
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
            },
        }
    )
    _print_table(result)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS}")


def _print_table(result: dict[str, Any]) -> None:
    wall, cpu, rate = (
        result["wall_us_per_call"],
        result["client_cpu_us_per_call"],
        result["calls_per_second"],
    )
    print(
        f"model client benchmark: {result['calls']} calls, concurrency {result['concurrency']},"
        f" {result['rounds']} round(s), median round"
    )
    print(f"{'client':<12}{'wall us/call':>14}{'calls/s':>10}{'client CPU us/call':>20}")
    for name in ("raw_httpx", "moot", "moot_pool"):
        print(f"{name:<12}{wall[name]:>14.1f}{rate[name]:>10}{cpu[name]:>20.1f}")
    verdict = "meets" if result["meets_target"] else "MISSES"
    print(
        f"ratio moot/raw: {result['ratio']:.3f} wall, {result['cpu_ratio']:.3f} client CPU"
        f" ({verdict} the target <= {TARGET})"
    )
    print(f"moot with its own sharded ConnectionPool / raw: {result['pool_ratio']:.3f} wall")


if __name__ == "__main__":
    main()
