"""The ack window of pipelined publishes, on its own: bounded, every delivery settled once.

Unit level (a stand-in for nats-py's `Msg`); the real broker path is in test_transport.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import anyio
import pytest

from moot.runtime.nats._inbox import AckWindow, PendingAck, Replies, no_responders


@dataclass
class Msg:
    subject: str
    data: bytes = b'{"stream":"moot_tells","seq":1}'
    headers: dict[str, str] | None = field(default=None)


def delivery(n: int) -> PendingAck:
    return PendingAck(f"moot.tell.n.t.k{n}", b"{}", {"Nats-Msg-Id": str(n)}, envelope=n)


def window(size: int, timeout: float = 30.0) -> tuple[AckWindow, list[PendingAck]]:
    failed: list[PendingAck] = []
    return AckWindow("_INBOX.x.a", size, timeout, failed.append), failed


async def test_a_confirmed_delivery_gives_its_place_back() -> None:
    acks, failed = window(2)
    await acks.enter()
    reply_to = acks.add(delivery(1))
    assert acks.held == 1
    await acks.on_ack(Msg(reply_to))
    assert acks.held == 0
    assert not failed
    await acks.wait_empty()
    await acks.on_ack(Msg(reply_to))  # a duplicate ack settles nothing twice
    assert acks.held == 0
    assert not failed


@pytest.mark.parametrize(
    "reply",
    [
        Msg("", data=b'{"error":{"code":503,"description":"no space"}}'),
        Msg("", data=b"", headers={"Status": "503"}),
    ],
    ids=["stream error", "no stream"],
)
async def test_a_refused_delivery_is_handed_back_and_keeps_its_place(reply: Msg) -> None:
    acks, failed = window(2)
    await acks.enter()
    pending = delivery(1)
    reply.subject = acks.add(pending)
    await acks.on_ack(reply)
    assert failed == [pending]
    assert pending.attempts == 1
    assert acks.held == 1  # kept until the delivery is sent again or reported
    again = acks.add(pending)  # sent again: a new reply subject, counted as a second attempt
    assert again != reply.subject
    assert pending.attempts == 2
    await acks.on_ack(Msg(again))
    assert acks.held == 0
    assert failed == [pending]


async def test_an_ack_that_does_not_come_in_time_is_handed_back() -> None:
    failed = asyncio.Event()
    late: list[PendingAck] = []

    def on_failed(pending: PendingAck) -> None:
        late.append(pending)
        failed.set()

    acks = AckWindow("_INBOX.x.a", 4, 0.01, on_failed)
    await acks.enter()
    first = acks.add(delivery(1))
    await acks.enter()
    acks.add(delivery(2))
    await acks.on_ack(Msg(first))
    await failed.wait()
    assert [p.envelope for p in late] == [2]  # only the unconfirmed one
    await acks.on_ack(Msg(first))
    assert acks.held == 1


async def test_a_full_window_holds_the_next_publisher_until_a_place_frees() -> None:
    acks, _ = window(1)
    await acks.enter()
    reply_to = acks.add(delivery(1))
    entered = asyncio.Event()

    async def next_publisher() -> None:
        await acks.enter()
        entered.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(next_publisher)
        await anyio.wait_all_tasks_blocked()
        assert not entered.is_set()
        assert acks.held == 1
        await acks.on_ack(Msg(reply_to))
    assert entered.is_set()
    assert acks.held == 1


async def test_a_publisher_cancelled_while_waiting_leaves_no_place_taken() -> None:
    acks, _ = window(1)
    await acks.enter()
    reply_to = acks.add(delivery(1))
    waiting = asyncio.create_task(acks.enter())
    await anyio.wait_all_tasks_blocked()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await acks.on_ack(Msg(reply_to))
    assert acks.held == 0
    await acks.wait_empty()


async def test_closing_returns_every_unconfirmed_delivery() -> None:
    acks, _ = window(4)
    for n in range(3):
        await acks.enter()
        reply_to = acks.add(delivery(n))
    await acks.on_ack(Msg(reply_to))
    assert sorted(p.envelope for p in acks.abandon()) == [0, 1]


async def test_replies_are_matched_by_token_and_a_late_one_is_ignored() -> None:
    replies = Replies("_INBOX.x.r")
    first, future = replies.expect()
    second, other = replies.expect()
    assert first != second
    assert replies.subject == "_INBOX.x.r.*"
    await replies.on_reply(Msg(second, data=b"2"))
    assert other.result().data == b"2"
    assert not future.done()
    replies.forget(first)
    await replies.on_reply(Msg(first, data=b"1"))  # gave up on it: dropped
    assert not future.done()
    assert len(replies) == 0
    assert no_responders(Msg("", headers={"Status": "503"}))
    assert not no_responders(Msg(""))
