"""A journaled two-agent chat stopped by a failure resumes by its id with fresh agents: the same
transcript as an uninterrupted run, and no completed message's model call made again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from chat_team import answer

from moot.agents import AssistantAgent
from moot.journal import ChatFinishedError, ChatStatus, open_store
from moot.models import ModelError
from moot.testing import RecordedRequest, Reply, ScriptedModelServer

if TYPE_CHECKING:
    from pathlib import Path


def _pair(url: str) -> tuple[AssistantAgent, AssistantAgent]:
    config = {"config_list": [{"model": "scripted", "base_url": url, "api_key": "x"}]}
    return (
        AssistantAgent("a", system_message="You are a.", llm_config=config),
        AssistantAgent("b", system_message="You are b.", llm_config=config),
    )


async def _chat(url: str, store: Any, chat_id: str | None = None) -> list[dict[str, Any]]:
    a, b = _pair(url)
    result = await a.a_initiate_chat(
        b, "Count with us.", max_turns=4, silent=True, store=store, chat_id=chat_id
    )
    return result.chat_history


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    dsn: str = request.getfixturevalue("postgres_dsn")
    return dsn


async def test_a_failed_two_agent_chat_resumes_by_id_without_asking_again(url: str) -> None:
    async with ScriptedModelServer(default=answer) as reference_server:
        reference = await _chat(reference_server.base_url, None)
    assert len(reference) == 8

    failed = {"once": True}

    def flaky(asked: RecordedRequest) -> Reply:
        if len(asked.messages) - 1 == 5 and failed.pop("once", False):
            return Reply(status=400, error="scripted failure")
        return answer(asked)

    async with ScriptedModelServer(default=flaky) as server:
        with pytest.raises(ModelError):
            await _chat(server.base_url, url, "t1")
        async with await open_store(url) as store:
            assert (await store.summary("t1")).turns == 5
        resumed = await _chat(server.base_url, url, "t1")
        assert resumed == reference
        asked = [len(r.messages) - 1 for r in server.requests]
        assert all(asked.count(n) == 1 for n in range(1, 5)), asked
        assert asked.count(5) == 2  # the message in flight: failed once, asked again once
        async with await open_store(url) as store:
            assert (await store.summary("t1")).status is ChatStatus.FINISHED
        with pytest.raises(ChatFinishedError):
            await _chat(server.base_url, url, "t1")
