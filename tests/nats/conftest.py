"""Fixtures for the NATS transport tests: a real `nats-server -js` on a free loopback port.

Each test gets its own server with a temporary JetStream store. Without the binary the tests
skip, except under `CI=true`, where a missing service is a failure.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
from nats_helpers import NATS_SERVER, NatsServer, RuntimeMaker, fast_transport

from moot.runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.nats)


def _require_binary() -> None:
    if os.path.exists(NATS_SERVER):
        return
    message = f"nats-server not found at {NATS_SERVER} (install Debian's nats-server package)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running nats-server with JetStream on 127.0.0.1, stopped after the test."""
    _require_binary()
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
