"""Work files in the journal: a turn whose code run changed the chat's work files journals them
(content-addressed), files over the caps are left out with an event, and a resumed chat gets
its files back before the redone turn: in process with the local executor, and across a
`kill -9` with the real Docker sandbox. Against the real SQLite file and the real Postgres."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from chat_files import OPENING, READ, coder_answer, setup

from moot.journal import (
    ChatDefinition,
    FileChange,
    InMemoryChatStore,
    StoreLimits,
    Turn,
    begin_chat,
    lease_owner,
    open_store,
)
from moot.models import ModelError
from moot.testing import RecordedRequest, Reply, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator

CHILD = Path(__file__).resolve().parent.parent / "_helpers" / "chat_files.py"
NOTE = b"written in turn 2"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(default=coder_answer) as running:
        yield running


async def test_a_code_run_journals_the_work_files_it_changed(
    server: ScriptedModelServer, store_url: str
) -> None:
    result = await setup(server.base_url, docker=False, store=store_url).a_run(
        OPENING, chat_id="files", sender="user"
    )

    assert "written in turn 2" in str(result.chat_history[-1]["content"])
    async with await open_store(store_url) as store:
        turns = await store.turns("files")
        assert [t.speaker for t in turns] == ["coder", "runner", "coder", "runner"]
        assert turns[1].files == (FileChange(path="note.txt", data=NOTE),)
        assert [t.files for t in (turns[0], turns[2], turns[3])] == [(), (), ()]
        assert await store.workspace("files") == {"note.txt": NOTE}


async def test_a_resumed_chat_gets_its_work_files_back_before_the_redone_turn(
    store_url: str,
) -> None:
    failed = {"once": True}

    def flaky(asked: RecordedRequest) -> Reply:
        if len(asked.messages) - 1 == 3 and failed.pop("once", False):
            return Reply(status=400, error="scripted failure")
        return coder_answer(asked)

    with ScriptedModelServer(default=flaky) as server:
        with pytest.raises(ModelError):  # turn 3 fails: the chat's private workspace is gone
            await setup(server.base_url, docker=False, store=store_url).a_run(
                OPENING, chat_id="again", sender="user"
            )
        fresh = setup(server.base_url, docker=False, store=store_url)
        result = await fresh.a_run(chat_id="again")

    contents = [m["content"] for m in result.chat_history]
    assert contents[3] == READ
    assert "written in turn 2" in str(contents[4])  # turn 4's code read the restored file


async def test_files_over_the_cap_are_left_out_of_their_turn_with_an_event(
    server: ScriptedModelServer,
) -> None:
    async with InMemoryChatStore(limits=StoreLimits(max_file_bytes=8)) as store:
        result = await setup(server.base_url, docker=False, store=store).a_run(
            OPENING, chat_id="capped", sender="user"
        )

        assert "written in turn 2" in str(result.chat_history[-1]["content"])  # the chat went on
        turns = await store.turns("capped")
        assert len(turns) == 4
        assert turns[1].files == ()
        events = [e for e in await store.events("capped") if e.kind == "files.not_journaled"]
        assert [e.data["files"] for e in events] == [[{"path": "note.txt", "size": len(NOTE)}]]
        assert events[0].data["turn"] == 2


def test_a_killed_docker_chat_resumes_in_a_new_process_with_its_files(
    server: ScriptedModelServer, store_url: str, docker_image: str
) -> None:
    del docker_image  # built: the child's sandbox runs it
    env = {**os.environ, "DURABLE_MODEL_URL": server.base_url, "DURABLE_LEASE_TTL": "1"}
    argv = [sys.executable, str(CHILD), store_url, "docker-files"]
    child = subprocess.Popen(
        [*argv, "start", "docker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    for line in child.stdout:
        if line.strip() == "turn 2":  # the file is journaled; turn 3 is in flight
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    done = subprocess.run(
        [*argv, "resume", "docker"], capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("transcript "))
    transcript: list[dict[str, Any]] = json.loads(line.removeprefix("transcript "))

    assert [m.get("name") for m in transcript] == ["user", "coder", "runner", "coder", "runner"]
    assert transcript[4]["content"].startswith("exitcode: 0")
    assert "written in turn 2" in transcript[4]["content"]
    writes = [r for r in server.requests if len(r.messages) - 1 == 1]
    assert len(writes) == 1  # turn 1's model call was not made again


async def test_a_resumed_two_agent_chat_gets_its_work_files_back(store_url: str) -> None:
    failed = {"once": True}

    def flaky(asked: RecordedRequest) -> Reply:
        if len(asked.messages) - 1 == 3 and failed.pop("once", False):
            return Reply(status=400, error="scripted failure")
        return coder_answer(asked)

    async def chat(url: str) -> list[dict[str, Any]]:
        manager = setup(url, docker=False, store=None)
        coder, runner = manager.groupchat.agents
        result = await runner.a_initiate_chat(
            coder, OPENING, max_turns=3, silent=True, store=store_url, chat_id="pair"
        )
        return result.chat_history

    with ScriptedModelServer(default=flaky) as server:
        with pytest.raises(ModelError):
            await chat(server.base_url)
        history = await chat(server.base_url)

    contents = [str(m["content"]) for m in history]
    assert contents[3] == READ
    assert "written in turn 2" in contents[4]
    async with await open_store(store_url) as store:
        turns = await store.turns("pair")
        assert turns[2].speaker == "runner"
        assert turns[2].files == (FileChange(path="note.txt", data=NOTE),)


async def test_the_writer_keeps_the_files_that_fit_the_file_and_turn_caps() -> None:
    limits = StoreLimits(max_file_bytes=100, max_turn_bytes=1150, max_row_bytes=1000)
    async with InMemoryChatStore(limits=limits) as store:
        definition = ChatDefinition(chat_id="caps", participants=("a",), policy="none")
        writer = await begin_chat(store, definition, lease_owner(), ttl=30)
        files = tuple(
            FileChange(path=name, data=b"x" * size)
            for name, size in (("a.bin", 80), ("b.bin", 80), ("c.bin", 200))
        )
        turn = await writer.append(
            Turn(number=0, speaker="a", message={"content": "hi"}, files=files)
        )
        await writer.close(None)

        assert turn.number == 1
        assert [f.path for f in (await store.turns("caps"))[0].files] == ["a.bin"]
        (event,) = [e for e in await store.events("caps") if e.kind == "files.not_journaled"]
        assert event.data["files"] == [
            {"path": "b.bin", "size": 80},
            {"path": "c.bin", "size": 200},
        ]
        assert "max_file_bytes" in event.data["reason"]
