"""The scripted server itself: sequence and rules, its request log, exhaustion, sync mode."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest

from moot.runtime import LifecycleError
from moot.testing import (
    ModelClientServer,
    RecordedRequest,
    Reply,
    Rule,
    ScriptedModelClient,
    ScriptedModelServer,
)

if TYPE_CHECKING:
    from moot.models import ModelRequest, ModelResponse


def _chat(text: str, **extra: object) -> dict[str, object]:
    return {"model": "scripted", "messages": [{"role": "user", "content": text}], **extra}


async def test_rules_win_over_the_sequence_and_retire_after_their_count() -> None:
    def echo(request: RecordedRequest) -> str:
        return f"echo: {request.last_text}"

    rules = [
        Rule("weather", "sunny", times=1),
        Rule(lambda r: r.last_text.startswith("say"), echo),
    ]
    async with (
        ScriptedModelServer(["first", "second"], rules=rules) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        answers = []
        for text in ("weather?", "weather?", "say hi", "other"):
            response = await http.post("/chat/completions", json=_chat(text))
            answers.append(response.json()["choices"][0]["message"]["content"])
        server.assert_script_consumed()

    assert answers == ["sunny", "first", "echo: say hi", "second"]
    assert [r.last_text for r in server.requests] == ["weather?", "weather?", "say hi", "other"]
    assert server.requests[2].index == 2


async def test_an_exhausted_script_answers_500_naming_the_problem() -> None:
    async with (
        ScriptedModelServer(["only one"]) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        await http.post("/chat/completions", json=_chat("a"))
        response = await http.post("/chat/completions", json=_chat("b"))
        with pytest.raises(AssertionError, match="no reply left for request #1"):
            server.assert_script_consumed()

    assert response.status_code == 500
    assert "no reply left for request #1 (last message: 'b')" in response.text


async def test_models_route_error_routes_and_headers() -> None:
    async with (
        ScriptedModelServer(
            [Reply(status=429, retry_after=2, error="slow")], models=["a", "b"]
        ) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        models = await http.get("/models")
        missing = await http.post("/embeddings", json={})
        limited = await http.post("/chat/completions", json=_chat("x"))

    assert [m["id"] for m in models.json()["data"]] == ["a", "b"]
    assert missing.status_code == 404
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["message"] == "slow"
    assert [r.method for r in server.requests] == ["GET", "POST", "POST"]


def test_sync_mode_runs_on_a_background_thread_and_streams_sse() -> None:
    with ScriptedModelServer([Reply("a b", usage={"prompt_tokens": 7})]) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        body = _chat("go", stream=True, stream_options={"include_usage": True})
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
            events = [line for line in response.iter_lines() if line.startswith("data:")]
        assert server.config_list() == [
            {"model": "scripted", "base_url": server.base_url, "api_key": "scripted"}
        ]

    assert response.headers["content-type"] == "text/event-stream"
    assert events[-1] == "data: [DONE]"
    assert '"usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}' in events[-2]
    assert len(server.requests) == 1
    with pytest.raises(LifecycleError, match="not running"):
        _ = server.base_url


async def test_latency_delays_the_answer_and_a_failing_responder_answers_500() -> None:
    def broken(_: RecordedRequest) -> str:
        raise KeyError("oops")

    async with (
        ScriptedModelServer([Reply("late", latency=0.05), broken]) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        started = time.perf_counter()
        late = await http.post("/chat/completions", json=_chat("a"))
        elapsed = time.perf_counter() - started
        failed = await http.post("/chat/completions", json=_chat("b"))

    assert late.json()["choices"][0]["message"]["content"] == "late"
    assert elapsed >= 0.05
    assert failed.status_code == 500
    assert "the responder for request #1 raised KeyError('oops')" in failed.text
    assert server.errors == [failed.json()["error"]["message"]]


class _Broken(ScriptedModelClient):
    async def create(self, request: ModelRequest) -> ModelResponse:
        if request.messages[-1]["content"] == "bug":
            raise RuntimeError("a bug in the client")
        return await super().create(request)


async def test_the_client_server_answers_500_for_a_handler_bug_and_keeps_serving() -> None:
    async with (
        ModelClientServer(_Broken(default="fine"), model="m") as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        broken = await http.post("/chat/completions", json=_chat("bug"))
        assert broken.status_code == 500
        assert "a bug in the client" in broken.json()["error"]["message"]
        fine = await http.post("/chat/completions", json=_chat("hello"))
        assert fine.json()["choices"][0]["message"]["content"] == "fine"
        async with await anyio.connect_tcp("127.0.0.1", server.port) as raw:
            await raw.send(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                b"content-length: %d\r\n\r\n" % (server.max_body + 1)
            )
            assert (await raw.receive()).startswith(b"HTTP/1.1 413 ")
