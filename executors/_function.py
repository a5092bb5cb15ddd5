"""`FunctionExecutor`: an in-package fake executor, so agents can be tested without Docker."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from ._base import Executor, ExecutorSession, WorkDir, safe_relative_path
from ._errors import ExecutorClosedError
from ._types import CodeBlock, CodeResult

CodeFunction = Callable[[CodeBlock], CodeResult | str | Awaitable[CodeResult | str]]


class FunctionExecutor(Executor):
    """Answer each block with `fn(block)`: a `CodeResult`, or a string taken as exit 0 stdout.

    Every block it saw is kept in `blocks`, in order, for assertions.
    """

    def __init__(self, fn: CodeFunction) -> None:
        self._fn = fn
        self._closed = False
        self.blocks: list[CodeBlock] = []

    def session(
        self, work_dir: WorkDir | None = None
    ) -> AbstractAsyncContextManager[ExecutorSession]:
        """A session that calls the function; `work_dir` is recorded but not touched.

        Raises:
            ExecutorClosedError: the executor is closed.
        """
        return self._session(work_dir)

    @asynccontextmanager
    async def _session(self, work_dir: WorkDir | None) -> AsyncIterator[ExecutorSession]:
        if self._closed:
            raise ExecutorClosedError("Cannot open a session on a closed FunctionExecutor.")
        yield _FunctionSession(self, Path(work_dir) if work_dir is not None else None)

    async def aclose(self) -> None:
        """Refuse new sessions and runs."""
        self._closed = True

    async def _call(self, block: CodeBlock) -> CodeResult:
        if self._closed:
            raise ExecutorClosedError("Cannot run code: the FunctionExecutor is closed.")
        if block.filename:
            safe_relative_path(block.filename)
        self.blocks.append(block)
        answer = self._fn(block)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, CodeResult):
            return answer
        return CodeResult(exit_code=0, stdout=str(answer), stderr="")


class _FunctionSession(ExecutorSession):
    def __init__(self, executor: FunctionExecutor, work_dir: Path | None) -> None:
        self._executor = executor
        self.work_dir = work_dir

    async def run(self, block: CodeBlock, *, timeout: float | None = None) -> CodeResult:
        """Return the function's answer for `block`.

        Raises:
            UnsafePathError: the block's `# filename:` escapes the work dir.
            ExecutorClosedError: the executor is closed.
        """
        return await self._executor._call(block)
