"""AutoGen's group chat contract: errors refused at construction, the classic helpers, reset,
resume and the speaker-selection settings (issue 12). Agents answer through reply functions;
the model is the scripted server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import ConversableAgent, IOStream
from moot.groupchat import (
    AgentNameConflictError,
    GroupChat,
    GroupChatError,
    GroupChatManager,
    NoEligibleSpeakerError,
    UndefinedNextAgentError,
)
from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as running:
        yield running


def agent(name: str, reply: str | None = None) -> ConversableAgent:
    made = ConversableAgent(name, llm_config=False, human_input_mode="NEVER")
    count = [0]

    def answer(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, Any]:
        count[0] += 1
        return True, reply or f"{name} says {count[0]}"

    made.register_reply([ConversableAgent, None], answer)
    return made


def test_manager_reset_clears_the_group_messages() -> None:
    a, b = agent("a"), agent("b")
    group = GroupChat([a, b], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    manager.run("go")
    assert group.messages  # the finished chat left its history in the group
    manager.reset()
    assert group.messages == []


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"allow_repeat_speaker": {}}, "bool or a list of Agents"),
        ({"allow_repeat_speaker": ["nobody"]}, "not in the group"),
        ({"select_speaker_message_template": ""}, "select_speaker_message_template"),
        ({"select_speaker_auto_multiple_template": ""}, "select_speaker_auto_multiple"),
        ({"role_for_select_speaker_messages": ""}, "role_for_select_speaker_messages"),
        ({"max_retries_for_selecting_speaker": -1}, "max_retries"),
        ({"speaker_transitions_type": "sometimes"}, "speaker_transitions_type"),
        ({"speaker_selection_method": "loudest"}, "speaker_selection_method"),
    ],
)
def test_bad_group_settings_are_refused_as_value_errors(
    options: dict[str, Any], needle: str
) -> None:
    settings: dict[str, Any] = {"agents": [agent("a"), agent("b")], **options}
    with pytest.raises(GroupChatError, match=needle) as caught:
        GroupChat(**settings)
    assert isinstance(caught.value, ValueError)


def test_transitions_need_a_type_and_exclude_the_repeat_rule() -> None:
    a, b = agent("a"), agent("b")
    with pytest.raises(ValueError, match="speaker_transitions_type"):
        GroupChat([a, b], allowed_or_disallowed_speaker_transitions={a: [b]})
    with pytest.raises(ValueError, match="mutually exclusive"):
        GroupChat(
            [a, b],
            allow_repeat_speaker=False,
            allowed_or_disallowed_speaker_transitions={a: [b]},
            speaker_transitions_type="allowed",
        )
    with pytest.raises(ValueError, match="not in the group"):
        GroupChat(
            [a, b],
            allowed_or_disallowed_speaker_transitions={a: [agent("c")]},
            speaker_transitions_type="allowed",
        )


def test_auto_without_a_model_fails_when_a_choice_needs_one() -> None:
    group = GroupChat([agent("a"), agent("b")])
    manager = GroupChatManager(group)  # built: a nested team may never run its own chat
    with pytest.raises(GroupChatError, match="has no LLM configuration") as caught:
        manager.run("go")
    assert isinstance(caught.value, ValueError)
    two = GroupChat([agent("a"), agent("b")], allow_repeat_speaker=False, max_round=4)
    result = GroupChatManager(two).run("go", sender="a")  # one candidate each turn: no model
    assert [m["name"] for m in result.chat_history] == ["a", "b", "a", "b"]


def test_an_empty_group_is_built_but_cannot_start() -> None:
    group = GroupChat(agents=[], messages=[{"content": "hello", "role": "user", "name": "x"}])
    assert group.messages == [{"content": "hello", "role": "user", "name": "x"}]
    manager = GroupChatManager(group)
    with pytest.raises(GroupChatError, match="at least one agent") as caught:
        manager.run("go")
    assert isinstance(caught.value, ValueError)


def test_duplicate_names_raise_agent_name_conflict() -> None:
    with pytest.raises(AgentNameConflictError) as caught:
        GroupChat([agent("a"), agent("a")])
    assert isinstance(caught.value, ValueError)


def test_allowed_speaker_transitions_dict_follows_the_repeat_rule() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    open_group = GroupChat([a, b, c])
    assert open_group.allowed_speaker_transitions_dict[a] == [a, b, c]
    no_repeat = GroupChat([a, b, c], allow_repeat_speaker=False)
    assert no_repeat.allowed_speaker_transitions_dict[a] == [b, c]
    only_b = GroupChat([a, b, c], allow_repeat_speaker=[b])
    assert only_b.allowed_speaker_transitions_dict[b] == [a, b, c]
    assert only_b.allowed_speaker_transitions_dict[c] == [a, b]
    banned = GroupChat(
        [a, b, c],
        allowed_or_disallowed_speaker_transitions={a: [b]},
        speaker_transitions_type="disallowed",
    )
    assert banned.allowed_speaker_transitions_dict[a] == [a, c]


def test_nested_agents_and_recursive_lookup() -> None:
    inner_a, inner_b = agent("inner_a"), agent("inner_b")
    inner = GroupChatManager(
        GroupChat([inner_a, inner_b], speaker_selection_method="round_robin"), name="team"
    )
    outer = GroupChat([agent("lead"), inner], speaker_selection_method="round_robin")
    assert [x.name for x in outer.nested_agents()] == ["lead", "team", "inner_a", "inner_b"]
    assert outer.agent_by_name("inner_b") is None
    assert outer.agent_by_name("inner_b", recursive=True) is inner_b
    clash = GroupChat(
        [
            agent("inner_a"),
            GroupChatManager(
                GroupChat([agent("inner_a"), agent("x")], speaker_selection_method="round_robin"),
                name="t2",
            ),
        ],
        speaker_selection_method="round_robin",
    )
    with pytest.raises(AgentNameConflictError):
        clash.agent_by_name("inner_a", recursive=True, raise_on_name_conflict=True)


def test_next_agent_outside_the_group_is_undefined() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat([a, b, c])
    assert group.next_agent(a) is b
    assert group.next_agent(c, [a, b]) is a
    with pytest.raises(UndefinedNextAgentError) as caught:
        group.next_agent(a, [agent("stranger")])
    assert isinstance(caught.value, ValueError)


def test_select_speaker_raises_no_eligible_speaker_when_the_function_returns_none() -> None:
    a, b = agent("a"), agent("b")
    group = GroupChat([a, b], speaker_selection_method=lambda last, gc: None)
    manager = GroupChatManager(group)
    with pytest.raises(NoEligibleSpeakerError):
        group.select_speaker(a, manager)
    result = manager.run("go")  # inside a chat it ends the chat quietly, as AutoGen's does
    assert result.stop_reason.condition == "NoEligibleSpeaker"


def test_select_speaker_asks_the_auto_llm_config_model(server: ScriptedModelServer) -> None:
    server.push("b")
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat(
        [a, b, c], select_speaker_auto_llm_config={"config_list": server.config_list()}
    )
    manager = GroupChatManager(group)
    assert group.select_speaker(a, manager) is b
    assert len(server.requests) == 1


async def test_multiple_template_is_the_retry_prompt(server: ScriptedModelServer) -> None:
    server.push("a or b", "b", "a says TERMINATE")
    a, b = agent("a"), agent("b", "b done. TERMINATE")
    group = GroupChat(
        [a, b],
        select_speaker_auto_multiple_template="ONE name from {agentlist}, please.",
        max_round=3,
    )
    manager = GroupChatManager(group, llm_config={"config_list": server.config_list()})
    result = await manager.a_run("go")
    assert [m["name"] for m in result.chat_history] == ["user", "b"]
    assert server.requests[1].last_text == "ONE name from ['a', 'b'], please."


class Recorder(IOStream):
    def __init__(self, answers: list[str]) -> None:
        self.printed: list[str] = []
        self.answers = answers

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        self.printed.append(sep.join(map(str, objects)))

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        return self.answers.pop(0)


def test_manual_select_speaker_reads_the_default_iostream() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat([a, b, c])
    with IOStream.set_default(Recorder(["7", "x", "2"])):
        assert group.manual_select_speaker() is b
    with IOStream.set_default(Recorder(["q"])):
        assert group.manual_select_speaker() is None
    with IOStream.set_default(Recorder(["9", "9", "9"])):
        assert group.manual_select_speaker([a, c]) is None


def test_messages_round_trip_through_a_string() -> None:
    group = GroupChat([agent("a"), agent("b")], speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    history = [{"content": "hi", "role": "user", "name": "a"}]
    text = manager.messages_to_string(history)
    assert json.loads(text) == history
    assert manager.messages_from_string(text) == history
    with pytest.raises(GroupChatError):
        manager.messages_from_string("{not json")


def test_resume_returns_the_last_speaker_and_seeds_chat_messages() -> None:
    a, b = agent("a"), agent("b", "b: done. TERMINATE")
    group = GroupChat([a, b], speaker_selection_method="round_robin", max_round=4)
    manager = GroupChatManager(group)
    saved = [
        {"content": "start", "role": "user", "name": "a"},
        {"content": "b replies", "role": "user", "name": "b"},
        {"content": "a goes on TERMINATE", "role": "user", "name": "a"},
    ]
    last_agent, last_message = manager.resume(
        manager.messages_to_string(saved), remove_termination_string="TERMINATE", silent=True
    )
    assert last_agent is a
    assert last_message["content"] == "a goes on "
    assert [m["content"] for m in group.messages] == ["start", "b replies"]
    assert [m["role"] for m in b.chat_messages[manager]] == ["user", "assistant"]
    assert [m["role"] for m in a.chat_messages[manager]] == ["assistant", "user"]
    result = last_agent.initiate_chat(
        manager, message=last_message, clear_history=False, silent=True
    )
    assert result.chat_history[-1]["content"] == "b: done. TERMINATE"
    assert [m["content"] for m in group.messages][:3] == ["start", "b replies", "a goes on "]


def test_resume_when_the_manager_spoke_last() -> None:
    a, b = agent("a"), agent("b", "b takes it from here. TERMINATE")
    group = GroupChat([a, b], speaker_selection_method="round_robin", max_round=3)
    manager = GroupChatManager(group)
    saved = [
        {"content": "start", "role": "user", "name": "a"},
        {"content": "the manager speaks", "role": "user"},  # no name: the manager's
    ]
    last_agent, last_message = manager.resume(saved, silent=True)
    assert last_agent is manager
    assert last_message["name"] == manager.name
    result = last_agent.initiate_chat(
        manager, message=last_message, clear_history=False, silent=True
    )
    assert [m["content"] for m in result.chat_history][:2] == ["start", "the manager speaks"]


def test_resume_refuses_strangers_and_empty_lists() -> None:
    manager = GroupChatManager(
        GroupChat([agent("a"), agent("b")], speaker_selection_method="round_robin")
    )
    with pytest.raises(GroupChatError, match="not in the group"):
        manager.resume([{"content": "x", "name": "zed"}])
    with pytest.raises(GroupChatError, match="empty"):
        manager.resume([])


def test_a_manager_with_tools_in_its_llm_config_is_refused(server: ScriptedModelServer) -> None:
    group = GroupChat([agent("a"), agent("b")], speaker_selection_method="round_robin")
    config = {"config_list": server.config_list(), "tools": [{"type": "function"}]}
    with pytest.raises(GroupChatError, match="no tool or function calls"):
        GroupChatManager(group, llm_config=config)


def test_last_speaker_and_chat_messages_for_summary() -> None:
    a, b = agent("a"), agent("b")
    group = GroupChat([a, b], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    assert manager.last_speaker is None
    manager.run("go")
    assert manager.last_speaker is b
    assert manager.chat_messages_for_summary(a) is group.messages


async def test_a_chat_asks_the_auto_llm_config_model_and_the_none_template(
    server: ScriptedModelServer,
) -> None:
    server.push("nobody in particular", "a")
    a, b = agent("a", "a: done. TERMINATE"), agent("b")
    group = GroupChat(
        [a, b],
        select_speaker_auto_llm_config={"config_list": server.config_list()},
        select_speaker_auto_none_template="Name one of {agentlist}.",
    )
    result = await GroupChatManager(group).a_run("go")  # the manager itself has no model
    assert [m["name"] for m in result.chat_history] == ["user", "a"]
    assert server.requests[1].last_text == "Name one of ['a', 'b']."


def test_iostream_global_default_is_used_outside_set_default() -> None:
    before = IOStream.get_global_default()
    capture = Recorder([])
    IOStream.set_global_default(capture)
    try:
        assert IOStream.get_default() is capture
        with IOStream.set_default(None):
            assert IOStream.get_default() is capture
    finally:
        IOStream.set_global_default(before)


def test_resume_refuses_what_is_not_a_list_of_messages() -> None:
    manager = GroupChatManager(GroupChat([agent("a")]))
    for bad in (1, "", "Let's get started.", [{"content": "x"}, "y"]):
        with pytest.raises(GroupChatError):
            manager.resume(bad)  # type: ignore[arg-type]


def test_resume_seeds_each_agent_with_its_own_roles_and_names_the_manager() -> None:
    a, b, c = agent("A"), agent("B"), agent("C")
    manager = GroupChatManager(GroupChat([a, b, c]))
    saved = [
        {"content": "plan", "name": "A", "role": "assistant"},
        {"content": "c1", "name": "C", "role": "user"},
        {"content": "a1", "name": "A", "role": "assistant"},
        {"content": "b1", "name": "B", "role": "user"},
        {"content": "c2", "name": "C", "role": "user"},
    ]
    last_agent, last_message = manager.resume(saved, silent=True)
    assert (last_agent, last_message) == (c, saved[-1])
    assert list(a.chat_messages.values()) == [saved[:-1]]
    system_only = [{"content": "You code.", "role": "system", "name": "chat_manager"}]
    assert manager.resume(system_only, silent=True) == (manager, system_only[0])
    unnamed = [{"content": "rules", "role": "system"}, {"content": "go", "name": "A"}]
    assert manager.resume(unnamed, silent=True)[0] is a
    assert group_names(manager) == ["chat_manager"]


def group_names(manager: GroupChatManager) -> list[str]:
    return [m["name"] for m in manager.groupchat.messages]


def test_the_manager_opens_a_chat_with_itself_after_introductions() -> None:
    a = agent("a", "a is done. TERMINATE")
    b = agent("b")
    a.description, b.description = "The first agent.", "The second agent."
    group = GroupChat([a, b], speaker_selection_method="round_robin", send_introductions=True)
    manager = GroupChatManager(group)
    manager.initiate_chat(manager, message="The opening.", silent=True)
    seen = a.chat_messages[manager]
    assert "The first agent." in seen[0]["content"]
    assert "The second agent." in seen[0]["content"]
    assert [m["content"] for m in seen[1:]] == ["The opening.", "a is done. TERMINATE"]


def test_a_transition_graph_ends_the_chat_when_nobody_may_follow() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat(
        [a, b, c],
        speaker_selection_method="round_robin",
        allowed_or_disallowed_speaker_transitions={a: [b], b: [c]},
        speaker_transitions_type="allowed",
    )
    a.initiate_chat(GroupChatManager(group), message="", silent=True)
    assert [m["name"] for m in group.messages] == ["a", "b", "c"]


def test_a_selection_function_returning_none_ends_the_chat() -> None:
    a1, a2, a3 = agent("a1"), agent("a2"), agent("a3")

    def pick(last: ConversableAgent, groupchat: GroupChat) -> ConversableAgent | None:
        return {"a1": a2, "a2": a3}.get(last.name)

    group = GroupChat([a1, a2, a3], max_round=20, speaker_selection_method=pick)
    result = a1.initiate_chat(GroupChatManager(group), message="hi", silent=True)
    assert len(result.chat_history) == 3


def test_manual_selection_reads_builtin_input(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    monkeypatch.setattr(builtins, "input", lambda prompt="": "1")
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat(
        [a, b, c], max_round=4, speaker_selection_method="manual", allow_repeat_speaker=False
    )
    a.initiate_chat(GroupChatManager(group), message="go", silent=True)
    assert [m["name"] for m in group.messages] == ["a", "b", "a", "b"]


def test_nested_teams_can_be_built_without_models() -> None:
    def team(name: str) -> GroupChatManager:
        return GroupChatManager(GroupChat([agent(f"m1_{name}"), agent(f"m2_{name}")]), name=name)

    outer = GroupChat([agent("user"), team("t1"), team("t2")])
    assert len(outer.nested_agents()) == 7
