"""Files across the sandbox wall: what comes back never lands outside the work dir, is never lost
silently, never collides with another name, and never outlasts the run's deadline; what goes in
is checked on the host, so a bad block fails the run and keeps the container.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import pytest
from docker_helpers import pool_containers

from moot.executors import CodeBlock, InvalidCodeError, UnsafePathError

if TYPE_CHECKING:
    from pathlib import Path

    import aiodocker
    from docker_helpers import DockerFactory

pytestmark = pytest.mark.docker


async def test_a_host_symlink_out_of_the_work_dir_is_never_followed_on_the_way_back(
    make_docker: DockerFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(outside, target_is_directory=True)
    (work / "file-link").symlink_to(outside / "target.txt")
    code = (
        "import os\n"
        "os.makedirs('link/evil')\n"
        "open('link/evil/x.txt', 'w').write('escaped')\n"
        "open('link/y.txt', 'w').write('escaped')\n"
        "open('file-link', 'w').write('escaped')\n"
        "open('ok.txt', 'w').write('fine')\n"
    )
    async with make_docker() as executor, executor.session(work) as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.exit_code == 0, result.stderr
    assert list(outside.iterdir()) == []
    assert (work / "link").readlink() == outside
    assert (work / "file-link").is_symlink()
    assert (work / "ok.txt").read_text() == "fine"
    assert result.files == ("ok.txt",)
    assert result.files_not_copied == 3
    assert "3 changed files were not copied back" in result.stderr
    assert "link/evil/x.txt" in result.stderr


BAD_BLOCKS = {
    "4 KB file name": (CodeBlock("print(1)", "python", filename="a" * 4096), UnsafePathError),
    "component over 255 bytes": (
        CodeBlock("print(1)", "python", filename="d/" + "é" * 128 + ".py"),
        UnsafePathError,
    ),
    "unencodable file name": (
        CodeBlock("print(1)", "python", filename="bad\ud800.py"),
        UnsafePathError,
    ),
    "50 MB of code": (CodeBlock("#" * (50 << 20), "python"), InvalidCodeError),
    "lone surrogate in code": (CodeBlock("print('\ud800')", "python"), InvalidCodeError),
}


@pytest.mark.parametrize("case", list(BAD_BLOCKS))
async def test_a_block_the_sandbox_cannot_take_fails_the_run_and_keeps_the_container(
    make_docker: DockerFactory, docker: aiodocker.Docker, case: str
) -> None:
    block, error = BAD_BLOCKS[case]
    async with make_docker() as executor, executor.session() as session:
        (before,) = await pool_containers(docker, executor)
        with pytest.raises(error) as info:
            await session.run(block)
        after = await session.run(CodeBlock("print('still here')", "python"))
        (kept,) = await pool_containers(docker, executor)
    assert str(info.value)
    assert after.stdout == "still here\n"
    assert kept.id == before.id


async def test_more_files_than_the_cap_are_reported_not_dropped_silently(
    make_docker: DockerFactory, tmp_path: Path
) -> None:
    code = "import os\nfor i in range(12_000):\n    open('f%05d' % i, 'w').close()\n"
    async with make_docker() as executor, executor.session(tmp_path) as session:
        result = await session.run(CodeBlock(code, "python"), timeout=60)
    assert result.exit_code == 0, result.stderr
    assert len(result.files) == 10_000
    assert result.files_not_copied == 2_000
    assert "2000 changed files were not copied back" in result.stderr
    assert len(os.listdir(tmp_path)) == 10_000


async def test_copying_back_counts_against_the_runs_deadline(
    make_docker: DockerFactory, tmp_path: Path
) -> None:
    code = (
        "import os, time\n"
        "for d in range(100):\n"
        "    os.mkdir('d%03d' % d)\n"
        "    for i in range(1000):\n"
        "        open('d%03d/f%04d' % (d, i), 'w').close()\n"
        "print('left 100000 files', flush=True)\n"
        "time.sleep(3600)\n"
    )
    timeout = 15
    async with make_docker() as executor, executor.session(tmp_path) as session:
        started = anyio.current_time()
        result = await session.run(CodeBlock(code, "python"), timeout=timeout)
        elapsed = anyio.current_time() - started
        after = await session.run(CodeBlock("print('next run')", "python"))
    assert result.timed_out
    assert result.stdout == "left 100000 files\n"
    assert result.files_not_copied > 0
    assert "were not copied back" in result.stderr
    assert len(result.files) + result.files_not_copied <= 100_000
    assert elapsed < timeout + 10  # bounded by the deadline plus a copy-back grace, not by 100k
    assert after.stdout == "next run\n"


async def test_whitespace_padded_and_undecodable_names_are_kept_exactly(
    make_docker: DockerFactory, tmp_path: Path
) -> None:
    code = (
        "import os\n"
        "for name in (' lead.txt', 'lead.txt', 'lead.txt ', 'a\\\\b', os.fsdecode(b'raw\\xff')):\n"
        "    open(name, 'w').write(repr(name))\n"
    )
    async with make_docker() as executor, executor.session(tmp_path) as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.exit_code == 0, result.stderr
    names = [" lead.txt", "a\\b", "lead.txt", "lead.txt ", os.fsdecode(b"raw\xff")]
    assert sorted(result.files) == sorted(names)
    assert sorted(os.listdir(tmp_path)) == sorted(names)
    for name in names:
        assert (tmp_path / name).read_text() == repr(name)
