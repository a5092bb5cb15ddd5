"""Races and overruns an attack run found: a second live instance of a key, turns after
`stop_agent`, deadlines that the inline path overran, and a `stop()` that never returned."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
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
    HandlerError,
    InMemoryStateStore,
    Runtime,
    RuntimeStoppedError,
    SendCycleError,
    SerializationError,
    handler,
)
from moot.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Mapping

K = AgentId("counter", "k")
W = AgentId("worker", "w")


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


# --------------------------------------------------------------------------- inputs at the door


@dataclass
class Carrier:
    payload: Any


class Taker(Agent):
    """Receives anything; records what arrived."""

    got: list[Any] = []  # noqa: RUF012 (reset per test)

    @handler
    async def on_carrier(self, message: Carrier, ctx: Envelope) -> None:
        type(self).got.append(message.payload)


def _numbers() -> Iterator[int]:
    yield from (1, 2, 3)


@pytest.mark.parametrize(
    "payload",
    [
        float("nan"),
        float("inf"),
        [1.0, {"x": float("-inf")}],
        _numbers(),
        iter([1, 2]),
        {(1, 2): "tuple key"},
        {1: "int key"},
    ],
    ids=["nan", "inf", "nested-inf", "generator", "iterator", "tuple-key", "int-key"],
)
async def test_require_serializable_refuses_what_a_wire_would_change(payload: Any) -> None:
    Taker.got = []
    async with Runtime(require_serializable=True) as rt:
        rt.register("taker", Taker)
        with pytest.raises(SerializationError):
            await rt.send(Carrier(payload), AgentId("taker", "t"))
        with pytest.raises(SerializationError):
            await rt.tell(Carrier(payload), AgentId("taker", "t"))
        assert rt.statistics().rejected == 2
        assert Taker.got == []
    if isinstance(payload, Iterator):
        assert next(payload) == 1  # the check did not drain it


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
async def test_a_send_without_time_left_is_refused_before_the_handler_runs(
    runtime: Runtime, timeout: float
) -> None:
    await runtime.send(Ping(1), W)  # live and idle: would run inline
    seen = await runtime.send(Ping(0), W)
    with pytest.raises(DeadlineExceededError, match="must be positive"):
        await runtime.send(Ping(5), W, timeout=timeout)
    assert await runtime.send(Ping(0), W) == seen  # Ping(5) never reached the handler
    assert runtime.statistics().rejected == 1
    assert_balanced(runtime)


@dataclass
class Relay:
    """Ask the next agent in `path` to relay the rest, then answer with what came back."""

    path: tuple[str, ...]


class Hop(Agent):
    @handler
    async def on_relay(self, message: Relay, ctx: Envelope) -> str:
        if not message.path:
            return self.id.key
        nxt, rest = message.path[0], message.path[1:]
        answer: str = await self.context.send(Relay(rest), AgentId("hop", nxt))
        return answer


@pytest.mark.parametrize(
    ("path", "cycle"),
    [(("b", "a"), "hop/a -> hop/b -> hop/a"), (("a",), "hop/a -> hop/a")],
    ids=["a-b-a", "self"],
)
async def test_a_send_cycle_without_a_deadline_fails_typed_instead_of_hanging(
    path: tuple[str, ...], cycle: str
) -> None:
    async with Runtime() as rt:
        rt.register("hop", Hop)
        with pytest.raises(HandlerError) as caught:
            await rt.send(Relay(path), AgentId("hop", "a"))
        error = caught.value.__cause__
        while isinstance(error, HandlerError):
            error = error.__cause__
        assert isinstance(error, SendCycleError)
        assert " -> ".join(map(str, error.cycle)) == cycle
        assert await rt.send(Relay(("b", "c")), AgentId("hop", "a")) == "c"  # a chain is fine
    assert_balanced(rt)


_INTERRUPT_SCRIPT = """
import asyncio, sys
from dataclasses import dataclass
from moot.runtime import Agent, AgentId, Envelope, Runtime, handler

@dataclass
class Quit:
    kind: str

class Quitter(Agent):
    @handler
    async def on_quit(self, message: Quit, ctx: Envelope) -> str:
        await asyncio.sleep(0)
        if message.kind == "warm":
            return "warm"
        if message.kind == "interrupt":
            raise KeyboardInterrupt
        raise SystemExit(3)

async def main(path: str, kind: str) -> None:
    async with Runtime() as rt:
        rt.register("quitter", Quitter)
        if path == "inline":
            await rt.send(Quit("warm"), AgentId("quitter", "q"))  # live and idle
        try:
            await rt.send(Quit(kind), AgentId("quitter", "q"))
        except BaseException as exc:
            print("caller saw", type(exc).__name__, flush=True)
            raise

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("path", ["mailbox", "inline"])
@pytest.mark.parametrize(
    ("kind", "name", "code"),
    [("interrupt", "KeyboardInterrupt", None), ("exit", "SystemExit", 3)],
)
async def test_keyboard_interrupt_and_system_exit_in_a_handler_propagate(
    path: str, kind: str, name: str, code: int | None
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _INTERRUPT_SCRIPT,
        path,
        kind,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    assert out.decode().splitlines() == [f"caller saw {name}"], err.decode()
    if code is None:
        assert child.returncode != 0  # the process ends with the interrupt, never exit 0
    else:
        assert child.returncode == code
