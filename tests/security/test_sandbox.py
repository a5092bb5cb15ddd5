"""The sandbox's hardening, checked from inside real containers (no network, root, host)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import pytest
from docker_helpers import pool_containers

from moot.executors import CodeBlock, Mount

if TYPE_CHECKING:
    from pathlib import Path

    import aiodocker
    from anyio.abc import SocketStream
    from docker_helpers import DockerFactory

pytestmark = pytest.mark.docker


@pytest.fixture(params=["base", "data"])
def docker_image(request: pytest.FixtureRequest, docker_image: str) -> str:
    """Every check runs on the base image and on the "data" profile's image (more packages, more
    binaries: the hardening must not depend on what the image lacks)."""
    return docker_image if request.param == "base" else str(request.getfixturevalue("data_image"))


COUNT_OTHER_JOB_PROCESSES = (
    "import os\n"
    "me = os.getpid()\n"
    "others = []\n"
    "for p in os.listdir('/proc'):\n"
    "    if p.isdigit() and int(p) != me:\n"
    "        try:\n"
    "            status = open('/proc/%s/status' % p).read()\n"
    "        except OSError:\n"
    "            continue\n"
    "        uid = [l for l in status.splitlines() if l.startswith('Uid:')][0].split()[1]\n"
    "        if uid == str(os.getuid()) and '(zombie)' not in status:\n"
    "            others.append(p)\n"
    "print(len(others))\n"
)


async def test_no_network_even_to_a_server_on_host_loopback(make_docker: DockerFactory) -> None:
    accepted: list[str] = []

    async def handle(stream: SocketStream) -> None:
        accepted.append("connection")
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    code = (
        "import os, socket\n"
        "print(sorted(os.listdir('/sys/class/net')))\n"
        f"for host in ('127.0.0.1', '172.17.0.1'):\n"
        "    s = socket.socket()\n"
        "    s.settimeout(1)\n"
        "    try:\n"
        f"        s.connect((host, {port}))\n"
        "        print('connected', host)\n"
        "    except OSError as exc:\n"
        "        print('failed', host)\n"
    )
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        async with make_docker() as executor, executor.session() as session:
            result = await session.run(CodeBlock(code, "python"))
        assert accepted == []
        control = await anyio.connect_tcp("127.0.0.1", port)  # the server does listen
        await control.aclose()
        group.cancel_scope.cancel()
    assert result.stdout == "['lo']\nfailed 127.0.0.1\nfailed 172.17.0.1\n"
    assert accepted == ["connection"]


async def test_jobs_run_unprivileged_without_capabilities(make_docker: DockerFactory) -> None:
    code = (
        "import os\n"
        "print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())\n"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "for key in ('CapEff', 'CapPrm', 'CapAmb', 'NoNewPrivs', 'Seccomp'):\n"
        "    print(key, status[key].strip())\n"
        "try:\n"
        "    os.setuid(0)\n"
        "except PermissionError:\n"
        "    print('setuid refused')\n"
    )
    async with make_docker() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.stdout.splitlines() == [
        "10000 10000 10000 []",
        "CapEff 0000000000000000",
        "CapPrm 0000000000000000",
        "CapAmb 0000000000000000",
        "NoNewPrivs 1",
        "Seccomp 2",
        "setuid refused",
    ]


async def test_bounding_set_keeps_only_what_the_runner_needs(make_docker: DockerFactory) -> None:
    code = 'while read -r key value; do [ "$key" = CapBnd: ] && echo $key $value; done'
    code += " < /proc/self/status"
    async with make_docker() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "sh"))
    bounding = int(result.stdout.split()[1], 16)
    cap_kill, cap_setgid, cap_setuid = 5, 6, 7
    assert bounding == (1 << cap_kill) | (1 << cap_setgid) | (1 << cap_setuid)


async def test_root_filesystem_is_read_only(make_docker: DockerFactory) -> None:
    code = (
        "import errno\n"
        "root = [l.split() for l in open('/proc/mounts') if l.split()[1] == '/'][0]\n"
        "print('ro' in root[3].split(','))\n"
        "for path in ('/usr/bin/python3', '/opt/moot/runner.py', '/etc/evil', '/evil'):\n"
        "    try:\n"
        "        open(path, 'a').close()\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print(errno.errorcode[exc.errno])\n"
        "open('/work/ok', 'w').close(); open('/tmp/ok', 'w').close(); print('tmpfs ok')\n"
    )
    async with make_docker() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"))
    lines = result.stdout.splitlines()
    assert lines[0] == "True"
    assert all(line in {"EROFS", "EACCES"} for line in lines[1:5]), lines
    assert lines[5] == "tmpfs ok"


async def test_host_files_socket_and_environment_are_invisible(
    make_docker: DockerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOOT_TEST_SECRET", "hunter2")
    secret = tmp_path / "host-only.txt"
    secret.write_text("host secret")
    code = (
        "import os\n"
        f"print(os.path.exists({str(secret)!r}))\n"
        "print(os.path.exists('/var/run/docker.sock'), os.path.exists('/run/docker.sock'))\n"
        "print(sorted(os.environ))\n"
        "print('MOOT_TEST_SECRET' in open('/proc/1/environ').read() if os.access('/proc/1/environ', os.R_OK) else 'no access')\n"  # noqa: E501
    )
    async with make_docker() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"))
    lines = result.stdout.splitlines()
    assert lines[0] == "False"
    assert lines[1] == "False False"
    assert "MOOT_TEST_SECRET" not in lines[2]
    assert lines[3] in {"False", "no access"}


async def test_code_never_appears_in_any_command_line(make_docker: DockerFactory) -> None:
    marker = "moot-marker-5f3a"
    code = (
        "import os\n"
        f"needle = 'moot-marker-' + '5f3a'\n"
        "seen = []\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        try:\n"
        "            seen.append(open('/proc/%s/cmdline' % p, 'rb').read().decode())\n"
        "        except OSError:\n"
        "            pass\n"
        "print(any(needle in c for c in seen), len(seen) > 1)\n"
        f"# {marker}\n"
    )
    async with make_docker() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.stdout == "False True\n"


def no_other_job_processes(sandbox_mode: str) -> str:
    """What COUNT_OTHER_JOB_PROCESSES prints in a clean slot: none, or the kernel's driver."""
    return "1\n" if sandbox_mode == "kernel" else "0\n"


