"""Termination conditions alone and composed; the reason names the condition that fired."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from moot.groupchat import (
    CostBudget,
    ExternalStop,
    GroupChatState,
    HandoffTermination,
    LoopDetection,
    MaxMessages,
    MaxTurns,
    MessagePredicate,
    SourceMatch,
    StopHandle,
    TextMention,
    TimeLimit,
    TokenBudget,
)
from moot.models import (
    ModelResponse,
    Usage,
)

MakeChat = Callable[..., GroupChatState]


def test_max_messages_counts_this_run(make_chat: MakeChat) -> None:
    chat = make_chat(history=[("user", "task"), ("planner", "a")])
    assert MaxMessages(3).check(chat) is None
    chat.messages.append({"name": "coder", "content": "b"})
    reason = MaxMessages(3).check(chat)
    assert reason is not None
    assert reason.condition == "MaxMessages"
    assert str(reason) == "reached the maximum of 3 messages"
    chat.restart()  # a resumed run counts from where it resumed
    assert MaxMessages(3).check(chat) is None
    with pytest.raises(ValueError, match="at least 1"):
        MaxMessages(0)


def test_max_turns(make_chat: MakeChat) -> None:
    chat = make_chat()
    chat.turns = 2
    assert MaxTurns(3).check(chat) is None
    chat.turns = 3
    assert MaxTurns(3).check(chat) is not None


@pytest.mark.parametrize(
    ("text", "anywhere", "at_end"),
    [
        ("TERMINATE", True, True),
        ("The answer is 42. TERMINATE", True, True),
        ("Done. TERMINATE.", True, True),
        ("TERMINATE the process, then report", True, False),
        ("TERMINATED", False, False),
        ("terminate", False, False),
        ("", False, False),
    ],
)
def test_text_mention(make_chat: MakeChat, text: str, anywhere: bool, at_end: bool) -> None:
    chat = make_chat(history=[("coder", text)])
    assert (TextMention().check(chat) is not None) is anywhere
    assert (TextMention(at_end=True).check(chat) is not None) is at_end


def test_text_mention_from_sources(make_chat: MakeChat) -> None:
    chat = make_chat(history=[("coder", "APPROVE")])
    assert TextMention("APPROVE", sources=["reviewer"]).check(chat) is None
    chat.messages.append({"name": "reviewer", "content": "APPROVE"})
    reason = TextMention("APPROVE", sources=["reviewer"]).check(chat)
    assert reason is not None
    assert "reviewer said APPROVE" in reason.detail


def test_message_predicate(make_chat: MakeChat) -> None:
    done = MessagePredicate(lambda m: "bye" in (m.get("content") or ""))
    assert done.check(make_chat(history=[("a", "hello")])) is None
    assert done.check(make_chat(history=[("a", "bye now")])) is not None
    assert done.check(make_chat()) is None


async def test_token_and_dollar_budgets(make_chat: MakeChat) -> None:
    chat = make_chat()
    spend = ModelResponse(
        content="x",
        usage=Usage(prompt_tokens=60, completion_tokens=40, total_tokens=100),
        cost=0.02,
    )
    await chat.record_usage("planner", spend)
    assert TokenBudget(101).check(chat) is None
    assert CostBudget(0.03).check(chat) is None
    await chat.record_usage("selector", spend)
    tokens = TokenBudget(150).check(chat)
    dollars = CostBudget(0.03).check(chat)
    assert tokens is not None
    assert "200 tokens" in tokens.detail
    assert dollars is not None
    assert dollars.condition == "CostBudget"


def test_timeout_uses_the_chats_clock(make_chat: MakeChat) -> None:
    now = [100.0]
    chat = GroupChatState("t", ("a",), clock=lambda: now[0])
    assert TimeLimit(5).check(chat) is None
    now[0] = 105.0
    reason = TimeLimit(5).check(chat)
    assert reason is not None
    assert "limit of 5" in reason.detail


def test_external_stop(make_chat: MakeChat) -> None:
    handle = StopHandle()
    stop = ExternalStop(handle)
    chat = make_chat()
    assert stop.check(chat) is None
    handle.set("the user pressed stop")
    handle.set("later reasons are ignored")
    reason = stop.check(chat)
    assert reason is not None
    assert reason.detail == "the user pressed stop"
    assert handle.is_set


def test_source_match(make_chat: MakeChat) -> None:
    chat = make_chat(history=[("reviewer", "task")])
    assert SourceMatch("reviewer").check(chat) is None  # the opening message is not a turn
    chat.turns = 1
    assert SourceMatch(["reviewer", "x"]).check(chat) is not None


def test_handoff_to_user(make_chat: MakeChat) -> None:
    chat = make_chat(history=[("coder", "hi")])
    assert HandoffTermination().check(chat) is None
    chat.messages.append(
        {
            "name": "coder",
            "content": None,
            "tool_calls": [{"id": "1", "function": {"name": "transfer_to_user", "arguments": ""}}],
        }
    )
    reason = HandoffTermination("user").check(chat)
    assert reason is not None
    assert reason.detail == "coder handed off to user"


def test_loop_detection_same_message(make_chat: MakeChat) -> None:
    loop = LoopDetection(3)
    chat = make_chat(history=[("a", "ok"), ("b", "ok")])
    assert loop.check(chat) is None
    chat.messages.append({"name": "c", "content": " ok "})
    reason = loop.check(chat)
    assert reason is not None
    assert "repeated 3 times" in reason.detail


def test_loop_detection_ping_pong(make_chat: MakeChat) -> None:
    loop = LoopDetection(3)
    pairs = [("coder", "fixed it"), ("reviewer", "still broken")] * 3
    chat = make_chat(history=pairs[:-1])
    assert loop.check(chat) is None
    chat.messages.append({"name": "reviewer", "content": "still broken"})
    reason = loop.check(chat)
    assert reason is not None
    assert "coder and reviewer exchanged the same two messages 3 times" == reason.detail
    chat.messages.append({"name": "coder", "content": "new idea"})
    assert loop.check(chat) is None
    assert LoopDetection(3, ping_pong=False).check(make_chat(history=pairs)) is None
    with pytest.raises(ValueError, match="at least 2"):
        LoopDetection(1)


def test_or_and_compose(make_chat: MakeChat) -> None:
    chat = make_chat(history=[("a", "TERMINATE")])
    either = MaxMessages(5) | TextMention()
    reason = either.check(chat)
    assert reason is not None
    assert reason.condition == "TextMention"
    both = MaxMessages(5) & TextMention()
    assert both.check(chat) is None
    chat.messages.extend({"name": "a", "content": "TERMINATE"} for _ in range(4))
    reason = both.check(chat)
    assert reason is not None
    assert reason.condition == "MaxMessages & TextMention"
    three = MaxMessages(100) | TokenBudget(10**6) | TextMention()
    assert len(three.conditions) == 3  # type: ignore[attr-defined]
    assert "|" in repr(three)


def test_shared_condition_serves_many_chats(make_chat: MakeChat) -> None:
    stop = MaxMessages(2)
    short = make_chat(history=[("a", "1")], chat_id="x")
    long = make_chat(history=[("a", "1"), ("b", "2")], chat_id="y")
    assert stop.check(short) is None
    assert stop.check(long) is not None


def test_elapsed(make_chat: MakeChat) -> None:
    chat = make_chat()
    assert 0 <= chat.elapsed < 60
    assert time.monotonic() >= chat.started
