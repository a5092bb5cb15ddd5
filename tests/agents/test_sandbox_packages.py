"""`packages` and `use_docker="<image>"` in code_execution_config: checked up front, the image
chosen (or built) on first use, and advice instead of `pip install` when a module is missing."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import AgentConfigError, AssistantAgent, UserProxyAgent
from moot.agents._code_execution import files_note
from moot.executors import CodeBlock, ImageError, LocalExecutor, PackageNameError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from moot.testing import ScriptedModelServer


@pytest.mark.parametrize(
    ("config", "wanted"),
    [
        ({"use_docker": False, "packages": "data"}, "need use_docker=True"),
        ({"use_docker": "my-image", "packages": "data"}, "cannot be added to the prebuilt"),
        ({"use_docker": " "}, "True, False or an image name"),
        ({"use_docker": 3}, "True, False or an image name"),
        ({"packages": {"python3-six": "1.0"}}, "a profile name such as 'data' or a list"),
        ({"executor": "given", "packages": "data"}, "would be ignored"),
        ({"executor": "given", "use_docker": "my-image"}, "would be ignored"),
    ],
)
def test_unusable_sandbox_settings_are_refused_at_construction(
    config: dict[str, Any], wanted: str
) -> None:
    if config.get("executor") == "given":
        config = {**config, "executor": LocalExecutor()}
    with pytest.raises(AgentConfigError, match=wanted):
        UserProxyAgent("user", code_execution_config=config)


def test_bad_package_names_are_refused_before_anything_is_built() -> None:
    with pytest.raises(PackageNameError, match="'pandas numpy' is not a Debian package name"):
        UserProxyAgent("user", code_execution_config={"packages": ["pandas numpy"]})


@pytest.mark.docker
async def test_a_missing_module_gets_advice_not_another_pip_install(
    data_image: str, server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    server.push(
        "```python\nimport pandas\nimport sklearn\n```",
        "```sh\npip install scikit-learn\n```",
        "scikit-learn is not available here. TERMINATE",
    )
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config={"work_dir": str(tmp_path), "packages": "data"},
    )

    result = await user.a_initiate_chat(assistant, message="fit a model", silent=True)

    missing, no_pip = result.chat_history[2]["content"], result.chat_history[4]["content"]
    assert "ModuleNotFoundError: No module named 'sklearn'" in missing
    for reply in (missing, no_pip):
        assert "this sandbox has no network, so pip install cannot work there" in reply
        assert "python3-matplotlib, python3-numpy, python3-pandas, python3-scipy" in reply
    assert "'packages': ['python3-sklearn']" in missing
    assert "'packages': ['python3-NAME']" in no_pip
    assert data_image


@pytest.mark.docker
async def test_use_docker_names_a_prebuilt_image(
    data_image: str, server: ScriptedModelServer, llm_config: dict[str, Any], tmp_path: Path
) -> None:
    server.push("```python\nimport pandas\nprint(pandas.__version__)\n```", "TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config={"work_dir": str(tmp_path), "use_docker": data_image},
    )

    result = await user.a_initiate_chat(assistant, message="which pandas?", silent=True)

    reply = result.chat_history[2]["content"]
    assert reply == "exitcode: 0 (execute succeeded)\nCode output: 1.5.3\n"


@pytest.fixture(scope="module")
def plain_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An image that is not a moot sandbox: one file, imported with `docker import`."""
    root = tmp_path_factory.mktemp("plain")
    (root / "hello.txt").write_text("not a sandbox\n")
    archive = root.parent / "plain.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
    subprocess.run(["docker", "import", str(archive), "moot-test-plain:1"], check=True)
    yield "moot-test-plain:1"
    subprocess.run(["docker", "rmi", "moot-test-plain:1"], check=False, capture_output=True)


@pytest.mark.docker
@pytest.mark.parametrize("which", ["missing", "plain"])
async def test_a_prebuilt_image_must_exist_and_be_a_moot_sandbox(
    docker_image: str,
    server: ScriptedModelServer,
    llm_config: dict[str, Any],
    tmp_path: Path,
    which: str,
    request: pytest.FixtureRequest,
) -> None:
    image, wanted = ("moot-no-such-image:1", "has no image")
    if which == "plain":
        image, wanted = request.getfixturevalue("plain_image"), "is not a moot sandbox image"
    server.push("```python\nprint(1)\n```")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        code_execution_config={"work_dir": str(tmp_path), "use_docker": image},
    )

    with pytest.raises(ImageError, match=wanted):
        await user.a_initiate_chat(assistant, message="run it", silent=True)
    assert docker_image


async def test_files_written_are_named_with_their_sizes(tmp_path: Path) -> None:
    code = (
        "open('big.bin', 'wb').write(b'x' * 3_000_000)\n"
        "open('mid.csv', 'w').write('a' * 5000)\n"
        "open('small.txt', 'w').write('hi')\n"
        "for i in range(25):\n"
        "    open(f'part{i:02}.txt', 'w').write('p')\n"
    )
    blocks = [CodeBlock(code, "python", "make.py")]
    async with LocalExecutor() as executor, executor.session(tmp_path) as session:
        results = await session.run_blocks(blocks)

    note = files_note(results, blocks, tmp_path)
    assert note is not None
    files = note.split(f"Files written (in {tmp_path}): ")[1]
    assert files.startswith("big.bin, 2.9 MB; mid.csv, 5 KB; part00.txt, 1 byte;")
    assert files.endswith("; and 8 more")  # 28 files, 20 named
    assert "make.py" not in files  # the code's own file is not a result


async def test_without_a_sandbox_a_missing_module_gets_no_sandbox_advice(
    server: ScriptedModelServer, llm_config: dict[str, Any], local_code: dict[str, Any]
) -> None:
    server.push("```python\nimport no_such_module_moot\n```", "TERMINATE")
    assistant = AssistantAgent("assistant", llm_config=llm_config)
    user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=local_code)

    result = await user.a_initiate_chat(assistant, message="run it", silent=True)

    reply = result.chat_history[2]["content"]
    assert "ModuleNotFoundError" in reply
    assert "no network" not in reply
