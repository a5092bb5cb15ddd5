"""Supervision of tell/publish failures: resume, restart (with a budget), stop, escalate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from rt_helpers import assert_balanced

from moot.runtime import (
    Agent,
    AgentContext,
    AgentId,
    AgentStoppedError,
    DeadLetterReason,
    Envelope,
    Escalate,
    Restart,
    RestartBudgetExceededError,
    Resume,
    Runtime,
    Stop,
    SupervisionError,
    SupervisorStrategy,
    handler,
)
from moot.testing import ManualClock


@dataclass
class Add:
    n: int


@dataclass
class Crash:
    pass


@dataclass
class Total:
    pass


class Counter(Agent):
    builds = 0

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        Counter.builds += 1
        self.total = 0

    @handler
    async def on_add(self, message: Add, ctx: Envelope) -> None:
        self.total += message.n

    @handler
    async def on_crash(self, message: Crash, ctx: Envelope) -> None:
        raise RuntimeError("crashed")

    @handler
    async def on_total(self, message: Total, ctx: Envelope) -> int:
        return self.total


C = AgentId("counter", "1")


async def _run(strategy: SupervisorStrategy, clock: ManualClock | None = None) -> Runtime:
    Counter.builds = 0
    rt = Runtime(clock=clock)
    rt.register("counter", Counter, supervisor=strategy)
    await rt.start()
    return rt


async def test_resume_keeps_the_instance_and_its_state() -> None:
    rt = await _run(Resume())
    await rt.tell(Add(2), C)
    await rt.tell(Crash(), C)
    await rt.tell(Add(3), C)
    assert await rt.send(Total(), C) == 5
    assert Counter.builds == 1
    assert rt.dead_letters.counts[DeadLetterReason.HANDLER_FAILED] == 1
    assert isinstance(rt.dead_letters.recent[-1].error, RuntimeError)
    assert_balanced(rt)
    await rt.stop()


async def test_restart_rebuilds_from_the_factory() -> None:
    rt = await _run(Restart())
    await rt.tell(Add(2), C)
    await rt.tell(Crash(), C)
    await rt.tell(Add(3), C)
    assert await rt.send(Total(), C) == 3
    assert Counter.builds == 2
    await rt.stop()


async def test_restart_budget_exceeded_escalates_typed() -> None:
    clock = ManualClock()
    seen: list[SupervisionError] = []
    Counter.builds = 0
    rt = Runtime(clock=clock, on_escalation=seen.append)
    rt.register("counter", Counter, supervisor=Restart(max_restarts=2, period=10))
    await rt.__aenter__()
    for _ in range(2):
        await rt.tell(Crash(), C)
        await rt.send(Total(), C)
    clock.advance(11)  # the old restarts leave the window
    for _ in range(2):
        await rt.tell(Crash(), C)
        await rt.send(Total(), C)
    await rt.tell(Crash(), C)
    with pytest.raises(AgentStoppedError):
        await rt.send(Total(), C)
    with pytest.raises(RestartBudgetExceededError) as info:
        await rt.__aexit__(None, None, None)
    assert info.value.agent_id == C
    assert info.value.restarts == 2
    assert isinstance(info.value.__cause__, RuntimeError)
    assert seen == [info.value]


async def test_stop_fails_queued_requests_and_refuses_later_ones() -> None:
    rt = await _run(Stop())
    await rt.tell(Crash(), C)
    queued = asyncio.create_task(rt.send(Total(), C))
    with pytest.raises(AgentStoppedError):
        await queued
    with pytest.raises(AgentStoppedError):
        await rt.send(Total(), C)
    assert_balanced(rt)
    await rt.stop()


async def test_escalate_stops_and_surfaces_at_exit() -> None:
    rt = await _run(Escalate())
    await rt.tell(Crash(), C)
    await rt.tell(Add(1), C)
    with pytest.raises(AgentStoppedError):
        await rt.send(Total(), C)
    assert rt.dead_letters.counts[DeadLetterReason.AGENT_STOPPED] == 1
    assert_balanced(rt)
    with pytest.raises(SupervisionError, match="escalated"):
        await rt.__aexit__(None, None, None)


async def test_failing_factory_is_reported_to_the_caller() -> None:
    def factory(ctx: AgentContext) -> Agent:
        raise OSError("no config")

    async with Runtime() as rt:
        rt.register("broken", factory, supervisor=Resume())
        from moot.runtime import HandlerError

        with pytest.raises(HandlerError) as info:
            await rt.send(Total(), AgentId("broken", "1"))
        assert isinstance(info.value.__cause__, OSError)
