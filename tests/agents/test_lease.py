"""`Lease`: one shared resource per agent, opened once, closed by its last holder."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import pytest

from moot.agents._resources import Lease, hold

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class Resource:
    def __init__(self) -> None:
        self.made = 0
        self.closed = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def make(self) -> str:
        self.made += 1
        await self.gate.wait()
        if self.fail:
            raise OSError("cannot make it")
        return f"resource {self.made}"

    async def close(self, value: str) -> None:
        self.closed += 1

    @asynccontextmanager
    async def open(self) -> AsyncIterator[str]:
        value = await self.make()
        try:
            yield value
        finally:
            await self.close(value)


async def test_concurrent_holders_share_one_value_closed_by_the_last() -> None:
    resource = Resource()
    lease = Lease(resource.open)
    first = asyncio.create_task(lease.acquire())
    second = asyncio.create_task(lease.acquire())
    await anyio.wait_all_tasks_blocked()
    resource.gate.set()

    assert await first == await second == "resource 1"
    await lease.release()
    assert resource.closed == 0
    await lease.release()
    assert (resource.made, resource.closed, lease.holders) == (1, 1, 0)


async def test_a_hold_keeps_the_value_open_between_users() -> None:
    resource = Resource()
    resource.gate.set()
    lease = Lease(resource.open)
    lease.hold()
    await lease.acquire()
    await lease.release()
    assert await lease.acquire() == "resource 1"  # not made again
    await lease.release()
    await lease.release()  # the hold
    assert (resource.made, resource.closed) == (1, 1)


async def test_a_waiter_takes_over_when_the_maker_is_cancelled() -> None:
    resource = Resource()
    lease = Lease(resource.open)
    maker = asyncio.create_task(lease.acquire())
    await anyio.wait_all_tasks_blocked()
    waiter = asyncio.create_task(lease.acquire())
    await anyio.wait_all_tasks_blocked()

    maker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await maker
    await anyio.wait_all_tasks_blocked()
    resource.gate.set()

    assert await waiter == "resource 2"
    assert lease.holders == 1


async def test_a_failed_making_raises_in_every_waiter() -> None:
    resource = Resource()
    resource.fail = True
    lease = Lease(resource.open)
    callers = [asyncio.create_task(lease.acquire()) for _ in range(3)]
    await anyio.wait_all_tasks_blocked()
    resource.gate.set()

    results = await asyncio.gather(*callers, return_exceptions=True)

    assert all(isinstance(result, OSError) for result in results)
    assert lease.holders == 0
    assert resource.made == 1


async def test_a_value_with_task_bound_scopes_is_closed_by_whichever_holder_goes_last() -> None:
    """An executor enters an anyio task group: the lease enters and exits it in one keeper task,
    although the holders that open and release it run in different tasks."""
    events: list[str] = []

    @asynccontextmanager
    async def pool() -> AsyncIterator[str]:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.sleep_forever)
            events.append("open")
            yield "pool"
            group.cancel_scope.cancel()
        events.append("closed")

    lease = Lease(pool)
    opener_stack, closer_stack = AsyncExitStack(), AsyncExitStack()

    async def open_in_a_task() -> str:
        return await hold(opener_stack, lease)

    assert await asyncio.create_task(open_in_a_task()) == "pool"
    assert await hold(closer_stack, lease) == "pool"
    await asyncio.create_task(opener_stack.aclose())
    assert events == ["open"]
    await closer_stack.aclose()
    assert (events, lease.holders) == (["open", "closed"], 0)
