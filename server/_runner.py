"""Runs the server's chats: each one journaled turn by turn, asking humans through the journal.

A chat's agents send through a hook that queues each message as a journal `Turn`; one writer per
chat appends them in order. Questions to humans and approvals are journaled (`ask_input`) and
answered from any request, before or after a restart: a resumed chat replays its turns into the
agents without asking any model, then waits for the same question.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from moot.agents import ConversableAgent, InputProvider, InputRequest
from moot.agents.approvals import ApprovalDecision, ApprovalRequest
from moot.groupchat import GroupChatManager
from moot.journal import (
    ChatDefinition,
    ChatFinishedError,
    ChatStatus,
    CodeRun,
    JournalError,
    PendingInput,
    Termination,
    Turn,
    Usage,
)

from ._errors import UnknownTeamError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from moot.journal import ChatStore
    from moot.runtime import Runtime

    from ._teams import Team, Teams

log = structlog.get_logger("moot.server")

APPROVAL_PREFIX = "approval:"
_EXITCODE = re.compile(r"^exitcode: (-?\d+)")


def token_hash(token: str) -> str:
    """How a chat's access token is kept in its definition: only its sha256."""
    return hashlib.sha256(token.encode()).hexdigest()


class Signal:
    """Wakes everyone waiting on one chat, without ever blocking the notifier."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """Take this before reading the journal, then wait on it if nothing was new."""
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()


@dataclass(slots=True)
class Metrics:
    """Turn rate and turn latency over the last minute, for `/metrics` and the console chart."""

    window: float = 60.0
    _turns: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=100_000))

    def turn(self, latency: float) -> None:
        self._turns.append((time.monotonic(), latency))

    def snapshot(self) -> dict[str, float]:
        now = time.monotonic()
        while self._turns and self._turns[0][0] < now - self.window:
            self._turns.popleft()
        recent = [at for at, _ in self._turns if at >= now - 5.0]
        latencies = sorted(lat for _, lat in self._turns)

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

        return {"turns_per_s": len(recent) / 5.0, "p50_s": pct(0.5), "p99_s": pct(0.99)}


def _message_dict(message: Any, sender: str) -> dict[str, Any]:
    if isinstance(message, str):
        return {"content": message, "role": "assistant", "name": sender}
    data = dict(message) if isinstance(message, dict) else {"content": str(message)}
    data.setdefault("name", sender)
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def _code_runs(message: dict[str, Any]) -> tuple[CodeRun, ...]:
    content = message.get("content")
    found = _EXITCODE.match(content) if isinstance(content, str) else None
    if found is None:
        return ()
    output = content.partition("\n")[2] if isinstance(content, str) else ""
    return (CodeRun(language="", code="", exit_code=int(found.group(1)), output=output[:4000]),)


class ChatJournal:
    """One running chat's writer: the send hook queues turns, one task appends them in order."""

    def __init__(self, runner: ChatRunner, chat_id: str, turns: int = 0) -> None:
        self.runner = runner
        self.chat_id = chat_id
        self.count = turns  # turns queued so far
        self.replaying = False
        self.skip = 0
        self._queue: asyncio.Queue[Turn] = asyncio.Queue()
        self._spent: dict[str, tuple[int, int, float]] = {}
        self._last = time.monotonic()

    def on_send(self, sender: ConversableAgent, message: Any, recipient: Any, silent: bool) -> Any:
        """`process_message_before_send`: journal the message as the next turn."""
        if self.replaying:
            return message
        if self.skip:
            self.skip -= 1
            return message
        self.count += 1
        data = _message_dict(message, sender.name)
        usage = sender.get_total_usage()
        before = self._spent.get(sender.name, (0, 0, 0.0))
        now = (usage.prompt_tokens, usage.completion_tokens, usage.total_cost)
        self._spent[sender.name] = now
        self._queue.put_nowait(
            Turn(
                number=self.count,
                speaker=sender.name,
                message=data,
                usage=Usage(
                    prompt_tokens=now[0] - before[0],
                    completion_tokens=now[1] - before[1],
                    cost=now[2] - before[2],
                ),
                code_runs=_code_runs(data),
            )
        )
        return message

    async def drain(self) -> None:
        """Wait until every queued turn is journaled."""
        await self._queue.join()

    async def write(self) -> None:
        """The writer task: append each queued turn, then wake the chat's readers."""
        while True:
            turn = await self._queue.get()
            try:
                # Shielded: a stopped chat must not cancel a store write mid-transaction.
                await asyncio.shield(self._append(turn))
            finally:
                self._queue.task_done()
            now = time.monotonic()
            self.runner.metrics.turn(now - self._last)
            self._last = now
            self.runner.notify(self.chat_id)

    async def _append(self, turn: Turn) -> None:
        store = self.runner.store
        await store.append_turn(self.chat_id, turn)
        for run in turn.code_runs:
            await store.append_event(
                self.chat_id,
                "code.run",
                {"turn": turn.number, "exit_code": run.exit_code, "output": run.output},
            )

    async def question(self, prompt: str, *, kind: str, extra: dict[str, Any]) -> str:
        """Ask (or find again, after a restart) the question of the next turn and wait for it."""
        await self.drain()
        store, turn = self.runner.store, self.count + 1
        approval = kind != "input"

        def ours(q: PendingInput) -> bool:
            return q.turn == turn and q.prompt.startswith(APPROVAL_PREFIX) == approval

        found = [q for q in await asyncio.shield(store.inputs(self.chat_id)) if ours(q)]
        if found:
            token = found[-1].token
        else:
            token = await asyncio.shield(self._ask(prompt, turn, approval, extra))
            self.runner.notify(self.chat_id)
        signal = self.runner.signal(self.chat_id)
        while True:
            wake = signal.current()
            for q in await asyncio.shield(store.inputs(self.chat_id)):
                if q.token == token and q.answer is not None:
                    self._last = time.monotonic()  # waiting for a human is not turn latency
                    return q.answer
            await wake.wait()

    async def _ask(self, prompt: str, turn: int, approval: bool, extra: dict[str, Any]) -> str:
        store = self.runner.store
        token = (await store.ask_input(self.chat_id, prompt)).token
        if approval:
            await store.append_event(
                self.chat_id, "approval.asked", {"token": token, "turn": turn, **extra}
            )
        return token


