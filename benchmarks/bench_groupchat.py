"""W3: many concurrent round-robin group chats, 3 agents x 10 turns, with an in-process model stub.

    python benchmarks/bench_groupchat.py [--quick] [--chats 1,100,1000,10000,100000]

Every chat shares the same three `AssistantAgent` objects and the same `GroupChatManager`; each
turn is one model call to a stub `ModelClient` that awaits L ms and returns a canned reply (no
HTTP), so what is measured is moot's own cost: the manager's actor, the participants' actors,
the turn messages and the broadcasts. Each C runs in a fresh process, so peak RSS is its own.

Reported per C: wall time of the run, turns/s, process CPU ms per turn (`time.process_time`),
peak RSS (`getrusage`), and p50/p99 turn latency (the time between a chat's consecutive replies:
L plus the framework's share). Writes `benchmarks/results/groupchat.json`. When the peer venvs
exist (`shared/peer-bench/setup.sh`), AutoGen agentchat and AG2 classic run the same workload in
the same invocation (C <= 1,000) and the wall and CPU ratios are reported.

The main rows use `Runtime()` as a user gets it (its default `GcPolicy` tunes the collector
while it runs); `results_python_gc` repeats C >= 1,000 with `Runtime(gc=None)`, Python's own
collector settings, in the same invocation. Each row counts the collector's passes and time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import resource
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from _common import percentile, run_peer, versions, write

from moot.agents import AssistantAgent
from moot.groupchat import (
    GroupChat,
    GroupChatManager,
)
from moot.models import ModelClient, ModelRequest, ModelResponse, Usage
from moot.runtime import GcPolicy, Runtime

if TYPE_CHECKING:
    from collections.abc import Mapping

REPLY = "Acknowledged. Here is my short answer."
PEERS = (
    ("autogen", "w3_agentchat_groupchat.py", "autogen-agentchat"),
    ("ag2classic", "w4_ag2classic_groupchat.py", "ag2-classic"),
)
PEER_KEYS = (
    "run_wall_s",
    "cpu_ms_per_turn",
    "peak_rss_mb",
    "wall_ratio_peer_over_moot",
    "cpu_ratio_peer_over_moot",
)
TARGETS = {
    1000: {"wall_s": 0.6, "cpu_ms_per_turn": 0.035, "peak_rss_mb": 100},
    10000: {"wall_s": 4.0, "cpu_ms_per_turn": 0.035, "peak_rss_mb": 200},
    100000: {"peak_rss_mb": 2048},
}


class StubClient(ModelClient):
    """Awaits L seconds and answers a canned reply; notes when each chat's reply came back.

    Not `moot.testing.ScriptedModelClient`: this stub must cost next to no CPU, because CPU per
    turn is what W3 measures and compares across runs.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.calls = 0
        self.last: dict[str, float] = {}
        self.gaps = array("d")  # 8 bytes a turn, not a float object: W3 reports peak RSS
        self._response = ModelResponse(content=REPLY, usage=Usage(), model="stub")

    async def create(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        await asyncio.sleep(self.latency)
        # The chat is named by its task, the first message after the system message.
        key = request.messages[1]["content"]
        now = time.perf_counter()
        self.gaps.append(now - self.last[key])
        self.last[key] = now
        return self._response

    async def aclose(self) -> None:
        return None


class GcMeter:
    """Counts the collector's passes per generation and the time they take (gc.callbacks)."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = 0.0
        self._t = 0.0

    def __call__(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.passes[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._t


async def one_size(
    chats: int, latency: float, turns: int, agents: int, gc_policy: GcPolicy | None
) -> dict[str, Any]:
    stub = StubClient(latency)
    team = [
        AssistantAgent(
            f"assistant_{i}",
            system_message="You are a helpful assistant. Keep answers short.",
            model_client=stub,
        )
        for i in range(agents)
    ]
    group = GroupChat(
        team, messages=[], max_round=turns + 1, speaker_selection_method="round_robin"
    )
    manager = GroupChatManager(group, silent=True, store=None)  # moot alone: no journal
    tasks = [f"Chat {i}: please discuss the plan." for i in range(chats)]
    meter = GcMeter()
    async with Runtime(gc=gc_policy) as runtime:
        gc.callbacks.append(meter)
        cpu0 = time.process_time()
        start = time.perf_counter()
        for task in tasks:
            stub.last[task] = start
        results = await asyncio.gather(
            *(manager.a_run(task, runtime=runtime, chat_id=f"c{i}") for i, task in enumerate(tasks))
        )
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        gc.callbacks.remove(meter)
    ok = stub.calls == chats * turns and all(
        len(r.chat_history) == turns + 1 and r.stop_reason.condition == "MaxMessages"
        for r in results
    )
    total = chats * turns
    return {
        "chats": chats,
        "turns_per_chat": turns,
        "agents": agents,
        "latency_ms": latency * 1000,
        "ok": ok,
        "model_calls": stub.calls,
        "wall_s": round(wall, 4),
        "ideal_wall_s": round(turns * latency, 4),
        "turns_per_s": round(total / wall, 1),
        "cpu_s": round(cpu, 4),
        "cpu_ms_per_turn": round(cpu / total * 1000, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "turn_latency_p50_ms": round(percentile(stub.gaps, 50) * 1000, 3),
        "turn_latency_p99_ms": round(percentile(stub.gaps, 99) * 1000, 3),
        "stop_reason_example": str(results[0].stop_reason),
        "gc_passes_by_generation": meter.passes,
        "gc_s": round(meter.seconds, 3),
    }


def run_child(chats: int, args: argparse.Namespace, *, python_gc: bool = False) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--single",
        str(chats),
        "--latency-ms",
        str(args.latency_ms),
        "--turns",
        str(args.turns),
        *(["--python-gc"] if python_gc else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    return {"chats": chats, "ok": False, "error": done.stderr[-2000:]}


def verdicts(row: Mapping[str, Any]) -> dict[str, bool]:
    target = TARGETS.get(int(row["chats"]), {})
    return {key: row.get(key, float("inf")) <= limit for key, limit in target.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="C = 1 and 100 only")
    parser.add_argument("--chats", default="1,100,1000,10000,100000", help="comma-separated sizes")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="(with --single) Runtime(gc=None): Python's own collector settings",
    )
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single is not None:
        # Log as a deployed service would: warnings and errors only.
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        policy = None if args.python_gc else GcPolicy()
        row = asyncio.run(one_size(args.single, args.latency_ms / 1000, args.turns, 3, policy))
        row["gc"] = "Runtime(gc=None): python default" if args.python_gc else "Runtime() default"
        print(json.dumps(row), flush=True)
        return 0
    sizes = [1, 100] if args.quick else [int(c) for c in args.chats.split(",")]
    rows = []
    for chats in sizes:
        row = run_child(chats, args)
        row["meets_targets"] = verdicts(row) if "wall_s" in row else {}
        rows.append(row)
        print(json.dumps(row), flush=True)
    python_gc = []  # the same runs with Python's collector settings: what the default policy saves
    for chats in sizes:
        if 1000 <= chats <= 10000:
            row = run_child(chats, args, python_gc=True)
            row["meets_targets"] = verdicts(row) if "wall_s" in row else {}
            python_gc.append(row)
            print(json.dumps(row), flush=True)
    peers: dict[str, Any] = {}
    for venv, script, label in PEERS:
        for chats in sizes:
            if chats > 1000:
                continue  # the peers take minutes there
            peer = run_peer(
                venv, script, ["--chats", str(chats), "--latency-ms", str(args.latency_ms)]
            )
            if peer is None:
                peers[label] = f"not installed (run shared/peer-bench/setup.sh for {venv})"
                break
            ours = next(r for r in rows if r["chats"] == chats)
            if "run_wall_s" in peer and "wall_s" in ours:
                peer["wall_ratio_peer_over_moot"] = round(peer["run_wall_s"] / ours["wall_s"], 2)
                peer["cpu_ratio_peer_over_moot"] = round(
                    peer["cpu_ms_per_turn"] / ours["cpu_ms_per_turn"], 2
                )
            peers[f"{label}@C={chats}"] = peer
            print(json.dumps({label: chats, **{k: peer.get(k) for k in PEER_KEYS}}), flush=True)
    path = write(
        "groupchat",
        {
            "workload": "W3: C concurrent round-robin group chats, 3 agents x 10 turns, stub L",
            "versions": versions(),
            "targets": {str(k): v for k, v in TARGETS.items()},
            "results": rows,
            "results_python_gc": python_gc,
            "peers": peers,
        },
    )
    print(f"wrote {path}")
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
