"""A chat holds a sandbox slot only while its code runs (issue 17, item 11), on the real engine.

By default a chat leases a slot for each run and its files live in its workspace on the host;
`lease="chat"` keeps one slot for the chat's lifetime. A slot that cannot be had in time is a
failed run the model sees, not a crashed chat.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AssistantAgent, ConversableAgent, UserProxyAgent
from moot.executors import DockerExecutor
from moot.runtime import Runtime

if TYPE_CHECKING:
    from pathlib import Path

    from moot.agents._participant import Message
    from moot.testing import RecordedRequest, ScriptedModelServer

FIRST = "```python\nopen('kept.txt', 'w').write('kept')\nopen('/tmp/gone.txt', 'w').write('x')\n```"
SECOND = (
    "```python\nimport os\nprint(open('kept.txt').read(), os.path.exists('/tmp/gone.txt'))\n```"
)


def _runs(messages: list[dict[str, Any]]) -> int:
    return sum(str(m.get("content") or "").startswith("exitcode:") for m in messages)


def _two_runs(request: RecordedRequest) -> str:
    """The assistant's script: write a file, read it back, then stop."""
    return [FIRST, SECOND, "Both ran. TERMINATE"][min(_runs(request.messages), 2)]


@pytest.mark.docker
async def test_six_chats_that_run_code_share_a_pool_of_two_slots(
    docker_image: str, server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    """Every chat writes its second code only once all six have run their first: a chat that
    kept its slot while it waited for the model would leave the third chat without one."""
    server.default = _two_runs
    everyone_ran_once = asyncio.Barrier(6)

    async def wait_for_the_others(
        recipient: ConversableAgent, messages: list[Message], sender: Any, config: Any
    ) -> tuple[bool, None]:
        if _runs(messages) == 1:
            await everyone_ran_once.wait()
        return False, None

    assistant = AssistantAgent("assistant", llm_config=llm_config)
    assistant.register_reply([ConversableAgent, None], wait_for_the_others)
    async with (
        DockerExecutor(image=docker_image, pool_size=2, timeout=20, lease_timeout=60) as pool,
        Runtime() as runtime,
    ):
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config={"executor": pool, "work_dir": str(tmp_path)},
        )
        results = await asyncio.gather(
            *(
                user.a_initiate_chat(assistant, message=f"task {n}", silent=True, runtime=runtime)
                for n in range(6)
            )
        )
    for result in results:
        first, second = [m["content"] for m in result.chat_history if m["name"] == "user"][1:]
        assert first.startswith("exitcode: 0 (execute succeeded)\nCode output: \nFiles written")
        assert first.endswith("): kept.txt, 4 bytes")  # the reply names what the code wrote
        assert second == "exitcode: 0 (execute succeeded)\nCode output: kept False\n"


@pytest.mark.docker
@pytest.mark.parametrize(
    ("lease", "second_run"),
    [("run", "kept False"), ("chat", "kept True")],
)
async def test_workspace_files_last_the_chat_and_sandbox_state_only_a_chat_long_lease(
    docker_image: str,
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    lease: str,
    second_run: str,
) -> None:
    server.default = _two_runs
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    async with DockerExecutor(image=docker_image, pool_size=1, timeout=20) as pool:
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config={"executor": pool, "work_dir": None, "lease": lease},
        )
        result = await user.a_initiate_chat(assistant, message="go", silent=True)
    assert result.chat_history[4]["content"] == (
        f"exitcode: 0 (execute succeeded)\nCode output: {second_run}\n"
    )


@pytest.mark.docker
async def test_no_free_slot_in_time_is_a_failed_run_the_model_sees(
    docker_image: str, server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    server.push("```python\nprint('hi')\n```", "No sandbox today. TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    async with DockerExecutor(image=docker_image, pool_size=1, lease_timeout=0.2) as pool:
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config={"executor": pool, "work_dir": str(tmp_path)},
        )
        async with pool.session():  # someone else holds the only slot
            result = await user.a_initiate_chat(assistant, message="run it", silent=True)
    reply = result.chat_history[2]["content"]
    assert reply.startswith("exitcode: 1 (execution failed)\nCode output: the code did not run:")
    assert "no sandbox became free in time" in reply
    assert result.summary == "No sandbox today."
