"""`FunctionExecutor`, the in-package fake that lets agent tests run without Docker."""

from __future__ import annotations

import pytest

from moot.executors import (
    CodeBlock,
    CodeResult,
    ExecutorClosedError,
    FunctionExecutor,
    UnsafePathError,
    format_results,
)


async def test_string_answers_are_successful_stdout() -> None:
    executor = FunctionExecutor(lambda block: f"ran {block.language}")
    async with executor, executor.session() as session:
        results = await session.run_blocks([CodeBlock("x", "python"), CodeBlock("y", "sh")])
    assert format_results(results) == (
        "exitcode: 0 (execute succeeded)\nCode output: ran python\nran sh"
    )
    assert [b.code for b in executor.blocks] == ["x", "y"]


async def test_async_functions_and_results_are_used_as_given() -> None:
    async def fail(block: CodeBlock) -> CodeResult:
        return CodeResult(exit_code=1, stdout="", stderr=f"boom {block.code}")

    executor = FunctionExecutor(fail)
    async with executor, executor.session("ignored") as session:
        results = await session.run_blocks([CodeBlock("a", "python"), CodeBlock("b", "python")])
    assert [r.stderr for r in results] == ["boom a"]


async def test_unsafe_filenames_and_closed_executors_raise() -> None:
    executor = FunctionExecutor(lambda block: "ok")
    async with executor.session() as session:
        with pytest.raises(UnsafePathError):
            await session.run(CodeBlock("x", "python", filename="../up.py"))
        await executor.aclose()
        with pytest.raises(ExecutorClosedError):
            await session.run(CodeBlock("x", "python"))
    with pytest.raises(ExecutorClosedError):
        async with executor.session():
            pass
