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
import re
import shutil
import sys
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
    build_image,
    check_image,
    extract_code_blocks,
    format_results,
    read_work_file,
    resolve_packages,
    restore_work_files,
    scan_work_dir,
)

from ._errors import AgentConfigError
from ._resources import borrowed, hold

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AsyncExitStack

    from moot.executors import CodeBlock, CodeResult, ExecutorSession

    from ._participant import Message
    from ._resources import Lease

DEFAULT_WORK_DIR = "coding"
DEFAULT_TIMEOUT = 60.0
_KEYS = frozenset(
    {
        "work_dir",
        "use_docker",
        "packages",
        "timeout",
        "last_n_messages",
        "executor",
        "lease",
        "shared_workspace",
        "execute_from",
        "kernel",
        *{"commandline-local", "docker"},
    }
)
_TOOL_ROLES = ("tool", "function")
FAILED = "exitcode: 1 (execution failed)\nCode output: "

ExecuteFrom = Literal["models", "any"] | tuple[str, ...]
_NAMED_EXECUTORS = {"commandline-local": False, "docker": True}  # name -> runs in Docker
_EXECUTOR_OPTIONS = frozenset({"work_dir", "timeout"})
MAX_LISTED_FILES = 20
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
    sandbox: Sandbox | None = None  # the image of the agent's own Docker sandbox
    kernel: bool = False  # the sandbox keeps one IPython kernel per chat (lease "chat")

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | Executor | Literal[False] | None
    ) -> CodeExecution | None:
        """Read `code_execution_config`: False/None (no code execution), an `Executor`, or a dict
        with `work_dir`, `use_docker` (default True, or a prebuilt image's name), `packages` (a
        profile such as "data" or Debian package names), `timeout`, `last_n_messages`,
        `executor`, `lease` ("run" or "chat"), `shared_workspace` (bool), `execute_from`
        ("models", "any" or a list of agent names) and `kernel` (True: the Docker sandbox keeps
        one Python kernel per chat, so variables and imports carry across turns).

        Raises:
            AgentConfigError: an unknown key or a value of the wrong kind.
            PackageNameError: a package is neither a profile nor a valid Debian package name.
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
        if executor is not None and (
            "packages" in config or isinstance(config.get("use_docker"), str)
        ):
            raise AgentConfigError(
                "code_execution_config['executor'] runs the code, so 'packages' and an image"
                " name in 'use_docker' would be ignored; give one or the other"
            )
        if use_docker is None:
            use_docker = executor is None and decide_use_docker(config.get("use_docker"))
        kernel = _kernel(config, executor, use_docker)
        sandbox = Sandbox.from_config(use_docker, config.get("use_docker"), config.get("packages"))
        if kernel and sandbox is not None and sandbox.image is None:
            sandbox = Sandbox(packages=resolve_packages((*sandbox.packages, "kernel")))
        return cls(
            executor=executor,
            use_docker=use_docker,
            work_dir=None if work_dir is None else str(work_dir),
            timeout=float(timeout),
            last_n_messages=last_n,
            lease="chat" if kernel else lease,
            shared_workspace=bool(config.get("shared_workspace", False)),
            execute_from=_execute_from(config.get("execute_from", "models")),
            sandbox=sandbox,
            kernel=kernel,
        )

    def open_executor(self) -> AbstractAsyncContextManager[Executor]:
        """The user's executor as is, or a `DockerExecutor` / `LocalExecutor` of our own, for
        the agent's executor `Lease` to enter and exit."""
        if self.executor is not None:
            return borrowed(self.executor)
        if self.use_docker:
            return _sandboxed(self.timeout, self.sandbox, kernel=self.kernel)
        return _started(LocalExecutor(timeout=self.timeout))


