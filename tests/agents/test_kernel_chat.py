"""A chat with a stateful kernel (issue 16, item 4): a `DockerExecutor(mode="kernel")` with a
chat-long lease keeps one IPython kernel for the chat, so a variable set in one turn is there in
the next; the next chat gets a fresh kernel. Real engine, scripted model server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AssistantAgent, UserProxyAgent
from moot.executors import DockerExecutor

if TYPE_CHECKING:
    from collections.abc import Callable

    from moot.testing import RecordedRequest, ScriptedModelServer


def _script(*replies: str) -> Callable[[RecordedRequest], str]:
    """The assistant's replies in order, one per code run so far."""

    def reply(request: RecordedRequest) -> str:
        runs = sum(str(m.get("content") or "").startswith("exitcode:") for m in request.messages)
        return replies[min(runs, len(replies) - 1)]

    return reply


@pytest.mark.docker
async def test_a_variable_from_one_turn_is_there_in_the_next_and_not_in_the_next_chat(
    kernel_image: str, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.default = _script(
        "```python\nx = 41\n```", "```python\nprint(x + 1)\n```", "Done. TERMINATE"
    )
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    async with DockerExecutor(image=kernel_image, mode="kernel", pool_size=1) as pool:
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config={"executor": pool, "work_dir": None, "lease": "chat"},
        )
        first = await user.a_initiate_chat(assistant, message="go", silent=True)
        server.default = _script("```python\nprint(x)\n```", "TERMINATE")
        second = await user.a_initiate_chat(assistant, message="again", silent=True)
    assert first.chat_history[4]["content"] == "exitcode: 0 (execute succeeded)\nCode output: 42\n"
    assert second.chat_history[2]["content"].startswith("exitcode: 1 (execution failed)")
    assert "NameError" in second.chat_history[2]["content"]
