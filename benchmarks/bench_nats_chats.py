"""W3 over NATS workers: C concurrent round-robin group chats (3 agents x 10 turns, stub model
with latency L) whose manager and agents live on two `moot worker` processes, against the same
chats in one in-process runtime, measured in the same run.

The client holds stand-in agents and calls `manager.a_run(..., runtime=client)`; the workers
(`python -m moot.runtime.nats --agents bench_nats_chats:setup`) host the agents, each with its
own stub model client. CPU is read per process (client: `process_time`, workers: /proc).

    python benchmarks/bench_nats_chats.py [--chats 1000] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import versions, write
from bench_groupchat import StubClient, one_size
from bench_nats import start_child, start_server

from moot.agents import AssistantAgent
from moot.agents.distributed import host_agents, shared_type
from moot.groupchat import GroupChat, GroupChatManager
from moot.runtime import AgentId, GcPolicy, Runtime
from moot.runtime.nats import NatsTransport

TEST_HELPERS = str(Path(__file__).resolve().parents[1] / "tests" / "_helpers")  # pg_helpers
AGENTS = 3
TURNS = 10


def team(stub: StubClient) -> GroupChatManager:
    members = [
        AssistantAgent(
            f"assistant_{i}",
            system_message="You are a helpful assistant. Keep answers short.",
            model_client=stub,
        )
        for i in range(AGENTS)
    ]
    group = GroupChat(members, max_round=TURNS + 1, speaker_selection_method="round_robin")
    return GroupChatManager(group, silent=True, store=None)  # as W3 in process: no journal


# --------------------------------------------------------------------------- failover

FAILOVER_LATENCY = 0.05


def failover_team(url: str) -> GroupChatManager:
    """Three members on the scripted model at `url`; the manager journals to the default store
    ($MOOT_JOURNAL_URL: the Postgres shared by the workers) with a 1 s lease."""
    config = {
        "config_list": [{"model": "scripted", "base_url": url, "api_key": "bench"}],
        "cache_seed": None,
    }
    members = [
        AssistantAgent(f"member_{i}", system_message=f"You are member_{i}.", llm_config=config)
        for i in range(AGENTS)
    ]
    group = GroupChat(members, max_round=TURNS + 1, speaker_selection_method="round_robin")
    return GroupChatManager(group, name="failover_manager", silent=True, lease_ttl=1.0)


def failover_setup(runtime: Runtime) -> None:
    """Worker side of the failover measurement."""
    manager = failover_team(os.environ["BENCH_MODEL_URL"])
    host_agents(runtime, manager, *manager.groupchat.agents)


def start_worker(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    """A worker process and its node id (from its readiness line)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    with open("/tmp/bench_child.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=log, env=env
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    if b"ready" not in line:
        raise SystemExit(f"worker did not start: {args}")
    return process, line.split()[-1].decode()


async def failover(request_timeout: float) -> dict[str, Any]:
    """kill -9 the worker running a journaled group chat after its third turn was asked; the
    time until a survivor asks the model for the chat's next turn."""
    sys.path.insert(0, TEST_HELPERS)
    from pg_helpers import PostgresServer, require_postgres

    from moot.testing import Reply, ScriptedModelServer

    asked: list[float] = []
    third = asyncio.Event()
    loop = asyncio.get_running_loop()

    def reply(request: Any) -> Reply:
        asked.append(time.perf_counter())
        if len(asked) == 3:
            loop.call_soon_threadsafe(third.set)
        return Reply("noted", latency=FAILOVER_LATENCY)

    postgres = PostgresServer(require_postgres())
    postgres.init()
    postgres.start()
    try:
        with ScriptedModelServer(default=reply) as model, tempfile.TemporaryDirectory() as store:
            server, url = start_server(store)
            os.environ["MOOT_JOURNAL_URL"] = postgres.dsn
            os.environ["BENCH_MODEL_URL"] = model.base_url
            children: list[subprocess.Popen[bytes]] = []
            nodes: list[str] = []
            try:
                for _ in range(2):
                    args = ["-m", "moot.runtime.nats", "--nats", url, "--agents"]
                    args += ["bench_nats_chats:failover_setup", "--heartbeat", "0.2"]
                    child, node = start_worker([*args, "--member-ttl", "1.0"])
                    children.append(child)
                    nodes.append(node)
                transport = NatsTransport(
                    url, request_timeout=request_timeout, heartbeat=0.2, member_ttl=1.0
                )
                async with Runtime(transport=transport) as client:
                    manager = failover_team(model.base_url)
                    chat = asyncio.ensure_future(
                        manager.a_run("plan", runtime=client, chat_id="failover")
                    )
                    await asyncio.wait_for(third.wait(), 60)
                    owner = transport.membership.owner(
                        AgentId(shared_type(manager.name), "failover")
                    )
                    victim = children[nodes.index(owner)]
                    killed = time.perf_counter()
                    victim.kill()
                    victim.wait()
                    result = await chat
                    after = [t for t in asked if t > killed]
            finally:
                for child in children:
                    if child.poll() is None:
                        child.terminate()
                        child.wait(timeout=15)
                server.terminate()
                server.wait(timeout=10)
    finally:
        postgres.remove()
    return {
        "ok": result.stop_reason.condition == "MaxMessages" and len(result.chat_history) == 11,
        "request_timeout_s": request_timeout,
        "lease_ttl_s": 1.0,
        "member_ttl_s": 1.0,
        "kill_to_next_turn_s": round(after[0] - killed, 3) if after else None,
        "model_requests": len(asked),
        "note": "the client's request fails once the membership drops the dead worker"
        " (member_ttl, not the request timeout), then asks again; a survivor waits out the"
        " chat's journal lease (lease_ttl) and resumes from the Postgres journal",
    }


class _GaplessStub(StubClient):
    """The W3 stub without per-chat gap bookkeeping (workers never saw the chat start)."""

    async def create(self, messages: Any, **kwargs: Any) -> Any:
        self.calls += 1
        await asyncio.sleep(self.latency)
        return self._response


def setup(runtime: Runtime) -> None:
    """Worker side: the W3 team, with this worker's own stub model."""
    manager = team(_GaplessStub(float(os.environ.get("BENCH_LATENCY_S", "0.05"))))
    host_agents(runtime, manager, *manager.groupchat.agents)


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def distributed(
    url: str, chats: int, latency: float, pids: list[int], server_pid: int
) -> dict[str, Any]:
    client = Runtime(transport=NatsTransport(url, name="bench-client"))
    manager = team(_GaplessStub(latency))  # stand-ins: the chats run on the workers
    tasks = [f"Chat {i}: please discuss the plan." for i in range(chats)]
    async with client:
        warm = await manager.a_run("warm up", runtime=client, chat_id="warm")
        assert warm.stop_reason.condition == "MaxMessages"
        workers0 = [cpu_seconds(pid) for pid in pids]
        server0 = cpu_seconds(server_pid)
        cpu0 = time.process_time()
        start = time.perf_counter()
        results = await asyncio.gather(
            *(manager.a_run(task, runtime=client, chat_id=f"c{i}") for i, task in enumerate(tasks))
        )
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        workers = [cpu_seconds(pid) - before for pid, before in zip(pids, workers0, strict=True)]
        server = cpu_seconds(server_pid) - server0
    ok = all(
        len(r.chat_history) == TURNS + 1 and r.stop_reason.condition == "MaxMessages"
        for r in results
    )
    total = chats * TURNS
    return {
        "ok": ok,
        "wall_s": round(wall, 4),
        "turns_per_s": round(total / wall, 1),
        "client_cpu_s": round(cpu, 3),
        "worker_cpu_s": [round(each, 3) for each in workers],
        "nats_server_cpu_s": round(server, 3),
        "cpu_ms_per_turn": round((cpu + sum(workers)) / total * 1000, 4),
        # Where the time goes, per chat: NATS round trips and JetStream writes (counted from
        # the protocol, not sampled). Requests: RunGroupChat, an OpenChat per member, a Turn per
        # turn (local when the member's key sits on the manager's worker); JetStream writes: a
        # lease per new key (manager + members) and a durable CloseChat tell per member.
        "per_chat": {
            "requests": 1 + AGENTS + TURNS,
            "jetstream_lease_writes": 1 + AGENTS,
            "jetstream_tells": AGENTS,
        },
    }


async def main_async(chats: int, latency: float) -> dict[str, Any]:
    local = await one_size(chats, latency, TURNS, AGENTS, GcPolicy())  # the runtime default
    with tempfile.TemporaryDirectory() as store:
        server, url = start_server(store)
        os.environ["BENCH_LATENCY_S"] = str(latency)
        children = []
        try:
            for _ in range(2):
                args = ["-m", "moot.runtime.nats", "--nats", url, "--agents"]
                children.append(start_child([*args, "bench_nats_chats:setup"]))
            pids = [c.pid for c in children]
            remote = await distributed(url, chats, latency, pids, server.pid)
        finally:
            for child in children:
                child.terminate()
                child.wait(timeout=15)
            server.terminate()
            server.wait(timeout=10)
    local_row = {
        key: local[key] for key in ("ok", "wall_s", "turns_per_s", "cpu_s", "cpu_ms_per_turn")
    }
    return {
        "workload": "W3: C concurrent round-robin group chats, 3 agents x 10 turns, stub L",
        "chats": chats,
        "latency_ms": latency * 1000,
        "cores": os.cpu_count(),
        "in_process": local_row,
        "two_nats_workers": remote,
        "wall_ratio_nats_vs_in_process": round(remote["wall_s"] / local["wall_s"], 2),
        "cpu_ratio_nats_vs_in_process": round(
            remote["cpu_ms_per_turn"] / local["cpu_ms_per_turn"], 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--failover-only", action="store_true", help="print, write nothing")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="client's (s)")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.failover_only:
        print(json.dumps(asyncio.run(failover(args.request_timeout)), indent=2))
        return
    result = asyncio.run(main_async(args.chats, args.latency_ms / 1000))
    result["failover"] = asyncio.run(failover(args.request_timeout))
    path = write("nats_chats", {"versions": versions("nats-py"), **result})
    print(
        f"W3 C={args.chats}: in-process {result['in_process']['wall_s']} s,"
        f" two NATS workers {result['two_nats_workers']['wall_s']} s"
        f" (x{result['wall_ratio_nats_vs_in_process']}); failover: kill -9 to next turn"
        f" {result['failover']['kill_to_next_turn_s']} s; {path}"
    )


if __name__ == "__main__":
    main()
