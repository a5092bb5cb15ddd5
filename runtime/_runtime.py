"""The runtime: registers agent types and routes envelopes to the cells that run their turns.

Each accepted delivery is settled (handled, answered with a typed error, or dead-lettered with a
reason) through one function, `Ledger.settle`; `statistics()` exposes the counts, and
`accepted == handled + errored + dead_lettered + in_flight` holds at every await point. The
actor cell and its one turn path live in `_cell.py`.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import itertools
import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import structlog

from moot.observability import SWITCH as TRACING
from moot.observability import capture as capture_trace
from moot.observability import dead_letter as count_dead_letter
from moot.observability import refresh as refresh_tracing
from moot.observability import unwatch as unwatch_gauges
from moot.observability import watch as watch_gauges

from ._agent import Agent, AgentFactory
from ._cell import Cell, Passivate, _handler, _NoHandler
from ._clock import AsyncioClock, Clock, TimerHandle, resolve_future
from ._deadletters import DeadLetter, DeadLetterLog, DeadLetterReason, DeadLetterSink
from ._envelope import Envelope, Handler, Kind
from ._errors import (
    AgentNotFoundError,
    AgentStoppedError,
    DeadlineExceededError,
    InvalidIdError,
    LifecycleError,
    MailboxFullError,
    MessageDroppedError,
    RegistrationError,
    RuntimeStoppedError,
    SendCycleError,
    SupervisionError,
)
from ._gc import DEFAULT_GC, GcPolicy, apply_gc, restore_gc
from ._ids import AgentId, TopicId
from ._interceptors import DropMessage, Interceptor, chain
from ._ledger import DEAD_LETTERED, ERRORED, Ledger
from ._serialization import MessageCodec
from ._state import InMemoryStateStore, StateStore
from ._supervision import Restart, SupervisorStrategy
from ._transport import InProcessTransport, Transport

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._mailbox import Mailbox, MailboxStatistics
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


class Runtime:
    """An in-process actor runtime (or one node of a distributed one, given a transport).

    Use it as `async with Runtime() as rt:`; register agent types before or after start.
    It runs on asyncio. While it runs it tunes Python's garbage collector for many turns in
    flight and restores it on stop: `gc=GcPolicy(...)` to choose, `gc=None` to opt out.
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
        gc: GcPolicy | None = DEFAULT_GC,
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
        self.gc = gc  # the collector's settings while running (see `_gc`); None: left alone
        self._gc_applied = False
        self._state = RuntimeState.CREATED
        self._types: dict[str, AgentType] = {}
        self._subscriptions: list[Subscription] = []
        self._routes: dict[str, tuple[str, ...]] = {}
        self._recipients: dict[TopicId, tuple[_Route, ...]] = {}
        self._actors: dict[AgentId, Cell] = {}
        self._idle: dict[str, OrderedDict[AgentId, float]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._reaper_wake: asyncio.Future[None] | None = None
        self._reaper_target: float | None = None
        self._inline_streak = 0  # inline turns since the last forced yield
        self._halting = False  # stop's drain deadline passed: cancel, never restart a runner
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self.ledger = Ledger()
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
        if self.gc is not None:
            apply_gc(self.gc)
            self._gc_applied = True
        self._ensure_reaper()
        refresh_tracing()
        watch_gauges("runtime", self._mailbox_gauges)

    async def stop(self, *, timeout: float | None = None) -> tuple[AgentId, ...]:
        """Stop gracefully: refuse new messages, let mailboxes drain for `timeout` seconds
        (default `stop_timeout`), then cancel what is left (each pending request gets
        `RuntimeStoppedError`, each queued tell becomes a dead letter) and passivate every live
        agent so it can save its state. Idempotent.

        A cancelled turn gets a tenth of `timeout` more to unwind; a handler still running
        then is abandoned (left to finish on its own, its agent not saved), so `stop` returns
        within 1.1 x `timeout`. Returns the agents whose turns it abandoned.
        """
        if self._state in (RuntimeState.STOPPING, RuntimeState.STOPPED):
            return ()
        if self._state is RuntimeState.CREATED:
            self._state = RuntimeState.STOPPED
            return ()
        self._state = RuntimeState.STOPPING
        budget = self.stop_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        ledger = self.ledger
        if ledger.in_flight:
            ledger.drained = drained = asyncio.Event()
            try:
                async with asyncio.timeout_at(deadline):
                    await drained.wait()
            except TimeoutError:
                log.warning("runtime.stop_deadline", in_flight=ledger.in_flight)
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
            self._reaper = None
        self._halting = True
        stopping = RuntimeStoppedError("the runtime stopped before this message was handled")
        stopping_reason = DeadLetterReason.RUNTIME_STOPPING
        turns = [
            t for cell in self._actors.values() if (t := cell.interrupt(stopping, stopping_reason))
        ]
        if turns:
            await asyncio.wait(turns, timeout=max(deadline - loop.time(), 0.0) + budget / 10)
        abandoned = tuple(cell.id for cell in self._actors.values() if cell.current is not None)
        if abandoned:
            log.warning("runtime.stop_abandoned", agents=[str(a) for a in abandoned])
        for cell in list(self._actors.values()):
            cell.close(DeadLetterReason.RUNTIME_STOPPING)
        for cell in list(self._actors.values()):
            if cell.agent is not None and cell.current is None:
                await cell.save()
        self._state = RuntimeState.STOPPED
        if self._gc_applied:
            self._gc_applied = False
            restore_gc()
        unwatch_gauges("runtime", self._mailbox_gauges)
        await self.transport.aclose()
        return abandoned

    def _mailbox_gauges(self) -> dict[str, int]:
        """Queued messages and waiting senders over all mailboxes, read when metrics are
        collected (moot.observability's gauges), never on the message path."""
        depth = waiting = 0
        for cell in list(self._actors.values()):
            stats = cell.mailbox.statistics()
            depth += stats.depth
            waiting += stats.waiting_senders
        return {"depth": depth, "waiting_senders": waiting}

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
            if self._local_only:
                return await self._send_local(env)
            # `_send_core`, inlined: one coroutine frame fewer per request in flight.
            transport = self.transport
            if transport.is_local(recipient):
                return await self._send_local(env)
            return await transport.send(env)
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
        ledger = self.ledger
        return RuntimeStatistics(
            accepted=ledger.accepted,
            handled=ledger.handled,
            errored=ledger.errored,
            dead_lettered=ledger.dead_lettered,
            rejected=ledger.rejected,
            in_flight=ledger.in_flight,
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
        """Stop one agent now: its running turn is cancelled (at every await until it ends) and
        awaited, its caller and queued requests get `AgentStoppedError`, queued tells are
        dead-lettered, and later messages to it are refused; no turn starts after this.

        Raises:
            AgentNotFoundError: no such agent type is registered.
        """
        cell = self._actors.get(agent_id)
        if cell is None:
            reg = self._types.get(agent_id.type)
            if reg is None:
                raise AgentNotFoundError(f"no agent type {agent_id.type!r}", agent_id=agent_id)
            cell = self._actors[agent_id] = Cell(agent_id, reg, self)
        stopped = AgentStoppedError(f"agent {agent_id} was stopped", agent_id=agent_id)
        turn = cell.interrupt(stopped, DeadLetterReason.AGENT_STOPPED)
        if turn is not None:
            await asyncio.gather(turn, return_exceptions=True)
        await cell.save()

    def retire(self, agent_id: AgentId) -> None:
        """Passivate `agent_id` after the messages already queued for it, and forget it: its
        state is saved, and its next message (if any) activates a fresh instance with that state.
        Use it when a key's work is done (e.g. a finished chat) so idle keys cost nothing."""
        actor = self._actors.get(agent_id)
        if actor is not None and not actor.stopped and not actor.retired:
            actor.mailbox.put_system(Passivate(None))

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
        self.ledger.accept()
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
            self.ledger.reject()
            raise RuntimeStoppedError(
                f"Cannot deliver a message: the runtime is {self._state.value}.",
                agent_id=recipient,
            )
        if recipient is not None and type(recipient) is not AgentId:
            self.ledger.reject()
            raise InvalidIdError(f"expected an AgentId, got {type(recipient).__name__}")
        if self.require_serializable:
            try:
                self.codec.check(message)
            except Exception:
                self.ledger.reject()
                raise
        if timeout is not None and not timeout > 0:
            self.ledger.reject()
            raise DeadlineExceededError(
                f"Cannot send with a timeout of {timeout}: it must be positive.",
                agent_id=recipient,
            )
        message_id = f"{self._id_prefix}-{next(self._ids)}"
        deadline = None
        parent = None
        if sender is not None:
            cell = self._actors.get(sender)
            current = cell.current if cell is not None else None
            if current is not None:
                correlation_id = correlation_id or current.correlation_id
                deadline = current.deadline
                if kind is Kind.SEND:
                    parent = current
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
            parent=parent,
            trace=capture_trace() if TRACING.propagate else None,
        )

    def _refuse_cycle(self, env: Envelope, recipient: AgentId) -> None:
        """Refuse a send to a busy agent that waits, up the call chain, for this very send: it
        could only take the message after its own turn ends, which waits on the reply.

        Raises:
            SendCycleError: `recipient` is in the chain of agents waiting on `env`.
        """
        waiting: list[AgentId] = []
        link = env
        while link.sender is not None and link.parent is not None:  # sent in its sender's turn
            waiting.append(link.sender)
            if link.sender == recipient:
                cycle = (*reversed(waiting), recipient)
                raise SendCycleError(
                    f"send cycle {' -> '.join(map(str, cycle))}: {recipient} waits for this"
                    " reply in its own turn, so it could never handle the message",
                    agent_id=recipient,
                    cycle=cycle,
                )
            if link.parent.kind is not Kind.SEND:  # nobody waits on that turn
                return
            link = link.parent

    def _cell(self, agent_id: AgentId) -> Cell:
        actor = self._actors.get(agent_id)
        if actor is None:
            reg = self._types.get(agent_id.type)
            if reg is None:
                raise AgentNotFoundError(
                    f"no agent type {agent_id.type!r} is registered", agent_id=agent_id
                )
            actor = self._actors[agent_id] = Cell(agent_id, reg, self)
        return actor

    async def _enqueue(self, cell: Cell, env: Envelope) -> Cell:
        """Put `env` in the mailbox of its key's cell and count it accepted; raises (rejected)
        otherwise. Returns the cell that took it: a cell that retires while the sender waits
        for room hands the sender over to its successor, so a key has one live cell."""
        while True:
            if cell.stopped:
                raise AgentStoppedError(f"agent {cell.id} has stopped", agent_id=cell.id)
            mailbox = cell.mailbox
            if env.fail_fast or len(mailbox) < mailbox.capacity:
                if mailbox.try_put(env):
                    break
                if not cell.retired:
                    mailbox.put_nowait(env)  # raises the reason it was refused
            else:
                try:
                    await mailbox.put(env, deadline=env.deadline)
                    break
                except AgentStoppedError:
                    if not cell.retired:
                        raise
            cell = self._cell(cell.id)
        self.ledger.accept()
        return cell

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
            self.ledger.reject()
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
                    return await actor.turns(env)
                finally:
                    _inline_depth.reset(token)
        try:
            if actor.task is not None and env.parent is not None:  # busy: is it waiting on us?
                self._refuse_cycle(env, recipient)
            actor = await self._enqueue(actor, env)
        except BaseException:
            self.ledger.reject()
            raise
        reply = env.reply
        timer: TimerHandle | None = None
        if env.deadline is not None:
            timer = self.clock.call_at(env.deadline, actor.expire, env)
        try:
            return await reply
        except asyncio.CancelledError:
            if reply.cancelled():  # the caller was cancelled: cancel the handler's work too
                actor.abandon(env)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _can_run_inline(self, cell: Cell) -> bool:
        """Live, idle (or its drain task only lingers), nothing queued, not stopped, and the
        runtime is running: the sender may run the next turn itself (`Cell.turns`)."""
        return (
            (cell.task is None or cell.lingering)
            and cell.agent is not None
            and not cell.stopped
            and not len(cell.mailbox)
            and self._state is RuntimeState.RUNNING
        )

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
            self.ledger.reject()
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
        for route in recipients:
            if sender is not None and route.id == sender:
                continue
            # The mailbox seen last time, while it is open (a cell leaves `_actors` only when it
            # retires, which closes its mailbox): no dict lookup (and id hash) per delivery.
            box = route.box
            if box is None or box._closed:
                actor = actors.get(route.id)
                box = route.box = None if actor is None else actor.mailbox
            if box is not None and local_only:
                items = box._items
                if items is not None and 0 < len(items) < box.capacity:
                    items.append(env)  # `try_put` inlined: a backlog, so nobody to wake
                    fast += 1
                    continue
                if box.try_put(env):
                    fast += 1  # a live local actor with room: no await, no allocation
                    continue
            self.ledger.accept(fast)
            fast = 0
            await self._publish_slow(env, route.id)
        if fast:
            self.ledger.accept(fast)
        if not recipients or (len(recipients) == 1 and recipients[0].id == sender):
            self.ledger.accept()  # nobody but the sender (ids in a topic's routes are unique)
            self._dead_letter(env, None, DeadLetterReason.NO_SUBSCRIBERS, None)

    async def _publish_slow(self, env: Envelope, agent_id: AgentId) -> None:
        """One delivery of a publish that is remote, not yet activated, full, or stopped."""
        if not self._local_only and not self.transport.tells_local(agent_id):
            try:
                await self.transport.tell(_with_recipient(env, agent_id))
            except Exception as exc:
                self.ledger.accept()
                self._dead_letter(env, agent_id, DeadLetterReason.UNDELIVERABLE, exc)
            return  # forwarded: the owning process accepts and counts it
        try:
            actor = self._actors.get(agent_id) or self._cell(agent_id)
        except AgentNotFoundError as exc:
            self.ledger.accept()
            self._dead_letter(env, agent_id, DeadLetterReason.NO_SUCH_AGENT_TYPE, exc)
            return
        try:
            await self._enqueue(actor, env)
        except (MailboxFullError, AgentStoppedError) as exc:
            self.ledger.accept()
            reason = (
                DeadLetterReason.AGENT_STOPPED
                if isinstance(exc, AgentStoppedError)
                else DeadLetterReason.MAILBOX_FULL
            )
            self._dead_letter(env, agent_id, reason, exc)

    def _resolve(self, topic: TopicId) -> tuple[_Route, ...]:
        types = self._routes.get(topic.type)
        if types is None:
            seen: dict[str, None] = {}
            for sub in self._subscriptions:
                if sub.matches(topic.type):
                    seen[sub.agent_type] = None
            types = self._routes[topic.type] = tuple(seen)
        recipients = tuple(_Route(AgentId(t, topic.source)) for t in types)
        if len(self._recipients) > 10_000:
            self._recipients.clear()
        self._recipients[topic] = recipients
        return recipients

    # ----------------------------------------------------------------- internals: cells

    async def _handle_core(self, env: Envelope) -> Any:
        """The innermost stage of the `on_handle` chain: the recipient's own handler."""
        actor = self._actors[env.recipient] if env.recipient is not None else None
        agent = actor.agent if actor is not None else None
        if agent is None:  # pragma: no cover - the cell activates before handling
            raise _NoHandler
        return await _handler(agent, env.message)(agent, env.message, env)

    def _escalated(self, error: SupervisionError) -> None:
        """A cell's supervisor gave up: keep the error (re-raised on exit) and report it."""
        self.escalations.append(error)
        if self._on_escalation is not None:
            self._on_escalation(error)

    # ----------------------------------------------------------------- internals: settling

    def _fail(
        self,
        env: Envelope,
        agent_id: AgentId,
        error: Exception,
        cause: BaseException | None,
        reason: DeadLetterReason = DeadLetterReason.HANDLER_FAILED,
    ) -> None:
        """Settle `env` unhandled: a waiting caller gets `error`; a tell or publish dead-letters."""
        reply = env.reply
        if reply is not None:
            if not reply.done():
                reply.set_exception(error)
            self.ledger.settle(ERRORED)
        else:
            self._dead_letter(env, agent_id, reason, cause or error)

    def _dropped(self, env: Envelope, agent_id: AgentId, reason: str) -> None:
        """An `on_handle` interceptor dropped `env`: answer its caller, dead-letter it."""
        error = _drop_error(reason, agent_id)
        if env.reply is not None and not env.reply.done():
            env.reply.set_exception(error)
        self._dead_letter(env, agent_id, DeadLetterReason.DROPPED_BY_INTERCEPTOR, error, reason)

    def _dropped_at_door(self, env: Envelope, reason: str) -> MessageDroppedError:
        """An interceptor dropped `env` before routing: accept it, dead-letter it, return the
        error its sender should see."""
        self.ledger.accept()
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
        self.ledger.settle(DEAD_LETTERED)
        count_dead_letter(reason.value)
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

    # ----------------------------------------------------------------- internals: passivation

    def _became_idle(self, actor: Cell) -> None:
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
                        actor.mailbox.put_system(Passivate(since))
            self._reaper_target = target
            self._reaper_wake = wake = loop.create_future()
            handle = None if target is None else self.clock.call_at(target, resolve_future, wake)
            try:
                await wake
            finally:
                if handle is not None:
                    handle.cancel()
                self._reaper_wake = None


def _drop_error(reason: str, agent_id: AgentId | None) -> MessageDroppedError:
    return MessageDroppedError(
        f"an interceptor dropped the message: {reason}", reason=reason, agent_id=agent_id
    )


class _Route:
    """One subscriber of a topic, and its mailbox as the last publish found it (see `publish`)."""

    __slots__ = ("box", "id")

    def __init__(self, agent_id: AgentId) -> None:
        self.id = agent_id
        self.box: Mailbox[Envelope | Passivate] | None = None


def _with_recipient(env: Envelope, agent_id: AgentId) -> Envelope:
    return replace(env, recipient=agent_id)
