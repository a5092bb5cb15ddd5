"""The runtime's contract over the NATS transport: two runtimes in one process, a real broker.

A worker runtime hosts the agents; a client runtime (no agent types) sends and publishes.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import nats
import pydantic
import pytest

from moot.runtime import (
    Agent,
    AgentId,
    DeadLetterReason,
    DeadlineExceededError,
    Envelope,
    HandlerError,
    NoHandlerError,
    Runtime,
    TopicId,
    TypeSubscription,
    UnknownMessageTypeError,
    handler,
)
from moot.runtime.nats import (
    NatsTransport,
    NoRespondersError,
    PayloadTooLargeError,
    TransportUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from nats_helpers import NatsServer, RuntimeMaker


Heard = asyncio.Queue[tuple[str, str]]
Pair = tuple[Runtime, Runtime, Heard]


class Ping(pydantic.BaseModel):
    n: int
    text: str = ""


class Pong(pydantic.BaseModel):
    n: int
    by: str


class Boom(pydantic.BaseModel):
    why: str


class Stall(pydantic.BaseModel):
    pass


class Note(pydantic.BaseModel):
    text: str


class Secret(pydantic.BaseModel):
    """Registered on the client only: the worker cannot decode it."""

    code: int


def register_messages(runtime: Runtime) -> None:
    for message_type in (Ping, Pong, Boom, Stall, Note):
        runtime.codec.register(message_type, name=f"test.{message_type.__name__}")


class Echo(Agent):
    def __init__(self, context: object, heard: Heard) -> None:
        super().__init__(context)  # type: ignore[arg-type]
        self.heard = heard

    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> Pong:
        return Pong(n=message.n, by=str(self.id))

    @handler
    async def on_boom(self, message: Boom, ctx: Envelope) -> None:
        raise ValueError(message.why)

    @handler
    async def on_stall(self, message: Stall, ctx: Envelope) -> None:
        await self.heard.put((str(self.id), "stalling"))
        try:
            await asyncio.Event().wait()  # until the deadline (or the caller) cancels the turn
        except asyncio.CancelledError:
            self.heard.put_nowait((str(self.id), "cancelled"))
            raise


class Listener(Agent):
    """Records the notes it hears in a queue the test owns."""

    def __init__(self, context: object, heard: asyncio.Queue[tuple[str, str]]) -> None:
        super().__init__(context)  # type: ignore[arg-type]
        self.heard = heard

    @handler
    async def on_note(self, message: Note, ctx: Envelope) -> None:
        await self.heard.put((str(self.id), message.text))


def worker_setup(heard: asyncio.Queue[tuple[str, str]]) -> Callable[[Runtime], None]:
    def setup(runtime: Runtime) -> None:
        register_messages(runtime)
        runtime.register("echo", lambda ctx: Echo(ctx, heard))
        runtime.register("listener", lambda ctx: Listener(ctx, heard))
        runtime.register("auditor", lambda ctx: Listener(ctx, heard))
        runtime.subscribe(TypeSubscription("news", "listener"))
        runtime.subscribe(TypeSubscription("news", "auditor"))

    return setup


def client_setup(runtime: Runtime) -> None:
    register_messages(runtime)
    runtime.codec.register(Secret, name="test.Secret")
    runtime.subscribe(TypeSubscription("news", "listener"))
    runtime.subscribe(TypeSubscription("news", "auditor"))


@pytest.fixture
async def pair(make_runtime: RuntimeMaker) -> Pair:
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    worker = await make_runtime(worker_setup(heard))
    client = await make_runtime(client_setup)
    return worker, client, heard


async def test_send_round_trip_with_any_printable_key(pair: Pair) -> None:
    worker, client, _ = pair
    key = "chat 7/ä.*>?"
    reply = await client.send(Ping(n=3), AgentId("echo", key), timeout=5)
    assert reply == Pong(n=3, by=f"echo/{key}")
    assert worker.is_active(AgentId("echo", key))
    assert not client.is_active(AgentId("echo", key))


async def test_handler_error_crosses_the_wire_typed(pair: Pair) -> None:
    _, client, _ = pair
    with pytest.raises(HandlerError, match=r"ValueError\('kaput'\)") as caught:
        await client.send(Boom(why="kaput"), AgentId("echo", "a"), timeout=5)
    assert caught.value.agent_id == AgentId("echo", "a")


async def test_delivery_error_kind_is_preserved(pair: Pair) -> None:
    _, client, _ = pair
    with pytest.raises(NoHandlerError) as caught:
        await client.send(Note(text="?"), AgentId("echo", "a"), timeout=5)
    assert caught.value.agent_id == AgentId("echo", "a")


async def test_deadline_reaches_the_remote_handler(pair: Pair) -> None:
    worker, client, heard = pair
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        await client.send(Stall(), AgentId("echo", "slow"), timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert await asyncio.wait_for(heard.get(), 5) == ("echo/slow", "stalling")
    assert await asyncio.wait_for(heard.get(), 5) == ("echo/slow", "cancelled")
    # The worker cancelled the stalled turn at the same deadline: the agent answers again.
    assert await client.send(Ping(n=1), AgentId("echo", "slow"), timeout=5) == Pong(
        n=1, by="echo/slow"
    )
    assert worker.statistics().in_flight == 0


async def test_no_responders_is_immediate(pair: Pair) -> None:
    _, client, _ = pair
    client.codec.register(Ping, name="test.Ping")
    started = time.monotonic()
    with pytest.raises(NoRespondersError, match="no live worker hosts agent type 'nobody'"):
        await client.send(Ping(n=1), AgentId("nobody", "x"), timeout=5)
    assert time.monotonic() - started < 0.5


async def test_unknown_message_type_is_dead_lettered_and_typed(
    pair: Pair,
) -> None:
    worker, client, _ = pair
    with pytest.raises(UnknownMessageTypeError) as caught:
        await client.send(Secret(code=1), AgentId("echo", "a"), timeout=5)
    assert caught.value.type_name == "test.Secret"
    assert worker.dead_letters.counts[DeadLetterReason.UNDELIVERABLE] == 1
    letter = worker.dead_letters.recent[-1]
    assert letter.recipient == AgentId("echo", "a")
    assert "test.Secret" in letter.detail


async def test_oversized_payload_is_refused_not_truncated(
    pair: Pair,
) -> None:
    worker, client, _ = pair
    huge = Ping(n=1, text="x" * (2 * 1024 * 1024))
    with pytest.raises(PayloadTooLargeError) as caught:
        await client.send(huge, AgentId("echo", "a"), timeout=5)
    assert caught.value.size > caught.value.limit
    with pytest.raises(PayloadTooLargeError):
        await client.tell(huge, AgentId("echo", "a"))
    assert worker.statistics().accepted == 0


async def test_publish_reaches_the_remote_subscriber(
    pair: Pair,
) -> None:
    worker, client, heard = pair
    for i in range(5):
        await client.publish(Note(text=f"n{i}"), TopicId("news", "room-1"))
    # Two subscribed types: each hears every note, once, in order.
    got = [await asyncio.wait_for(heard.get(), 5) for _ in range(10)]
    for agent in ("listener/room-1", "auditor/room-1"):
        assert [text for who, text in got if who == agent] == [f"n{i}" for i in range(5)]
    assert heard.empty()
    assert not worker.dead_letters.total


async def test_a_delivery_the_stream_refuses_is_sent_again_then_dead_lettered(
    make_runtime: RuntimeMaker, nats_server: NatsServer
) -> None:
    heard: Heard = asyncio.Queue()
    await make_runtime(worker_setup(heard))
    client = await make_runtime(client_setup, publish_attempts=3, publish_timeout=0.3)
    watcher = await nats.connect(nats_server.url)
    sent: list[str] = []

    async def count(msg: Any) -> None:
        sent.append(msg.headers["Nats-Msg-Id"])

    await watcher.subscribe("moot.tell.>", cb=count)
    # No stream: the watcher is the only one who hears a delivery, and it never acks.
    await watcher.jetstream().delete_stream("moot_tells")
    await client.publish(Note(text="lost?"), TopicId("news", "room-9"))
    assert isinstance(client.transport, NatsTransport)
    await client.transport.flush()  # returns once each delivery is confirmed or reported
    await watcher.flush()
    letters = client.dead_letters.recent
    assert client.dead_letters.counts[DeadLetterReason.UNDELIVERABLE] == 2
    assert {str(letter.envelope.recipient) for letter in letters} == {
        "listener/room-9",
        "auditor/room-9",
    }
    assert all(isinstance(letter.error, TransportUnavailableError) for letter in letters)
    assert sorted(set(sent)) == sorted(
        f"{letters[0].envelope.message_id}>{who}/room-9" for who in ("listener", "auditor")
    )
    assert len(sent) == 6  # each delivery tried three times under one Nats-Msg-Id
    await watcher.close()


async def test_cancelling_the_caller_cancels_the_remote_handler(pair: Pair) -> None:
    _, client, heard = pair
    call = asyncio.create_task(client.send(Stall(), AgentId("echo", "s")))
    assert await asyncio.wait_for(heard.get(), 5) == ("echo/s", "stalling")
    call.cancel()
    assert await asyncio.wait_for(heard.get(), 5) == ("echo/s", "cancelled")
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await client.send(Ping(n=2), AgentId("echo", "s"), timeout=5) == Pong(n=2, by="echo/s")


async def test_a_request_fails_when_its_worker_leaves_the_membership(
    make_runtime: RuntimeMaker,
) -> None:
    """A worker that dies mid-request fails its callers once the membership drops it (within
    `member_ttl`), with `NoRespondersError`, not at their (here 60 s) request timeout."""
    heard: Heard = asyncio.Queue()
    worker = await make_runtime(worker_setup(heard))
    client = await make_runtime(client_setup, request_timeout=60.0)
    call = asyncio.create_task(client.send(Stall(), AgentId("echo", "doomed")))
    assert await asyncio.wait_for(heard.get(), 5) == ("echo/doomed", "stalling")
    assert isinstance(worker.transport, NatsTransport)
    # What the broker sees of a kill -9: the connection drops, no goodbye, no more heartbeats.
    await worker.transport._nc.close()
    with pytest.raises(NoRespondersError, match="left the membership"):
        await call
    assert isinstance(client.transport, NatsTransport)
    assert worker.transport.node not in client.transport.membership
