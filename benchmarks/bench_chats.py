"""Two-agent chats: turns/s of 100 concurrent chats against the scripted server (0 ms latency).

Each chat is the classic pair: an `AssistantAgent` whose model always answers the same text, and
a `UserProxyAgent` (human_input_mode="NEVER", no code) that auto-replies until its
`max_consecutive_auto_reply` runs out. A turn is one message an agent produced after the opening
one: a model answer or an auto-reply. Every chat runs on one shared `Runtime`, over the same two
agent objects. As a baseline, the same number of model calls is made in the same run straight
through the model client with the same concurrency (no agents, no runtime), so the difference is
what the agent layer costs. The server runs in its own process. Writes
`benchmarks/results/chats.json`.

    .venv/bin/python benchmarks/bench_chats.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import machine, versions

from moot.agents import (
    AssistantAgent,
    UserProxyAgent,
)
from moot.models import ModelRequest, client_from_llm_config
from moot.runtime import Runtime

RESULTS = Path(__file__).resolve().parent / "results" / "chats.json"
REPLY = "Here is the next step of the analysis."


async def _chats(config: dict[str, Any], chats: int, auto_replies: int) -> tuple[float, int, int]:
    """Seconds, turns and model calls for `chats` concurrent chats on one runtime."""
    assistant = AssistantAgent("assistant", llm_config=config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config=False,
        max_consecutive_auto_reply=auto_replies,
        default_auto_reply="Continue.",
    )
    async with Runtime() as runtime:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                user.a_initiate_chat(assistant, message=f"task {n}", silent=True, runtime=runtime)
                for n in range(chats)
            )
        )
        took = time.perf_counter() - started
    turns = sum(len(result.chat_history) - 1 for result in results)
    calls = sum(result.cost.calls for result in results)
    return took, turns, calls


async def _raw_calls(config: dict[str, Any], calls: int, concurrency: int) -> float:
    """Seconds for the same model calls through the client alone, `concurrency` at a time."""
    client = client_from_llm_config(config)
    messages = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "x"}]
    request = ModelRequest(messages=messages)
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.create(request)

    async with client:
        await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm the pool
        remaining = calls
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


async def _measure(base_url: str, chats: int, auto_replies: int, rounds: int) -> dict[str, Any]:
    config = {"config_list": [{"model": "gpt-4o", "base_url": base_url, "api_key": "bench"}]}
    await _chats(config, min(chats, 10), 1)  # warm up imports and the server
    seconds: list[float] = []
    raw_seconds: list[float] = []
    turns = calls = 0
    for _ in range(rounds):
        took, turns, calls = await _chats(config, chats, auto_replies)
        seconds.append(took)
        raw_seconds.append(await _raw_calls(config, calls, chats))
    wall = statistics.median(seconds)
    raw = statistics.median(raw_seconds)
    return {
        "chats": chats,
        "concurrency": chats,
        "turns_per_chat": turns // chats,
        "model_calls_per_chat": calls // chats,
        "rounds": rounds,
        "median_round_seconds": round(wall, 4),
        "turns_per_second": round(turns / wall, 1),
        "model_calls_per_second": round(calls / wall, 1),
        "chats_per_second": round(chats / wall, 2),
        "baseline_model_calls_per_second": round(calls / raw, 1),
        "agent_layer_time_ratio": round(wall / raw, 3),
        "round_seconds": [round(s, 4) for s in seconds],
        "baseline_round_seconds": [round(s, 4) for s in raw_seconds],
    }


def _start_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moot.testing", "--reply", REPLY], stdout=subprocess.PIPE, text=True
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
    chats, auto_replies, rounds = (10, 2, 1) if args.quick else (100, 5, 3)
    process, base_url = _start_server()
    try:
        result = asyncio.run(_measure(base_url, chats, auto_replies, rounds))
    finally:
        process.terminate()
        process.wait()
    result.update(
        {
            "benchmark": "chats",
            "quick": args.quick,
            "server": "moot.testing scripted server in its own process, 0 ms latency",
            "baseline": "the same number of model calls through client_from_llm_config alone",
            "versions": versions("httpx", "anyio", "pydantic"),
            "machine": machine(),
        }
    )
    print(
        f"{result['chats']} concurrent two-agent chats, {result['turns_per_chat']} turns each"
        f" ({result['model_calls_per_chat']} model calls): {result['turns_per_second']} turns/s,"
        f" {result['model_calls_per_second']} model calls/s, {result['chats_per_second']} chats/s"
    )
    print(
        f"baseline (client alone, same calls): {result['baseline_model_calls_per_second']}"
        f" model calls/s; chats take {result['agent_layer_time_ratio']}x the baseline's time"
    )
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
