"""Speaker-selection policies on their own: each picks legally, composes, and serves many chats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from moot.groupchat import (
    CallablePolicy,
    GroupChatState,
    Handoffs,
    ManualPolicy,
    NoSpeaker,
    RandomPolicy,
    RoundRobin,
    ScriptedPolicy,
    SpeakerSelectionError,
    TransitionGraph,
)
from moot.groupchat._policies import FunctionCallFilter, next_in_order

MakeChat = Callable[..., GroupChatState]

ALL = ("planner", "coder", "reviewer")


def test_next_in_order_wraps_and_skips() -> None:
    assert next_in_order(ALL, "planner", ALL) == "coder"
    assert next_in_order(ALL, "reviewer", ALL) == "planner"
    assert next_in_order(ALL, "user", ALL) == "planner"
    assert next_in_order(ALL, None, ALL) == "planner"
    assert next_in_order(ALL, "planner", ["reviewer"]) == "reviewer"
    assert next_in_order(ALL, "planner", []) is None


async def test_round_robin_cycles(make_chat: MakeChat) -> None:
    chat = make_chat(last_speaker="user")
    picked = []
    for _ in range(4):
        name = await RoundRobin().select(chat, ALL)
        assert isinstance(name, str)
        picked.append(name)
        chat.last_speaker = name
    assert picked == ["planner", "coder", "reviewer", "planner"]


async def test_random_is_seedable_per_chat(make_chat: MakeChat) -> None:
    policy = RandomPolicy(seed=7)

    async def draw(chat_id: str) -> list[Any]:
        chat = make_chat(chat_id=chat_id)
        return [await policy.select(chat, ALL) for _ in range(12)]

    first = await draw("a")
    assert first == await draw("a")
    assert set(first) <= set(ALL)
    assert first != await draw("b")  # another chat, another sequence


async def test_scripted_policy_then_no_speaker(make_chat: MakeChat) -> None:
    policy = ScriptedPolicy(["coder", "planner"])
    chat, other = make_chat(), make_chat(chat_id="other")
    assert await policy.select(chat, ALL) == "coder"
    assert await policy.select(other, ALL) == "coder"  # each chat has its own position
    assert await policy.select(chat, ALL) == "planner"
    assert isinstance(await policy.select(chat, ALL), NoSpeaker)


async def test_scripted_policy_refuses_an_illegal_name(make_chat: MakeChat) -> None:
    with pytest.raises(SpeakerSelectionError, match="may not speak"):
        await ScriptedPolicy(["ghost"]).select(make_chat(), ALL)


async def test_manual_by_number_name_and_fallback(make_chat: MakeChat) -> None:
    answers = iter(["2", "Reviewer", "nobody", "9", "", "q"])
    prompts: list[str] = []

    async def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    policy = ManualPolicy(ask, fallback=ScriptedPolicy(["planner", "planner"]))
    chat = make_chat()
    assert await policy.select(chat, ALL) == "coder"
    assert "1: planner" in prompts[0]
    assert await policy.select(chat, ALL) == "reviewer"
    assert await policy.select(chat, ALL) == "planner"  # two bad answers, then empty: fallback
    assert "not one of the choices" in prompts[-1]
    assert await policy.select(chat, ALL) == "planner"  # "q": fallback


async def test_manual_uses_the_chats_input_provider(make_chat: MakeChat) -> None:
    async def ask(prompt: str) -> str:
        return "3"

    assert await ManualPolicy().select(make_chat(ask_human=ask), ALL) == "reviewer"
    with pytest.raises(SpeakerSelectionError, match="human input provider"):
        await ManualPolicy().select(make_chat(), ALL)


class _Agent:
    def __init__(self, name: str) -> None:
        self.name = name


async def test_callable_policy_agent_method_or_none(make_chat: MakeChat) -> None:
    agents = {name: _Agent(name) for name in ALL}
    seen: list[Any] = []

    def choose(last: Any, groupchat: Any) -> Any:
        seen.append(last)
        if last is None:
            return agents["reviewer"]
        if last.name == "reviewer":
            return "round_robin"
        return None

    policy = CallablePolicy(choose, methods={"round_robin": RoundRobin()})
    chat = make_chat(agents=agents)
    assert await policy.select(chat, ALL) == "reviewer"
    chat.last_speaker = "reviewer"
    assert await policy.select(chat, ALL) == "planner"
    chat.last_speaker = "planner"
    result = await policy.select(chat, ALL)
    assert isinstance(result, NoSpeaker)
    assert "returned None" in result.reason
    assert seen[1] is agents["reviewer"]


async def test_callable_policy_rejects_strangers_and_unknown_methods(make_chat: MakeChat) -> None:
    chat = make_chat()
    with pytest.raises(SpeakerSelectionError, match="not in the group"):
        await CallablePolicy(lambda last, gc: _Agent("ghost")).select(chat, ALL)
    with pytest.raises(SpeakerSelectionError, match="not a method"):
        await CallablePolicy(lambda last, gc: "telepathy").select(chat, ALL)


async def test_async_callable(make_chat: MakeChat) -> None:
    async def choose(last: Any, groupchat: Any) -> Any:
        return _Agent("coder")

    assert await CallablePolicy(choose).select(make_chat(), ALL) == "coder"


async def test_graph_restricts_then_inner_picks(make_chat: MakeChat) -> None:
    graph = TransitionGraph(
        {"planner": ["coder"], "coder": ["reviewer", "planner"], "reviewer": ["planner"]}
    )
    chat = make_chat(last_speaker="planner")
    assert await graph.select(chat, ALL) == "coder"
    chat.last_speaker = "reviewer"
    assert await graph.select(chat, ALL) == "planner"
    chat.last_speaker = "user"  # the opener is outside the group: unrestricted
    assert await graph.select(chat, ALL) == "planner"


async def test_graph_with_no_legal_next_speaker(make_chat: MakeChat) -> None:
    graph = TransitionGraph({"planner": ["coder"]})
    result = await graph.select(make_chat(last_speaker="coder"), ALL)
    assert isinstance(result, NoSpeaker)
    assert "after coder" in result.reason


async def test_disallowed_and_repeat_rules(make_chat: MakeChat) -> None:
    graph = TransitionGraph(
        disallowed={"planner": ["coder"]}, allow_repeat=False, then=ScriptedPolicy(["reviewer"])
    )
    chat = make_chat(last_speaker="planner")
    assert graph.restrict(chat, ALL) == ["reviewer"]
    assert await graph.select(chat, ALL) == "reviewer"
    some = TransitionGraph(allow_repeat=["coder"])
    assert some.restrict(make_chat(last_speaker="coder"), ALL) == list(ALL)
    assert some.restrict(make_chat(last_speaker="planner"), ALL) == ["coder", "reviewer"]
    with pytest.raises(ValueError, match="either"):
        TransitionGraph({}, disallowed={})


async def test_repeats_forbidden_never_repeat(make_chat: MakeChat) -> None:
    policy = TransitionGraph(allow_repeat=False, then=RandomPolicy(seed=1))
    chat = make_chat(last_speaker="planner")
    for _ in range(200):
        name = await policy.select(chat, ALL)
        assert isinstance(name, str)
        assert name != chat.last_speaker
        chat.last_speaker = name


async def test_handoff_by_tool_call(make_chat: MakeChat) -> None:
    chat = make_chat(history=[("planner", "plan")])
    policy = Handoffs()
    assert await policy.select(chat, ALL) == "planner"  # no handoff: the speaker keeps the turn
    chat.messages.append(
        {
            "role": "assistant",
            "name": "planner",
            "content": None,
            "tool_calls": [{"id": "1", "function": {"name": "transfer_to_reviewer"}}],
        }
    )
    assert await policy.select(chat, ALL) == "reviewer"
    # a handoff to someone who may not speak is refused; the wrapped policy decides
    assert await Handoffs(then=RoundRobin()).select(chat, ["coder"]) == "coder"
    chat.messages.append({"role": "user", "name": "coder", "content": "x", "handoff": "planner"})
    assert await policy.select(chat, ALL) == "planner"


async def test_function_call_filter(make_chat: MakeChat) -> None:
    can = {"coder": lambda tool: tool == "run", "reviewer": lambda tool: False}
    policy = FunctionCallFilter(can, RoundRobin())
    chat = make_chat(history=[("planner", "go")])
    assert await policy.select(chat, ALL) == "coder"
    chat.messages.append(
        {"role": "assistant", "name": "planner", "tool_calls": [{"function": {"name": "run"}}]}
    )
    assert await policy.select(chat, ["reviewer", "coder"]) == "coder"
    chat.messages[-1]["tool_calls"] = [{"function": {"name": "fly"}}]
    assert isinstance(await policy.select(chat, ALL), NoSpeaker)
