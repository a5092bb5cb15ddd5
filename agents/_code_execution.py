"""Glue between an agent's `code_execution_config` and `moot.executors`.

Per chat, three decisions, each with a safe default and an explicit opt-out:

- **When a sandbox slot is held** (`lease`): "run" (default) leases a slot for each code run
  and gives it back when the run ends, so a chat waiting for its model holds none; the chat's
  files live in its workspace on the host and go in and out with each run. "chat" keeps one
  session (one slot) for the chat's lifetime, for state that must live in the sandbox.
- **Where a chat's files live** (`shared_workspace`): the agent's first chat works in
  `work_dir` itself, as an AutoGen user expects, and so does a chat that continues that chat's
  thread (`clear_history=False`); every other chat gets a private workspace of its own (a
  temporary directory, removed when the chat ends), so concurrent and later chats never see each
  other's files. `shared_workspace=True` makes every chat work in `work_dir`.
- **Whose code runs** (`execute_from`): code inside tool or function results never runs. By
  default ("models") only code written by an agent with a model (an llm_config or a model client)
  or by an `AssistantAgent` runs; a list of agent names runs only theirs; "any" runs any
  speaker's, as AutoGen does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

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
from ._resources import borrowed, hold

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AsyncExitStack

    from moot.executors import CodeBlock, ExecutorSession

    from ._participant import Message
    from ._resources import Lease

DEFAULT_WORK_DIR = "coding"
DEFAULT_TIMEOUT = 60.0
_KEYS = frozenset(
    {
        "work_dir",
        "use_docker",
        "timeout",
        "last_n_messages",
        "executor",
        "lease",
        "shared_workspace",
        "execute_from",
        *{"commandline-local", "docker"},
    }
)
_TOOL_ROLES = ("tool", "function")
FAILED = "exitcode: 1 (execution failed)\nCode output: "

ExecuteFrom = Literal["models", "any"] | tuple[str, ...]
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
    lease: Literal["run", "chat"] = "run"
    shared_workspace: bool = False
    execute_from: ExecuteFrom = "models"

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | Executor | Literal[False] | None
    ) -> CodeExecution | None:
        """Read `code_execution_config`: False/None (no code execution), an `Executor`, or a dict
        with `work_dir`, `use_docker` (default True), `timeout`, `last_n_messages`, `executor`,
        `lease` ("run" or "chat"), `shared_workspace` (bool) and `execute_from` ("models",
        "any" or a list of agent names).

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
        lease = config.get("lease", "run")
        if lease not in ("run", "chat"):
            raise AgentConfigError(f"lease must be 'run' or 'chat'; got {lease!r}")
        work_dir = options.get("work_dir", DEFAULT_WORK_DIR)
        if use_docker is None:
            use_docker = executor is None and decide_use_docker(config.get("use_docker"))
        return cls(
            executor=executor,
            use_docker=use_docker,
            work_dir=None if work_dir is None else str(work_dir),
            timeout=float(timeout),
            last_n_messages=last_n,
            lease=lease,
            shared_workspace=bool(config.get("shared_workspace", False)),
            execute_from=_execute_from(config.get("execute_from", "models")),
        )

    def open_executor(self) -> AbstractAsyncContextManager[Executor]:
        """The user's executor as is, or a `DockerExecutor` / `LocalExecutor` of our own, for
        the agent's executor `Lease` to enter and exit."""
        if self.executor is not None:
            return borrowed(self.executor)
        if self.use_docker:
            return _started(DockerExecutor(timeout=self.timeout))
        return _started(LocalExecutor(timeout=self.timeout))


def _execute_from(value: Any) -> ExecuteFrom:
    if value in ("models", "any"):
        return value  # type: ignore[no-any-return]
    if isinstance(value, Sequence) and not isinstance(value, str):
        if all(isinstance(name, str) for name in value):
            return tuple(value)
    raise AgentConfigError(
        f"execute_from must be 'models', 'any' or a list of agent names; got {value!r}"
    )


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


@asynccontextmanager
async def _started(executor: Executor) -> AsyncIterator[Executor]:
    try:
        async with executor:
            yield executor
    except DockerUnavailableError as exc:
        raise docker_unavailable(exc) from exc


