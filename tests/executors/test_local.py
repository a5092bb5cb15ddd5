"""`LocalExecutor` specifics: the scrubbed environment, the work dir, and the process group."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from moot.executors import CodeBlock, ExecutorClosedError, LocalExecutor

if TYPE_CHECKING:
    from pathlib import Path

ENV_DUMP = "import json, os\nprint(json.dumps(dict(os.environ)))"


async def test_environment_is_scrubbed_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOOT_TEST_SECRET", "hunter2")
    async with LocalExecutor() as executor, executor.session(tmp_path) as session:
        result = await session.run(CodeBlock(ENV_DUMP, "python"))
    env = json.loads(result.stdout)
    assert "MOOT_TEST_SECRET" not in env
    assert env["HOME"] == str(tmp_path.resolve())
    assert env["TMPDIR"].startswith(str(tmp_path.resolve()))
    assert set(env) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "LC_CTYPE",
    }


async def test_env_argument_is_passed_through(tmp_path: Path) -> None:
    async with LocalExecutor(env={"API_KEY": "k-123"}) as executor:
        async with executor.session(tmp_path) as session:
            result = await session.run(CodeBlock("echo $API_KEY", "sh"))
    assert result.stdout == "k-123\n"


async def test_background_children_of_the_group_are_killed(tmp_path: Path) -> None:
    code = "sleep 60 &\necho $!"
    async with LocalExecutor() as executor, executor.session(tmp_path) as session:
        result = await session.run(CodeBlock(code, "sh"))
    pid = int(result.stdout)
    assert _gone_or_zombie(pid)


async def test_scratch_session_leaves_nothing_behind() -> None:
    async with LocalExecutor() as executor, executor.session() as session:
        result = await session.run(CodeBlock("import os; print(os.getcwd())", "python"))
    assert not os.path.exists(result.stdout.strip())


async def test_closed_local_executor_refuses_runs(tmp_path: Path) -> None:
    executor = LocalExecutor()
    async with executor.session(tmp_path) as session:
        await executor.aclose()
        with pytest.raises(ExecutorClosedError):
            await session.run(CodeBlock("print(1)", "python"))


async def test_symlink_in_work_dir_cannot_redirect_a_filename(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(outside)
    async with LocalExecutor() as executor, executor.session(work) as session:
        with pytest.raises(ValueError, match="symlink"):
            await session.run(CodeBlock("print(1)", "python", filename="link/evil.py"))
    assert os.listdir(outside) == []


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
