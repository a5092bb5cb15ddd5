"""Fixtures for the executor tests: the sandbox image, and executors with small, fast settings.

Under CI=true a missing Docker engine fails the Docker tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiodocker
import pytest

from moot.executors import DockerExecutor

DockerFactory = Callable[..., DockerExecutor]


@pytest.fixture
def make_docker(docker_image: str) -> DockerFactory:
    """Build a `DockerExecutor` with small, fast test defaults; the test enters it."""

    def factory(**overrides: Any) -> DockerExecutor:
        options: dict[str, Any] = {
            "image": docker_image,
            "pool_size": 1,
            "timeout": 10,
            "memory": "256m",
            "pids_limit": 64,
            "lease_timeout": 30,
        }
        options.update(overrides)
        return DockerExecutor(**options)

    return factory


@pytest.fixture
async def docker(docker_image: str) -> AsyncIterator[aiodocker.Docker]:
    """A raw engine client, for tests that act on containers from outside the executor."""
    client = aiodocker.Docker()
    try:
        yield client
    finally:
        await client.close()
