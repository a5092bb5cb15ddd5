"""The runtime's contract, written once and run over every way to reach an agent: in process, over
a loopback transport (two runtimes, every message through the codec), and over NATS (two
runtimes on a real nats-server). A client runtime sends; a worker runtime hosts the agents.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import pydantic
import pytest
from nats_helpers import fast_transport

from moot.runtime import (
    Agent,
    AgentContext,
    AgentId,
    DeadlineExceededError,
    DeliveryError,
    Envelope,
    HandlerError,
    Runtime,
    TopicId,
    TypeSubscription,
    handler,
)
from moot.testing import LoopbackNetwork

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from nats_helpers import NatsServer


class Ask(pydantic.BaseModel):
    text: str


class Fail(pydantic.BaseModel):
    why: str


class Nap(pydantic.BaseModel):
    pass


class Bump(pydantic.BaseModel):
    pass


class Tally(pydantic.BaseModel):
    pass


class Note(pydantic.BaseModel):
    text: str


class Probe:
    """What the test sees of the worker side: turns in flight, notes heard, cancelled naps."""

    def __init__(self) -> None:
        self.active = 0
        self.most_active = 0
        self.heard: list[str] = []
        self.heard_enough = asyncio.Event()
        self.expect = 0
        self.napping = asyncio.Event()
        self.cancelled = asyncio.Event()

    def hear(self, text: str) -> None:
        self.heard.append(text)
        if len(self.heard) >= self.expect:
            self.heard_enough.set()


class Worker(Agent):
    def __init__(self, context: AgentContext, probe: Probe) -> None:
        super().__init__(context)
        self.probe = probe
        self.bumps = 0

    @handler
    async def on_ask(self, message: Ask, ctx: Envelope) -> str:
        self.probe.active += 1
        self.probe.most_active = max(self.probe.most_active, self.probe.active)
        try:
            await asyncio.sleep(0)  # a suspension point inside the turn
            return f"{self.id.key}:{message.text}"
        finally:
            self.probe.active -= 1

    @handler
    async def on_fail(self, message: Fail, ctx: Envelope) -> None:
        raise ValueError(message.why)

    @handler
    async def on_nap(self, message: Nap, ctx: Envelope) -> None:
        self.probe.napping.set()
        try:
            await asyncio.Event().wait()  # until the deadline cancels the turn
        except asyncio.CancelledError:
            self.probe.cancelled.set()
            raise

    @handler
    async def on_bump(self, message: Bump, ctx: Envelope) -> None:
        self.bumps += 1

    @handler
    async def on_tally(self, message: Tally, ctx: Envelope) -> int:
        return self.bumps

    @handler
    async def on_note(self, message: Note, ctx: Envelope) -> None:
        self.probe.hear(f"{self.id.type}/{self.id.key}:{message.text}")


def _messages(runtime: Runtime) -> None:
    for message_type in (Ask, Fail, Nap, Bump, Tally, Note):
        runtime.codec.register(message_type, name=f"contract.{message_type.__name__}")
    runtime.subscribe(TypeSubscription("news", "worker"))
    runtime.subscribe(TypeSubscription("news", "auditor"))


def _host(probe: Probe) -> Callable[[Runtime], None]:
    def setup(runtime: Runtime) -> None:
        _messages(runtime)
        runtime.register("worker", lambda ctx: Worker(ctx, probe))
        runtime.register("auditor", lambda ctx: Worker(ctx, probe))

    return setup


Setup = tuple[Runtime, Probe]


@pytest.fixture(params=["in_process", "loopback", pytest.param("nats", marks=pytest.mark.nats)])
async def runtimes(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    """(client, probe): the client reaches agents that a worker runtime hosts."""
    probe = Probe()
    if request.param == "in_process":
        runtime = Runtime()
        _host(probe)(runtime)
        async with runtime:
            yield runtime, probe
        return
    if request.param == "loopback":
        network = LoopbackNetwork()
        worker, client = Runtime(transport=network.join()), Runtime(transport=network.join())
    else:
        server: NatsServer = request.getfixturevalue("nats_server")
        worker = Runtime(transport=fast_transport(server.url), stop_timeout=2.0)
        client = Runtime(transport=fast_transport(server.url), stop_timeout=2.0)
    _host(probe)(worker)
    _messages(client)
    async with worker, client:
        yield client, probe


async def test_send_returns_the_handlers_result(runtimes: Setup) -> None:
    client, _ = runtimes
    reply = await client.send(Ask(text="hi"), AgentId("worker", "k 1/é"), timeout=10)
    assert reply == "k 1/é:hi"


async def test_a_handlers_exception_comes_back_as_handler_error(runtimes: Setup) -> None:
    client, _ = runtimes
    with pytest.raises(HandlerError, match="bad input"):
        await client.send(Fail(why="bad input"), AgentId("worker", "k"), timeout=10)
    assert await client.send(Ask(text="still here"), AgentId("worker", "k"), timeout=10)


async def test_a_deadline_fails_the_caller_and_cancels_the_turn(runtimes: Setup) -> None:
    client, probe = runtimes
    with pytest.raises(DeadlineExceededError):
        await client.send(Nap(), AgentId("worker", "sleepy"), timeout=0.5)
    assert probe.napping.is_set()
    with anyio.fail_after(10):
        await probe.cancelled.wait()


async def test_one_turn_at_a_time_per_key(runtimes: Setup) -> None:
    client, probe = runtimes
    target = AgentId("worker", "busy")
    replies = await asyncio.gather(
        *(client.send(Ask(text=str(i)), target, timeout=10) for i in range(20))
    )
    assert sorted(replies) == sorted(f"busy:{i}" for i in range(20))
    assert probe.most_active == 1


async def test_each_key_is_its_own_instance(runtimes: Setup) -> None:
    client, _ = runtimes
    for key, bumps in (("a", 3), ("b", 1)):
        for _ in range(bumps):
            await client.send(Bump(), AgentId("worker", key), timeout=10)
    assert await client.send(Tally(), AgentId("worker", "a"), timeout=10) == 3
    assert await client.send(Tally(), AgentId("worker", "b"), timeout=10) == 1


async def test_tells_are_handled(runtimes: Setup) -> None:
    client, probe = runtimes
    probe.expect = 5
    for i in range(5):
        await client.tell(Note(text=str(i)), AgentId("worker", "inbox"))
    with anyio.fail_after(10):
        await probe.heard_enough.wait()
    assert sorted(probe.heard) == [f"worker/inbox:{i}" for i in range(5)]


async def test_publish_reaches_every_subscribed_type(runtimes: Setup) -> None:
    client, probe = runtimes
    probe.expect = 2
    await client.publish(Note(text="hello"), TopicId("news", "room"))
    with anyio.fail_after(10):
        await probe.heard_enough.wait()
    assert sorted(probe.heard) == ["auditor/room:hello", "worker/room:hello"]


async def test_an_unknown_agent_type_is_a_typed_delivery_error(runtimes: Setup) -> None:
    client, _ = runtimes
    with pytest.raises(DeliveryError):
        await client.send(Ask(text="anyone?"), AgentId("nobody", "k"), timeout=10)
