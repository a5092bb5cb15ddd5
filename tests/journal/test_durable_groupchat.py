"""A journaled group chat survives `kill -9`: a new process resumes it, no completed turn's
model call is repeated, and the transcript equals an uninterrupted run. Against the real SQLite
file and the real Postgres server, with the scripted model server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from chat_team import answer

from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator

CHILD = Path(__file__).resolve().parent.parent / "_helpers" / "chat_team.py"


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(default=answer) as running:
        yield running


def _env(server: ScriptedModelServer) -> dict[str, str]:
    return {**os.environ, "DURABLE_MODEL_URL": server.base_url, "DURABLE_LEASE_TTL": "1"}


def _child(
    server: ScriptedModelServer, store_url: str, chat_id: str, mode: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), store_url, chat_id, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(server),
    )


def _transcript(output: str) -> list[dict[str, Any]]:
    line = next(line for line in output.splitlines() if line.startswith("transcript "))
    loaded: list[dict[str, Any]] = json.loads(line.removeprefix("transcript "))
    return loaded


def _run_to_end(server: ScriptedModelServer, store_url: str, chat_id: str, mode: str) -> str:
    child = _child(server, store_url, chat_id, mode)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out


def _asked(server: ScriptedModelServer) -> list[int]:
    """For each model request, the turn it was for (the history it carried, the opening on)."""
    return [len(request.messages) - 1 for request in server.requests if request.messages]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


def test_a_killed_group_chat_resumes_in_a_new_process_without_asking_again(
    server: ScriptedModelServer, store_url: str, tmp_path: Path
) -> None:
    with ScriptedModelServer(default=answer) as reference_server:
        reference = _transcript(
            _run_to_end(reference_server, f"sqlite:///{tmp_path / 'ref.sqlite3'}", "ref", "start")
        )
    assert len(reference) == 13  # the opening message and twelve turns

    child = _child(server, store_url, "crashy", "start")
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "turn 6":
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=30)
    child.stdout.close()
    assert child.stderr is not None
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    resumed = _transcript(_run_to_end(server, store_url, "crashy", "resume"))

    assert resumed == reference
    asked = _asked(server)
    assert all(asked.count(turn) == 1 for turn in range(1, 7)), asked
    assert sorted(set(asked)) == list(
        range(1, 13)
    )  # every turn asked; the in-flight one twice at most
    assert all(asked.count(turn) <= 2 for turn in range(7, 13)), asked
