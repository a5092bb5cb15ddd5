"""Glue between an agent's `code_execution_config` and `moot.executors`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from moot.executors import (
    DockerExecutor,
    DockerUnavailableError,
    Executor,
    InvalidCodeError,
    LeaseTimeoutError,
    LocalExecutor,
    SandboxError,
    UnsafePathError,
    extract_code_blocks,
    format_results,
)

from ._errors import AgentConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AsyncExitStack

    from moot.executors import ExecutorSession

    from ._participant import Message

DEFAULT_WORK_DIR = "coding"
DEFAULT_TIMEOUT = 60.0
_KEYS = frozenset(
    {
        "work_dir",
        "use_docker",
        "timeout",
        "last_n_messages",
        "executor",
        *{"commandline-local", "docker"},
    }
)
_NAMED_EXECUTORS = {"commandline-local": False, "docker": True}  # name -> runs in Docker
_EXECUTOR_OPTIONS = frozenset({"work_dir", "timeout"})
_TRUTHY = frozenset({"1", "true", "yes", "t"})
_FALSY = frozenset({"0", "false", "no", "f", "none"})


def decide_use_docker(use_docker: Any) -> bool:
    """`use_docker` as given, or (None) as the `AUTOGEN_USE_DOCKER` environment variable says,
    read as AutoGen reads it; Docker when neither says.

    Raises:
        AgentConfigError: the variable holds something other than a yes/no word.
    """
    if use_docker is not None:
        return bool(use_docker)
    raw = os.environ.get("AUTOGEN_USE_DOCKER", "True")
    word = raw.strip().lower()
    if word in _TRUTHY:
        return True
    if word in _FALSY:
        return False
    raise AgentConfigError(
        f"AUTOGEN_USE_DOCKER={raw!r} is not a yes/no value; use one of {sorted(_TRUTHY | _FALSY)}"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeExecution:
    """An agent's code execution settings, read from AutoGen's `code_execution_config`."""

    executor: Executor | None  # given by the user, who owns it; None: the agent makes its own
    use_docker: bool
    work_dir: str | None
    timeout: float
    last_n_messages: int | Literal["auto"]

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | Executor | Literal[False] | None
    ) -> CodeExecution | None:
        """Read `code_execution_config`: False/None (no code execution), an `Executor`, or a dict
        with `work_dir`, `use_docker` (default True), `timeout`, `last_n_messages`, `executor`.

        Raises:
            AgentConfigError: an unknown key or a value of the wrong kind.
        """
        if config is False or config is None:
            return None
        if isinstance(config, Executor):
            return cls(
                executor=config,
                use_docker=False,
                work_dir=DEFAULT_WORK_DIR,
                timeout=DEFAULT_TIMEOUT,
                last_n_messages="auto",
            )
        if not isinstance(config, Mapping):
            raise AgentConfigError(
                "code_execution_config must be False, a dict or an Executor;"
                f" got {type(config).__name__}"
            )
        unknown = set(config) - _KEYS
        if unknown:
            raise AgentConfigError(
                f"code_execution_config has unknown key(s) {sorted(unknown)};"
                f" known keys are {sorted(_KEYS)}"
            )
        executor = config.get("executor")
        use_docker: bool | None = None
        options: Mapping[str, Any] = config
        if isinstance(executor, str):
            if executor not in _NAMED_EXECUTORS:
                raise AgentConfigError(
                    f"unknown code executor {executor!r}; name one of"
                    f" {sorted(_NAMED_EXECUTORS)} or pass an Executor"
                )
            use_docker = _NAMED_EXECUTORS[executor]
            options = {**config, **_executor_options(config, executor)}
            executor = None
        elif executor is not None and not isinstance(executor, Executor):
            raise AgentConfigError(
                "code_execution_config['executor'] must be an Executor, 'commandline-local' or"
                f" 'docker'; got {type(executor).__name__}"
            )
        last_n = config.get("last_n_messages", "auto")
        if last_n != "auto" and not (isinstance(last_n, int) and last_n >= 1):
            raise AgentConfigError("last_n_messages must be 'auto' or a positive integer")
        timeout = options.get("timeout", DEFAULT_TIMEOUT)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise AgentConfigError(f"timeout must be a positive number of seconds; got {timeout!r}")
        work_dir = options.get("work_dir", DEFAULT_WORK_DIR)
        if use_docker is None:
            use_docker = executor is None and decide_use_docker(config.get("use_docker"))
        return cls(
            executor=executor,
            use_docker=use_docker,
            work_dir=None if work_dir is None else str(work_dir),
            timeout=float(timeout),
            last_n_messages=last_n,
        )

    async def start(self) -> RunningExecutor:
        """The user's executor as is, or a started `DockerExecutor` / `LocalExecutor` of our own.

        Raises:
            DockerUnavailableError: `use_docker` is on and no Docker engine answers.
        """
        if self.executor is not None:
            return RunningExecutor(self.executor, owned=False)
        made: Executor = (
            DockerExecutor(timeout=self.timeout)
            if self.use_docker
            else LocalExecutor(timeout=self.timeout)
        )
        running = RunningExecutor(made, owned=True)
        try:
            await running.start()
        except DockerUnavailableError as exc:
            raise docker_unavailable(exc) from exc
        return running


def _executor_options(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The options AutoGen puts under the executor's own name, e.g. `{"commandline-local":
    {"work_dir": ...}}`; moot reads `work_dir` and `timeout`."""
    options = config.get(name) or {}
    if not isinstance(options, Mapping):
        raise AgentConfigError(f"code_execution_config[{name!r}] must be a dict of options")
    unknown = set(options) - _EXECUTOR_OPTIONS
    if unknown:
        raise AgentConfigError(
            f"code_execution_config[{name!r}] has unknown option(s) {sorted(unknown)};"
            f" moot reads {sorted(_EXECUTOR_OPTIONS)}"
        )
    return options


