"""Fixtures for the server tests: a scripted model on loopback and the teams that use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from serve_helpers import make_teams

from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from moot.server import Teams


@pytest.fixture
def model() -> Iterator[ScriptedModelServer]:
    """The model on its own thread; tests append to its script."""
    with ScriptedModelServer(default="fine. TERMINATE") as running:
        yield running


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def teams(model: ScriptedModelServer, work_dir: Path) -> Teams:
    return make_teams({"config_list": model.config_list(model="gpt-4o")}, str(work_dir))
