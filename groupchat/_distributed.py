"""Group chats whose manager and members live on worker processes (the two-agent side is in
`moot.agents.distributed`): the group chat's messages for the codec, its events carried back
in the reply, and the manager's ways to open and read members that run elsewhere.

An in-process event sink cannot cross a process, so a client on another process asks the
manager to collect the chat's events (`RunGroupChat.collect_events`); the reply carries them,
encoded by the worker's codec, and the client replays them into its own sink in order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio

from moot.agents.distributed import (
    OpenChat,
    ReportChat,
    register_chat_messages,
    usage_from_wire,
)
from moot.journal import LeaseHeldError
from moot.models import Usage

from . import _events
from ._actor import RunGroupChat
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
    from moot.agents.distributed import ChatReport
    from moot.models import UsageSummary
    from moot.runtime import AgentContext, AgentId, Runtime

    from ._manager import GroupChatManager, _GroupRun

_LEASE_WAITS = 2  # waits for a dead worker's chat lease to expire, before LeaseHeldError
_LEASE_MARGIN = 0.05  # seconds past its expiry (clocks of two hosts differ a little)

_events.GroupChatResult = GroupChatResult  # type: ignore[attr-defined]  # read by the codec


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupChatRun:
    """The reply to a `RunGroupChat` that asked for its events: the result, and each event as
    `codec.encode` made it on the worker, in order."""

    result: GroupChatResult
    events: tuple[dict[str, Any], ...] = ()


GROUPCHAT_MESSAGES: tuple[type, ...] = (
    RunGroupChat,
    GroupChatRun,
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
) -> GroupChatRun | GroupChatResult:
    """Run a chat a client on another process asked for, journaled by this worker's manager
    (its `store`, e.g. Postgres shared by every worker). A chat found in the journal resumes
    from it, so a client that lost the worker running its chat asks again with the same
    `chat_id` and a survivor goes on from the last journaled turn."""
    from ._durable import group_journal, journal_human_input
    from ._manager import _group_message

    option = manager.store
    if option is None or option is False:
        return await _run(manager, context, request)
    journal_human_input(manager.groupchat.agents)
    opening = None if request.message is None else _group_message(request.message, request.sender)
    for attempt in range(_LEASE_WAITS + 1):
        entered = False
        try:
            async with group_journal(
                option,
                chat_id=context.id.key,
                manager=manager.name,
                participants=tuple(agent.name for agent in manager.groupchat.agents),
                policy=type(manager.groupchat.policy).__name__,
                max_round=manager.groupchat.max_round,
                opening=opening,
                ttl=manager.lease_ttl,
                owner=manager._lease_owner,
            ) as journal:
                entered = True
                if journal.resumed:
                    request = replace(request, message=None, history=tuple(journal.history))
                reason = None
                try:
                    answer = await _run(manager, context, replace(request, journal=journal))
                    result = answer.result if isinstance(answer, GroupChatRun) else answer
                    reason = result.stop_reason
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


async def _run(
    manager: GroupChatManager, context: AgentContext, request: RunGroupChat
) -> GroupChatRun | GroupChatResult:
    if request.collect_events:
        return await run_collecting(manager, context, request)
    return await manager._run_group(context, request, initiator=None)


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


async def replay(runtime: Runtime, run: GroupChatRun, sink: EventSink) -> None:
    """Hand the events a worker collected to the client's `sink`, in order."""
    for payload in run.events:
        await sink.emit(runtime.codec.decode(payload))


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


async def member_usage(rt: Runtime, agent_id: AgentId) -> UsageSummary:
    """What a member on a worker has used in this chat so far."""
    report: ChatReport = await rt.send(ReportChat(messages=False), agent_id)
    return usage_from_wire(report.usage)
