"""Code execution in moot's Docker sandbox (the default), and the error when Docker is missing.

Under CI=true a missing engine fails these tests; elsewhere the sandbox test skips with the reason.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AssistantAgent, UserProxyAgent
from moot.executors import DockerUnavailableError

if TYPE_CHECKING:
    from pathlib import Path

    from moot.testing import ScriptedModelServer


@pytest.mark.docker
async def test_code_runs_in_the_docker_sandbox_by_default(
    docker_image: str, server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    server.push(
        "```python\n# filename: where.py\nimport os\nopen('out.txt', 'w').write(str(os.getuid()))\n"
        "print('uid', os.getuid())\n```",
        "```sh\ncat out.txt\n```",
        "Ran as an unprivileged user. TERMINATE",
    )
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config={"work_dir": str(tmp_path)}
    )

    result = await user.a_initiate_chat(assistant, message="where am I?", silent=True)

    first, second = result.chat_history[2]["content"], result.chat_history[4]["content"]
    assert first.startswith("exitcode: 0 (execute succeeded)\nCode output: uid ")
    uid = first.split("uid ")[1].split()[0]
    assert uid != "0"  # not root inside the sandbox
    assert first.endswith(f"Files written (in {tmp_path}): out.txt, {len(uid)} bytes")
    assert second == f"exitcode: 0 (execute succeeded)\nCode output: {uid}"  # files persist
    assert (tmp_path / "out.txt").read_text() == uid  # and come back to the host
    assert docker_image
    assert await _our_containers() == []  # the private runtime stopped: the pool is gone


async def _our_containers() -> list[str]:
    """Containers labelled as created by this process's executors."""
    listing = await asyncio.create_subprocess_exec(
        "docker",
        "ps",
        "-a",
        "--filter",
        "label=moot.owner",
        "--format",
        '{{.Label "moot.owner"}}',
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await listing.communicate()
    return [owner for owner in out.decode().split() if f":{os.getpid()}:" in owner]


async def test_no_docker_engine_says_how_to_start_one_or_opt_out(
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    server.push("```python\nprint(1)\n```")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user", human_input_mode="NEVER", code_execution_config={"work_dir": str(tmp_path)}
    )

    with pytest.raises(DockerUnavailableError) as caught:
        await user.a_initiate_chat(assistant, message="run it", silent=True)

    text = str(caught.value)
    assert "Start Docker" in text
    assert "'use_docker': False" in text
