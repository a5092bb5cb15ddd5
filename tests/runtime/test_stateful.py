"""A hypothesis state machine drives random traffic and faults through one runtime.

After every step: accepted == handled + errored + dead_lettered + in_flight; each key has a single
live instance (a turn runs only on the key's newest instance, one turn at a time); no turn starts
on a key after `stop_agent`. Traffic races retire, idle passivation and full mailboxes. At the
end, after a graceful stop, nothing is in flight and every request got an answer (a result or a
typed error).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from rt_helpers import wait_all_tasks_blocked

from moot.runtime import (
    Agent,
    AgentContext,
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

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


@dataclass
class Job:
    behaviour: str  # "ok", "fail" or "block"
    gate: asyncio.Event


class Watch:
    """What the agents saw: the newest instance per key, turns in progress, stopped keys."""

    def __init__(self) -> None:
        self.newest: dict[AgentId, Flaky] = {}
        self.running: defaultdict[AgentId, int] = defaultdict(int)
        self.stopped: set[AgentId] = set()
        self.violations: list[str] = []
        self.live: defaultdict[AgentId, set[int]] = defaultdict(set)  # activated, not passivated

    def activated(self, agent: Flaky) -> None:
        self.newest[agent.id] = agent
        live = self.live[agent.id]
        live.add(id(agent))
        if len(live) > 1 and agent.id.type in RESUMING:  # nothing else drops an instance there
            self.violations.append(f"two live instances of {agent.id}")

    def turn_started(self, agent: Flaky) -> None:
        key = agent.id
        if self.newest.get(key) is not agent:
            self.violations.append(f"a turn on a second instance of {key}")
        if self.running[key]:
            self.violations.append(f"two turns at once on {key}")
        if key in self.stopped:
            self.violations.append(f"a turn on {key} after stop_agent")
        self.running[key] += 1


WATCH = Watch()


class Flaky(Agent):
    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        self.count = 0

    async def on_activate(self, state: Mapping[str, Any] | None) -> None:
        WATCH.activated(self)
        self.count = int(state["count"]) if state else 0

    async def on_passivate(self) -> dict[str, Any]:
        WATCH.live[self.id].discard(id(self))
        return {"count": self.count}

    @handler
    async def on_job(self, message: Job, ctx: Envelope) -> str:
        WATCH.turn_started(self)
        try:
            self.count += 1
            if message.behaviour == "fail":
                raise RuntimeError("injected")
            if message.behaviour == "block":
                await message.gate.wait()
            return "done"
        finally:
            WATCH.running[self.id] -= 1


TYPES = ("resume", "restart", "stop", "idle")
RESUMING = ("resume", "idle")  # supervisors that keep the instance: only passivation drops it
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
        self.rt.register("idle", Flaky, supervisor=Resume(), idle_timeout=1.0)
        global WATCH
        WATCH = Watch()
        for agent_type in TYPES:
            self.rt.subscribe(TypeSubscription("jobs", agent_type))
        self.requests: list[asyncio.Task[Any]] = []
        self.others: list[asyncio.Task[Any]] = []
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.gate = asyncio.Event()
        await self.rt.start()

    def pump(self) -> None:
        """Run the loop until every task is blocked, so each step's effects have landed."""
        self.loop.run_until_complete(wait_all_tasks_blocked())

    def step(self, ticks: int) -> None:
        """Let the loop run exactly `ticks` rounds: hypothesis picks where the next action
        lands among the tasks in progress (an interleaving to explore, not a wait)."""

        async def rounds() -> None:
            for _ in range(ticks):
                await asyncio.sleep(0)

        self.loop.run_until_complete(rounds())

    def in_loop(self, fn: Callable[[AgentId], None], agent_id: AgentId) -> None:
        """Call a synchronous runtime method from inside the event loop, as agents do."""

        async def call() -> None:
            fn(agent_id)

        self.loop.run_until_complete(call())

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
        agent_id = AgentId(agent_type, key)
        WATCH.stopped.add(agent_id)
        self.loop.run_until_complete(self.rt.stop_agent(agent_id))
        self.pump()

    @rule(agent_type=st.sampled_from(TYPES), key=st.sampled_from(KEYS))
    def retire(self, agent_type: str, key: str) -> None:
        self.in_loop(self.rt.retire, AgentId(agent_type, key))
        self.pump()

    @rule(
        agent_type=st.sampled_from(TYPES),
        key=st.sampled_from(KEYS),
        count=st.integers(1, 6),
        ticks=st.integers(0, 3),
    )
    def tell_a_burst_then_retire(self, agent_type: str, key: str, count: int, ticks: int) -> None:
        """More tells than the mailbox holds, so some wait for room while the key retires."""
        agent_id = AgentId(agent_type, key)
        for _ in range(count):
            self.others.append(self.loop.create_task(self.rt.tell(Job("ok", self.gate), agent_id)))
        self.step(ticks)
        self.in_loop(self.rt.retire, agent_id)
        self.pump()

    @invariant()
    def single_activation_and_no_turn_after_stop(self) -> None:
        assert not WATCH.violations, WATCH.violations

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
            left = {k: v for k, v in WATCH.live.items() if v and k.type in RESUMING}
            assert not left, f"stop() did not passivate {left}"
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
