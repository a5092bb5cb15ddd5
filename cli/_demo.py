"""`moot demo`: agents write, run, fix and finish real code, on the embedded model or a server.

Two tasks: (a) the classic two-agent chat (an assistant writes code, a user proxy runs it, the
assistant fixes it from the traceback and says TERMINATE), and (b) a small round-robin group chat
(coder, executor, reviewer). Each turn is printed as it happens. The demo checks the results itself
(the file's contents, the program's output) and says plainly when the model did not solve a task.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from rich.markup import escape
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table

from moot.executors import Executor, ExecutorSession, extract_code_blocks
from moot.models import ClientWrapper, ModelClient, ModelRequest, ModelResponse

from ._errors import CliError, ExitCode, MissingError, UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from moot.executors import CodeBlock, CodeResult

    from ._output import Output

FIB = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]
PRIMES = "2 3 5 7 11 13 17 19 23 29"

ASSISTANT_PROMPT = (
    "You are a Python coding assistant. To solve a task, reply with one complete Python script"
    " in a single ```python code block, and no explanations. The user runs it and shows you the"
    " exit code and output. If it failed, reply with the fixed complete script. When the output"
    " shows the task is done, reply with only the word TERMINATE."
)
TASK_A = (
    "Write a Python script that computes the first 10 Fibonacci numbers (0, 1, 1, 2, 3, ...),"
    " writes them to a file named fib.txt with one number per line, and prints them."
)
CODER_PROMPT = (
    "You are the coder. Reply with one complete Python script in a single ```python code block"
    " and no explanations. If the executor reports an error, reply with the fixed script."
)
REVIEWER_PROMPT = (
    "You are the reviewer. Read the executor's last message. If it says exitcode: 0 and the"
    " output is what the task asked for, reply exactly: Looks good. TERMINATE"
    " Otherwise reply with one sentence that says what the coder must fix."
)
TASK_B = (
    "Write a Python function is_prime(n) and use it to print the prime numbers below 30 on one"
    " line, separated by single spaces."
)


def add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="watch agents write, run and fix code (embedded model or your server)",
        description="Run two small agent tasks and print every turn: (a) an assistant and a user"
        " proxy write fib.txt; (b) a coder, an executor and a reviewer print primes. Uses the"
        " embedded offline model, or the server in MOOT_BASE_URL / OPENAI_API_KEY (model from"
        " MOOT_MODEL). Code runs in the Docker sandbox when an engine is there, else locally.",
    )
    demo.add_argument(
        "--executor",
        choices=("auto", "local", "docker"),
        default="auto",
        help="where code runs (auto: Docker when an engine answers, else this machine)",
    )
    demo.add_argument(
        "--work-dir",
        type=Path,
        default=Path("moot-demo"),
        help="where the agents' files go (default ./moot-demo; emptied first)",
    )
    demo.add_argument(
        "--task", choices=("both", "two-agent", "group"), default="both", help="what to run"
    )
    demo.add_argument(
        "--max-tokens", type=int, default=400, help="longest answer of the embedded model"
    )
    demo.set_defaults(run=_run_demo)


# ---------------------------------------------------------------------------------- printing


@dataclass(slots=True)
class Transcript:
    """Prints turns as they happen and keeps the counts for the summary."""

    out: Output
    turns: int = 0
    code_runs: int = 0
    failed_runs: int = 0
    outputs: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def outcome(
        self, name: str, *, solved: bool, verdict: str, seconds: float, work_dir: Path, stop: str
    ) -> TaskOutcome:
        """The task's summary line: its verdict plus what this transcript counted."""
        return TaskOutcome(
            name=name,
            solved=solved,
            verdict=verdict,
            turns=self.turns,
            code_runs=self.code_runs,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            seconds=seconds,
            files=_files(work_dir),
            stop=stop,
        )

    def usage(self, response: ModelResponse) -> None:
        self.prompt_tokens += response.usage.prompt_tokens
        self.completion_tokens += response.usage.completion_tokens

    def message(self, speaker: str, text: str) -> None:
        self.turns += 1
        console = self.out.console
        console.print(Rule(f"turn {self.turns} · {escape(speaker)}", align="left", style="cyan"))
        blocks = extract_code_blocks(text)
        prose = text
        for block in blocks:
            console.print(Syntax(block.code.rstrip(), "python", theme="ansi_dark", word_wrap=True))
            prose = prose.replace(block.code, "")
        rest = "\n".join(
            line for line in prose.splitlines() if line.strip() and not line.startswith("```")
        )
        if rest.strip():
            console.print(escape(rest.strip()[:1200]))

    def code_run(self, speaker: str, exit_code: int | None, output: str) -> None:
        self.turns += 1
        self.code_runs += 1
        if exit_code != 0:
            self.failed_runs += 1
        self.outputs.append(output)
        style = "green" if exit_code == 0 else "red"
        title = f"turn {self.turns} · {escape(speaker)} · exit code {exit_code}"
        self.out.console.print(Rule(title, align="left", style=style))
        if output.strip():
            self.out.console.print(escape(_clip(output.strip(), 1200)), style="dim")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n…\n" + text[-limit // 2 :]


