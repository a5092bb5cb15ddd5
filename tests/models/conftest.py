"""Fixtures for the model-client tests: fake time for retries and rate limits, a quick policy."""

from __future__ import annotations

import pytest

from moot.models import RetryPolicy
from moot.testing import ManualClock


@pytest.fixture
def fake_time() -> ManualClock:
    return ManualClock()


@pytest.fixture
def retry(fake_time: ManualClock) -> RetryPolicy:
    """Four attempts, recorded but not slept; jitter pinned to its ceiling."""
    return RetryPolicy(
        max_attempts=4,
        base_delay=0.5,
        max_delay=8.0,
        deadline=60.0,
        retry_after_cap=10.0,
        sleep=fake_time.sleep,
        random=lambda: 1.0,
        clock=fake_time.now,
    )


@pytest.fixture
def hello() -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}]
