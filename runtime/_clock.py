"""Clocks: where deadlines and idle timers get their time, so tests can move time by hand
(`moot.testing.ManualClock` is the fake of this seam)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it fires."""

    def cancel(self) -> None: ...


class Clock(ABC):
    """Monotonic time plus timers; the runtime reads every deadline through one of these."""

    @abstractmethod
    def now(self) -> float:
        """Seconds on this clock's monotonic scale."""

    @abstractmethod
    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run `callback(*args)` on the event loop once `now() >= when`."""

    async def sleep_until(self, when: float) -> None:
        """Suspend the calling task until `now() >= when`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        handle = self.call_at(when, resolve_future, future)
        try:
            await future
        finally:
            handle.cancel()


def resolve_future(future: asyncio.Future[None]) -> None:
    """Timer callback: complete `future` unless something else already did."""
    if not future.done():
        future.set_result(None)


class AsyncioClock(Clock):
    """The event loop's own clock (`loop.time()`), with its cheap timer handles."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        return asyncio.get_running_loop().call_at(when, callback, *args)