class JournalInputProvider(InputProvider):
    """Questions and approvals of one chat, kept in the journal until someone answers."""

    def __init__(self, journal: ChatJournal) -> None:
        self._journal = journal

    async def get_input(self, request: InputRequest) -> str:
        return await self._journal.question(
            request.prompt, kind="input", extra={"agent": request.agent}
        )

    async def get_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        body = {"kind": request.kind, "agent": request.agent, "content": request.content}
        answer = await self._journal.question(
            APPROVAL_PREFIX + json.dumps(body), kind=request.kind, extra=body
        )
        verdict, _, reason = answer.partition(" ")
        return ApprovalDecision(approved=verdict == "approve", reason=reason)


def _agents(initiator: ConversableAgent, recipient: ConversableAgent) -> list[ConversableAgent]:
    found: list[ConversableAgent] = []
    for agent in (initiator, recipient):
        if isinstance(agent, GroupChatManager):
            found.extend(a for a in agent.groupchat.agents if isinstance(a, ConversableAgent))
        else:
            found.append(agent)
    unique: dict[int, ConversableAgent] = {id(a): a for a in found}
    return list(unique.values())


class ChatRunner:
    """Starts, resumes and stops the server's chats; each runs as a task this runner owns."""

    def __init__(self, store: ChatStore, teams: Teams, runtime: Runtime | None = None) -> None:
        self.store = store
        self.teams = teams
        self.runtime = runtime  # None: each chat on its own runtime; else e.g. NATS workers
        self.metrics = Metrics()
        self._signals: dict[str, Signal] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ChatRunner]:
        """Own the chats' tasks; resume journaled chats that were waiting or mid-run."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                await self._resume_all()
                yield self
            finally:
                for task in list(self._tasks.values()):
                    task.cancel()
                self._group = None

    def signal(self, chat_id: str) -> Signal:
        signal = self._signals.get(chat_id)
        if signal is None:
            signal = self._signals[chat_id] = Signal()
        return signal

    def notify(self, chat_id: str) -> None:
        signal = self._signals.get(chat_id)
        if signal is not None:
            signal.notify()

    def active(self) -> int:
        return len(self._tasks)

    async def start(self, team: Team, message: str, *, max_turns: int | None) -> tuple[str, str]:
        """Journal a new chat and start it; returns (chat id, the chat's access token).

        Raises:
            JournalError: the store refused the chat.
        """
        chat_id = uuid.uuid4().hex
        token = secrets.token_urlsafe(24)
        await self.store.create_chat(
            ChatDefinition(
                chat_id=chat_id,
                participants=(),
                policy="server",
                limits={"max_turns": max_turns} if max_turns else {},
                spec={"team": team.name, "message": message, "token_sha256": token_hash(token)},
            )
        )
        self._launch(chat_id, team, message, max_turns, resume=False)
        return chat_id, token

    async def stop(self, chat_id: str) -> bool:
        """Stop a chat; False when it had ended already.

        Raises:
            ChatNotFoundError: no such chat.
        """
        task = self._tasks.pop(chat_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.store.set_status(
                chat_id, ChatStatus.FINISHED, termination=Termination(reason="stopped")
            )
        except ChatFinishedError:
            return False
        self.notify(chat_id)
        return True

    def _launch(
        self, chat_id: str, team: Team, message: str, max_turns: int | None, *, resume: bool
    ) -> None:
        assert self._group is not None, "the runner is not running"
        task = self._group.create_task(self._drive(chat_id, team, message, max_turns, resume))
        self._tasks[chat_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(chat_id, None))

    async def _resume_all(self) -> None:
        for status in (ChatStatus.WAITING, ChatStatus.RUNNING):
            cursor: str | None = None
            while True:
                page = await self.store.list_chats(status=status, limit=200, cursor=cursor)
                for summary in page.chats:
                    definition = await self.store.definition(summary.chat_id)
                    spec = definition.spec
                    try:
                        team = self.teams.get(str(spec.get("team")))
                    except UnknownTeamError:
                        log.warning("chat.not_resumed", chat_id=summary.chat_id, reason="team")
                        continue
                    limit = definition.limits.get("max_turns")
                    self._launch(
                        summary.chat_id, team, str(spec.get("message", "")), limit, resume=True
                    )
                cursor = page.next_cursor
                if cursor is None:
                    break

    async def _drive(
        self, chat_id: str, team: Team, message: str, max_turns: int | None, resume: bool
    ) -> None:
        journal = ChatJournal(self, chat_id)
        provider = JournalInputProvider(journal)
        initiator, recipient = team.build()
        by_name: dict[str, ConversableAgent] = {}
        for agent in _agents(initiator, recipient):
            agent.input_provider = provider
            agent.register_hook("process_message_before_send", journal.on_send)
            by_name[agent.name] = agent
        writer = asyncio.get_running_loop().create_task(journal.write())
        try:
            if resume:
                await self._continue(journal, by_name, initiator, recipient)
            else:
                # The server journals this chat itself (usage, code runs, questions and
                # approvals that wait across restarts), so the chat's own journal is off.
                await initiator.a_initiate_chat(
                    recipient,
                    message=message,
                    max_turns=max_turns,
                    silent=True,
                    store=False,
                    runtime=self.runtime,
                )
            await journal.drain()
            await self.store.set_status(
                chat_id, ChatStatus.FINISHED, termination=Termination(reason="done")
            )
        except asyncio.CancelledError:
            raise
        except ChatFinishedError:
            pass
        except Exception as exc:
            log.warning("chat.failed", chat_id=chat_id, error=repr(exc))
            with contextlib.suppress(JournalError):
                await journal.drain()
                await self.store.set_status(
                    chat_id,
                    ChatStatus.FAILED,
                    termination=Termination(reason="error", detail=repr(exc)[:2000]),
                )
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self.notify(chat_id)

    async def _continue(
        self,
        journal: ChatJournal,
        by_name: dict[str, ConversableAgent],
        initiator: ConversableAgent,
        recipient: ConversableAgent,
    ) -> None:
        """Replay the journaled turns into the agents (no model is asked), then resend the last
        one so its recipient replies, as it was about to when the server stopped."""
        turns = await self.store.turns(journal.chat_id)
        journal.count = len(turns)
        if not turns:
            return
        pair = {initiator.name: recipient, recipient.name: initiator}

        def peers(speaker: str) -> tuple[ConversableAgent, ConversableAgent]:
            sender = by_name.get(speaker, initiator)
            return sender, pair.get(sender.name, recipient)

        journal.replaying = True
        try:
            for turn in turns[:-1]:
                sender, receiver = peers(turn.speaker)
                await sender.a_send(turn.message, receiver, request_reply=False, silent=True)
        finally:
            journal.replaying = False
        # As `initiate_chat` leaves them: each side replies to what the other sends.
        initiator.reply_at_receive[recipient] = True
        recipient.reply_at_receive[initiator] = True
        # The last turn is sent again (not journaled again) so its recipient replies, as it was
        # about to when the server stopped; the exchange goes on from there.
        last = turns[-1]
        sender, receiver = peers(last.speaker)
        journal.skip = 1
        await sender.a_send(last.message, receiver, request_reply=True, silent=True)
