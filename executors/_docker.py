"""`DockerExecutor`: a pool of warm, hardened containers, each with a persistent runner inside.

A chat leases one slot for its lifetime; its jobs travel as JSON lines over the container's attached
stdin/stdout. A slot whose container fails is replaced in the background by the pool's task group,
and closing the executor removes every container it created.
"""

from __future__ import annotations

import base64
import enum
import functools
import itertools
import json
import os
import socket
import time
import uuid
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiodocker
import aiohttp
import anyio
import structlog

from moot import observability

from ._base import (
    DEFAULT_CODE_LIMIT,
    Executor,
    ExecutorSession,
    WorkDir,
    check_code,
    safe_relative_path,
)
from ._errors import (
    ExecutorClosedError,
    ExecutorConfigError,
    ImageError,
    LeaseTimeoutError,
    SandboxError,
)
from ._files import read_outgoing, write_incoming
from ._image import RUNNER_PATH, build_image, image_exists, image_tag, open_docker
from ._runner import (
    COPY_BACK_S,
    JOB_UID,
    KERNEL_DIR,
    KERNEL_GRACE_S,
    SCRATCH_DIR,
    TMP_DIR,
    WORK_DIR,
    NotCopied,
)
from ._types import TIMEOUT_EXIT_CODE, CodeBlock, CodeResult, normalize_language

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
    from types import TracebackType

    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


log = structlog.get_logger("moot.executors.docker")

LABEL_EXECUTOR = "moot.executor"
LABEL_POOL = "moot.pool"
LABEL_OWNER = "moot.owner"
WATCHDOG_GRACE_S = 2.0
CONTROL_TIMEOUT_S = 5.0
WRITE_FLOOR_BYTES_PER_S = 10_000_000  # a healthy attach stream takes input far faster than this
_DOCKER_FAILURES = (aiodocker.DockerError, aiohttp.ClientError, OSError, RuntimeError)


class _State(enum.Enum):
    NEW = "new"  # constructed; `start()` (or `async with`) warms the pool
    RUNNING = "running"  # the pool is up and hands out leases
    CLOSED = "closed"  # closed; every container removed, every call raises ExecutorClosedError


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    """An explicit relaxation: a host directory visible in the sandbox (read-only by default)."""

    source: str
    target: str
    read_only: bool = True


def parse_bytes(value: int | str) -> int:
    """Bytes from an int or a Docker-style size such as "512m" or "1g".

    Raises:
        ExecutorConfigError: the size cannot be parsed or is not positive.
    """
    if isinstance(value, int):
        size = value
    else:
        text = value.strip().lower().removesuffix("b")
        scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
        number = text[:-1] if scale != 1 else text
        try:
            size = int(float(number) * scale)
        except ValueError:
            raise ExecutorConfigError(f"not a size: {value!r} (try '512m')") from None
    if size <= 0:
        raise ExecutorConfigError(f"size must be positive, got {value!r}")
    return size


