"""Pub/sub: type and prefix subscriptions, keys from the topic source, dead letters."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from rt_helpers import assert_balanced, wait_all_tasks_blocked

from moot.runtime import (
    Agent,
    AgentContext,
    AgentId,
    DeadLetterReason,
    Envelope,
    PrefixSubscription,
    RegistrationError,
    Runtime,
    TopicId,
    TypeSubscription,
    handler,
)


@dataclass
class News:
    text: str


class Reader(Agent):
    inbox: dict[AgentId, list[str]]

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        self.log = Reader.inbox.setdefault(context.id, [])

    @handler
    async def on_news(self, message: News, ctx: Envelope) -> None:
        self.log.append(message.text)
        if message.text == "echo":
            await self.context.publish(News("from " + self.id.type), TopicId("news", self.id.key))


async def _idle(rt: Runtime) -> None:
    await wait_all_tasks_blocked()
    assert rt.statistics().in_flight == 0


async def test_type_and_prefix_subscriptions_route_by_source() -> None:
    Reader.inbox = {}
    async with Runtime() as rt:
        rt.register("a", Reader)
        rt.register("b", Reader)
        rt.subscribe(TypeSubscription("news", "a"))
        rt.subscribe(PrefixSubscription("ne", "b"))
        await rt.publish(News("hello"), TopicId("news", "chat-1"))
        await rt.publish(News("other"), TopicId("nest", "chat-2"))
        await _idle(rt)
        assert_balanced(rt)
    assert Reader.inbox == {
        AgentId("a", "chat-1"): ["hello"],
        AgentId("b", "chat-1"): ["hello"],
        AgentId("b", "chat-2"): ["other"],
    }


async def test_a_publisher_does_not_receive_its_own_message() -> None:
    Reader.inbox = {}
    async with Runtime() as rt:
        rt.register("a", Reader)
        rt.register("b", Reader)
        rt.subscribe(TypeSubscription("news", "a"))
        rt.subscribe(TypeSubscription("news", "b"))
        await rt.publish(News("echo"), TopicId("news", "k"))
        await _idle(rt)
    assert Reader.inbox[AgentId("a", "k")] == ["echo", "from b"]
    assert Reader.inbox[AgentId("b", "k")] == ["echo", "from a"]


async def test_no_subscribers_is_a_dead_letter() -> None:
    async with Runtime() as rt:
        await rt.publish(News("void"), TopicId("nobody", "k"))
        assert rt.dead_letters.counts[DeadLetterReason.NO_SUBSCRIBERS] == 1
        letter = rt.dead_letters.recent[-1]
        assert letter.envelope.message == News("void")
        assert_balanced(rt)


async def test_subscription_to_unregistered_type_dead_letters_and_failures_too() -> None:
    class Fails(Agent):
        @handler
        async def on_news(self, message: News, ctx: Envelope) -> None:
            raise RuntimeError("nope")

    sink: list[DeadLetterReason] = []
    async with Runtime(dead_letter_sink=lambda d: sink.append(d.reason)) as rt:
        rt.register("fails", Fails)
        rt.subscribe(TypeSubscription("t", "ghost"))
        rt.subscribe(TypeSubscription("t", "fails"))
        await rt.publish(News("x"), TopicId("t", "k"))
        await _idle(rt)
        assert_balanced(rt)
    assert sorted(r.value for r in sink) == ["handler_failed", "no_such_agent_type"]


async def test_fail_fast_publish_dead_letters_the_full_recipient() -> None:
    gate = asyncio.Event()

    class Slow(Agent):
        @handler
        async def on_news(self, message: News, ctx: Envelope) -> None:
            await gate.wait()

    async with Runtime(default_mailbox_capacity=1) as rt:
        rt.register("slow", Slow)
        rt.subscribe(TypeSubscription("t", "slow"))
        topic = TopicId("t", "k")
        await rt.publish(News("1"), topic)  # taken by the handler
        await wait_all_tasks_blocked()
        await rt.publish(News("2"), topic)  # waits in the mailbox
        await rt.publish(News("3"), topic, fail_fast=True)
        assert rt.dead_letters.counts[DeadLetterReason.MAILBOX_FULL] == 1
        gate.set()
        await _idle(rt)
        assert rt.statistics().handled == 2
        assert_balanced(rt)


def test_duplicate_subscription_and_unknown_unsubscribe_are_errors() -> None:
    rt = Runtime()
    sub = TypeSubscription("t", "a")
    rt.subscribe(sub)
    with pytest.raises(RegistrationError):
        rt.subscribe(sub)
    rt.unsubscribe(sub)
    with pytest.raises(RegistrationError):
        rt.unsubscribe(sub)
