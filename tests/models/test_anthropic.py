"""Anthropic's Messages API: the scripted server speaks it (checked with the official SDK), and
moot's `AnthropicClient` runs against it: text, streams, tools, thinking, errors, cache pricing."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anthropic
import pytest

from moot.agents import AssistantAgent, UserProxyAgent, register_function
from moot.groupchat import CostBudget, GroupChat, GroupChatManager
from moot.models import (
    AnthropicClient,
    BadRequestError,
    InMemoryCache,
    ModelConfig,
    ModelRequest,
    Price,
    ProviderUnavailableError,
    RateLimitError,
    RetryPolicy,
    UsageSummary,
    client_from_llm_config,
    price_for,
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


def _sdk(server: ScriptedModelServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.root_url, api_key="scripted", max_retries=0)


def _client(server: ScriptedModelServer, **extra: Any) -> AnthropicClient:
    return AnthropicClient(ModelConfig.model_validate(server.anthropic_config_list(**extra)[0]))


# -- the fake speaks the real format: the official SDK reads it ------------------------------------


async def test_the_sdk_reads_a_whole_answer_with_cache_usage() -> None:
    async with ScriptedModelServer(["Hi there.", "Hi again."]) as server, _sdk(server) as sdk:
        system: Any = [
            {"type": "text", "text": "You are terse. " * 50, "cache_control": {"type": "ephemeral"}}
        ]
        turns: Any = [{"role": "user", "content": "Hello"}]
        first = await sdk.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, system=system, messages=turns
        )
        second = await sdk.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, system=system, messages=turns
        )
    assert first.content[0].type == "text"
    assert first.content[0].text == "Hi there."
    assert first.stop_reason == "end_turn"
    assert first.usage.cache_creation_input_tokens == 150
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 1
    assert second.usage.cache_read_input_tokens == 150
    assert second.usage.cache_creation_input_tokens == 0
    request = server.requests[0]
    assert request.path == "/v1/messages"
    assert "scripted" in (request.headers.get("x-api-key") or request.headers["authorization"])
    assert "anthropic-version" in request.headers


async def test_the_sdk_streams_text_thinking_and_tool_use() -> None:
    reply = Reply(
        "Let me look.",
        thinking="The user wants weather.",
        tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}}],
    )
    async with ScriptedModelServer([reply]) as server, _sdk(server) as sdk:
        tools: Any = [
            {"name": "weather", "input_schema": {"type": "object"}, "description": "Weather."}
        ]
        async with sdk.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=100,
            tools=tools,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        ) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert "".join(texts) == "Let me look."
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use"]
    assert final.content[0].type == "thinking"
    assert final.content[0].signature == "sig-0"
    assert final.content[2].type == "tool_use"
    assert final.content[2].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens > 0


async def test_the_sdk_raises_its_typed_errors() -> None:
    script = [
        Reply(status=429, error="slow down", retry_after=1),
        Reply(status=400, error="bad"),
        Reply(stream_error={"type": "overloaded_error", "message": "Overloaded"}),
    ]
    async with ScriptedModelServer(script) as server, _sdk(server) as sdk:
        turns: Any = [{"role": "user", "content": "Hello"}]
        with pytest.raises(anthropic.RateLimitError, match="slow down"):
            await sdk.messages.create(model="m", max_tokens=10, messages=turns)
        with pytest.raises(anthropic.BadRequestError, match="bad"):
            await sdk.messages.create(model="m", max_tokens=10, messages=turns)
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            async with sdk.messages.stream(model="m", max_tokens=10, messages=turns) as stream:
                await stream.get_final_message()


# -- moot's client --------------------------------------------------------------------------------


async def test_text_reply_translates_the_request_and_marks_the_prefix() -> None:
    async with ScriptedModelServer(["Hi."]) as server, _client(server) as client:
        response = await client.create(ModelRequest(messages=HELLO, stop="END", temperature=0.5))
    assert response.content == "Hi."
    assert response.finish_reason == "stop"
    body = server.requests[0].body
    assert body["system"] == [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}],
        }
    ]
    assert body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["END"]
    assert body["temperature"] == 0.5
    assert response.usage.cache_write_tokens == 4  # "You are terse." + "Hello"


async def test_streaming_delivers_tokens_in_order() -> None:
    seen: list[str] = []
    async with ScriptedModelServer(["one two three"]) as server, _client(server) as client:
        response = await client.create(
            ModelRequest(messages=HELLO, stream=True, on_token=seen.append)
        )
    assert seen == ["one", " two", " three"]
    assert response.content == "one two three"
    assert server.requests[0].body["stream"] is True
    assert response.usage.completion_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_and_thinking_round_trip(stream: bool) -> None:
    reply = Reply(
        thinking="Need the weather.",
        tool_calls=[{"name": "weather", "arguments": {"city": "Oslo"}}],
    )
    async with ScriptedModelServer([reply, "Cold."]) as server, _client(server) as client:
        first = await client.create(
            ModelRequest(
                messages=HELLO, tools=[WEATHER_TOOL], tool_choice="required", stream=stream
            )
        )
        (call,) = first.tool_calls
        assert call.name == "weather"
        assert json.loads(call.arguments) == {"city": "Oslo"}
        assert first.finish_reason == "tool_calls"
        assert first.thinking_blocks[0]["signature"] == "sig-0"
        history = [
            *HELLO,
            first.to_message(),
            {"role": "tool", "tool_call_id": call.id, "content": "-5 C"},
        ]
        second = await client.create(ModelRequest(messages=history, tools=[WEATHER_TOOL]))
    assert second.content == "Cold."
    body = server.requests[0].body
    assert body["tools"] == [
        {
            "name": "weather",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
            "description": "Weather in a city.",
        }
    ]
    assert body["tool_choice"] == {"type": "any"}
    assistant, result = server.requests[1].body["messages"][1:]
    assert [block["type"] for block in assistant["content"]] == ["thinking", "tool_use"]
    assert assistant["content"][0]["signature"] == "sig-0"
    assert assistant["content"][1]["id"] == call.id
    assert result["role"] == "user"
    assert result["content"][0]["type"] == "tool_result"
    assert result["content"][0]["tool_use_id"] == call.id


async def test_429_is_retried_and_400_is_not(retry: RetryPolicy) -> None:
    script: list[Responder] = [
        Reply(status=429, error="slow", retry_after=2),
        "fine",
        Reply(status=400, error="no"),
    ]
    async with ScriptedModelServer(script) as server:
        llm_config = {"config_list": server.anthropic_config_list()}
        async with client_from_llm_config(llm_config, retry=retry) as client:
            assert (await client.create(ModelRequest(messages=HELLO))).content == "fine"
            with pytest.raises(BadRequestError, match="no") as caught:
                await client.create(ModelRequest(messages=HELLO))
    assert caught.value.status == 400
    assert len(server.requests) == 3


async def test_typed_errors_without_retry() -> None:
    script = [
        Reply(status=429, error="slow", retry_after=3),
        Reply(status=529, error="busy"),
        Reply(stream_error={"type": "overloaded_error", "message": "Overloaded"}),
    ]
    async with ScriptedModelServer(script) as server, _client(server) as client:
        with pytest.raises(RateLimitError) as limited:
            await client.create(ModelRequest(messages=HELLO))
        assert limited.value.retry_after == 3
        with pytest.raises(ProviderUnavailableError):
            await client.create(ModelRequest(messages=HELLO))
        with pytest.raises(ProviderUnavailableError, match="Overloaded"):
            await client.create(ModelRequest(messages=HELLO, stream=True))


async def test_a_config_list_may_mix_providers_for_fallback(retry: RetryPolicy) -> None:
    async with ScriptedModelServer([Reply(status=401, error="who?"), "from openai"]) as server:
        llm_config = {
            "config_list": [*server.anthropic_config_list(), *server.config_list("gpt-4o")]
        }
        async with client_from_llm_config(llm_config, retry=retry) as client:
            response = await client.create(ModelRequest(messages=HELLO))
    assert response.content == "from openai"
    assert [request.path for request in server.requests] == ["/v1/messages", "/v1/chat/completions"]


async def test_a_response_cache_hit_keeps_thinking_and_cache_counts() -> None:
    reply = Reply("Done.", thinking="Think first.")
    async with ScriptedModelServer([reply]) as server:
        llm_config = {"config_list": server.anthropic_config_list()}
        async with client_from_llm_config(llm_config, cache=InMemoryCache()) as client:
            first = await client.create(ModelRequest(messages=HELLO))
            again = await client.create(ModelRequest(messages=HELLO))
    assert again.cached
    assert again.thinking_blocks == first.thinking_blocks
    assert again.thinking_blocks[0]["thinking"] == "Think first."
    assert again.usage == first.usage
    assert first.usage.cache_write_tokens == 4


def test_cache_reads_and_writes_are_priced_apart() -> None:
    price = price_for("claude-sonnet-4-5-20250929")
    assert price is not None
    plain = price.cost(1000, 0)
    assert price.cost(1000, 0, cache_read_tokens=1000) == pytest.approx(plain / 10)
    assert price.cost(1000, 0, cache_write_tokens=1000) == pytest.approx(plain * 1.25)
    custom = ModelConfig.model_validate(
        {
            "model": "m",
            "price": {"prompt": 1.0, "completion": 2.0, "cache_read": 0.5, "cache_write": 3.0},
        }
    )
    assert custom.price == Price(prompt=1.0, completion=2.0, cache_read=0.5, cache_write=3.0)


async def test_usage_and_cost_carry_the_cache_counts() -> None:
    price = {"prompt": 1.0, "completion": 2.0, "cache_read": 0.1, "cache_write": 1.25}
    async with (
        ScriptedModelServer(["a b", "c d"]) as server,
        _client(server, price=price) as client,
    ):
        first = await client.create(ModelRequest(messages=HELLO))
        second = await client.create(ModelRequest(messages=HELLO))
    assert (first.usage.cache_write_tokens, first.usage.cache_read_tokens) == (4, 0)
    assert (second.usage.cache_write_tokens, second.usage.cache_read_tokens) == (0, 4)
    assert second.usage.prompt_tokens == 4
    assert first.cost == pytest.approx((4 * 1.25 + 2 * 2.0) / 1000)
    assert second.cost == pytest.approx((4 * 0.1 + 2 * 2.0) / 1000)


# -- agents on the Anthropic wire -----------------------------------------------------------------


async def test_a_tool_call_round_trips_in_a_two_agent_chat() -> None:
    script: list[Responder] = [
        Reply(tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 40}}]),
        "The sum is 42. TERMINATE",
    ]
    async with ScriptedModelServer(script) as server:
        assistant = AssistantAgent(
            "assistant", llm_config={"config_list": server.anthropic_config_list()}
        )
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config=False,
            max_consecutive_auto_reply=3,
        )

        def add(a: Annotated[int, "first"], b: Annotated[int, "second"]) -> int:
            return a + b

        register_function(add, caller=assistant, executor=user, description="Add two numbers.")
        result = await user.a_initiate_chat(assistant, message="What is 2 + 40?", silent=True)
    assert result.chat_history[-1]["content"] == "The sum is 42. TERMINATE"
    second = server.requests[1].body["messages"]
    tool_use = second[1]["content"][-1]
    assert tool_use["type"] == "tool_use"
    assert tool_use["input"] == {"a": 2, "b": 40}
    tool_result = second[2]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == tool_use["id"]
    assert tool_result["content"][0]["text"] == "42"
    server.assert_script_consumed()


async def test_a_twenty_turn_group_chat_is_billed_mostly_as_cache_reads() -> None:
    def answer(request: RecordedRequest) -> str:
        return f"Turn {request.index}: here is my next point about the plan, with some detail."

    async with ScriptedModelServer(default=answer) as server:
        llm_config = {"config_list": server.anthropic_config_list(model="claude-sonnet-4-5")}
        team = [
            AssistantAgent(
                name,
                llm_config=llm_config,
                system_message=f"You are {name}, one of three planners. " + "Be concrete. " * 100,
            )
            for name in ("alice", "bob", "carol")
        ]
        group = GroupChat(team, messages=[], max_round=21, speaker_selection_method="round_robin")
        async with Runtime() as runtime:
            result = await GroupChatManager(group).a_run("Plan the launch.", runtime=runtime)
    assert len(server.requests) == 20
    assert result.turns == 20
    usage = sum((agent.get_total_usage() for agent in team), UsageSummary())
    share = usage.cache_read_tokens / usage.prompt_tokens
    assert share >= 0.6
    price = price_for("claude-sonnet-4-5")
    assert price is not None
    # the cost (what CostBudget counts) is priced with the cache reads and writes
    assert usage.total_cost == pytest.approx(
        price.cost(
            usage.prompt_tokens,
            usage.completion_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
    )
    assert usage.total_cost < price.cost(usage.prompt_tokens, usage.completion_tokens) / 2


async def test_cost_budget_counts_cache_priced_anthropic_calls() -> None:
    async with ScriptedModelServer(default="A point, made briefly.") as server:
        llm_config = {"config_list": server.anthropic_config_list(model="claude-sonnet-4-5")}
        team = [
            AssistantAgent(name, llm_config=llm_config, system_message="Be concrete. " * 100)
            for name in ("alice", "bob")
        ]
        group = GroupChat(team, messages=[], max_round=21, speaker_selection_method="round_robin")
        manager = GroupChatManager(group, termination=CostBudget(0.002))
        async with Runtime() as runtime:
            result = await manager.a_run("Plan the launch.", runtime=runtime)
    assert result.stop_reason.condition == "CostBudget"
    spent = sum((agent.get_total_usage() for agent in team), UsageSummary())
    assert result.cost == pytest.approx(spent.total_cost)
    assert spent.cache_read_tokens > 0
    assert 0.002 <= result.cost < 0.004
