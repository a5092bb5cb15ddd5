"""Lifecycle, graceful stop, passivation with state, interceptors, serialization checks."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from rt_helpers import Block, Ping, Worker, assert_balanced, wait_all_tasks_blocked

from moot.runtime import (
    Agent,
    AgentId,
    DeadLetterReason,
    DropMessage,
    Envelope,
    Handler,
    InMemoryStateStore,
    Interceptor,
    LifecycleError,
    MessageCodec,
    MessageDroppedError,
    RegistrationError,
    Runtime,
    RuntimeState,
    RuntimeStoppedError,
    SerializationError,
    UnknownMessageTypeError,
    handler,
)
from moot.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import Mapping

W = AgentId("worker", "a")


async def test_illegal_transitions_read_as_sentences() -> None:
    rt = Runtime()
    await rt.start()
    with pytest.raises(LifecycleError, match="already running"):
        await rt.start()
    await rt.stop()
    await rt.stop()  # idempotent
    assert rt.state is RuntimeState.STOPPED
    with pytest.raises(LifecycleError, match=r"Cannot start a runtime that has been stopped\."):
        await rt.start()


def test_registration_errors() -> None:
    rt = Runtime()
    rt.register("worker", Worker)
    with pytest.raises(RegistrationError, match="already registered"):
        rt.register("worker", Worker)
    with pytest.raises(RegistrationError, match="mailbox_capacity"):
        rt.register("other", Worker, mailbox_capacity=0)
    with pytest.raises(RegistrationError, match="idle_timeout"):
        rt.register("third", Worker, idle_timeout=0)
    with pytest.raises(RegistrationError, match="async def"):

        class Bad(Agent):
            @handler  # type: ignore[type-var]
            def on_ping(self, message: Ping, ctx: Envelope) -> None: ...


async def test_graceful_stop_drains_then_cancels_and_answers_everyone() -> None:
    rt = Runtime()
    rt.register("worker", Worker)
    await rt.start()
    assert await rt.send(Ping(1), W) == 2
    block = Block(gate=asyncio.Event())
    stuck = asyncio.create_task(rt.send(block, W))
    await block.started.wait()
    behind = asyncio.create_task(rt.send(Ping(2), W))
    await rt.tell(Ping(3), W)
    await wait_all_tasks_blocked()
    await rt.stop(timeout=0.01)
    with pytest.raises(RuntimeStoppedError):
        await stuck
    with pytest.raises(RuntimeStoppedError):
        await behind
    assert block.cancelled == [True]
    stats = rt.statistics()
    assert stats.in_flight == 0
    assert rt.dead_letters.counts[DeadLetterReason.RUNTIME_STOPPING] == 1
    assert_balanced(rt)


class Memo(Agent):
    activations: list[Mapping[str, Any] | None] = []  # noqa: RUF012

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.items: list[int] = []

    async def on_activate(self, state: Mapping[str, Any] | None) -> None:
        Memo.activations.append(state)
        if state:
            self.items = list(state["items"])

    async def on_passivate(self) -> Mapping[str, Any] | None:
        return {"items": self.items}

    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> list[int]:
        self.items.append(message.n)
        return self.items


async def test_idle_agents_passivate_and_come_back_with_their_state() -> None:
    Memo.activations = []
    clock = ManualClock()
    store = InMemoryStateStore()
    m = AgentId("memo", "1")
    async with Runtime(clock=clock, state_store=store) as rt:
        rt.register("memo", Memo, idle_timeout=30)
        assert await rt.send(Ping(1), m) == [1]
        await wait_all_tasks_blocked()
        clock.advance(29)
        await wait_all_tasks_blocked()
        assert rt.is_active(m)
        assert await rt.send(Ping(2), m) == [1, 2]  # activity resets the idle timer
        await wait_all_tasks_blocked()
        clock.advance(29)
        await wait_all_tasks_blocked()
        assert rt.is_active(m)
        clock.advance(2)
        await wait_all_tasks_blocked()
        assert not rt.is_active(m)
        assert store.saved[m] == {"items": [1, 2]}
        assert await rt.send(Ping(3), m) == [1, 2, 3]
    assert Memo.activations == [None, {"items": [1, 2]}]
    assert store.saved[m] == {"items": [1, 2, 3]}  # graceful stop saved again


class Tag(Interceptor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_send(self, envelope: Envelope, call_next: Handler) -> Any:
        self.log.append("send")
        if envelope.message == Ping(13):
            raise DropMessage("unlucky")
        return await call_next(dataclasses.replace(envelope, message=Ping(envelope.message.n * 10)))

    async def on_handle(self, envelope: Envelope, call_next: Handler) -> Any:
        self.log.append(f"handle:{envelope.recipient}")
        result = await call_next(envelope)
        return result + 1


async def test_interceptors_modify_and_drop() -> None:
    log: list[str] = []
    async with Runtime(interceptors=[Tag(log)]) as rt:
        rt.register("worker", Worker)
        assert await rt.send(Ping(1), W) == 12
        assert log == ["send", "handle:worker/a"]
        with pytest.raises(MessageDroppedError) as info:
            await rt.send(Ping(13), W)
    assert info.value.reason == "unlucky"


class DropOnHandle(Interceptor):
    async def on_handle(self, envelope: Envelope, call_next: Handler) -> Any:
        raise DropMessage("quarantined")


async def test_drop_while_handling_dead_letters_and_answers_the_caller() -> None:
    async with Runtime(interceptors=[DropOnHandle()]) as rt:
        rt.register("worker", Worker)
        with pytest.raises(MessageDroppedError):
            await rt.send(Ping(1), W)
        await rt.tell(Ping(2), W)
        await wait_all_tasks_blocked()
        assert rt.dead_letters.counts[DeadLetterReason.DROPPED_BY_INTERCEPTOR] == 2
        assert_balanced(rt)


class NotSerializable:
    pass


@dataclass
class Point:
    x: int
    y: int


async def test_require_serializable_rejects_at_the_door() -> None:
    async with Runtime(require_serializable=True) as rt:
        rt.register("worker", Worker)
        with pytest.raises(SerializationError, match="NotSerializable"):
            await rt.send(NotSerializable(), W)
        assert await rt.send(Ping(1), W) == 2
        assert rt.statistics().rejected == 1


def test_codec_round_trip_and_unknown_type() -> None:
    sender, receiver = MessageCodec(), MessageCodec()
    raw = sender.dumps(Point(1, 2))
    with pytest.raises(UnknownMessageTypeError) as info:
        receiver.loads(raw)
    assert info.value.type_name.endswith("Point")
    receiver.register(Point)
    assert receiver.loads(raw) == Point(1, 2)
    assert receiver.loads(sender.dumps({"a": [1]})) == {"a": [1]}
    with pytest.raises(SerializationError, match="not JSON"):
        receiver.loads(b"{nope")


async def test_retire_passivates_after_queued_work_and_forgets_the_key() -> None:
    Memo.activations = []
    store = InMemoryStateStore()
    m = AgentId("memo", "r")
    async with Runtime(state_store=store) as rt:
        rt.register("memo", Memo)
        first = asyncio.create_task(rt.send(Ping(1), m))
        rt.retire(m)  # nothing to retire yet: no cell
        assert await first == [1]
        queued = asyncio.create_task(rt.send(Ping(2), m))
        await wait_all_tasks_blocked()
        rt.retire(m)  # after the queued Ping(2)
        assert await queued == [1, 2]
        await wait_all_tasks_blocked()
        assert not rt.is_active(m)
        assert rt.mailbox_statistics(m) is None  # the cell is gone
        assert store.saved[m] == {"items": [1, 2]}
        assert await rt.send(Ping(3), m) == [1, 2, 3]
    assert Memo.activations == [None, {"items": [1, 2]}]


async def test_handler_context_type_may_be_a_type_checking_only_import() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from moot.runtime import Agent, handler\n"
        "if TYPE_CHECKING:\n"
        "    from moot.runtime import Envelope\n"
        "class Hinted(Agent):\n"
        "    @handler\n"
        "    async def on_int(self, message: int, ctx: Envelope) -> int:\n"
        "        return message * 2\n"
    )
    import sys
    import types

    module = types.ModuleType("hinted_module")
    sys.modules["hinted_module"] = module
    try:
        exec(compile(source, "hinted_module.py", "exec"), module.__dict__)
        async with Runtime() as rt:
            rt.register("hinted", module.Hinted)
            assert await rt.send(21, AgentId("hinted", "1")) == 42
    finally:
        del sys.modules["hinted_module"]


def test_unresolvable_message_type_fails_at_registration() -> None:
    class Broken(Agent):
        @handler
        async def on_thing(self, message: NoSuchType, ctx: Envelope) -> None:  # type: ignore[name-defined]  # noqa: F821
            return None

    with pytest.raises(RegistrationError, match="NoSuchType"):
        Runtime().register("broken", Broken)
