"""The one retry layer: exponential backoff, full jitter, `Retry-After`, attempts and a deadline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio
import structlog

from ._errors import LLMConfigError, ModelError, ModelTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = structlog.get_logger("moot.agents.retry")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a failed model call again.

    Only errors marked `retryable` (429, 5xx, timeouts, connection failures) are retried; `sleep`,
    `random` and `clock` are injectable so tests can record delays without waiting.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float | None = 900.0
    retry_after_cap: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=anyio.current_time, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise LLMConfigError("max_attempts must be at least 1", setting="max_attempts")
        if self.base_delay < 0 or self.max_delay < 0 or self.retry_after_cap < 0:
            raise LLMConfigError("delays must not be negative", setting="base_delay")
        if self.deadline is not None and self.deadline <= 0:
            raise LLMConfigError("deadline must be positive or None", setting="deadline")

    def delay_for(self, attempt: int, error: ModelError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if error.retry_after is not None:
            return max(0.0, min(error.retry_after, self.retry_after_cap))
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(self.random() * ceiling)

    async def run(
        self,
        attempt: Callable[[], Awaitable[_T]],
        *,
        model: str | None = None,
        base_url: str | None = None,
    ) -> _T:
        """Await `attempt()` until it succeeds, fails for good, or the deadline passes.

        Raises:
            ModelError: the last attempt's error when it is not retryable or attempts ran out.
            ModelTimeoutError: the overall deadline passed.
        """
        started = self.clock()
        with anyio.move_on_after(self.deadline if self.deadline is not None else float("inf")):
            number = 0
            while True:
                number += 1
                try:
                    return await attempt()
                except ModelError as exc:
                    if not exc.retryable or number >= self.max_attempts:
                        raise
                    delay = self.delay_for(number, exc)
                    elapsed = self.clock() - started
                    if self.deadline is not None and elapsed + delay >= self.deadline:
                        raise
                    log.warning(
                        "model.retry",
                        attempt=number,
                        delay=round(delay, 3),
                        error=type(exc).__name__,
                        status=exc.status,
                        model=model,
                        base_url=base_url,
                    )
                await self.sleep(delay)
        raise ModelTimeoutError(
            f"no answer from the model within the {self.deadline} s deadline ({number} attempt(s))",
            model=model,
            base_url=base_url,
            retryable=False,
        )
