"""Clocks: where deadlines and idle timers get their time, so tests can move time by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
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


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock(Clock):
    """A clock that moves only when a test calls `advance()`, firing due timers in order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        timer = _ManualTimer(callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward and run every timer that falls due, earliest first.

        Raises:
            ValueError: `seconds` is negative; a monotonic clock never goes back.
        """
        if seconds < 0:
            raise ValueError("a monotonic clock cannot move backwards")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self._now = target

    @property
    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)
