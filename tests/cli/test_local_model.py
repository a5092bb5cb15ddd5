"""`LocalModelClient` over a scripted engine: off the loop, FIFO across chats, streaming, stops.

A last test runs the real embedded model; it skips unless the model is cached and llama-cpp-python
is installed (the issue runs it in CI only when cached).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from moot.models import (
    LOCAL_MODEL_NAME,
    BadRequestError,
    LocalModelClient,
    ModelConfig,
    ModelRequest,
    OpenAIClient,
    ProviderUnavailableError,
    cached_model,
)
from moot.testing import ModelClientServer

if TYPE_CHECKING:
    from collections.abc import Iterator


class ScriptedEngine:
    """Yields `pieces` for every call; records the order of calls and the thread they ran on.

    With `gate` set, each generation waits for it before its first piece (to queue up calls).
    """

    def __init__(self, pieces: list[str], gate: threading.Event | None = None) -> None:
        self.pieces = pieces
        self.gate = gate
        self.calls: list[str] = []
        self.threads: set[int] = set()
        self.active = 0
        self.most_active = 0

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        self.threads.add(threading.get_ident())
        self.calls.append(messages[-1]["content"])
        try:
            if self.gate is not None:
                self.gate.wait(10)
            yield from self.pieces[:max_tokens]
        finally:
            self.active -= 1

    def count_tokens(self, text: str) -> int:
        return len(text.split())


async def test_a_call_runs_off_the_event_loop_and_reports_usage() -> None:
    engine = ScriptedEngine(["Hello", ", ", "world"])
    async with LocalModelClient(engine=engine) as client:
        response = await client.create(
            ModelRequest(messages=[{"role": "user", "content": "say hello please"}])
        )
    assert response.content == "Hello, world"
    assert response.usage.completion_tokens == 3
    assert response.usage.prompt_tokens == 3
    assert response.finish_reason == "stop"
    assert threading.get_ident() not in engine.threads


async def test_streaming_delivers_each_piece_in_order() -> None:
    engine = ScriptedEngine(["a", "b", "c"])
    seen: list[str] = []
    async with LocalModelClient(engine=engine) as client:
        response = await client.create(
            ModelRequest(
                messages=[{"role": "user", "content": "x"}], stream=True, on_token=seen.append
            )
        )
    assert seen == ["a", "b", "c"]
    assert response.content == "abc"


async def test_stop_sequences_cut_the_answer_even_across_pieces() -> None:
    engine = ScriptedEngine(["print(1)\n", "``", "`\nmore text", " never"])
    seen: list[str] = []
    async with LocalModelClient(engine=engine) as client:
        response = await client.create(
            ModelRequest(
                messages=[{"role": "user", "content": "x"}],
                stop=["```"],
                stream=True,
                on_token=seen.append,
            )
        )
    assert response.content == "print(1)\n"
    assert "more text" not in "".join(seen)


async def test_generations_are_serialized_first_come_first_served() -> None:
    gate = threading.Event()
    engine = ScriptedEngine(["ok"], gate=gate)
    order: list[str] = []
    async with LocalModelClient(engine=engine) as client:

        async def chat(name: str) -> None:
            await client.create(ModelRequest(messages=[{"role": "user", "content": name}]))
            order.append(name)

        async with anyio.create_task_group() as group:
            for name in ("first", "second", "third", "fourth"):
                group.start_soon(chat, name)
                await anyio.wait_all_tasks_blocked()
            gate.set()
    assert engine.calls == ["first", "second", "third", "fourth"]
    assert order == engine.calls
    assert engine.most_active == 1
    assert len(engine.threads) == 1


async def test_a_cancelled_caller_stops_its_generation() -> None:
    gate = threading.Event()
    engine = ScriptedEngine(["x"] * 1000, gate=gate)
    async with LocalModelClient(engine=engine) as client:
        with anyio.move_on_after(0) as scope:
            await client.create(ModelRequest(messages=[{"role": "user", "content": "long"}]))
        assert scope.cancelled_caught
        gate.set()
        engine.gate = None
        engine.pieces = ["after"]
        response = await client.create(ModelRequest(messages=[{"role": "user", "content": "next"}]))
    assert response.content == "after"


async def test_tools_and_a_missing_model_are_clear_errors(tmp_path: Any) -> None:
    async with LocalModelClient(engine=ScriptedEngine(["x"])) as client:
        with pytest.raises(BadRequestError, match="tool calls"):
            await client.create(
                ModelRequest(
                    messages=[{"role": "user", "content": "x"}], tools=[{"type": "function"}]
                )
            )
    async with LocalModelClient(tmp_path / "missing.gguf") as missing:
        with pytest.raises(ProviderUnavailableError):
            await missing.create(ModelRequest(messages=[{"role": "user", "content": "x"}]))


async def test_the_server_speaks_openai_chat_completions() -> None:
    engine = ScriptedEngine(["4", "2"])
    async with (
        LocalModelClient(engine=engine) as client,
        ModelClientServer(client, model=LOCAL_MODEL_NAME) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        plain = (
            await http.post(
                "/chat/completions", json={"messages": [{"role": "user", "content": "6*7?"}]}
            )
        ).json()
        assert plain["choices"][0]["message"]["content"] == "42"
        assert plain["usage"]["completion_tokens"] == 2
        streamed = await http.post(
            "/chat/completions",
            json={"messages": [{"role": "user", "content": "x"}], "stream": True},
        )
        lines = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert lines[-1] == "[DONE]"
        text = "".join(
            json.loads(line)["choices"][0]["delta"].get("content", "") for line in lines[:-1]
        )
        assert text == "42"
        assert (await http.get("/models")).json()["data"][0]["id"].startswith("qwen")
        assert (await http.post("/chat/completions", content=b"{}")).status_code == 400
        # moot's own client reads it, streamed or not.
        config = ModelConfig(model=LOCAL_MODEL_NAME, base_url=server.base_url)
        async with OpenAIClient(config) as moot:
            tokens: list[str] = []
            request = ModelRequest(messages=[{"role": "user", "content": "x"}])
            assert (await moot.create(request)).content == "42"
            streamed_answer = await moot.create(
                request.with_options(stream=True, on_token=tokens.append)
            )
        assert (streamed_answer.content, tokens) == ("42", ["4", "2"])


async def test_the_server_reports_a_model_error_inside_a_stream_as_a_typed_error() -> None:
    engine = ScriptedEngine(["x"])
    async with (
        LocalModelClient(engine=engine) as client,
        ModelClientServer(client, model=LOCAL_MODEL_NAME) as server,
        OpenAIClient(ModelConfig(model="m", base_url=server.base_url)) as moot,
    ):
        tools_request = ModelRequest(
            messages=[{"role": "user", "content": "x"}], tools=[{"type": "function"}]
        )
        with pytest.raises(BadRequestError, match="tool calls"):
            await moot.create(tools_request)
        with pytest.raises(BadRequestError, match="tool calls"):
            await moot.create(tools_request.with_options(stream=True))


@pytest.mark.skipif(
    cached_model() is None or importlib.util.find_spec("llama_cpp") is None,
    reason="the embedded model is not cached or llama-cpp-python is not installed",
)
async def test_the_real_embedded_model_writes_code() -> None:
    async with LocalModelClient() as client:
        response = await client.create(
            ModelRequest(
                messages=[
                    {
                        "role": "system",
                        "content": "You write Python code in one fenced code block.",
                    },
                    {"role": "user", "content": "Write Python that prints the sum of 2 and 3."},
                ],
                max_tokens=120,
            )
        )
    assert "print" in (response.content or "")
    assert response.usage.completion_tokens > 0
