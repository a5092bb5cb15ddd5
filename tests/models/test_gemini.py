"""Gemini's generateContent: the scripted server speaks it (checked with the official
`google-genai` SDK), and moot's `GeminiClient` runs against it."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from moot.agents import AssistantAgent
from moot.groupchat import GroupChat, GroupChatManager
from moot.models import (
    BadRequestError,
    GeminiClient,
    LLMConfigError,
    ModelConfig,
    ModelRequest,
    Price,
    RetryPolicy,
    UsageSummary,
    client_from_llm_config,
)
from moot.runtime import Runtime
from moot.testing import RecordedRequest, Reply, Responder, ScriptedModelServer

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


PLANNER = "You are a careful planner. " + "Be concrete and brief. " * 60


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_the_sdk_creates_names_and_deletes_cached_contents() -> None:
    async with ScriptedModelServer(default="Noted.") as server:
        sdk = _sdk(server)
        cache = await sdk.aio.caches.create(
            model="gemini-2.5-flash",
            config=types.CreateCachedContentConfig(
                system_instruction=PLANNER,
                contents=[types.Content(role="user", parts=[types.Part(text="The plan: ship.")])],
                ttl="300s",
            ),
        )
        assert cache.name is not None
        assert cache.usage_metadata is not None
        held = cache.usage_metadata.total_token_count
        answer = await sdk.aio.models.generate_content(
            model="gemini-2.5-flash",
            contents="What next?",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
        again = await sdk.aio.caches.get(name=cache.name)
        listed = [c.name async for c in await sdk.aio.caches.list()]
        # the API refuses a system prompt next to a cache that holds one
        with pytest.raises(genai_errors.ClientError, match="CachedContent can not be used"):
            await sdk.aio.models.generate_content(
                model="gemini-2.5-flash",
                contents="x",
                config=types.GenerateContentConfig(
                    cached_content=cache.name, system_instruction="Other."
                ),
            )
        await sdk.aio.caches.delete(name=cache.name)
        with pytest.raises(genai_errors.ClientError, match="not found"):
            await sdk.aio.models.generate_content(
                model="gemini-2.5-flash",
                contents="x",
                config=types.GenerateContentConfig(cached_content=cache.name),
            )
    assert held == len(PLANNER.split()) + 3
    assert answer.text == "Noted."
    assert answer.usage_metadata is not None
    assert answer.usage_metadata.cached_content_token_count == held
    assert answer.usage_metadata.prompt_token_count == held + 2
    assert again.expire_time is not None
    assert listed == [cache.name]


def _history(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": PLANNER}]
    for n in range(turns):
        messages.append({"role": "user", "content": f"Point {n}: the launch needs a date."})
        messages.append({"role": "assistant", "content": f"Answer {n}: then pick one."})
    messages.append({"role": "user", "content": "And now?"})
    return messages


async def test_a_long_prefix_is_cached_once_then_named_and_billed_as_cache_reads() -> None:
    price = {"prompt": 1.0, "completion": 2.0, "cache_read": 0.1, "cache_write": 1.0}
    async with ScriptedModelServer(default="Fine.") as server:
        entry = server.gemini_config_list(context_cache={"min_tokens": 100}, price=price)[0]
        async with GeminiClient(ModelConfig.model_validate(entry)) as client:
            first = await client.create(ModelRequest(messages=_history(1)))
            second = await client.create(ModelRequest(messages=_history(2)))
            third = await client.create(
                ModelRequest(
                    messages=[*_history(2)[:-1], {"role": "user", "content": "Once more?"}]
                )
            )
    made, *calls = server.requests
    assert made.path.endswith("/v1beta/cachedContents")
    assert made.body["model"] == "models/gemini-scripted"
    assert made.body["ttl"] == "300s"
    assert made.body["systemInstruction"] == {"parts": [{"text": PLANNER}]}
    assert len(made.body["contents"]) == 2  # every turn but the newest
    assert server.context_cache.created == 1
    name = "cachedContents/scripted-1"
    for call in calls:
        assert call.body["cachedContent"] == name
        assert "systemInstruction" not in call.body
    assert calls[0].body["contents"] == [{"role": "user", "parts": [{"text": "And now?"}]}]
    assert len(calls[1].body["contents"]) == 3  # the turns after the cached prefix
    held = server.context_cache.tokens[name]
    assert first.usage.cache_write_tokens == held  # made by this call, counted with it
    assert first.usage.cache_read_tokens == held
    assert (second.usage.cache_write_tokens, second.usage.cache_read_tokens) == (0, held)
    assert third.usage.cache_read_tokens == held
    assert second.cost == pytest.approx(
        ((second.usage.prompt_tokens - held) * 1.0 + held * 0.1 + 2.0) / 1000
    )


async def test_a_cache_the_api_forgot_is_dropped_and_the_call_made_without_it() -> None:
    async with ScriptedModelServer(default="Fine.") as server:
        entry = server.gemini_config_list(context_cache={"min_tokens": 100})[0]
        async with GeminiClient(ModelConfig.model_validate(entry)) as client:
            await client.create(ModelRequest(messages=_history(1)))
            server.context_cache.delete("cachedContents/scripted-1")  # expired early
            answer = await client.create(ModelRequest(messages=_history(1)))
    assert answer.content == "Fine."
    assert answer.usage.cache_read_tokens == 0
    refused, plain = server.requests[-2:]
    assert refused.body["cachedContent"] == "cachedContents/scripted-1"
    assert "cachedContent" not in plain.body
    assert plain.body["systemInstruction"] == {"parts": [{"text": PLANNER}]}


async def test_short_prompts_and_context_cache_false_make_no_cache() -> None:
    async with ScriptedModelServer(default="Fine.") as server:
        async with _client(server) as client:  # the default minimum: 1024 tokens
            await client.create(ModelRequest(messages=_history(2)))
        entry = server.gemini_config_list(context_cache=False)[0]
        async with GeminiClient(ModelConfig.model_validate(entry)) as client:
            await client.create(ModelRequest(messages=_history(40)))
    assert server.context_cache.created == 0
    assert all("context_cache" not in r.body for r in server.requests)


@pytest.mark.parametrize(
    "setting", ["yes", {"min_tokens": -1}, {"ttl": 5}, {"min_tokens": 10, "size": 3}]
)
def test_bad_context_cache_settings_are_refused(setting: object) -> None:
    entry = {"model": "gemini-2.5-flash", "api_type": "gemini", "context_cache": setting}
    with pytest.raises(LLMConfigError, match="context_cache"):
        GeminiClient(ModelConfig.model_validate(entry))


@pytest.mark.parametrize("stream", [False, True])
async def test_thought_parts_and_signatures_are_passed_back(stream: bool) -> None:
    script: list[Responder] = [
        Reply(thinking="Oslo is north.", tool_calls=[{"name": "weather", "arguments": {}}]),
        "It is cold there.",
    ]
    async with ScriptedModelServer(script) as server, _client(server) as client:
        first = await client.create(
            ModelRequest(messages=HELLO, tools=[WEATHER_TOOL], stream=stream)
        )
        (call,) = first.tool_calls
        history = [
            *HELLO,
            first.to_message(),
            {"role": "tool", "tool_call_id": call.id, "content": "-5 C"},
        ]
        second = await client.create(ModelRequest(messages=history, stream=stream))
    assert first.content is None
    assert first.thinking_blocks == (
        {"text": "Oslo is north.", "thought": True},
        {"thoughtSignature": "sig-0", "on": "functionCall:weather"},
    )
    assert first.usage.completion_tokens == 3 + 1  # thoughts count as output
    assert second.content == "It is cold there."
    model_turn = server.requests[1].body["contents"][1]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"text": "Oslo is north.", "thought": True},
            {"functionCall": {"name": "weather", "args": {}}, "thoughtSignature": "sig-0"},
        ],
    }


async def test_a_twenty_turn_group_chat_is_billed_mostly_as_cache_reads() -> None:
    def answer(request: RecordedRequest) -> str:
        return f"Turn {request.index}: here is my next point about the plan, with some detail."

    price = {"prompt": 0.3, "completion": 2.5, "cache_read": 0.03, "cache_write": 0.3}
    async with ScriptedModelServer(default=answer) as server:
        entry = server.gemini_config_list(
            model="gemini-2.5-flash", context_cache={"min_tokens": 256}, price=price
        )
        team = [
            AssistantAgent(
                name,
                llm_config={"config_list": entry},
                system_message=f"You are {name}, one of three planners. " + "Be concrete. " * 100,
            )
            for name in ("alice", "bob", "carol")
        ]
        group = GroupChat(team, messages=[], max_round=21, speaker_selection_method="round_robin")
        async with Runtime() as runtime:
            result = await GroupChatManager(group).a_run("Plan the launch.", runtime=runtime)
    calls = [r for r in server.requests if r.path.endswith(":generateContent")]
    assert len(calls) == 20
    assert result.turns == 20
    made = server.context_cache.created
    assert 3 <= made <= 6  # one per planner at first, a longer one now and then
    usage = sum((agent.get_total_usage() for agent in team), UsageSummary())
    share = usage.cache_read_tokens / usage.prompt_tokens
    print(f"gemini cache-read share: {share:.1%}, caches made: {made}")  # noqa: T201 - the figure
    assert share >= 0.6
    assert usage.cache_write_tokens == sum(server.context_cache.tokens.values())
    billed = Price(**price)
    assert usage.total_cost == pytest.approx(
        billed.cost(
            usage.prompt_tokens,
            usage.completion_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
    )
    # a cache is written whole at the prompt price (the API cannot extend one), so the saving
    # is smaller than Anthropic's; storage (per token-hour) is not billed per call
    assert usage.total_cost < 0.6 * billed.cost(usage.prompt_tokens, usage.completion_tokens)


async def test_concurrent_calls_on_one_client_make_one_cache() -> None:
    async with ScriptedModelServer(default="Fine.") as server:
        entry = server.gemini_config_list(context_cache={"min_tokens": 100})[0]
        async with GeminiClient(ModelConfig.model_validate(entry)) as client:
            answers: list[int] = []

            async def ask() -> None:
                answer = await client.create(ModelRequest(messages=_history(3)))
                answers.append(answer.usage.cache_read_tokens)

            async with anyio.create_task_group() as group:
                for _ in range(8):
                    group.start_soon(ask)
    assert server.context_cache.created == 1
    assert len(answers) == 8
    assert set(answers) == {server.context_cache.tokens["cachedContents/scripted-1"]}


async def test_a_server_that_ignores_streaming_is_read_whole_by_the_shared_loop() -> None:
    """The one stream loop's fallback serves Gemini too: a JSON answer to a streamed call."""
    answer: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Whole."}]}}],
        "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1},
    }
    answer["candidates"][0]["finishReason"] = "STOP"

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith(":streamGenerateContent")
        return httpx.Response(200, json=answer)

    seen: list[str] = []
    entry = {"model": "gemini-2.5-flash", "api_type": "gemini", "base_url": "http://gemini.test"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = GeminiClient(ModelConfig.model_validate(entry), http=http)
        response = await client.create(
            ModelRequest(messages=HELLO, stream=True, on_token=seen.append)
        )
    assert response.content == "Whole."
    assert seen == ["Whole."]
    assert response.usage.prompt_tokens == 2
