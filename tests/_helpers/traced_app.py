"""A relay of agents across worker processes, each hop inside an `invoke_agent` span, for the
cross-process tracing test; the client side is `python traced_app.py <nats url> <hops>`.

Relay `n` asks relay `n + 1` (request/reply, so the chain nests) and answers with the count of
hops below it. The trace context travels in each request's NATS headers.
"""

from __future__ import annotations

import asyncio
import sys

import pydantic

from moot import observability
from moot.runtime import Agent, AgentId, Envelope, Runtime, handler
from moot.runtime.nats import NatsTransport

CHAT = "xproc-chat"


class Hop(pydantic.BaseModel):
    n: int
    total: int


def register_messages(runtime: Runtime) -> None:
    runtime.codec.register(Hop, name="traced.Hop")


class Relay(Agent):
    @handler
    async def on_hop(self, message: Hop, ctx: Envelope) -> int:
        with observability.agent_turn(f"relay-{message.n}", CHAT, str(self.id)):
            if message.n + 1 == message.total:
                return 1
            below: int = await self.context.send(
                Hop(n=message.n + 1, total=message.total), AgentId("relay", str(message.n + 1))
            )
            return below + 1


def setup(runtime: Runtime) -> None:
    """Worker side: host the relays."""
    register_messages(runtime)
    runtime.register("relay", Relay)


async def client(url: str, hops: int) -> None:
    """Client side: one workflow span around the whole relay; prints the hop count."""
    telemetry = observability.configure_from_env(service_name="client")
    assert telemetry is not None, "the test sets OTEL_EXPORTER_OTLP_ENDPOINT"
    runtime = Runtime(transport=NatsTransport(url))
    register_messages(runtime)
    try:
        async with runtime:
            with observability.workflow("group_chat", CHAT, "client"):
                counted = await runtime.send(Hop(n=0, total=hops), AgentId("relay", "0"))
    finally:
        telemetry.shutdown()
    print(counted)  # noqa: T201 - the test reads it


if __name__ == "__main__":
    asyncio.run(client(sys.argv[1], int(sys.argv[2])))
