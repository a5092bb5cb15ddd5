"""The group chat manager's actor: one per chat id, running that chat's turns on the runtime.

It is the manager's `ChatParticipant` for the chat, so `executor.initiate_chat(manager, ...)`
reaches it as an ordinary `Turn`; `RunGroupChat` starts a chat without an initiating agent.

No `from __future__ import annotations` here: the runtime reads the handlers' type hints.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moot import observability
from moot.agents import ChatParticipant, Turn, TurnReply
from moot.runtime import AgentContext, Envelope, handler

if TYPE_CHECKING:
    from ._manager import GroupChatManager


@dataclass(frozen=True, slots=True, kw_only=True)
class RunGroupChat:
    """Run the chat from `message` (sent by `sender`, maybe someone outside the group).

    `history` continues an earlier conversation (resume); `sink` (an `EventSink`, in process
    only) receives the chat's events; `journal` (a `GroupJournal`) makes each turn durable
    before the next. For a client in another process, `event_feed` names the live feed the
    events go to as they happen, or `collect_events` has them come back with the result (see
    `_distributed`).
    """

    message: Mapping[str, Any] | None
    sender: str
    history: tuple[Mapping[str, Any], ...] = ()
    silent: bool = True
    sink: Any = field(default=None, compare=False)  # EventSink | None; None on a wire
    journal: Any = field(default=None, compare=False)  # the chat's GroupJournal, if journaled
    collect_events: bool = False
    event_feed: str | None = None  # a live feed the client reads (see `_distributed`)
    on_worker: bool = False  # sent by a client in another process: this worker journals it


class ManagerParticipant(ChatParticipant):
    """The manager's part in one chat: a `Turn` that asks it to reply runs the group chat."""

    def __init__(self, context: AgentContext, owner: "GroupChatManager") -> None:
        super().__init__(context, owner)
        self.manager = owner

    @handler
    async def on_turn(self, message: Turn, ctx: Envelope) -> TurnReply:
        if not message.request_reply or message.message is None:
            return await self.owner._handle_turn(self.state, message)
        await self.manager._run_from_turn(self.context, self.state, message)
        return TurnReply(message=None)  # the group chat has run; the initiator's chat ends

    @handler
    async def on_run(self, message: RunGroupChat, ctx: Envelope) -> Any:
        """Answers the `GroupChatResult` (typed loosely: the runtime resolves these hints)."""
        try:
            if message.on_worker:
                from ._distributed import run_on_worker

                return await run_on_worker(self.manager, self.context, message)
            manager = self.manager
            # Without a recorder, skip the span's wrapper: a frame less per chat in flight.
            run = manager._run_group if observability.SWITCH.active else manager._run_group_turns
            return await run(self.context, message, initiator=None)
        finally:
            self.context.runtime.retire(self.id)  # the chat is over: free this key's cell
