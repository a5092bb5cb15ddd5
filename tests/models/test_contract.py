"""The model-client contract, written once and run over every client moot ships.

The same script and the same `ModelRequest` go to: `OpenAIClient` against `ScriptedModelServer`,
`FallbackClient` (a failing client, then HTTP), `CachingClient` over `ScriptedModelClient`,
`LocalModelClient` over a scripted engine, and `ScriptedModelClient` alone. Each must answer
with the same response shape, usage, tool calls and streamed pieces, raise the same typed
errors, and survive a cancelled caller.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from moot.models import (
    BadRequestError,
    CachingClient,
    FallbackClient,
    InMemoryCache,
    LocalModelClient,
    ModelClient,
    ModelConfig,
    ModelRequest,
    ModelTimeoutError,
    OpenAIClient,
    ProviderUnavailableError,
    RateLimitError,
    error_for_status,
)
from moot.testing import Reply, Rule, ScriptedModelClient, ScriptedModelServer
from moot.testing._script import tokens

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

HELLO = ModelRequest(
    messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to my friend"},
    ]
)
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}}


@dataclass
class Harness:
    client: ModelClient
    reached: Callable[[int], Awaitable[None]]  # wait until n requests reached the model
    tools: bool = True


class ScriptedEngine:
    """The embedded model's engine seam, answering the same `Reply` script word by word."""

    def __init__(self, script: Sequence[Reply]) -> None:
        self.script = list(script)
        self.calls = 0
        self.release = threading.Event()
        self.entered = [threading.Event() for _ in self.script]

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        reply = self.script[self.calls]
        self.entered[self.calls].set()
        self.calls += 1
        if reply.status >= 400:
            raise error_for_status(
                reply.status, reply.error or "scripted", retry_after=reply.retry_after
            )
        if reply.hang:
            while not self.release.wait(0.01):
                yield ""  # a piece now and then, so a cancelled job stops at the next one
            return
        yield from tokens(reply.content)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


async def _blocked(_: int) -> None:
    await anyio.wait_all_tasks_blocked()


@contextlib.asynccontextmanager
async def _http(script: Sequence[Reply]) -> AsyncIterator[Harness]:
    async with ScriptedModelServer(script) as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with OpenAIClient(config) as client:

            async def reached(count: int) -> None:
                await server.wait_for(lambda s: len(s.requests) >= count)

            yield Harness(client, reached)


@contextlib.asynccontextmanager
async def _fallback(script: Sequence[Reply]) -> AsyncIterator[Harness]:
    down = ScriptedModelClient(default=Reply(status=503))
    async with _http(script) as http:
        async with FallbackClient([down, http.client]) as client:
            yield Harness(client, http.reached)


@contextlib.asynccontextmanager
async def _cache(script: Sequence[Reply]) -> AsyncIterator[Harness]:
    async with CachingClient(ScriptedModelClient(script), InMemoryCache()) as client:
        yield Harness(client, _blocked)


@contextlib.asynccontextmanager
async def _local(script: Sequence[Reply]) -> AsyncIterator[Harness]:
    engine = ScriptedEngine(script)
    try:
        async with LocalModelClient(engine=engine) as client:

            async def reached(count: int) -> None:
                await anyio.to_thread.run_sync(engine.entered[count - 1].wait)

            yield Harness(client, reached, tools=False)
    finally:
        engine.release.set()


@contextlib.asynccontextmanager
async def _scripted(script: Sequence[Reply]) -> AsyncIterator[Harness]:
    async with ScriptedModelClient(script) as client:
        yield Harness(client, _blocked)


KINDS = {
    "http": _http,
    "fallback": _fallback,
    "cache": _cache,
    "local": _local,
    "scripted": _scripted,
}


@pytest.fixture(params=sorted(KINDS))
def harness(
    request: pytest.FixtureRequest,
) -> Callable[..., contextlib.AbstractAsyncContextManager[Harness]]:
    return lambda *script: KINDS[request.param](script)


async def test_an_answer_has_content_finish_reason_usage_and_model(harness: Any) -> None:
    async with harness(Reply("Hello there, friend")) as h:
        response = await h.client.create(HELLO)
    assert response.content == "Hello there, friend"
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (8, 3)
    assert response.usage.total_tokens == 11
    assert response.model
    assert not response.cached


async def test_streaming_delivers_each_piece_in_order_and_the_same_answer(harness: Any) -> None:
    pieces: list[str] = []
    async with harness(Reply("Hello there, friend")) as h:
        response = await h.client.create(HELLO.with_options(stream=True, on_token=pieces.append))
    assert pieces == ["Hello", " there,", " friend"]
    assert response.content == "Hello there, friend"
    assert response.finish_reason == "stop"


async def test_an_async_token_callback_is_awaited(harness: Any) -> None:
    pieces: list[str] = []

    async def on_token(piece: str) -> None:
        await anyio.lowlevel.checkpoint()
        pieces.append(piece)

    async with harness(Reply("one two")) as h:
        await h.client.create(HELLO.with_options(stream=True, on_token=on_token))
    assert pieces == ["one", " two"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_tool_calls_come_back_whole_or_are_refused_with_a_typed_error(
    harness: Any, stream: bool
) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    request = HELLO.with_options(tools=tools, stream=stream)
    async with harness(Reply(tool_calls=[WEATHER])) as h:
        if not h.tools:
            with pytest.raises(BadRequestError, match="tool calls"):
                await h.client.create(request)
            return
        response = await h.client.create(request)
    (call,) = response.tool_calls
    assert (call.id, call.name) == ("call_0_0", "get_weather")
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert response.finish_reason == "tool_calls"
    assert response.to_message()["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, RateLimitError), (400, BadRequestError), (503, ProviderUnavailableError)],
)
async def test_failures_are_typed_errors(harness: Any, status: int, kind: type[Exception]) -> None:
    async with harness(Reply(status=status, retry_after=2, error="scripted failure")) as h:
        with pytest.raises(kind) as caught:
            await h.client.create(HELLO)
    assert caught.value.status == status  # type: ignore[attr-defined]
    if status == 429:
        assert caught.value.retry_after == 2  # type: ignore[attr-defined]


async def test_a_cancelled_caller_leaves_the_client_usable(harness: Any) -> None:
    async with harness(Reply(hang=True), Reply("after")) as h:
        async with anyio.create_task_group() as group:
            group.start_soon(h.client.create, HELLO)
            await h.reached(1)
            group.cancel_scope.cancel()
        assert (await h.client.create(HELLO)).content == "after"


async def test_the_request_timeout_is_a_typed_timeout(harness: Any) -> None:
    async with harness(Reply(hang=True)) as h:
        with anyio.fail_after(30), pytest.raises(ModelTimeoutError):
            await h.client.create(HELLO.with_options(timeout=0.2))


async def test_the_scripted_client_records_requests_and_raises_scripted_errors() -> None:
    refused = RateLimitError("slow down", retry_after=1)
    client = ScriptedModelClient(
        [refused, "second"], rules=[Rule("weather", Reply(tool_calls=[WEATHER]))]
    )
    with pytest.raises(RateLimitError) as caught:
        await client.create(HELLO)
    assert caught.value is refused
    weather = ModelRequest(messages=[{"role": "user", "content": "the weather?"}])
    assert (await client.create(weather)).tool_calls[0].name == "get_weather"
    assert (await client.create(HELLO)).content == "second"
    assert [request.messages[-1]["content"] for request in client.requests] == [
        "Say hello to my friend",
        "the weather?",
        "Say hello to my friend",
    ]
    with pytest.raises(AssertionError, match="no reply left for request #3"):
        await client.create(HELLO)
