"""In-process fakes the chat scenarios drive: a model stub with a latency distribution, and an
executor wrapper that times each code run."""

from __future__ import annotations

import contextlib
import random
import time
from typing import TYPE_CHECKING, Any

import anyio

from moot.executors import Executor, ExecutorSession
from moot.models import (
    ModelClient,
    ModelResponse,
    Usage,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from moot.executors import CodeBlock, CodeResult, WorkDir
    from moot.models import TokenCallback

    from ._config import LatencyDistribution


class StubModelClient(ModelClient):
    """Answers after a latency drawn from a seeded distribution, with the text of
    `reply(call_number, messages)`.

    Costs no CPU while "thinking", so CPU per turn measures moot itself. Each call's latency
    goes to `on_latency("model_call", seconds)`.
    """

    def __init__(
        self,
        latency: LatencyDistribution,
        *,
        seed: int,
        reply: Callable[[int, Sequence[Mapping[str, Any]]], str],
        on_latency: Callable[[str, float], None] | None = None,
    ) -> None:
        self.latency = latency
        self._rng = random.Random(seed)
        self._reply = reply
        self._calls = 0
        self.on_latency = on_latency

    async def create(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        response_format: Mapping[str, Any] | type[Any] | None = None,
        stream: bool = False,
        on_token: TokenCallback | None = None,
        stop: str | Sequence[str] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> ModelResponse:
        start = time.perf_counter()
        self._calls += 1
        text = self._reply(self._calls, messages)
        await anyio.sleep(self.latency.sample(self._rng))
        if self.on_latency is not None:
            self.on_latency("model_call", time.perf_counter() - start)
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4
        completion = max(1, len(text) // 4)
        return ModelResponse(
            content=text,
            finish_reason="stop",
            model="stub",
            usage=Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            ),
        )

    async def aclose(self) -> None:
        return None


class TimedExecutor(Executor):
    """Wraps an executor; each code run's duration goes to `on_latency("code_run", seconds)`.

    The wrapped executor is the caller's: this wrapper neither starts nor closes it.
    """

    def __init__(
        self, inner: Executor, on_latency: Callable[[str, float], None] | None = None
    ) -> None:
        self.inner = inner
        self.on_latency = on_latency

    @contextlib.asynccontextmanager
    async def _session(self, work_dir: WorkDir | None) -> AsyncIterator[ExecutorSession]:
        async with self.inner.session(work_dir) as session:
            yield _TimedSession(session, self)

    def session(
        self, work_dir: WorkDir | None = None
    ) -> contextlib.AbstractAsyncContextManager[ExecutorSession]:
        return self._session(work_dir)

    async def aclose(self) -> None:
        return None


class _TimedSession(ExecutorSession):
    def __init__(self, inner: ExecutorSession, owner: TimedExecutor) -> None:
        self._inner = inner
        self._owner = owner

    async def run(self, block: CodeBlock, *, timeout: float | None = None) -> CodeResult:
        start = time.perf_counter()
        result = await self._inner.run(block, timeout=timeout)
        if self._owner.on_latency is not None:
            self._owner.on_latency("code_run", time.perf_counter() - start)
        return result
