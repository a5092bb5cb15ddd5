"""The bounded mailbox: order, capacity, waiting senders, deadlines, closing."""

from __future__ import annotations

import asyncio

import pytest
from rt_helpers import wait_all_tasks_blocked

from moot.runtime import (
    AgentId,
    AgentStoppedError,
    DeadlineExceededError,
    Mailbox,
    MailboxFullError,
)
from moot.testing import ManualClock

ID = AgentId("box", "1")


def test_fifo_and_fail_fast_when_full() -> None:
    box: Mailbox[int] = Mailbox(2, ID)
    box.put_nowait(1)
    box.put_nowait(2)
    with pytest.raises(MailboxFullError) as info:
        box.put_nowait(3)
    assert info.value.agent_id == ID
    assert box.statistics().depth == 2
    assert [box.get_nowait(), box.get_nowait(), box.get_nowait()] == [1, 2, None]


def test_on_ready_fires_only_when_becoming_non_empty() -> None:
    calls: list[int] = []
    box: Mailbox[int] = Mailbox(5, ID, lambda: calls.append(len(box)))
    box.put_nowait(1)
    box.put_nowait(2)
    assert calls == [1]
    box.get_nowait()
    box.get_nowait()
    assert box.try_put(3)
    assert calls == [1, 1]


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Mailbox(0, ID)


async def test_waiting_sender_gets_room_in_order() -> None:
    box: Mailbox[int] = Mailbox(1, ID)
    box.put_nowait(0)
    first = asyncio.create_task(box.put(1))
    second = asyncio.create_task(box.put(2))
    await wait_all_tasks_blocked()
    assert box.statistics().waiting_senders == 2
    assert box.get_nowait() == 0
    await first
    assert not second.done()
    assert box.get_nowait() == 1
    await second
    assert box.get_nowait() == 2


async def test_waiting_sender_deadline_uses_the_clock() -> None:
    clock = ManualClock()
    box: Mailbox[int] = Mailbox(1, ID, clock=clock)
    box.put_nowait(0)
    waiting = asyncio.create_task(box.put(1, deadline=5.0))
    await wait_all_tasks_blocked()
    clock.advance(4.9)
    await wait_all_tasks_blocked()
    assert not waiting.done()
    clock.advance(0.2)
    with pytest.raises(DeadlineExceededError):
        await waiting
    assert box.statistics().waiting_senders == 0


async def test_close_fails_waiters_and_returns_leftovers() -> None:
    box: Mailbox[int] = Mailbox(1, ID)
    box.put_nowait(7)
    waiting = asyncio.create_task(box.put(8))
    await wait_all_tasks_blocked()
    assert box.close() == [7]
    with pytest.raises(AgentStoppedError):
        await waiting
    with pytest.raises(AgentStoppedError):
        box.put_nowait(9)
    assert not box.try_put(9)