class ObservedClient(ClientWrapper):
    """Passes calls to `inner` and reports each answer, so the console shows it as it arrives.

    While the model writes, a status line counts the streamed pieces (a small model on a CPU
    takes tens of seconds for a script; the count shows it is working).
    """

    def __init__(
        self,
        inner: ModelClient,
        on_reply: Callable[[ModelResponse], None],
        out: Output | None = None,
    ) -> None:
        super().__init__(inner)
        self.on_reply = on_reply
        self.out = out
        self.calls = 0

    async def create(self, request: ModelRequest) -> ModelResponse:
        pieces = 0
        on_token = request.on_token
        status = (
            self.out.err.status("the model is writing…", spinner="dots")
            if self.out is not None
            else contextlib.nullcontext()
        )
        with status as live:

            async def count(piece: str) -> None:
                nonlocal pieces
                pieces += 1
                if live is not None:
                    live.update(f"the model is writing… {pieces} tokens")
                if on_token is not None:
                    result = on_token(piece)
                    if result is not None:
                        await result

            response = await self.inner.create(request.with_options(stream=True, on_token=count))
        self.calls += 1
        self.on_reply(response)
        return response

    async def aclose(self) -> None:
        return None  # the demo owns and closes the inner client


class ObservedExecutor(Executor):
    """Wraps the demo's executor and reports every code run (exit code and output)."""

    def __init__(self, inner: Executor, on_run: Callable[[CodeResult], None]) -> None:
        self.inner = inner
        self.on_run = on_run

    @contextlib.asynccontextmanager
    async def _session(self, work_dir: Any) -> AsyncIterator[ExecutorSession]:
        async with self.inner.session(work_dir) as session:
            yield _ObservedSession(session, self.on_run)

    def session(
        self, work_dir: Any = None
    ) -> contextlib.AbstractAsyncContextManager[ExecutorSession]:
        return self._session(work_dir)

    async def aclose(self) -> None:
        return None


class _ObservedSession(ExecutorSession):
    def __init__(self, inner: ExecutorSession, on_run: Callable[[CodeResult], None]) -> None:
        self._inner = inner
        self._on_run = on_run

    async def run(self, block: CodeBlock, *, timeout: float | None = None) -> CodeResult:
        result = await self._inner.run(block, timeout=timeout)
        self._on_run(result)
        return result


# ---------------------------------------------------------------------------------- setup


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelChoice:
    """The model the demo talks to (a server client or the embedded model); the demo closes it."""

    label: str
    client: ModelClient


def server_from_env() -> dict[str, Any] | None:
    """An llm_config from MOOT_BASE_URL / OPENAI_API_KEY / MOOT_MODEL, or None when unset."""
    base_url = os.environ.get("MOOT_BASE_URL")
    api_key = os.environ.get("OPENAI_API_KEY")
    if not base_url and not api_key:
        return None
    entry: dict[str, Any] = {
        "model": os.environ.get("MOOT_MODEL") or ("default" if base_url else "gpt-4o-mini"),
        "api_key": api_key or "none",
    }
    if base_url:
        entry["base_url"] = base_url
    return {"config_list": [entry], "cache_seed": None, "temperature": 0}


