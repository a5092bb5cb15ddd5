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
        assert (tmp_path / "odd_.._key" / "mine.py").exists()
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
