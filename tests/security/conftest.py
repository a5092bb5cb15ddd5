"""The sandbox security suite runs twice: in the default spawn mode and in kernel mode (one
IPython kernel per slot, on the kernel image), since a kernel must not weaken any guarantee."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from docker_helpers import DockerFactory

    from moot.executors import DockerExecutor


@pytest.fixture(params=["spawn", "kernel"])
def sandbox_mode(request: pytest.FixtureRequest) -> str:
    """How Python blocks run: "spawn" (a fresh interpreter each) or "kernel" (one kernel)."""
    return str(request.param)


@pytest.fixture
def make_docker(
    make_docker: DockerFactory, sandbox_mode: str, request: pytest.FixtureRequest
) -> DockerFactory:
    """The suite's factory; in kernel mode its default image is the kernel image. A test that
    picks its own mode or image keeps it."""
    if sandbox_mode != "kernel":
        return make_docker
    image = str(request.getfixturevalue("kernel_image"))

    def factory(**overrides: Any) -> DockerExecutor:
        return make_docker(**{"mode": "kernel", "image": image, **overrides})

    return factory


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Kernel mode has one image (the kernel image, with the data profile), so the base/data
    image variants of a test would run the same thing twice: keep one."""
    duplicates = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("sandbox_mode") == "kernel" and params.get("docker_image") == "data":
            duplicates.append(item)
        elif params.get("sandbox_mode") == "kernel" and params.get("mode") in ("spawn", "fork"):
            duplicates.append(item)  # the test names its own mode: the spawn variant covers it
    if duplicates:
        config.hook.pytest_deselected(items=duplicates)
        items[:] = [item for item in items if item not in duplicates]
