"""Fixtures for the executor tests: the sandbox image, and executors with small, fast settings.

Under CI=true a missing Docker engine fails the Docker tests; elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiodocker
import pytest

from moot.executors import DockerExecutor

DockerFactory = Callable[..., DockerExecutor]


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The base sandbox image tag, built by the image CLI if missing; fails under CI without Docker.

    The CLI runs as a subprocess, so this works from inside a running event loop too.
    """
    done = subprocess.run(
        [sys.executable, "-m", "moot.executors.image", "--if-missing"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        message = (done.stdout + done.stderr).strip()
        if "No Docker engine answers" not in message:
            pytest.fail(f"building the sandbox image failed:\n{message}")
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true but no Docker engine answers: {message}")
        pytest.skip(f"no Docker engine answers (set CI=true to make this a failure): {message}")
    return done.stdout.strip().splitlines()[-1]


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
