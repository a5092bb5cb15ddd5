"""The executor seam: an `Executor` hands out `ExecutorSession`s (one sandbox slot each) to run
code blocks; the agents open one per code run, so a chat holds a slot only while its code runs."""

from __future__ import annotations

import os
import posixpath
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

from moot import observability

from ._errors import InvalidCodeError, UnsafePathError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from ._types import CodeBlock, CodeResult

WorkDir = str | os.PathLike[str]
MAX_NAME_BYTES = 255  # NAME_MAX on Linux
MAX_PATH_BYTES = 1024  # a work-dir-relative path, well inside PATH_MAX on any host
DEFAULT_CODE_LIMIT = 4 << 20  # bytes of code in one block


def check_code(code: str, limit: int = DEFAULT_CODE_LIMIT) -> bytes:
    """A block's code as UTF-8, checked before anything runs.

    Raises:
        InvalidCodeError: the code is not encodable as UTF-8 (a lone surrogate) or over `limit`.
    """
    try:
        encoded = code.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidCodeError(
            f"Refusing the code: it is not encodable as UTF-8 ({exc.reason} at {exc.start}).",
            reason="not_encodable",
        ) from None
    if len(encoded) > limit:
        raise InvalidCodeError(
            f"Refusing {len(encoded)} bytes of code: one block may hold at most {limit} bytes.",
            reason="too_large",
            size=len(encoded),
        )
    return encoded


class ExecutorSession(ABC):
    """One sandbox slot and one host work dir: files written in one run are there in the next,
    in this session and in later sessions on the same work dir.

    Calls on one session are serialized; run many chats concurrently with one session each.
    """

    @property
    def slot(self) -> int | None:
        """The pool slot this session's code runs in (pooled executors), for traces."""
        return None

    @abstractmethod
    async def run(self, block: CodeBlock, *, timeout: float | None = None) -> CodeResult:
        """Run one block and return its result; a failing program is a result, not an error.

        Raises:
            UnsafePathError: the block's `# filename:` escapes the work dir or is no valid path.
            InvalidCodeError: the code is too large or not encodable; nothing ran.
            ExecutorClosedError: the executor was closed before or during the run.
            SandboxError: the sandbox itself failed (Docker only); the slot is replaced.
        """

    async def run_blocks(
        self, blocks: Sequence[CodeBlock], *, timeout: float | None = None
    ) -> list[CodeResult]:
        """Run blocks in order and stop after the first one that exits non-zero.

        Raises:
            UnsafePathError: a block's `# filename:` escapes the work dir or is no valid path.
            InvalidCodeError: a block's code is too large or not encodable.
            ExecutorClosedError: the executor was closed before or during a run.
            SandboxError: the sandbox itself failed (Docker only).
        """
        results: list[CodeResult] = []
        for block in blocks:
            with observability.code_run(block.language, type(self).__name__) as span:
                result = await self.run(block, timeout=timeout)
                span.result(
                    exit_code=result.exit_code,
                    timed_out=result.timed_out,
                    oom_killed=result.oom_killed,
                    duration_s=result.duration_s,
                    slot=self.slot,
                )
            results.append(result)
            if result.exit_code != 0:
                break
        return results


class Executor(ABC):
    """Runs code for chats; use it as `async with executor:` and open sessions from it."""

    @abstractmethod
    def session(
        self, work_dir: WorkDir | None = None
    ) -> AbstractAsyncContextManager[ExecutorSession]:
        """Open a session whose code sees (and writes back to) `work_dir`; None means a scratch dir.

        Raises:
            ExecutorClosedError: the executor is closed.
            LeaseTimeoutError: no sandbox slot became free in time (pooled executors).
        """

    async def start(self) -> None:  # noqa: B027 - optional hook, most executors need no start-up
        """Prepare the executor (warm a pool, check the engine); called by `async with`."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release everything the executor holds; running jobs end with `ExecutorClosedError`."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def safe_relative_path(path: str) -> str:
    """Normalize a work-dir-relative POSIX path, refusing absolute paths and `..` escapes.

    Whitespace is kept (' a.txt' and 'a.txt' are two files); a backslash counts as a separator.

    Raises:
        UnsafePathError: the path is empty, absolute, leaves the work dir, is not encodable as
            UTF-8, or has a name over 255 bytes or more than 1,024 bytes in all.
    """
    cleaned = path.replace("\\", "/")
    if not cleaned.strip() or "\x00" in cleaned:
        raise UnsafePathError(f"Refusing the empty or invalid file path {path!r}.", path=path)
    try:
        encoded = cleaned.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError(
            f"Refusing the file path {path!r}: it is not encodable as UTF-8.", path=path
        ) from None
    longest = max(len(part) for part in encoded.split(b"/"))
    if len(encoded) > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        raise UnsafePathError(
            f"Refusing a file path of {len(encoded)} bytes with a name of {longest} bytes: "
            f"the limits are {MAX_PATH_BYTES} and {MAX_NAME_BYTES}.",
            path=path,
        )
    if cleaned.startswith("/") or posixpath.isabs(cleaned):
        raise UnsafePathError(
            f"Refusing the absolute file path {path!r}: files must stay inside the work dir.",
            path=path,
        )
    normal = posixpath.normpath(cleaned)
    if normal in {".", ".."} or normal.startswith("../"):
        raise UnsafePathError(
            f"Refusing the file path {path!r}: it leaves the work dir.",
            path=path,
        )
    return normal
