"""Fixtures for the agent tests: a scripted model server over real HTTP, agents pointed at it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    """The server on its own thread (an async fixture's teardown runs in another task)."""
    with ScriptedModelServer() as running:
        yield running


@pytest.fixture
def llm_config(server: ScriptedModelServer) -> dict[str, Any]:
    return {"config_list": server.config_list(model="gpt-4o")}


@pytest.fixture
def local_code(tmp_path: Path) -> dict[str, Any]:
    """A code_execution_config that runs code locally in a fresh work dir."""
    return {"work_dir": str(tmp_path / "work"), "use_docker": False, "timeout": 30}
