"""Messaging without a driver, as AutoGen has it: send / receive with request_reply, reply on
receipt, the opening message with carryover, seeded chat_messages, and an agent alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import (
    AmbiguousPeerError,
    CarryoverTypeError,
    ConversableAgent,
    InvalidMessageError,
    NoConversationError,
)

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer


def _agent(name: str, reply: str = "", limit: int = 10, **options: Any) -> ConversableAgent:
    options.setdefault("human_input_mode", "NEVER")
    return ConversableAgent(
        name,
        llm_config=False,
        default_auto_reply=reply,
        max_consecutive_auto_reply=limit,
        **options,
    )


def _contents(messages: list[dict[str, Any]]) -> list[Any]:
    return [m.get("content") for m in messages]


def test_a_send_before_any_chat_is_not_answered_unless_asked() -> None:
    alice, bob = _agent("alice"), _agent("bob", "hi alice", limit=1)

    alice.send("hello", bob, silent=True)
    assert _contents(bob.chat_messages[alice]) == ["hello"]
    assert bob.reply_at_receive[alice] is False

    alice.send("again", bob, request_reply=True, silent=True)
    assert _contents(alice.chat_messages[bob]) == ["hello", "again", "hi alice"]


def test_initiate_chat_turns_on_reply_at_receive_and_stop_turns_it_off() -> None:
    alice, bob = _agent("alice", limit=0), _agent("bob", "yes", limit=5)
    alice.initiate_chat(bob, message="start", silent=True)
    assert alice.reply_at_receive[bob] is True
    assert bob.reply_at_receive[alice] is True

    alice.send("answered", bob, silent=True)
    assert _contents(alice.chat_messages[bob])[-2:] == ["answered", "yes"]

    bob.stop_reply_at_receive(alice)
    assert bob.reply_at_receive[alice] is False
    assert alice.reply_at_receive[bob] is True
    alice.send("ignored", bob, silent=True)
    assert _contents(alice.chat_messages[bob])[-1] == "ignored"

    bob.stop_reply_at_receive()
    assert not bob.reply_at_receive


def test_receive_records_on_the_receiver_only_and_replies_when_asked() -> None:
    alice, bob = _agent("alice", limit=0), _agent("bob", "got it")

    bob.receive("ping", alice)
    assert _contents(bob.chat_messages[alice]) == ["ping"]
    assert bob.chat_messages[alice][0]["role"] == "user"
    assert not alice.chat_messages.get(bob)

    bob.receive({"content": "ping2"}, alice, request_reply=True)
    assert _contents(bob.chat_messages[alice]) == ["ping", "ping2", "got it"]
    assert _contents(alice.chat_messages[bob]) == ["got it"]


async def test_a_receive_and_a_send_are_the_async_forms() -> None:
    alice, bob = _agent("alice", limit=0), _agent("bob", "pong")
    await bob.a_receive("ping", alice, request_reply=True, silent=True)
    await alice.a_send("more", bob, request_reply=False, silent=True)
    assert _contents(bob.chat_messages[alice]) == ["ping", "pong", "more"]


def test_a_message_without_content_is_refused_and_not_recorded() -> None:
    alice, bob = _agent("alice"), _agent("bob")
    alice.send("first", bob, silent=True)
    before = len(bob.chat_messages[alice])

    with pytest.raises(InvalidMessageError) as caught:
        bob.receive({"message": "hello"}, alice)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ValueError, match="content"):
        alice.send({"message": "hello"}, bob)
    assert len(bob.chat_messages[alice]) == before
    assert len(alice.chat_messages[bob]) == before


def test_a_message_with_context_keeps_it() -> None:
    alice, bob = _agent("alice"), _agent("bob")
    bob.receive({"content": "hello {name}", "context": {"name": "bob"}}, alice)
    assert bob.chat_messages[alice][-1]["context"] == {"name": "bob"}


def test_last_message_of_an_unknown_agent_is_a_key_error() -> None:
    alice, bob = _agent("alice"), _agent("bob")
    with pytest.raises(NoConversationError) as caught:
        alice.last_message(bob)
    assert isinstance(caught.value, KeyError)


def test_generate_init_message_adds_carryover() -> None:
    agent = _agent("alice")
    assert agent.generate_init_message("hello") == "hello"
    assert agent.generate_init_message("hello", carryover="Earlier.") == (
        "hello\nContext: \nEarlier."
    )
    assert agent.generate_init_message("hello", carryover=["One.", {"content": "Two."}]) == (
        "hello\nContext: \nOne.\nTwo."
    )
    images = {"content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]}
    made = agent.generate_init_message(images, carryover="Earlier.")
    assert isinstance(made, dict)
    assert len(made["content"]) == 3
    assert len(images["content"]) == 2  # the caller's message is left as it was
    with pytest.raises(CarryoverTypeError) as caught:
        agent.generate_init_message("hello", carryover=3)
    assert isinstance(caught.value, TypeError)


def test_chat_messages_seed_a_new_agent_that_continues_the_threads() -> None:
    alice, charlie = _agent("alice", "alice here"), _agent("charlie", "charlie here")
    bob = _agent("bob", "bob from the past")
    for peer in (alice, charlie):
        bob.initiate_chat(peer, message="bob speaking", max_turns=2, silent=True)
    history = bob.chat_messages

    reborn = _agent("bob", "bob from the future", chat_messages=history)
    assert reborn.chat_messages == history
    reborn.initiate_chat(alice, message="bob again", max_turns=2, clear_history=False, silent=True)

    thread = reborn.chat_messages[alice]
    assert len(thread) == 8
    assert thread[0]["content"] == "bob speaking"
    assert thread[-2]["content"] == "bob from the future"
    assert reborn.chat_messages_for_summary(alice) == thread
    assert history[alice] is not thread  # the seed was copied, not adopted


def test_an_agent_can_chat_with_itself() -> None:
    solo = _agent("solo", "thinking", limit=2)

    result = solo.initiate_chat(solo, message="let me think", silent=True)

    assert [(m["role"], m["content"]) for m in result.chat_history] == [
        ("assistant", "let me think"),
        ("user", "let me think"),
        ("assistant", "thinking"),
        ("user", "thinking"),
        ("assistant", "thinking"),
        ("user", "thinking"),
    ]
    assert solo.chat_messages[solo] == result.chat_history
    assert result.summary == "thinking"


async def test_send_continues_a_model_chat(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("First. TERMINATE", "Second. TERMINATE")
    assistant = ConversableAgent("assistant", llm_config=llm_config, human_input_mode="NEVER")
    user = _agent("user", limit=0)

    await user.a_initiate_chat(assistant, message="one", silent=True)
    await user.a_send("two", assistant, silent=True)

    assert _contents(user.chat_messages[assistant]) == [
        "one",
        "First. TERMINATE",
        "two",
        "Second. TERMINATE",
    ]
    assert [m["content"] for m in server.requests[1].messages[1:]] == [
        "one",
        "First. TERMINATE",
        "two",
    ]


def test_last_message_without_an_agent_needs_a_single_peer() -> None:
    alice, bob, carol = _agent("alice"), _agent("bob"), _agent("carol")
    assert alice.last_message() is None
    alice.send("to bob", bob, silent=True)
    assert alice.last_message() == alice.last_message(bob)
    alice.send("to carol", carol, silent=True)
    with pytest.raises(AmbiguousPeerError) as caught:
        alice.last_message()
    assert isinstance(caught.value, ValueError)


def test_a_received_call_is_recorded_as_the_models_output() -> None:
    caller, runner = _agent("caller"), _agent("runner", function_map={"two": lambda: 2})
    call = {"content": None, "function_call": {"name": "two", "arguments": "{}"}}

    caller.send(call, runner, request_reply=True, silent=True)

    assert [m["role"] for m in runner.chat_messages[caller]] == ["assistant", "function"]
    assert runner.chat_messages[caller][1] == {"name": "two", "role": "function", "content": "2"}
    assert caller.chat_messages[runner][1]["role"] == "function"


def test_a_mocked_get_human_input_answers_for_the_human() -> None:
    asked: list[str] = []

    def scripted(prompt: str) -> str:
        asked.append(prompt)
        return "exit" if len(asked) > 1 else "Not funny. Try again."

    user = ConversableAgent("user", llm_config=False, human_input_mode="ALWAYS")
    user.get_human_input = scripted  # type: ignore[method-assign]
    joker = _agent("joker", "A joke.")

    result = user.initiate_chat(joker, message="Tell a joke.", silent=True)

    assert [m["content"] for m in result.chat_history] == [
        "Tell a joke.",
        "A joke.",
        "Not funny. Try again.",
        "A joke.",
    ]
    assert result.human_input == ["Not funny. Try again.", "exit"]
    assert len(asked) == 2


class _Human(ConversableAgent):
    async def a_get_human_input(self, prompt: str, **kwargs: Any) -> str:
        return "exit"


async def test_an_overridden_a_get_human_input_answers_in_async_chats() -> None:
    user = _Human("user", llm_config=False, human_input_mode="ALWAYS")
    result = await user.a_initiate_chat(_agent("echo", "echo"), message="hi", silent=True)
    assert [m["content"] for m in result.chat_history] == ["hi", "echo"]
    assert result.human_input == ["exit"]


def test_chat_messages_reads_an_unknown_peer_as_empty() -> None:
    alice, bob = _agent("alice"), _agent("bob")
    assert alice.chat_messages[bob] == []
    assert bob not in alice.chat_messages  # reading did not add it
    with pytest.raises(NoConversationError):
        alice.last_message(bob)
