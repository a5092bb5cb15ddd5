"""The actor cell: one AgentId's mailbox, live instance and current turn.

Every turn runs through `Cell.turns`, whether a drain task takes the message from the mailbox
or the sender's own task runs it inline; the turn settles its delivery through the runtime's
`Ledger.settle`, so both paths share one set of rules for results, errors and cancellation.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from moot.observability import within as within_trace

from ._agent import Agent, AgentContext
from ._deadletters import DeadLetterReason
from ._envelope import Envelope, Kind
from ._errors import (
    AgentStoppedError,
    DeadlineExceededError,
    HandlerError,
    NoHandlerError,
    RegistrationError,
    RestartBudgetExceededError,
    RuntimeStoppedError,
    SupervisionError,
)
from ._interceptors import DropMessage
from ._ledger import ERRORED, HANDLED
from ._mailbox import Mailbox
from ._supervision import Directive, RestartBudget

if TYPE_CHECKING:
    from ._agent import HandlerFn
    from ._ids import AgentId
    from ._runtime import AgentType, Runtime

log = structlog.get_logger("moot.runtime")


class Passivate:
    """Housekeeping item the reaper puts in an idle cell's mailbox, so passivation takes a turn."""

    __slots__ = ("since",)

    def __init__(self, since: float | None) -> None:
        self.since = since  # the idle mark the reaper saw; None when asked for by `retire`


