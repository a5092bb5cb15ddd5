"""Group chats whose manager and members live on worker processes (the two-agent side is in
`moot.agents.distributed`): the group chat's messages for the codec, its events sent live to
the client, and the manager's ways to open and read members that run elsewhere.

An in-process event sink cannot cross a process. When the transport has live feeds (NATS), a
client that streams a chat opens one and names it in `RunGroupChat.event_feed`; the worker
sends each event there as it happens, numbered, and waits for the client's ack before the
next, so events arrive in order and a slow reader slows only its own chat (as in process). If
the client stops acking, the worker keeps the rest and the reply carries them; the client
skips what it has seen by number. A transport without feeds has the events collected
(`RunGroupChat.collect_events`) and replayed from the reply when the chat ends.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio
import structlog

from moot.agents.distributed import (
    OpenChat,
    ReportChat,
    register_chat_messages,
    usage_from_wire,
)
from moot.journal import JournalError, LeaseHeldError
from moot.models import Usage

from . import _events
from ._actor import RunGroupChat
from ._errors import ChatWaitingForInputError
from ._events import (
    ChatEvent,
    CodeRunEvent,
    EventSink,
    MessageEvent,
    SpeakerSelectedEvent,
    TerminationEvent,
    TokenUsageEvent,
    ToolCallEvent,
)
from ._manager import GroupChatResult
from ._state import StopReason

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from moot.agents import TurnReply
    from moot.agents.distributed import ChatReport
    from moot.models import UsageSummary
    from moot.runtime import AgentContext, AgentId, Runtime

    from ._durable import GroupJournal
    from ._manager import GroupChatManager, _GroupRun

_events.GroupChatResult = GroupChatResult  # type: ignore[attr-defined]  # read by the codec

log = structlog.get_logger("moot.groupchat")

_LEASE_WAITS = 2  # waits for a dead worker's chat lease to expire, before LeaseHeldError
_LEASE_MARGIN = 0.05  # seconds past its expiry (clocks of two hosts differ a little)
FEED_BUFFER = 64  # events a chat may be ahead of its live feed's reader before `emit` waits


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupChatRun:
    """The reply to a `RunGroupChat` that asked for its events: the result, and the events not
    delivered live (all of them without a feed), as `codec.encode` made them on the worker, in
    order. `run` names the worker's run and `first` is the number of `events[0]` in it."""

    result: GroupChatResult
    events: tuple[dict[str, Any], ...] = ()
    run: str = ""
    first: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupChatWaiting:
    """The reply to a `RunGroupChat` whose chat stopped to wait for a human: the question's
    single-use token; answer it from any process, then run the chat again by its id."""

    chat_id: str
    token: str
    prompt: str

    def error(self) -> ChatWaitingForInputError:
        from ._durable import waiting_error

        return waiting_error(self.chat_id, self.token, self.prompt)


@runtime_checkable
class LiveFeeds(Protocol):
    """A transport that carries live feeds between processes (`NatsTransport` does)."""

    async def open_feed(self, handler: Callable[[bytes], Awaitable[None]]) -> Any:
        """Subscribe a feed (an async context manager with a `subject`)."""
        ...

    async def send_to_feed(self, subject: str, payload: bytes) -> bool:
        """Send one payload, wait for the reader: False when it is gone."""
        ...


GROUPCHAT_MESSAGES: tuple[type, ...] = (
    RunGroupChat,
    GroupChatRun,
    GroupChatWaiting,
    GroupChatResult,
    StopReason,
    Usage,
    MessageEvent,
    SpeakerSelectedEvent,
    ToolCallEvent,
    CodeRunEvent,
    TokenUsageEvent,
    TerminationEvent,
)
"""Registered as `moot.groupchat.<Name>`, beside the participant protocol (`moot.agents.*`)."""


def register_groupchat_messages(runtime: Runtime) -> None:
    """Register the group chat's messages, replies and events with `runtime.codec` under stable
    names, and the participant protocol's too. Safe to call again.

    Raises:
        SerializationError: a name is taken by another type in this codec.
    """
    register_chat_messages(runtime)
    for message_type in GROUPCHAT_MESSAGES:
        runtime.codec.register(message_type, name=f"moot.groupchat.{message_type.__name__}")