def choose_model(out: Output, max_tokens: int) -> ModelChoice:
    """The configured server, else the embedded model (fetched and verified when missing).

    Raises:
        MissingError: the embedded model needs llama-cpp-python, which is not installed.
    """
    config = server_from_env()
    if config is not None:
        entry = config["config_list"][0]
        where = entry.get("base_url", "api.openai.com")
        out.say(
            f"model: [bold]{escape(entry['model'])}[/] at {escape(where)} (from the environment)"
        )
        from moot.models import client_from_llm_config

        return ModelChoice(
            label=f"{entry['model']} ({where})", client=client_from_llm_config(config)
        )
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingError(
            "the embedded model needs llama-cpp-python, which is not installed",
            hint="`make demo` builds it once (about 12 minutes on 2 cores) and caches the wheel;"
            " or set MOOT_BASE_URL / OPENAI_API_KEY to use a server",
        )
    from moot.models import LOCAL_MODEL_NAME, LocalModelClient, ModelStoreError, fetch_model

    try:
        path = fetch_model(say=lambda line: out.say(f"[dim]\\[moot model][/] {escape(line)}"))
    except ModelStoreError as exc:
        raise CliError(str(exc), code=ExitCode.FAILED) from exc
    out.say(f"model: [bold]{LOCAL_MODEL_NAME}[/] (embedded, offline) from {escape(str(path))}")
    return ModelChoice(
        label=f"{LOCAL_MODEL_NAME} (embedded)",
        client=LocalModelClient(path, max_tokens=max_tokens, n_threads=os.cpu_count()),
    )


async def open_executor(
    kind: str, out: Output, stack: contextlib.AsyncExitStack
) -> tuple[Executor, str]:
    """The Docker sandbox when asked for or available, else the local executor (said aloud).

    Raises:
        MissingError: `docker` was asked for and no engine answers.
    """
    from moot.executors import DockerExecutor, DockerUnavailableError, LocalExecutor, build_image

    if kind in ("auto", "docker"):
        try:
            tag = await build_image(
                progress=lambda line: out.say(f"[dim]\\[moot image][/] {escape(line)}")
            )
            executor = await stack.enter_async_context(
                DockerExecutor(pool_size=2, image=tag, timeout=30)
            )
        except DockerUnavailableError as exc:
            if kind == "docker":
                raise MissingError(str(exc), hint="start Docker or use --executor local") from exc
            out.say(
                "[yellow]No Docker engine answers: code runs on this machine with the local"
                " executor (not sandboxed).[/]"
            )
        else:
            out.say(f"executor: Docker sandbox {escape(tag)} (no network, non-root)")
            return executor, "docker"
    local: Executor = await stack.enter_async_context(LocalExecutor(timeout=30))
    if kind == "local":
        out.say("executor: local (code runs on this machine, not sandboxed)")
    return local, "local"


# ---------------------------------------------------------------------------------- tasks


@dataclass(slots=True, kw_only=True)
class TaskOutcome:
    name: str
    solved: bool
    verdict: str
    turns: int
    code_runs: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    files: list[str]
    stop: str


def done_without_code(message: Mapping[str, Any]) -> bool:
    """AutoGen's meaning of TERMINATE, made sturdier for a small model: the output of code never
    ends the chat (it sometimes writes `print("TERMINATE")` into its program), code never does
    either, and the bare word does, in any case, even inside a fence."""
    from moot.agents import default_is_termination_msg

    text = str(message.get("content") or "")
    if text.lstrip().startswith("exitcode:"):
        return False  # a program's output: only the model's own words end the chat
    words = [word.strip(".!").lower() for word in re.sub(r"```\w*", " ", text).split()]
    if words == ["terminate"]:
        return True  # the word alone, even fenced or in lower case
    if "```" in text:
        return False
    return default_is_termination_msg(message)


