"""The classic loop: the assistant writes code, the user proxy runs it and reports back."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from moot.agents import AssistantAgent, ChatResult, UserProxyAgent

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer

FAILING = "Let me compute it.\n```python\nprint(1 / 0)\n```"
FIXED = (
    "Sorry, fixed.\n```python\n# filename: answer.py\nwith open('answer.txt', 'w') as f:\n"
    "    f.write('42')\nprint('saved 42')\n```"
)


async def test_code_fails_then_the_fix_runs_and_the_chat_ends_on_terminate(
    server: ScriptedModelServer, llm_config: dict[str, Any], local_code: dict[str, Any]
) -> None:
    server.push(FAILING, FIXED, "The answer is saved in answer.txt. TERMINATE.")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config=local_code,
        max_consecutive_auto_reply=5,
    )

    result = await user.a_initiate_chat(assistant, message="Save 42 to a file.", silent=True)

    assert isinstance(result, ChatResult)
    contents = [m["content"] for m in result.chat_history]
    assert contents[0] == "Save 42 to a file."
    assert contents[1] == FAILING
    assert contents[2].startswith("exitcode: 1 (execution failed)\nCode output: ")
    assert "ZeroDivisionError" in contents[2]
    assert contents[3] == FIXED
    assert contents[4] == (
        "exitcode: 0 (execute succeeded)\nCode output: saved 42\n\n"
        f"Files written (in {local_code['work_dir']}): answer.txt, 2 bytes"
    )
    assert contents[5].endswith("TERMINATE.")
    assert len(contents) == 6
    assert (Path(local_code["work_dir"]) / "answer.txt").read_text() == "42"
    assert result.summary == "The answer is saved in answer.txt."
    assert result.cost.calls == 3
    assert result.cost.prompt_tokens > 0
    assert result.cost.total_cost > 0  # gpt-4o has a list price
    assert result.human_input == []
    # the model saw the traceback before writing the fix
    assert "ZeroDivisionError" in server.requests[1].last_text
    server.assert_script_consumed()
