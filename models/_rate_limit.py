"""A process-wide limiter per (base_url, model): requests and tokens per minute, as token buckets.

Every client that holds the same `RateLimits` shares its buckets, so many agents and chats queue
behind one budget instead of stampeding a provider. The state is plain numbers behind a thread
lock, not loop-bound primitives, so one `RateLimits` works across event loops.

A bucket starts with (and refills to) `burst_seconds` of its budget, not a whole minute's:
600 requests a minute lets 50 go at once and then one every 0.1 s, instead of 600 in the first
second and nothing for the rest of the minute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from moot.observability import event, semconv

from ._types import ClientWrapper

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ._types import ModelClient, ModelRequest, ModelResponse

DEFAULT_BURST_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """A budget per minute (None means unlimited); at most `burst_seconds` of it at once."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    burst_seconds: float = DEFAULT_BURST_SECONDS


class _Bucket:
    """A token bucket that may go negative: each reservation queues behind the earlier ones.

    It holds at most `burst_seconds` of the budget; one reservation is charged at most a minute's
    budget, so an oversized request waits a minute rather than forever.
    """

    __slots__ = ("capacity", "largest", "level", "rate", "updated")

    def __init__(self, per_minute: float, now: float, burst_seconds: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.largest = per_minute
        self.level = self.capacity
        self.updated = now

    def reserve(self, amount: float, now: float) -> float:
        """Take `amount` now and return the seconds until the bucket covers it."""
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now
        self.level -= min(amount, self.largest)
        return 0.0 if self.level >= 0 else -self.level / self.rate

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + min(amount, self.largest))


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitStatistics:
    """How often callers had to wait, and for how long in total."""

    acquired: int
    waited: int
    wait_seconds: float


class RateLimits:
    """Requests and tokens per minute per (base_url, model), shared by every client holding it.

    A config entry's own limits win over `per_model` (keyed by model name), which wins over
    `default`; the first call for a (base_url, model) fixes its budget.
    """

    def __init__(
        self,
        default: RateLimit | None = None,
        *,
        per_model: Mapping[str, RateLimit] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._default = default or RateLimit()
        self._per_model = dict(per_model or {})
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[_Bucket | None, _Bucket | None]] = {}
        self._acquired = 0
        self._waited = 0
        self._wait_seconds = 0.0

    def _buckets_for(
        self, key: tuple[str, str], limit: RateLimit | None, now: float
    ) -> tuple[_Bucket | None, _Bucket | None]:
        found = self._buckets.get(key)
        if found is None:
            chosen = self._per_model.get(key[1], self._default)
            rpm = (limit and limit.requests_per_minute) or chosen.requests_per_minute
            tpm = (limit and limit.tokens_per_minute) or chosen.tokens_per_minute
            burst = (limit or chosen).burst_seconds
            found = (
                _Bucket(rpm, now, burst) if rpm else None,
                _Bucket(tpm, now, burst) if tpm else None,
            )
            self._buckets[key] = found
        return found

    async def acquire(
        self, base_url: str, model: str, *, tokens: int = 0, limit: RateLimit | None = None
    ) -> None:
        """Wait until one request of about `tokens` tokens fits the budget, then take it."""
        with self._lock:
            now = self._clock()
            requests, token_bucket = self._buckets_for((base_url, model), limit, now)
            if requests is None and token_bucket is None:
                self._acquired += 1
                return
            wait = 0.0
            if requests is not None:
                wait = max(wait, requests.reserve(1, now))
            if token_bucket is not None:
                wait = max(wait, token_bucket.reserve(tokens, now))
            self._acquired += 1
            if wait > 0:
                self._waited += 1
                self._wait_seconds += wait
        if wait <= 0:
            return
        event(semconv.EVENT_RATE_LIMIT_WAIT, {"moot.rate_limit.wait_s": wait})
        try:
            await self._sleep(wait)
        except BaseException:
            with self._lock:
                if requests is not None:
                    requests.give_back(1)
                if token_bucket is not None:
                    token_bucket.give_back(tokens)
            raise

    def settle(self, base_url: str, model: str, *, estimated: int, actual: int) -> None:
        """Correct a reservation once the response's real token count is known."""
        with self._lock:
            found = self._buckets.get((base_url, model))
            if found is None or found[1] is None:
                return
            bucket = found[1]
            if actual > estimated:
                bucket.level -= actual - estimated
            else:
                bucket.give_back(estimated - actual)

    def statistics(self) -> RateLimitStatistics:
        """Counts since creation, for tests and dashboards."""
        with self._lock:
            return RateLimitStatistics(
                acquired=self._acquired, waited=self._waited, wait_seconds=self._wait_seconds
            )


_process_default = RateLimits()


def default_rate_limits() -> RateLimits:
    """The process-wide `RateLimits` used by clients not given their own; unlimited by default."""
    return _process_default


class RateLimitedClient(ClientWrapper):
    """Waits for room in the shared `limits` before each call to `inner`, then settles the tokens.

    One call reserves about a token per four characters of prompt plus `max_tokens` (the
    request's, else `default_max_tokens`); the usage the answer reports corrects the reservation.
    """

    def __init__(
        self,
        inner: ModelClient,
        limits: RateLimits,
        *,
        base_url: str,
        model: str,
        limit: RateLimit | None = None,
        default_max_tokens: int | None = None,
    ) -> None:
        super().__init__(inner)
        self.limits = limits
        self._base_url = base_url
        self._model = model
        self._limit = limit
        self._default_max_tokens = default_max_tokens

    def _estimate(self, request: ModelRequest) -> int:
        chars = sum(len(str(message.get("content") or "")) for message in request.messages)
        max_tokens = self._default_max_tokens if request.max_tokens is None else request.max_tokens
        return chars // 4 + int(max_tokens or 0)

    async def create(self, request: ModelRequest) -> ModelResponse:
        estimate = self._estimate(request)
        await self.limits.acquire(self._base_url, self._model, tokens=estimate, limit=self._limit)
        response = await self.inner.create(request)
        if response.usage.total_tokens:  # a server that reports no usage keeps the estimate
            self.limits.settle(
                self._base_url, self._model, estimated=estimate, actual=response.usage.total_tokens
            )
        return response
