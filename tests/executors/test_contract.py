"""The executor contract, written once and run over `LocalExecutor` and `DockerExecutor`.

Executors are entered inside each test (not in an async fixture): a pool's task group must be
entered and exited by the same task.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from moot.executors import (
    CodeBlock,
    Executor,
    ExecutorClosedError,
    LocalExecutor,
    UnsafePathError,
    extract_code_blocks,
    format_results,
)

if TYPE_CHECKING:
    from pathlib import Path

    from docker_helpers import DockerFactory

LIMIT = 4_000
OpenExecutor = Callable[..., Executor]


@pytest.fixture(
    params=[
        "local",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("docker-fork", marks=pytest.mark.docker),
    ]
)
def open_executor(request: pytest.FixtureRequest) -> OpenExecutor:
    """A function that builds an unstarted executor of the parametrized kind."""
    if request.param == "local":

        def local(**options: Any) -> Executor:
            return LocalExecutor(timeout=options.get("timeout", 10), output_limit=LIMIT)

        return local
    make_docker: DockerFactory = request.getfixturevalue("make_docker")

    mode = "fork" if request.param == "docker-fork" else "spawn"

    def docker(**options: Any) -> Executor:
        return make_docker(output_limit=LIMIT, mode=mode, **options)

    return docker


async def test_python_prints(open_executor: OpenExecutor) -> None:
    async with open_executor() as executor, executor.session() as session:
        result = await session.run(CodeBlock("print(sum(range(10)))", "python"))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "45\n", "")
    assert not result.timed_out
    assert not result.oom_killed
    assert result.duration_s > 0


@pytest.mark.parametrize("language", ["sh", "bash", "shell"])
async def test_shell_runs(open_executor: OpenExecutor, language: str) -> None:
    code = 'echo "out $((1 + 2))"; echo err >&2; exit 3'
    async with open_executor() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, language))
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out 3\n", "err\n")


async def test_errors_give_a_traceback_and_exit_1(open_executor: OpenExecutor) -> None:
    async with open_executor() as executor, executor.session() as session:
        raised = await session.run(CodeBlock("print('before')\n1 / 0", "python"))
        syntax = await session.run(CodeBlock("def broken(:\n  pass", "python"))
        exited = await session.run(CodeBlock("import sys; sys.exit(7)", "python"))
        unknown = await session.run(CodeBlock("fn main() {}", "rust"))
    assert raised.exit_code == 1
    assert raised.stdout == "before\n"
    assert raised.stderr.startswith("Traceback (most recent call last):")
    assert raised.stderr.rstrip().endswith("ZeroDivisionError: division by zero")
    assert syntax.exit_code == 1
    assert "SyntaxError" in syntax.stderr
    assert exited.exit_code == 7
    assert (unknown.exit_code, unknown.stderr) == (1, "unknown language rust\n")


async def test_filename_block_writes_into_work_dir_and_persists(
    open_executor: OpenExecutor, tmp_path: Path
) -> None:
    reply = (
        "```python\n# filename: lib/fib.py\n"
        "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n```\n"
        "```python\nfrom lib.fib import fib\nopen('fib.txt', 'w').write(str(fib(10)))\n"
        "print(open('input.txt').read())\n```"
    )
    (tmp_path / "input.txt").write_text("from the host")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    async with open_executor() as executor, executor.session(tmp_path) as session:
        results = await session.run_blocks(extract_code_blocks(reply))
        again = await session.run(CodeBlock("print(open('fib.txt').read())", "python"))
    assert [r.exit_code for r in results] == [0, 0], format_results(results)
    assert results[0].files == ("lib/fib.py",)
    assert results[1].files == ("fib.txt",)
    assert results[1].stdout == "from the host\n"
    assert (tmp_path / "fib.txt").read_text() == "55"
    assert (tmp_path / "lib" / "fib.py").read_text().startswith("# filename: lib/fib.py")
    assert again.stdout == "55\n"


async def test_run_blocks_stops_at_the_first_failure(open_executor: OpenExecutor) -> None:
    blocks = [
        CodeBlock("print('one')", "python"),
        CodeBlock("exit 2", "sh"),
        CodeBlock("print('never')", "python"),
    ]
    async with open_executor() as executor, executor.session() as session:
        results = await session.run_blocks(blocks)
    assert [r.exit_code for r in results] == [0, 2]
    assert format_results(results) == "exitcode: 2 (execution failed)\nCode output: one\n\n"


@pytest.mark.parametrize("filename", ["../escape.py", "/etc/evil.py", "a/../../x.py"])
async def test_path_traversal_is_refused(
    open_executor: OpenExecutor, tmp_path: Path, filename: str
) -> None:
    work = tmp_path / "work"
    async with open_executor() as executor, executor.session(work) as session:
        with pytest.raises(UnsafePathError) as info:
            await session.run(CodeBlock("print('x')", "python", filename=filename))
        assert info.value.path == filename
        still = await session.run(CodeBlock("print('ok')", "python"))
    assert still.stdout == "ok\n"
    assert sorted(os.listdir(tmp_path)) == ["work"]


async def test_timeout_kills_the_job(open_executor: OpenExecutor) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    async with open_executor() as executor, executor.session() as session:
        started = anyio.current_time()
        result = await session.run(CodeBlock(code, "python"), timeout=1)
        elapsed = anyio.current_time() - started
        after = await session.run(CodeBlock("print('alive')", "python"))
    assert result.timed_out
    assert result.exit_code == 124
    assert result.stdout == "started\n"
    assert "Timeout" in result.stderr
    assert 1 <= elapsed < 2.5  # precision is measured by the benchmark, not asserted here
    assert after.stdout == "alive\n"


async def test_output_is_capped_keeping_head_and_tail(open_executor: OpenExecutor) -> None:
    code = "import sys\nsys.stdout.write('A' * 3000 + 'B' * 1_000_000 + 'C' * 3000)"
    async with open_executor() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.exit_code == 0
    assert result.stdout.startswith("A" * 2000)
    assert result.stdout.endswith("C" * 2000)
    assert "bytes of output omitted" in result.stdout
    assert len(result.stdout) < LIMIT + 100


async def test_undecodable_bytes_are_replaced(open_executor: OpenExecutor) -> None:
    code = "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')"
    async with open_executor() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.stdout == "ok \ufffd\ufffd end\n"


async def test_cancelling_a_run_kills_the_job(open_executor: OpenExecutor) -> None:
    code = (
        "import os, time\n"
        "open('job.pid', 'w').write(str(os.getpid()))\n"
        "open('began', 'w').close()\n"
        "time.sleep(60)"
    )
    survivors = (  # 1 while the job's process lives on (a zombie counts as gone)
        "pid = open('job.pid').read()\n"
        "try:\n"
        "    state = open('/proc/' + pid + '/stat').read().rsplit(')', 1)[1].split()[0]\n"
        "except OSError:\n"
        "    state = 'gone'\n"
        "print(0 if state in ('gone', 'Z', 'X') else 1)"
    )
    async with open_executor() as executor, executor.session() as session:
        with anyio.move_on_after(2) as scope:
            await session.run(CodeBlock(code, "python"))
        assert scope.cancelled_caught
        check = await session.run(CodeBlock(survivors, "python"))
        began = await session.run(CodeBlock("import os; print(os.path.exists('began'))", "python"))
    assert check.stdout == "0\n"
    assert began.stdout == "True\n"


async def test_one_session_serializes_concurrent_runs(open_executor: OpenExecutor) -> None:
    async with open_executor() as executor, executor.session() as session:
        results: list[str] = []

        async def append(i: int) -> None:
            code = f"with open('log', 'a') as f: f.write('{i}')\nprint(open('log').read())"
            results.append((await session.run(CodeBlock(code, "python"))).stdout)

        async with anyio.create_task_group() as group:
            for i in range(4):
                group.start_soon(append, i)
    assert sorted(len(r.strip()) for r in results) == [1, 2, 3, 4]


async def test_sessions_are_isolated(open_executor: OpenExecutor) -> None:
    async with open_executor(pool_size=2) as executor:
        async with executor.session() as first, executor.session() as second:
            await first.run(CodeBlock("open('mine.txt', 'w').write('1')", "python"))
            seen = await second.run(
                CodeBlock("import os; print(os.path.exists('mine.txt'))", "python")
            )
    assert seen.stdout == "False\n"


async def test_closed_executor_refuses_sessions(open_executor: OpenExecutor) -> None:
    executor = open_executor()
    async with executor:
        pass
    with pytest.raises(ExecutorClosedError):
        async with executor.session():
            pass


def test_secrets_are_not_in_the_default_environment() -> None:
    assert "MOOT_TEST_SECRET" not in os.environ