class _Sandbox:
    """One container and its attached runner; replies are matched to requests by id."""

    def __init__(self, container: aiodocker.containers.DockerContainer, name: str) -> None:
        self.container = container
        self.name = name
        self.broken = False
        self._stack = AsyncExitStack()
        self._stream: aiodocker.stream.Stream | None = None
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self._write_lock = anyio.Lock()

    @property
    def id(self) -> str:
        return str(self.container.id)

    async def attach(self) -> None:
        stream = self.container.attach(stdin=True, stdout=True, stderr=True)
        await stream.__aenter__()  # opens the hijacked connection before the container starts
        self._stack.push_async_callback(stream.close)
        self._stream = stream

    async def wait_ready(self, timeout: float) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            return await self._read_reply(lambda reply: reply.get("op") == "ready")

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Write one request line; engine failures become `SandboxError`."""
        if self._stream is None or self.broken:
            raise self._failure("the sandbox is not attached", "detached")
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        allowed = CONTROL_TIMEOUT_S + len(line) / WRITE_FLOOR_BYTES_PER_S
        try:
            with anyio.fail_after(allowed):
                async with self._write_lock:
                    await self._stream.write_in(line)
        except TimeoutError as exc:
            raise self._failure("the runner stopped reading its input", "write_stalled") from exc
        except (*_DOCKER_FAILURES, AssertionError) as exc:  # aiodocker asserts on a dead transport
            raise self._failure(f"cannot write to the runner: {exc}", "write_failed") from exc

    async def request(self, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send a request and wait for its reply within `timeout` (the host-side watchdog)."""
        request_id = message["id"] = message.get("id") or self.next_id()
        await self.send(message)
        return await self.reply(request_id, timeout=timeout)

    async def reply(self, request_id: int, *, timeout: float) -> dict[str, Any]:
        with anyio.move_on_after(timeout) as scope:
            return await self._read_reply(lambda reply: reply.get("id") == request_id)
        assert scope.cancelled_caught
        raise self._failure(f"the runner did not answer within {timeout:g} s", "unresponsive")

    async def _read_reply(self, wanted: Any) -> dict[str, Any]:
        assert self._stream is not None
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                try:
                    reply = json.loads(line)
                except ValueError:
                    log.warning("sandbox.bad_reply", container=self.name, size=len(line))
                    continue
                if wanted(reply):
                    return dict(reply)
                continue  # a stale reply to a cancelled request
            try:
                message = await self._stream.read_out()
            except _DOCKER_FAILURES as exc:
                raise self._failure(f"the attach stream failed: {exc}", "stream_failed") from exc
            if message is None:
                raise self._failure("the runner exited or the container stopped", "eof")
            if message.stream == 2:
                log.debug("sandbox.runner_stderr", container=self.name, text=message.data[:500])
                continue
            self._buffer += message.data

    def _failure(self, message: str, reason: str) -> SandboxError:
        self.broken = True
        return SandboxError(f"Sandbox {self.name}: {message}.", container_id=self.id, reason=reason)

    async def destroy(self) -> None:
        """Detach and force-remove the container; a container already gone is fine."""
        self.broken = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(CONTROL_TIMEOUT_S * 2):
            try:
                await self._stack.aclose()
            except _DOCKER_FAILURES:
                pass
            try:
                await self.container.delete(force=True)
            except aiodocker.DockerError as exc:
                if exc.status not in (404, 409):
                    log.warning("sandbox.remove_failed", container=self.name, error=str(exc))
            except _DOCKER_FAILURES as exc:
                log.warning("sandbox.remove_failed", container=self.name, error=str(exc))


