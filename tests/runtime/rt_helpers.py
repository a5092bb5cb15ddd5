"""Small agents and checks shared by the runtime tests (importable: see pyproject pythonpath)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from moot.runtime import Agent, AgentContext, Envelope, Runtime, handler


@dataclass
class Ping:
    n: int


@dataclass
class Boom:
    text: str = "boom"


@dataclass
class Block:
    """Handled by waiting on `gate`; `started` is set once the handler runs."""

    gate: asyncio.Event
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[bool] = field(default_factory=list)


class Worker(Agent):
    """Echoes pings, raises on Boom, blocks on Block; records what it saw."""

    built = 0

    def __init__(self, context: AgentContext) -> None:
        super().__init__(context)
        type(self).built += 1
        self.seen: list[int] = []

    @handler
    async def on_ping(self, message: Ping, ctx: Envelope) -> int:
        self.seen.append(message.n)
        return message.n + 1

    @handler
    async def on_boom(self, message: Boom, ctx: Envelope) -> None:
        raise ValueError(message.text)

    @handler
    async def on_block(self, message: Block, ctx: Envelope) -> str:
        message.started.set()
        try:
            await message.gate.wait()
        except asyncio.CancelledError:
            message.cancelled.append(True)
            raise
        return "released"


def assert_balanced(rt: Runtime) -> None:
    """Every accepted delivery is handled, errored, dead-lettered or still in flight."""
    s = rt.statistics()
    assert s.accepted == s.handled + s.errored + s.dead_lettered + s.in_flight, s
