"""The contract every speaker policy keeps, written once and run over all of them.

A policy answers a legal candidate or `NoSpeaker` (a misused fake may raise
`SpeakerSelectionError`, never answer an illegal name); it keeps what it remembers for a chat in
that chat's state, so one policy object serves concurrent chats exactly as it serves them one after
another; and it can be shown (`repr`) for logs.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from moot.groupchat import (
    CallablePolicy,
    GroupChatState,
    Handoffs,
    LLMSelector,
    ManualPolicy,
    NoSpeaker,
    RandomPolicy,
    RoundRobin,
    ScriptedPolicy,
    SpeakerPolicy,
    SpeakerSelectionError,
    TransitionGraph,
)
from moot.models import client_from_llm_config
from moot.testing import RecordedRequest, Reply, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    from moot.models import ModelClient

ROSTER = ("planner", "coder", "reviewer", "executor")


def _first_offered(request: RecordedRequest) -> Reply:
    """A deterministic selector model: it names the first speaker the request offers."""
    body: Any = request.body
    fmt = body.get("response_format") if isinstance(body, dict) else None
    if fmt:
        return Reply(fmt["json_schema"]["schema"]["properties"]["speaker"]["enum"][0])
    prompt = " ".join(str(m.get("content", "")) for m in request.messages)
    named = [name for name in ROSTER if name in prompt]
    return Reply(named[0] if named else ROSTER[0])


async def _ask_second(prompt: str) -> str:
    return "2"


POLICIES: dict[str, Callable[[], SpeakerPolicy]] = {
    "round_robin": RoundRobin,
    "random": lambda: RandomPolicy(seed=11),
    "scripted": lambda: ScriptedPolicy(["planner", "coder", "reviewer", "planner"]),
    "manual": lambda: ManualPolicy(_ask_second),
    "callable": lambda: CallablePolicy(
        lambda last, group: "round_robin", methods={"round_robin": RoundRobin()}
    ),
    "transition_graph": lambda: TransitionGraph(
        {name: set(ROSTER) - {name} for name in ROSTER}, then=RandomPolicy(seed=3)
    ),
    "handoffs": lambda: Handoffs(then=RoundRobin()),
    "llm_selector": LLMSelector,
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        running.default = _first_offered
        yield running


@pytest.fixture
async def client(server: ScriptedModelServer) -> AsyncIterator[ModelClient]:
    made = client_from_llm_config({"config_list": server.config_list(), "timeout": 10})
    async with made:
        yield made


@pytest.fixture(params=sorted(POLICIES))
def make_policy(request: pytest.FixtureRequest) -> Callable[[], SpeakerPolicy]:
    return POLICIES[request.param]


def _chat(chat_id: str, client: ModelClient, opener: str = "user") -> GroupChatState:
    chat = GroupChatState(
        chat_id,
        ROSTER,
        clock=time.monotonic,
        descriptions={name: f"the {name}" for name in ROSTER},
        model_client=client,
        ask_human=_ask_second,
    )
    chat.messages.append({"role": "user", "name": opener, "content": f"task of {chat_id}"})
    chat.last_speaker = opener
    return chat


async def _turns(
    policy: SpeakerPolicy, chat: GroupChatState, count: int, candidates: Sequence[str] = ROSTER
) -> list[str]:
    """Run `count` selections, each chosen speaker then speaking; NoSpeaker ends the run."""
    chosen: list[str] = []
    for _ in range(count):
        answer = await policy.select(chat, candidates)
        if isinstance(answer, NoSpeaker):
            chosen.append("<none>")
            break
        chosen.append(answer)
        chat.messages.append({"role": "user", "name": answer, "content": f"{answer} spoke"})
        chat.last_speaker = answer
    return chosen


async def test_answers_are_legal_candidates_or_no_speaker(
    make_policy: Callable[[], SpeakerPolicy], client: ModelClient
) -> None:
    for candidates in (ROSTER, ("coder", "reviewer"), ("executor",)):
        policy = make_policy()
        chat = _chat(f"legal-{len(candidates)}", client)
        for _ in range(6):
            try:
                answer = await policy.select(chat, candidates)
            except SpeakerSelectionError:
                break  # a fake told to name someone who may not speak says so, typed
            if isinstance(answer, NoSpeaker):
                assert answer.reason
                break
            assert answer in candidates
            chat.messages.append({"role": "user", "name": answer, "content": "ok"})
            chat.last_speaker = answer


async def test_one_policy_serves_interleaved_chats_as_if_alone(
    make_policy: Callable[[], SpeakerPolicy], client: ModelClient
) -> None:
    alone = [await _turns(make_policy(), _chat(f"c{i}", client), 4) for i in range(3)]

    shared = make_policy()
    chats = [_chat(f"c{i}", client) for i in range(3)]
    together: list[list[str]] = [[] for _ in chats]
    for _ in range(4):
        for index, chat in enumerate(chats):
            if together[index][-1:] == ["<none>"]:
                continue
            together[index] += await _turns(shared, chat, 1)
    assert together == alone


async def test_one_policy_serves_concurrent_chats(
    make_policy: Callable[[], SpeakerPolicy], client: ModelClient
) -> None:
    alone = [await _turns(make_policy(), _chat(f"k{i}", client), 3) for i in range(8)]
    shared = make_policy()
    together = await asyncio.gather(*(_turns(shared, _chat(f"k{i}", client), 3) for i in range(8)))
    assert list(together) == alone


def test_repr_names_the_policy(make_policy: Callable[[], SpeakerPolicy]) -> None:
    policy = make_policy()
    assert type(policy).__name__ in repr(policy)
