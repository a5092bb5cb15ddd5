"""Small agents and checks shared by the runtime tests (importable: see pyproject pythonpath)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moot.runtime import Agent, AgentContext, Envelope, Runtime, handler

if TYPE_CHECKING:
    from collections.abc import Sized


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


async def wait_all_tasks_blocked() -> None:
    """Return once no other task can run: each waits on a future, an event or a timer.

    asyncio has no public check for this. anyio's `wait_all_tasks_blocked` works on a plain
    asyncio loop too, but while any task is runnable it polls with real 0.1 s sleeps, which makes
    a test slow and a hypothesis run unusable. So this yields one loop round at a time until the
    loop's ready queue (CPython's `BaseEventLoop._ready`, the callbacks to run in the next round)
    is empty when we resume: our own wake-up has been taken off it, so nothing else is runnable
    until an outside event (a timer, I/O, a test's `ManualClock.advance`) happens.
    """
    loop = asyncio.get_running_loop()
    ready: Sized = loop._ready  # type: ignore[attr-defined]
    for _ in range(100_000):
        await asyncio.sleep(0)
        if not ready:
            return
    raise AssertionError("the event loop never went quiet: some task is spinning")


def assert_balanced(rt: Runtime) -> None:
    """Every accepted delivery is handled, errored, dead-lettered or still in flight."""
    s = rt.statistics()
    assert s.accepted == s.handled + s.errored + s.dead_lettered + s.in_flight, s
