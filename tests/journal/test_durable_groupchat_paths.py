"""The other ways into a group chat are journaled turn by turn as `a_run` is, and resume: a
`run_stream` left early, and a group chat an agent starts with `initiate_chat(manager, ...)`.
Also: introductions head every thread again on resume. Real SQLite file and real Postgres."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from chat_team import TURNS, answer, setup

from moot.agents import ConversableAgent, UserProxyAgent
from moot.groupchat import GroupChatManager, MessageEvent, TerminationEvent
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


@pytest.mark.parametrize("initiator", ["user", "a"])  # from outside, and a participant
async def test_a_group_chat_started_by_initiate_chat_is_journaled_and_resumes(
    store_url: str, initiator: str
) -> None:
    failed = {"once": True}

    def flaky(asked: RecordedRequest) -> Reply:
        if len(asked.messages) - 1 == 6 and failed.pop("once", False):
            return Reply(status=400, error="scripted failure")
        return answer(asked)

    async def start(manager: GroupChatManager, store: str | None, chat_id: str) -> None:
        who: ConversableAgent = manager.groupchat.agents[0]
        if initiator == "user":
            who = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        await who.a_initiate_chat(
            manager, "Count with us.", chat_id=chat_id, store=store, silent=True
        )

    async with ScriptedModelServer(default=answer) as reference_server:
        reference_manager = setup(url=reference_server.base_url, store=None)
        await start(reference_manager, None, "reference")
    assert reference_manager.last_result is not None

    async with ScriptedModelServer(default=flaky) as server:
        with pytest.raises(ModelError):
            await start(setup(url=server.base_url, store=store_url), store_url, "outer")
        async with await open_store(store_url) as store:
            group = await store.summary("outer:group")
            assert group.status is ChatStatus.RUNNING
            assert 0 < group.turns < TURNS
            stopped = group.turns

        manager = setup(url=server.base_url, store=store_url)
        await start(manager, store_url, "outer")

    assert manager.last_result is not None
    assert manager.last_result.chat_history == reference_manager.last_result.chat_history
    asked = [r for r in server.requests if r.messages]
    assert len(asked) == TURNS + 1  # each turn asked once, the failed one twice
    async with await open_store(store_url) as store:
        group = await store.summary("outer:group")
        assert (group.status, group.turns) == (ChatStatus.FINISHED, TURNS)
        turns = await store.turns("outer:group")
        spoken = [m["name"] for m in reference_manager.last_result.chat_history[1:]]
        assert [t.speaker for t in turns] == spoken
        assert stopped < TURNS


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