class _Slot:
    """A lease unit of the pool; its sandbox may be swapped for a fresh one after a failure."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sandbox: _Sandbox | None = None
        self.error: BaseException | None = None
        self.ready = anyio.Event()

    async def get(self) -> _Sandbox:
        await self.ready.wait()
        if self.sandbox is None:
            raise SandboxError(
                f"Slot {self.index} has no sandbox: {self.error}",
                reason="replacement_failed",
            )
        return self.sandbox


class DockerExecutor(Executor):
    """Run code in a pool of warm, hardened Docker containers (no network, non-root, capped).

    Relaxations are explicit: `network=True`, `mounts=[Mount(...)]`. `mode="fork"` forks each
    Python job from the warm runner (faster; only for single-tenant use); `mode="kernel"` keeps
    one IPython kernel per slot, so a session's Python blocks share variables (pair it with a
    chat-long lease). Use it as `async with`: the block owns the pool's task group.
    """

    def __init__(
        self,
        *,
        pool_size: int | None = None,
        image: str | None = None,
        timeout: float = 60,
        memory: int | str = "512m",
        cpus: float = 1.0,
        pids_limit: int = 128,
        network: bool = False,
        mounts: Sequence[Mount] = (),
        lease_timeout: float = 60,
        mode: Literal["spawn", "fork", "kernel"] = "spawn",
        output_limit: int = 64_000,
        file_limit: int | str = "32m",
        code_limit: int | str = DEFAULT_CODE_LIMIT,
        work_dir_size: int | str = "256m",
        tmp_size: int | str = "64m",
        nofile: int = 1024,
        start_timeout: float = 30,
        docker_url: str | None = None,
    ) -> None:
        if mode not in ("spawn", "fork", "kernel"):
            raise ExecutorConfigError(
                f"mode must be 'spawn', 'fork' or 'kernel', got {mode!r}", setting="mode"
            )
        self.pool_size = pool_size if pool_size is not None else max(2, os.cpu_count() or 2)
        if self.pool_size < 1:
            raise ExecutorConfigError(
                f"pool_size must be at least 1, got {pool_size}", setting="pool_size"
            )
        self.image = image
        self.timeout = timeout
        self.memory = parse_bytes(memory)
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.network = network
        self.mounts = tuple(mounts)
        self.lease_timeout = lease_timeout
        self.mode = mode
        self.output_limit = output_limit
        self.file_limit = parse_bytes(file_limit)
        self.code_limit = parse_bytes(code_limit)
        self.work_dir_size = parse_bytes(work_dir_size)
        self.tmp_size = parse_bytes(tmp_size)
        self.nofile = nofile
        self.start_timeout = start_timeout
        self.docker_url = docker_url
        self.pool_id = uuid.uuid4().hex[:12]
        self._state = _State.NEW
        self._docker: aiodocker.Docker | None = None
        self._stack = AsyncExitStack()
        self._group: TaskGroup | None = None
        self._slots: list[_Slot] = []
        # Free slots; created by start(), so an executor that never starts holds no streams.
        self._free_send: MemoryObjectSendStream[_Slot] | None = None
        self._free_receive: MemoryObjectReceiveStream[_Slot] | None = None
        self._sandboxes: set[_Sandbox] = set()
        self._jobs: set[anyio.CancelScope] = set()
        self._background: set[anyio.CancelScope] = set()
        self._names = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, reap leftovers of dead processes, and start the whole pool concurrently.

        Raises:
            DockerUnavailableError: no Docker engine answers.
            ImageError: the configured image does not exist (the default image is built).
            SandboxError: a container of the pool failed to start.
            ExecutorClosedError: the executor was already closed.
        """
        if self._state is _State.CLOSED:
            raise ExecutorClosedError("Cannot start a DockerExecutor that has been closed.")
        if self._state is _State.RUNNING:
            return
        started = time.monotonic()
        try:
            self._docker = await self._stack.enter_async_context(_docker_client(self.docker_url))
            await self._resolve_image(self._docker)
            await reap_leftovers(self._docker)
            self._group = await self._stack.enter_async_context(anyio.create_task_group())
            self._free_send, self._free_receive = anyio.create_memory_object_stream[_Slot](
                self.pool_size
            )
            self._state = _State.RUNNING
            self._slots = [_Slot(index) for index in range(self.pool_size)]
            async with anyio.create_task_group() as group:
                for slot in self._slots:
                    group.start_soon(self._fill, slot, True)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            await self._stack.aclose()
            raise
        assert self._free_send is not None
        for slot in self._slots:
            self._free_send.send_nowait(slot)
        observability.watch("executor", self._pool_gauges)
        log.info(
            "executor.pool_started",
            pool=self.pool_id,
            size=self.pool_size,
            image=self.image,
            seconds=round(time.monotonic() - started, 3),
        )

    async def _resolve_image(self, docker: aiodocker.Docker) -> None:
        if self.image is None:
            packages = ("kernel",) if self.mode == "kernel" else ()
            self.image = image_tag(packages)
            if not await image_exists(docker, self.image):
                log.info("executor.building_image", image=self.image)
                self.image = await build_image(packages)
        elif not await image_exists(docker, self.image):
            raise ImageError(
                f"The sandbox image {self.image} does not exist. Build it with "
                "`moot image build` (or pass image=None to build the default).",
                image=self.image,
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        await self._stack.aclose()  # the pool's task group (cancelled by now), then the client

    async def aclose(self) -> None:
        """Stop the pool: running jobs get `ExecutorClosedError`, every container is removed.

        Callable from any task; the `async with` block's exit then finishes the teardown.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        observability.unwatch("executor", self._pool_gauges)
        for scope in list(self._jobs):
            scope.cancel()
        if self._free_send is not None and self._free_receive is not None:
            self._free_send.close()
            self._free_receive.close()
        for scope in list(self._background):
            scope.cancel()  # not the group's own scope: that one encloses the `async with` body
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as group:
                for sandbox in list(self._sandboxes):
                    group.start_soon(sandbox.destroy)
            if self._docker is not None:
                await _remove_labelled(self._docker, {LABEL_POOL: self.pool_id})
            self._sandboxes.clear()
        log.info("executor.pool_closed", pool=self.pool_id)

    @property
    def closed(self) -> bool:
        """Whether `aclose()` has run."""
        return self._state is _State.CLOSED

    def _pool_gauges(self) -> dict[str, int]:
        """Size, free and busy slots for moot.observability's gauges (read at collection)."""
        stats = self.statistics()
        return {**stats, "busy": stats["pool_size"] - stats["free"]}

    def statistics(self) -> dict[str, int]:
        """Pool size, free slots and running jobs, for tests and dashboards."""
        return {
            "pool_size": self.pool_size,
            "free": (
                self._free_receive.statistics().current_buffer_used
                if self._free_receive is not None
                else 0
            ),
            "running_jobs": len(self._jobs),
            "containers": len(self._sandboxes),
        }

    # -- slots -----------------------------------------------------------------------------

    async def _fill(self, slot: _Slot, strict: bool = False) -> None:
        """Give `slot` a fresh sandbox; with `strict` a failure propagates (pool start-up)."""
        slot.sandbox, slot.error = None, None
        attempts = 1 if strict else 3
        for attempt in range(1, attempts + 1):
            try:
                slot.sandbox = await self._create_sandbox()
                break
            except (SandboxError, *_DOCKER_FAILURES, TimeoutError) as exc:
                slot.error = exc
                log.warning(
                    "executor.slot_fill_failed", slot=slot.index, attempt=attempt, error=str(exc)
                )
                if strict:
                    raise
                await anyio.sleep(0.2 * attempt)
        slot.ready.set()

    def _replace(self, slot: _Slot, broken: _Sandbox, reason: str) -> None:
        """Swap a failed sandbox for a new one in the background; the slot waits on `ready`."""
        if slot.sandbox is not broken:
            return
        log.warning("executor.slot_replaced", slot=slot.index, container=broken.name, reason=reason)
        slot.sandbox = None
        slot.ready = anyio.Event()
        if self._group is None or self._state is not _State.RUNNING:
            slot.ready.set()
            return
        self._spawn(self._discard, broken)
        self._spawn(self._fill, slot)

    def _spawn(self, function: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run pool upkeep in the pool's task group, each task in a scope `aclose()` can cancel."""

        async def upkeep() -> None:
            if self._state is not _State.RUNNING:
                return
            with anyio.CancelScope() as scope:
                self._background.add(scope)
                try:
                    await function(*args)
                finally:
                    self._background.discard(scope)

        assert self._group is not None
        self._group.start_soon(upkeep)

    async def _discard(self, sandbox: _Sandbox) -> None:
        await sandbox.destroy()
        self._sandboxes.discard(sandbox)

    async def _create_sandbox(self) -> _Sandbox:
        assert self._docker is not None
        name = f"moot-{self.pool_id}-{next(self._names)}"
        container = await self._docker.containers.create(self._container_config(), name=name)
        sandbox = _Sandbox(container, name)
        self._sandboxes.add(sandbox)
        try:
            await sandbox.attach()
            await container.start()
            await sandbox.wait_ready(self.start_timeout)
        except BaseException as exc:
            await self._discard(sandbox)
            if isinstance(exc, TimeoutError):
                raise SandboxError(
                    f"Sandbox {name} did not report ready within {self.start_timeout:g} s.",
                    container_id=sandbox.id,
                    reason="start_timeout",
                ) from exc
            raise
        return sandbox

    def _container_config(self) -> dict[str, Any]:
        tmpfs_opts = "rw,nosuid,nodev,size={size}"
        host_config: dict[str, Any] = {
            "NetworkMode": "bridge" if self.network else "none",
            "ReadonlyRootfs": True,
            "Tmpfs": {
                WORK_DIR: tmpfs_opts.format(size=self.work_dir_size)
                + f",uid={JOB_UID},gid={JOB_UID},mode=0700",
                TMP_DIR: tmpfs_opts.format(size=self.tmp_size) + ",mode=1777",
                SCRATCH_DIR: "rw,nosuid,nodev,noexec,size=16m,mode=0755",
            },
            "CapDrop": ["ALL"],
            "CapAdd": ["CAP_SETUID", "CAP_SETGID", "CAP_KILL"],
            "SecurityOpt": ["no-new-privileges:true"],
            "PidsLimit": self.pids_limit,
            "Memory": self.memory,
            "MemorySwap": self.memory,
            "NanoCpus": int(self.cpus * 1e9),
            "Ulimits": [{"Name": "nofile", "Soft": self.nofile, "Hard": self.nofile}],
            "Init": True,
            "AutoRemove": True,
            "Privileged": False,
            "IpcMode": "private",
            "LogConfig": {"Type": "none", "Config": {}},
            "Mounts": [
                {"Type": "bind", "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
                for m in self.mounts
            ],
        }
        if self.mode == "kernel":  # the kernel's sockets and IPython's state, the job uid's own
            host_config["Tmpfs"][KERNEL_DIR] = (
                f"rw,nosuid,nodev,noexec,size=32m,uid={JOB_UID},gid={JOB_UID},mode=0700"
            )
        return {
            "Image": self.image,
            "Cmd": ["/usr/bin/python3", "-I", RUNNER_PATH]
            + {"spawn": ["--prewarm"], "fork": [], "kernel": ["--kernel"]}[self.mode],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "User": "0:0",
            "WorkingDir": WORK_DIR,
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "OpenStdin": True,
            "StdinOnce": True,
            "Tty": False,
            "NetworkDisabled": not self.network,
            "Labels": {
                LABEL_EXECUTOR: "1",
                LABEL_POOL: self.pool_id,
                LABEL_OWNER: _owner_label(os.getpid()),
            },
            "HostConfig": host_config,
        }

    def _watchdog(self, limit: float) -> float:
        """How long the host waits for a run's reply: the job, its files, a grace; in kernel
        mode also a kernel's start and its interrupt."""
        kernel = KERNEL_GRACE_S if self.mode == "kernel" else 0.0
        return limit + COPY_BACK_S + WATCHDOG_GRACE_S + kernel

    # -- leases ----------------------------------------------------------------------------

    def session(
        self, work_dir: WorkDir | None = None
    ) -> AbstractAsyncContextManager[ExecutorSession]:
        """Lease a warm slot for one chat; released (wiped or replaced) when the block ends.

        Raises:
            ExecutorClosedError: the executor is closed, or was never started.
            LeaseTimeoutError: every slot stayed leased for `lease_timeout` seconds.
        """
        return self._session(work_dir)

    @asynccontextmanager
    async def _session(self, work_dir: WorkDir | None) -> AsyncIterator[ExecutorSession]:
        path = await _prepare_work_dir(work_dir) if work_dir is not None else None
        slot = await self._lease()
        session = _DockerSession(self, slot, path)
        try:
            yield session
        finally:
            session.closed = True
            self._release(slot)

    async def _lease(self) -> _Slot:
        if self._state is not _State.RUNNING:
            raise ExecutorClosedError(
                "Cannot open a session on a DockerExecutor that is not running; "
                "use `async with DockerExecutor() as executor:`."
            )
        assert self._free_receive is not None
        try:
            with anyio.fail_after(self.lease_timeout):
                return await self._free_receive.receive()
        except TimeoutError:
            raise LeaseTimeoutError(
                f"All {self.pool_size} sandbox slots stayed leased for {self.lease_timeout:g} s.",
                timeout=self.lease_timeout,
                pool_size=self.pool_size,
            ) from None
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise ExecutorClosedError(
                "The DockerExecutor closed while waiting for a slot."
            ) from None

    def _release(self, slot: _Slot) -> None:
        if self._state is not _State.RUNNING or self._group is None:
            return
        self._spawn(self._recycle, slot)

    async def _recycle(self, slot: _Slot) -> None:
        """Wipe the slot's sandbox (kill the job uid, empty /work and /tmp), or replace it."""
        sandbox = slot.sandbox
        if sandbox is not None and not sandbox.broken:
            try:
                reply = await sandbox.request({"op": "reset"}, timeout=CONTROL_TIMEOUT_S)
                if not reply.get("ok"):
                    self._replace(slot, sandbox, "reset_incomplete")
            except SandboxError as exc:
                self._replace(slot, sandbox, exc.reason)
        elif sandbox is not None:
            self._replace(slot, sandbox, "broken")
        elif slot.ready.is_set():
            slot.ready = anyio.Event()
            await self._fill(slot)
        if self._free_send is None:
            return
        try:
            self._free_send.send_nowait(slot)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass


class _DockerSession(ExecutorSession):
    """One chat's lease of a slot; runs are serialized, and files sync with the host work dir."""

    def __init__(self, executor: DockerExecutor, slot: _Slot, work_dir: Path | None) -> None:
        self._executor = executor
        self._slot = slot
        self.work_dir = work_dir
        self.closed = False
        self._lock = anyio.Lock()
        self._synced: dict[str, tuple[int, int]] = {}
        self._synced_with: _Sandbox | None = None

    @property
    def slot(self) -> int | None:
        return self._slot.index

    async def run(self, block: CodeBlock, *, timeout: float | None = None) -> CodeResult:
        """Run one block in the leased container; see `ExecutorSession.run`.

        Raises:
            UnsafePathError: the block's `# filename:` escapes the work dir or is no valid path.
            InvalidCodeError: the code is over `code_limit` or not encodable; the slot is kept.
            ExecutorClosedError: the executor closed before or during the run.
            SandboxError: the container failed; the slot is being replaced.
        """
        executor = self._executor
        if executor.closed or self.closed:
            raise ExecutorClosedError("Cannot run code: the session or its executor is closed.")
        language = normalize_language(block.language)
        filename = safe_relative_path(block.filename) if block.filename else None
        check_code(block.code, executor.code_limit)
        if language is None:
            return CodeResult(exit_code=1, stdout="", stderr=f"unknown language {block.language}\n")
        limit = executor.timeout if timeout is None else timeout
        async with self._lock:
            scope = anyio.CancelScope()
            executor._jobs.add(scope)
            reply: dict[str, Any] | None = None
            deadline = time.monotonic() + limit + COPY_BACK_S + WATCHDOG_GRACE_S
            try:
                with scope:
                    reply = await self._run_locked(block.code, language, filename, limit)
            except SandboxError as exc:
                if executor.closed:
                    raise ExecutorClosedError("The DockerExecutor closed during the run.") from exc
                raise
            finally:
                executor._jobs.discard(scope)
            if reply is None:
                raise ExecutorClosedError("The DockerExecutor closed during the run.")
            # a kernel's start before the cell moves the deadline for its files by as much
            waited = min(max(float(reply.get("kernel_wait_s", 0.0)), 0.0), KERNEL_GRACE_S)
            return await self._result(reply, deadline + waited)

    async def _run_locked(
        self, code: str, language: str, filename: str | None, limit: float
    ) -> dict[str, Any]:
        executor = self._executor
        sandbox = await self._slot.get()
        if self._synced_with is not sandbox:
            self._synced, self._synced_with = {}, sandbox
        files: list[dict[str, str]] = []
        if self.work_dir is not None:
            files = await anyio.to_thread.run_sync(
                read_outgoing, self.work_dir, self._synced, executor.file_limit
            )
        request_id = sandbox.next_id()
        request = {
            "op": "run",
            "id": request_id,
            "language": language,
            "code": code,
            "filename": filename,
            "timeout": limit,
            "mode": executor.mode,
            "output_limit": executor.output_limit,
            "file_limit": executor.file_limit,
            "copy_back": self.work_dir is not None,
            "files": files,
        }
        try:
            await sandbox.send(request)
            reply = await sandbox.reply(request_id, timeout=executor._watchdog(limit))
        except SandboxError as exc:
            executor._replace(self._slot, sandbox, exc.reason)
            raise
        except anyio.get_cancelled_exc_class():
            if not executor.closed:
                await self._cancel_job(sandbox, request_id)
            raise
        if "error" in reply:
            executor._replace(self._slot, sandbox, "runner_error")
            raise SandboxError(
                f"Sandbox {sandbox.name}: the runner failed the job: {reply['error']}",
                container_id=sandbox.id,
                reason="runner_error",
            )
        return reply

    async def _cancel_job(self, sandbox: _Sandbox, request_id: int) -> None:
        """The caller gave up: kill the job and drain its reply so the slot stays in step."""
        with anyio.CancelScope(shield=True):
            try:
                await sandbox.send({"op": "cancel", "id": request_id})
                await sandbox.reply(request_id, timeout=CONTROL_TIMEOUT_S)
            except SandboxError as exc:
                self._executor._replace(self._slot, sandbox, exc.reason)

    async def _result(self, reply: dict[str, Any], deadline: float) -> CodeResult:
        """The run's result; changed files are written back by `deadline`, the rest reported."""
        not_copied = NotCopied.from_wire(reply.get("not_copied"))
        items = reply.get("files", ())
        files = [str(item["path"]) for item in items]
        if self.work_dir is not None:
            incoming = [
                (str(i["path"]), base64.b64decode(i["data"]))
                for i in items
                if i["data"] is not None
            ]
            files = await anyio.to_thread.run_sync(
                functools.partial(
                    write_incoming,
                    self.work_dir,
                    incoming,
                    self._synced,
                    deadline=deadline,
                    not_copied=not_copied,
                )
            )
        exit_code = int(reply["exit_code"])
        timed_out = bool(reply.get("timed_out"))
        return CodeResult(
            exit_code=TIMEOUT_EXIT_CODE if timed_out else exit_code,
            stdout=str(reply.get("stdout", "")),
            stderr=str(reply.get("stderr", "")) + not_copied.note(),
            timed_out=timed_out,
            oom_killed=bool(reply.get("oom_killed")),
            duration_s=float(reply.get("duration_s", 0.0)),
            files=tuple(files),
            files_not_copied=not_copied.total,
        )


@asynccontextmanager
async def _docker_client(url: str | None) -> AsyncIterator[aiodocker.Docker]:
    docker = await open_docker(url)
    try:
        yield docker
    finally:
        with anyio.CancelScope(shield=True):
            await docker.close()


async def _prepare_work_dir(work_dir: WorkDir) -> Path:
    path = await anyio.Path(work_dir).resolve()
    await path.mkdir(parents=True, exist_ok=True)
    return Path(path)


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell a live owner from a reused pid), or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


def _owner_label(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or '?'}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's container: not ours to judge
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return _process_start(pid) == start


async def reap_leftovers(docker: aiodocker.Docker) -> int:
    """Remove moot sandbox containers whose owning process (on this host) is gone; return how many.

    Raises:
        DockerUnavailableError: never; engine errors while listing are logged and ignored.
    """
    try:
        containers = await docker.containers.list(
            all=True, filters=json.dumps({"label": [LABEL_EXECUTOR]})
        )
    except _DOCKER_FAILURES as exc:
        log.warning("executor.reap_failed", error=str(exc))
        return 0
    dead = [c for c in containers if not _owner_alive(str(c["Labels"].get(LABEL_OWNER, "")))]
    async with anyio.create_task_group() as group:
        for container in dead:
            group.start_soon(_force_remove, container)
    if dead:
        log.info("executor.reaped", count=len(dead))
    return len(dead)


async def _force_remove(container: aiodocker.containers.DockerContainer) -> None:
    try:
        await container.delete(force=True)
    except aiodocker.DockerError as exc:
        if exc.status not in (404, 409):
            log.warning("executor.remove_failed", container=str(container.id), error=str(exc))


async def _remove_labelled(docker: aiodocker.Docker, labels: Mapping[str, str]) -> None:
    """Remove every container carrying these labels (stragglers of an interrupted create)."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    try:
        containers = await docker.containers.list(all=True, filters=json.dumps({"label": wanted}))
    except _DOCKER_FAILURES as exc:
        log.warning("executor.list_failed", error=str(exc))
        return
    async with anyio.create_task_group() as group:
        for container in containers:
            group.start_soon(_force_remove, container)
