"""Request/response: results, typed errors, deadlines, cancellation, backpressure, ordering."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from rt_helpers import Block, Boom, Ping, Worker, assert_balanced, wait_all_tasks_blocked

from moot.runtime import (
    Agent,
    AgentId,
    AgentNotFoundError,
    DeadlineExceededError,
    Envelope,
    HandlerError,
    InvalidIdError,
    MailboxFullError,
    NoHandlerError,
    Runtime,
    RuntimeStoppedError,
    handler,
)
from moot.testing import ManualClock

W = AgentId("worker", "a")


async def test_send_returns_the_handler_result(runtime: Runtime) -> None:
    assert await runtime.send(Ping(1), W) == 2
    assert runtime.is_active(W)
    assert_balanced(runtime)
    assert runtime.statistics().handled == 1


async def test_handler_exception_comes_back_typed_with_its_cause(runtime: Runtime) -> None:
    with pytest.raises(HandlerError) as info:
        await runtime.send(Boom("bad input"), W)
    assert info.value.agent_id == W
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "bad input"
    assert await runtime.send(Ping(5), W) == 6  # a failed request does not stop the agent
    assert runtime.statistics().errored == 1
    assert_balanced(runtime)


async def test_no_handler_is_a_typed_error_for_the_sender(runtime: Runtime) -> None:
    with pytest.raises(NoHandlerError, match="no handler for str"):
        await runtime.send("text", W)
    assert_balanced(runtime)


async def test_unknown_agent_type_and_bad_ids_are_rejected(runtime: Runtime) -> None:
    with pytest.raises(AgentNotFoundError) as info:
        await runtime.send(Ping(1), AgentId("ghost", "1"))
    assert info.value.agent_id == AgentId("ghost", "1")
    with pytest.raises(InvalidIdError):
        await runtime.send(Ping(1), "worker/a")  # type: ignore[arg-type]
    assert runtime.statistics().rejected == 2
    assert runtime.statistics().accepted == 0


async def test_deadline_fails_the_caller_and_cancels_the_handler(
    runtime: Runtime, clock: ManualClock
) -> None:
    block = Block(gate=asyncio.Event())
    call = asyncio.create_task(runtime.send(block, W, timeout=2.0))
    await block.started.wait()
    clock.advance(1.9)
    await wait_all_tasks_blocked()
    assert not call.done()
    clock.advance(0.2)
    with pytest.raises(DeadlineExceededError) as info:
        await call
    assert isinstance(info.value, TimeoutError)
    assert info.value.agent_id == W
    assert await runtime.send(Ping(1), W) == 2  # the turn ended; the agent goes on
    assert block.cancelled == [True]
    assert_balanced(runtime)


async def test_cancelling_the_caller_cancels_the_handler(runtime: Runtime) -> None:
    block = Block(gate=asyncio.Event())
    call = asyncio.create_task(runtime.send(block, W))
    await block.started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await runtime.send(Ping(1), W) == 2
    assert block.cancelled == [True]
    assert_balanced(runtime)
    assert runtime.statistics().in_flight == 0


async def test_cancelled_while_queued_is_skipped_not_run(runtime: Runtime) -> None:
    gate = asyncio.Event()
    first = Block(gate=gate)
    queued = Block(gate=gate)
    running = asyncio.create_task(runtime.send(first, W))
    await first.started.wait()
    waiting = asyncio.create_task(runtime.send(queued, W))
    await wait_all_tasks_blocked()
    waiting.cancel()
    gate.set()
    assert await running == "released"
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await runtime.send(Ping(0), W)
    assert not queued.started.is_set()
    assert_balanced(runtime)


async def test_fail_fast_on_a_full_mailbox_and_waiting_backpressure(runtime: Runtime) -> None:
    gate = asyncio.Event()
    first = Block(gate=gate)
    busy = asyncio.create_task(runtime.send(first, W))
    await first.started.wait()
    queued = [asyncio.create_task(runtime.send(Ping(i), W)) for i in range(4)]
    await wait_all_tasks_blocked()
    with pytest.raises(MailboxFullError):
        await runtime.send(Ping(99), W, fail_fast=True)
    waiter = asyncio.create_task(runtime.send(Ping(4), W))
    await wait_all_tasks_blocked()
    stats = runtime.mailbox_statistics(W)
    assert stats is not None
    assert (stats.depth, stats.capacity, stats.waiting_senders) == (4, 4, 1)
    gate.set()
    assert await busy == "released"
    assert [await q for q in queued] == [1, 2, 3, 4]
    assert await waiter == 5
    assert_balanced(runtime)


async def test_one_message_at_a_time_in_arrival_order() -> None:
    active = 0
    peak = 0
    order: list[int] = []

    class Serial(Agent):
        @handler
        async def on_ping(self, message: Ping, ctx: Envelope) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0)
            order.append(message.n)
            active -= 1

    async with Runtime() as rt:
        rt.register("serial", Serial)
        await asyncio.gather(*(rt.send(Ping(i), AgentId("serial", "1")) for i in range(50)))
    assert peak == 1
    assert order == list(range(50))


async def test_each_key_is_its_own_instance(runtime: Runtime) -> None:
    await runtime.send(Ping(1), AgentId("worker", "x"))
    await runtime.send(Ping(2), AgentId("worker", "y"))
    assert Worker.built == 2


async def test_send_outside_running_state_is_refused() -> None:
    rt = Runtime()
    rt.register("worker", Worker)
    with pytest.raises(RuntimeStoppedError, match="created"):
        await rt.send(Ping(1), W)
    async with rt:
        assert await rt.send(Ping(1), W) == 2
    with pytest.raises(RuntimeStoppedError, match="stopped"):
        await rt.send(Ping(1), W)


@dataclass
class Chain:
    hops: int


async def test_nested_sends_carry_correlation_and_deadline() -> None:
    seen: list[tuple[str, float | None]] = []

    class Relay(Agent):
        @handler
        async def on_chain(self, message: Chain, ctx: Envelope) -> int:
            seen.append((ctx.correlation_id, ctx.deadline))
            if message.hops == 0:
                return 0
            nxt = AgentId("relay", str(message.hops - 1))
            result: int = await self.context.send(Chain(message.hops - 1), nxt)
            return result + 1

    clock = ManualClock()
    async with Runtime(clock=clock) as rt:
        rt.register("relay", Relay)
        assert await rt.send(Chain(3), AgentId("relay", "3"), timeout=10) == 3
    assert len({c for c, _ in seen}) == 1
    assert {d for _, d in seen} == {10.0}


async def test_an_idle_live_agent_runs_the_turn_in_the_callers_task(runtime: Runtime) -> None:
    """After activation, a send to an idle agent takes the inline path: same results, errors,
    causes and deadlines as the mailbox path."""
    assert await runtime.send(Ping(1), W) == 2  # activates through a drain task
    before = Worker.built
    assert [await runtime.send(Ping(i), W) for i in range(40)] == list(range(1, 41))
    with pytest.raises(HandlerError) as info:
        await runtime.send(Boom("inline"), W)
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(NoHandlerError):
        await runtime.send(3.5, W)
    assert Worker.built == before
    assert_balanced(runtime)


async def test_a_send_while_the_drain_task_lingers_runs_inline_one_turn_at_a_time(
    runtime: Runtime,
) -> None:
    """The drain task waits one tick before it ends; a send in that tick takes the cell over
    and runs in the caller's task. The lingering task then ends without touching the cell, and
    a tell queued meanwhile waits for the inline turn and is handled after it."""
    block = Block(gate=asyncio.Event())

    async def activate_then_block() -> str:
        assert await runtime.send(Ping(1), W) == 2  # activates through a drain task ...
        result: str = await runtime.send(block, W)  # ... which still lingers at this send
        return result

    blocked = asyncio.ensure_future(activate_then_block())
    await block.started.wait()
    cell = runtime._actors[W]
    running: object = cell.task
    assert running is blocked  # the caller's own task runs the turn
    await runtime.tell(Ping(7), W)  # queued behind the running turn
    await wait_all_tasks_blocked()
    still: object = cell.task
    assert still is blocked
    block.gate.set()
    assert await blocked == "released"
    assert await runtime.send(Ping(8), W) == 9
    agent = cell.agent
    assert isinstance(agent, Worker)
    assert agent.seen == [1, 7, 8]
    assert_balanced(runtime)


@dataclass
class Relay:
    left: int


class Link(Agent):
    """Passes a relay on to the next key; never suspends on its own."""

    turns = 0
    halfway: asyncio.Event | None = None  # set once `turns` reaches 100

    @handler
    async def on_relay(self, message: Relay, ctx: Envelope) -> int:
        Link.turns += 1
        if Link.turns == 100 and Link.halfway is not None:
            Link.halfway.set()
        if message.left == 0:
            return 0
        nxt = AgentId("link", str(int(self.id.key) + 1))
        result: int = await self.context.send(Relay(message.left - 1), nxt)
        return result + 1


async def test_a_long_synchronous_chain_neither_overflows_nor_blocks_a_cancel() -> None:
    """Inline turns nest only so deep (then a mailbox hop starts a fresh stack), and they yield
    now and then, so a chain of handlers that never suspend cannot monopolise the loop."""
    async with Runtime() as rt:
        rt.register("link", Link)
        keys = 3000
        for k in range(keys + 1):  # activate every key, so the chain can take the inline path
            await rt.send(Relay(0), AgentId("link", str(k)))
        assert await rt.send(Relay(keys), AgentId("link", "0")) == keys
        Link.turns = 0
        Link.halfway = asyncio.Event()
        chain = asyncio.create_task(rt.send(Relay(keys), AgentId("link", "0")))
        await Link.halfway.wait()  # runs only because the chain yields now and then
        chain.cancel()
        with pytest.raises(asyncio.CancelledError):
            await chain
        assert 0 < Link.turns < keys
        await wait_all_tasks_blocked()  # the hops the cancel reached unwind in their own tasks
        assert rt.statistics().in_flight == 0
        assert_balanced(rt)