def _kernel(config: Mapping[str, Any], executor: Executor | None, use_docker: bool) -> bool:
    """`kernel` as given: a bool, and True only for the agent's own Docker sandbox with a
    chat-long lease (the kernel's state lives as long as the chat's one session).

    Raises:
        AgentConfigError: not a bool, or a setting that cannot keep a kernel.
    """
    kernel = config.get("kernel", False)
    if not isinstance(kernel, bool):
        raise AgentConfigError(f"kernel must be True or False; got {kernel!r}")
    if not kernel:
        return False
    if executor is not None:
        raise AgentConfigError(
            "kernel=True asks the agent's own Docker sandbox for a kernel; a given executor runs"
            " as it was made: pass DockerExecutor(mode='kernel') with lease='chat' instead"
        )
    if not use_docker:
        raise AgentConfigError(
            "kernel=True keeps a Python kernel inside the Docker sandbox; it needs"
            " use_docker=True (this machine's Python is never kept running between turns)"
        )
    if config.get("lease", "chat") != "chat":
        raise AgentConfigError(
            "kernel=True keeps the chat's state in one sandbox session, so lease must be 'chat'"
            " (its default with kernel=True)"
        )
    return True


# -- sandbox image: config parsing and selection (use_docker=True | "<image>", packages) --------


@dataclass(frozen=True, slots=True, kw_only=True)
class Sandbox:
    """Which Docker image an agent's own sandbox runs: ours with extra Debian packages, or a
    user's prebuilt one (AutoGen's `use_docker="<image>"`)."""

    packages: tuple[str, ...] = ()  # Debian packages on top of the base image (profiles expanded)
    image: str | None = None  # a prebuilt image; its packages are whatever its builder put in

    @classmethod
    def from_config(cls, docker: bool, use_docker: object, packages: object) -> Sandbox | None:
        """The sandbox that `use_docker` and `packages` ask for; None when code does not run in
        our Docker sandbox (`docker` is the decided `use_docker`).

        Raises:
            AgentConfigError: `use_docker` is neither a bool nor an image name, or `packages`
                is given without our sandbox image.
            PackageNameError: a package is neither a profile nor a valid Debian package name.
        """
        if use_docker is not None and not isinstance(use_docker, bool | str):
            raise AgentConfigError(
                f"use_docker must be True, False or an image name; got {use_docker!r}"
            )
        if isinstance(use_docker, str) and use_docker:
            if not use_docker.strip():
                raise AgentConfigError("use_docker must be True, False or an image name; got ' '")
            if packages is not None:
                raise AgentConfigError(
                    f"packages cannot be added to the prebuilt image {use_docker!r}; use"
                    " use_docker=True with packages, or build the image with them"
                )
            return cls(image=use_docker.strip())
        if not docker:
            if packages is not None:
                raise AgentConfigError(
                    "packages are installed in the Docker sandbox; they need use_docker=True"
                    " (code run with use_docker=False uses this machine's Python)"
                )
            return None
        if packages is not None and not isinstance(packages, str | list | tuple):
            raise AgentConfigError(
                "packages must be a profile name such as 'data' or a list of Debian package"
                f" names; got {type(packages).__name__}"
            )
        return cls(packages=resolve_packages(packages or ()))

    async def image_tag(self) -> str | None:
        """The image to run: a checked prebuilt one, ours built on first use, or None (the
        executor's default). A first build prints progress lines to stderr.

        Raises:
            DockerUnavailableError: no Docker engine answers.
            ImageError: the prebuilt image is missing or not a moot sandbox, or the build failed.
        """
        if self.image is not None:
            await check_image(self.image)
            return self.image
        if not self.packages:
            return None
        return await build_image(self.packages, progress=_BuildProgress())

    def missing_module_note(self, results: Sequence[CodeResult]) -> str | None:
        """Advice for a model (and the user reading along) when code needs a module or pip."""
        failed = "\n".join(result.stderr + result.stdout for result in results if result.exit_code)
        missing = _MISSING_MODULE.search(failed)
        if missing is None and _NO_PIP.search(failed) is None:
            return None
        if self.image is not None:
            has = f"It runs the prebuilt image {self.image} with whatever its builder put in."
        elif self.packages:
            has = f"Besides Python's standard library it has: {', '.join(self.packages)}."
        else:
            has = "It has Python's standard library only."
        guess = f"python3-{missing.group(1).split('.')[0].lower()}" if missing else "python3-NAME"
        return (
            "Note: this sandbox has no network, so pip install cannot work there; do not retry"
            f" it. {has} Solve the task with what is there. A user adds a package with"
            f" code_execution_config={{'use_docker': True, 'packages': ['{guess}']}} (Debian"
            " package names; 'data' = numpy, pandas, matplotlib, scipy)."
        )


_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
_NO_PIP = re.compile(r"\bpip3?: (?:command )?not found|No module named pip\b")


