"""`LocalExecutor`: run code as a subprocess in the work dir (no sandbox), same contract."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog

from ._base import Executor, ExecutorSession, WorkDir, check_code, safe_relative_path
from ._errors import ExecutorClosedError, UnsafePathError
from ._files import scan
from ._runner import OutputCap
from ._types import BASH, PYTHON, SH, TIMEOUT_EXIT_CODE, CodeBlock, CodeResult, normalize_language

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from anyio.abc import ByteReceiveStream

log = structlog.get_logger("moot.executors.local")

DEFAULT_OUTPUT_LIMIT = 64_000
TMP_NAME = ".tmp"
_DRAIN_GRACE_S = 1.0


class LocalExecutor(Executor):
    """Run code on this machine as a subprocess in the work dir; for trusted code or tests.

    The child gets a scrubbed environment (PATH, HOME and TMPDIR in the work dir, LANG) plus `env`,
    runs in its own process group, and the whole group is killed at the timeout.
    """

    def __init__(
        self,
        *,
        timeout: float = 60,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.output_limit = output_limit
        self.env = dict(env) if env is not None else None
        self._closed = False

    def session(
        self, work_dir: WorkDir | None = None
    ) -> AbstractAsyncContextManager[ExecutorSession]:
        """A session in `work_dir` (created if missing), or in a scratch dir removed afterwards.

        Raises:
            ExecutorClosedError: the executor is closed.
        """
        return self._session(work_dir)

    @asynccontextmanager
    async def _session(self, work_dir: WorkDir | None) -> AsyncIterator[ExecutorSession]:
        if self._closed:
            raise ExecutorClosedError("Cannot open a session on a closed LocalExecutor.")
        with tempfile.TemporaryDirectory(prefix="moot-local-") as scratch:
            root = Path(work_dir) if work_dir is not None else Path(scratch) / "work"
            root.mkdir(parents=True, exist_ok=True)
            yield _LocalSession(self, root.resolve(), Path(scratch))

    async def aclose(self) -> None:
        """Refuse new sessions; a run in progress finishes or is cancelled by its caller."""
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether `aclose()` has run."""
        return self._closed


class _LocalSession(ExecutorSession):
    def __init__(self, executor: LocalExecutor, work_dir: Path, scratch: Path) -> None:
        self._executor = executor
        self.work_dir = work_dir
        self._scratch = scratch
        self._lock = anyio.Lock()
        self._count = 0

    def _environment(self) -> dict[str, str]:
        tmp = self.work_dir / TMP_NAME
        tmp.mkdir(exist_ok=True)
        base = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.work_dir),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.work_dir),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self._executor.env is not None:
            base.update(self._executor.env)
        return base

    async def run(self, block: CodeBlock, *, timeout: float | None = None) -> CodeResult:
        """Run one block as a subprocess; see `ExecutorSession.run`.

        Raises:
            UnsafePathError: the block's `# filename:` escapes the work dir or is no valid path.
            InvalidCodeError: the code is over 4 MiB or not encodable as UTF-8.
            ExecutorClosedError: the executor is closed.
        """
        if self._executor.closed:
            raise ExecutorClosedError("Cannot run code: the LocalExecutor is closed.")
        language = normalize_language(block.language)
        check_code(block.code)
        if block.filename:
            rel = safe_relative_path(block.filename)
            path = self.work_dir / rel
            if not path.parent.resolve().is_relative_to(self.work_dir) or path.is_symlink():
                raise UnsafePathError(
                    f"Refusing {block.filename!r}: a symlink leads out of the work dir.",
                    path=block.filename,
                )
        if language is None:
            return CodeResult(exit_code=1, stdout="", stderr=f"unknown language {block.language}\n")
        async with self._lock:
            return await self._run(block, language, timeout)

    async def _run(self, block: CodeBlock, language: str, timeout: float | None) -> CodeResult:
        limit = self._executor.timeout if timeout is None else timeout
        before = scan(self.work_dir)
        self._count += 1
        suffix = ".py" if language == PYTHON else ".sh"
        if block.filename:
            path = self.work_dir / safe_relative_path(block.filename)
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            path = self._scratch / f"job-{self._count}{suffix}"
        path.write_text(block.code, encoding="utf-8")
        argv = {
            PYTHON: [sys.executable, str(path)],
            SH: ["/bin/sh", str(path)],
            BASH: [shutil.which("bash") or "/bin/sh", str(path)],
        }[language]
        stdout = OutputCap(self._executor.output_limit)
        stderr = OutputCap(self._executor.output_limit)
        started = time.monotonic()
        process = await anyio.open_process(
            argv,
            cwd=self.work_dir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        timed_out = False
        try:
            async with anyio.create_task_group() as group:
                assert process.stdout is not None
                assert process.stderr is not None
                group.start_soon(_drain, process.stdout, stdout)
                group.start_soon(_drain, process.stderr, stderr)
                with anyio.move_on_after(limit) as deadline:
                    await process.wait()
                timed_out = deadline.cancelled_caught
                _kill_group(process.pid)
                with anyio.move_on_after(_DRAIN_GRACE_S):
                    await process.wait()
                group.cancel_scope.deadline = anyio.current_time() + _DRAIN_GRACE_S
        finally:
            _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.aclose()
        duration = time.monotonic() - started
        code = process.returncode if process.returncode is not None else -signal.SIGKILL
        exit_code = 128 - code if code < 0 else code
        if timed_out:
            exit_code = TIMEOUT_EXIT_CODE
            stderr.feed(
                f"\nTimeout: the job ran longer than {limit:g} s and was killed.\n".encode()
            )
        after = scan(self.work_dir)
        changed = tuple(
            sorted(
                name
                for name, meta in after.items()
                if before.get(name) != meta and not name.startswith(TMP_NAME + "/")
            )
        )
        if not block.filename:
            path.unlink(missing_ok=True)
        return CodeResult(
            exit_code=exit_code,
            stdout=stdout.text(),
            stderr=stderr.text(),
            timed_out=timed_out,
            duration_s=duration,
            files=changed,
        )


async def _drain(stream: ByteReceiveStream, cap: OutputCap) -> None:
    async for chunk in stream:
        cap.feed(chunk)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
