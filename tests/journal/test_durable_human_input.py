"""A question to a human outlives its process: one process asks and exits, a second answers
with `moot chats answer` (once: a second answer is refused), a third resumes the chat with
`moot chats resume --agents module:setup`, and the answer is in the transcript exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from chat_team import answer

from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator

HELPERS = Path(__file__).resolve().parent.parent / "_helpers"


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(default=answer) as running:
        yield running


def _run(server: ScriptedModelServer, *command: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DURABLE_MODEL_URL": server.base_url,
        "PYTHONPATH": os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=env, timeout=120
    )


def _moot(server: ScriptedModelServer, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(server, "-m", "moot.cli", *args)


def test_a_human_answers_a_waiting_chat_from_another_process_exactly_once(
    server: ScriptedModelServer, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    asked = _run(server, str(HELPERS / "chat_team.py"), url, "h1", "human")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("waiting ")

    listed = _moot(server, "chats", "list", "--store", url, "--json")
    assert listed.returncode == 0, listed.stderr
    chats = json.loads(listed.stdout)["chats"]
    assert [(c["chat_id"], c["status"], c["turns"]) for c in chats] == [("h1", "waiting", 1)]

    first = _moot(server, "chats", "answer", "h1", "Ship it on Friday.", "--store", url)
    assert first.returncode == 0, first.stderr
    second = _moot(server, "chats", "answer", "h1", "No, Monday.", "--store", url)
    assert second.returncode != 0
    assert "answered already" in second.stderr

    resumed = _moot(
        server, "chats", "resume", "h1", "--agents", "chat_team:setup_human",
        "--store", url, "--json",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["turns"] == 3

    exported = _moot(server, "chats", "export", "h1", "--store", url)
    assert exported.returncode == 0, exported.stderr
    chat: dict[str, Any] = json.loads(exported.stdout)
    assert chat["summary"]["status"] == "finished"
    said = [(t["speaker"], t["message"].get("content")) for t in chat["turns"]]
    assert said[1] == ("human", "Ship it on Friday.")
    assert [content for _, content in said].count("Ship it on Friday.") == 1
    assert all("Monday" not in str(content) for _, content in said)
    assert [len(r.messages) - 1 for r in server.requests].count(1) == 1  # a's turn: asked once
    shown = _moot(server, "chats", "show", "h1", "--store", url)
    assert shown.returncode == 0
    assert "finished" in shown.stdout
