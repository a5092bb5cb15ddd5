"""`moot serve` under load: 500 concurrent scripted chats, 50 SSE readers, with and without one
stalled reader. The stalled reader (a socket that never reads) must not slow the chats or the
other readers: their p99 event delay and the turn rate should stay within 10 % of the run
without it. Results go to benchmarks/results/serve.json.

    python benchmarks/bench_serve.py [--chats 500] [--readers 50] [--rounds 2] [--stream]

With `--stream` the agents stream their answers, so readers also get the ephemeral `token`
events (`tokens_read`), which go through the same bounded buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import percentile, versions, write

from moot.agents import AssistantAgent
from moot.journal import InMemoryChatStore
from moot.server import Teams
from moot.testing import Reply, ScriptedModelServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "_helpers"))
from serve_helpers import ADMIN, running_server


def bench_teams(llm_config: dict[str, Any]) -> Teams:
    teams = Teams()

    def pair() -> tuple[AssistantAgent, AssistantAgent]:
        return (
            AssistantAgent("asker", llm_config=llm_config, is_termination_msg=lambda m: False),
            AssistantAgent("answerer", llm_config=llm_config, is_termination_msg=lambda m: False),
        )

    teams.add("pair", pair)
    return teams


async def _reader(base: str, chat_id: str, delays: list[float], tokens: list[int]) -> int:
    """Read one chat's events to the end (reconnecting after a cutoff); record the delay of
    each turn journaled after the reader connected (older ones are backlog, not delay)."""
    seen, after = 0, 0
    connected = time.time()
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120
    ) as client:
        while True:
            cut = False
            headers = {"Last-Event-ID": str(after)}
            async with client.stream("GET", f"/chats/{chat_id}/events", headers=headers) as r:
                kind = ""
                async for line in r.aiter_lines():
                    if line.startswith("id:"):
                        after = int(line[3:])
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:") and kind == "turn":
                        data = json.loads(line[5:])
                        if data["at"] >= connected:
                            delays.append(time.time() - data["at"])
                        seen += 1
                    elif line.startswith("data:") and kind == "cutoff":
                        cut = True
                    elif line.startswith("data:") and kind == "token":
                        tokens.append(1)
            if not cut:
                return seen


def _stalled(base: str, chat_id: str) -> socket.socket:
    """A reader that asks for a stream and never reads from its socket."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /chats/{chat_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {ADMIN}\r\n\r\n".encode()
    )
    return sock


async def one_run(
    chats: int, readers: int, turns: int, *, stalled: bool, stream: bool = False
) -> dict[str, Any]:
    # 50 ms per model call, about what a fast hosted model answers a short prompt in.
    with ScriptedModelServer(default=Reply("a scripted reply " * 8, latency=0.05)) as model:
        config: dict[str, Any] = {"config_list": model.config_list(model="gpt-4o")}
        teams = bench_teams({**config, "stream": True} if stream else config)
        async with (
            InMemoryChatStore() as store,
            running_server(store, teams, reader_buffer=64, send_timeout=2.0) as (app, base),
        ):
            # No keep-alive: a pooled connection the server just closed would fail a POST.
            limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
            async with httpx.AsyncClient(
                base_url=base,
                headers={"Authorization": f"Bearer {ADMIN}"},
                limits=limits,
                timeout=120,
            ) as client:
                began, cpu_began = time.perf_counter(), time.process_time()

                async def start() -> str:
                    body = {"team": "pair", "message": "go", "max_turns": turns}
                    return str((await client.post("/chats", json=body)).json()["chat_id"])

                # The read chats start first, each reader connecting at once; then the rest.
                delays: list[float] = []
                tokens: list[int] = []
                stalled_sock = _stalled(base, await start()) if stalled else None
                readers_done = []
                for _ in range(readers):
                    chat_id = await start()
                    reading = _reader(base, chat_id, delays, tokens)
                    readers_done.append(asyncio.ensure_future(reading))
                await asyncio.gather(*(start() for _ in range(chats - readers - int(stalled))))
                read = await asyncio.gather(*readers_done)
                while app.runner.active():  # noqa: ASYNC110 (a benchmark polls for the end)
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - began
                cpu = time.process_time() - cpu_began
                total = (await store.statistics()).turns
                if stalled_sock is not None:
                    stalled_sock.close()
    return {
        "stalled_reader": stalled,
        "stream": stream,
        "chats": chats,
        "readers": readers,
        "turns": total,
        "seconds": round(elapsed, 3),
        "turns_per_s": round(total / elapsed, 1),
        # This process's CPU (the server, the agents, the readers and the scripted model's
        # thread): less at the mercy of the other engineers' load than the wall clock.
        "cpu_ms_per_turn": round(cpu / total * 1000, 3),
        "events_read": sum(read),
        "tokens_read": len(tokens),
        "event_delay_p50_ms": round(percentile(delays, 50) * 1000, 2),
        "event_delay_p99_ms": round(percentile(delays, 99) * 1000, 2),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds (this machine is shared, so single runs drift); the stalled
    reader must not make things worse by more than 10 %: turn rate at least 90 % of the run
    without it, the other readers' p99 event delay at most 110 %."""

    def med(stalled: bool, key: str) -> float:
        return float(statistics.median(r[key] for r in runs if r["stalled_reader"] is stalled))

    rate = med(True, "turns_per_s") / med(False, "turns_per_s")
    cpu = med(True, "cpu_ms_per_turn") / med(False, "cpu_ms_per_turn")
    p99 = med(True, "event_delay_p99_ms") / med(False, "event_delay_p99_ms")
    return {
        "median_turns_per_s": {
            "without": med(False, "turns_per_s"),
            "with": med(True, "turns_per_s"),
        },
        "median_event_delay_p99_ms": {
            "without": med(False, "event_delay_p99_ms"),
            "with": med(True, "event_delay_p99_ms"),
        },
        "median_cpu_ms_per_turn": {
            "without": med(False, "cpu_ms_per_turn"),
            "with": med(True, "cpu_ms_per_turn"),
        },
        "turn_rate_ratio": round(rate, 3),
        "cpu_per_turn_ratio": round(cpu, 3),
        "p99_event_delay_ratio": round(p99, 3),
        "within_10_percent": rate >= 0.9 and p99 <= 1.1,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=500)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--turns", type=int, default=3, help="max_turns per chat")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stream", action="store_true", help="the agents stream their answers")
    args = parser.parse_args()
    runs = []
    for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both alike
        for stalled in (False, True):
            run = await one_run(
                args.chats, args.readers, args.turns, stalled=stalled, stream=args.stream
            )
            print(json.dumps(run))
            runs.append(run)

    summary = summarize(runs)
    print(json.dumps(summary))
    name = "serve_stream" if args.stream else "serve"
    path = write(name, {"versions": versions(), "runs": runs, "summary": summary})
    print(f"wrote {path}")


if __name__ == "__main__":
    asyncio.run(main())
