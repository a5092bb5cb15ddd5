"""Hostile tool calls (issue 17, item 9): each becomes an error result the model sees, the chat
goes on, and many calls in one answer run with bounded concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from moot.agents import AssistantAgent, UserProxyAgent, register_function
from moot.agents._tools import MAX_CONCURRENT_TOOL_CALLS
from moot.testing import Reply, ScriptedModelServer

NESTED = "[" * 100_000 + "]" * 100_000


def _pair(llm_config: dict[str, Any]) -> tuple[AssistantAgent, UserProxyAgent]:
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)

    def add(a: int, b: int) -> int:
        return a + b

    register_function(add, caller=assistant, executor=user, description="Add two integers.")
    return assistant, user


@pytest.mark.parametrize(
    ("arguments", "name", "expected"),
    [
        ("{not json", "add", "Error: the arguments for add are not valid JSON"),
        ("[1, 2]", "add", "Error: the arguments for add must be a JSON object"),
        ('"a string"', "add", "Error: the arguments for add must be a JSON object"),
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "add", "Error: the arguments for add nest"),
        (NESTED, "add", "Error: the arguments for add nest"),
        ('{"a": "' + "x" * (10 << 20) + '", "b": 1}', "add", "Error: the arguments for add are"),
        (
            '{"a": "' + "[{" * 200 + '\\"\\\\", "b": 1}',
            "add",
            "Error: invalid arguments for add: a:",
        ),
        ('{"a": 1, "b": 2}', "no_such_tool", "Error: Function 'no_such_tool' not found"),
        ('{"a": 1, "b": 2}', "../../etc/passwd\x00" + "é" * 300, "Error: Function '../../etc"),
        ('{"a": 1, "b": 2}', "", "Error: Function '' not found"),
    ],
    ids=[
        "invalid-json",
        "array",
        "string",
        "nested-objects",
        "nested-arrays-100k",
        "ten-megabytes",
        "brackets-inside-a-string-are-not-depth",
        "unknown-tool",
        "odd-name",
        "empty-name",
    ],
)
async def test_a_bad_tool_call_is_an_error_result_and_the_chat_goes_on(
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    arguments: str,
    name: str,
    expected: str,
) -> None:
    server.push(
        Reply(
            tool_calls=[
                {"name": name, "arguments": arguments, "id": "bad"},
                {"name": "add", "arguments": {"a": 2, "b": 3}, "id": "good"},
            ]
        ),
        "Noted. TERMINATE",
    )
    assistant, user = _pair(llm_config)

    # No journal: a 10 MB message is over its row limit (journaled, the chat stops, typed).
    result = await user.a_initiate_chat(assistant, message="go", silent=True, store=None)

    responses = {r["tool_call_id"]: r["content"] for r in result.chat_history[2]["tool_responses"]}
    assert responses["bad"].startswith(expected)
    assert len(responses["bad"]) < 1000  # the error names the problem, it does not echo the input
    assert responses["good"] == "5"
    sent = server.requests[1].messages
    assert [m["tool_call_id"] for m in sent[-2:]] == ["bad", "good"]  # the model saw both
    assert result.summary == "Noted."


async def test_malformed_tool_call_entries_are_error_results(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    assistant, user = _pair(llm_config)
    server.push("Noted. TERMINATE")
    message = {
        "content": None,
        "tool_calls": [
            "not a mapping",
            {"id": "no-function"},
            {"id": "function-is-text", "function": "add"},
            {"id": "arguments-are-a-list", "function": {"name": "add", "arguments": [1, 2]}},
            {"id": "arguments-are-a-number", "function": {"name": "add", "arguments": 7}},
            {"id": "name-is-a-dict", "function": {"name": {"x": 1}, "arguments": "{}"}},
            {"id": "ok", "function": {"name": "add", "arguments": {"a": 1, "b": 1}}},
        ],
    }

    reply = await user.a_generate_reply(messages=[message], sender=assistant)

    assert isinstance(reply, dict)
    contents = [r["content"] for r in reply["tool_responses"]]
    assert all(text.startswith("Error: ") for text in contents[:-1]), contents
    assert contents[-1] == "2"
    assert len(contents) == 7


async def test_three_hundred_calls_in_one_answer_run_with_bounded_concurrency(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    running = peak = 0
    enough, release = asyncio.Event(), asyncio.Event()

    async def slow(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == MAX_CONCURRENT_TOOL_CALLS:
            enough.set()
        await release.wait()
        running -= 1
        return n

    async def release_when_nothing_else_can_start() -> None:
        await enough.wait()
        await anyio.wait_all_tasks_blocked()  # every call that may start has started
        release.set()

    server.push(
        Reply(tool_calls=[{"name": "slow", "arguments": {"n": n}} for n in range(300)]),
        "All done. TERMINATE",
    )
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
    register_function(slow, caller=assistant, executor=user, description="Slow identity.")

    async with asyncio.TaskGroup() as group:
        group.create_task(release_when_nothing_else_can_start())
        result = await user.a_initiate_chat(assistant, message="go", silent=True)

    assert peak == MAX_CONCURRENT_TOOL_CALLS
    contents = [r["content"] for r in result.chat_history[2]["tool_responses"]]
    assert contents == [str(n) for n in range(300)]
    assert result.summary == "All done."