def _files(work_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(work_dir))
        for p in work_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(work_dir).parts)
    )


def _fib_ok(work_dir: Path) -> tuple[bool, str]:
    path = work_dir / "fib.txt"
    if not path.is_file():
        return False, "fib.txt was not written"
    try:
        numbers = [int(line) for line in path.read_text().split()]
    except ValueError:
        return False, "fib.txt does not hold one number per line"
    if numbers[:10] in (FIB, [*FIB[1:], 55]) and len(numbers) == 10:
        return True, "fib.txt holds the first 10 Fibonacci numbers"
    return False, f"fib.txt holds {numbers[:12]}, not the first 10 Fibonacci numbers"


async def run_two_agent(
    model: ModelChoice, executor: Executor, work_dir: Path, out: Output
) -> TaskOutcome:
    """(a): AssistantAgent writes code, UserProxyAgent runs it, until TERMINATE."""
    from moot.agents import AssistantAgent, UserProxyAgent

    transcript = Transcript(out)

    def on_reply(response: ModelResponse) -> None:
        transcript.usage(response)
        transcript.message("assistant", response.content or "")

    client = ObservedClient(model.client, on_reply, out)
    observed = ObservedExecutor(
        executor, lambda r: transcript.code_run("user", r.exit_code, r.output)
    )
    assistant = AssistantAgent(
        "assistant",
        system_message=ASSISTANT_PROMPT,
        model_client=client,
        is_termination_msg=done_without_code,
    )
    user = UserProxyAgent(
        "user",
        human_input_mode="NEVER",
        max_consecutive_auto_reply=5,
        is_termination_msg=done_without_code,
        code_execution_config={"executor": observed, "work_dir": str(work_dir), "timeout": 30},
    )
    out.console.print(Rule("[bold](a) two agents: write fib.txt[/]"))
    out.say(f"[bold]user:[/] {escape(TASK_A)}")
    started = time.perf_counter()
    result = await user.a_initiate_chat(assistant, message=TASK_A, silent=True)
    seconds = time.perf_counter() - started
    last = result.chat_history[-1] if result.chat_history else {}
    terminated = last.get("name") == "assistant" and done_without_code(last)
    solved, verdict = _fib_ok(work_dir)
    stop = "the assistant said TERMINATE" if terminated else "the reply limit was reached"
    return transcript.outcome(
        "two-agent", solved=solved, verdict=verdict, seconds=seconds, work_dir=work_dir, stop=stop
    )


async def run_group(
    model: ModelChoice, executor: Executor, work_dir: Path, out: Output
) -> TaskOutcome:
    """(b): coder, executor and reviewer in a round-robin group chat, streamed turn by turn."""
    from moot.agents import (
        AssistantAgent,
        UserProxyAgent,
    )
    from moot.groupchat import (
        CodeRunEvent,
        GroupChat,
        GroupChatManager,
        MessageEvent,
        TerminationEvent,
    )

    transcript = Transcript(out)
    client = ObservedClient(model.client, transcript.usage, out)
    coder = AssistantAgent("coder", system_message=CODER_PROMPT, model_client=client)
    runner = UserProxyAgent(
        "executor",
        human_input_mode="NEVER",
        code_execution_config={"executor": executor, "work_dir": str(work_dir), "timeout": 30},
        default_auto_reply="There was no code to run.",
    )
    reviewer = AssistantAgent("reviewer", system_message=REVIEWER_PROMPT, model_client=client)
    group = GroupChat(
        [coder, runner, reviewer], max_round=9, speaker_selection_method="round_robin"
    )
    manager = GroupChatManager(group, silent=True)
    out.console.print(Rule("[bold](b) group chat: coder, executor, reviewer[/]"))
    out.say(f"[bold]user:[/] {escape(TASK_B)}")
    started = time.perf_counter()
    stop = "unknown"
    async for event in manager.run_stream(TASK_B):
        if isinstance(event, MessageEvent) and event.turn > 0:
            if event.speaker == "executor":
                continue  # shown as the code run below
            transcript.message(event.speaker, event.content)
        elif isinstance(event, CodeRunEvent):
            transcript.code_run(event.speaker, event.exit_code, event.output)
        elif isinstance(event, TerminationEvent):
            stop = event.reason.detail or event.reason.condition
    seconds = time.perf_counter() - started
    solved = any(PRIMES in output for output in transcript.outputs)
    verdict = f"the program printed {PRIMES}" if solved else "no run printed the primes below 30"
    return transcript.outcome(
        "group", solved=solved, verdict=verdict, seconds=seconds, work_dir=work_dir, stop=stop
    )


