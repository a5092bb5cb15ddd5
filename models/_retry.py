"""The one retry layer: exponential backoff, full jitter, `Retry-After`, attempts and a deadline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import anyio
import structlog

from moot.observability import event, semconv

from ._errors import LLMConfigError, ModelError, ModelTimeoutError
from ._types import ClientWrapper

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._types import ModelClient, ModelRequest, ModelResponse

log = structlog.get_logger("moot.models.retry")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When and how long to wait before trying a failed model call again.

    Only errors marked `retryable` (429, 5xx, timeouts, connection failures) are retried; `sleep`,
    `random` and `clock` are injectable so tests can record delays without waiting. A provider's
    `Retry-After` is waited (up to `retry_after_cap`) plus up to `retry_after_spread` of it at
    random, so callers told the same instant do not all come back at once; a `Retry-After` longer
    than the time left before the deadline fails at once.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float | None = 900.0
    retry_after_cap: float = 60.0
    retry_after_spread: float = 0.25
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=anyio.current_time, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise LLMConfigError("max_attempts must be at least 1", setting="max_attempts")
        if min(self.base_delay, self.max_delay, self.retry_after_cap, self.retry_after_spread) < 0:
            raise LLMConfigError("delays must not be negative", setting="base_delay")
        if self.deadline is not None and self.deadline <= 0:
            raise LLMConfigError("deadline must be positive or None", setting="deadline")

    def delay_for(self, attempt: int, error: ModelError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if error.retry_after is not None:
            wait = max(0.0, min(error.retry_after, self.retry_after_cap))
            return wait + float(self.random()) * wait * self.retry_after_spread
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(self.random() * ceiling)

    async def run(
        self,
        attempt: Callable[[], Awaitable[_T]],
        *,
        model: str | None = None,
        base_url: str | None = None,
        deadline: float | None = None,
    ) -> _T:
        """Await `attempt()` until it succeeds, fails for good, or the deadline passes.

        `deadline` (seconds) tightens the policy's own for this call.

        Raises:
            ModelError: the last attempt's error when it is not retryable, attempts ran out, or
                the provider's `Retry-After` reaches past the deadline.
            ModelTimeoutError: the overall deadline passed.
        """
        started = self.clock()
        if deadline is None or (self.deadline is not None and self.deadline < deadline):
            deadline = self.deadline
        with anyio.move_on_after(deadline if deadline is not None else float("inf")):
            number = 0
            while True:
                number += 1
                try:
                    return await attempt()
                except ModelError as exc:
                    if not exc.retryable or number >= self.max_attempts:
                        raise
                    delay = self.delay_for(number, exc)
                    if deadline is not None:
                        left = deadline - (self.clock() - started)
                        if delay >= left or (exc.retry_after or 0.0) > left:
                            raise
                    event(
                        semconv.EVENT_RETRY,
                        {
                            "moot.retry.attempt": number,
                            "moot.retry.delay_s": delay,
                            semconv.ERROR_TYPE: type(exc).__name__,
                            "http.response.status_code": exc.status,
                        },
                    )
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
            f"no answer from the model within the {deadline} s deadline ({number} attempt(s))",
            model=model,
            base_url=base_url,
            retryable=False,
        )


class RetryingClient(ClientWrapper):
    """Retries `inner` by `policy`; `request.timeout` (else `timeout`) is the whole call's deadline.

    Raises (from `create`):
        ModelError: the last attempt's error, as `RetryPolicy.run` decides.
        ModelTimeoutError: the deadline passed.
    """

    def __init__(
        self,
        inner: ModelClient,
        policy: RetryPolicy | None = None,
        *,
        timeout: float | None = None,
        model: str | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self._model = model
        self._base_url = base_url

    async def create(self, request: ModelRequest) -> ModelResponse:
        return await self.policy.run(
            lambda: self.inner.create(request),
            model=self._model,
            base_url=self._base_url,
            deadline=request.timeout or self.timeout,
        )
