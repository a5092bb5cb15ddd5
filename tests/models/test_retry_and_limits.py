"""The retry policy's arithmetic, and the shared rate limiter holding requests to the budget."""

from __future__ import annotations

import anyio
import pytest

from moot.models import (
    ModelConfig,
    ModelRequest,
    ModelTimeoutError,
    ProviderUnavailableError,
    RateLimit,
    RateLimitError,
    RateLimits,
    RetryPolicy,
    client_from_config,
)
from moot.testing import ManualClock, ScriptedModelServer


def test_full_jitter_draws_below_the_exponential_ceiling() -> None:
    draws = iter([0.25, 0.5, 1.0, 1.0, 1.0])
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, random=lambda: next(draws))
    error = ProviderUnavailableError("down")
    delays = [policy.delay_for(attempt, error) for attempt in range(1, 6)]
    assert delays == [0.25, 1.0, 4.0, 4.0, 4.0]


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(retry_after_cap=5.0, random=lambda: 0.0)
    assert policy.delay_for(1, RateLimitError("slow down", retry_after=2.5)) == 2.5
    assert policy.delay_for(1, RateLimitError("slow down", retry_after=600)) == 5.0
    assert policy.delay_for(1, RateLimitError("slow down")) == 0.0  # jitter drew 0


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": -1.0}, {"deadline": 0.0}])
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_no_retry_is_started_that_would_end_past_the_deadline(
    fake_time: ManualClock,
) -> None:
    policy = RetryPolicy(
        max_attempts=10,
        base_delay=4.0,
        max_delay=100.0,
        deadline=10.0,
        sleep=fake_time.sleep,
        random=lambda: 1.0,
        clock=fake_time.now,
    )
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ProviderUnavailableError("down")

    with pytest.raises(ProviderUnavailableError):
        await policy.run(failing)
    assert fake_time.delays == [4.0]  # 4 + 8 would pass the 10 s deadline
    assert calls == 2


async def test_deadline_cancels_a_slow_attempt_with_a_typed_error() -> None:
    started = anyio.Event()

    async def slow() -> None:
        started.set()
        await anyio.sleep_forever()

    with pytest.raises(ModelTimeoutError, match="deadline") as caught:
        await RetryPolicy(deadline=0.05).run(slow, model="m", base_url="http://127.0.0.1:1/v1")
    assert started.is_set()
    assert caught.value.model == "m"
    assert not caught.value.retryable


async def test_rate_limiter_holds_requests_to_the_limit_across_clients(
    hello: list[dict[str, str]], fake_time: ManualClock
) -> None:
    limits = RateLimits(
        RateLimit(requests_per_minute=2), clock=fake_time.now, sleep=fake_time.sleep
    )
    async with ScriptedModelServer(default="ok") as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with (
            client_from_config(config, rate_limits=limits) as first,
            client_from_config(config, rate_limits=limits) as second,
        ):
            for client in (first, second, first, second):
                await client.create(ModelRequest(messages=hello))

    assert len(server.requests) == 4
    # 2 per minute, with a burst of at most one: every call after the first waits its 30 s.
    assert fake_time.delays == [30.0, 30.0, 30.0]
    stats = limits.statistics()
    assert (stats.acquired, stats.waited, stats.wait_seconds) == (4, 3, 90.0)


async def test_token_budget_counts_prompt_and_max_tokens(fake_time: ManualClock) -> None:
    budget = RateLimit(tokens_per_minute=600, burst_seconds=60.0)  # the whole minute at once
    limits = RateLimits(budget, clock=fake_time.now, sleep=fake_time.sleep)
    big = [{"role": "user", "content": "x" * 400}]  # about 100 tokens
    async with ScriptedModelServer(default="ok") as server:
        config = ModelConfig(model="scripted", base_url=server.base_url)
        async with client_from_config(config, rate_limits=limits) as client:
            for _ in range(2):
                await client.create(ModelRequest(messages=big, max_tokens=200))

    # 300 tokens reserved each; the server reports ~2 tokens, so the budget is refunded.
    assert fake_time.delays == []
    assert limits.statistics().acquired == 2


async def test_rate_limiter_is_per_base_url_and_model(fake_time: ManualClock) -> None:
    limits = RateLimits(
        per_model={"a": RateLimit(requests_per_minute=1)},
        clock=fake_time.now,
        sleep=fake_time.sleep,
    )
    for model in ("a", "b", "b", "a"):
        await limits.acquire("http://127.0.0.1:1/v1", model)
    await limits.acquire("http://127.0.0.1:2/v1", "a")
    assert fake_time.delays == [60.0]


async def test_cancelled_wait_gives_its_place_back() -> None:
    clock = ManualClock()
    waiting = anyio.Event()

    async def blocked_sleep(seconds: float) -> None:
        waiting.set()
        await anyio.sleep_forever()

    limits = RateLimits(RateLimit(requests_per_minute=1), clock=clock.now, sleep=blocked_sleep)
    await limits.acquire("u", "m")
    async with anyio.create_task_group() as tg:
        tg.start_soon(limits.acquire, "u", "m")
        await waiting.wait()
        tg.cancel_scope.cancel()
    clock.advance(60.0)  # one minute later exactly one request fits again
    await limits.acquire("u", "m")  # without the refund this would wait another minute
