"""Many chats at once over the same agent objects: each chat keeps its own history and counters."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import (
    AssistantAgent,
    QueueInputProvider,
    UserProxyAgent,
)
from moot.runtime import Runtime
from moot.testing import ScriptedModelClient, ScriptedModelServer

if TYPE_CHECKING:
    from moot.testing import RecordedRequest


def _answer(request: RecordedRequest) -> str:
    """Reply from what this request carries: the chat's number and how far it has got."""
    first = request.messages[1]["content"]
    number = re.fullmatch(r"task (\d+)", first)
    assert number is not None, first
    mine = [m for m in request.messages if m["role"] == "assistant"]
    if len(mine) < 2:
        return f"task {number[1]} step {len(mine) + 1}"
    return f"task {number[1]} finished. TERMINATE"


async def test_fifty_concurrent_chats_over_two_agents_never_mix(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.default = _answer
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config=False, default_auto_reply="ok"
    )

    async with Runtime() as runtime:
        results = await asyncio.gather(
            *(
                user.a_initiate_chat(assistant, message=f"task {n}", silent=True, runtime=runtime)
                for n in range(50)
            )
        )
        stats = runtime.statistics()

    assert len({r.chat_id for r in results}) == 50
    for n, result in enumerate(results):
        assert [m["content"] for m in result.chat_history] == [
            f"task {n}",
            f"task {n} step 1",
            "ok",
            f"task {n} step 2",
            "ok",
            f"task {n} finished. TERMINATE",
        ]
        assert result.summary == f"task {n} finished."
        assert result.cost.calls == 3
    assert len(server.requests) == 150
    # every message between the agents went through the runtime: per chat the opening message,
    # six turns (the last one answered None), the summary and two closes; plus one `Hold` per
    # agent for its resource holder
    assert stats.handled == 50 * 10 + 2
    assert stats.errored == stats.dead_lettered == 0


async def test_a_chat_continues_its_own_thread_when_history_is_kept(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("first answer. TERMINATE", "second answer. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    await user.a_initiate_chat(assistant, message="one", silent=True)
    second = await user.a_initiate_chat(assistant, message="two", silent=True, clear_history=False)

    assert [m["content"] for m in second.chat_history] == [
        "one",
        "first answer. TERMINATE",
        "two",
        "second answer. TERMINATE",
    ]
    assert [m["content"] for m in server.requests[1].messages[1:]] == [
        "one",
        "first answer. TERMINATE",
        "two",
    ]
    assert user.chat_messages[assistant] == second.chat_history
    last = assistant.last_message(user)
    assert last is not None
    assert last["content"] == "second answer. TERMINATE"


async def test_a_cancelled_chat_leaves_a_shared_runtime_and_its_agents_usable(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    humans = QueueInputProvider()
    server.default = "Shall I go on? TERMINATE"
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user", human_input_mode="TERMINATE", code_execution_config=False, input_provider=humans
    )

    async with Runtime() as runtime:
        stuck = asyncio.create_task(
            user.a_initiate_chat(assistant, message="one", silent=True, runtime=runtime)
        )
        await humans.next()  # the chat waits for a human who never answers
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert runtime.statistics().in_flight == 0

        again = asyncio.create_task(
            user.a_initiate_chat(assistant, message="two", silent=True, runtime=runtime)
        )
        (await humans.next()).answer("exit")
        result = await again

    assert [m["content"] for m in result.chat_history] == ["two", "Shall I go on? TERMINATE"]


async def test_send_continues_the_latest_chat(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Hi. TERMINATE", "Again. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    # As in AutoGen, a send is answered when asked, or after an initiate_chat between the two.
    await user.a_send("hello", assistant, request_reply=True, silent=True)
    await user.a_send("note this", assistant, request_reply=False, silent=True)
    await user.a_send("and again", assistant, request_reply=True, silent=True)

    assert [m["content"] for m in user.chat_messages[assistant]] == [
        "hello",
        "Hi. TERMINATE",
        "note this",
        "and again",
        "Again. TERMINATE",
    ]
    assert len(server.requests) == 2


async def test_chats_on_one_runtime_share_a_given_model_client_and_leave_it_open() -> None:
    model = ScriptedModelClient(default="Fine. TERMINATE")
    assistant = AssistantAgent("assistant", model_client=model)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    async with Runtime() as runtime:
        for n in range(3):
            await user.a_initiate_chat(assistant, message=f"{n}", silent=True, runtime=runtime)
    assert [request.messages[-1]["content"] for request in model.requests] == ["0", "1", "2"]
    assert model.closed == 0  # a client given to the agent stays its owner's to close


async def test_the_model_client_made_from_llm_config_is_closed_when_the_runtime_stops() -> None:
    async with ScriptedModelServer(default="Fine. TERMINATE") as server:
        assistant = AssistantAgent("assistant", llm_config={"config_list": server.config_list()})
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        async with Runtime() as runtime:
            for n in range(3):
                await user.a_initiate_chat(assistant, message=f"{n}", silent=True, runtime=runtime)
            assert server.open_connections > 0  # kept alive between chats
        await server.wait_for(lambda s: s.open_connections == 0)
    assert len(server.requests) == 3