async def run_on_worker(
    manager: GroupChatManager, context: AgentContext, request: RunGroupChat
) -> GroupChatRun | GroupChatResult | GroupChatWaiting:
    """Run a chat a client on another process asked for, journaled by this worker's manager
    (its `store`, e.g. Postgres shared by every worker). A chat found in the journal resumes
    from it, so a client that lost the worker running its chat asks again with the same
    `chat_id` and a survivor goes on from the last journaled turn."""
    from ._durable import journal_human_input
    from ._manager import _group_message

    option = manager.store
    if option is None or option is False:
        return await _run(manager, context, request)
    journal_human_input(manager.groupchat.agents)
    opening = None if request.message is None else _group_message(request.message, request.sender)
    for attempt in range(_LEASE_WAITS + 1):
        entered = False
        try:
            async with manager._journal(option, context.id.key, opening) as journal:
                entered = True
                if journal.resumed:
                    request = replace(request, message=None, history=tuple(journal.history))
                reason = None
                try:
                    answer = await _run(manager, context, replace(request, journal=journal))
                    result = answer.result if isinstance(answer, GroupChatRun) else answer
                    reason = result.stop_reason
                except Exception as exc:
                    # A question waits for a human (asked here, or by a member on another
                    # worker): the client hears it typed, and the chat stays resumable.
                    waiting = await _waiting_question(journal, exc)
                    if waiting is None:
                        raise
                    return GroupChatWaiting(
                        chat_id=waiting.chat_id, token=waiting.token, prompt=waiting.prompt
                    )
                finally:
                    await journal.close(reason)
                return answer
        except LeaseHeldError as exc:
            if entered or attempt == _LEASE_WAITS:
                raise
            # This worker holds the chat's key (its NATS lease), so the journal's lease belongs
            # to a worker that died with the chat: it expires within the manager's lease_ttl.
            await anyio.sleep(max(0.0, exc.expires_at - time.time()) + _LEASE_MARGIN)
    raise AssertionError("unreachable")  # pragma: no cover


async def _waiting_question(
    journal: GroupJournal, error: Exception
) -> ChatWaitingForInputError | None:
    if isinstance(error, ChatWaitingForInputError):
        return error
    try:
        return await journal.waiting_question()
    except JournalError:
        return None


async def _run(
    manager: GroupChatManager, context: AgentContext, request: RunGroupChat
) -> GroupChatRun | GroupChatResult:
    transport = context.runtime.transport
    if request.event_feed is not None and isinstance(transport, LiveFeeds):
        return await run_feeding(manager, context, request, transport, request.event_feed)
    if request.collect_events:
        return await run_collecting(manager, context, request)
    return await manager._run_group(context, request, initiator=None)


async def run_feeding(
    manager: GroupChatManager,
    context: AgentContext,
    request: RunGroupChat,
    feeds: LiveFeeds,
    subject: str,
) -> GroupChatRun:
    """Run the chat, sending each event to the client's live feed as it happens; the events
    the feed did not take (its reader went away or stalled) come back with the result."""
    send, receive = anyio.create_memory_object_stream[ChatEvent](FEED_BUFFER)
    codec = context.runtime.codec
    run = os.urandom(6).hex()
    kept: list[dict[str, Any]] = []
    first = 0

    async def forward() -> None:
        nonlocal first
        live = True
        async with receive:
            async for number, event in _numbered(receive):
                payload = codec.encode(event)
                if live:
                    body = {"run": run, "n": number, "event": payload}
                    live = await feeds.send_to_feed(subject, json.dumps(body).encode())
                    if live:
                        continue
                    first = number
                    log.warning("groupchat.event_feed_lost", chat=context.id.key, event=number)
                kept.append(payload)

    failed: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(forward)
        async with send:
            try:
                result = await manager._run_group(
                    context, replace(request, sink=EventSink(send)), initiator=None
                )
            except Exception as exc:  # raised below, as itself (not in an exception group)
                failed = exc
    if failed is not None:
        raise failed
    return GroupChatRun(result=result, events=tuple(kept), run=run, first=first)


