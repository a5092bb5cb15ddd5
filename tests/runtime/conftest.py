"""Fixtures for the runtime tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from rt_helpers import Worker

from moot.runtime import Runtime
from moot.testing import ManualClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def runtime(clock: ManualClock) -> AsyncIterator[Runtime]:
    Worker.built = 0
    rt = Runtime(clock=clock, default_mailbox_capacity=4)
    rt.register("worker", Worker)
    async with rt:
        yield rt
