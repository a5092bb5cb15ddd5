"""Runtime benchmarks W1 (request/reply), W2 (fan-out) and W4 (activation), each against a
baseline measured in the same run. Results go to benchmarks/results/runtime.json.

    python benchmarks/bench_runtime.py [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from dataclasses import dataclass
from typing import Any

from _common import median, rss_bytes, run_peer, versions, write

from moot.runtime import (
    Agent,
    AgentId,
    Envelope,
    Runtime,
    TopicId,
    TypeSubscription,
    handler,
)


@dataclass
class Ping:
    n: int


class Ponger(Agent):
    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> int:
        return message.n


@dataclass
class Run:
    n: int


class Pinger(Agent):
    """Sends `n` pings to the ponger from inside its own handler (agent -> agent)."""

    @handler
    async def on_run(self, message: Run, ctx: Envelope) -> float:
        target = AgentId("ponger", "1")
        send = self.context.send
        start = time.perf_counter()
        for i in range(message.n):
            await send(Ping(i), target, timeout=5.0)
        return time.perf_counter() - start


class Sink(Agent):
    __slots__ = ()
    remaining = 0
    done: asyncio.Event

    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> None:
        Sink.remaining -= 1
        if Sink.remaining == 0:
            Sink.done.set()


class Idle(Agent):
    """The smallest useful agent: the benchmark measures what the runtime adds."""

    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> None:
        return None


# --------------------------------------------------------------------------- W1


async def raw_future_roundtrip(n: int) -> float:
    """Baseline: client puts (item, Future) on a server task's queue and awaits the Future."""
    queue: asyncio.Queue[tuple[int, asyncio.Future[int]]] = asyncio.Queue()

    async def server() -> None:
        while True:
            item, future = await queue.get()
            future.set_result(item)

    task = asyncio.create_task(server())
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for i in range(n):
        future = loop.create_future()
        queue.put_nowait((i, future))
        await future
    elapsed = time.perf_counter() - start
    task.cancel()
    return elapsed


async def w1(n: int, repeat: int) -> dict[str, Any]:
    raw, external, agent = [], [], []
    async with Runtime() as rt:
        rt.register("ponger", Ponger)
        rt.register("pinger", Pinger)
        target = AgentId("ponger", "1")
        await rt.send(Ping(0), target)
        for _ in range(repeat):
            raw.append(await raw_future_roundtrip(n) / n * 1e6)
            start = time.perf_counter()
            for i in range(n):
                await rt.send(Ping(i), target, timeout=5.0)
            external.append((time.perf_counter() - start) / n * 1e6)
            agent.append(await rt.send(Run(n), AgentId("pinger", "1")) / n * 1e6)
    r, e, a = median(raw), median(external), median(agent)
    return {
        "n": n,
        "raw_future_us": r,
        "moot_external_us": e,
        "moot_agent_to_agent_us": a,
        "ratio_external": e / r,
        "ratio_agent_to_agent": a / r,
        "target_ratio": 2.0,
        "deadline_on_every_send": True,
    }


# --------------------------------------------------------------------------- W2


async def raw_fanout(messages: int, subscribers: int) -> float:
    """Baseline: one asyncio.Queue per subscriber task, put_nowait on each."""
    queues: list[asyncio.Queue[Ping]] = [asyncio.Queue() for _ in range(subscribers)]
    remaining = messages * subscribers
    done = asyncio.Event()

    async def consume(queue: asyncio.Queue[Ping]) -> None:
        nonlocal remaining
        while True:
            await queue.get()
            remaining -= 1
            if remaining == 0:
                done.set()

    tasks = [asyncio.create_task(consume(q)) for q in queues]
    start = time.perf_counter()
    for i in range(messages):
        message = Ping(i)
        for queue in queues:
            queue.put_nowait(message)
    await done.wait()
    elapsed = time.perf_counter() - start
    for task in tasks:
        task.cancel()
    return elapsed


async def w2(messages: int, subscribers: int, repeat: int) -> dict[str, Any]:
    raw, ours = [], []
    total = messages * subscribers
    async with Runtime(default_mailbox_capacity=messages) as rt:
        for k in range(subscribers):
            rt.register(f"sink{k}", Sink)
            rt.subscribe(TypeSubscription("bench", f"sink{k}"))
        topic = TopicId("bench", "w2")
        Sink.done = asyncio.Event()
        Sink.remaining = subscribers
        await rt.publish(Ping(-1), topic)  # activate the subscribers
        await Sink.done.wait()
        for _ in range(repeat):
            raw.append(total / await raw_fanout(messages, subscribers))
            Sink.done = asyncio.Event()
            Sink.remaining = total
            start = time.perf_counter()
            for i in range(messages):
                await rt.publish(Ping(i), topic)
            await Sink.done.wait()
            ours.append(total / (time.perf_counter() - start))
    r, o = median(raw), median(ours)
    return {
        "messages": messages,
        "subscribers": subscribers,
        "raw_queue_deliveries_per_s": r,
        "moot_deliveries_per_s": o,
        "ratio": o / r,
        "target_deliveries_per_s": 1_000_000,
        "target_ratio": 0.5,
        "mailbox_capacity": messages,
    }


