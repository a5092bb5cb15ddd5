"""approve_code= / approve_tools= on the executing agent: "never", "always" (asks the input
provider) or a callable; a denial runs nothing and the model is told."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AgentConfigError, AssistantAgent, ScriptedInputProvider, UserProxyAgent
from moot.agents.approvals import ApprovalDecision, ApprovalRequest
from moot.testing import Reply

if TYPE_CHECKING:
    from pathlib import Path

    from moot.testing import ScriptedModelServer

CODE = "```python\nopen('ran.txt', 'w').write('x')\nprint(6 * 7)\n```"


def _runner(local_code: dict[str, Any], **options: Any) -> UserProxyAgent:
    return UserProxyAgent(
        "runner",
        human_input_mode="NEVER",
        max_consecutive_auto_reply=1,
        code_execution_config=local_code,
        **options,
    )


@pytest.mark.parametrize(("answer", "runs"), [("yes", True), ("no not now", False)])
async def test_always_asks_the_input_provider(
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    local_code: dict[str, Any],
    tmp_path: Path,
    answer: str,
    runs: bool,
) -> None:
    server.push(CODE, "done TERMINATE")
    humans = ScriptedInputProvider([answer])
    runner = _runner(local_code, approve_code="always", input_provider=humans)
    await runner.a_initiate_chat(AssistantAgent("a", llm_config=llm_config), message="go")
    assert "6 * 7" in humans.requests[0].prompt
    assert bool(list(tmp_path.rglob("ran.txt"))) is runs
    told = server.requests[-1].last_text
    assert ("42" in told) is runs
    if not runs:
        assert "approval denied: not now" in told


async def test_a_callable_decides_and_sees_the_request(
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    local_code: dict[str, Any],
    tmp_path: Path,
) -> None:
    server.push(CODE, "done TERMINATE")
    seen: list[ApprovalRequest] = []

    async def rule(request: ApprovalRequest) -> ApprovalDecision:
        seen.append(request)
        return ApprovalDecision(approved=False, reason="writes files")

    runner = _runner(local_code, approve_code=rule)
    await runner.a_initiate_chat(AssistantAgent("a", llm_config=llm_config), message="go")
    assert seen[0].kind == "code"
    assert seen[0].agent == "runner"
    assert not list(tmp_path.rglob("ran.txt"))
    assert "approval denied: writes files" in server.requests[-1].last_text


async def test_a_denied_tool_call_is_not_run(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
    }
    server.push(Reply(tool_calls=[call]), "done TERMINATE")
    calls: list[int] = []
    assistant = AssistantAgent("a", llm_config=llm_config)
    user = UserProxyAgent(
        "u",
        human_input_mode="NEVER",
        max_consecutive_auto_reply=1,
        code_execution_config=False,
        approve_tools=lambda request: request.kind != "tools",
    )

    @user.register_for_execution()
    @assistant.register_for_llm(description="Add two numbers.")
    def add(a: int, b: int) -> int:
        calls.append(a + b)
        return a + b

    await user.a_initiate_chat(assistant, message="add", silent=True)
    assert calls == []
    assert "approval denied" in server.requests[-1].last_text


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(AgentConfigError, match="approve_code"):
        UserProxyAgent("u", approve_code="sometimes")
