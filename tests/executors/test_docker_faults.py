"""Faults: containers killed from outside, a dead or stalled runner, load, closing mid-job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from typing import TYPE_CHECKING, Any

import aiodocker
import anyio
import pytest
from docker_helpers import exec_in, pool_containers

from moot.executors import (
    CodeBlock,
    CodeResult,
    DockerExecutor,
    DockerUnavailableError,
    ExecutorClosedError,
    ExecutorError,
    ImageError,
    LeaseTimeoutError,
    SandboxError,
    reap_leftovers,
)

if TYPE_CHECKING:
    from docker_helpers import DockerFactory

SLEEP = CodeBlock("import time\ntime.sleep(30)", "python")
KILL_RUNNER = (
    "import os, signal\n"
    "for p in os.listdir('/proc'):\n"
    "    if not p.isdigit() or int(p) == os.getpid():\n"
    "        continue\n"
    "    if b'runner.py' in open('/proc/%s/cmdline' % p, 'rb').read():\n"
    "        os.kill(int(p), signal.SIG{sig})\n"
)


async def _fail_mid_job(
    docker: aiodocker.Docker, executor: DockerExecutor, action: str
) -> tuple[SandboxError, CodeResult]:
    """Start a long job, break its container with `action`, then run again on the same session."""
    (container,) = await pool_containers(docker, executor)
    async with executor.session() as session:
        errors: list[SandboxError] = []

        async def run() -> None:
            with pytest.raises(SandboxError) as info:
                await session.run(SLEEP)
            errors.append(info.value)

        async with anyio.create_task_group() as group:
            group.start_soon(run)
            await anyio.wait_all_tasks_blocked()
            if action == "docker kill":
                await container.kill()
            else:
                await exec_in(container, "python3", "-c", KILL_RUNNER.format(sig=action))
        started = anyio.current_time()
        again = await session.run(CodeBlock("print('replaced')", "python"))
        recovery = anyio.current_time() - started
    assert recovery < 5, recovery
    return errors[0], again


@pytest.mark.docker
async def test_docker_kill_mid_job_is_a_typed_error_and_the_slot_is_replaced(
    make_docker: DockerFactory, docker: aiodocker.Docker
) -> None:
    async with make_docker() as executor:
        error, again = await _fail_mid_job(docker, executor, "docker kill")
        assert again.stdout == "replaced\n"
        assert error.reason in {"eof", "stream_failed"}
        assert error.container_id
        assert isinstance(error, ExecutorError)
        (current,) = await pool_containers(docker, executor)
        assert current.id != error.container_id
    assert await pool_containers(docker, executor) == []


@pytest.mark.docker
async def test_killed_runner_is_a_typed_error_and_the_slot_is_replaced(
    make_docker: DockerFactory, docker: aiodocker.Docker
) -> None:
    async with make_docker() as executor:
        error, again = await _fail_mid_job(docker, executor, "KILL")
    assert error.reason in {"eof", "stream_failed"}
    assert again.stdout == "replaced\n"
    assert await pool_containers(docker, executor) == []


@pytest.mark.docker
async def test_stalled_runner_trips_the_host_watchdog(
    make_docker: DockerFactory, docker: aiodocker.Docker
) -> None:
    async with make_docker(timeout=1) as executor:
        (container,) = await pool_containers(docker, executor)
        await exec_in(container, "python3", "-c", KILL_RUNNER.format(sig="STOP"))
        async with executor.session() as session:
            started = anyio.current_time()
            with pytest.raises(SandboxError) as info:
                await session.run(CodeBlock("print(1)", "python"))
            waited = anyio.current_time() - started
            again = await session.run(CodeBlock("print('replaced')", "python"))
    assert info.value.reason == "unresponsive"
    assert 1 < waited < 6
    assert again.stdout == "replaced\n"
    assert await pool_containers(docker, executor) == []


@pytest.mark.docker
async def test_fifty_concurrent_jobs_on_a_pool_of_four(make_docker: DockerFactory) -> None:
    results: dict[int, str] = {}
    leased = 0
    peak = 0

    async def job(i: int) -> None:
        nonlocal leased, peak
        async with executor.session() as session:
            leased += 1
            peak = max(peak, leased)
            result = await session.run(CodeBlock(f"print({i} * {i})", "python"))
            leased -= 1
        results[i] = result.stdout

    async with make_docker(pool_size=4, lease_timeout=60) as executor:
        async with anyio.create_task_group() as group:
            for i in range(50):
                group.start_soon(job, i)
    assert results == {i: f"{i * i}\n" for i in range(50)}
    assert peak == 4


@pytest.mark.docker
async def test_closing_the_pool_mid_job_gives_each_job_a_typed_error(
    make_docker: DockerFactory, docker: aiodocker.Docker
) -> None:
    outcomes: list[str] = []

    async def busy() -> None:
        try:
            async with executor.session() as session:
                await session.run(SLEEP)
        except ExecutorClosedError:
            outcomes.append("closed")

    async with make_docker(pool_size=2) as executor:
        async with anyio.create_task_group() as group:
            for _ in range(3):  # two run, the third waits for a lease
                group.start_soon(busy)
            await anyio.wait_all_tasks_blocked()
            assert executor.statistics()["running_jobs"] == 2
            await executor.aclose()
    assert outcomes == ["closed", "closed", "closed"]
    assert await pool_containers(docker, executor) == []


@pytest.mark.docker
async def test_lease_waits_with_a_deadline(make_docker: DockerFactory) -> None:
    async with make_docker(pool_size=1, lease_timeout=0.3) as executor:
        async with executor.session():
            started = anyio.current_time()
            with pytest.raises(LeaseTimeoutError) as info:
                async with executor.session():
                    pass
            waited = anyio.current_time() - started
    assert isinstance(info.value, TimeoutError)
    assert (info.value.timeout, info.value.pool_size) == (0.3, 1)
    assert 0.3 <= waited < 1


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.docker
async def test_reaper_removes_leftovers_of_dead_processes_only(
    docker_image: str, docker: aiodocker.Docker
) -> None:
    host = socket.gethostname()
    with open(f"/proc/{os.getpid()}/stat") as handle:
        my_start = handle.read().rsplit(")", 1)[1].split()[19]
    owners = {
        "dead": f"{host}:{_dead_pid()}:1",
        "reused": f"{host}:{os.getpid()}:not-my-start-time",
        "alive": f"{host}:{os.getpid()}:{my_start}",
        "elsewhere": "another-host:1:1",
    }
    created = {}
    try:
        for name, owner in owners.items():
            labels = {"moot.executor": "1", "moot.pool": "reaper-test", "moot.owner": owner}
            config: dict[str, Any] = {"Image": docker_image, "Cmd": ["true"], "Labels": labels}
            created[name] = await docker.containers.create(config)
        assert await reap_leftovers(docker) >= 2
        left = await docker.containers.list(
            all=True, filters=json.dumps({"label": ["moot.pool=reaper-test"]})
        )
        assert {c.id for c in left} == {created["alive"].id, created["elsewhere"].id}
    finally:
        for container in created.values():
            try:
                await container.delete(force=True)
            except aiodocker.DockerError:
                pass


@pytest.mark.docker
async def test_start_reaps_leftovers(
    docker_image: str, make_docker: DockerFactory, docker: aiodocker.Docker
) -> None:
    labels = {"moot.executor": "1", "moot.owner": f"{socket.gethostname()}:{_dead_pid()}:1"}
    leftover = await docker.containers.create(
        {"Image": docker_image, "Cmd": ["true"], "Labels": labels}
    )
    async with make_docker():
        with pytest.raises(aiodocker.DockerError) as info:
            await leftover.show()
    assert info.value.status == 404


@pytest.mark.docker
async def test_missing_image_is_a_typed_error(make_docker: DockerFactory) -> None:
    with pytest.raises(ImageError) as info:
        async with make_docker(image="moot-sandbox:does-not-exist"):
            pass
    assert info.value.image == "moot-sandbox:does-not-exist"
    assert "moot image build" in str(info.value)


async def test_unreachable_engine_says_how_to_fix_it(tmp_path: anyio.Path) -> None:
    executor = DockerExecutor(docker_url=f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(DockerUnavailableError) as info:
        async with executor:
            pass
    assert "use_docker=False" in str(info.value)
    assert "Start Docker" in str(info.value)
    assert executor.closed


async def test_session_on_an_unstarted_executor_is_refused() -> None:
    with pytest.raises(ExecutorClosedError, match="not running"):
        async with DockerExecutor().session():
            pass
