"""A chat with a stateful kernel (issue 16, item 4): a `DockerExecutor(mode="kernel")` with a
chat-long lease keeps one IPython kernel for the chat, so a variable set in one turn is there in
the next; the next chat gets a fresh kernel. Real engine, scripted model server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AgentConfigError, AssistantAgent, UserProxyAgent
from moot.agents._code_execution import CodeExecution
from moot.executors import DockerExecutor, LocalExecutor, image_tag

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


@pytest.mark.docker
async def test_the_kernel_config_key_keeps_state_across_turns(
    kernel_image: str, server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    """`code_execution_config={"kernel": True}`: the agent's own sandbox in kernel mode, one
    kernel per chat (the "data" profile only so the test reuses the kernel image built once)."""
    server.default = _script(
        "```python\nx = 41\n```", "```python\nprint(x + 1)\n```", "Done. TERMINATE"
    )
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config={"kernel": True, "packages": "data", "work_dir": None},
    )
    settings = CodeExecution.from_config(user.code_execution_config)
    assert settings is not None
    assert (settings.kernel, settings.lease) == (True, "chat")
    assert settings.sandbox is not None
    assert image_tag(settings.sandbox.packages) == kernel_image
    first = await user.a_initiate_chat(assistant, message="go", silent=True)
    server.default = _script("```python\nprint(x)\n```", "TERMINATE")
    second = await user.a_initiate_chat(assistant, message="again", silent=True)
    assert first.chat_history[4]["content"] == "exitcode: 0 (execute succeeded)\nCode output: 42\n"
    assert "NameError" in second.chat_history[2]["content"]  # a new chat, a new kernel


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kernel": "yes"}, "kernel must be True or False"),
        ({"kernel": True, "use_docker": False}, "needs use_docker=True"),
        ({"kernel": True, "lease": "run"}, "lease must be 'chat'"),
        ({"kernel": True, "executor": "commandline-local"}, "needs use_docker=True"),
    ],
)
def test_kernel_settings_that_cannot_keep_a_kernel_are_refused(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(AgentConfigError, match=message):
        CodeExecution.from_config(config)


async def test_a_given_executor_is_not_switched_to_kernel_mode() -> None:
    async with LocalExecutor() as local:
        with pytest.raises(AgentConfigError, match=r"DockerExecutor\(mode='kernel'\)"):
            CodeExecution.from_config({"kernel": True, "executor": local})


def test_kernel_adds_the_kernel_packages_to_the_sandbox() -> None:
    settings = CodeExecution.from_config({"kernel": True, "packages": ["python3-numpy"]})
    assert settings is not None
    assert settings.sandbox is not None
    assert set(settings.sandbox.packages) == {
        "python3-numpy",
        "python3-ipykernel",
        "python3-jupyter-client",
    }
    plain = CodeExecution.from_config({"use_docker": True})
    assert plain is not None
    assert (plain.kernel, plain.lease) == (False, "run")
