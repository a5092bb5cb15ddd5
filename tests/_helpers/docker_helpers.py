"""Shared by the executor and sandbox security tests: find a pool's containers through the
engine (not through internals), and the type of the suite's `make_docker` fixture."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from moot.executors import DockerExecutor

if TYPE_CHECKING:
    import aiodocker

DockerFactory = Callable[..., DockerExecutor]


async def pool_containers(
    docker: aiodocker.Docker, executor: DockerExecutor
) -> list[aiodocker.containers.DockerContainer]:
    """The containers the engine has for this executor's pool, running or not."""
    return await docker.containers.list(
        all=True, filters=json.dumps({"label": [f"moot.pool={executor.pool_id}"]})
    )


async def exec_in(container: aiodocker.containers.DockerContainer, *argv: str) -> None:
    """Run a command as root inside the container (outside the runner) and wait for it."""
    execution = await container.exec(list(argv), user="0")
    async with execution.start(detach=False) as stream:
        while await stream.read_out() is not None:
            pass
