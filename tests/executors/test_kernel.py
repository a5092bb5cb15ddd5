"""Kernel mode: one IPython kernel per leased slot, in the same hardened container; state lives
across runs, displays come back as files, the timeout interrupts (or kills and restarts), and
a new lease gets a new kernel. Real engine, real image."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from docker_helpers import pool_containers

from moot.executors import CodeBlock, DockerExecutor, ExecutorConfigError, image_tag, profiles

if TYPE_CHECKING:
    from pathlib import Path

    import aiodocker
    from docker_helpers import DockerFactory

pytestmark = pytest.mark.docker


def py(code: str) -> CodeBlock:
    return CodeBlock(code, "python")


@pytest.fixture
def make_kernel(make_docker: DockerFactory, kernel_image: str) -> DockerFactory:
    """`make_docker` in kernel mode on the kernel image."""

    def factory(**overrides: Any) -> DockerExecutor:
        return make_docker(**{"mode": "kernel", "image": kernel_image, **overrides})

    return factory


def test_the_kernel_profile_is_ipykernel_and_jupyter_client() -> None:
    assert profiles()["kernel"] == ("python3-ipykernel", "python3-jupyter-client")
    assert image_tag("kernel") != image_tag()
    with pytest.raises(ExecutorConfigError, match="'kernel'"):
        DockerExecutor(mode="notebook")  # type: ignore[arg-type]


async def test_variables_and_imports_carry_across_runs(make_kernel: DockerFactory) -> None:
    async with make_kernel() as executor, executor.session() as session:
        first = await session.run(py("import math\nx = 41"))
        second = await session.run(py("print(x + 1)\nprint(math.floor(2.5))"))
        last = await session.run(py("x * 2"))  # a cell's value is printed, as in a notebook
    assert (first.exit_code, first.stdout) == (0, "")
    assert (second.exit_code, second.stdout) == (0, "42\n2\n"), second.stderr
    assert last.stdout == "82\n"


async def test_errors_and_exit_codes_read_like_a_script(make_kernel: DockerFactory) -> None:
    async with make_kernel() as executor, executor.session() as session:
        failed = await session.run(py("1 / 0"))
        exited = await session.run(py("import sys\nsys.exit(3)"))
        after = await session.run(py("print('still here')"))
        shell = await session.run(CodeBlock("echo from sh; exit 2", "sh"))
        kept = await session.run(py("print(sys.version_info[0])"))
    assert failed.exit_code == 1
    assert "ZeroDivisionError" in failed.stderr
    assert "\x1b[" not in failed.stderr  # no terminal colours in what the model reads
    assert exited.exit_code == 3
    assert (after.exit_code, after.stdout) == (0, "still here\n")
    assert (shell.exit_code, shell.stdout) == (2, "from sh\n")
    assert kept.stdout == "3\n"  # a shell block leaves the kernel alone


async def test_displays_and_savefig_come_back_as_files(
    make_kernel: DockerFactory, tmp_path: Path
) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 3, 2])\n"
        "plt.savefig('saved.png')\n"
        "plt.show()\n"
    )
    async with make_kernel() as executor, executor.session(tmp_path) as session:
        result = await session.run(py(code), timeout=60)
        again = await session.run(py("plt.plot([2, 1]); plt.show()"), timeout=60)
    assert result.exit_code == 0, result.stderr
    assert sorted(result.files) == ["display-1.png", "saved.png"]
    assert "[display saved as display-1.png]" in result.stdout
    assert again.files == ("display-2.png",)
    for name in ("display-1.png", "display-2.png", "saved.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "display-1.png",
        "display-2.png",
        "saved.png",
    ]  # nothing of IPython's or matplotlib's own state


async def test_an_endless_loop_is_interrupted_and_the_kernel_keeps_its_state(
    make_kernel: DockerFactory,
) -> None:
    async with make_kernel() as executor, executor.session() as session:
        await session.run(py("x = 41"))
        looped = await session.run(py("while True:\n    pass"), timeout=1)
        after = await session.run(py("print(x + 1)"))
    assert looped.timed_out
    assert looped.exit_code == 124
    assert "KeyboardInterrupt" in looped.stderr
    assert "was interrupted" in looped.stderr
    assert "restarted" not in looped.stderr
    assert after.stdout == "42\n", after.stderr


async def test_a_kernel_that_ignores_sigint_is_killed_and_restarted_with_a_notice(
    make_kernel: DockerFactory,
) -> None:
    stubborn = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    async with make_kernel() as executor, executor.session() as session:
        await session.run(py("x = 41"))
        stuck = await session.run(py(stubborn), timeout=1)
        gone = await session.run(py("print(x)"))
        fresh = await session.run(py("x = 1\nprint(x + 1)"))
    assert stuck.timed_out
    assert stuck.exit_code == 124
    assert "did not stop at the timeout's interrupt" in stuck.stderr
    assert "a new kernel was started" in stuck.stderr
    assert gone.exit_code == 1
    assert "NameError" in gone.stderr
    assert fresh.stdout == "2\n"


async def test_a_dead_kernel_is_restarted_with_a_notice(make_kernel: DockerFactory) -> None:
    async with make_kernel() as executor, executor.session() as session:
        died = await session.run(py("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
        after = await session.run(py("print('back')"))
    assert died.exit_code != 0
    assert "a new kernel was started" in died.stderr
    assert after.stdout == "back\n"


async def test_processes_a_cell_starts_do_not_outlive_it(make_kernel: DockerFactory) -> None:
    code = "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nprint(child.pid)"
    count = (
        "import os\n"
        "def live(p):\n"
        "    status = open('/proc/%s/status' % p).read()\n"
        "    return 'zombie' not in status and 'Uid:\\t%d' % os.getuid() in status\n"
        "print(len([p for p in os.listdir('/proc') if p.isdigit() and live(p)]))\n"
    )
    async with make_kernel() as executor, executor.session() as session:
        await session.run(py(code))
        after = await session.run(py(count))
    assert after.stdout == "2\n"  # the kernel and its driver, nothing else


async def test_releasing_the_lease_wipes_the_kernel_and_its_files(
    make_kernel: DockerFactory, docker: aiodocker.Docker
) -> None:
    async with make_kernel(pool_size=1) as executor:
        (before,) = await pool_containers(docker, executor)
        async with executor.session() as first:
            await first.run(py("secret = 'left'\nopen('/run/moot/kernel/mark', 'w').write('x')"))
        async with executor.session() as second:
            look = (
                "import os\nprint('secret' in globals(), os.path.exists('/run/moot/kernel/mark'))"
            )
            seen = await second.run(py(look))
        (after,) = await pool_containers(docker, executor)
    assert seen.stdout == "False False\n", seen.stderr
    assert after.id == before.id  # wiped in place


async def test_no_port_is_published_and_nothing_listens_on_tcp(
    make_kernel: DockerFactory, docker: aiodocker.Docker
) -> None:
    # ipykernel forwards forked children's output through a socket on the container's own
    # loopback; the kernel's channels are ipc files. Nothing listens anywhere else.
    listening = (
        "rows = []\n"
        "for name in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
        "    rows += [line.split() for line in open(name).read().splitlines()[1:]]\n"
        "print(sorted({row[1].split(':')[0] for row in rows if row[3] == '0A'}))\n"  # 0A: LISTEN
        "import os\nprint(sorted(os.listdir('/sys/class/net')))\n"
    )
    async with make_kernel() as executor, executor.session() as session:
        result = await session.run(py(listening))
        (container,) = await pool_containers(docker, executor)
        info = await container.show()
    assert result.stdout in ("[]\n['lo']\n", "['0100007F']\n['lo']\n"), result.stderr
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert not info["HostConfig"].get("PortBindings")
    assert not info["HostConfig"].get("PublishAllPorts")
    assert not info["NetworkSettings"].get("Ports")
    assert not info["Config"].get("ExposedPorts")


async def test_eight_chats_each_hold_a_kernel_on_two_cores(make_kernel: DockerFactory) -> None:
    seen: dict[int, Any] = {}

    async def chat(number: int, session: Any) -> None:
        await session.run(py(f"me = {number}"), timeout=60)
        result = await session.run(py("import json\nprint(json.dumps([me, me * me]))"), timeout=60)
        assert result.stdout, result
        seen[number] = json.loads(result.stdout)

    async with make_kernel(pool_size=8, cpus=0.25) as executor:
        async with anyio.create_task_group() as group:
            for number in range(8):

                async def one(number: int = number) -> None:
                    async with executor.session() as session:
                        await chat(number, session)

                group.start_soon(one)
    assert seen == {n: [n, n * n] for n in range(8)}
