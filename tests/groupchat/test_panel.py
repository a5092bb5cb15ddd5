"""The issue's panel and many concurrent chats against the scripted model server over real HTTP:
the LLM selector picks each speaker, chats share agent objects without sharing histories, and a
cancelled chat stops its model request and its running code while the others go on."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from moot.agents import (
    AssistantAgent,
    UserProxyAgent,
)
from moot.groupchat import (
    CostBudget,
    GroupChat,
    GroupChatManager,
    Handoffs,
    MaxMessages,
    TokenBudget,
    TokenUsageEvent,
    handoff_tool,
)
from moot.runtime import Runtime
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from moot.testing import RecordedRequest

CODE = """Here is the function with a test.
```python
def reverse(text):
    return text[::-1]

assert reverse("moot") == "toom"
print("tests passed")
```"""


def _system(request: RecordedRequest) -> str:
    messages = request.messages
    return str(messages[0].get("content")) if messages else ""


def _panel(server: ScriptedModelServer, work_dir: Path, **manager_options: Any) -> Any:
    llm_config = {"config_list": server.config_list(price=[0.01, 0.02]), "timeout": 30}
    planner = AssistantAgent(
        "planner",
        llm_config=llm_config,
        system_message="Break tasks into clear steps. Don't write code yourself.",
    )
    coder = AssistantAgent(
        "coder",
        llm_config=llm_config,
        system_message="Write clean Python code. Focus on correctness.",
    )
    reviewer = AssistantAgent(
        "reviewer",
        llm_config=llm_config,
        system_message="Review code for bugs and security issues. Be critical.",
    )
    executor = UserProxyAgent(
        "executor",
        human_input_mode="NEVER",
        code_execution_config={"work_dir": str(work_dir), "use_docker": False},
    )
    group = GroupChat(agents=[planner, coder, reviewer, executor], messages=[], max_round=20)
    manager = GroupChatManager(groupchat=group, llm_config=llm_config, **manager_options)
    return executor, manager


def _agents_answer(request: RecordedRequest) -> str:
    system = _system(request)
    if system.startswith("Break tasks"):
        return "1. Write reverse(text). 2. Test it on one word."
    if system.startswith("Write clean"):
        return CODE
    if system.startswith("Review code"):
        return "The function is correct and the test passed. TERMINATE"
    raise AssertionError(f"unexpected request: {system[:60]!r}")


async def test_the_panel_from_the_issue(tmp_path: Path) -> None:
    picks = iter(["Next speaker: Planner", "coder", "The executor should run it.", "REVIEWER"])

    def answer(request: RecordedRequest) -> str:
        if "response_format" in request.body:
            return next(picks)
        return _agents_answer(request)

    async with ScriptedModelServer(default=answer) as server:
        executor, manager = _panel(server, tmp_path)
        result = await executor.a_initiate_chat(
            manager, message="Write and test a function that reverses a string.", silent=True
        )
    history = result.chat_history
    assert [m.get("name") for m in history] == [
        "executor",
        "planner",
        "coder",
        "executor",
        "reviewer",
    ]
    assert history[3]["content"].startswith("exitcode: 0")
    assert "tests passed" in history[3]["content"]
    assert result.summary == "The function is correct and the test passed."
    selections = [r for r in server.requests if "response_format" in r.body]
    assert len(selections) == 4  # one call per pick, whatever the phrasing
    reason = manager.stop_reason(result.chat_id)
    assert reason is not None
    assert reason.condition == "MessagePredicate"
    assert manager.last_result is not None
    assert manager.last_result.cost > 0  # the selector's calls, priced
    roster = selections[0].messages[0]["content"]
    assert "planner: Break tasks" in roster


async def test_token_and_dollar_budgets_end_the_panel(tmp_path: Path) -> None:
    def answer(request: RecordedRequest) -> Reply:
        if "response_format" in request.body:
            return Reply("planner", usage={"prompt_tokens": 100, "completion_tokens": 1})
        return Reply("more planning", usage={"prompt_tokens": 100, "completion_tokens": 50})

    async with ScriptedModelServer(default=answer) as server:
        executor, manager = _panel(server, tmp_path, termination=TokenBudget(500))
        await executor.a_initiate_chat(manager, message="Plan something.", silent=True)
        reason = manager.last_result.stop_reason if manager.last_result else None
        assert reason is not None
        assert reason.condition == "TokenBudget"
        assert manager.last_result is not None
        assert manager.last_result.usage.total_tokens >= 500
        assert manager.last_result.turns == 2  # 101 + 150 per turn: 251, 502

        executor, manager = _panel(server, tmp_path, termination=CostBudget(0.004))
        events = [e async for e in manager.run_stream("Plan something.")]
        usage = [e for e in events if isinstance(e, TokenUsageEvent)]
        assert {e.source for e in usage} == {"selector", "planner"}
        assert manager.last_result is not None
        assert manager.last_result.stop_reason.condition == "CostBudget"


async def test_malformed_selector_answers_in_a_chat(tmp_path: Path) -> None:
    picks = iter(["", "planner", "planner and coder", "coder", "Bob", "nobody at all", "?"])

    def answer(request: RecordedRequest) -> str:
        if "response_format" in request.body:
            return next(picks)
        return _agents_answer(request)

    async with ScriptedModelServer(default=answer) as server:
        _executor, manager = _panel(server, tmp_path, termination=MaxMessages(4))
        result = await manager.a_run("Write and test a reverse function.", sender="user")
    assert len(result.chat_history) == 4
    assert len([r for r in server.requests if "response_format" in r.body]) == 7
    # "" then planner; two names then coder; three unclear answers: the fallback, legally
    assert [m["name"] for m in result.chat_history][1:3] == ["planner", "coder"]
    assert result.chat_history[3]["name"] in {"planner", "coder", "reviewer", "executor"}


async def test_two_hundred_concurrent_chats_over_shared_agents() -> None:
    marker = re.compile(r"task-\d+")

    def answer(request: RecordedRequest) -> str:
        tasks = {m for msg in request.messages for m in marker.findall(str(msg.get("content")))}
        assert len(tasks) == 1, f"a request mixed chats: {sorted(tasks)}"
        task = tasks.pop()
        who = _system(request).removeprefix("You are ").rstrip(".")
        early = any("finish early" in str(m.get("content")) for m in request.messages)
        if who == "closer" and early:
            return f"{who} wraps up {task}. TERMINATE"
        return f"{who} works on {task}"

    async with ScriptedModelServer(default=answer) as server:
        llm_config = {"config_list": server.config_list(), "timeout": 60}
        team = [
            AssistantAgent(name, llm_config=llm_config, system_message=f"You are {name}.")
            for name in ("opener", "closer")
        ]
        group = GroupChat(team, messages=[], max_round=7, speaker_selection_method="round_robin")
        manager = GroupChatManager(group)
        async with Runtime() as runtime:
            results = await asyncio.gather(
                *(
                    manager.a_run(
                        f"task-{i}: {'finish early' if i % 2 else 'take your time'}",
                        runtime=runtime,
                        chat_id=f"chat-{i}",
                    )
                    for i in range(200)
                )
            )
    for i, result in enumerate(results):
        texts = " ".join(str(m["content"]) for m in result.chat_history)
        assert set(marker.findall(texts)) == {f"task-{i}"}
        if i % 2:
            assert result.stop_reason.condition == "MessagePredicate"
            assert len(result.chat_history) == 3
        else:
            assert result.stop_reason.condition == "MaxMessages"
            assert len(result.chat_history) == 7
    assert not server.errors


async def test_a_cancelled_chat_stops_its_model_request_and_others_go_on() -> None:
    def answer(request: RecordedRequest) -> Reply:
        if "hang" in str(request.messages[1].get("content")):
            return Reply(hang=True)
        return Reply("fine")

    async with ScriptedModelServer(default=answer) as server:
        llm_config = {"config_list": server.config_list(), "timeout": 600}
        team = [AssistantAgent(n, llm_config=llm_config) for n in ("a", "b")]
        group = GroupChat(team, max_round=5, speaker_selection_method="round_robin")
        manager = GroupChatManager(group)
        async with Runtime() as runtime, anyio.create_task_group() as tasks:
            stuck = asyncio.ensure_future(manager.a_run("hang here", runtime=runtime))
            others: list[Any] = []

            async def other(i: int) -> None:
                others.append(await manager.a_run(f"normal {i}", runtime=runtime))

            for i in range(3):
                tasks.start_soon(other, i)
            await server.wait_for(lambda s: any("hang" in str(r.messages[1:2]) for r in s.requests))
            stuck.cancel()
            await asyncio.gather(stuck, return_exceptions=True)
            await server.wait_for(lambda s: s.disconnects >= 1)
    assert stuck.cancelled()
    assert len(others) == 3
    assert all(r.stop_reason.condition == "MaxMessages" for r in others)


async def test_a_cancelled_chat_stops_its_running_code(tmp_path: Path) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    code = (
        "```python\nimport os, time\n"
        f"with open({str(fifo)!r}, 'w') as f:\n    f.write(str(os.getpid()))\n"
        "time.sleep(600)\n```"
    )
    coder_replies = iter([code])

    def answer(request: RecordedRequest) -> str:
        return next(coder_replies)

    async with ScriptedModelServer(default=answer) as server:
        coder = AssistantAgent("coder", llm_config={"config_list": server.config_list()})
        runner = UserProxyAgent(
            "runner",
            human_input_mode="NEVER",
            code_execution_config={"work_dir": str(tmp_path), "use_docker": False, "timeout": 600},
        )
        group = GroupChat([coder, runner], max_round=5, speaker_selection_method="round_robin")
        manager = GroupChatManager(group)
        async with Runtime() as runtime:
            chat = asyncio.ensure_future(manager.a_run("sleep a while", runtime=runtime))
            pid = int(await anyio.to_thread.run_sync(fifo.read_text))
            chat.cancel()
            await asyncio.gather(chat, return_exceptions=True)
    assert chat.cancelled()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:  # still there: it must at least be a reaped-or-dying zombie, never a sleeper
        status = Path(f"/proc/{pid}/status").read_text()
        assert "zombie" in status or "Z (" in status, status


async def test_a_swarm_handoff_between_model_agents() -> None:
    def answer(request: RecordedRequest) -> Reply:
        if _system(request) == "You triage.":
            return Reply(
                tool_calls=[{"id": "call-1", "name": "transfer_to_billing", "arguments": {}}]
            )
        return Reply("Your refund is on its way. TERMINATE")

    async with ScriptedModelServer(default=answer) as server:
        config = {"config_list": server.config_list()}
        triage = AssistantAgent(
            "triage",
            system_message="You triage.",
            llm_config={**config, "tools": [handoff_tool("billing")]},
        )
        billing = AssistantAgent("billing", system_message="You do billing.", llm_config=config)
        group = GroupChat([triage, billing], max_round=10, speaker_selection_method=Handoffs())
        result = await GroupChatManager(group).a_run("I want a refund.")
    assert [m["name"] for m in result.chat_history] == [
        "user",
        "triage",
        "chat_manager",
        "billing",
    ]
    offered = server.requests[0].body["tools"]
    assert offered[0]["function"]["name"] == "transfer_to_billing"
    seen = server.requests[1].messages  # what billing's model was asked with
    roles = [(m["role"], m.get("tool_call_id")) for m in seen]
    assert ("tool", "call-1") in roles
    assert seen[roles.index(("tool", "call-1")) - 1]["tool_calls"][0]["id"] == "call-1"
    assert result.stop_reason.condition == "MessagePredicate"
