"""In-process fakes the chat scenarios drive: a scripted model with a latency distribution, and
wrappers that time each model call and code run."""

from __future__ import annotations

import contextlib
import random
import time
from typing import TYPE_CHECKING, Any

from moot.executors import Executor, ExecutorSession
from moot.models import ClientWrapper, ModelClient
from moot.testing import Reply, ScriptedModelClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from moot.executors import CodeBlock, CodeResult, WorkDir
    from moot.models import ModelRequest, ModelResponse
    from moot.testing import RecordedRequest

    from ._config import LatencyDistribution


class TimedModelClient(ClientWrapper):
    """Passes calls to `inner`; each call's duration goes to `on_latency("model_call", seconds)`."""

    def __init__(
        self, inner: ModelClient, on_latency: Callable[[str, float], None] | None = None
    ) -> None:
        super().__init__(inner)
        self.on_latency = on_latency

    async def create(self, request: ModelRequest) -> ModelResponse:
        start = time.perf_counter()
        response = await self.inner.create(request)
        if self.on_latency is not None:
            self.on_latency("model_call", time.perf_counter() - start)
        return response


def stub_model_client(
    latency: LatencyDistribution,
    *,
    seed: int,
    reply: Callable[[int, Sequence[Mapping[str, Any]]], str],
    on_latency: Callable[[str, float], None] | None = None,
) -> ModelClient:
    """A `ScriptedModelClient` answering `reply(call_number, messages)` after a latency drawn
    from a seeded distribution, timed by a `TimedModelClient`.

    Costs no CPU while "thinking", so CPU per turn measures moot itself; usage is counted as
    four characters a token, without splitting the history into words.
    """
    rng = random.Random(seed)
    calls = 0

    def answer(request: RecordedRequest) -> Reply:
        nonlocal calls
        calls += 1
        messages = request.messages
        text = reply(calls, messages)
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4
        completion = max(1, len(text) // 4)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        return Reply(text, latency=latency.sample(rng), usage=usage, model="stub")

    return TimedModelClient(ScriptedModelClient(default=answer, model="stub"), on_latency)


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
