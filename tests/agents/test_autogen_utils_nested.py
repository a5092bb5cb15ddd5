"""Nested chats as AutoGen runs them: a chat queue answering inside a two-agent chat and inside a
group chat, in order or by chat id (issue 12). Agents answer from scripts, without a model."""

from __future__ import annotations

from typing import Any

import pytest

from moot.agents import AgentConfigError, AssistantAgent, ConversableAgent, UserProxyAgent
from moot.groupchat import GroupChat, GroupChatManager


def final(message: Any) -> bool:
    content = message if isinstance(message, str) else message.get("content")
    return content == "DONE"


def scripted(name: str, lines: list[str], **options: Any) -> AssistantAgent:
    """An assistant without a model that says `lines` in turn (after termination is checked)."""
    made = AssistantAgent(name, llm_config=False, **options)
    script = iter(lines)

    def say(recipient: Any, messages: Any, sender: Any, config: Any) -> tuple[bool, str]:
        return True, next(script)

    made.register_reply([ConversableAgent, None], say, position=2)
    return made


def inner_pair() -> tuple[AssistantAgent, AssistantAgent]:
    asker = scripted("inner_asker", ["asker 1", "asker 2"], is_termination_msg=final)
    answerer = scripted("inner_answerer", ["answer 1", "answer 2", "DONE"])
    return asker, answerer


def test_a_nested_chat_with_its_own_sender_answers_the_outer_chat() -> None:
    asker, answerer = inner_pair()
    front = AssistantAgent("front", llm_config=False)
    user = UserProxyAgent("user", human_input_mode="NEVER", is_termination_msg=final)
    front.register_nested_chats(
        [{"sender": asker, "recipient": answerer, "summary_method": "last_msg"}], trigger=user
    )
    result = user.initiate_chat(front, message="Start", silent=True)
    assert [m["content"] for m in result.chat_history] == ["Start", "DONE"]
    inner = asker.chat_messages[answerer]
    assert inner[0]["content"] == "Start"  # the first nested chat opens with the message answered


async def test_an_async_nested_chat_needs_chat_ids_and_answers_the_same() -> None:
    asker, answerer = inner_pair()
    front = AssistantAgent("front", llm_config=False)
    user = UserProxyAgent("user", human_input_mode="NEVER", is_termination_msg=final)
    with pytest.raises(AgentConfigError, match="chat_id is required for async nested chats"):
        front.register_nested_chats(
            [{"sender": asker, "recipient": answerer}], trigger=user, use_async=True
        )
    front.register_nested_chats(
        [{"sender": asker, "recipient": answerer, "chat_id": 1}], trigger=user, use_async=True
    )
    result = await user.a_initiate_chat(front, message="Start", silent=True)
    assert [m["content"] for m in result.chat_history] == ["Start", "DONE"]


@pytest.mark.parametrize("use_async", [False, True])
async def test_a_nested_chat_answers_for_a_group_member(use_async: bool) -> None:
    asker, answerer = inner_pair()
    first = scripted("member_1", ["member 1 speaks"])
    second = AssistantAgent("member_2", llm_config=False)
    user = UserProxyAgent("user", human_input_mode="NEVER", is_termination_msg=final)
    group = GroupChat([first, second, user], speaker_selection_method="round_robin")
    manager = GroupChatManager(group)
    entry: dict[str, Any] = {"sender": asker, "recipient": answerer, "summary_method": "last_msg"}
    if use_async:
        entry["chat_id"] = 1
    second.register_nested_chats([entry], trigger=manager, use_async=use_async)
    result = await user.a_initiate_chat(manager, message="Start", silent=True)
    assert [m["content"] for m in result.chat_history] == ["Start", "member 1 speaks", "DONE"]
