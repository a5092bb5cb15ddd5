"""Fixtures for the NATS transport tests: runtimes on the suite's `nats_server` fixture (a real
`nats-server -js` on a free loopback port, one per test, defined in tests/conftest.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
from nats_helpers import NatsServer, RuntimeMaker, fast_transport

from moot.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.nats)


@pytest.fixture
async def make_runtime(nats_server: NatsServer) -> AsyncIterator[RuntimeMaker]:
    """Build and start runtimes on the test's server, each with its own connection.

    `setup(runtime)` registers agent types, message types and subscriptions before start.
    """
    started: list[Runtime] = []

    async def make(setup: Callable[[Runtime], None] | None = None, **overrides: Any) -> Runtime:
        runtime = Runtime(transport=fast_transport(nats_server.url, **overrides), stop_timeout=2.0)
        if setup is not None:
            setup(runtime)
        await runtime.start()
        started.append(runtime)
        return runtime

    yield make
    for runtime in reversed(started):
        await runtime.stop()
