"""The other ways into a group chat are journaled turn by turn as `a_run` is, and resume: a
`run_stream` left early, and a group chat an agent starts with `initiate_chat(manager, ...)`.
Also: introductions head every thread again on resume. Real SQLite file and real Postgres."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from chat_team import TURNS, answer, setup

from moot.agents import UserProxyAgent
from moot.groupchat import MessageEvent, TerminationEvent
from moot.journal import ChatStatus, open_store
from moot.models import ModelError
from moot.testing import RecordedRequest, Reply, ScriptedModelServer

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


def _asked(server: ScriptedModelServer) -> list[int]:
    return [len(request.messages) - 1 for request in server.requests if request.messages]


async def _reference() -> list[dict[str, Any]]:
    async with ScriptedModelServer(default=answer) as server:
        result = await setup(url=server.base_url, store=None).a_run("Count with us.")
    return result.chat_history


async def test_a_run_stream_left_early_resumes_by_id_without_asking_again(store_url: str) -> None:
    reference = await _reference()
    async with ScriptedModelServer(default=answer) as server:
        seen = 0
        stream = setup(url=server.base_url, store=store_url).run_stream(
            "Count with us.", chat_id="streamed"
        )
        async for event in stream:
            if isinstance(event, MessageEvent) and event.turn == 4:
                break  # leaving the loop cancels the chat after turn 4 was journaled
            seen += 1
        await stream.aclose()
        async with await open_store(store_url) as store:
            assert (await store.summary("streamed")).turns == 4

        ended = None
        async for event in setup(url=server.base_url, store=store_url).run_stream(
            chat_id="streamed"
        ):
            if isinstance(event, TerminationEvent):
                ended = event
    assert ended is not None
    assert ended.result is not None
    assert ended.result.chat_history == reference
    asked = _asked(server)
    assert all(asked.count(turn) == 1 for turn in range(1, 5)), asked
    async with await open_store(store_url) as store:
        assert (await store.summary("streamed")).status is ChatStatus.FINISHED
        assert (await store.summary("streamed")).turns == TURNS


async def test_a_group_chat_started_by_initiate_chat_is_journaled_and_resumes(
    store_url: str,
) -> None:
    failed = {"once": True}

    def flaky(asked: RecordedRequest) -> Reply:
        if len(asked.messages) - 1 == 6 and failed.pop("once", False):
            return Reply(status=400, error="scripted failure")
        return answer(asked)

    def user() -> UserProxyAgent:
        return UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    async with ScriptedModelServer(default=answer) as reference_server:
        reference_manager = setup(url=reference_server.base_url, store=None)
        await user().a_initiate_chat(reference_manager, "Count with us.", store=None, silent=True)
    assert reference_manager.last_result is not None

    async with ScriptedModelServer(default=flaky) as server:
        with pytest.raises(ModelError):
            await user().a_initiate_chat(
                setup(url=server.base_url, store=store_url),
                "Count with us.",
                chat_id="outer",
                store=store_url,
                silent=True,
            )
        async with await open_store(store_url) as store:
            group = await store.summary("outer:group")
            assert (group.status, group.turns) == (ChatStatus.RUNNING, 5)

        manager = setup(url=server.base_url, store=store_url)
        await user().a_initiate_chat(
            manager, "Count with us.", chat_id="outer", store=store_url, silent=True
        )

    assert manager.last_result is not None
    assert manager.last_result.chat_history == reference_manager.last_result.chat_history
    asked = _asked(server)
    assert all(asked.count(turn) == 1 for turn in range(1, 6)), asked
    async with await open_store(store_url) as store:
        group = await store.summary("outer:group")
        assert (group.status, group.turns) == (ChatStatus.FINISHED, TURNS)
        turns = await store.turns("outer:group")
        assert [t.speaker for t in turns[:3]] == ["a", "b", "c"]


async def test_introductions_head_every_thread_again_on_resume(store_url: str) -> None:
    def introducing(url: str, store: Any) -> Any:
        manager = setup(url=url, store=store)
        manager.groupchat.send_introductions = True
        return manager

    async with ScriptedModelServer(default=answer) as reference_server:
        reference = await introducing(reference_server.base_url, None).a_run("Count with us.")
    # each model hears the introductions too: "a hears 2 messages" on turn 1
    assert reference.chat_history[1]["content"].endswith("hears 2 messages")

    failed = {"once": True}

    def flaky(asked: RecordedRequest) -> Reply:
        if len(asked.messages) - 1 == 6 and failed.pop("once", False):
            return Reply(status=400, error="scripted failure")
        return answer(asked)

    async with ScriptedModelServer(default=flaky) as server:
        with pytest.raises(ModelError):
            await introducing(server.base_url, store_url).a_run("Count with us.", chat_id="intro")
        resumed = await introducing(server.base_url, store_url).a_run(chat_id="intro")

    assert resumed.chat_history == reference.chat_history