class Cell:
    """The runtime's cell for one AgentId: mailbox, live instance (if any), current turn."""

    __slots__ = (
        "agent",
        "budget",
        "cancel_target",
        "cancels",
        "current",
        "ended",
        "id",
        "idle_since",
        "inline",
        "lingering",
        "mailbox",
        "retired",
        "runtime",
        "stopped",
        "task",
        "type",
    )

    def __init__(self, agent_id: AgentId, agent_type: AgentType, runtime: Runtime) -> None:
        self.id = agent_id
        self.type = agent_type
        self.runtime = runtime
        self.mailbox: Mailbox[Envelope | Passivate] = Mailbox(
            agent_type.mailbox_capacity, agent_id, self.wake, clock=runtime.clock
        )
        self.agent: Agent | None = None
        self.task: asyncio.Task[None] | None = None  # the task running a turn (drain or inline)
        self.current: Envelope | None = None  # the envelope of the turn in progress
        self.ended: asyncio.Future[None] | None = None  # resolved when an interrupted inline
        # turn ends (a drain task is awaited itself)
        self.cancel_target: Envelope | None = None  # the turn we cancelled on purpose
        self.cancels = 0  # how often we cancelled that turn's task (each needs an uncancel)
        self.budget: RestartBudget | None = None
        self.idle_since: float | None = None
        self.stopped = False
        self.retired = False
        self.inline = False  # a sender's task is running this cell's turn (see turns)
        self.lingering = False  # the drain task waits out its last tick with nothing queued

    # ----------------------------------------------------------------- scheduling

    def wake(self) -> None:
        """Mailbox callback: it went from empty to non-empty; make sure a task drains it."""
        if self.task is None:
            # The drain task runs `turns` itself (no wrapper coroutine: one frame less per
            # busy cell); its `finally` hands off or starts the idle clock (`_after_drain`).
            self.task = asyncio.get_running_loop().create_task(self.turns(None))

    def _after_drain(self) -> None:
        """The drain task ends: keep going in a fresh task if a message raced the exit, else
        start the idle clock."""
        self.task = None
        rt = self.runtime
        if not self.stopped and not self.retired and not rt._halting and len(self.mailbox):
            self.wake()
        elif self.agent is not None and self.type.idle_timeout is not None:
            rt._became_idle(self)

    def _after_inline(self) -> None:
        """Hand messages queued meanwhile to a drain task, or start the idle clock."""
        if self.stopped or self.retired:
            return
        if len(self.mailbox):
            if not self.runtime._halting:
                self.wake()
        elif self.agent is not None and self.type.idle_timeout is not None:
            self.runtime._became_idle(self)

    # ----------------------------------------------------------------- the turn

    async def turns(self, inline: Envelope | None) -> Any:
        """The one turn path. With `inline`, run that envelope's turn alone in the sender's own
        task and return its result (or raise its typed error): the cell is live, idle and has
        nothing queued, so no other message can be ahead of it, and `task` marks the cell busy
        meanwhile. Without, run the mailbox's turns until it stays empty for a tick (the drain
        loop). Each turn settles its delivery: a request's reply gets the result or a typed
        error, a failed tell is dead-lettered and supervised. Re-raises only what must go on
        up: a cancellation of the task itself, KeyboardInterrupt and SystemExit.

        The loop, the turn and the inline set-up share one frame because this is the hot path:
        a coroutine more per turn costs a tenth of the request/reply and fan-out throughput.
        For the same reason the drain loop settles handled tells in batches (`done`), flushed
        before it waits for anything but a handler, and when it leaves: while a handler runs,
        earlier handled tells may still count as in flight (never the reverse), so the ledger's
        sum holds, and `stop` never sees a drain that has not happened.
        """
        mailbox = self.mailbox
        ledger = self.runtime.ledger
        settle = ledger.settle
        chain = self.runtime._handle_chain
        timer = None
        done = 0  # handled tells not yet settled (see above)
        me = asyncio.current_task()
        if inline is not None:
            ledger.accept()
            self.lingering = False  # take over from a lingering drain task (it then just ends)
            self.task = me
            self.inline = True
            if inline.deadline is not None:
                timer = self.runtime.clock.call_at(inline.deadline, self.expire, inline)
        try:
            while True:
                if inline is not None:
                    env = inline
                    reply = env.reply
                    agent = self.agent
                    assert agent is not None
                else:
                    items = mailbox._items
                    item: Envelope | Passivate | None
                    if items is not None and len(items) > 1 and mailbox._putters is None:
                        item = items.popleft()  # `get_nowait` inlined for a backlog (fan-out)
                    else:
                        item = mailbox.get_nowait()
                    items = None  # hold no deque across an await: an empty mailbox frees it
                    if item is None:
                        if done:
                            settle(HANDLED, done)
                            done = 0
                        # Linger one scheduling tick: a request/reply partner usually sends its
                        # next message now, and that saves starting a new task for it. A
                        # sender may meanwhile run its turn inline (`lingering`): then this
                        # task no longer owns the cell and ends without touching it.
                        self.lingering = True
                        await asyncio.sleep(0)
                        if self.task is not me:
                            return None
                        self.lingering = False
                        item = mailbox.get_nowait()
                        if item is None:
                            return None
                    if isinstance(item, Passivate):
                        if done:
                            settle(HANDLED, done)
                            done = 0
                        await self.passivate(item)
                        if self.retired:
                            return None
                        continue
                    env = item
                    reply = env.reply
                    if reply is not None and reply.done():  # the caller gave up
                        settle(ERRORED)
                        continue
                    agent = self.agent
                    if agent is None:
                        if done:
                            settle(HANDLED, done)
                            done = 0
                        agent = await self.activate_for(env)
                    if agent is None:  # activation failed; `env` is settled
                        if self.stopped:
                            return None
                        continue
                # A stopped cell's mailbox is closed (see `interrupt`), so no turn starts here
                # after stop or stop_agent.
                self.current = env
                try:
                    if chain is None:
                        message = env.message
                        fn = agent._moot_dispatch.get(type(message)) or _handler(agent, message)
                        if env.trace is None:
                            result = await fn(agent, message, env)
                        else:  # under the sender's span (moot.observability)
                            result = await within_trace(env.trace, fn(agent, message, env))
                    else:
                        addressed = (
                            env if env.recipient is not None else replace(env, recipient=self.id)
                        )
                        if env.trace is None:
                            result = await chain(addressed)
                        else:
                            result = await within_trace(env.trace, chain(addressed))
                except BaseException as exc:
                    self.current = None
                    if self._turn_failed(env, exc):
                        raise
                else:
                    self.current = None
                    if self.cancel_target is env:  # the handler swallowed our targeted cancel
                        self._uncancel()
                    if reply is None:
                        done += 1
                    elif reply.done():  # the deadline, stop or stop_agent answered first
                        settle(ERRORED)
                    elif inline is not None:  # the caller is this task: hand it the result
                        settle(HANDLED)
                        return result
                    else:
                        reply.set_result(result)
                        settle(HANDLED)
                if inline is not None:
                    assert reply is not None
                    return reply.result()  # the result, or the typed error the turn settled
        finally:
            if done:
                settle(HANDLED, done)
            if inline is not None:
                if timer is not None:
                    timer.cancel()
                self.task = None
                self.inline = False
                ended = self.ended
                if ended is not None:
                    self.ended = None
                    ended.set_result(None)
                self._after_inline()
            elif self.task is me:  # (not when an inline turn took over while lingering)
                self.lingering = False
                self._after_drain()

    def _turn_failed(self, env: Envelope, exc: BaseException) -> bool:
        """Settle a turn that raised. Returns True when the exception must propagate."""
        rt = self.runtime
        targeted = self.cancel_target is env
        if targeted:
            self._uncancel()
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if targeted and not (self.inline and task is not None and task.cancelling()):
                if env.reply is not None:  # our own cancel: the reply holds the error already
                    rt.ledger.settle(ERRORED)
                else:  # a tell interrupted by stop or stop_agent
                    reason = (
                        DeadLetterReason.RUNTIME_STOPPING
                        if rt._halting
                        else DeadLetterReason.AGENT_STOPPED
                    )
                    rt._dead_letter(env, self.id, reason, exc)
                return False
            self._fail_stopping(env)  # cancelled from outside this turn
            return True
        if isinstance(exc, _NoHandler):
            error = _no_handler_error(env, self.id)
            rt._fail(env, self.id, error, None, DeadLetterReason.NO_HANDLER)
        elif isinstance(exc, DropMessage):
            rt._dropped(env, self.id, exc.reason)
        elif isinstance(exc, Exception):
            rt._fail(env, self.id, _handler_error(self.id, exc), exc)
            if env.kind is not Kind.SEND:  # a tell (even one a transport awaits) is supervised
                self.supervise(exc)
        else:
            return self._interrupted_by(env, exc)
        return False

    def _interrupted_by(self, env: Envelope, exc: BaseException) -> bool:
        """KeyboardInterrupt or SystemExit in a handler goes on up, as trio lets it: a waiting
        caller raises it in its own task (so `asyncio.run` ends with it, not with a cancel);
        with nobody waiting, the turn's own task raises it. Returns True to re-raise here."""
        reply = env.reply
        if reply is not None and not reply.done() and not self.inline:
            reply.set_exception(exc)
            self.runtime.ledger.settle(ERRORED)
            return False
        self._fail_stopping(env)
        return True

    def _fail_stopping(self, env: Envelope) -> None:
        """The turn's task itself is going away: the inline caller was cancelled, or the drain
        task was (the runtime is stopping)."""
        reply = env.reply
        if self.inline and reply is not None:
            if not reply.done():
                reply.cancel()
            self.runtime.ledger.settle(ERRORED)
            return
        error = RuntimeStoppedError("the runtime is stopping")
        self.runtime._fail(env, self.id, error, None)

    def _uncancel(self) -> None:
        self.cancel_target = None
        task = asyncio.current_task()
        if task is not None:
            for _ in range(self.cancels):
                task.uncancel()
        self.cancels = 0

    def expire(self, env: Envelope) -> None:
        """Deadline timer: answer the caller with `DeadlineExceededError`, stop the handler."""
        reply = env.reply
        if reply is not None and not reply.done():
            reply.set_exception(
                DeadlineExceededError(
                    f"no reply from {self.id} before the deadline", agent_id=self.id
                )
            )
        self.abandon(env)
        if self.inline:  # the caller's own task runs the handler: it must let go now
            self._keep_cancelling(env)

    def abandon(self, env: Envelope) -> None:
        """The caller stopped waiting: cancel the handler if it is working on `env` right now."""
        if self.current is env and self.task is not None and self.cancel_target is None:
            self.cancel_target = env
            self.cancels = 1
            self.task.cancel()

    def _keep_cancelling(self, env: Envelope) -> None:
        """Cancel `env`'s turn again at each loop round until it ends, as a trio cancel scope
        stays cancelled: a handler that swallows `CancelledError`, or awaits in its cleanup,
        cannot hold its task (and so an inline caller) past the deadline or a stop. A handler
        that swallows in a loop spins until it gives up; `asyncio.shield` protects cleanup."""
        task = self.task
        if task is not None:  # the clock may fire this outside the loop (a test's ManualClock)
            task.get_loop().call_soon(self._cancel_again, env)

    def _cancel_again(self, env: Envelope) -> None:
        task = self.task
        if self.current is not env or self.cancel_target is not env or task is None:
            return  # the turn ended
        task.cancel()
        self.cancels += 1
        task.get_loop().call_soon(self._cancel_again, env)

    def interrupt(self, error: Exception, reason: DeadLetterReason) -> asyncio.Future[None] | None:
        """Stop the cell: settle what is queued (`close`), then cancel the running turn (at
        every await until it ends); its caller gets `error`. Returns what to await for the
        turn to end: the drain task, or for an inline turn (which runs in its sender's task)
        a future resolved when it ends."""
        self.close(reason)  # a closed mailbox: the drain loop starts no turn after this one
        task = self.task
        if task is None or task is asyncio.current_task():
            return None
        ended: asyncio.Future[None] = task
        if self.inline:
            if self.ended is None:
                self.ended = asyncio.get_running_loop().create_future()
            ended = self.ended
        env = self.current
        if env is None:  # between turns (activating, lingering): the drain task just ends
            if not self.inline:
                task.cancel()
            return ended
        if self.cancel_target is None:
            if env.reply is not None and not env.reply.done():
                env.reply.set_exception(error)
            self.cancel_target = env
            self.cancels = 1
            task.cancel()
            self._keep_cancelling(env)
        return ended

    # ----------------------------------------------------------------- lifecycle of the instance

    async def activate_for(self, env: Envelope) -> Agent | None:
        """Build the agent for its first message; on failure settle `env` and return None."""
        rt = self.runtime
        try:
            return await self.activate()
        except asyncio.CancelledError:
            rt._fail(env, self.id, RuntimeStoppedError("the runtime is stopping"), None)
            raise
        except Exception as exc:
            log.error("agent.activation_failed", agent=str(self.id), error=repr(exc))
            rt._fail(env, self.id, _handler_error(self.id, exc), exc)
            self.supervise(exc)
            return None

    async def activate(self) -> Agent:
        rt = self.runtime
        made = self.type.factory(AgentContext(self.id, rt))
        agent = await made if inspect.isawaitable(made) else made
        if not isinstance(agent, Agent):
            raise RegistrationError(
                f"the factory of {self.type.name!r} returned {type(agent).__name__}, not an Agent"
            )
        state = await rt.state_store.load(self.id)
        await agent.on_activate(state)
        self.agent = agent
        return agent

    async def save(self) -> None:
        """Let the instance save its state, and drop it."""
        agent = self.agent
        self.agent = None
        if agent is None:
            return
        try:
            state = await agent.on_passivate()
            if state is not None:
                await self.runtime.state_store.save(self.id, state)
        except Exception as exc:
            log.error("agent.passivate_failed", agent=str(self.id), error=repr(exc))

    async def passivate(self, item: Passivate) -> None:
        if len(self.mailbox):
            return  # it got busy again after the reaper (or `retire`) looked
        if item.since is not None and (self.idle_since != item.since or self.agent is None):
            return
        await self.save()
        cells = self.runtime._actors
        if not len(self.mailbox) and cells.get(self.id) is self:
            # Hand over: close the mailbox, so a sender still waiting for room here moves on to
            # the successor cell instead of reopening this one (a second live instance).
            del cells[self.id]
            self.retired = True
            self.mailbox.close()

    def supervise(self, error: Exception) -> None:
        """Apply the type's supervisor to a failed tell (or activation)."""
        strategy = self.type.supervisor
        directive = strategy.decide(self.id, error)
        if directive is Directive.RESTART:
            if self.budget is None:
                self.budget = RestartBudget()
            if self.budget.try_spend(self.runtime.clock.now(), strategy):
                log.warning("agent.restarted", agent=str(self.id), error=repr(error))
                self.agent = None  # the factory builds a fresh instance for the next message
                return
            escalation: SupervisionError = RestartBudgetExceededError(
                f"agent {self.id} failed more than {strategy.max_restarts} times"
                f" in {strategy.period} s",
                agent_id=self.id,
                restarts=len(self.budget.times),
            )
            escalation.__cause__ = error
            self._escalate(escalation)
        elif directive is Directive.STOP:
            log.warning("agent.stopped", agent=str(self.id), error=repr(error))
            self.agent = None
            self.close(DeadLetterReason.AGENT_STOPPED)
        elif directive is Directive.ESCALATE:
            escalation = SupervisionError(f"agent {self.id} failed and escalated: {error!r}")
            escalation.__cause__ = error
            self._escalate(escalation)

    def _escalate(self, error: SupervisionError) -> None:
        log.error("agent.escalated", agent=str(self.id), error=str(error))
        self.agent = None
        self.close(DeadLetterReason.AGENT_STOPPED)
        self.runtime._escalated(error)

    def close(self, reason: DeadLetterReason) -> None:
        """Stop the cell: settle everything still queued for it, refuse what comes later."""
        self.stopped = True
        rt = self.runtime
        for item in self.mailbox.close():
            if type(item) is Passivate:
                continue
            assert isinstance(item, Envelope)
            if reason is DeadLetterReason.RUNTIME_STOPPING:
                error: Exception = RuntimeStoppedError(
                    "the runtime stopped before this message was handled", agent_id=self.id
                )
            else:
                error = AgentStoppedError(f"agent {self.id} has stopped", agent_id=self.id)
            rt._fail(item, self.id, error, None, reason)


class _NoHandler(NoHandlerError):
    def __init__(self) -> None:
        super().__init__("the agent has no handler for this message type")


def _handler(agent: Agent, message: Any) -> HandlerFn:
    """The agent's handler for `message` (the turn tries the dispatch cache first).

    Raises:
        _NoHandler: the agent has none; the turn settles the message as unhandled.
    """
    fn = type(agent).handler_for(type(message))
    if fn is None:
        raise _NoHandler
    return fn


def _handler_error(agent_id: AgentId, exc: BaseException) -> HandlerError:
    error = HandlerError(f"handler of {agent_id} raised {exc!r}", agent_id=agent_id)
    error.__cause__ = exc
    return error


def _no_handler_error(env: Envelope, agent_id: AgentId) -> NoHandlerError:
    return NoHandlerError(
        f"agent {agent_id} has no handler for {type(env.message).__name__}", agent_id=agent_id
    )
