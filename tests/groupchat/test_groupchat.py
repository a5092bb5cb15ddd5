"""Group chats end to end: the classic surface, each selection method and termination, events,
resume and saved state. Agents here answer through reply functions (no model) unless a test is
about the model; `test_panel.py` runs the issue's panel against the scripted server."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from moot.agents import (
    AgentConfigError,
    ConversableAgent,
    ScriptedInputProvider,
    UserProxyAgent,
)
from moot.groupchat import (
    ChatEvent,
    ExternalStop,
    GroupChat,
    GroupChatError,
    GroupChatManager,
    Handoffs,
    HandoffTermination,
    LoopDetection,
    MaxTurns,
    MessageEvent,
    RoundRobin,
    ScriptedPolicy,
    SourceMatch,
    SpeakerSelectedEvent,
    TerminationEvent,
    TextMention,
    TimeLimit,
    ToolCallEvent,
    handoff_tool,
)
from moot.runtime import Runtime

Reply = str | dict[str, Any] | None | Callable[[list[dict[str, Any]]], Any]


def agent(name: str, replies: Iterable[Reply] | Reply = None, **options: Any) -> ConversableAgent:
    """An agent without a model: it answers with `replies` in turn (a callable gets the history),
    or with "<name> says <n>" when no replies are given."""
    made = ConversableAgent(name, llm_config=False, human_input_mode="NEVER", **options)
    if callable(replies) or replies is None or isinstance(replies, str | dict):
        script = None
        fixed = replies
    else:
        script = iter(list(replies))
        fixed = None
    count = [0]

    def reply(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, Any]:
        count[0] += 1
        answer = next(script) if script is not None else fixed
        if callable(answer):
            answer = answer(messages)
        return True, f"{name} says {count[0]}" if answer is None and script is None else answer

    made.register_reply([ConversableAgent, None], reply)
    return made


def names(history: Sequence[dict[str, Any]]) -> list[str]:
    return [m["name"] for m in history]


async def test_round_robin_and_max_round() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat([a, b, c], messages=[], max_round=5, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    result = await manager.a_run("go")
    assert names(result.chat_history) == ["user", "a", "b", "c", "a"]
    assert result.stop_reason.condition == "MaxMessages"
    assert result.turns == 4
    assert group.messages == result.chat_history  # AutoGen users read groupchat.messages
    assert manager.stop_reason(result.chat_id) == result.stop_reason


async def test_initiate_chat_with_a_participant_gives_its_whole_view() -> None:
    a, b = agent("a"), agent("b", ["b reports. TERMINATE"])
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    group = GroupChat([user, a, b], messages=[], speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    result = await user.a_initiate_chat(manager, message="start", silent=True)
    # the initiator took part, so it received every message, as in AutoGen
    assert [m["content"] for m in result.chat_history] == [
        "start",
        "a says 1",
        "b reports. TERMINATE",
    ]
    assert manager.last_result is not None
    assert manager.last_result.stop_reason.condition == "MessagePredicate"
    # every participant has the conversation with the manager, its own turns as the assistant's
    history = a.chat_messages[manager]
    assert [(m["name"], m["role"]) for m in history] == [
        ("user", "user"),
        ("a", "assistant"),
        ("b", "user"),
    ]
    assert result.summary == "b reports."


def test_sync_run_from_a_plain_script() -> None:
    manager = GroupChatManager(
        GroupChat([agent("a"), agent("b")], max_round=3, speaker_selection_method="round_robin")
    )
    result = manager.run("hello")
    assert names(result.chat_history) == ["user", "a", "b"]


async def test_callable_method_ends_with_none() -> None:
    a, b = agent("a"), agent("b")
    seen: list[tuple[str | None, int]] = []

    def choose(last: Any, groupchat: GroupChat) -> Any:
        seen.append((getattr(last, "name", None), len(groupchat.messages)))
        if len(groupchat.messages) >= 4:
            return None
        return b if last is a else "round_robin"

    group = GroupChat([a, b], max_round=20, speaker_selection_method=choose)
    result = await GroupChatManager(group).a_run("go", sender="boss")
    assert names(result.chat_history) == ["boss", "a", "b", "a"]
    assert result.stop_reason.condition == "NoEligibleSpeaker"
    assert "returned None" in result.stop_reason.detail
    assert seen[0] == (None, 1)  # the opener is not a participant


async def test_policy_object_and_scripted_policy() -> None:
    group = GroupChat(
        [agent("a"), agent("b"), agent("c")],
        max_round=20,
        speaker_selection_method=ScriptedPolicy(["c", "a", "c"]),
    )
    result = await GroupChatManager(group).a_run("go")
    assert names(result.chat_history) == ["user", "c", "a", "c"]
    assert "script of 3 speakers is used up" in result.stop_reason.detail


async def test_random_never_repeats_when_repeats_are_forbidden() -> None:
    group = GroupChat(
        [agent("a"), agent("b"), agent("c")],
        max_round=60,
        speaker_selection_method="random",
        allow_repeat_speaker=False,
    )
    result = await GroupChatManager(group).a_run("go")
    spoken = names(result.chat_history)[1:]
    assert len(spoken) == 59
    assert all(x != y for x, y in itertools.pairwise(spoken))


async def test_graph_with_no_legal_next_speaker_ends_cleanly() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat(
        [a, b, c],
        max_round=20,
        speaker_selection_method="round_robin",
        allowed_or_disallowed_speaker_transitions={a: [b], b: [c]},  # nobody may follow c
        speaker_transitions_type="allowed",
    )
    result = await GroupChatManager(group).a_run("go")
    assert names(result.chat_history) == ["user", "a", "b", "c"]
    assert result.stop_reason.condition == "NoEligibleSpeaker"
    assert "no participant may speak after c" in result.stop_reason.detail


async def test_disallowed_transitions() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    group = GroupChat(
        [a, b, c],
        max_round=7,
        speaker_selection_method="round_robin",
        allowed_or_disallowed_speaker_transitions={a: [b]},
        speaker_transitions_type="disallowed",
    )
    result = await GroupChatManager(group).a_run("go")
    assert names(result.chat_history) == ["user", "a", "c", "a", "c", "a", "c"]


async def test_manual_selection_through_the_managers_input_provider() -> None:
    provider = ScriptedInputProvider(["2", "a", "nobody", "1", "b"])
    group = GroupChat([agent("a"), agent("b")], max_round=5, speaker_selection_method="manual")
    result = await GroupChatManager(group, input_provider=provider).a_run("go")
    assert names(result.chat_history) == ["user", "b", "a", "a", "b"]
    assert [r.chat_id for r in provider.requests] == [result.chat_id] * 5
    assert "1: a" in provider.requests[0].prompt
    assert "not one of the choices" in provider.requests[3].prompt


async def test_manual_with_empty_input_takes_the_next_agent_in_order() -> None:
    provider = ScriptedInputProvider(["", "2"])
    group = GroupChat([agent("a"), agent("b")], max_round=3, speaker_selection_method="manual")
    result = await GroupChatManager(group, input_provider=provider).a_run("go")
    assert names(result.chat_history) == ["user", "a", "b"]  # as AutoGen: no model is asked


async def test_text_mention_and_is_termination_msg() -> None:
    a = agent("a", ["working", "done: APPROVED", "never"])
    group = GroupChat([a], max_round=10, speaker_selection_method="round_robin")
    approved = GroupChatManager(group, termination=TextMention("APPROVED"))
    result = await approved.a_run("go")
    assert result.stop_reason.condition == "TextMention"
    custom = GroupChatManager(
        GroupChat([agent("b", ["x", "stop here", "y"])], speaker_selection_method="round_robin"),
        is_termination_msg=lambda m: "stop" in (m.get("content") or ""),
    )
    result = await custom.a_run("go")
    assert names(result.chat_history) == ["user", "b", "b"]
    assert result.stop_reason.condition == "MessagePredicate"


async def test_opening_message_can_terminate() -> None:
    result = await GroupChatManager(GroupChat([agent("a")])).a_run("nothing to do. TERMINATE")
    assert result.turns == 0
    assert result.stop_reason.condition == "MessagePredicate"


async def test_max_turns_source_match_and_composition() -> None:
    def run(termination: Any) -> Any:
        group = GroupChat(
            [agent("a"), agent("b"), agent("c")],
            max_round=50,
            speaker_selection_method="round_robin",
        )
        return GroupChatManager(group, termination=termination).a_run("go")

    result = await run(MaxTurns(4))
    assert result.turns == 4
    assert result.stop_reason.condition == "MaxTurns"
    result = await run(SourceMatch("c"))
    assert names(result.chat_history)[-1] == "c"
    result = await run(SourceMatch("b") & MaxTurns(4))
    assert result.turns == 5  # b speaks at turns 2 and 5
    assert result.stop_reason.condition == "SourceMatch & MaxTurns"
    result = await run(SourceMatch("zed") | MaxTurns(2))
    assert result.stop_reason.condition == "MaxTurns"


async def test_loop_detection_ping_pong() -> None:
    a, b = agent("a", "same again"), agent("b", "no, you")
    group = GroupChat([a, b], max_round=100, speaker_selection_method="round_robin")
    result = await GroupChatManager(group, termination=LoopDetection(3)).a_run("go")
    assert result.stop_reason.condition == "LoopDetection"
    assert result.turns == 6


async def test_external_stop_and_timeout() -> None:
    stop = ExternalStop()

    def press(messages: list[dict[str, Any]]) -> str:
        if len(messages) >= 3:
            stop.set("the user pressed stop")
        return "more"

    group = GroupChat([agent("a", press)], max_round=100, speaker_selection_method="round_robin")
    result = await GroupChatManager(group, termination=stop).a_run("go")
    assert result.stop_reason.detail == "the user pressed stop"
    assert result.turns == 3
    result = await GroupChatManager(group, termination=TimeLimit(0)).a_run("go")
    assert result.stop_reason.condition == "TimeLimit"
    assert result.turns == 0


async def test_no_reply_ends_the_chat() -> None:
    quiet = UserProxyAgent("quiet", human_input_mode="NEVER", code_execution_config=False)
    quiet.register_reply([ConversableAgent, None], lambda *args: (True, None))
    group = GroupChat([agent("a"), quiet], speaker_selection_method="round_robin")
    result = await GroupChatManager(group).a_run("go")
    assert result.stop_reason.condition == "NoReply"
    assert "quiet gave no reply" in result.stop_reason.detail


async def test_handoffs_swarm_and_handoff_to_user() -> None:
    def hand(to: str) -> dict[str, Any]:
        call = {"id": f"h-{to}", "type": "function", "function": {"name": f"transfer_to_{to}"}}
        return {"content": None, "tool_calls": [call]}

    triage = agent("triage", [hand("billing")])
    billing = agent("billing", ["looking", hand("user")])
    group = GroupChat(
        [triage, billing],
        max_round=20,
        speaker_selection_method=Handoffs(),
        func_call_filter=True,
    )
    result = await GroupChatManager(group, termination=HandoffTermination("user")).a_run("help")
    history = result.chat_history
    assert names(history) == [
        "user",
        "triage",
        "chat_manager",
        "billing",
        "billing",
        "chat_manager",
    ]
    assert history[1]["role"] == "assistant"  # a tool call, as the manager saw it
    assert history[2]["role"] == "tool"  # answered, so no participant tries to run it
    assert history[2]["tool_responses"][0]["tool_call_id"] == "h-billing"
    assert history[2]["content"] == "Transferred to billing."
    assert result.stop_reason.detail == "billing handed off to user"
    assert result.last_speaker == "billing"

    assert handoff_tool("billing")["function"]["name"] == "transfer_to_billing"


async def test_event_stream() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    a = agent("a", [{"content": None, "tool_calls": [call]}, "exitcode: 0 (ok)\nCode output: 4"])
    group = GroupChat(
        [a], max_round=3, speaker_selection_method="round_robin", func_call_filter=False
    )
    manager = GroupChatManager(group)
    events: list[ChatEvent] = [event async for event in manager.run_stream("go")]
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "MessageEvent",
        "SpeakerSelectedEvent",
        "MessageEvent",
        "ToolCallEvent",
        "SpeakerSelectedEvent",
        "MessageEvent",
        "CodeRunEvent",
        "TerminationEvent",
    ]
    selected = events[1]
    assert isinstance(selected, SpeakerSelectedEvent)
    assert selected.speaker == "a"
    assert selected.policy == "RoundRobin"
    assert isinstance(events[3], ToolCallEvent)
    assert events[6].exit_code == 0  # type: ignore[attr-defined]
    last = events[-1]
    assert isinstance(last, TerminationEvent)
    assert last.result is not None
    assert last.result.stop_reason == last.reason
    first = events[0]
    assert isinstance(first, MessageEvent)
    assert first.content == "go"


async def test_leaving_the_stream_early_cancels_the_chat() -> None:
    group = GroupChat([agent("a")], max_round=1000, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    seen = 0
    async with Runtime() as runtime:
        stream = manager.run_stream("go", runtime=runtime, buffer=1)
        async for _ in stream:
            seen += 1
            if seen == 5:
                break
        await stream.aclose()
    assert manager.last_result is None


async def test_resume_from_messages() -> None:
    a, b = agent("a"), agent("b")
    group = GroupChat([a, b], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    earlier = [
        {"role": "user", "name": "a", "content": "first"},
        {"role": "user", "name": "b", "content": "second. TERMINATE"},
    ]
    speaker, message = manager.resume(json.dumps(earlier), remove_termination_string="TERMINATE")
    assert speaker is b
    assert message["content"] == "second. "
    result = await b.a_initiate_chat(manager, message=message, clear_history=False, silent=True)
    assert [m["content"] for m in manager.groupchat.messages][:2] == ["first", "second. "]
    assert names(manager.groupchat.messages) == ["a", "b", "a", "b"]
    assert result.chat_history[-1]["content"] == "b says 1"
    with pytest.raises(GroupChatError, match="not in the group"):
        manager.resume([{"name": "stranger", "content": "hi"}])
    with pytest.raises(GroupChatError, match="empty"):
        await manager.a_resume([])


async def test_save_and_load_state() -> None:
    group = GroupChat([agent("a"), agent("b")], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    first = await manager.a_run("go", chat_id="saved")
    state = json.loads(json.dumps(manager.save_state("saved")))
    assert state["stop_reason"]["condition"] == "MaxMessages"
    other = GroupChatManager(group)
    chat_id = other.load_state(state)
    resumed = await other.a_run(None, chat_id=chat_id)  # go on from the last message
    assert resumed.chat_history[: len(first.chat_history)] == first.chat_history
    assert names(resumed.chat_history) == ["user", "a", "b", "a", "b", "a"]
    with pytest.raises(GroupChatError, match="knows no chat"):
        other.save_state("missing")
    with pytest.raises(GroupChatError, match="first message"):
        await other.a_run(None)


def test_configuration_errors() -> None:
    a = agent("a")
    with pytest.raises(GroupChatError, match="unique"):
        GroupChat([a, agent("a")])
    with pytest.raises(GroupChatError, match="speaker_selection_method"):
        GroupChat([a], speaker_selection_method="telepathy")  # type: ignore[arg-type]
    with pytest.raises(GroupChatError, match="speaker_transitions_type"):
        GroupChat([a], allowed_or_disallowed_speaker_transitions={a: [a]})
    with pytest.raises(GroupChatError, match="not in the group"):
        GroupChat(
            [a],
            allowed_or_disallowed_speaker_transitions={a: ["ghost"]},
            speaker_transitions_type="allowed",
        )
    with pytest.raises(GroupChatError, match="max_round"):
        GroupChat([a], max_round=0)
    with pytest.raises(GroupChatError, match="also a participant"):
        GroupChatManager(GroupChat([a]), name="a")


def test_classic_helpers() -> None:
    a, b, c = agent("a", description="does A"), agent("b"), agent("c")
    group = GroupChat([a, b, c])
    assert group.agent_names == ["a", "b", "c"]
    assert group.agent_by_name("b") is b
    assert group.agent_by_name("z") is None
    assert group.next_agent(c) is a
    assert group.next_agent(a, [c]) is c
    assert "a: does A" in group.select_speaker_msg()
    assert "['a', 'b']" in (group.select_speaker_prompt([a, b]) or "")
    assert "a: does A" in group.introductions_msg()
    group.append({"content": "x"}, a)
    assert group.messages == [{"content": "x", "name": "a", "role": "user"}]
    view = group.for_chat([])
    assert view.messages == []
    assert view.agents is group.agents
    group.reset()
    assert group.messages == []


async def test_send_introductions() -> None:
    a = agent("a", lambda messages: messages[0]["content"][:20])
    group = GroupChat(
        [a], max_round=2, send_introductions=True, speaker_selection_method="round_robin"
    )
    result = await GroupChatManager(group).a_run("go")
    assert result.chat_history[1]["content"] == "Hello everyone. This"
    assert RoundRobin() is not None


async def test_nested_chat_answers_with_its_summary() -> None:
    from moot.agents import register_nested_chats

    expert = agent("expert", lambda messages: f"expert view on: {messages[-1]['content'][:9]}")
    writer = agent("writer")
    register_nested_chats(
        writer,
        [{"recipient": expert, "max_turns": 1, "summary_method": "last_msg", "silent": True}],
        trigger=lambda sender: isinstance(sender, GroupChatManager),
        position=0,  # ahead of the test agent's own scripted reply
    )
    group = GroupChat(
        [writer, agent("editor")], max_round=3, speaker_selection_method="round_robin"
    )
    result = await GroupChatManager(group).a_run("the draft")
    assert result.chat_history[1] == {
        "content": "expert view on: the draft",
        "role": "user",
        "name": "writer",
    }
    with pytest.raises(AgentConfigError, match="at least one"):
        register_nested_chats(writer, [], trigger=None)


async def test_sequential_chats_carry_over_into_a_group() -> None:
    a, b = agent("a", "a has the numbers. TERMINATE"), agent("b", "b agrees. TERMINATE")
    manager = GroupChatManager(GroupChat([a, b], speaker_selection_method="round_robin"))
    first = GroupChatManager(GroupChat([a], speaker_selection_method="round_robin"), name="first")
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    results = await user.a_initiate_chats(
        [
            {"recipient": first, "message": "collect numbers", "silent": True},
            {"recipient": manager, "message": "discuss them", "silent": True},
        ]
    )
    assert len(results) == 2
    assert manager.last_result is not None
    opening = manager.last_result.chat_history[0]["content"]
    assert opening.startswith("discuss them")
    assert "collect numbers" in opening  # the first chat's summary came along as carryover


async def test_a_speakers_error_reaches_the_caller_unwrapped() -> None:
    def broken(messages: list[dict[str, Any]]) -> str:
        raise ValueError("the speaker broke")

    group = GroupChat([agent("a"), agent("b", broken)], speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    with pytest.raises(ValueError, match="the speaker broke"):
        await manager.a_run("go")
    result = await GroupChatManager(
        GroupChat([agent("a")], max_round=2, speaker_selection_method="round_robin")
    ).a_run("go", chat_id="after")
    assert result.chat_id == "after"


async def test_a_resumed_history_reaches_each_participant_in_its_own_roles() -> None:
    a, b = agent("a"), agent("b")
    group = GroupChat([a, b], max_round=2, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    call = {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    manager.load_state(
        {
            "chat_id": "old",
            "messages": [
                {"role": "user", "name": "user", "content": "task"},
                {"role": "assistant", "name": "b", "content": None, "tool_calls": [call]},
                {"role": "tool", "name": "a", "content": "42", "tool_responses": []},
            ],
        }
    )
    await manager.a_run("go on", chat_id="old")
    seen_by_a = [(m.get("name"), m["role"]) for m in a.chat_messages[manager]]
    assert seen_by_a[:3] == [("user", "user"), ("b", "user"), ("a", "tool")]
    seen_by_b = [(m.get("name"), m["role"]) for m in b.chat_messages[manager]]
    assert seen_by_b[1] == ("b", "assistant")


async def test_nested_chat_options() -> None:
    from moot.agents import register_nested_chats

    expert = agent("expert", lambda messages: f"expert got: {messages[-1]['content']}")
    writer = agent("writer")

    def message(recipient: Any, messages: list[dict[str, Any]], sender: Any, config: Any) -> str:
        return f"please check '{messages[-1]['content']}'"

    register_nested_chats(
        writer,
        [{"recipient": expert, "message": message, "max_turns": 1, "silent": True}],
        trigger=GroupChatManager,
        position=0,
    )
    group = GroupChat([writer], max_round=2, speaker_selection_method="round_robin")
    result = await GroupChatManager(group).a_run("v1")
    assert result.chat_history[1]["content"] == "expert got: please check 'v1'"

    async def custom(queue: Any, recipient: Any, messages: Any, sender: Any, config: Any) -> Any:
        return True, f"{len(queue)} nested chat(s) skipped"

    other = agent("other")
    register_nested_chats(
        other,
        [{"recipient": expert}],
        trigger=GroupChatManager,
        position=0,
        reply_func_from_nested_chats=custom,
    )
    group = GroupChat([other], max_round=2, speaker_selection_method="round_robin")
    result = await GroupChatManager(group).a_run("v1")
    assert result.chat_history[1]["content"] == "1 nested chat(s) skipped"
    with pytest.raises(AgentConfigError, match="no recipient"):
        register_nested_chats(other, [{"message": "x"}], trigger=None)
    with pytest.raises(AgentConfigError, match="summary_from_nested_chats"):
        register_nested_chats(
            other, [{"recipient": expert}], trigger=None, reply_func_from_nested_chats="other"
        )


async def test_console_shows_each_message_once(capsys: pytest.CaptureFixture[str]) -> None:
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, default_auto_reply="ok"
    )
    group = GroupChat([user, agent("a")], max_round=3, speaker_selection_method="round_robin")
    await user.a_initiate_chat(GroupChatManager(group), message="hi")
    out = capsys.readouterr().out
    assert out.count("user (to chat_manager):") == 2  # "hi", then its own turn "ok"
    assert out.count("a (to chat_manager):") == 1
    assert "(to user)" not in out


async def test_each_speaker_sees_every_earlier_message_in_order_when_it_speaks() -> None:
    seen: dict[str, list[list[str]]] = {"a": [], "b": [], "c": []}

    def replier(name: str) -> ConversableAgent:
        def reply(messages: list[dict[str, Any]]) -> str:
            seen[name].append([str(m["content"]) for m in messages])
            return f"{name}{len(seen[name])}"

        return agent(name, reply)

    team = [replier("a"), replier("b"), replier("c")]
    manager = GroupChatManager(GroupChat(team, max_round=8, speaker_selection_method="round_robin"))
    result = await manager.a_run("go")

    spoken = [str(m["content"]) for m in result.chat_history]
    assert spoken == ["go", "a1", "b1", "c1", "a2", "b2", "c2", "a3"]
    for name, views in seen.items():  # at each turn, the whole conversation so far
        for view in views:
            assert view == spoken[: len(view)]
            assert view[-1] != f"{name}{len(view)}"
    for each in team:  # and at the end, everyone has all of it, its own turns as the assistant's
        history = each.chat_messages[manager]
        assert [str(m["content"]) for m in history] == spoken
        assert [m["role"] for m in history] == [
            "assistant" if m["name"] == each.name else "user" for m in history
        ]
