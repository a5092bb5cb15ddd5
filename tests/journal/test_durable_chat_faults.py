"""Faults around a journaled group chat: an unreachable store fails before any model call, a
store lost mid-chat stops the chat with a typed error and an intact journal (it resumes once the
store is back), a corrupt row fails only its chat, and of two resumes of one chat exactly one
runs it. Real SQLite files, the real Postgres server, the scripted model server."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from chat_team import answer, setup

from moot.groupchat import ChatAlreadyFinishedError
from moot.journal import (
    ChatStatus,
    CorruptRecordError,
    LeaseHeldError,
    StoreError,
    StoreUnavailableError,
    open_store,
)
from moot.models import ModelError
from moot.testing import RecordedRequest, Reply, ScriptedModelServer

if TYPE_CHECKING:
    from pathlib import Path

    from pg_helpers import PostgresServer


class Answers:
    """`answer`, except that the request for turn `fail_at` fails once (a model error)."""

    def __init__(self) -> None:
        self.fail_at: int | None = None
        self.on_turn: dict[int, Any] = {}

    def __call__(self, request: RecordedRequest) -> Reply:
        turn = len(request.messages) - 1
        hook = self.on_turn.pop(turn, None)
        if hook is not None:
            hook()
        if turn == self.fail_at:
            self.fail_at = None
            return Reply(status=400, error="scripted failure")
        return answer(request)


def _asked(server: ScriptedModelServer) -> list[int]:
    return [len(request.messages) - 1 for request in server.requests if request.messages]


async def _reference() -> list[dict[str, Any]]:
    async with ScriptedModelServer(default=answer) as server:
        result = await setup(store=None, url=server.base_url).a_run("Count with us.")
    return result.chat_history


async def test_an_unreachable_store_fails_before_any_model_call(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    async with ScriptedModelServer(default=answer) as server:
        for url in (f"sqlite:///{blocker}/journal.sqlite3", "postgresql://moot@127.0.0.1:1/moot"):
            manager = setup(store=url, url=server.base_url)
            with pytest.raises(StoreUnavailableError):
                await manager.a_run("Count with us.")
        assert server.requests == []


async def test_of_two_resumes_of_one_chat_exactly_one_runs_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    answers = Answers()
    answers.fail_at = 4
    async with ScriptedModelServer(default=answers) as server:
        with pytest.raises(ModelError):
            await setup(store=url, url=server.base_url).a_run("Count with us.", chat_id="c")
        async with await open_store(url) as one, await open_store(url) as two:
            outcomes = await asyncio.gather(
                setup(store=one, url=server.base_url).a_run(None, chat_id="c"),
                setup(store=two, url=server.base_url).a_run(None, chat_id="c"),
                return_exceptions=True,
            )
            assert (await one.summary("c")).status is ChatStatus.FINISHED
        held = [o for o in outcomes if isinstance(o, LeaseHeldError)]
        done = [o for o in outcomes if not isinstance(o, BaseException)]
        assert len(held) == 1
        assert len(done) == 1
        assert done[0].chat_history == await _reference()
        assert all(_asked(server).count(turn) == 1 for turn in range(1, 4))
        with pytest.raises(ChatAlreadyFinishedError):
            await setup(store=url, url=server.base_url).a_run(None, chat_id="c")


async def test_postgres_lost_mid_chat_stops_it_typed_and_it_resumes_when_back(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    answers = Answers()
    answers.on_turn[4] = postgres_server.stop  # the store goes away while turn 4 is asked
    async with ScriptedModelServer(default=answers) as server:
        manager = setup(store=postgres_dsn, url=server.base_url)
        try:
            with pytest.raises(StoreError):
                await manager.a_run("Count with us.", chat_id="p")
        finally:
            postgres_server.start()
        async with await open_store(postgres_dsn) as store:
            assert [t.number for t in await store.turns("p")] == [1, 2, 3]  # never half a turn
        result = await manager.a_run(None, chat_id="p")
        assert result.chat_history == await _reference()
        assert all(_asked(server).count(turn) == 1 for turn in range(1, 4))


async def test_a_corrupt_row_fails_its_chat_and_the_others_go_on(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    url = f"sqlite:///{path}"
    answers = Answers()
    async with ScriptedModelServer(default=answers) as server:
        for chat_id in ("bad", "good"):
            answers.fail_at = 4
            with pytest.raises(ModelError):
                await setup(store=url, url=server.base_url).a_run("Count with us.", chat_id=chat_id)
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE turns SET body = 'not json' WHERE chat_id = 'bad' AND number = 2")
        with pytest.raises(CorruptRecordError) as caught:
            await setup(store=url, url=server.base_url).a_run(None, chat_id="bad")
        assert caught.value.chat_id == "bad"
        good = await setup(store=url, url=server.base_url).a_run(None, chat_id="good")
        assert good.chat_history == await _reference()


async def test_an_unusable_default_journal_does_not_stop_the_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody configured a journal and the default file cannot be made: the chat runs anyway
    (journaled in memory), where a configured store that fails would stop it first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.delenv("MOOT_JOURNAL_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    async with ScriptedModelServer(default=answer) as server:
        result = await setup(url=server.base_url).a_run("Count with us.")
    assert result.chat_history == await _reference()
