"""The state of one running group chat, as policies and terminations read it.

One `GroupChatState` exists per chat id; the agent objects and the `GroupChat` settings are
shared by every chat, so nothing chat-specific lives anywhere else. Policies keep their per-chat
memory in `scratch`, keyed by the policy object, which is what lets one policy object serve many
chats.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moot.models import Usage

if TYPE_CHECKING:
    from moot.models import ModelClient, ModelResponse

    from ._events import ChatEvent, EventSink

HANDOFF_PREFIX = "transfer_to_"


@dataclass(frozen=True, slots=True, kw_only=True)
class StopReason:
    """Why a chat ended: `condition` names the condition (e.g. "MaxMessages"), `detail` says how."""

    condition: str
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class NoSpeaker:
    """A policy's answer when nobody may speak next; the chat ends with `reason`."""

    reason: str


class GroupChatState:
    """Everything one chat has: history, counters, usage, and a scratch space for policies."""

    __slots__ = (
        "_ask_human",
        "_asker",
        "_groupchat",
        "_view",
        "agents",
        "chat_id",
        "clock",
        "cost",
        "descriptions",
        "last_speaker",
        "messages",
        "model_client",
        "participants",
        "scratch",
        "sink",
        "start_index",
        "started",
        "turns",
        "usage",
    )

    def __init__(
        self,
        chat_id: str,
        participants: tuple[str, ...],
        *,
        messages: list[dict[str, Any]] | None = None,
        descriptions: Mapping[str, str] | None = None,
        clock: Callable[[], float],
        model_client: ModelClient | None = None,
        groupchat: Any = None,
        agents: Mapping[str, Any] | None = None,
        ask_human: Callable[[str], Awaitable[str]] | None = None,
        view: Callable[[list[dict[str, Any]]], Any] | None = None,
        asker: Callable[[str, str], Awaitable[str]] | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.participants = participants
        self.messages: list[dict[str, Any]] = [] if messages is None else messages
        self.descriptions: Mapping[str, str] = descriptions or {}
        self.clock = clock
        self.model_client = model_client
        self._groupchat = groupchat
        self._view = view  # makes the per-chat GroupChat view on first use
        self.agents: Mapping[str, Any] = agents or {}  # name -> agent object
        self._ask_human = ask_human
        self._asker = asker  # asks a human (prompt, chat id), when no `ask_human` is given
        self.start_index = len(self.messages)
        self.turns = 0
        self.last_speaker: str | None = None
        self.usage = Usage()
        self.cost = 0.0
        self.started = clock()
        self.scratch: dict[Any, Any] = {}
        self.sink: EventSink | None = None

    @property
    def groupchat(self) -> Any:
        """The per-chat `GroupChat` view a speaker-selection callable receives (made lazily)."""
        if self._groupchat is None and self._view is not None:
            self._groupchat = self._view(self.messages)
        return self._groupchat

    @property
    def ask_human(self) -> Callable[[str], Awaitable[str]] | None:
        """Asks the chat's human a question (None when the chat has no input provider)."""
        if self._ask_human is None and self._asker is not None:
            asker, chat_id = self._asker, self.chat_id

            async def ask(prompt: str) -> str:
                return await asker(prompt, chat_id)

            self._ask_human = ask
        return self._ask_human

    @property
    def message_count(self) -> int:
        """Messages added in this run, the opening message included."""
        return len(self.messages) - self.start_index

    @property
    def elapsed(self) -> float:
        """Seconds since this run began."""
        return self.clock() - self.started

    @property
    def last_message(self) -> dict[str, Any] | None:
        return self.messages[-1] if self.messages else None

    def restart(self) -> None:
        """Begin a new run over the same history (resume): counters restart, history stays."""
        self.start_index = len(self.messages)
        self.turns = 0
        self.started = self.clock()

    async def emit(self, event: ChatEvent) -> None:
        """Send `event` to the chat's listener, if it has one."""
        sink = self.sink
        if sink is not None:
            await sink.emit(event)

    async def record_usage(self, source: str, response: ModelResponse) -> None:
        """Count a model call made for this chat (by a participant or the selector)."""
        self.usage = self.usage + response.usage
        self.cost += response.cost
        if self.sink is not None:
            from ._events import TokenUsageEvent

            await self.sink.emit(
                TokenUsageEvent(
                    chat_id=self.chat_id,
                    turn=self.turns,
                    source=source,
                    usage=response.usage,
                    cost=response.cost,
                )
            )


def handoff_target(message: Mapping[str, Any] | None) -> str | None:
    """The agent a message hands the turn to, via a `transfer_to_<name>` tool call, or None.

    A message may also name its target directly with a "handoff" key, which is how a reply
    function without tools hands off.
    """
    if not message:
        return None
    direct = message.get("handoff")
    if isinstance(direct, str) and direct:
        return direct
    calls = message.get("tool_calls")
    if not calls:
        return None
    for call in calls:
        function = call.get("function", call) if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name.startswith(HANDOFF_PREFIX):
            return name[len(HANDOFF_PREFIX) :]
    return None


def handoff_tool(target: str, description: str | None = None) -> dict[str, Any]:
    """The tool schema an agent's model calls to hand the turn to `target` (swarm pattern)."""
    return {
        "type": "function",
        "function": {
            "name": f"{HANDOFF_PREFIX}{target}",
            "description": description or f"Hand the conversation over to {target}.",
            "parameters": {"type": "object", "properties": {}},
        },
    }


def content_text(message: Mapping[str, Any] | None) -> str:
    """A message's content as text: strings as they are, content parts joined, None as ""."""
    if not message:
        return ""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return json.dumps(content) if isinstance(content, dict) else str(content)
