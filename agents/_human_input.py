"""Where human input comes from: one small async seam, with a console, a queue and a script.

A chat that waits for a human awaits `InputProvider.get_input`; only that chat's participant
waits, so other chats (and the event loop) carry on.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import HumanInputError
from ._streams import IOStream
from .approvals import ApprovalDecision

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from .approvals import ApprovalRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRequest:
    """One question for a human: the prompt, and which agent in which chat asks it."""

    prompt: str
    agent: str
    chat_id: str | None = None
    sender: str | None = None  # the agent whose message the human is asked about


class InputProvider(abc.ABC):
    """Answers `InputRequest`s. An empty answer means "skip"; "exit" ends the chat."""

    @abc.abstractmethod
    async def get_input(self, request: InputRequest) -> str:
        """The human's answer to `request`.

        Raises:
            HumanInputError: no answer can be given.
        """

    async def get_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        """Ask whether code or tool calls may run; by default a yes/no question through
        `get_input` (a server overrides it to journal the approval).

        Raises:
            HumanInputError: no answer can be given.
        """
        what = "run this code" if request.kind == "code" else "make these tool calls"
        answer = await self.get_input(
            InputRequest(
                prompt=f"Approve: {what}? (yes/no)\n{request.content}",
                agent=request.agent,
                chat_id=request.chat_id,
            )
        )
        verdict, _, reason = answer.strip().partition(" ")
        return ApprovalDecision(
            approved=verdict.lower() in ("y", "yes", "approve", "approved"), reason=reason
        )


class ConsoleInputProvider(InputProvider):
    """Reads a line from the default `IOStream` (stdin) on a daemon thread, so the event loop
    keeps running meanwhile.

    Prompts from concurrent chats are asked one after another. A cancelled wait leaves the read
    pending; the line typed next is then discarded. End of input (stdin closed) answers "exit".
    """

    def __init__(self) -> None:
        self._turn = threading.Lock()

    async def get_input(self, request: InputRequest) -> str:
        stream = IOStream.get_default()  # the console, unless redirected with set_default
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()

        def deliver(text: str | None, error: BaseException | None) -> None:
            if answer.done():
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(text or "")

        def read() -> None:
            text: str | None = None
            error: BaseException | None = None
            with self._turn:
                try:
                    text = stream.input(request.prompt)
                except EOFError:  # stdin closed
                    text = "exit"
                except Exception as exc:  # reported to the waiting chat
                    error = HumanInputError(f"cannot read from stdin: {exc!r}")
            try:
                loop.call_soon_threadsafe(deliver, text, error)
            except RuntimeError:  # the loop is gone: nobody waits any more
                pass

        threading.Thread(target=read, name="moot-console-input", daemon=True).start()
        return await answer


class FunctionInputProvider(InputProvider):
    """Asks an async function of yours (a web handler, a UI callback) for each answer."""

    def __init__(self, function: Callable[[InputRequest], Awaitable[str]]) -> None:
        self._function = function

    async def get_input(self, request: InputRequest) -> str:
        return await self._function(request)


@dataclass(slots=True, kw_only=True)
class PendingInput:
    """A question waiting in a `QueueInputProvider`; `answer()` resumes the chat that asked."""

    request: InputRequest
    _future: asyncio.Future[str] = field(repr=False)

    @property
    def answered(self) -> bool:
        return self._future.done()

    def answer(self, text: str) -> None:
        """Give the human's answer; ignored if the asking chat has stopped waiting."""
        if not self._future.done():
            self._future.set_result(text)


class QueueInputProvider(InputProvider):
    """Queues each question until the application answers it: `await provider.next()`."""

    def __init__(self) -> None:
        self._questions: asyncio.Queue[PendingInput] = asyncio.Queue()

    async def get_input(self, request: InputRequest) -> str:
        pending = PendingInput(request=request, _future=asyncio.get_running_loop().create_future())
        self._questions.put_nowait(pending)
        return await pending._future

    async def next(self) -> PendingInput:
        """The next unanswered question (waits for one); skips those whose chat gave up."""
        while True:
            pending = await self._questions.get()
            if not pending.answered:
                return pending

    def waiting(self) -> int:
        """How many questions are queued and not yet taken by `next()`."""
        return self._questions.qsize()


class ScriptedInputProvider(InputProvider):
    """Answers with the given strings in order, recording each request; a fake for tests.

    Raises `HumanInputError` when asked more often than it has answers.
    """

    def __init__(self, answers: Iterable[str]) -> None:
        self._answers = deque(answers)
        self.requests: list[InputRequest] = []

    async def get_input(self, request: InputRequest) -> str:
        self.requests.append(request)
        if not self._answers:
            raise HumanInputError(
                f"ScriptedInputProvider has no answer left for {request.agent!r}"
                f" (prompt: {request.prompt[:80]!r})"
            )
        return self._answers.popleft()

    @property
    def remaining(self) -> int:
        return len(self._answers)
