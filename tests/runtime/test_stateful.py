"""A hypothesis state machine drives random traffic and faults through one runtime.

After every step: accepted == handled + errored + dead_lettered + in_flight. At the end, after a
graceful stop, nothing is in flight and every request got an answer (a result or a typed error).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from moot.runtime import (
    Agent,
    AgentId,
    Envelope,
    MootError,
    Restart,
    Resume,
    Runtime,
    Stop,
    TopicId,
    TypeSubscription,
    handler,
)
from moot.testing import ManualClock


@dataclass
class Job:
    behaviour: str  # "ok", "fail" or "block"
    gate: asyncio.Event


class Flaky(Agent):
    @handler
    async def on_job(self, message: Job, ctx: Envelope) -> str:
        if message.behaviour == "fail":
            raise RuntimeError("injected")
        if message.behaviour == "block":
            await message.gate.wait()
        return "done"


TYPES = ("resume", "restart", "stop")
KEYS = ("a", "b")
BEHAVIOURS = ("ok", "fail", "block")


class RuntimeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.rt = Runtime(clock=self.clock, default_mailbox_capacity=3)
        self.rt.register("resume", Flaky, supervisor=Resume())
        self.rt.register("restart", Flaky, supervisor=Restart(max_restarts=2, period=5))
        self.rt.register("stop", Flaky, supervisor=Stop())
        for agent_type in TYPES:
            self.rt.subscribe(TypeSubscription("jobs", agent_type))
        self.requests: list[asyncio.Task[Any]] = []
        self.others: list[asyncio.Task[Any]] = []
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.gate = asyncio.Event()
        await self.rt.start()

    def pump(self) -> None:
        async def ticks() -> None:
            for _ in range(8):
                await asyncio.sleep(0)

        self.loop.run_until_complete(ticks())

    @rule(
        agent_type=st.sampled_from(TYPES),
        key=st.sampled_from(KEYS),
        behaviour=st.sampled_from(BEHAVIOURS),
        timeout=st.none() | st.floats(0.5, 5),
        fail_fast=st.booleans(),
    )
    def send(
        self, agent_type: str, key: str, behaviour: str, timeout: float | None, fail_fast: bool
    ) -> None:
        call = self.rt.send(
            Job(behaviour, self.gate),
            AgentId(agent_type, key),
            timeout=timeout,
            fail_fast=fail_fast,
        )
        self.requests.append(self.loop.create_task(call))
        self.pump()

    @rule(
        agent_type=st.sampled_from(TYPES),
        key=st.sampled_from(KEYS),
        behaviour=st.sampled_from(BEHAVIOURS),
        fail_fast=st.booleans(),
    )
    def tell(self, agent_type: str, key: str, behaviour: str, fail_fast: bool) -> None:
        call = self.rt.tell(
            Job(behaviour, self.gate), AgentId(agent_type, key), fail_fast=fail_fast
        )
        self.others.append(self.loop.create_task(call))
        self.pump()

    @rule(key=st.sampled_from(KEYS), behaviour=st.sampled_from(BEHAVIOURS), fail_fast=st.booleans())
    def publish(self, key: str, behaviour: str, fail_fast: bool) -> None:
        call = self.rt.publish(Job(behaviour, self.gate), TopicId("jobs", key), fail_fast=fail_fast)
        self.others.append(self.loop.create_task(call))
        self.pump()

    @precondition(lambda self: any(not t.done() for t in self.requests))
    @rule(data=st.data())
    def cancel_a_request(self, data: st.DataObject) -> None:
        pending = [t for t in self.requests if not t.done()]
        data.draw(st.sampled_from(pending)).cancel()
        self.pump()

    @rule()
    def release_blocked_handlers(self) -> None:
        self.gate.set()
        self.gate = asyncio.Event()
        self.pump()

    @rule(seconds=st.floats(0.1, 6))
    def advance_time(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pump()

    @rule(agent_type=st.sampled_from(TYPES), key=st.sampled_from(KEYS))
    def stop_an_agent(self, agent_type: str, key: str) -> None:
        self.loop.run_until_complete(self.rt.stop_agent(AgentId(agent_type, key)))
        self.pump()

    @invariant()
    def accepted_is_accounted_for(self) -> None:
        s = self.rt.statistics()
        assert s.accepted == s.handled + s.errored + s.dead_lettered + s.in_flight, s
        assert s.in_flight >= 0

    def teardown(self) -> None:
        try:
            self.gate.set()
            self.loop.run_until_complete(self.rt.stop(timeout=0.05))
            everything = self.requests + self.others
            if everything:
                self.loop.run_until_complete(asyncio.wait(everything, timeout=5))
            assert all(t.done() for t in everything), "a caller was left waiting"
            for task in self.requests:
                if not task.cancelled():
                    error = task.exception()
                    assert error is None or isinstance(error, MootError), repr(error)
            for task in self.others:
                if not task.cancelled():
                    error = task.exception()
                    assert error is None or isinstance(error, MootError), repr(error)
            s = self.rt.statistics()
            assert s.in_flight == 0, s
            assert s.accepted == s.handled + s.errored + s.dead_lettered, s
        finally:
            self.loop.close()


RuntimeMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRuntimeStateMachine = RuntimeMachine.TestCase