def _prepare(work_dir: Path) -> None:
    marker = work_dir / ".moot-demo"
    if work_dir.exists() and any(work_dir.iterdir()) and not marker.exists():
        raise UsageError(
            f"{work_dir} exists and was not made by `moot demo`; choose another --work-dir"
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    marker.write_text("made by moot demo; emptied on each run\n")


async def demo(args: argparse.Namespace, out: Output) -> list[TaskOutcome]:
    """Set up the model and the executor, then run the chosen tasks."""
    model = choose_model(out, args.max_tokens)
    outcomes: list[TaskOutcome] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(model.client.aclose)
        executor, _ = await open_executor(args.executor, out, stack)
        if args.task in ("both", "two-agent"):
            outcomes.append(await run_two_agent(model, executor, args.work_dir / "two-agent", out))
        if args.task in ("both", "group"):
            outcomes.append(await run_group(model, executor, args.work_dir / "group", out))
    return outcomes


def _summary(outcomes: Sequence[TaskOutcome], out: Output) -> None:
    table = Table(title="moot demo summary")
    table.add_column("")
    for o in outcomes:
        table.add_column(o.name)
    rows: list[tuple[str, Callable[[TaskOutcome], str]]] = [
        ("result", lambda o: "[green]solved[/]" if o.solved else "[red]NOT solved[/]"),
        ("check", lambda o: escape(o.verdict)),
        ("turns", lambda o: str(o.turns)),
        ("code runs", lambda o: str(o.code_runs)),
        ("tokens", lambda o: f"{o.prompt_tokens} prompt + {o.completion_tokens} completion"),
        ("time", lambda o: f"{o.seconds:.1f} s"),
        ("files written", lambda o: escape(", ".join(o.files) or "none")),
        ("ended because", lambda o: escape(o.stop)),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(o) for o in outcomes))
    out.table(table)


def _run_demo(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.models import ModelError

    if args.max_tokens < 16:
        raise UsageError(f"--max-tokens must be at least 16, got {args.max_tokens}")
    try:
        _prepare(args.work_dir)
    except OSError as exc:
        raise UsageError(f"cannot use {args.work_dir}: {exc}") from exc
    try:
        outcomes = anyio.run(lambda: demo(args, out))
    except ModelError as exc:
        raise CliError(
            f"the model failed: {exc}",
            hint="check the model server (MOOT_BASE_URL), or run `moot doctor`",
        ) from exc
    _summary(outcomes, out)
    out.result({"tasks": [_as_dict(o) for o in outcomes], "work_dir": str(args.work_dir)})
    failed = [o for o in outcomes if not o.solved]
    if failed:
        out.say(
            "[bold red]The model did not solve "
            + ", ".join(o.name for o in failed)
            + ".[/] That is the model's answer, shown as it is; the turns above show where it"
            " went wrong."
        )
        return ExitCode.FAILED
    out.say(f"[bold green]Done:[/] every task solved; files are in {escape(str(args.work_dir))}")
    return ExitCode.OK


def _as_dict(outcome: TaskOutcome) -> dict[str, Any]:
    return {
        "task": outcome.name,
        "solved": outcome.solved,
        "verdict": outcome.verdict,
        "turns": outcome.turns,
        "code_runs": outcome.code_runs,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "seconds": outcome.seconds,
        "files": outcome.files,
        "stop": outcome.stop,
    }
