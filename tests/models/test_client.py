"""The client against the scripted server over real HTTP: replies, streams, tools, formats, cost."""

from __future__ import annotations

import json
from typing import Any

import pydantic

from moot.models import (
    LLMConfig,
    ModelConfig,
    ModelRequest,
    OpenAIClient,
    Price,
    RetryPolicy,
    ToolCall,
    Usage,
    client_from_llm_config,
    price_for,
)
from moot.testing import Reply, ScriptedModelServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _config(server: ScriptedModelServer, **extra: Any) -> ModelConfig:
    return ModelConfig(model="scripted", base_url=server.base_url, api_key="sk-test", **extra)


async def test_plain_reply_returns_content_and_sends_the_request(
    hello: list[dict[str, str]],
) -> None:
    async with (
        ScriptedModelServer([Reply("Hi there.")]) as server,
        OpenAIClient(_config(server)) as client,
    ):
        response = await client.create(
            ModelRequest(messages=hello, temperature=0.2, max_tokens=50, stop="END")
        )

    assert response.content == "Hi there."
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    assert response.model == "scripted"
    assert not response.cached
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "scripted",
        "messages": hello,
        "temperature": 0.2,
        "max_tokens": 50,
        "stop": ["END"],
    }
    assert response.to_message() == {"role": "assistant", "content": "Hi there."}


async def test_streaming_calls_the_token_callback_in_order(hello: list[dict[str, str]]) -> None:
    tokens: list[str] = []

    async def on_token(text: str) -> None:
        tokens.append(text)

    async with (
        ScriptedModelServer([Reply("The answer is 42."), "sync callbacks work too"]) as server,
        OpenAIClient(_config(server)) as client,
    ):
        response = await client.create(ModelRequest(messages=hello, stream=True, on_token=on_token))
        plain: list[str] = []
        second = await client.create(
            ModelRequest(messages=hello, stream=True, on_token=plain.append)
        )

    assert tokens == ["The", " answer", " is", " 42."]
    assert response.content == "The answer is 42."
    assert response.finish_reason == "stop"
    assert response.usage == Usage(prompt_tokens=4, completion_tokens=4, total_tokens=8)
    assert "".join(plain) == second.content == "sync callbacks work too"
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


async def test_parallel_tool_calls_arrive_whole_with_and_without_streaming(
    hello: list[dict[str, str]],
) -> None:
    calls = [
        {"id": "call_a", "name": "weather", "arguments": {"city": "Oslo"}},
        {"id": "call_b", "name": "weather", "arguments": {"city": "Lima"}},
    ]
    expected = (
        ToolCall(id="call_a", name="weather", arguments='{"city": "Oslo"}'),
        ToolCall(id="call_b", name="weather", arguments='{"city": "Lima"}'),
    )
    async with (
        ScriptedModelServer([Reply(tool_calls=calls), Reply(tool_calls=calls)]) as server,
        OpenAIClient(_config(server)) as client,
    ):
        plain = await client.create(
            ModelRequest(messages=hello, tools=[WEATHER_TOOL], tool_choice="auto")
        )
        streamed = await client.create(
            ModelRequest(messages=hello, tools=[WEATHER_TOOL], stream=True)
        )

    for response in (plain, streamed):
        assert response.tool_calls == expected
        assert response.finish_reason == "tool_calls"
        assert response.content is None
    assert server.requests[0].body["tools"] == [WEATHER_TOOL]
    assert server.requests[0].body["tool_choice"] == "auto"
    assert plain.to_message()["tool_calls"][1] == {
        "id": "call_b",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Lima"}'},
    }


class Answer(pydantic.BaseModel):
    value: int
    unit: str


async def test_response_format_is_passed_through_and_built_from_a_pydantic_model(
    hello: list[dict[str, str]],
) -> None:
    schema_format = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    text = json.dumps({"value": 42, "unit": "m"})
    async with (
        ScriptedModelServer([text, text]) as server,
        OpenAIClient(_config(server)) as client,
    ):
        first = await client.create(ModelRequest(messages=hello, response_format=schema_format))
        await client.create(ModelRequest(messages=hello, response_format=Answer))

    assert Answer.model_validate_json(first.content or "") == Answer(value=42, unit="m")
    assert server.requests[0].body["response_format"] == schema_format
    built = server.requests[1].body["response_format"]
    assert built["type"] == "json_schema"
    assert built["json_schema"]["name"] == "Answer"
    assert built["json_schema"]["schema"]["required"] == ["value", "unit"]


async def test_usage_and_cost_use_the_price_table_or_the_config_price(
    hello: list[dict[str, str]],
) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    async with ScriptedModelServer(default=Reply("ok", usage=usage)) as server:
        listed = ModelConfig(model="gpt-4o-2024-08-06", base_url=server.base_url)
        priced = _config(server, price=[0.01, 0.02])
        async with (
            OpenAIClient(listed) as a,
            OpenAIClient(priced) as b,
            OpenAIClient(_config(server)) as free,
        ):
            from_table = await a.create(ModelRequest(messages=hello))
            from_config = await b.create(ModelRequest(messages=hello))
            unknown = await free.create(ModelRequest(messages=hello))

    assert from_table.usage == Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    assert price_for("gpt-4o-2024-08-06") == Price(prompt=0.0025, completion=0.01)
    assert from_table.cost == 0.0025 + 0.005
    assert from_config.cost == 0.01 + 0.01
    assert unknown.cost == 0.0
    assert from_table.usage + from_config.usage == Usage(
        prompt_tokens=2000, completion_tokens=1000, total_tokens=3000
    )


async def test_azure_config_uses_the_deployment_url_and_api_key_header(
    hello: list[dict[str, str]],
) -> None:
    async with ScriptedModelServer(["from azure"]) as server:
        config = ModelConfig(
            model="gpt-4.1",
            api_type="azure",
            api_version="2024-10-21",
            base_url=server.root_url,
            api_key="azure-key",
        )
        async with OpenAIClient(config) as client:
            response = await client.create(ModelRequest(messages=hello))

    assert response.content == "from azure"
    request = server.requests[0]
    assert request.path == "/openai/deployments/gpt-41/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "azure-key"
    assert "authorization" not in request.headers


async def test_llm_config_settings_and_extra_params_reach_every_request(
    hello: list[dict[str, str]],
) -> None:
    async with ScriptedModelServer(["one"]) as server:
        llm_config = {
            "config_list": server.config_list(top_p=0.5),
            "temperature": 0,
            "max_tokens": 64,
            "seed": 7,
        }
        async with client_from_llm_config(llm_config, retry=RetryPolicy()) as client:
            await client.create(ModelRequest(messages=hello))

    body = server.requests[0].body
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["seed"]) == (0, 64, 0.5, 7)
    assert LLMConfig.from_autogen(llm_config).entries()[0].temperature == 0
