"""Many chats that run code on a small sandbox pool (issue 17, item 11): a slot per code run.

1,000 concurrent two-agent chats on one runtime each run code twice (write a file, read it back)
in a pool of 8 real Docker sandboxes; the assistant's replies come from `moot.testing`'s scripted
server. A chat holds a slot only while its code runs, so all finish. Reported: wall time, runs/s,
slot utilisation (slot-seconds held / (pool size x wall time)) and how many runs failed. As a
baseline, the same number of runs goes straight through the pool in the same run: 8 callers, one
session each held throughout (no agents, no model, no lease per run). Writes
`benchmarks/results/code_chats.json`.

    .venv/bin/python benchmarks/bench_code_chats.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from _common import versions, write

from moot.agents import AssistantAgent, UserProxyAgent
from moot.executors import CodeBlock, DockerExecutor, Executor, ExecutorSession, build_image
from moot.runtime import Runtime
from moot.testing import RecordedRequest, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

POOL = 8
WRITE = "```python\nopen('note.txt', 'w').write('hello')\nprint('written')\n```"
READ = "```python\nprint(open('note.txt').read())\n```"


def _reply(request: RecordedRequest) -> str:
    """Write a file, read it back, then stop: three model answers per chat."""
    runs = sum(str(m.get("content") or "").startswith("exitcode:") for m in request.messages)
    return [WRITE, READ, "Done. TERMINATE"][min(runs, 2)]


class SlotClock(Executor):
    """Wraps the pool and adds up how long sessions (slots) are held."""

    def __init__(self, inner: DockerExecutor) -> None:
        self.inner = inner
        self.held_s = 0.0
        self.leases = 0

    def session(self, work_dir: Any = None) -> AbstractAsyncContextManager[ExecutorSession]:
        return self._session(work_dir)

    @asynccontextmanager
    async def _session(self, work_dir: Any) -> AsyncIterator[ExecutorSession]:
        async with self.inner.session(work_dir) as session:
            started = time.perf_counter()
            try:
                yield session
            finally:
                self.held_s += time.perf_counter() - started
                self.leases += 1

    async def aclose(self) -> None:
        """The pool is the caller's to close."""


async def chats(pool: DockerExecutor, config: dict[str, Any], count: int) -> dict[str, Any]:
    clock = SlotClock(pool)
    assistant = AssistantAgent("assistant", llm_config=config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config={"executor": clock, "work_dir": None, "timeout": 60},
    )
    async with Runtime() as runtime:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                user.a_initiate_chat(assistant, message=f"task {n}", silent=True, runtime=runtime)
                for n in range(count)
            ),
            return_exceptions=True,
        )
        wall = time.perf_counter() - started
    crashed = [r for r in results if isinstance(r, BaseException)]
    replies = [
        m["content"]
        for r in results
        if not isinstance(r, BaseException)
        for m in r.chat_history
        if str(m.get("content") or "").startswith("exitcode:")
    ]
    succeeded = sum(r.startswith("exitcode: 0") for r in replies)
    finished = count - len(crashed)
    return {
        "chats": count,
        "chats_finished": finished,
        "chats_crashed": len(crashed),
        "crash_examples": [repr(e)[:200] for e in crashed[:3]],
        "code_runs": len(replies),
        "code_runs_succeeded": succeeded,
        "code_runs_failed": len(replies) - succeeded,
        "second_run_read_the_first_runs_file": sum("Code output: hello" in r for r in replies),
        "wall_s": round(wall, 3),
        "chats_per_s": round(finished / wall, 2),
        "code_runs_per_s": round(len(replies) / wall, 1),
        "slot_leases": clock.leases,
        "slot_seconds_held": round(clock.held_s, 3),
        "slot_utilisation": round(clock.held_s / (pool.pool_size * wall), 3),
    }


async def baseline(pool: DockerExecutor, runs: int) -> dict[str, Any]:
    """The same number of runs straight through the pool: 8 callers, one session each."""
    remaining = runs
    job = CodeBlock("print('x')", "python")

    async def caller() -> None:
        nonlocal remaining
        async with pool.session() as session:
            while remaining > 0:
                remaining -= 1
                await session.run(job)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(pool.pool_size)))
    wall = time.perf_counter() - started
    return {"code_runs": runs, "wall_s": round(wall, 3), "code_runs_per_s": round(runs / wall, 1)}


async def main(count: int) -> dict[str, Any]:
    image = await build_image(if_missing=True)
    with ScriptedModelServer(default=_reply) as server:
        config = {"config_list": server.config_list(model="gpt-4o")}
        async with DockerExecutor(image=image, pool_size=POOL, lease_timeout=900) as pool:
            await chats(pool, config, min(count, 16))  # warm up imports, server and slots
            measured = await chats(pool, config, count)
            raw = await baseline(pool, measured["code_runs"])
    measured["baseline_pool_alone"] = raw
    measured["agent_and_lease_per_run_time_ratio"] = round(measured["wall_s"] / raw["wall_s"], 2)
    return measured


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 chats instead of 1,000")
    args = parser.parse_args()
    chat_count = 50 if args.quick else 1000
    report = asyncio.run(main(chat_count))
    report.update(
        {
            "pool_size": POOL,
            "quick": args.quick,
            "server": "moot.testing ScriptedModelServer on a thread of this process, 0 ms latency",
            "baseline": "the same runs through the pool alone, 8 callers holding one session each",
            "versions": versions("anyio", "aiodocker", "httpx"),
        }
    )
    print(
        f"{report['chats_finished']}/{report['chats']} chats finished, {report['code_runs']} code"
        f" runs ({report['code_runs_failed']} failed) on a pool of {POOL} in {report['wall_s']} s:"
        f" {report['code_runs_per_s']} runs/s, slot utilisation {report['slot_utilisation']}"
    )
    print(
        f"baseline (pool alone, same runs): {report['baseline_pool_alone']['code_runs_per_s']}"
        f" runs/s; chats take {report['agent_and_lease_per_run_time_ratio']}x its time"
    )
    if not args.quick:
        print(f"wrote {write('code_chats', report)}")
