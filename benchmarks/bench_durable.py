"""W3 with the chat journal: 1,000 concurrent round-robin group chats (3 agents x 10 turns,
L = 50 ms, the stub model of bench_groupchat), run with no journal (the baseline), with the
in-memory store, with the SQLite file (synchronous FULL, the default) and with a real Postgres
server, each in a fresh process of the same run. Then: the time to resume 1,000 interrupted
chats (each stopped after about half of its turns) from SQLite and from Postgres.

    python benchmarks/bench_durable.py [--chats 1000] [--latency-ms 50] [--quick] [--reps 3]
        [--before /tmp/moot-old]   # a worktree of an older commit with its venv, interleaved

Reported per store: wall time, the ratio to no journal, CPU ms per turn, bytes journaled per
turn (rows plus file contents, from the store's statistics) and the group commits made.
Writes benchmarks/results/durable.json. Postgres: MOOT_BENCH_POSTGRES_DSN, or one started here
(initdb + pg_ctl, fsync off, as in the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from _common import versions, write
from bench_groupchat import StubClient
from bench_journal import _postgres

from moot.agents import AssistantAgent
from moot.groupchat import GroupChat, GroupChatManager
from moot.journal import ChatStore, GroupCommitStore, store_from_url
from moot.runtime import Runtime

TURNS, AGENTS = 10, 3
NEW = Path(__file__).resolve().parent.parent


class InterruptingStub(StubClient):
    """The stub, until `limit` calls were made in all; then every call fails (a crash mid-chat)."""

    def __init__(self, latency: float, limit: int) -> None:
        super().__init__(latency)
        self.limit = limit

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        if self.calls >= self.limit:
            raise RuntimeError("interrupted")
        return await super().create(*args, **kwargs)


def _manager(stub: StubClient, store: ChatStore | None) -> GroupChatManager:
    team = [
        AssistantAgent(f"assistant_{i}", system_message="You are brief.", model_client=stub)
        for i in range(AGENTS)
    ]
    group = GroupChat(
        team, messages=[], max_round=TURNS + 1, speaker_selection_method="round_robin"
    )
    return GroupChatManager(group, silent=True, store=store)


async def _run(
    manager: GroupChatManager,
    stub: StubClient,
    runtime: Runtime,
    chats: int,
    resume: bool,
    prefix: str = "w",
) -> tuple[list[Any], float, float]:
    tasks = [f"Chat {i}: please discuss the plan." for i in range(chats)]
    gc.collect()
    cpu0, start = time.process_time(), time.perf_counter()
    for task in tasks:
        stub.last[task] = start
    results = await asyncio.gather(
        *(
            manager.a_run(None if resume else task, runtime=runtime, chat_id=f"{prefix}{i}")
            for i, task in enumerate(tasks)
        ),
        return_exceptions=True,
    )
    return results, time.perf_counter() - start, time.process_time() - cpu0


async def w3(variant: str, url: str, chats: int, latency: float) -> dict[str, Any]:
    stub = StubClient(latency)
    inner = None if variant == "none" else store_from_url(url)
    store = None if inner is None else GroupCommitStore(inner)
    async with Runtime() as runtime:
        if store is not None:
            await store.open()
        try:
            results, wall, cpu = await _run(_manager(stub, store), stub, runtime, chats, False)
            stats = None if store is None else await store.statistics()
        finally:
            if store is not None:
                await store.aclose()
    failed = [r for r in results if isinstance(r, BaseException)]
    total = chats * TURNS
    out: dict[str, Any] = {
        "store": variant,
        "chats": chats,
        "ok": not failed and all(len(r.chat_history) == TURNS + 1 for r in results),
        "first_error": repr(failed[0]) if failed else None,
        "wall_s": round(wall, 4),
        "ideal_wall_s": round(TURNS * latency, 4),
        "cpu_ms_per_turn": round(cpu / total * 1000, 4),
    }
    if stats is not None and store is not None:
        out["bytes_per_turn"] = round((stats.row_bytes + stats.blob_bytes) / max(1, stats.turns))
        out["turns_journaled"] = stats.turns
        out["group_commits"] = store.batches
    return out


async def resume(variant: str, url: str, chats: int, latency: float) -> dict[str, Any]:
    """Interrupt `chats` chats about half way, then time resuming them all to their end."""
    crashing = InterruptingStub(latency, limit=chats * TURNS // 2)
    stub = StubClient(latency)
    async with GroupCommitStore(store_from_url(url)) as store, Runtime() as runtime:
        before = (await store.statistics()).turns
        await _run(_manager(crashing, store), crashing, runtime, chats, False, "r")
        before = (await store.statistics()).turns - before
        results, wall, cpu = await _run(_manager(stub, store), stub, runtime, chats, True, "r")
    failed = [r for r in results if isinstance(r, BaseException)]
    remaining = chats * TURNS - before
    return {
        "store": variant,
        "chats": chats,
        "ok": not failed and all(len(r.chat_history) == TURNS + 1 for r in results),
        "first_error": repr(failed[0]) if failed else None,
        "turns_done_before_resume": before,
        "model_calls_on_resume": stub.calls,
        "resume_wall_s": round(wall, 4),
        "ideal_wall_s": round(max(TURNS - before // chats, 0) * latency, 4),
        "cpu_ms_per_resumed_turn": round(cpu / max(1, remaining) * 1000, 4),
    }


def _child(
    kind: str, variant: str, url: str, args: argparse.Namespace, tree: Path = NEW
) -> dict[str, Any]:
    """One measurement in a fresh process of `tree` (this tree, or an older one's worktree
    with its own venv: the same `--single` interface)."""
    command = [str(tree / ".venv/bin/python"), str(tree / "benchmarks/bench_durable.py"),
               "--single", kind, variant, url,
               "--chats", str(args.chats), "--latency-ms", str(args.latency_ms)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    loaded: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def _fresh_database(dsn: str) -> str:
    """A new empty database on the server of `dsn` (each run journals chats w0..wN anew)."""
    import asyncpg

    name = "bench_" + uuid.uuid4().hex[:12]

    async def create() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"CREATE DATABASE {name}")
        finally:
            await connection.close()

    asyncio.run(create())
    return dsn.rsplit("/", 1)[0] + "/" + name


def _rep(args: argparse.Namespace, dsn: str, folder: str, tree: Path) -> dict[str, Any]:
    """W3 with each store and the two resumes, in fresh processes of `tree`."""
    tag = uuid.uuid4().hex[:8]
    w3_rows = [
        _child("w3", "none", "", args, tree),
        _child("w3", "memory", "memory://", args, tree),
        _child("w3", "sqlite", f"sqlite:///{folder}/w3-{tag}.sqlite3", args, tree),
        _child("w3", "postgres", _fresh_database(dsn), args, tree),
    ]
    base = w3_rows[0]
    for row in w3_rows:
        row["wall_ratio_vs_no_journal"] = round(row["wall_s"] / base["wall_s"], 3)
        row["cpu_ratio_vs_no_journal"] = round(row["cpu_ms_per_turn"] / base["cpu_ms_per_turn"], 3)
    resume_rows = [
        _child("resume", "sqlite", f"sqlite:///{folder}/resume-{tag}.sqlite3", args, tree),
        _child("resume", "postgres", _fresh_database(dsn), args, tree),
    ]
    return {"w3": w3_rows, "resume": resume_rows}


def _median_rows(reps: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    """Per store, the run with the median same-run ratio (W3) or resume wall time, with
    every run's figure beside it."""
    key = "wall_ratio_vs_no_journal" if part == "w3" else "resume_wall_s"
    rows = []
    for index in range(len(reps[0][part])):
        runs = [rep[part][index] for rep in reps]
        chosen = dict(sorted(runs, key=lambda row: row[key])[len(runs) // 2])
        chosen[f"{key}_runs"] = [row[key] for row in runs]
        cpu = "cpu_ms_per_turn" if part == "w3" else "cpu_ms_per_resumed_turn"
        chosen[f"{cpu}_runs"] = [row[cpu] for row in runs]
        rows.append(chosen)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="100 chats, to check the benchmark")
    parser.add_argument("--reps", type=int, default=1, help="repetitions; medians are reported")
    parser.add_argument(
        "--before", type=Path, help="a worktree of an older commit (with its venv) to interleave"
    )
    parser.add_argument("--single", nargs=3, metavar=("KIND", "STORE", "URL"))
    args = parser.parse_args()
    if args.quick:
        args.chats = 100
    if args.single:
        logging.disable(logging.WARNING)
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        kind, variant, url = args.single
        run = w3 if kind == "w3" else resume
        result = asyncio.run(run(variant, url, args.chats, args.latency_ms / 1000))
        print(json.dumps(result))
        return
    trees = {"after": NEW} if args.before is None else {"before": args.before, "after": NEW}
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    dsn, server = _postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="moot-bench-durable-") as folder:
            for rep in range(args.reps):
                order = list(trees.items())
                for name, tree in order if rep % 2 == 0 else order[::-1]:
                    measured[name].append(_rep(args, dsn, folder, tree))
    finally:
        if server is not None:
            server.remove()
    results = {
        name: {"w3": _median_rows(reps, "w3"), "resume": _median_rows(reps, "resume")}
        for name, reps in measured.items()
    }
    payload: dict[str, Any] = {
        "workload": f"W3 with the journal: {AGENTS} agents x {TURNS} turns, C = {args.chats},"
        f" L = {args.latency_ms} ms",
        "targets": {"sqlite_wall_ratio": 1.15, "postgres_wall_ratio": 1.3},
        "reps": args.reps,
        "w3": results["after"]["w3"],
        "resume": results["after"]["resume"],
    }
    if args.before is not None:
        payload["before"] = {
            "tree": str(args.before),
            "commit": _commit(args.before),
            **results["before"],
        }
        payload["after_commit"] = _commit(NEW)
    payload["versions"] = versions()
    path = write("durable", payload)
    print(json.dumps(payload, indent=2))
    print(f"wrote {path}")


def _commit(tree: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip()


if __name__ == "__main__":
    main()
