"""AutoGen behaviours checked after the group chat started sharing message dicts between
histories: each agent keeps its own copies where user code can change them, and the classic
helpers (`clear_history` with a count, `GroupChat.append` / `reset`, `select_speaker_msg`,
`max_turns`, `is_termination_msg`) behave as in AutoGen. Agents answer through reply
functions, so no model is needed."""

from __future__ import annotations

import json
from typing import Any

from moot.agents import ConversableAgent
from moot.groupchat import GroupChat, GroupChatManager


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


def contents(messages: list[dict[str, Any]]) -> list[Any]:
    return [message.get("content") for message in messages]


def test_a_reply_function_editing_the_last_message_changes_only_its_own_history() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")

    def scribble(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, Any]:
        messages[-1]["content"] = "scribbled"
        return False, None  # the next reply function answers

    b.register_reply([ConversableAgent, None], scribble)
    group = GroupChat([a, b, c], max_round=4, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    a.initiate_chat(manager, message="hello", silent=True)

    assert contents(group.messages) == ["hello", "b says 1", "c says 1", "a says 1"]
    assert contents(a.chat_messages[manager]) == contents(group.messages)
    assert contents(c.chat_messages[manager]) == contents(group.messages)
    # b saw the opening message last when asked to speak, and changed its own copy only
    assert contents(b.chat_messages[manager]) == ["scribbled", "b says 1", "c says 1", "a says 1"]


def test_a_reply_hook_editing_messages_in_place_does_not_reach_the_others() -> None:
    a, b = agent("a"), agent("b")

    def shout(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for message in messages:
            message["content"] = str(message["content"]).upper()
        return messages

    b.register_hook("process_all_messages_before_reply", shout)
    group = GroupChat([a, b], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    a.initiate_chat(manager, message="hello", silent=True)

    assert contents(group.messages) == ["hello", "b says 1", "a says 1"]
    assert contents(a.chat_messages[manager]) == ["hello", "b says 1", "a says 1"]


def test_a_subclass_generate_reply_editing_messages_keeps_the_group_history() -> None:
    class Editor(ConversableAgent):
        # Narrower than the base signature on purpose: AutoGen users write overrides this way.
        def generate_reply(  # type: ignore[override]
            self,
            messages: list[dict[str, Any]] | None = None,
            sender: Any = None,
            **kwargs: Any,
        ) -> str:
            assert messages is not None
            messages[0]["content"] = "rewritten"
            return "edited"

    a = agent("a")
    editor = Editor("editor", llm_config=False, human_input_mode="NEVER")
    group = GroupChat([a, editor], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    a.initiate_chat(manager, message="hello", silent=True)

    assert contents(group.messages) == ["hello", "edited", "a says 1"]
    assert contents(a.chat_messages[manager]) == ["hello", "edited", "a says 1"]
    assert editor.chat_messages[manager][0]["content"] == "rewritten"


def test_histories_keep_each_agents_roles_after_an_edit() -> None:
    a, b = agent("a"), agent("b")

    def relabel(
        recipient: ConversableAgent, messages: list[dict[str, Any]], sender: Any, config: Any
    ) -> tuple[bool, Any]:
        for message in messages:
            message["role"] = "system"
        return False, None

    b.register_reply([ConversableAgent, None], relabel)
    group = GroupChat([a, b], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    a.initiate_chat(manager, message="hello", silent=True)

    assert [m["role"] for m in group.messages] == ["user", "user", "user"]
    assert [m["role"] for m in a.chat_messages[manager]] == ["assistant", "user", "assistant"]


def test_clear_history_can_preserve_the_last_messages_of_every_conversation() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    a.initiate_chat(b, message="one", max_turns=2, silent=True)
    a.initiate_chat(c, message="two", max_turns=1, silent=True)
    assert len(a.chat_messages[b]) == 4

    a.clear_history(nr_messages_to_preserve=1)

    assert contents(a.chat_messages[b]) == ["b says 2"]
    assert contents(a.chat_messages[c]) == ["c says 1"]


def test_clear_history_keeps_the_call_of_a_preserved_tool_response() -> None:
    a, b = agent("a"), agent("b")
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    a.receive({"content": None, "tool_calls": [call], "role": "assistant"}, b, request_reply=False)
    answer = {"tool_call_id": "call_1", "role": "tool", "content": "42"}
    a.receive({"role": "tool", "content": "42", "tool_responses": [answer]}, b, request_reply=False)
    a.receive("thanks", b, request_reply=False)

    a.clear_history(nr_messages_to_preserve=2)

    kept = a.chat_messages[b]
    assert len(kept) == 3
    assert kept[0].get("tool_calls")


def test_clear_history_with_a_recipient_ignores_the_count() -> None:
    a, b, c = agent("a"), agent("b"), agent("c")
    a.initiate_chat(b, message="one", max_turns=1, silent=True)
    a.initiate_chat(c, message="two", max_turns=1, silent=True)

    a.clear_history(b, nr_messages_to_preserve=1)

    assert a.chat_messages[b] == []
    assert len(a.chat_messages[c]) == 2


def test_group_append_names_the_speaker_and_reset_empties_it() -> None:
    a, b = agent("a"), agent("b")
    group = GroupChat([a, b], messages=[], max_round=3)
    original = {"content": "hi", "role": "assistant"}
    group.append(original, a)
    group.append({"content": "ho"}, b)

    assert [m["name"] for m in group.messages] == ["a", "b"]
    assert "name" not in original  # the caller's dict is not changed
    assert "b" in group.select_speaker_msg([b])
    assert "['b']" in group.select_speaker_msg([b])
    text = GroupChatManager(group).messages_to_string(group.messages)
    assert contents(json.loads(text)) == ["hi", "ho"]
    group.reset()
    assert group.messages == []


def test_max_turns_counts_exchanges_and_the_result_keeps_them() -> None:
    a, b = agent("a"), agent("b")
    result = a.initiate_chat(b, message="start", max_turns=3, silent=True)
    assert contents(result.chat_history) == [
        "start",
        "b says 1",
        "a says 1",
        "b says 2",
        "a says 2",
        "b says 3",
    ]
    assert result.summary == "b says 3"


def test_is_termination_msg_stops_the_receiver_from_replying() -> None:
    a = agent("a", reply="bye now")
    b = ConversableAgent(
        "b",
        llm_config=False,
        human_input_mode="NEVER",
        default_auto_reply="tell me more",
        is_termination_msg=lambda message: "bye" in str(message.get("content")),
    )
    result = a.initiate_chat(b, message="hello", silent=True)
    assert contents(result.chat_history) == ["hello", "tell me more", "bye now"]


def speaker(name: str, **options: Any) -> ConversableAgent:
    return ConversableAgent(
        name,
        llm_config=False,
        human_input_mode="NEVER",
        default_auto_reply=f"This is {name} speaking.",
        **options,
    )


def test_the_managers_is_termination_msg_ends_the_group() -> None:
    alice, bob = speaker("alice"), speaker("bob")
    sam = ConversableAgent(
        "sam", llm_config=False, human_input_mode="NEVER", default_auto_reply="sam here. TERMINATE"
    )
    group = GroupChat([alice, bob, sam], speaker_selection_method="round_robin", max_round=10)
    manager = GroupChatManager(
        group,
        llm_config=False,
        is_termination_msg=lambda m: "TERMINATE" in str(m.get("content")),
    )
    alice.initiate_chat(manager, message="go", silent=True)
    assert [m["name"] for m in group.messages] == ["alice", "bob", "sam"]
    assert len(alice.chat_messages[manager]) == 3


def test_two_agents_without_repeats_alternate_without_a_model() -> None:
    alice, bob = speaker("alice"), speaker("bob")
    group = GroupChat([alice, bob], max_round=6, allow_repeat_speaker=False)
    manager = GroupChatManager(group, llm_config=False)
    alice.initiate_chat(manager, message="This is alice speaking.", silent=True)
    expected = ["This is alice speaking.", "This is bob speaking."] * 3
    assert contents(alice.chat_messages[manager]) == expected
    assert contents(group.messages) == expected


def test_a_function_call_in_a_group_is_run_by_the_agent_that_has_the_function() -> None:
    alice = speaker("alice")
    bob = speaker("bob", function_map={"test_func": lambda x: x})
    group = GroupChat([alice, bob], max_round=3, speaker_selection_method="round_robin")
    manager = GroupChatManager(group, llm_config=False)
    call = {"function_call": {"name": "test_func", "arguments": '{"x": 1}'}}
    bob.initiate_chat(manager, message=call, silent=True)  # bob's own call: bob runs it

    assert len(group.messages) == 3
    answer = group.messages[1]
    assert (answer["role"], answer["name"], answer["content"]) == ("function", "test_func", "1")
    assert group.messages[-1]["name"] == "alice"