async def _numbered(receive: Any) -> Any:
    number = 0
    async for event in receive:
        yield number, event
        number += 1


class FeedCursor:
    """The client's place in a chat's events: it hands each to `sink` once, in order, whether
    it came live or in the reply (a retried run on a survivor numbers its events afresh)."""

    def __init__(self, runtime: Runtime, sink: EventSink) -> None:
        self._runtime = runtime
        self._sink = sink
        self._run = ""
        self._next = 0

    async def take(self, run: str, number: int, payload: dict[str, Any]) -> None:
        """Emit the event numbered `number` of `run` unless it was emitted already."""
        if run != self._run:
            self._run, self._next = run, 0
        if number < self._next:
            return
        self._next = number + 1
        await self._sink.emit(self._runtime.codec.decode(payload))

    async def on_payload(self, data: bytes) -> None:
        """The live feed's handler: one event as the worker sent it."""
        body = json.loads(data)
        await self.take(str(body["run"]), int(body["n"]), body["event"])

    async def rest(self, reply: GroupChatRun) -> None:
        """The events the reply carries, after those that came live."""
        for offset, payload in enumerate(reply.events):
            await self.take(reply.run, reply.first + offset, payload)


async def run_collecting(
    manager: GroupChatManager, context: AgentContext, request: RunGroupChat
) -> GroupChatRun:
    """Run the chat with a sink that keeps every event, and answer them with the result."""
    send, receive = anyio.create_memory_object_stream[ChatEvent](math.inf)
    codec = context.runtime.codec
    events: list[dict[str, Any]] = []
    with receive:
        async with send:
            result = await manager._run_group(
                context, replace(request, sink=EventSink(send)), initiator=None
            )
        while True:
            try:
                events.append(codec.encode(receive.receive_nowait()))
            except anyio.EndOfStream:
                break
    return GroupChatRun(result=result, events=tuple(events))


async def open_members(
    manager: GroupChatManager, rt: Runtime, run: _GroupRun, initiator: str | None
) -> None:
    """`_open_participants` for members on workers: each opens its side where it runs, seeded
    with the history in its own view."""
    from ._manager import _view

    chat = run.chat
    for agent in manager.groupchat.agents:
        agent_id = agent.participant_id(rt, chat.chat_id)
        run.ids[agent.name] = agent_id
        run.synced[agent.name] = len(chat.messages)
        if agent.name == initiator:
            continue  # its side is open already: its chat with the manager
        history = tuple(_view(chat.messages, agent.name)) if chat.messages else ()
        request = OpenChat(peer=manager.name, silent=True, history=history)
        await rt.send(request, agent_id)
        run.opened.append(agent_id)


async def retry_member_turn(
    manager: GroupChatManager,
    rt: Runtime,
    run: _GroupRun,
    name: str,
    me: AgentId,
    error: Exception,
) -> TurnReply:
    """A member's worker died during its turn (the request failed once the membership dropped
    it): open every member again where its key lives now (others may have run on that worker
    too), seeded with the whole history in its view, and ask for the turn once more. The turns
    before were journaled; this one is redone.

    Raises:
        DeliveryError: the member cannot be reached again either.
    """
    from moot.runtime import HandlerError

    from ._manager import _view

    log.warning("groupchat.member_lost", chat=run.chat.chat_id, member=name, error=repr(error))
    chat = run.chat
    try:
        for member, agent_id in run.ids.items():
            history = tuple(_view(chat.messages, member))
            await rt.send(OpenChat(peer=manager.name, silent=True, history=history), agent_id)
            run.synced[member] = len(chat.messages)
        reply: TurnReply = await rt.send(manager._ask_turn, run.ids[name], sender=me)
    except HandlerError as exc:
        raise (exc.__cause__ or exc) from None
    return reply


async def member_usage(rt: Runtime, agent_id: AgentId) -> UsageSummary:
    """What a member on a worker has used in this chat so far."""
    report: ChatReport = await rt.send(ReportChat(messages=False), agent_id)
    return usage_from_wire(report.usage)
