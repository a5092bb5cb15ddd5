"""The LLM selector against the scripted model server over real HTTP: one call for a clear
answer however it is phrased, a corrective retry only when it names none or several, and a
fallback that stays legal."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from moot.groupchat import (
    GroupChatError,
    GroupChatState,
    LLMSelector,
    NoSpeaker,
    ScriptedPolicy,
    TransitionGraph,
    parse_names,
)
from moot.models import client_from_llm_config
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from moot.models import ModelClient

ALL = ("planner", "coder", "reviewer", "executor")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("coder", ("coder",)),
        ("Coder", ("coder",)),
        ("  CODER.  ", ("coder",)),
        ("Next speaker: Planner", ("planner",)),
        ("Role: reviewer", ("reviewer",)),
        ("I think the coder should go next.", ("coder",)),
        ("**executor**", ("executor",)),
        ('{"speaker": "reviewer"}', ("reviewer",)),
        ('```json\n{"speaker": "coder"}\n```', ("coder",)),
        ("The planner has spoken. Next: coder", ("coder",)),
        ("planner or coder", ("planner", "coder")),
        ("", ()),
        ("nobody", ()),
        ("code", ()),  # a prefix of a name is not the name
        ("decoder", ()),
    ],
)
def test_parse_names(answer: str, expected: tuple[str, ...]) -> None:
    assert parse_names(answer, ALL) == expected


def test_parse_names_spacing_and_overlaps() -> None:
    names = ("code_writer", "senior_code_writer", "QA Lead", "DataScientist")
    assert parse_names("Code Writer", names) == ("code_writer",)
    assert parse_names("senior-code-writer", names) == ("senior_code_writer",)
    assert parse_names("qa_lead please", names) == ("QA Lead",)
    assert parse_names("data scientist", names) == ("DataScientist",)


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    """The scripted server on its own thread, so fixtures may start and stop it in any task."""
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
async def client(server: ScriptedModelServer) -> AsyncIterator[ModelClient]:
    made = client_from_llm_config({"config_list": server.config_list(), "timeout": 10})
    async with made:
        yield made


def _chat(**kwargs: Any) -> GroupChatState:
    chat = GroupChatState(
        "c1",
        ALL,
        clock=time.monotonic,
        descriptions={name: f"the {name}" for name in ALL},
        **kwargs,
    )
    chat.messages.append({"role": "user", "name": "user", "content": "Write a sort function."})
    chat.last_speaker = "user"
    return chat


@pytest.mark.parametrize("answer", ["Next speaker: Planner", "planner", "PLANNER", "The planner."])
async def test_one_clear_answer_costs_one_call(
    server: ScriptedModelServer, client: ModelClient, answer: str
) -> None:
    server.push(answer)
    chat = _chat(model_client=client)
    assert await LLMSelector().select(chat, ALL) == "planner"
    assert len(server.requests) == 1
    body = server.requests[0].body
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["speaker"]["enum"] == list(ALL)
    assert "the reviewer" in body["messages"][0]["content"]
    assert body["messages"][1] == {
        "role": "user",
        "name": "user",
        "content": "Write a sort function.",
    }
    assert chat.usage.total_tokens > 0


async def test_structured_answer(server: ScriptedModelServer, client: ModelClient) -> None:
    server.push(json.dumps({"speaker": "executor"}))
    assert await LLMSelector(client).select(_chat(), ALL) == "executor"


async def test_server_without_structured_output(
    server: ScriptedModelServer, client: ModelClient
) -> None:
    def answer(request: Any) -> Reply:
        if "response_format" in request.body:
            return Reply(status=400, error="response_format is not supported")
        return Reply("coder")

    server.default = answer
    selector = LLMSelector(client)
    assert await selector.select(_chat(), ALL) == "coder"
    assert await selector.select(_chat(), ALL) == "coder"
    # the refusal is remembered: three requests, not four
    assert [("response_format" in r.body) for r in server.requests] == [True, False, False]


@pytest.mark.parametrize(
    ("answers", "expected", "calls"),
    [
        (["", "coder"], "coder", 2),  # empty: retried
        (["planner and coder", "coder"], "coder", 2),  # two names: retried
        (["Bob", "reviewer"], "reviewer", 2),  # unknown name: retried
        (["Let me think about this carefully.", "executor"], "executor", 2),  # prose
        (["", "", ""], "planner", 3),  # never clear: the fallback picks, legally
        (["coder or reviewer", "reviewer, coder", "both"], "coder", 3),  # first named, first try
    ],
)
async def test_malformed_answers_resolve_or_fall_back(
    server: ScriptedModelServer,
    client: ModelClient,
    answers: list[str],
    expected: str,
    calls: int,
) -> None:
    server.push(*answers)
    chat = _chat(model_client=client)
    assert await LLMSelector(max_retries=2).select(chat, ALL) == expected
    assert len(server.requests) == calls
    server.assert_script_consumed()
    if calls > 1:
        correction = server.requests[1].messages[-1]["content"]
        assert "exactly one name" in correction


async def test_correction_names_an_excluded_speaker(
    server: ScriptedModelServer, client: ModelClient
) -> None:
    server.push("planner", "coder")
    chat = _chat(model_client=client)
    chat.last_speaker = "planner"
    policy = TransitionGraph(allow_repeat=False, then=LLMSelector())
    assert await policy.select(chat, ALL) == "coder"
    assert "planner may not speak now" in server.requests[1].messages[-1]["content"]
    enum = server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert "planner" not in enum["properties"]["speaker"]["enum"]


async def test_fallback_never_picks_an_excluded_speaker(
    server: ScriptedModelServer, client: ModelClient
) -> None:
    """AutoGen's selector can loop on the previous speaker when repeats are banned; ours cannot."""
    server.default = "planner"  # the model insists on the speaker who may not repeat
    chat = _chat(model_client=client)
    policy = TransitionGraph(allow_repeat=False, then=LLMSelector(max_retries=1))
    for _ in range(6):
        name = await policy.select(chat, ALL)
        assert isinstance(name, str)
        assert name != chat.last_speaker
        chat.last_speaker = name


