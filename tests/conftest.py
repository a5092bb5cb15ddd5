"""Suite-wide setup: structlog routed through stdlib logging so pytest captures it per test, and
the real services' fixtures (the sandbox image, Docker executors, nats-server), shared by every
suite that needs them. Under CI=true a missing service fails a test; elsewhere it skips."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import aiodocker
import pytest
import structlog
from nats_helpers import NatsServer, require_nats_server

from moot.executors import DockerExecutor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from docker_helpers import DockerFactory


def _configure_structlog() -> None:
    # structlog's default logger writes to the sys.stdout it saw first; pytest swaps and closes
    # that stream per test. Going through stdlib logging lets pytest's handler capture events.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


_configure_structlog()


@pytest.fixture(autouse=True)
def _structlog_through_logging() -> Iterator[None]:
    """Put the suite's structlog setup back after any test that ran a CLI entry point in-process."""
    yield
    _configure_structlog()


@pytest.fixture(autouse=True)
def _journal_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chats journal by default; the suite's journal lives in a temporary folder, never in the
    real home directory (child processes inherit the same environment)."""
    data = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("MOOT_JOURNAL_URL", f"sqlite:///{data}/moot/journal.sqlite3")


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The base sandbox image tag, built by `moot image build` when missing.

    A missing Docker engine skips the test on a workstation and fails it under CI=true. The CLI
    runs as a subprocess, so this works from inside a running event loop too.
    """
    return _moot_image_build()


@pytest.fixture(scope="session")
def data_image(docker_image: str) -> str:
    """The "data" profile's image (numpy, pandas, matplotlib, scipy): built once per machine
    (about half a minute), then found by its recipe hash."""
    return _moot_image_build("--profile", "data")


@pytest.fixture(scope="session")
def kernel_image() -> str:
    """The kernel-mode image: ipykernel and jupyter_client with the "data" profile (for plots),
    built once per machine, then found by its recipe hash."""
    return _moot_image_build("--profile", "kernel", "--profile", "data")


def _moot_image_build(*options: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "moot.cli", "image", "build", *options],
        capture_output=True,
        text=True,
        timeout=600,
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
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running nats-server with JetStream on 127.0.0.1 (its own store), stopped after the test."""
    require_nats_server()
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
