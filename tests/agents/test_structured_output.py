"""Structured output (issue 16 §2): `response_format` on an agent, validated, repaired, typed."""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING, Any

import pydantic
import pytest

from moot.agents import AgentConfigError, AssistantAgent, UserProxyAgent, register_function
from moot.models import (
    BadRequestError,
    LocalModelClient,
    ModelError,
    ModelRequest,
    StructuredOutputError,
    cached_model,
    client_from_llm_config,
)
from moot.runtime import MessageCodec, MootError
from moot.testing import RecordedRequest, Reply, ScriptedModelClient, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


class Capital(pydantic.BaseModel):
    country: str
    city: str
    population: int


CAPITAL_SCHEMA: dict[str, Any] = {
    "title": "capital",
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}

PARIS: dict[str, Any] = {"country": "France", "city": "Paris", "population": 2102650}


def _user() -> UserProxyAgent:
    return UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)


def _format_of(request: RecordedRequest) -> str | None:
    response_format = request.body.get("response_format")
    return None if response_format is None else str(response_format["type"])


async def test_invalid_then_valid_json_is_repaired_once_and_typed(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push('{"country": "France", "city": "Paris"}', json.dumps(PARIS))
    assistant = AssistantAgent("assistant", llm_config=llm_config, response_format=Capital)

    result = await _user().a_initiate_chat(
        assistant, message="The capital of France?", max_turns=1, silent=True
    )

    assert result.output == Capital(**PARIS)
    assert isinstance(result.output, Capital)
    assert len(server.requests) == 2
    first, repair = server.requests
    assert _format_of(first) == "json_schema"
    schema = first.body["response_format"]["json_schema"]
    assert schema["name"] == "Capital"
    assert schema["schema"]["required"] == ["country", "city", "population"]
    # the repair shows the model its answer and what was wrong with it
    assert repair.messages[-2] == {
        "role": "assistant",
        "content": '{"country": "France", "city": "Paris"}',
    }
    assert "population" in repair.messages[-1]["content"]
    assert "Field required" in repair.messages[-1]["content"]
    assert '"required": ["country", "city", "population"]' in repair.messages[-1]["content"]
    # the chat carries the validated answer once, as JSON; both calls are counted
    assert json.loads(result.chat_history[-1]["content"]) == PARIS
    assert result.cost.calls == 2


async def test_a_fenced_answer_in_the_prompt_mode_validates(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Here it is:\n```json\n" + json.dumps(PARIS) + "\n```")
    assistant = AssistantAgent("assistant", llm_config=llm_config, response_format=Capital)

    result = await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)

    assert result.output == Capital(**PARIS)


async def test_a_server_that_refuses_response_format_gets_the_schema_in_the_prompt(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    def answer(request: RecordedRequest) -> Reply:
        if "response_format" in request.body:
            return Reply(status=400, error="response_format is not supported")
        return Reply(json.dumps({"city": "Paris", "population": 2102650}))

    server.default = answer
    client = client_from_llm_config(llm_config)
    assistant = AssistantAgent("assistant", model_client=client, response_format=CAPITAL_SCHEMA)
    async with client:
        first = await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)
        second = await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)

    assert first.output == {"city": "Paris", "population": 2102650}
    assert second.output == first.output
    formats = [_format_of(request) for request in server.requests]
    # json_schema refused, json_object refused, plain; the next chat asks plainly at once
    assert formats == ["json_schema", "json_object", None, None]
    prompt = server.requests[2].messages[-1]
    assert prompt["role"] == "system"
    assert json.loads(prompt["content"].split("\n", 1)[1]) == CAPITAL_SCHEMA


async def test_json_object_is_used_when_only_json_schema_is_refused(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    def answer(request: RecordedRequest) -> Reply:
        if _format_of(request) == "json_schema":
            return Reply(status=400, error="json_schema is not supported")
        return Reply(json.dumps(PARIS))

    server.default = answer
    assistant = AssistantAgent("assistant", llm_config=llm_config, response_format=Capital)

    result = await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)

    assert result.output == Capital(**PARIS)
    assert [_format_of(r) for r in server.requests] == ["json_schema", "json_object"]
    assert "JSON schema" in server.requests[1].messages[-1]["content"]


async def test_repairs_exhausted_raise_a_typed_error(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Paris!", '{"city": "Paris"}', "[1, 2]")
    assistant = AssistantAgent(
        "assistant", llm_config=llm_config, response_format=CAPITAL_SCHEMA, max_format_repairs=2
    )

    with pytest.raises(StructuredOutputError) as caught:
        await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)

    assert isinstance(caught.value, ModelError)
    assert isinstance(caught.value, MootError)
    assert isinstance(caught.value, ValueError)
    assert len(caught.value.errors) == 3
    assert "not JSON" in caught.value.errors[0]
    assert "missing required property 'population'" in caught.value.errors[1]
    assert "expected object" in caught.value.errors[2]
    assert len(server.requests) == 3  # one answer and two repairs, no more


async def test_zero_repairs_fail_on_the_first_bad_answer(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("nope")
    assistant = AssistantAgent(
        "assistant", llm_config=llm_config, response_format=Capital, max_format_repairs=0
    )
    with pytest.raises(StructuredOutputError):
        await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)
    assert len(server.requests) == 1


def test_unusable_settings_are_refused(llm_config: dict[str, Any]) -> None:
    with pytest.raises(AgentConfigError):
        AssistantAgent("a", llm_config=llm_config, response_format=str)
    with pytest.raises(AgentConfigError):
        AssistantAgent("a", llm_config=llm_config, response_format=Capital, max_format_repairs=-1)


