"""The executor actor: chats send code over the runtime; each key keeps its own session."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from moot.executors import (
    CodeBlock,
    LocalExecutor,
    ReleaseSession,
    RunCode,
    UnsafePathError,
    key_dir_name,
    register_executor,
)
from moot.runtime import AgentId, HandlerError, Runtime

if TYPE_CHECKING:
    from pathlib import Path


async def test_chats_run_code_concurrently_each_in_its_own_work_dir(tmp_path: Path) -> None:
    executor = LocalExecutor(timeout=20)
    async with executor, Runtime() as rt:
        register_executor(rt, executor, work_root=tmp_path)
        write = CodeBlock("print('x')", "python", filename="mine.py")

        async def chat(key: str) -> str:
            to = AgentId("executor", key)
            await rt.send(
                RunCode(blocks=(CodeBlock(f"open('who.txt','w').write('{key}')", "python"),)), to
            )
            results = await rt.send(
                RunCode(blocks=(CodeBlock("print(open('who.txt').read())", "python"),)), to
            )
            return str(results[0].stdout).strip()

        keys = [f"chat-{i}" for i in range(6)]
        assert await asyncio.gather(*(chat(k) for k in keys)) == keys
        for key in keys:
            assert (tmp_path / key / "who.txt").read_text() == key
        results = await rt.send(RunCode(blocks=(write,)), AgentId("executor", "odd/../key"))
        assert results[0].exit_code == 0
        assert (tmp_path / key_dir_name("odd/../key") / "mine.py").exists()
        await rt.send(ReleaseSession(), AgentId("executor", "chat-0"))


async def test_blocks_stop_at_the_first_failure_and_bad_paths_are_typed_errors(
    tmp_path: Path,
) -> None:
    executor = LocalExecutor(timeout=20)
    async with executor, Runtime() as rt:
        register_executor(rt, executor, work_root=tmp_path)
        to = AgentId("executor", "c")
        blocks = (
            CodeBlock("print('one')", "python"),
            CodeBlock("raise SystemExit(3)", "python"),
            CodeBlock("print('never')", "python"),
        )
        results = await rt.send(RunCode(blocks=blocks, timeout=10), to)
        assert [r.exit_code for r in results] == [0, 3]
        escape = CodeBlock("print(1)", "python", filename="../../etc/x.py")
        with pytest.raises(HandlerError) as info:
            await rt.send(RunCode(blocks=(escape,)), to)
        assert isinstance(info.value.__cause__, UnsafePathError)


@pytest.mark.parametrize(
    ("one", "other"),
    [("team/alice", "team_alice"), ("..", "_"), ("x y", "x_y"), ("a.b", "a_b"), ("Chat", "chat")],
)
async def test_keys_the_sanitiser_would_merge_keep_separate_work_dirs(
    tmp_path: Path, one: str, other: str
) -> None:
    executor = LocalExecutor(timeout=20)
    async with executor, Runtime() as rt:
        register_executor(rt, executor, work_root=tmp_path)
        for key in (one, other):
            code = f"open('owner.txt', 'x').write({key!r})"
            results = await rt.send(
                RunCode(blocks=(CodeBlock(code, "python"),)), AgentId("executor", key)
            )
            assert results[0].exit_code == 0, results[0].stderr
    owners = sorted((d / "owner.txt").read_text() for d in tmp_path.iterdir())
    assert owners == sorted([one, other])
    assert len({d.name.lower() for d in tmp_path.iterdir()}) == 2  # apart on case-blind disks too


TRICKY_KEYS = [
    "chat-0",
    "Chat-0",
    "team/alice",
    "team_alice",
    "..",
    ".",
    "_",
    "",
    "x y",
    "x_y",
    "a.b",
    "-rf",
    "~",
    "a~b",
    "\x00",
    "\ud800",
    "k" * 10_000,
    "k" * 64,
    "k" * 65,
    "é",
    "e\u0301",
]


def test_key_dir_names_are_distinct_safe_single_components() -> None:
    keys = [*TRICKY_KEYS, *(key_dir_name(key) for key in TRICKY_KEYS)]
    names = [key_dir_name(key) for key in keys]
    assert len({name.lower() for name in names}) == len(set(keys))
    for name in names:
        assert name not in {".", ".."}
        assert "/" not in name
        assert "\x00" not in name
        assert not name.startswith(("-", "."))
        assert len(name.encode()) <= 255
        assert name.isascii()
    assert key_dir_name("chat-0") == "chat-0"  # plain keys keep their readable names
