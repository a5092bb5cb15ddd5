"""`FakeClock`: a clock and sleep for tests that moves only when slept on, recording each delay."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class FakeClock:
    """Pass `clock` and `sleep` to a `RetryPolicy` or `RateLimits`; read back `delays`."""

    now: float = 1000.0
    delays: list[float] = field(default_factory=list)

    def clock(self) -> float:
        """The fake current time in seconds."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record the delay and move time forward at once, without waiting."""
        self.delays.append(seconds)
        self.now += seconds