# --------------------------------------------------------------------------- W4


async def w4(keys: int) -> dict[str, Any]:
    """Activate `keys` agents with one message each; memory per idle agent after they settle."""
    async with Runtime() as rt:
        rt.register("idle", Idle)
        # warm up allocators and caches with a throwaway batch
        for i in range(1000):
            await rt.tell(Ping(i), AgentId("idle", f"warm{i}"))
        await rt.send(Ping(0), AgentId("idle", "warm0"))
        gc.collect()
        before = rss_bytes()
        start = time.perf_counter()
        ids = [AgentId("idle", f"k{i}") for i in range(keys)]
        for agent_id in ids:
            await rt.send(Ping(0), agent_id)
        elapsed = time.perf_counter() - start
        del ids
        gc.collect()
        after = rss_bytes()
        stats = rt.statistics()
        assert stats.live_agents >= keys
    # Baseline for scale: the same count of idle asyncio tasks (one per actor, as many runtimes do).
    gc.collect()
    base_before = rss_bytes()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(keys)]
    tasks = [asyncio.create_task(_wait(f)) for f in futures]
    await asyncio.sleep(0)
    gc.collect()
    task_bytes = (rss_bytes() - base_before) / keys
    for f in futures:
        f.set_result(None)
    await asyncio.gather(*tasks)
    return {
        "keys": keys,
        "activations_per_s": keys / elapsed,
        "bytes_per_idle_agent": (after - before) / keys,
        "target_bytes_per_idle_agent": 2048,
        "baseline_bytes_per_idle_asyncio_task": task_bytes,
    }


async def _wait(future: asyncio.Future[None]) -> None:
    await future


# --------------------------------------------------------------------------- main


async def main(quick: bool, repeat: int, peers: bool) -> dict[str, Any]:
    n = 2_000 if quick else 20_000
    results = {
        "W1": await w1(n, repeat),
        "W2": await w2(n, 10, repeat),
        "W4": await w4(10_000 if quick else 100_000),
    }
    if peers:
        results["peer_autogen_core"] = {
            "W1": run_peer("autogen", "w1_core_pingpong.py", ["--n", str(n), "--mode", "agent"]),
            "W2": run_peer("autogen", "w2_core_fanout.py", []),
        }
    return results


def report(results: dict[str, Any]) -> None:
    w1r, w2r, w4r = results["W1"], results["W2"], results["W4"]
    print(
        f"W1 request/reply x{w1r['n']}: raw future {w1r['raw_future_us']:.2f} us,"
        f" moot {w1r['moot_external_us']:.2f} us ({w1r['ratio_external']:.2f}x),"
        f" agent->agent {w1r['moot_agent_to_agent_us']:.2f} us"
        f" ({w1r['ratio_agent_to_agent']:.2f}x);"
        " target <= 2x"
    )
    print(
        f"W2 fan-out {w2r['messages']}x{w2r['subscribers']}:"
        f" raw {w2r['raw_queue_deliveries_per_s']:,.0f}/s,"
        f" moot {w2r['moot_deliveries_per_s']:,.0f}/s ({w2r['ratio']:.2f}x);"
        " target >= 1,000,000/s and >= 0.5x"
    )
    print(
        f"W4 activation x{w4r['keys']}: {w4r['activations_per_s']:,.0f}/s,"
        f" {w4r['bytes_per_idle_agent']:.0f} B per idle agent (an idle asyncio task alone:"
        f" {w4r['baseline_bytes_per_idle_asyncio_task']:.0f} B); target <= 2048 B"
    )
    peer = results.get("peer_autogen_core")
    if peer:
        print(f"autogen-core peer: {peer}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is kept")
    parser.add_argument(
        "--peers", action="store_true", help="also run shared/peer-bench (autogen-core)"
    )
    args = parser.parse_args()
    figures = asyncio.run(main(args.quick, args.repeat, args.peers))
    path = write(
        "runtime", {"versions": versions("anyio", "pydantic", "structlog"), "figures": figures}
    )
    report(figures)
    print(f"wrote {path}")
