"""Gemini's generateContent: the scripted server speaks it (checked with the official
`google-genai` SDK), and moot's `GeminiClient` runs against it."""

from __future__ import annotations

import json

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from moot.models import (
    BadRequestError,
    GeminiClient,
    ModelConfig,
    ModelRequest,
    RetryPolicy,
    client_from_llm_config,
)
from moot.testing import Reply, Responder, ScriptedModelServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}]


def _sdk(server: ScriptedModelServer) -> genai.Client:
    options = types.HttpOptions(base_url=server.root_url)
    return genai.Client(api_key="scripted", http_options=options)


def _client(server: ScriptedModelServer) -> GeminiClient:
    return GeminiClient(ModelConfig.model_validate(server.gemini_config_list()[0]))


# the SDK's aiohttp transport subclasses aiohttp's ClientSession, which aiohttp warns about
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_the_sdk_reads_whole_and_streamed_answers_and_tool_calls() -> None:
    script: list[Responder] = [
        "Hi there.",
        "one two three",
        Reply(tool_calls=[{"name": "weather", "arguments": {"city": "Rome"}}]),
        Reply(status=400, error="bad"),
    ]
    async with ScriptedModelServer(script) as server:
        sdk = _sdk(server)
        whole = await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="Hello")
        pieces = [
            chunk.text
            async for chunk in await sdk.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="Count"
            )
        ]
        called = await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="Rome?")
        with pytest.raises(genai_errors.ClientError, match="bad"):
            await sdk.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert whole.text == "Hi there."
    assert whole.usage_metadata is not None
    assert whole.usage_metadata.prompt_token_count == 1
    assert "".join(piece or "" for piece in pieces) == "one two three"
    assert called.function_calls is not None
    assert called.function_calls[0].name == "weather"
    assert called.function_calls[0].args == {"city": "Rome"}
    assert server.requests[0].path.endswith("/models/gemini-2.5-flash:generateContent")


@pytest.mark.parametrize("stream", [False, True])
async def test_moot_client_text_tools_and_history(stream: bool) -> None:
    seen: list[str] = []
    script: list[Responder] = [
        Reply(tool_calls=[{"name": "weather", "arguments": {"city": "Oslo"}}]),
        "It is cold there.",
    ]
    async with ScriptedModelServer(script) as server, _client(server) as client:
        first = await client.create(
            ModelRequest(
                messages=HELLO, tools=[WEATHER_TOOL], tool_choice="required", stream=stream
            )
        )
        (call,) = first.tool_calls
        assert call.name == "weather"
        assert json.loads(call.arguments) == {"city": "Oslo"}
        assert first.finish_reason == "tool_calls"
        history = [
            *HELLO,
            first.to_message(),
            {"role": "tool", "tool_call_id": call.id, "content": "-5 C"},
        ]
        second = await client.create(
            ModelRequest(messages=history, stream=stream, on_token=seen.append)
        )
    assert second.content == "It is cold there."
    assert second.finish_reason == "stop"
    if stream:
        assert seen == ["It", " is", " cold", " there."]
    body = server.requests[0].body
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    model_turn, tool_turn = server.requests[1].body["contents"][1:]
    assert model_turn == {
        "role": "model",
        "parts": [{"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}],
    }
    assert tool_turn["parts"][0]["functionResponse"] == {
        "name": "weather",
        "response": {"output": "-5 C"},
    }


async def test_429_is_retried_400_is_not_and_cached_tokens_are_cache_reads(
    retry: RetryPolicy,
) -> None:
    script: list[Responder] = [
        Reply(status=429, error="quota", retry_after=1),
        Reply("fine", usage={"cachedContentTokenCount": 3}),
        Reply(status=400, error="no"),
    ]
    async with ScriptedModelServer(script) as server:
        llm_config = {"config_list": server.gemini_config_list()}
        async with client_from_llm_config(llm_config, retry=retry) as client:
            response = await client.create(ModelRequest(messages=HELLO))
            with pytest.raises(BadRequestError, match="no"):
                await client.create(ModelRequest(messages=HELLO))
    assert response.content == "fine"
    assert response.usage.cache_read_tokens == 3
    assert response.usage.prompt_tokens == 4
    assert len(server.requests) == 3