class RunningExecutor:
    """An executor in use by an agent's chats. One the agent made itself is entered and exited
    (`async with`) in a task of its own, because an executor may hold task-bound scopes (anyio
    task groups) while chats that open and release it run in different tasks."""

    def __init__(self, executor: Executor, *, owned: bool) -> None:
        self.executor = executor
        self.owned = owned
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Enter the executor in its own task; returns once it is ready, or raises its error."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._hold(ready))
        try:
            await asyncio.shield(ready)
        except BaseException:
            self._done.set()
            await asyncio.gather(self._task, return_exceptions=True)
            raise

    async def _hold(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self.executor:
                ready.set_result(None)
                await self._done.wait()
        except BaseException as exc:
            if ready.done():
                raise
            ready.set_exception(exc)

    async def aclose(self) -> None:
        """Exit an executor the agent made (in the task that entered it); keep a user's one."""
        if self._task is None:
            return
        task, self._task = self._task, None
        self._done.set()
        await task


def docker_unavailable(exc: DockerUnavailableError) -> DockerUnavailableError:
    """The executor's error, with the agent-level way out spelled out."""
    return DockerUnavailableError(
        f"code_execution_config asks for Docker (use_docker=True is the default). {exc} To run"
        " code on this machine without a sandbox, pass"
        " code_execution_config={'use_docker': False, 'work_dir': ...}.",
        url=exc.url,
    )


async def open_executor_session(
    executor: Executor, work_dir: str | None, stack: AsyncExitStack
) -> ExecutorSession:
    """Open a session on `executor` whose closing is pushed on `stack`.

    Raises:
        DockerUnavailableError: the executor needs Docker and no engine answers.
    """
    try:
        return await stack.enter_async_context(executor.session(work_dir))
    except DockerUnavailableError as exc:
        raise docker_unavailable(exc) from exc


def code_to_run(messages: Sequence[Message], last_n: int | Literal["auto"]) -> str | None:
    """The newest message text with code blocks among the last messages, or None.

    "auto" looks back through the messages received since this agent last spoke.
    """
    if last_n == "auto":
        window: list[Message] = []
        for message in reversed(messages):
            if message.get("role") == "assistant":
                break
            window.append(message)
    else:
        window = list(reversed(messages[-last_n:]))
    for message in window:
        content = message.get("content")
        if isinstance(content, str) and "```" in content and extract_code_blocks(content):
            return content
    return None


async def run_code(session: ExecutorSession, text: str, *, timeout: float) -> str:
    """Run the code blocks of `text` and answer in AutoGen's format; a refused path, a busy pool
    or a failed sandbox is reported to the model as a failed run."""
    blocks = extract_code_blocks(text)
    try:
        results = await session.run_blocks(blocks, timeout=timeout)
    except DockerUnavailableError as exc:
        raise docker_unavailable(exc) from exc
    except (UnsafePathError, InvalidCodeError, SandboxError, LeaseTimeoutError) as exc:
        return f"exitcode: 1 (execution failed)\nCode output: {exc}"
    return format_results(results)
