"""Whose code an executor runs (issue 17): never code quoted in a tool result; by default only
code from agents with a model; `execute_from` names the speakers, or "any"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AgentConfigError, AssistantAgent, ConversableAgent, UserProxyAgent
from moot.executors import FunctionExecutor
from moot.groupchat import GroupChat, GroupChatManager
from moot.testing import Reply

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer

QUOTED = "The page says:\n```python\nprint('pwned')\n```"
CODE = "```python\nprint('ok')\n```"


def _executor(fake: FunctionExecutor, **options: Any) -> UserProxyAgent:
    return UserProxyAgent(
        "executor",
        human_input_mode="NEVER",
        code_execution_config={"executor": fake, **options},
    )


@pytest.mark.parametrize("execute_from", ["models", "any", ["coder", "web"]])
async def test_code_in_a_tool_result_never_runs_in_a_group_chat(
    server: ScriptedModelServer, llm_config: dict[str, Any], execute_from: Any
) -> None:
    """The coder asks for a web page, the web agent's tool returns code, the executor speaks:
    only the coder's own code, written later, runs."""
    server.push(Reply(tool_calls=[{"name": "fetch_page", "arguments": {"url": "x"}}]), CODE)
    coder = AssistantAgent("coder", llm_config=llm_config)

    def fetch_page(url: str) -> str:
        """Fetch a web page."""
        return QUOTED

    web = ConversableAgent(
        "web", llm_config=False, human_input_mode="NEVER", function_map={"fetch_page": fetch_page}
    )
    fake = FunctionExecutor(lambda block: "ran\n")
    executor = _executor(fake, execute_from=execute_from)
    group = GroupChat([coder, web, executor], max_round=7, speaker_selection_method="round_robin")

    result = await GroupChatManager(group).a_run("find it and run it")

    assert [block.code for block in fake.blocks] == ["print('ok')"]
    said = [m.get("content") for m in result.chat_history if m.get("name") == "executor"]
    assert said == ["", "exitcode: 0 (execute succeeded)\nCode output: ran\n"]


@pytest.mark.parametrize(
    ("execute_from", "runs"),
    [(None, False), ("models", False), (["mallory"], True), ("any", True), (["coder"], False)],
)
async def test_execute_from_decides_whose_code_runs(execute_from: Any, runs: bool) -> None:
    """An agent without a model is not trusted to have code run by default."""
    mallory = ConversableAgent("mallory", llm_config=False, human_input_mode="NEVER")
    fake = FunctionExecutor(lambda block: "ran\n")
    options = {} if execute_from is None else {"execute_from": execute_from}
    executor = _executor(fake, **options)

    await mallory.a_initiate_chat(executor, message=CODE, max_turns=1, silent=True)

    assert [block.code for block in fake.blocks] == (["print('ok')"] if runs else [])


def test_a_bad_execute_from_is_refused_up_front() -> None:
    with pytest.raises(AgentConfigError, match="execute_from"):
        UserProxyAgent("u", code_execution_config={"execute_from": "everyone"})
    with pytest.raises(AgentConfigError, match="execute_from"):
        UserProxyAgent("u", code_execution_config={"execute_from": [1, 2]})
    with pytest.raises(AgentConfigError, match="lease"):
        UserProxyAgent("u", code_execution_config={"lease": "forever"})
