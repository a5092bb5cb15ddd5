"""The runtime: registers agent types, routes envelopes to mailboxes, runs one turn at a time.

Every accepted delivery is settled in exactly one place (`_settle_*`): handled, answered with a
typed error, or dead-lettered with a reason. `statistics()` exposes the counts, and
`accepted == handled + errored + dead_lettered + in_flight` holds at every await point.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import itertools
import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog

from ._agent import Agent, AgentContext, AgentFactory, HandlerFn
from ._clock import AsyncioClock, Clock, TimerHandle, resolve_future
from ._deadletters import DeadLetter, DeadLetterLog, DeadLetterReason, DeadLetterSink
from ._envelope import Envelope, Handler, Kind
from ._errors import (
    AgentNotFoundError,
    AgentStoppedError,
    DeadlineExceededError,
    HandlerError,
    InvalidIdError,
    LifecycleError,
    MailboxFullError,
    MessageDroppedError,
    NoHandlerError,
    RegistrationError,
    RestartBudgetExceededError,
    RuntimeStoppedError,
    SupervisionError,
)
from ._ids import AgentId, TopicId
from ._interceptors import DropMessage, Interceptor, chain
from ._mailbox import Mailbox, MailboxStatistics
from ._serialization import MessageCodec
from ._state import InMemoryStateStore, StateStore
from ._supervision import Directive, Restart, RestartBudget, SupervisorStrategy
from ._transport import InProcessTransport, Transport

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._subscriptions import Subscription

log = structlog.get_logger("moot.runtime")

_INLINE_YIELD_EVERY = 16  # inline turns in a row before a send yields to the event loop
_INLINE_MAX_DEPTH = 24  # inline turns nested in one task (each adds stack frames) before a hop
_inline_depth: contextvars.ContextVar[int] = contextvars.ContextVar("moot_inline_depth", default=0)


class RuntimeState(enum.Enum):
    """The runtime's lifecycle."""

    CREATED = "created"  # built; agent types may be registered; nothing runs yet
    RUNNING = "running"  # accepting and delivering messages
    STOPPING = "stopping"  # refusing new messages, draining mailboxes within the stop deadline
    STOPPED = "stopped"  # every accepted message settled; cannot be started again


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentType:
    """A registered agent type: how to build instances and how to run them."""

    name: str
    factory: AgentFactory
    mailbox_capacity: int
    supervisor: SupervisorStrategy
    idle_timeout: float | None  # passivate an instance idle this long (None: never)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeStatistics:
    """Delivery counts since start. A publish counts once per recipient."""

    accepted: int  # deliveries the runtime took responsibility for
    handled: int  # ... that a handler completed
    errored: int  # ... whose caller got a typed error instead of a result
    dead_lettered: int  # ... that became dead letters (fire-and-forget failures)
    rejected: int  # messages refused at the door (caller got the error at once; not accepted)
    in_flight: int  # accepted and not yet settled
    live_agents: int  # agent instances in memory


class _Passivate:
    """Housekeeping item the reaper puts in an idle actor's mailbox, so passivation takes a turn."""

    __slots__ = ("since",)

    def __init__(self, since: float | None) -> None:
        self.since = since  # the idle mark the reaper saw; None when asked for by `retire`


