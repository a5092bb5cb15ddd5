"""Runs the server's chats: each one on its own journal, asking humans through the journal.

A pair runs as `a_initiate_chat(..., chat_id=..., store=<the server's store>)`, a group chat as
its manager's `a_run(chat_id=...)`: the chat journals its own turns (with usage and code runs),
and the server's facts are merged into its definition. Questions to humans and approvals are
journaled (`ask_input`) and answered from any request, before or after a restart: a resumed chat
rebuilds itself from its turns without asking any model, then waits for the same question.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
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
    ChatExistsError,
    ChatFinishedError,
    ChatNotFoundError,
    ChatStatus,
    JournalError,
    LeaseHeldError,
    PendingInput,
    Termination,
)

from ._errors import UnknownTeamError
from ._store import NotifyingStore
from ._tokens import Signal, TokenBuffer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from moot.journal import ChatStore
    from moot.runtime import Runtime

    from ._teams import Team, Teams

log = structlog.get_logger("moot.server")

APPROVAL_PREFIX = "approval:"
#: How long a pair's journal lease lives (`a_initiate_chat`'s): a crashed server's lease is
#: still held that long, so a resumed pair waits for it.
PAIR_LEASE_TTL = 30.0


def token_hash(token: str) -> str:
    """How a chat's access token is kept in its definition: only its sha256."""
    return hashlib.sha256(token.encode()).hexdigest()


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


def opening_message(spec: dict[str, Any]) -> dict[str, Any] | None:
    """A group chat's first message, kept in its definition (its turns are the replies)."""
    opening = spec.get("opening") if spec.get("kind") == "group" else None
    return dict(opening) if isinstance(opening, dict) else None