def docker_unavailable(exc: DockerUnavailableError) -> DockerUnavailableError:
    """The executor's error, with the agent-level way out spelled out."""
    if "code_execution_config" in str(exc):
        return exc
    return DockerUnavailableError(
        f"code_execution_config asks for Docker (use_docker=True is the default). {exc} To run"
        " code on this machine without a sandbox, pass"
        " code_execution_config={'use_docker': False, 'work_dir': ...}.",
        url=exc.url,
    )


class ChatCode:
    """One chat's code execution: its workspace on the host and how it leases a sandbox.

    What it holds goes on the chat's exit stack: the agent's executor lease, a private workspace
    (removed when the chat ends) and, with `lease="chat"`, the chat's one session.
    """

    def __init__(self, settings: CodeExecution, executor: Lease[Executor], *, shared: bool):
        self.settings = settings
        self._lease = executor
        self._shared = shared and settings.work_dir is not None  # works in work_dir itself
        self._executor: Executor | None = None
        self._workspace: Path | None = None
        self._session: ExecutorSession | None = None

    @property
    def workspace(self) -> Path | None:
        """The host directory this chat's code sees (None until its first run)."""
        return self._workspace

    async def run(self, text: str, stack: AsyncExitStack) -> str:
        """Run the code blocks of `text` and answer in AutoGen's format. A refused path, a
        sandbox failure or no free slot in time is a failed run the model sees.

        Raises:
            DockerUnavailableError: the executor needs Docker and no engine answers.
        """
        if self._executor is None:
            self._executor = await hold(stack, self._lease)
        if self._workspace is None:
            self._workspace = await self._open_workspace(stack)
        blocks = extract_code_blocks(text)
        try:
            if self.settings.lease == "chat":
                if self._session is None:
                    self._session = await stack.enter_async_context(
                        self._executor.session(self._workspace)
                    )
                return await self._run(self._session, blocks)
            async with self._executor.session(self._workspace) as session:
                return await self._run(session, blocks)
        except DockerUnavailableError as exc:
            raise docker_unavailable(exc) from exc
        except LeaseTimeoutError as exc:
            return (
                f"{FAILED}the code did not run: no sandbox became free in time ({exc})."
                " Try again later."
            )
        except (UnsafePathError, InvalidCodeError, SandboxError) as exc:
            return f"{FAILED}{exc}"

    async def _run(self, session: ExecutorSession, blocks: Sequence[CodeBlock]) -> str:
        results = await session.run_blocks(blocks, timeout=self.settings.timeout)
        return format_results(results)

    async def _open_workspace(self, stack: AsyncExitStack) -> Path:
        if self._shared:
            assert self.settings.work_dir is not None
            return Path(self.settings.work_dir)
        path = Path(await anyio.to_thread.run_sync(tempfile.mkdtemp, "", "moot-chat-"))
        stack.push_async_callback(anyio.to_thread.run_sync, _remove_tree, path)
        return path

    def closed(self) -> None:
        """The chat's stack is being unwound: forget what was held on it."""
        self._executor = self._workspace = self._session = None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Speaker(Protocol):
    """What `may_run` asks of the agent a message comes from (a `ConversableAgent`)."""

    @property
    def name(self) -> str: ...

    @property
    def writes_code(self) -> bool: ...

    def agent_by_name(self, name: str) -> Speaker | None: ...


def may_run(message: Message, execute_from: ExecuteFrom, peer: Speaker | None) -> bool:
    """Whether code quoted in `message` may run: never from a tool or function result; else as
    `execute_from` says. A message's speaker is its "name", looked up through the chat's peer (a
    group chat manager knows its participants); an unnamed message is the peer's, or, outside
    any chat, the caller's own."""
    if message.get("role") in _TOOL_ROLES or message.get("tool_responses"):
        return False
    if execute_from == "any":
        return True
    name = message.get("name")
    if isinstance(execute_from, tuple):
        return isinstance(name, str) and name in execute_from
    if peer is None:
        return name is None
    speaker = peer if name is None else peer.agent_by_name(str(name))
    return speaker is not None and speaker.writes_code


def code_to_run(
    messages: Sequence[Message],
    last_n: int | Literal["auto"],
    allowed: Callable[[Message], bool],
) -> str | None:
    """The newest message text with code blocks among the last messages that `allowed` lets
    run, or None.

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
        if (
            isinstance(content, str)
            and "```" in content
            and allowed(message)
            and extract_code_blocks(content)
        ):
            return content
    return None