async def test_deeply_nested_json_is_refused_not_parsed(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("[" * 100_000 + "]" * 100_000, json.dumps(PARIS))
    assistant = AssistantAgent("assistant", llm_config=llm_config, response_format=Capital)
    result = await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)
    assert result.output == Capital(**PARIS)
    assert "not JSON" in server.requests[1].messages[-1]["content"]


def test_a_typed_output_round_trips_through_the_codec() -> None:
    codec = MessageCodec()
    codec.register(Capital, name="test.Capital")
    payload = json.loads(json.dumps(codec.encode(Capital(**PARIS))))
    assert codec.decode(payload) == Capital(**PARIS)


async def test_tool_calls_pass_through_and_the_final_answer_is_typed() -> None:
    client = ScriptedModelClient(
        [
            Reply(tool_calls=[{"name": "population", "arguments": {"city": "Paris"}}]),
            json.dumps(PARIS),
        ]
    )
    assistant = AssistantAgent("assistant", model_client=client, response_format=Capital)
    user = _user()

    def population(city: str) -> int:
        return 2102650 if city == "Paris" else 0

    register_function(population, caller=assistant, executor=user, description="A city's size.")

    result = await user.a_initiate_chat(assistant, message="?", max_turns=2, silent=True)

    assert result.output == Capital(**PARIS)
    assert len(client.requests) == 2
    assert client.requests[1].messages[-1]["content"] == "2102650"  # the tool's result
    assert all(r.tools for r in client.requests)


async def test_a_refusal_in_the_prompt_mode_is_raised() -> None:
    refusal = BadRequestError("context too long", status=400)
    client = ScriptedModelClient([refusal, refusal, refusal])
    assistant = AssistantAgent("assistant", model_client=client, response_format=CAPITAL_SCHEMA)

    with pytest.raises(BadRequestError, match="context too long"):
        await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)
    formats = [r.response_format for r in client.requests]
    assert [None if f is None else f["type"] for f in formats] == [
        "json_schema",
        "json_object",
        None,
    ]


class JsonEngine:
    """An engine with the grammar capability: records the schema each generation was held to."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.schemas: list[Mapping[str, Any] | None] = []
        self.plain = 0

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        self.plain += 1
        yield "free text"

    def stream_json(
        self,
        messages: list[dict[str, str]],
        *,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        self.schemas.append(schema)
        yield self.answer

    def count_tokens(self, text: str) -> int:
        return len(text.split())


async def test_the_embedded_model_generates_under_the_schema_grammar() -> None:
    engine = JsonEngine(json.dumps(PARIS))
    assistant = AssistantAgent(
        "assistant", model_client=LocalModelClient(engine=engine), response_format=Capital
    )

    result = await _user().a_initiate_chat(assistant, message="?", max_turns=1, silent=True)

    assert result.output == Capital(**PARIS)
    assert engine.schemas == [Capital.model_json_schema()]
    assert engine.plain == 0
    async with LocalModelClient(engine=engine) as client:  # no response_format: no grammar
        answer = await client.create(ModelRequest(messages=[{"role": "user", "content": "hi"}]))
        assert answer.content == "free text"
        await client.create(
            ModelRequest(
                messages=[{"role": "user", "content": "hi"}],
                response_format={"type": "json_object"},
            )
        )
    assert engine.schemas[-1] is None  # json_object: any JSON object


@pytest.mark.skipif(
    cached_model() is None or importlib.util.find_spec("llama_cpp") is None,
    reason="the embedded model is not cached or llama-cpp-python is not installed",
)
async def test_the_real_embedded_model_answers_schema_valid_objects() -> None:
    async with LocalModelClient() as client:
        assistant = AssistantAgent(
            "assistant",
            system_message="You answer questions about countries.",
            model_client=client,
            response_format=Capital,
            max_format_repairs=0,  # the grammar alone must make every answer valid
        )
        for country in ("France", "Japan", "Brazil"):
            result = await _user().a_initiate_chat(
                assistant, message=f"The capital of {country}?", max_turns=1, silent=True
            )
            assert isinstance(result.output, Capital)


@pytest.mark.skipif(
    cached_model() is None or importlib.util.find_spec("llama_cpp") is None,
    reason="the embedded model is not cached or llama-cpp-python is not installed",
)
async def test_the_real_embedded_model_is_held_to_the_schema_even_when_asked_for_prose() -> None:
    """The grammar, not the prompt, makes the answer valid: asked for a poem with a schema of
    made-up keys, the model still writes exactly that object; without one it writes prose."""
    schema = {
        "type": "object",
        "properties": {
            "zq_code": {"type": "integer"},
            "flavour": {"type": "string", "enum": ["plum", "kiwi"]},
        },
        "required": ["zq_code", "flavour"],
        "additionalProperties": False,
    }
    poem = [{"role": "user", "content": "Write a four-line poem about the sea."}]
    async with LocalModelClient() as client:
        held = await client.create(
            ModelRequest(
                messages=poem,
                response_format={"type": "json_schema", "json_schema": {"schema": schema}},
                max_tokens=64,
            )
        )
        free = await client.create(ModelRequest(messages=poem, max_tokens=64))
    data = json.loads(held.content or "")
    assert set(data) == {"zq_code", "flavour"}
    assert isinstance(data["zq_code"], int)
    assert data["flavour"] in ("plum", "kiwi")
    with pytest.raises(json.JSONDecodeError):
        json.loads(free.content or "")
