"""Failures from issue 4 §4: the model, the tools, the limits, humans and cancellation."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import TYPE_CHECKING, Annotated, Any

import pytest

from moot.agents import (
    AssistantAgent,
    ConversableAgent,
    QueueInputProvider,
    UserProxyAgent,
    register_function,
)
from moot.models import (
    MalformedResponseError,
    ProviderUnavailableError,
    RetryPolicy,
    client_from_llm_config,
)
from moot.runtime import Runtime
from moot.testing import RecordedRequest, Reply, ScriptedModelServer

if TYPE_CHECKING:
    from pathlib import Path


def _pair(llm_config: dict[str, Any], **user: Any) -> tuple[AssistantAgent, UserProxyAgent]:
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    options: dict[str, Any] = {"human_input_mode": "NEVER", "code_execution_config": False}
    options.update(user)
    return assistant, UserProxyAgent("user", **options)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_429_then_success_waits_for_retry_after(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(Reply(status=429, retry_after=0.2), "Done. TERMINATE")
    assistant, user = _pair(llm_config)

    started = time.monotonic()
    result = await user.a_initiate_chat(assistant, message="hi", silent=True)

    assert time.monotonic() - started >= 0.2
    assert len(server.requests) == 2
    assert result.summary == "Done."
    assert result.cost.calls == 1  # the refused attempt is not a model answer


async def test_provider_down_falls_back_to_the_next_config(server: ScriptedModelServer) -> None:
    down = {"model": "gpt-4o", "base_url": f"http://127.0.0.1:{_closed_port()}/v1", "api_key": "k"}
    config = {"config_list": [down, *server.config_list(model="gpt-4o-mini")]}
    client = client_from_llm_config(config, retry=RetryPolicy(max_attempts=1))
    server.push("From the second provider. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=config, model_client=client)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    try:
        result = await user.a_initiate_chat(assistant, message="hi", silent=True)
    finally:
        await client.aclose()

    assert result.summary == "From the second provider."
    assert list(result.cost.including_cached) == ["gpt-4o-mini"]


async def test_provider_down_everywhere_raises_the_typed_error(llm_config: dict[str, Any]) -> None:
    down = {"model": "m", "base_url": f"http://127.0.0.1:{_closed_port()}/v1", "api_key": "k"}
    client = client_from_llm_config({"config_list": [down]}, retry=RetryPolicy(max_attempts=1))
    assistant = AssistantAgent("assistant", llm_config=llm_config, model_client=client)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    with pytest.raises(ProviderUnavailableError):
        await user.a_initiate_chat(assistant, message="hi", silent=True)
    await client.aclose()


async def test_malformed_reply_raises_a_typed_error(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push(Reply(malformed=True))
    assistant, user = _pair(llm_config)

    with pytest.raises(MalformedResponseError):
        await user.a_initiate_chat(assistant, message="hi", silent=True)
    assert len(server.requests) == 1  # never retried


async def test_max_consecutive_auto_reply_ends_the_chat(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.default = "Tell me more."
    assistant, user = _pair(llm_config, max_consecutive_auto_reply=2)

    result = await user.a_initiate_chat(assistant, message="go", silent=True)

    contents = [m["content"] for m in result.chat_history]
    assert contents == ["go", "Tell me more.", "", "Tell me more.", "", "Tell me more."]
    assert len(server.requests) == 3


async def test_max_turns_bounds_what_the_initiator_sends(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.default = "And then?"
    assistant, user = _pair(llm_config)
    user_model = AssistantAgent("writer", llm_config=llm_config)  # both sides use a model

    result = await user_model.a_initiate_chat(assistant, message="start", max_turns=2, silent=True)

    assert [m["role"] for m in result.chat_history] == ["assistant", "user", "assistant", "user"]
    assert len(server.requests) == 3  # reply, writer's 2nd message, reply
    del user


async def test_tool_errors_go_back_to_the_model(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    def divide(a: Annotated[int, "numerator"], b: Annotated[int, "denominator"]) -> float:
        return a / b

    server.push(
        Reply(
            tool_calls=[
                {"name": "divide", "arguments": {"a": 6, "b": 3}, "id": "ok"},
                {"name": "divide", "arguments": {"a": 1, "b": 0}, "id": "raises"},
                {"name": "divide", "arguments": {"a": "six"}, "id": "invalid"},
                {"name": "divide", "arguments": "{not json", "id": "garbled"},
                {"name": "multiply", "arguments": {}, "id": "unknown"},
            ]
        ),
        "6 / 3 is 2. TERMINATE",
    )
    assistant, user = _pair(llm_config)
    register_function(divide, caller=assistant, executor=user, description="Divide a by b.")

    result = await user.a_initiate_chat(assistant, message="divide things", silent=True)

    tools = server.requests[0].body["tools"]
    assert tools[0]["function"]["name"] == "divide"
    params = tools[0]["function"]["parameters"]
    assert params["properties"]["a"] == {"type": "integer", "description": "numerator"}
    assert params["required"] == ["a", "b"]
    responses = {r["tool_call_id"]: r["content"] for r in result.chat_history[2]["tool_responses"]}
    assert responses["ok"] == "2.0"
    assert responses["raises"].startswith("Error: ZeroDivisionError")
    assert responses["invalid"].startswith("Error: invalid arguments for divide: a:")
    assert "b: Field required" in responses["invalid"]
    assert responses["garbled"].startswith("Error: the arguments for divide are not valid JSON")
    assert responses["unknown"] == "Error: Function 'multiply' not found"
    sent = server.requests[1].messages
    assert [m["role"] for m in sent[-5:]] == ["tool"] * 5
    assert sent[-5]["tool_call_id"] == "ok"
    assert result.summary == "6 / 3 is 2."


async def test_parallel_tool_calls_run_concurrently(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    both_started = asyncio.Event()
    started = 0

    async def wait_for_the_other(name: str) -> str:
        nonlocal started
        started += 1
        if started == 2:
            both_started.set()
        await both_started.wait()  # deadlocks unless the two calls run at the same time
        return f"hello {name}"

    server.push(
        Reply(
            tool_calls=[
                {"name": "greet", "arguments": {"name": "a"}},
                {"name": "greet", "arguments": {"name": "b"}},
            ]
        ),
        "Greeted both. TERMINATE",
    )
    assistant, user = _pair(llm_config)
    register_function(
        wait_for_the_other, caller=assistant, executor=user, name="greet", description="Greet."
    )

    result = await user.a_initiate_chat(assistant, message="greet", silent=True)

    assert result.chat_history[2]["content"] == "hello a\n\nhello b"


async def test_waiting_for_a_human_does_not_hold_up_other_chats(
    server: ScriptedModelServer,
) -> None:
    def answer(request: RecordedRequest) -> str:
        return f"Finished {request.messages[1]['content']}. TERMINATE"

    server.default = answer
    humans = QueueInputProvider()
    config = {"config_list": server.config_list()}
    assistant = AssistantAgent("assistant", llm_config=config)
    asks_human = UserProxyAgent(
        "asks", human_input_mode="TERMINATE", code_execution_config=False, input_provider=humans
    )
    never_asks = UserProxyAgent("never", human_input_mode="NEVER", code_execution_config=False)

    async with Runtime() as runtime:
        waiting = asyncio.create_task(
            asks_human.a_initiate_chat(assistant, message="task A", silent=True, runtime=runtime)
        )
        question = await humans.next()  # chat A now waits for a human ...
        others = await asyncio.gather(
            *(
                never_asks.a_initiate_chat(
                    assistant, message=f"task {n}", silent=True, runtime=runtime
                )
                for n in range(5)
            )
        )  # ... while five other chats on the same runtime and assistant finish
        assert not waiting.done()
        question.answer("exit")
        result = await waiting

    assert [o.summary for o in others] == [f"Finished task {n}." for n in range(5)]
    assert question.request.agent == "asks"
    assert question.request.chat_id == result.chat_id
    assert result.summary == "Finished task A."
    assert result.human_input == ["exit"]


async def test_a_human_answer_replaces_the_auto_reply(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    humans = QueueInputProvider()
    server.push("Is this right? TERMINATE", "Good, done. TERMINATE")
    assistant, user = _pair(llm_config, human_input_mode="TERMINATE", input_provider=humans)

    chat = asyncio.create_task(user.a_initiate_chat(assistant, message="q", silent=True))
    (await humans.next()).answer("Yes, go on")
    (await humans.next()).answer("")  # enter at a termination message ends the chat
    result = await chat

    assert [m["content"] for m in result.chat_history][2] == "Yes, go on"
    assert result.human_input == ["Yes, go on", ""]


async def test_cancelling_a_chat_stops_the_model_request() -> None:
    async with ScriptedModelServer([Reply(hang=True)]) as server:
        assistant = AssistantAgent("assistant", llm_config={"config_list": server.config_list()})
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        chat = asyncio.create_task(user.a_initiate_chat(assistant, message="hi", silent=True))
        await server.wait_for(lambda s: len(s.requests) == 1)

        chat.cancel()
        with pytest.raises(asyncio.CancelledError):
            await chat
        await server.wait_for(lambda s: s.disconnects == 1)  # the client hung up


CALL_HOME = """```python
import os, socket, time
conn = socket.create_connection(("127.0.0.1", {port}))
conn.sendall(str(os.getpid()).encode() + b"\\n")
time.sleep(600)
```"""


async def test_cancelling_a_chat_stops_the_running_code(
    server: ScriptedModelServer, llm_config: dict[str, Any], local_code: dict[str, Any]
) -> None:
    called: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await called.put((reader, writer))

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.push(CALL_HOME.format(port=port))
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=local_code)
    async with listener:
        chat = asyncio.create_task(user.a_initiate_chat(assistant, message="run", silent=True))
        reader, writer = await called.get()  # the code runs and has called home
        pid = int(await reader.readline())

        chat.cancel()
        with pytest.raises(asyncio.CancelledError):
            await chat
        assert await reader.read() == b""  # the process died, so its socket closed
        writer.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_tool_exception_never_crashes_the_chat(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    def explode() -> str:
        raise RuntimeError("kaboom")

    server.push(Reply(tool_calls=[{"name": "explode", "arguments": {}}]), "Oh well. TERMINATE")
    assistant, user = _pair(llm_config)
    register_function(explode, caller=assistant, executor=user, description="Explodes.")

    result = await user.a_initiate_chat(assistant, message="go", silent=True)

    assert result.chat_history[2]["content"] == "Error: RuntimeError: kaboom"
    assert json.dumps(result.chat_history)  # the history stays plain JSON


async def test_an_agent_without_the_tool_answers_not_found(
    server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    server.push(Reply(tool_calls=[{"name": "ghost", "arguments": {}}]), "Fine. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    plain = ConversableAgent("plain", human_input_mode="NEVER", llm_config=False)

    result = await plain.a_initiate_chat(assistant, message="go", silent=True)

    assert result.chat_history[2]["content"] == "Error: Function 'ghost' not found"
    del tmp_path
