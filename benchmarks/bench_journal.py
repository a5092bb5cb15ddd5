"""The chat journal: turns journaled per second and bytes per turn, in memory (the baseline,
measured in the same run), in a SQLite file (synchronous FULL, the default, and NORMAL) and in a
real Postgres server started for the run, with 1 and 100 concurrent writers (one chat each).
Results go to benchmarks/results/journal.json.

    python benchmarks/bench_journal.py [--quick]

Postgres: set MOOT_BENCH_POSTGRES_DSN to use a server of yours; otherwise Debian's initdb +
pg_ctl start one (fsync off, as in the tests, so this measures the store, not the disk).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import versions, write

from moot.journal import (
    ChatDefinition,
    ChatStore,
    CodeRun,
    Decision,
    FileChange,
    InMemoryChatStore,
    PostgresChatStore,
    SqliteChatStore,
    Turn,
    Usage,
)

HELPERS = Path(__file__).resolve().parent.parent / "tests" / "_helpers"


def _turn(chat: int, number: int) -> Turn:
    """A typical assistant turn: ~600 B of text, usage, a decision; a code run with a work file
    every third turn."""
    text = f"chat {chat} turn {number}: " + "the plan is to write the function and test it. " * 12
    code = (
        ()
        if number % 3
        else (CodeRun(language="python", code="print(42)", exit_code=0, output="42\n"),)
    )
    files = () if number % 3 else (FileChange(path=f"out/{number}.txt", data=os.urandom(512)),)
    return Turn(
        number=number,
        speaker="coder" if number % 2 else "reviewer",
        message={"role": "assistant", "name": "coder", "content": text},
        decision=Decision(policy="round_robin", chosen="coder", candidates=("coder", "reviewer")),
        usage=Usage(prompt_tokens=800 + number, completion_tokens=150, cost=0.0021, model="gpt-4o"),
        code_runs=code,
        files=files,
    )


async def _run(store: ChatStore, writers: int, turns: int, tag: str) -> dict[str, Any]:
    chats = [f"{tag}-{writers}-{i}" for i in range(writers)]
    for chat_id in chats:
        await store.create_chat(
            ChatDefinition(
                chat_id=chat_id, participants=("coder", "reviewer"), policy="round_robin"
            )
        )
    before = await store.statistics()

    async def writer(index: int, chat_id: str) -> None:
        for number in range(1, turns + 1):
            await store.append_turn(chat_id, _turn(index, number))

    started = time.perf_counter()
    await asyncio.gather(*(writer(i, c) for i, c in enumerate(chats)))
    took = time.perf_counter() - started
    after = await store.statistics()
    total = writers * turns
    stored = (after.row_bytes + after.blob_bytes) - (before.row_bytes + before.blob_bytes)
    return {
        "writers": writers,
        "turns": total,
        "seconds": round(took, 4),
        "turns_per_second": round(total / took, 1),
        "bytes_per_turn": round(stored / total, 1),
    }


async def _measure(kind: str, target: str, sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    results = []
    for writers, turns in sizes:
        store: ChatStore
        if kind == "memory":
            store = InMemoryChatStore()
        elif kind.startswith("sqlite"):
            path = Path(target) / f"{kind}-{writers}.sqlite3"
            sync = "normal" if kind == "sqlite_normal" else "full"
            store = SqliteChatStore(path, synchronous=sync)
        else:
            store = PostgresChatStore(target, max_connections=10)
        async with store:
            await _run(store, 2, 5, f"warm{writers}")
            results.append(await _run(store, writers, turns, "bench"))
    return results


def _postgres() -> tuple[str, Any]:
    dsn = os.environ.get("MOOT_BENCH_POSTGRES_DSN")
    if dsn:
        return dsn, None
    sys.path.insert(0, str(HELPERS))
    from pg_helpers import PostgresServer, postgres_bin

    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit(
            "no Postgres binaries (apt-get install postgresql) and no MOOT_BENCH_POSTGRES_DSN"
        )
    server = PostgresServer(bin_dir)
    server.init()
    server.start()
    return server.dsn, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the benchmark")
    args = parser.parse_args()
    sizes = [(1, 50), (100, 3)] if args.quick else [(1, 1000), (100, 30)]
    dsn, server = _postgres()
    measured: dict[str, list[dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="moot-bench-journal-") as folder:
            for kind in ("memory", "sqlite", "sqlite_normal", "postgres"):
                target = dsn if kind == "postgres" else folder
                measured[kind] = asyncio.run(_measure(kind, target, sizes))
    finally:
        if server is not None:
            server.remove()
    table: dict[str, Any] = {}
    for kind, rows in measured.items():
        for row, base in zip(rows, measured["memory"], strict=True):
            row["throughput_vs_memory"] = round(
                row["turns_per_second"] / base["turns_per_second"], 4
            )
            table.setdefault(kind, []).append(row)
    payload = {
        "quick": args.quick,
        "versions": versions(),
        "notes": "one chat per writer; turns of ~1 KB with a 512 B work file every third turn;"
        " bytes_per_turn counts rows (turns, events) and new blobs; Postgres runs with fsync off",
        "stores": table,
    }
    path = write("journal", payload)
    for kind, rows in table.items():
        for row in rows:
            print(
                f"{kind:14} writers={row['writers']:3} {row['turns_per_second']:>10,.0f} turns/s"
                f" ({row['throughput_vs_memory']:.4f}x memory), {row['bytes_per_turn']:.0f} B/turn"
            )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