class _BuildProgress:
    """Progress lines on stderr once a build (or a wait for one) starts; a cached image is quiet."""

    def __init__(self) -> None:
        self._started = False

    def __call__(self, line: str) -> None:
        self._started = self._started or line.startswith(("building", "waiting"))
        if self._started:
            sys.stderr.write(f"[moot image] {line}\n")
            sys.stderr.flush()


@asynccontextmanager
async def _sandboxed(
    timeout: float, sandbox: Sandbox | None, *, kernel: bool = False
) -> AsyncIterator[Executor]:
    """A started `DockerExecutor` on the image `sandbox` asks for (built on first use), in
    kernel mode when the config says `kernel=True`."""
    try:
        image = await sandbox.image_tag() if sandbox is not None else None
    except DockerUnavailableError as exc:
        raise docker_unavailable(exc) from exc
    mode: Literal["spawn", "kernel"] = "kernel" if kernel else "spawn"
    async with _started(DockerExecutor(timeout=timeout, image=image, mode=mode)) as executor:
        yield executor


def files_note(
    results: Sequence[CodeResult], blocks: Sequence[CodeBlock], workspace: Path | None
) -> str | None:
    """`Files written (in DIR): chart.png, 41 KB; ...` so a model can tell the user where its
    results are. A block's own `# filename:` file is not a result."""
    written: dict[str, None] = {}
    for result in results:
        written.update(dict.fromkeys(result.files))
    for block in blocks:
        if block.filename:
            written.pop(block.filename, None)
    if not written:
        return None
    names = list(written)
    shown = [_describe(name, workspace) for name in names[:MAX_LISTED_FILES]]
    more = len(names) - len(shown)
    tail = f"; and {more} more" if more > 0 else ""
    where = f" (in {workspace})" if workspace is not None else ""
    return f"Files written{where}: {'; '.join(shown)}{tail}"


def _describe(name: str, workspace: Path | None) -> str:
    if workspace is None:
        return name
    try:
        size = (workspace / name).stat().st_size
    except OSError:
        return f"{name}, not copied back (over the file size limit)"
    if size < 1024:
        return f"{name}, {size} byte{'' if size == 1 else 's'}"
    if size < 1024 * 1024:
        return f"{name}, {round(size / 1024)} KB"
    return f"{name}, {size / (1024 * 1024):.1f} MB"


# -- end of sandbox image -----------------------------------------------------------------------


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
        self._seen: dict[str, tuple[int, int]] = {}  # the work files as last journaled

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
            self._seen = await anyio.to_thread.run_sync(scan_work_dir, self._workspace)
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
        sandbox = self.settings.sandbox
        notes = [
            files_note(results, blocks, self._workspace),
            sandbox.missing_module_note(results) if sandbox is not None else None,
        ]
        return "\n".join([format_results(results), *(note for note in notes if note)])

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
        self._seen = {}

    async def take_changes(self) -> dict[str, bytes | None]:
        """The work files written (their bytes) or deleted (None) since the last call, or
        since the workspace was opened or restored; for the chat's journal."""
        if self._workspace is None:
            return {}
        changes, self._seen = await anyio.to_thread.run_sync(_changes, self._workspace, self._seen)
        return changes

    async def restore(self, files: Mapping[str, bytes | None], stack: AsyncExitStack) -> Path:
        """Put journaled work files back (None: delete) before a resumed chat's next run; the
        sandbox gets them from this workspace with that run."""
        if self._workspace is None:
            self._workspace = await self._open_workspace(stack)
        workspace = self._workspace
        await anyio.to_thread.run_sync(restore_work_files, workspace, files)
        self._seen = await anyio.to_thread.run_sync(scan_work_dir, workspace)
        return workspace


def _changes(
    root: Path, seen: dict[str, tuple[int, int]]
) -> tuple[dict[str, bytes | None], dict[str, tuple[int, int]]]:
    """What changed under `root` since `seen` (size and mtime of each file), and the new view."""
    now = scan_work_dir(root)
    changes: dict[str, bytes | None] = dict.fromkeys(set(seen) - set(now))
    for rel, meta in sorted(now.items()):
        if seen.get(rel) == meta:
            continue
        try:
            changes[rel] = read_work_file(root, rel)
        except OSError:  # gone or replaced meanwhile: the next call sees what is there then
            now.pop(rel)
    return changes, now


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