async def test_fork_bomb_is_stopped(make_docker: DockerFactory, sandbox_mode: str) -> None:
    bomb = "bomb() { bomb | bomb & }; bomb; wait"
    async with make_docker(pids_limit=32) as executor, executor.session() as session:
        result = await session.run(CodeBlock(bomb, "bash"), timeout=2)
        after = await session.run(CodeBlock(COUNT_OTHER_JOB_PROCESSES, "python"))
    assert result.timed_out or "Resource temporarily unavailable" in result.stderr
    assert result.duration_s < 5
    assert after.stdout == no_other_job_processes(sandbox_mode)


async def test_memory_bomb_is_killed_without_harming_other_slots(
    make_docker: DockerFactory,
) -> None:
    bomb = "chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))"
    async with make_docker(pool_size=2, memory="128m") as executor:
        async with executor.session() as victim, executor.session() as neighbour:
            results = {}

            async def run_bomb() -> None:
                results["bomb"] = await victim.run(CodeBlock(bomb, "python"))

            async def run_neighbour() -> None:
                code = "data = b'y' * (32 << 20)\nprint(len(data))"
                results["neighbour"] = await neighbour.run(CodeBlock(code, "python"))

            async with anyio.create_task_group() as group:
                group.start_soon(run_bomb)
                group.start_soon(run_neighbour)
            after = await victim.run(CodeBlock("print('still here')", "python"))
    assert results["bomb"].exit_code == 137
    assert results["bomb"].oom_killed
    assert "out of memory" in results["bomb"].stderr
    assert results["neighbour"].stdout == f"{32 << 20}\n"
    assert after.stdout == "still here\n"


async def test_output_flood_is_capped(make_docker: DockerFactory) -> None:
    flood = "yes moot | head -c 50000000; yes err | head -c 5000000 >&2"
    async with make_docker(output_limit=10_000) as executor, executor.session() as session:
        result = await session.run(CodeBlock(flood, "sh"))
    assert result.exit_code == 0
    assert len(result.stdout) < 10_200
    assert len(result.stderr) < 10_200
    assert "49990000 bytes of output omitted" in result.stdout
    assert result.stdout.startswith("moot\nmoot\n")


@pytest.mark.parametrize("main_waits", [True, False])
async def test_setsid_double_fork_escapees_are_killed(
    make_docker: DockerFactory, main_waits: bool, sandbox_mode: str
) -> None:
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True:\n"
        "            time.sleep(0.05)\n"
        "    os._exit(0)\n"
        f"if {main_waits}:\n"
        "    time.sleep(60)\n"
    )
    async with make_docker() as executor, executor.session() as session:
        result = await session.run(CodeBlock(code, "python"), timeout=1)
        after = await session.run(CodeBlock(COUNT_OTHER_JOB_PROCESSES, "python"))
    assert result.timed_out is main_waits
    assert after.stdout == no_other_job_processes(sandbox_mode)


async def test_symlinks_planted_by_code_are_not_copied_out(
    make_docker: DockerFactory, tmp_path: Path
) -> None:
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'leak')\n"
        "os.mkdir('d'); os.symlink('/etc', 'd/etc')\n"
        "open('real.txt', 'w').write('ok')\n"
    )
    async with make_docker() as executor, executor.session(tmp_path) as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.files == ("real.txt",)
    assert sorted(os.listdir(tmp_path)) == ["real.txt"]


async def test_slot_is_wiped_between_leases(
    make_docker: DockerFactory, docker: aiodocker.Docker
) -> None:
    async with make_docker(pool_size=1) as executor:
        async with executor.session() as first:
            await first.run(CodeBlock("echo a > /work/left; echo b > /tmp/left", "sh"))
        async with executor.session() as second:
            result = await second.run(CodeBlock("ls -A /work /tmp", "sh"))
        (container,) = await pool_containers(docker, executor)
    assert result.stdout.split() == ["/tmp:", "/work:"]
    assert container.id


async def test_host_symlinks_in_the_work_dir_are_not_sent_in(
    make_docker: DockerFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret")
    work = tmp_path / "work"
    work.mkdir()
    (work / "link.txt").symlink_to(outside)
    (work / "plain.txt").write_text("shared")
    code = "import os\nprint(sorted(os.listdir('.')))"
    async with make_docker() as executor, executor.session(work) as session:
        result = await session.run(CodeBlock(code, "python"))
    assert result.stdout == "['plain.txt']\n"


async def test_relaxations_are_explicit_options(make_docker: DockerFactory, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a,b\n")
    tmp_path.chmod(0o755)  # the job's uid must be able to read the mounted directory
    code = (
        "import os\n"
        "print(open('/data/data.csv').read().strip())\n"
        "try:\n"
        "    open('/data/new', 'w')\n"
        "except OSError:\n"
        "    print('read-only')\n"
        "print('eth0' in os.listdir('/sys/class/net'))\n"
    )
    mount = Mount(source=str(tmp_path), target="/data")
    async with make_docker(mounts=[mount], network=True) as executor:
        async with executor.session() as session:
            result = await session.run(CodeBlock(code, "python"))
    assert result.stdout == "a,b\nread-only\nTrue\n"