async def test_fallback_respects_the_graph(
    server: ScriptedModelServer, client: ModelClient
) -> None:
    server.default = "nonsense"
    chat = _chat(model_client=client)
    chat.last_speaker = "coder"
    graph = TransitionGraph(
        {"coder": ["executor", "reviewer"]},
        then=LLMSelector(max_retries=0, fallback=ScriptedPolicy(["reviewer"])),
    )
    assert await graph.select(chat, ALL) == "reviewer"


async def test_one_or_no_candidate_needs_no_call(server: ScriptedModelServer) -> None:
    chat = _chat()
    assert await LLMSelector().select(chat, ["coder"]) == "coder"
    assert isinstance(await LLMSelector().select(chat, []), NoSpeaker)
    assert server.requests == []


async def test_auto_without_a_model_says_what_to_do() -> None:
    with pytest.raises(GroupChatError, match="llm_config"):
        await LLMSelector().select(_chat(), ALL)


async def test_templates_and_role(server: ScriptedModelServer, client: ModelClient) -> None:
    server.push("coder")
    selector = LLMSelector(
        client,
        message_template="Roster:\n{roles}\nPick from {agentlist}.",
        prompt_template="Now pick one of {agentlist}.",
        role_for_prompt="user",
        structured_output=False,
    )
    assert await selector.select(_chat(), ["planner", "coder"]) == "coder"
    messages = server.requests[0].messages
    assert messages[0]["content"] == (
        "Roster:\nplanner: the planner\ncoder: the coder\nPick from ['planner', 'coder']."
    )
    assert messages[-1] == {"role": "user", "content": "Now pick one of ['planner', 'coder']."}
    assert "response_format" not in server.requests[0].body