class _Actor:
    """The runtime's cell for one AgentId: mailbox, live instance (if any), current turn."""

    __slots__ = (
        "agent",
        "budget",
        "cancel_target",
        "current",
        "id",
        "idle_since",
        "inline",
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
        self.mailbox: Mailbox[Envelope | _Passivate] = Mailbox(
            agent_type.mailbox_capacity, agent_id, self.wake, clock=runtime.clock
        )
        self.agent: Agent | None = None
        self.task: asyncio.Task[None] | None = None
        self.current: Envelope | None = None
        self.cancel_target: Envelope | None = None
        self.budget: RestartBudget | None = None
        self.idle_since: float | None = None
        self.stopped = False
        self.retired = False
        self.inline = False  # a caller's task is running this actor's turn (see _send_inline)

    def wake(self) -> None:
        """Mailbox callback: it went from empty to non-empty."""
        self.runtime._ready(self)


class Runtime:
    """An in-process actor runtime (or one node of a distributed one, given a transport).

    Use it as `async with Runtime() as rt:`; register agent types before or after start.
    It runs on asyncio.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        transport: Transport | None = None,
        interceptors: Sequence[Interceptor] = (),
        dead_letter_sink: DeadLetterSink | None = None,
        state_store: StateStore | None = None,
        default_mailbox_capacity: int = 1000,
        codec: MessageCodec | None = None,
        require_serializable: bool = False,
        stop_timeout: float = 5.0,
        on_escalation: Callable[[SupervisionError], None] | None = None,
    ) -> None:
        self.clock = clock or AsyncioClock()
        self.transport = transport or InProcessTransport()
        self._local_only = type(self.transport) is InProcessTransport
        self.interceptors = tuple(interceptors)
        self.dead_letters = DeadLetterLog()
        self._extra_sink = dead_letter_sink
        self.state_store = state_store or InMemoryStateStore()
        self.default_mailbox_capacity = default_mailbox_capacity
        self.codec = codec or MessageCodec()
        self.require_serializable = require_serializable
        self.stop_timeout = stop_timeout
        self.escalations: list[SupervisionError] = []
        self._on_escalation = on_escalation
        self._state = RuntimeState.CREATED
        self._types: dict[str, AgentType] = {}
        self._subscriptions: list[Subscription] = []
        self._routes: dict[str, tuple[str, ...]] = {}
        self._recipients: dict[TopicId, tuple[AgentId, ...]] = {}
        self._actors: dict[AgentId, _Actor] = {}
        self._idle: dict[str, OrderedDict[AgentId, float]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._reaper_wake: asyncio.Future[None] | None = None
        self._reaper_target: float | None = None
        self._drained: asyncio.Event | None = None
        self._inline_streak = 0  # inline turns since the last forced yield
        self._halting = False  # stop's drain deadline passed: cancel, never restart a runner
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._accepted = self._handled = self._errored = 0
        self._dead = self._rejected = self._in_flight = 0
        self._send_chain: Handler | None = None
        self._tell_chain: Handler | None = None
        self._publish_chain: Handler | None = None
        self._handle_chain: Handler | None = None
        if self.interceptors:
            self._send_chain = chain(self.interceptors, "on_send", self._send_core)
            self._tell_chain = chain(self.interceptors, "on_send", self._tell_core)
            self._publish_chain = chain(self.interceptors, "on_publish", self._publish_core)
            self._handle_chain = chain(self.interceptors, "on_handle", self._handle_core)

    # ----------------------------------------------------------------- lifecycle

    @property
    def state(self) -> RuntimeState:
        """Where the runtime is in its lifecycle."""
        return self._state

    async def start(self) -> None:
        """Begin accepting messages.

        Raises:
            LifecycleError: the runtime is already running or has been stopped.
        """
        if self._state is RuntimeState.RUNNING:
            raise LifecycleError("Cannot start a runtime that is already running.")
        if self._state is not RuntimeState.CREATED:
            raise LifecycleError("Cannot start a runtime that has been stopped.")
        await self.transport.start(self)
        self._state = RuntimeState.RUNNING
        self._ensure_reaper()

    async def stop(self, *, timeout: float | None = None) -> None:
        """Stop gracefully: refuse new messages, let mailboxes drain for `timeout` seconds, then
        cancel what is left (each pending request gets `RuntimeStoppedError`) and passivate every
        live agent so it can save its state. Idempotent.
        """
        if self._state in (RuntimeState.STOPPING, RuntimeState.STOPPED):
            return
        if self._state is RuntimeState.CREATED:
            self._state = RuntimeState.STOPPED
            return
        self._state = RuntimeState.STOPPING
        budget = self.stop_timeout if timeout is None else timeout
        if self._in_flight:
            self._drained = asyncio.Event()
            try:
                async with asyncio.timeout(budget):
                    await self._drained.wait()
            except TimeoutError:
                log.warning("runtime.stop_deadline", in_flight=self._in_flight)
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        self._halting = True
        stopping = RuntimeStoppedError("the runtime stopped before this message was handled")
        tasks = [t for a in self._actors.values() if (t := self._interrupt(a, stopping))]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for actor in list(self._actors.values()):
            self._close_actor(actor, DeadLetterReason.RUNTIME_STOPPING)
        for actor in list(self._actors.values()):
            if actor.agent is not None:
                await self._save(actor)
        self._state = RuntimeState.STOPPED
        await self.transport.aclose()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        if self.escalations and exc_info[0] is None:
            raise self.escalations[0]

    # ----------------------------------------------------------------- registration

    def register(
        self,
        agent_type: str,
        factory: AgentFactory,
        *,
        mailbox_capacity: int | None = None,
        supervisor: SupervisorStrategy | None = None,
        idle_timeout: float | None = None,
    ) -> AgentType:
        """Register an agent type; instances are built by `factory` on their first message.

        Raises:
            InvalidIdError: the type name is not a valid agent type.
            RegistrationError: the type is already registered, or an argument is out of range.
        """
        AgentId(agent_type)  # validates the name
        if agent_type in self._types:
            raise RegistrationError(f"agent type {agent_type!r} is already registered")
        if not callable(factory):
            raise RegistrationError(f"the factory for {agent_type!r} is not callable")
        capacity = self.default_mailbox_capacity if mailbox_capacity is None else mailbox_capacity
        if capacity < 1:
            raise RegistrationError(f"mailbox_capacity must be at least 1, got {capacity}")
        if idle_timeout is not None and idle_timeout <= 0:
            raise RegistrationError(f"idle_timeout must be positive, got {idle_timeout}")
        registered = AgentType(
            name=agent_type,
            factory=factory,
            mailbox_capacity=capacity,
            supervisor=supervisor or Restart(),
            idle_timeout=idle_timeout,
        )
        if isinstance(factory, type) and issubclass(factory, Agent):
            factory.handled_types()  # resolve handler annotations now: errors at registration
        self._types[agent_type] = registered
        if idle_timeout is not None:
            self._idle[agent_type] = OrderedDict()
            self._ensure_reaper()
        return registered

    def agent_types(self) -> frozenset[str]:
        """The agent types registered in this runtime."""
        return frozenset(self._types)

    def subscribe(self, subscription: Subscription) -> None:
        """Route matching topics to an agent type.

        Raises:
            RegistrationError: the same subscription exists already.
        """
        if subscription in self._subscriptions:
            raise RegistrationError(f"{subscription!r} is already registered")
        self._subscriptions.append(subscription)
        self._routes.clear()
        self._recipients.clear()

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a subscription.

        Raises:
            RegistrationError: no such subscription.
        """
        try:
            self._subscriptions.remove(subscription)
        except ValueError:
            raise RegistrationError(f"{subscription!r} is not registered") from None
        self._routes.clear()
        self._recipients.clear()

    # ----------------------------------------------------------------- verbs

    async def send(
        self,
        message: Any,
        recipient: AgentId,
        *,
        sender: AgentId | None = None,
        timeout: float | None = None,
        fail_fast: bool = False,
        correlation_id: str | None = None,
    ) -> Any:
        """Deliver `message` to `recipient` and return its handler's result.

        With `fail_fast`, a full mailbox raises at once; otherwise the sender waits for room
        within the same deadline. Cancelling the caller cancels the handler's work.

        Raises:
            HandlerError: the handler raised (the original is `__cause__`).
            DeadlineExceededError: no result within `timeout` seconds.
            DeliveryError: not delivered (no such type, no handler, full mailbox, stopped, dropped).
        """
        env = self._envelope(
            message, Kind.SEND, recipient, None, sender, timeout, fail_fast, correlation_id
        )
        if self._send_chain is None:
            if self._local_only:  # one coroutine frame fewer per request in flight
                return await self._send_local(env)
            return await self._send_core(env)
        try:
            return await self._send_chain(env)
        except DropMessage as drop:
            error = self._dropped_at_door(env, drop.reason)
            raise error from None

    async def tell(
        self,
        message: Any,
        recipient: AgentId,
        *,
        sender: AgentId | None = None,
        fail_fast: bool = False,
        correlation_id: str | None = None,
    ) -> None:
        """Deliver `message` to `recipient` without waiting for it to be handled.

        Raises:
            DeliveryError: refused at the door (no such type, full mailbox with `fail_fast`, ...).
        """
        env = self._envelope(
            message, Kind.TELL, recipient, None, sender, None, fail_fast, correlation_id
        )
        if self._tell_chain is None:
            await self._tell_core(env)
        else:
            await self._intercepted(self._tell_chain, env)

    async def publish(
        self,
        message: Any,
        topic: TopicId,
        *,
        sender: AgentId | None = None,
        fail_fast: bool = False,
        correlation_id: str | None = None,
    ) -> None:
        """Deliver `message` to every agent subscribed to `topic` (not back to its sender).

        Each recipient's key is `topic.source`. Without subscribers, the message is dead-lettered.
        With `fail_fast`, a recipient whose mailbox is full gets a dead letter instead of a wait.
        """
        if not isinstance(topic, TopicId):
            raise InvalidIdError(f"expected a TopicId, got {type(topic).__name__}")
        env = self._envelope(
            message, Kind.PUBLISH, None, topic, sender, None, fail_fast, correlation_id
        )
        if self._publish_chain is None:
            await self._publish_core(env)
        else:
            await self._intercepted(self._publish_chain, env)

    async def _intercepted(self, chain: Handler, env: Envelope) -> None:
        """A tell or publish through its interceptor chain; a drop there becomes a dead letter."""
        try:
            await chain(env)
        except DropMessage as drop:
            self._dropped_at_door(env, drop.reason)

    def statistics(self) -> RuntimeStatistics:
        """Delivery counts so far (see `RuntimeStatistics`)."""
        return RuntimeStatistics(
            accepted=self._accepted,
            handled=self._handled,
            errored=self._errored,
            dead_lettered=self._dead,
            rejected=self._rejected,
            in_flight=self._in_flight,
            live_agents=sum(1 for a in self._actors.values() if a.agent is not None),
        )

    def mailbox_statistics(self, agent_id: AgentId) -> MailboxStatistics | None:
        """Depth, capacity and waiting senders of one agent's mailbox; None if it has none."""
        actor = self._actors.get(agent_id)
        return None if actor is None else actor.mailbox.statistics()

    def is_active(self, agent_id: AgentId) -> bool:
        """True while an instance for `agent_id` is in memory."""
        actor = self._actors.get(agent_id)
        return actor is not None and actor.agent is not None

    async def stop_agent(self, agent_id: AgentId) -> None:
        """Stop one agent now: its queued requests fail with `AgentStoppedError`, queued tells
        are dead-lettered, and later messages to it are refused."""
        actor = self._actors.get(agent_id)
        if actor is None:
            reg = self._types.get(agent_id.type)
            if reg is None:
                raise AgentNotFoundError(f"no agent type {agent_id.type!r}", agent_id=agent_id)
            actor = self._actors[agent_id] = _Actor(agent_id, reg, self)
        actor.stopped = True  # before cancelling, so the runner does not restart itself
        task = self._interrupt(
            actor, AgentStoppedError(f"agent {agent_id} was stopped", agent_id=agent_id)
        )
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        self._close_actor(actor, DeadLetterReason.AGENT_STOPPED)
        await self._save(actor)

    def retire(self, agent_id: AgentId) -> None:
        """Passivate `agent_id` after the messages already queued for it, and forget it: its
        state is saved, and its next message (if any) activates a fresh instance with that state.
        Use it when a key's work is done (e.g. a finished chat) so idle keys cost nothing."""
        actor = self._actors.get(agent_id)
        if actor is not None and not actor.stopped and not actor.retired:
            actor.mailbox.put_system(_Passivate(None))

    # ----------------------------------------------------------------- TransportHost

    async def deliver(self, envelope: Envelope) -> Any:
        """Deliver an envelope that arrived from a transport to a local agent."""
        if envelope.kind is Kind.SEND:
            return await self._send_local(envelope)
        await self._tell_local(envelope)
        return None

    def reject_inbound(
        self,
        envelope: Envelope,
        reason: DeadLetterReason,
        error: BaseException | None,
        detail: str = "",
    ) -> None:
        """Settle an envelope a transport received but could not deliver (e.g. a message type
        unknown here): it counts as accepted and becomes a dead letter with `reason`."""
        self._accept_one()
        self._dead_letter(envelope, envelope.recipient, reason, error, detail)

    # ----------------------------------------------------------------- internals: accepting

    def _envelope(
        self,
        message: Any,
        kind: Kind,
        recipient: AgentId | None,
        topic: TopicId | None,
        sender: AgentId | None,
        timeout: float | None,
        fail_fast: bool,
        correlation_id: str | None,
    ) -> Envelope:
        if self._state is not RuntimeState.RUNNING:
            self._rejected += 1
            raise RuntimeStoppedError(
                f"Cannot deliver a message: the runtime is {self._state.value}.",
                agent_id=recipient,
            )
        if recipient is not None and type(recipient) is not AgentId:
            self._rejected += 1
            raise InvalidIdError(f"expected an AgentId, got {type(recipient).__name__}")
        if self.require_serializable:
            try:
                self.codec.check(message)
            except Exception:
                self._rejected += 1
                raise
        message_id = f"{self._id_prefix}-{next(self._ids)}"
        deadline = None
        if sender is not None:
            parent = self._actors.get(sender)
            current = parent.current if parent is not None else None
            if current is not None:
                correlation_id = correlation_id or current.correlation_id
                deadline = current.deadline
        if timeout is not None:
            own = self.clock.now() + timeout
            deadline = own if deadline is None else min(deadline, own)
        return Envelope(
            message=message,
            kind=kind,
            message_id=message_id,
            correlation_id=correlation_id or message_id,
            recipient=recipient,
            topic=topic,
            sender=sender,
            deadline=deadline,
            reply=asyncio.get_running_loop().create_future() if kind is Kind.SEND else None,
            fail_fast=fail_fast,
        )

    def _cell(self, agent_id: AgentId) -> _Actor:
        actor = self._actors.get(agent_id)
        if actor is None:
            reg = self._types.get(agent_id.type)
            if reg is None:
                raise AgentNotFoundError(
                    f"no agent type {agent_id.type!r} is registered", agent_id=agent_id
                )
            actor = self._actors[agent_id] = _Actor(agent_id, reg, self)
        return actor

    async def _enqueue(self, actor: _Actor, env: Envelope) -> None:
        """Put `env` in `actor`'s mailbox and count it accepted; raises (rejected) otherwise."""
        if actor.stopped:
            raise AgentStoppedError(f"agent {actor.id} has stopped", agent_id=actor.id)
        mailbox = actor.mailbox
        if env.fail_fast or len(mailbox) < mailbox.capacity:
            mailbox.put_nowait(env)
        else:
            await mailbox.put(env, deadline=env.deadline)
        self._accepted += 1
        self._in_flight += 1

    async def _send_core(self, env: Envelope) -> Any:
        recipient = env.recipient
        assert recipient is not None
        if self._local_only or self.transport.is_local(recipient):
            return await self._send_local(env)
        return await self.transport.send(env)

    async def _send_local(self, env: Envelope) -> Any:
        recipient = env.recipient
        assert recipient is not None
        assert env.reply is not None
        try:
            actor = self._actors.get(recipient) or self._cell(recipient)
        except BaseException:
            self._rejected += 1
            raise
        if self._handle_chain is None and self._can_run_inline(actor):
            # A chain of handlers that never suspend must not run a whole conversation without
            # letting other tasks (or a cancel) in: every so often, yield as a mailbox hop would.
            self._inline_streak += 1
            if self._inline_streak >= _INLINE_YIELD_EVERY:
                self._inline_streak = 0
                await asyncio.sleep(0)
            depth = _inline_depth.get()
            if depth < _INLINE_MAX_DEPTH and self._can_run_inline(actor):  # re-check after a yield
                token = _inline_depth.set(depth + 1)
                try:
                    return await self._send_inline(actor, env)
                finally:
                    _inline_depth.reset(token)
        try:
            await self._enqueue(actor, env)
        except BaseException:
            self._rejected += 1
            raise
        reply = env.reply
        timer: TimerHandle | None = None
        if env.deadline is not None:
            timer = self.clock.call_at(env.deadline, self._expire, env, actor)
        try:
            return await reply
        except asyncio.CancelledError:
            if reply.cancelled():  # the caller was cancelled: cancel the handler's work too
                self._abandon(env, actor)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _can_run_inline(self, actor: _Actor) -> bool:
        """The actor is live, idle and has nothing queued, and the runtime is running."""
        return (
            actor.task is None
            and actor.agent is not None
            and not actor.stopped
            and not len(actor.mailbox)
            and self._state is RuntimeState.RUNNING
        )

    async def _send_inline(self, actor: _Actor, env: Envelope) -> Any:
        """Run the turn in the caller's own task: the recipient is live, idle and has nothing
        queued, so no other message can be ahead of this one. Same guarantees as the mailbox
        path (one turn at a time: `actor.task` marks it busy; deadlines and cancellation stop
        the handler), without a task switch or a reply future round trip."""
        task = asyncio.current_task()
        agent = actor.agent
        reply = env.reply
        assert task is not None
        assert agent is not None
        assert reply is not None
        self._accepted += 1
        self._in_flight += 1
        actor.task = task
        actor.inline = True
        actor.current = env
        timer = None
        if env.deadline is not None:
            timer = self.clock.call_at(env.deadline, self._expire, env, actor)
        try:
            message = env.message
            fn = agent._moot_dispatch.get(type(message)) or _handler(agent, message)
            result = await fn(agent, message, env)
        except BaseException as exc:
            targeted = actor.cancel_target is env
            self._end_inline(actor)
            if targeted:
                actor.cancel_target = None
                task.uncancel()
            if isinstance(exc, _NoHandler):
                self._no_handler(env, actor)
            elif isinstance(exc, Exception):
                self._fail(env, actor, _handler_error(actor, exc), exc)
            elif not reply.done():  # cancelled from outside, or KeyboardInterrupt & co.
                reply.cancel()
                self._errored += 1
                self._settled()
            else:  # our own cancel: the deadline, stop_agent or stop put the error in `reply`
                self._errored += 1
                self._settled()
            self._after_inline(actor)
            if isinstance(exc, asyncio.CancelledError) and (not targeted or task.cancelling()):
                raise  # the caller itself was cancelled
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
            error = reply.exception()
            assert error is not None
            raise error from error.__cause__  # a HandlerError keeps its original as the cause
        finally:
            if timer is not None:
                timer.cancel()
        targeted = actor.cancel_target is env
        self._end_inline(actor)
        if targeted:  # the handler swallowed our cancel; the caller gets the error we set
            actor.cancel_target = None
            task.uncancel()
        self._after_inline(actor)
        if reply.done():
            self._errored += 1
            self._settled()
            error = reply.exception()
            assert error is not None
            raise error
        self._handled += 1
        self._settled()
        return result

    def _end_inline(self, actor: _Actor) -> None:
        actor.current = None
        actor.task = None
        actor.inline = False

    def _after_inline(self, actor: _Actor) -> None:
        """After an inline turn: hand queued messages to a drain task, or start the idle clock."""
        if actor.stopped or actor.retired:
            return
        if len(actor.mailbox):
            if not self._halting:
                self._ready(actor)
        elif actor.agent is not None and actor.type.idle_timeout is not None:
            self._became_idle(actor)

    def _interrupt(self, actor: _Actor, error: Exception) -> asyncio.Task[None] | None:
        """Cancel the turn `actor` is running. A drain task is returned for the caller to await;
        an inline turn runs in its sender's task, which gets `error` instead of a cancellation."""
        task = actor.task
        if task is None:
            return None
        if actor.inline:
            env = actor.current
            itself = task is asyncio.current_task()
            if env is not None and actor.cancel_target is None and not itself:
                if env.reply is not None and not env.reply.done():
                    env.reply.set_exception(error)
                actor.cancel_target = env
                task.cancel()
            return None
        if task is asyncio.current_task():
            return None
        task.cancel()
        return task

    async def _tell_core(self, env: Envelope) -> None:
        recipient = env.recipient
        assert recipient is not None
        if self._local_only or self.transport.tells_local(recipient):
            await self._tell_local(env)
        else:
            await self.transport.tell(env)

    async def _tell_local(self, env: Envelope) -> None:
        recipient = env.recipient
        assert recipient is not None
        try:
            actor = self._actors.get(recipient) or self._cell(recipient)
            await self._enqueue(actor, env)
        except BaseException:
            self._rejected += 1
            raise

    async def _publish_core(self, env: Envelope) -> None:
        topic = env.topic
        assert topic is not None
        recipients = self._recipients.get(topic)
        if recipients is None:
            recipients = self._resolve(topic)
        sender = env.sender
        actors = self._actors
        local_only = self._local_only
        fast = 0  # fast-path deliveries not yet counted; flushed before any await
        targeted = False
        for agent_id in recipients:
            if sender is not None and agent_id == sender:
                continue
            targeted = True
            actor = actors.get(agent_id)
            if actor is not None and local_only and actor.mailbox.try_put(env):
                fast += 1  # a live local actor with room: no await, no allocation
                continue
            self._accepted += fast
            self._in_flight += fast
            fast = 0
            await self._publish_slow(env, agent_id)
        self._accepted += fast
        self._in_flight += fast
        if not targeted:
            self._accept_one()
            self._dead_letter(env, None, DeadLetterReason.NO_SUBSCRIBERS, None)

    async def _publish_slow(self, env: Envelope, agent_id: AgentId) -> None:
        """One delivery of a publish that is remote, not yet activated, full, or stopped."""
        if not self._local_only and not self.transport.tells_local(agent_id):
            try:
                await self.transport.tell(_with_recipient(env, agent_id))
            except Exception as exc:
                self._accept_one()
                self._dead_letter(env, agent_id, DeadLetterReason.UNDELIVERABLE, exc)
            return  # forwarded: the owning process accepts and counts it
        try:
            actor = self._actors.get(agent_id) or self._cell(agent_id)
        except AgentNotFoundError as exc:
            self._accept_one()
            self._dead_letter(env, agent_id, DeadLetterReason.NO_SUCH_AGENT_TYPE, exc)
            return
        try:
            await self._enqueue(actor, env)
        except (MailboxFullError, AgentStoppedError) as exc:
            self._accept_one()
            reason = (
                DeadLetterReason.AGENT_STOPPED
                if isinstance(exc, AgentStoppedError)
                else DeadLetterReason.MAILBOX_FULL
            )
            self._dead_letter(env, agent_id, reason, exc)

    def _accept_one(self) -> None:
        self._accepted += 1
        self._in_flight += 1

    def _resolve(self, topic: TopicId) -> tuple[AgentId, ...]:
        types = self._routes.get(topic.type)
        if types is None:
            seen: dict[str, None] = {}
            for sub in self._subscriptions:
                if sub.matches(topic.type):
                    seen[sub.agent_type] = None
            types = self._routes[topic.type] = tuple(seen)
        recipients = tuple(AgentId(t, topic.source) for t in types)
        if len(self._recipients) > 10_000:
            self._recipients.clear()
        self._recipients[topic] = recipients
        return recipients

    # ----------------------------------------------------------------- internals: running

    def _ready(self, actor: _Actor) -> None:
        """Mailbox callback: an item arrived; make sure a task is draining this actor."""
        if actor.task is None:
            actor.task = asyncio.get_running_loop().create_task(self._drain(actor))

    async def _drain(self, actor: _Actor) -> None:
        """Handle queued messages one at a time; exit when the mailbox stays empty for a tick.

        This is the hot path, so the common turn is inline; failures go to `_turn_failed`.
        """
        mailbox = actor.mailbox
        handle_chain = self._handle_chain
        try:
            while True:
                env = mailbox.get_nowait()
                if env is None:
                    # Linger one scheduling tick: a request/reply partner usually sends its next
                    # message now, and that saves starting a new task for it.
                    await asyncio.sleep(0)
                    env = mailbox.get_nowait()
                    if env is None:
                        break
                if isinstance(env, _Passivate):
                    await self._passivate(actor, env)
                    if actor.retired:
                        break
                    continue
                reply = env.reply
                if reply is not None and reply.done():  # the caller gave up (deadline, cancel)
                    self._errored += 1
                    self._settled()
                    continue
                agent = actor.agent
                if agent is None:
                    agent = await self._activate_for(actor, env)
                    if agent is None:
                        if actor.stopped:
                            break
                        continue
                actor.current = env
                try:
                    if handle_chain is not None:
                        addressed = (
                            env if env.recipient is not None else replace(env, recipient=actor.id)
                        )
                        result = await handle_chain(addressed)
                    else:
                        message = env.message
                        fn = agent._moot_dispatch.get(type(message)) or _handler(agent, message)
                        result = await fn(agent, message, env)
                except BaseException as exc:
                    actor.current = None
                    if self._turn_failed(actor, env, exc):
                        raise
                    if actor.stopped:
                        break
                    continue
                actor.current = None
                if actor.cancel_target is env:  # the handler swallowed our targeted cancel
                    self._uncancel(actor)
                if reply is not None:
                    if reply.done():
                        self._errored += 1
                    else:
                        reply.set_result(result)
                        self._handled += 1
                else:
                    self._handled += 1
                self._in_flight -= 1
                if self._drained is not None and self._in_flight == 0:
                    self._drained.set()
        finally:
            actor.task = None
            if not actor.stopped and not actor.retired and not self._halting and len(mailbox):
                self._ready(actor)  # a message raced the exit: keep going in a fresh task
            elif actor.agent is not None and actor.type.idle_timeout is not None:
                self._became_idle(actor)

    def _uncancel(self, actor: _Actor) -> None:
        actor.cancel_target = None
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()

    def _turn_failed(self, actor: _Actor, env: Envelope, exc: BaseException) -> bool:
        """Settle a turn that raised. Returns True when the exception must propagate."""
        if isinstance(exc, asyncio.CancelledError):
            if actor.cancel_target is env:  # our own targeted cancel of this one turn
                self._uncancel(actor)
                self._errored += 1
                self._settled()
                return False
            self._fail(env, actor, RuntimeStoppedError("the runtime is stopping"), None)
            return True
        if actor.cancel_target is env:
            self._uncancel(actor)
        if isinstance(exc, _NoHandler):
            self._no_handler(env, actor)
        elif isinstance(exc, DropMessage):
            self._dropped(env, actor, exc.reason)
        elif isinstance(exc, Exception):
            self._fail(env, actor, _handler_error(actor, exc), exc)
            if env.kind is not Kind.SEND:  # a tell (even one a transport awaits) is supervised
                self._supervise(actor, exc)
        else:  # KeyboardInterrupt, SystemExit: settle, then let it go
            self._fail(env, actor, RuntimeStoppedError("the runtime is stopping"), None)
            return True
        return False

    async def _activate_for(self, actor: _Actor, env: Envelope) -> Agent | None:
        """Build the agent for its first message; on failure settle `env` and return None."""
        try:
            return await self._activate(actor)
        except asyncio.CancelledError:
            self._fail(env, actor, RuntimeStoppedError("the runtime is stopping"), None)
            raise
        except Exception as exc:
            log.error("agent.activation_failed", agent=str(actor.id), error=repr(exc))
            self._fail(env, actor, _handler_error(actor, exc), exc)
            self._supervise(actor, exc)
            return None

    async def _handle_core(self, env: Envelope) -> Any:
        actor = self._actors[env.recipient] if env.recipient is not None else None
        agent = actor.agent if actor is not None else None
        if agent is None:  # pragma: no cover - the runner activates before handling
            raise _NoHandler
        return await _handler(agent, env.message)(agent, env.message, env)

    async def _activate(self, actor: _Actor) -> Agent:
        made = actor.type.factory(AgentContext(actor.id, self))
        agent = await made if inspect.isawaitable(made) else made
        if not isinstance(agent, Agent):
            raise RegistrationError(
                f"the factory of {actor.type.name!r} returned {type(agent).__name__}, not an Agent"
            )
        state = await self.state_store.load(actor.id)
        await agent.on_activate(state)
        actor.agent = agent
        return agent

    async def _save(self, actor: _Actor) -> None:
        agent = actor.agent
        actor.agent = None
        if agent is None:
            return
        try:
            state = await agent.on_passivate()
            if state is not None:
                await self.state_store.save(actor.id, state)
        except Exception as exc:
            log.error("agent.passivate_failed", agent=str(actor.id), error=repr(exc))

    async def _passivate(self, actor: _Actor, item: _Passivate) -> None:
        if len(actor.mailbox):
            return  # it got busy again after the reaper (or `retire`) looked
        if item.since is not None and (actor.idle_since != item.since or actor.agent is None):
            return
        await self._save(actor)
        if not len(actor.mailbox) and self._actors.get(actor.id) is actor:
            del self._actors[actor.id]
            actor.retired = True

    def _supervise(self, actor: _Actor, error: Exception) -> None:
        strategy = actor.type.supervisor
        directive = strategy.decide(actor.id, error)
        if directive is Directive.RESTART:
            if actor.budget is None:
                actor.budget = RestartBudget()
            if actor.budget.try_spend(self.clock.now(), strategy):
                log.warning("agent.restarted", agent=str(actor.id), error=repr(error))
                actor.agent = None  # the factory builds a fresh instance for the next message
                return
            escalation: SupervisionError = RestartBudgetExceededError(
                f"agent {actor.id} failed more than {strategy.max_restarts} times"
                f" in {strategy.period} s",
                agent_id=actor.id,
                restarts=len(actor.budget.times),
            )
            escalation.__cause__ = error
            self._escalate(actor, escalation)
        elif directive is Directive.STOP:
            log.warning("agent.stopped", agent=str(actor.id), error=repr(error))
            actor.agent = None
            self._close_actor(actor, DeadLetterReason.AGENT_STOPPED)
        elif directive is Directive.ESCALATE:
            escalation = SupervisionError(f"agent {actor.id} failed and escalated: {error!r}")
            escalation.__cause__ = error
            self._escalate(actor, escalation)

    def _escalate(self, actor: _Actor, error: SupervisionError) -> None:
        log.error("agent.escalated", agent=str(actor.id), error=str(error))
        actor.agent = None
        self._close_actor(actor, DeadLetterReason.AGENT_STOPPED)
        self.escalations.append(error)
        if self._on_escalation is not None:
            self._on_escalation(error)

    def _close_actor(self, actor: _Actor, reason: DeadLetterReason) -> None:
        """Stop an actor: settle everything still queued for it, refuse what comes later."""
        actor.stopped = True
        for item in actor.mailbox.close():
            if type(item) is _Passivate:
                continue
            assert isinstance(item, Envelope)
            if reason is DeadLetterReason.RUNTIME_STOPPING:
                error: Exception = RuntimeStoppedError(
                    "the runtime stopped before this message was handled", agent_id=actor.id
                )
            else:
                error = AgentStoppedError(f"agent {actor.id} has stopped", agent_id=actor.id)
            self._fail(item, actor, error, None, reason)

    # ----------------------------------------------------------------- internals: settling

    def _settled(self) -> None:
        self._in_flight -= 1
        if self._drained is not None and self._in_flight == 0:
            self._drained.set()

    def _fail(
        self,
        env: Envelope,
        actor: _Actor,
        error: Exception,
        cause: BaseException | None,
        reason: DeadLetterReason = DeadLetterReason.HANDLER_FAILED,
    ) -> None:
        """Settle `env` unhandled: a waiting caller gets `error`; a tell or publish dead-letters."""
        reply = env.reply
        if reply is not None:
            if not reply.done():
                reply.set_exception(error)
            self._errored += 1
            self._settled()
        else:
            self._dead_letter(env, actor.id, reason, cause or error)

    def _no_handler(self, env: Envelope, actor: _Actor) -> None:
        error = NoHandlerError(
            f"agent {actor.id} has no handler for {type(env.message).__name__}", agent_id=actor.id
        )
        self._fail(env, actor, error, None, DeadLetterReason.NO_HANDLER)

    def _dropped(self, env: Envelope, actor: _Actor, reason: str) -> None:
        error = _drop_error(reason, actor.id)
        if env.reply is not None and not env.reply.done():
            env.reply.set_exception(error)
        self._dead_letter(env, actor.id, DeadLetterReason.DROPPED_BY_INTERCEPTOR, error, reason)

    def _dropped_at_door(self, env: Envelope, reason: str) -> MessageDroppedError:
        """An interceptor dropped `env` before routing: accept it, dead-letter it, return the
        error its sender should see."""
        self._accept_one()
        error = _drop_error(reason, env.recipient)
        self._dead_letter(
            env, env.recipient, DeadLetterReason.DROPPED_BY_INTERCEPTOR, error, reason
        )
        return error

    def _dead_letter(
        self,
        env: Envelope,
        recipient: AgentId | None,
        reason: DeadLetterReason,
        error: BaseException | None,
        detail: str = "",
    ) -> None:
        self._dead += 1
        self._settled()
        letter = DeadLetter(
            envelope=env, recipient=recipient, reason=reason, detail=detail, error=error
        )
        log.info(
            "message.dead_lettered",
            agent=str(recipient) if recipient else None,
            message_id=env.message_id,
            correlation_id=env.correlation_id,
            reason=reason.value,
            message_type=type(env.message).__name__,
        )
        self.dead_letters(letter)
        if self._extra_sink is not None:
            self._extra_sink(letter)

    def _expire(self, env: Envelope, actor: _Actor) -> None:
        reply = env.reply
        if reply is not None and not reply.done():
            reply.set_exception(
                DeadlineExceededError(
                    f"no reply from {actor.id} before the deadline", agent_id=actor.id
                )
            )
        self._abandon(env, actor)

    def _abandon(self, env: Envelope, actor: _Actor) -> None:
        """The caller stopped waiting: cancel the handler if it is working on `env` right now."""
        if actor.current is env and actor.task is not None and actor.cancel_target is None:
            actor.cancel_target = env
            actor.task.cancel()

    # ----------------------------------------------------------------- internals: passivation

    def _became_idle(self, actor: _Actor) -> None:
        timeout = actor.type.idle_timeout
        assert timeout is not None
        now = self.clock.now()
        actor.idle_since = now
        idle = self._idle[actor.type.name]
        idle[actor.id] = now
        idle.move_to_end(actor.id)
        due = now + timeout
        wake = self._reaper_wake
        if wake is not None and not wake.done():
            if self._reaper_target is None or due < self._reaper_target:
                wake.set_result(None)

    def _ensure_reaper(self) -> None:
        if self._reaper is None and self._idle and self._state is RuntimeState.RUNNING:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Passivate agents idle past their type's timeout; sleeps until the next one is due."""
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock.now()
            target: float | None = None
            for type_name, idle in self._idle.items():
                timeout = self._types[type_name].idle_timeout
                assert timeout is not None
                while idle:
                    agent_id, since = next(iter(idle.items()))
                    if since + timeout > now:
                        target = since + timeout if target is None else min(target, since + timeout)
                        break
                    del idle[agent_id]
                    actor = self._actors.get(agent_id)
                    if (
                        actor is not None
                        and actor.idle_since == since
                        and actor.task is None
                        and actor.agent is not None
                    ):
                        actor.mailbox.put_system(_Passivate(since))
            self._reaper_target = target
            self._reaper_wake = wake = loop.create_future()
            handle = None if target is None else self.clock.call_at(target, resolve_future, wake)
            try:
                await wake
            finally:
                if handle is not None:
                    handle.cancel()
                self._reaper_wake = None


class _NoHandler(NoHandlerError):
    def __init__(self) -> None:
        super().__init__("the agent has no handler for this message type")


def _handler(agent: Agent, message: Any) -> HandlerFn:
    """The agent's handler for `message` (the hot paths try the dispatch cache first).

    Raises:
        _NoHandler: the agent has none; the caller settles the message as unhandled.
    """
    fn = type(agent).handler_for(type(message))
    if fn is None:
        raise _NoHandler
    return fn


def _handler_error(actor: _Actor, exc: BaseException) -> HandlerError:
    error = HandlerError(f"handler of {actor.id} raised {exc!r}", agent_id=actor.id)
    error.__cause__ = exc
    return error


def _drop_error(reason: str, agent_id: AgentId | None) -> MessageDroppedError:
    return MessageDroppedError(
        f"an interceptor dropped the message: {reason}", reason=reason, agent_id=agent_id
    )


def _with_recipient(env: Envelope, agent_id: AgentId) -> Envelope:
    return replace(env, recipient=agent_id)