class ChatJournal:
    """One running chat's questions to humans: asked in the chat's journal, answered from any
    request (the chat journals its own turns, a pair by `a_initiate_chat`, a group chat by its
    manager)."""

    def __init__(self, runner: ChatRunner, chat_id: str) -> None:
        self.runner = runner
        self.chat_id = chat_id

    async def next_turn(self) -> int:
        """The number of the turn being taken, read from the chat's journal."""
        return (await asyncio.shield(self.runner.store.summary(self.chat_id))).turns + 1

    async def question(self, prompt: str, *, kind: str, extra: dict[str, Any]) -> str:
        """Ask (or find again, after a restart) the question of the next turn and wait for it;
        a question the chat's journal asked for this turn already is the same one."""
        store, turn = self.runner.store, await self.next_turn()
        approval = kind != "input"

        def ours(q: PendingInput) -> bool:
            return q.turn == turn and q.prompt.startswith(APPROVAL_PREFIX) == approval

        found = [q for q in await asyncio.shield(store.inputs(self.chat_id)) if ours(q)]
        if found:
            token = found[-1].token
        else:
            token = await asyncio.shield(self._ask(prompt, turn, approval, extra))
        signal = self.runner.signal(self.chat_id)
        while True:
            wake = signal.current()
            for q in await asyncio.shield(store.inputs(self.chat_id)):
                if q.token == token and q.answer is not None:
                    self.runner.clock_turn(self.chat_id)  # a human's wait is not turn latency
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
    """Starts, resumes and stops the server's chats; each runs as a task this runner owns.

    Every chat is journaled once, in the server's store, by its own journal: a group chat by
    its manager's (resumed by `a_run(chat_id=...)`, so its speaker order goes on), a pair by
    `a_initiate_chat`'s (resumed by `a_initiate_chat(recipient, chat_id=...)`). The server's own
    facts (team, token hash) ride in the chat's definition; questions, approvals and code runs
    are rows and events of the same chat.
    """

    def __init__(self, store: ChatStore, teams: Teams, runtime: Runtime | None = None) -> None:
        self.store = NotifyingStore(store, changed=self.notify, turn_begins=self._turn_begins)
        self.teams = teams
        self.runtime = runtime  # None: each chat on its own runtime; else e.g. NATS workers
        self.metrics = Metrics()
        self._signals: dict[str, Signal] = {}
        self._tokens: dict[str, TokenBuffer] = {}
        self._clock: dict[str, float] = {}  # when each running chat's last turn ended
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
        """The chat's journal changed: wake its readers."""
        signal = self._signals.get(chat_id)
        if signal is not None:
            signal.notify()

    def tokens(self, chat_id: str) -> TokenBuffer | None:
        """The streamed text of the turn the chat is taking (None: the chat is not running)."""
        return self._tokens.get(chat_id)

    def clock_turn(self, chat_id: str) -> None:
        """Start the chat's turn clock again (after a wait for a human)."""
        if chat_id in self._clock:
            self._clock[chat_id] = time.monotonic()

    def _turn_begins(self, chat_id: str, number: int) -> None:
        now = time.monotonic()
        last = self._clock.get(chat_id)
        if last is not None:
            self.metrics.turn(now - last)
            self._clock[chat_id] = now
        buffer = self._tokens.get(chat_id)
        if buffer is not None:
            buffer.turn_kept(number)

    def _token_sink(self, chat_id: str, speaker: str) -> Any:
        buffer = self._tokens[chat_id]

        def sink(text: str) -> None:
            buffer.add(speaker, text)
            signal = self._signals.get(chat_id)
            if signal is not None:
                signal.notify(journal=False)

        return sink

    def active(self) -> int:
        return len(self._tasks)

    async def start(
        self, team: Team, message: str, *, max_turns: int | None, chat_id: str | None = None
    ) -> tuple[str, str]:
        """Start a chat (under `chat_id`, or a fresh id); returns (chat id, the chat's access
        token). The chat journals itself (a pair through `a_initiate_chat`, a group chat through
        its manager), the server's facts merged into its definition; this returns once the
        chat is journaled.

        Raises:
            ChatExistsError: `chat_id` is taken.
            JournalError: the store refused the chat.
        """
        chat_id = chat_id or uuid.uuid4().hex
        token = secrets.token_urlsafe(24)
        spec = {"team": team.name, "message": message, "token_sha256": token_hash(token)}
        limits = {"max_turns": max_turns} if max_turns else {}
        if await self._exists(chat_id) or chat_id in self._tasks:  # no await between: no race
            raise ChatExistsError(f"Chat {chat_id!r} is journaled already.", chat_id=chat_id)
        agents = team.build()
        created = self.store.annotate(chat_id, {**spec, "server_limits": limits})
        task = self._launch(chat_id, agents, message, max_turns, resume=False)
        waiting = asyncio.ensure_future(created.wait())
        try:
            await asyncio.wait({waiting, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        if not created.is_set():
            self.store.forget(chat_id)
            await self.store.summary(chat_id)  # raises what stopped the chat being made
        return chat_id, token

    async def _exists(self, chat_id: str) -> bool:
        try:
            await self.store.summary(chat_id)
        except ChatNotFoundError:
            return False
        return True

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
        return True

    def _launch(
        self,
        chat_id: str,
        agents: tuple[ConversableAgent, ConversableAgent],
        message: str,
        max_turns: int | None,
        *,
        resume: bool,
    ) -> asyncio.Task[None]:
        assert self._group is not None, "the runner is not running"
        task = self._group.create_task(self._drive(chat_id, agents, message, max_turns, resume))
        self._tasks[chat_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(chat_id, None))
        return task

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
                    limits = spec.get("server_limits", definition.limits)
                    self._launch(
                        summary.chat_id,
                        team.build(),
                        str(spec.get("message", "")),
                        limits.get("max_turns"),
                        resume=True,
                    )
                cursor = page.next_cursor
                if cursor is None:
                    break

    async def _drive(
        self,
        chat_id: str,
        agents: tuple[ConversableAgent, ConversableAgent],
        message: str,
        max_turns: int | None,
        resume: bool,
    ) -> None:
        initiator, recipient = agents
        provider = JournalInputProvider(ChatJournal(self, chat_id))
        turns = (await self.store.summary(chat_id)).turns if resume else 0
        self._tokens[chat_id] = TokenBuffer(turns + 1)
        self._clock[chat_id] = time.monotonic()
        for agent in _agents(initiator, recipient):
            agent.input_provider = provider
            agent.token_sink = self._token_sink(chat_id, agent.name)
        try:
            if isinstance(recipient, GroupChatManager):
                await self._run_group(chat_id, initiator, recipient, message, resume)
            else:
                await self._run_pair(chat_id, initiator, recipient, message, max_turns)
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
                await self.store.set_status(
                    chat_id,
                    ChatStatus.FAILED,
                    termination=Termination(reason="error", detail=repr(exc)[:2000]),
                )
        finally:
            self._tokens.pop(chat_id, None)
            self._clock.pop(chat_id, None)
            self.notify(chat_id)

    async def _run_pair(
        self,
        chat_id: str,
        initiator: ConversableAgent,
        recipient: ConversableAgent,
        message: str,
        max_turns: int | None,
    ) -> None:
        """A pair through its own journal (`a_initiate_chat(chat_id=...)`): started, or resumed
        from its journaled turns with no model asked again (the message is then unused).

        A crashed server's lease is still held until it expires: resuming waits that long."""
        await _waiting_out_leases(
            lambda: initiator.a_initiate_chat(
                recipient,
                message=message,
                max_turns=max_turns,
                silent=True,
                chat_id=chat_id,
                store=self.store,
                runtime=self.runtime,
            ),
            chat_id,
            PAIR_LEASE_TTL,
        )

    async def _run_group(
        self,
        chat_id: str,
        initiator: ConversableAgent,
        manager: GroupChatManager,
        message: str,
        resume: bool,
    ) -> None:
        """The group chat through its manager's own journal: started, or resumed from it
        (`a_run(chat_id=...)`), so its speaker order and policy state go on.

        A crashed server's lease is still held until it expires: resuming waits that long."""
        await _waiting_out_leases(
            lambda: manager.a_run(
                None if resume else message,
                sender=initiator.name,
                chat_id=chat_id,
                store=self.store,
                runtime=self.runtime,
            ),
            chat_id,
            manager.lease_ttl,
        )


async def _waiting_out_leases(
    run: Callable[[], Awaitable[object]], chat_id: str, wait: float, *, tries: int = 3
) -> None:
    """Run a chat; while a crashed server's lease on it is still held, wait `wait` seconds (its
    TTL) and try again, up to `tries` times in all.

    Raises:
        LeaseHeldError: the lease was still held at the last try.
    """
    for attempt in range(tries):
        try:
            await run()
            return
        except LeaseHeldError:
            if attempt == tries - 1:
                raise
            log.info("chat.lease_held", chat_id=chat_id, wait=wait)
            await asyncio.sleep(wait)
