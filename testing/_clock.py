"""`ManualClock`: the one fake clock, for the runtime's `Clock` seam and for retry and rate limits.

Time moves only when a test says so: `advance(seconds)` fires the timers that fall due, in order,
and `sleep(seconds)` (what `RetryPolicy` and `RateLimits` await) records the delay in `delays` and
advances at once, without waiting. Pass `clock.now` where a `clock=` callable is wanted.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any

from moot.runtime import Clock, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from moot.runtime import TimerHandle


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock(Clock):
    """A clock that moves only on `advance()` or `sleep()`, firing due timers earliest first."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()
        self.delays: list[float] = []
        """Every delay passed to `sleep()`, in order."""

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        timer = _ManualTimer(callback, args)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward and run every timer that falls due, earliest first.

        Raises:
            ConfigError: `seconds` is negative; a monotonic clock never goes back.
        """
        if seconds < 0:
            raise ConfigError("a monotonic clock cannot move backwards", setting="seconds")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self._now = target

    async def sleep(self, seconds: float) -> None:
        """Record the delay and move time forward by it at once (a negative delay counts as 0)."""
        self.delays.append(seconds)
        self.advance(max(0.0, seconds))

    @property
    def pending(self) -> int:
        """How many timers are scheduled and not cancelled."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)
