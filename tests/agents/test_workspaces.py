"""Each chat has its own workspace (issue 17, item 2): one agent's concurrent and later chats
never see each other's files; its first chat works in `work_dir`, as in AutoGen; sharing one
workspace across chats is an explicit opt-in (`shared_workspace=True`)."""

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

WRITE = "```python\nopen('secret.txt', 'w').write('from A')\n```"
LOOK = "```python\nimport os\nprint(os.path.exists('secret.txt'))\n```"


def _script(request: RecordedRequest) -> str:
    """Chat "write" writes the secret; every other chat looks for it; then each stops."""
    messages = request.messages
    if any(str(m.get("content") or "").startswith("exitcode:") for m in messages):
        return "Done. TERMINATE"
    return WRITE if messages[1]["content"] == "write" else LOOK


def _looked(history: list[dict[str, Any]]) -> str:
    return str(history[2]["content"]).removeprefix("exitcode: 0 (execute succeeded)\nCode output: ")


@pytest.mark.docker
async def test_concurrent_and_later_chats_do_not_see_each_others_files(
    docker_image: str, server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    """Chat A writes a file and stays open while chat B looks for it; then chat C looks."""
    server.default = _script
    a_wrote, b_looked = asyncio.Event(), asyncio.Event()

    async def order(
        recipient: ConversableAgent, messages: list[Message], sender: Any, config: Any
    ) -> tuple[bool, None]:
        last = str(messages[-1].get("content"))
        if messages[0]["content"] == "write" and last.startswith("exitcode:"):
            a_wrote.set()  # A's code ran; A stays open until B has looked
            await b_looked.wait()
        elif messages[0]["content"] == "look" and last.startswith("exitcode:"):
            b_looked.set()
        return False, None

    assistant = AssistantAgent("assistant", llm_config=llm_config)
    assistant.register_reply([ConversableAgent, None], order)
    work_dir = tmp_path / "work"
    async with (
        DockerExecutor(image=docker_image, pool_size=2, timeout=20) as pool,
        Runtime() as runtime,
    ):
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config={"executor": pool, "work_dir": str(work_dir)},
        )

        def chat(message: str) -> Any:
            return user.a_initiate_chat(assistant, message=message, silent=True, runtime=runtime)

        chat_a = asyncio.ensure_future(chat("write"))
        await a_wrote.wait()
        chat_b = await chat("look")
        await chat_a
        chat_c = await chat("look")

    assert _looked(chat_b.chat_history) == "False\n"
    assert _looked(chat_c.chat_history) == "False\n"
    assert (work_dir / "secret.txt").read_text() == "from A"  # the first chat used work_dir
    assert sorted(p.name for p in work_dir.iterdir()) == ["secret.txt"]


async def test_sharing_one_workspace_is_an_opt_in(
    server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    server.default = _script
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    work_dir = tmp_path / "shared"
    config = {"work_dir": str(work_dir), "use_docker": False, "shared_workspace": True}
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=config)
    async with Runtime() as runtime:
        await user.a_initiate_chat(assistant, message="write", silent=True, runtime=runtime)
        later = await user.a_initiate_chat(assistant, message="look", silent=True, runtime=runtime)
    assert _looked(later.chat_history) == "True\n"


async def test_a_chat_that_continues_the_first_chats_thread_keeps_its_files(
    server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    """AutoGen's `send` after `initiate_chat` goes on with the same conversation and files."""
    server.default = _script
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    work_dir = tmp_path / "work"
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config={"work_dir": str(work_dir), "use_docker": False},
    )
    await user.a_initiate_chat(assistant, message="write", silent=True)
    server.default = None
    server.push(LOOK, "Still there. TERMINATE")
    await user.a_send("is it there?", assistant)
    thread = user.chat_messages[assistant]
    assert thread[-2]["content"] == "exitcode: 0 (execute succeeded)\nCode output: True\n"
    server.default = _script
    fresh = await user.a_initiate_chat(assistant, message="look", silent=True)
    assert (
        fresh.chat_history[2]["content"] == "exitcode: 0 (execute succeeded)\nCode output: False\n"
    )
