"""Races and overruns an attack run found: a second live instance of a key, turns after
`stop_agent`, deadlines that the inline path overran, and a `stop()` that never returned."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from rt_helpers import Ping, assert_balanced, wait_all_tasks_blocked

from moot.runtime import (
    Agent,
    AgentContext,
    AgentId,
    DeadlineExceededError,
    Envelope,
    InMemoryStateStore,
    ManualClock,
    Runtime,
    RuntimeStoppedError,
    handler,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

K = AgentId("counter", "k")


@dataclass
class Add:
    gate: asyncio.Event | None = None  # the handler waits on it (to keep the mailbox full)


class Counter(Agent):
    """Counts `Add`s into its saved state; records which instances are live."""

    live: set[int] = set()  # noqa: RUF012 (reset per test)
    activations = 0

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        self.count = 0

    async def on_activate(self, state: Mapping[str, Any] | None) -> None:
        type(self).activations += 1
        type(self).live.add(id(self))
        assert len(type(self).live) == 1, "a second live instance"
        self.count = int(state["count"]) if state else 0

    async def on_passivate(self) -> dict[str, Any]:
        type(self).live.discard(id(self))
        return {"count": self.count}

    @handler
    async def on_add(self, message: Add, ctx: Envelope) -> int:
        if message.gate is not None:
            await message.gate.wait()
        self.count += 1
        return self.count


@pytest.fixture
def store() -> InMemoryStateStore:
    Counter.live = set()
    Counter.activations = 0
    return InMemoryStateStore()


async def _fill_then_retire(rt: Runtime) -> None:
    """One Add blocks the live instance, one fills the mailbox (capacity 1), four wait for
    room; then the key retires and the blocked Add is released."""
    gate = asyncio.Event()
    await rt.send(Add(), K)  # live and idle
    first = asyncio.create_task(rt.tell(Add(gate), K))
    await wait_all_tasks_blocked()
    waiting = [asyncio.create_task(rt.tell(Add(), K)) for _ in range(4)]
    await wait_all_tasks_blocked()
    rt.retire(K)
    gate.set()
    await asyncio.gather(first, *waiting)
    await wait_all_tasks_blocked()


async def _idle_passivation_between_tells(rt: Runtime, clock: ManualClock) -> None:
    """The reaper queues the passivation of the idle key; in the same loop round, before the
    key's drain task starts, four tells arrive and wait for room (capacity 1)."""
    await rt.send(Add(), K)  # live, then idle from t=0: due for passivation at t=5
    await rt.send(Add(), K)
    await wait_all_tasks_blocked()
    tells: list[asyncio.Task[None]] = []

    def tell_four() -> None:  # runs right after the reaper's timer, in the same advance()
        tells.extend(asyncio.create_task(rt.tell(Add(), K)) for _ in range(4))

    clock.call_at(5.0, tell_four)
    clock.advance(5.0)
    await wait_all_tasks_blocked()
    await asyncio.gather(*tells)
    await wait_all_tasks_blocked()


@pytest.mark.parametrize("retire", [True, False], ids=["retire", "idle-passivation"])
async def test_a_tell_waiting_for_room_while_the_key_passivates_keeps_one_instance(
    store: InMemoryStateStore, retire: bool
) -> None:
    clock = ManualClock()
    rt = Runtime(clock=clock, state_store=store, default_mailbox_capacity=1)
    rt.register("counter", Counter, idle_timeout=None if retire else 5.0)
    async with rt:
        if retire:
            await _fill_then_retire(rt)
        else:
            await _idle_passivation_between_tells(rt, clock)
        assert await rt.send(Add(), K) == 7  # no update lost to a second instance
        await rt.stop_agent(K)  # reaches the one instance, which saves its state
    assert Counter.live == set()
    assert await store.load(K) == {"count": 7}
    assert_balanced(rt)


async def test_no_turn_starts_after_stop_agent(store: InMemoryStateStore) -> None:
    clock = ManualClock()
    rt = Runtime(clock=clock, state_store=store, default_mailbox_capacity=1)
    rt.register("counter", Counter)
    async with rt:
        await _fill_then_retire(rt)
        turns = Counter.activations
        await rt.stop_agent(K)
        await wait_all_tasks_blocked()
        assert Counter.activations == turns
        assert Counter.live == set()  # the stopped key has no instance left anywhere


@dataclass
class Stubborn:
    """How the handler meets its cancellation: "once" swallows it and carries on, "slow"
    cleans up until `cleanup` is set, "always" swallows every one until `cleanup` is set."""

    mode: str
    cleanup: asyncio.Event
    started: asyncio.Event


class Holdout(Agent):
    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> int:
        return message.n

    @handler
    async def on_stubborn(self, message: Stubborn, ctx: Envelope) -> str:
        message.started.set()
        if message.mode == "always":
            while not message.cleanup.is_set():
                try:
                    await message.cleanup.wait()
                except asyncio.CancelledError:
                    continue
            return "finished anyway"
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if message.mode == "slow":
                await message.cleanup.wait()
                raise
        await message.cleanup.wait()  # swallowed: carries on as if nothing happened
        return "finished anyway"


H = AgentId("holdout", "h")


@pytest.mark.parametrize("mode", ["once", "slow"], ids=["swallows-cancel", "slow-cleanup"])
async def test_the_inline_path_answers_at_the_deadline(mode: str) -> None:
    clock = ManualClock()
    rt = Runtime(clock=clock)
    rt.register("holdout", Holdout)
    async with rt:
        await rt.send(Ping(1), H)  # live and idle: the next send runs inline
        message = Stubborn(mode, asyncio.Event(), asyncio.Event())
        call = asyncio.create_task(rt.send(message, H, timeout=0.5))
        await message.started.wait()
        await wait_all_tasks_blocked()
        clock.advance(0.5)
        await wait_all_tasks_blocked()
        assert call.done(), "the caller is still held by the handler after its deadline"
        with pytest.raises(DeadlineExceededError):
            call.result()
        message.cleanup.set()
        assert await rt.send(Ping(2), H) == 2  # the key works on
    assert_balanced(rt)


async def test_stop_honours_its_timeout_and_reports_abandoned_turns() -> None:
    rt = Runtime()
    rt.register("holdout", Holdout)
    message = Stubborn("always", asyncio.Event(), asyncio.Event())
    async with rt:
        await rt.tell(message, H)  # a drain task runs it
        await message.started.wait()
        call = asyncio.create_task(rt.send(Ping(3), H))
        await wait_all_tasks_blocked()
        abandoned = await rt.stop(timeout=0.01)  # waits on the loop's timer, not a sleep
        assert abandoned == (H,)
        with pytest.raises(RuntimeStoppedError):
            await call
        message.cleanup.set()
        await wait_all_tasks_blocked()
    s = rt.statistics()
    assert s.accepted == s.handled + s.errored + s.dead_lettered + s.in_flight, s
