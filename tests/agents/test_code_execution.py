"""Code execution settings: an executor object, unsafe paths, which messages are looked at."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AgentConfigError, AssistantAgent, ConversableAgent, UserProxyAgent
from moot.executors import CodeBlock, FunctionExecutor

if TYPE_CHECKING:
    from pathlib import Path

    from moot.testing import ScriptedModelServer


async def test_an_executor_object_runs_the_code_and_one_session_serves_the_chat(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    def run(block: CodeBlock) -> str:
        return f"ran {block.language}\n"

    fake = FunctionExecutor(run)
    server.push("```python\nprint(1)\n```", "```bash\necho hi\n```", "Both ran. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=fake)

    result = await user.a_initiate_chat(assistant, message="run", silent=True)

    assert (
        result.chat_history[2]["content"]
        == "exitcode: 0 (execute succeeded)\nCode output: ran python\n"
    )
    assert (
        result.chat_history[4]["content"]
        == "exitcode: 0 (execute succeeded)\nCode output: ran bash\n"
    )
    assert [b.code for b in fake.blocks] == ["print(1)", "echo hi"]


async def test_a_filename_outside_the_work_dir_is_refused_in_the_reply(
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    local_code: dict[str, Any],
    tmp_path: Path,
) -> None:
    server.push("```python\n# filename: ../escape.py\nprint('out')\n```", "I see. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=local_code)

    result = await user.a_initiate_chat(assistant, message="run", silent=True)

    reply = result.chat_history[2]["content"]
    assert reply.startswith("exitcode: 1 (execution failed)\nCode output: ")
    assert "../escape.py" in reply
    assert not (tmp_path / "escape.py").exists()


async def test_several_blocks_run_in_order_and_stop_at_the_first_failure(
    server: ScriptedModelServer, llm_config: dict[str, Any], local_code: dict[str, Any]
) -> None:
    server.push(
        "```python\nprint('one')\n```\n```sh\nexit 3\n```\n```python\nprint('never')\n```",
        "Stopped. TERMINATE",
    )
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=local_code)

    result = await user.a_initiate_chat(assistant, message="run", silent=True)

    reply = result.chat_history[2]["content"]
    assert reply.startswith("exitcode: 3 (execution failed)\nCode output: one\n")
    assert "never" not in reply


async def test_last_n_messages_bounds_where_code_is_looked_for() -> None:
    fake = FunctionExecutor(lambda block: "ran\n")
    runner = ConversableAgent(
        "runner",
        llm_config=False,
        human_input_mode="NEVER",
        code_execution_config={"executor": fake, "last_n_messages": 1},
    )
    history = [
        {"role": "user", "content": "```python\nprint(1)\n```"},
        {"role": "user", "content": "no code here"},
    ]
    assert await runner.a_generate_reply(history) == ""  # the code is two messages back
    runner_wide = ConversableAgent(
        "runner2",
        llm_config=False,
        human_input_mode="NEVER",
        code_execution_config={"executor": fake, "last_n_messages": 2},
    )
    reply = await runner_wide.a_generate_reply(history)
    assert reply == "exitcode: 0 (execute succeeded)\nCode output: ran\n"


def test_bad_settings_are_refused_up_front() -> None:
    with pytest.raises(AgentConfigError, match="last_n_messages"):
        UserProxyAgent("u", code_execution_config={"last_n_messages": 0})
    with pytest.raises(AgentConfigError, match="timeout"):
        UserProxyAgent("u", code_execution_config={"timeout": -1})
    with pytest.raises(AgentConfigError, match="Executor"):
        UserProxyAgent("u", code_execution_config={"executor": 42})
